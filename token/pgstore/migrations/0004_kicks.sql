-- KickClient (SPEC §2.2): kicks share the revocation log, so that brokers hear
-- of them the way they hear of revocations. A kick names a client ID and has
-- an empty id.
ALTER TABLE revocations ADD COLUMN client_id text NOT NULL DEFAULT '';
