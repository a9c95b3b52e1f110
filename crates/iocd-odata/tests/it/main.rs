//! iocd-odata integration tests: parsing and compiling the query options, and the compiled SQL
//! run against real SQLite and PostgreSQL databases holding the same fixture rows.

mod compile;
mod fixtures;
mod postgres;
mod properties;
mod sqlite;
