-- iocd's local certificate authority: the key and self-signed certificate that sign the leaf
-- certificates of its HTTPS listener and of the Microsoft hosts it intercepts. One row per slot
-- ('active'); replicas starting together insert-if-absent and read back, so they all end up
-- with the same CA (as with signing_keys).
CREATE TABLE certificate_authority (
    slot TEXT PRIMARY KEY NOT NULL,
    certificate_pem TEXT NOT NULL,
    -- PKCS#8 PEM: secret material, as sensitive as the database itself.
    private_key_pem TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
