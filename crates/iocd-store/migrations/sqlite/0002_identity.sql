-- App registrations: who may obtain tokens, in which tenant, with which application roles.
-- Client ids are unique across tenants, like Entra's appId. Times are i64 ticks of 100 ns.
CREATE TABLE apps (
    client_id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    -- The app's service-principal object id (the token's `oid` and `sub`).
    object_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- An argon2id PHC string; the secret itself is never stored.
    secret_hash TEXT NOT NULL,
    -- A JSON array of role names such as "Ti.ReadWrite.All".
    roles TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX apps_tenant ON apps (tenant_id);

-- The key iocd signs its access tokens with. One row per slot ('active'); replicas starting
-- together insert-if-absent and read back, so they all end up with the same key.
CREATE TABLE signing_keys (
    slot TEXT PRIMARY KEY NOT NULL,
    kid TEXT NOT NULL,
    -- PKCS#8 PEM: secret material, as sensitive as the database itself.
    private_key_pem TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- One-time set-up steps (such as creating the development app), claimed by exactly one server.
CREATE TABLE identity_bootstrap (
    step TEXT PRIMARY KEY NOT NULL,
    done_at INTEGER NOT NULL
);
