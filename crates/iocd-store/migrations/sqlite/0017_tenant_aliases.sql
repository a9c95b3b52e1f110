-- Domain names a tenant also goes by in authority URLs (`iocd tenants alias`), as Entra
-- accepts https://login.microsoftonline.com/contoso.onmicrosoft.com for the tenant's id.
-- Domains are stored in lower case and belong to one tenant.
CREATE TABLE tenant_aliases (
    domain TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX tenant_aliases_tenant ON tenant_aliases (tenant_id);
