//! The `iocd` binary's integration tests: the real binary run as a child process
//! (`iocd_testkit::Iocd`), over scratch databases, spoken to over HTTP and through its own CLI.

mod backup;
mod cli;
mod config;
mod connections;
mod crash;
mod emulator;
mod import_export;
mod multi_replica;
mod serve_limits;
mod tls;
mod token_flood;
mod users;

/// The binary Cargo built for these tests.
fn iocd() -> iocd_testkit::Iocd {
    iocd_testkit::Iocd::new(env!("CARGO_BIN_EXE_iocd"))
}
