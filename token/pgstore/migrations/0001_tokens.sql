-- tokenmq schema version 1: tokens, the revocation log, API nonces.
CREATE TABLE tokens (
    id            bytea PRIMARY KEY,
    key_id        bigint NOT NULL,
    instance_id   text NOT NULL,
    access_key_id text NOT NULL,
    name          text NOT NULL DEFAULT '',
    actions       smallint NOT NULL,
    resources     text[] NOT NULL,
    expire_ms     bigint NOT NULL,
    create_ms     bigint NOT NULL,
    modify_ms     bigint NOT NULL,
    revoked       boolean NOT NULL DEFAULT false,
    revoke_ms     bigint NOT NULL DEFAULT 0,
    revoke_seq    bigint NOT NULL DEFAULT 0,
    gc_ms         bigint NOT NULL  -- expiry, or revocation if earlier: when the record becomes garbage
);
CREATE INDEX tokens_by_instance ON tokens (instance_id, create_ms, id);
CREATE INDEX tokens_by_gc ON tokens (gc_ms);

CREATE TABLE revocations (
    seq         bigserial PRIMARY KEY,
    id          bytea NOT NULL,
    instance_id text NOT NULL,
    revoke_ms   bigint NOT NULL,
    expire_ms   bigint NOT NULL
);
CREATE INDEX revocations_by_expiry ON revocations (expire_ms);

-- SignatureNonces seen by any token-service replica (replay protection).
CREATE TABLE nonces (
    hash       bytea PRIMARY KEY,
    expires_ms bigint NOT NULL
);
CREATE INDEX nonces_by_expiry ON nonces (expires_ms);
