-- Key rotation (`iocd keys rotate`): the active key stays in slot 'active'; a rotated-out key
-- moves to slot 'retired:<kid>' with the time after which no token it signed can still be valid.
-- Until then it is published in the JWKS and accepted; after it, it is deleted.
ALTER TABLE signing_keys ADD COLUMN retire_at BIGINT;
