-- KickClient (SPEC §2.2): kicks share the revocation log, so that brokers hear
-- of them the way they hear of revocations. A kick names a client ID and has
-- an empty id.
ALTER TABLE revocations ADD COLUMN client_id text NOT NULL DEFAULT '';

-- ListClients: what each broker reported of its connections, shared by the
-- token-service replicas (a broker reports to whichever one it reaches).
CREATE TABLE client_brokers (
    broker_id   text PRIMARY KEY,
    instance_id text NOT NULL,
    seq         bigint NOT NULL,  -- its last report
    seen_ms     bigint NOT NULL
);
CREATE TABLE client_conns (
    broker_id   text NOT NULL REFERENCES client_brokers ON DELETE CASCADE,
    conn        bigint NOT NULL,
    instance_id text NOT NULL,
    client_id   text NOT NULL,
    remote      text NOT NULL,
    protocol    smallint NOT NULL,
    token_ids   text[] NOT NULL,
    since_ms    bigint NOT NULL,
    persistent  boolean NOT NULL,
    PRIMARY KEY (broker_id, conn)
);
CREATE INDEX client_conns_by_client ON client_conns (instance_id, client_id);
