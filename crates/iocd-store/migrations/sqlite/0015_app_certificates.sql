-- Certificate credentials: the public certificates an app signs its client assertions with
-- (RFC 7523), found by the thumbprint in the assertion's header. An app may have several
-- certificates and a secret at once. Times are i64 ticks of 100 ns.
CREATE TABLE app_certificates (
    client_id TEXT NOT NULL REFERENCES apps (client_id) ON DELETE CASCADE,
    -- SHA-1 of the DER certificate, upper-case hex: the `x5t` and the portal's thumbprint.
    thumbprint TEXT NOT NULL,
    -- SHA-256 of the DER certificate, upper-case hex: the `x5t#S256`.
    thumbprint_sha256 TEXT NOT NULL,
    certificate_pem TEXT NOT NULL,
    not_after INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, thumbprint)
);

-- The `jti` of every client assertion accepted and not yet expired, so that an assertion is
-- used once, on whichever replica it arrives. Expired rows are pruned as new ones are added.
CREATE TABLE client_assertion_ids (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE INDEX client_assertion_ids_expiry ON client_assertion_ids (expires_at);
