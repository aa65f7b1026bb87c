-- tokenmq schema version 2: per-access-key call counts, shared by replicas
-- so that rate limits hold across them (fixed one-second windows).
CREATE TABLE rate_windows (
    key       text NOT NULL,
    window_ms bigint NOT NULL,
    calls     bigint NOT NULL,
    PRIMARY KEY (key, window_ms)
);
