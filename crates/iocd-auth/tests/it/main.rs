//! iocd-auth integration tests: issuing and validating tokens, and fetching keys over HTTP.

mod jwks_fetch;
mod token_properties;
mod tokens;
