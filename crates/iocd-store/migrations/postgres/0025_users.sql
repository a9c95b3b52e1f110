-- People who sign in (delegated permissions), their sign-in artefacts, and public-client apps.
-- Times are i64 ticks of 100 ns, like every other table.

-- A user of a tenant. The UPN is unique per tenant, compared case-insensitively (upn_key is its
-- lowercase form), as Entra compares sign-in names.
CREATE TABLE users (
    object_id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    upn TEXT NOT NULL,
    upn_key TEXT NOT NULL,
    display_name TEXT NOT NULL,
    -- An argon2id PHC string; the password itself is never stored.
    password_hash TEXT NOT NULL,
    -- A JSON array of user role names such as "Iocd.Indicators.Manage".
    roles TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, upn_key)
);

-- Apps that are public clients (no secret: device code, PKCE, ROPC from scripts) and the
-- redirect URIs registered for the authorization-code flow of any app.
CREATE TABLE app_sign_in (
    client_id TEXT PRIMARY KEY NOT NULL,
    public_client BIGINT NOT NULL,
    -- A JSON array of absolute redirect URIs.
    redirect_uris TEXT NOT NULL
);

-- One-time sign-in artefacts, kept only as a SHA-256 of their value: refresh tokens,
-- authorization codes and device codes. A row is consumed (consumed_at set) when redeemed;
-- a second redemption of a consumed refresh token revokes its whole family.
CREATE TABLE sign_in_grants (
    value_hash TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    -- The signed-in user (empty for a device code nobody approved yet).
    user_object_id TEXT NOT NULL,
    -- The requested scope, as sent.
    scope TEXT NOT NULL,
    -- A JSON object of what the kind needs (PKCE challenge, redirect URI, nonce, user code,
    -- device-code status, refresh family).
    details TEXT NOT NULL,
    family TEXT NOT NULL,
    -- What a person types to find the row (a device code's user code), or NULL.
    lookup TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);

CREATE INDEX sign_in_grants_family ON sign_in_grants (family);
CREATE INDEX sign_in_grants_lookup ON sign_in_grants (lookup);
CREATE INDEX sign_in_grants_expiry ON sign_in_grants (expires_at);
