//! iocd-tls's integration tests: the local CA over a real store on either backend, and the
//! certificates it mints checked by rustls's own verifier.

mod authority;
