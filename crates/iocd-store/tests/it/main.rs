//! iocd-store integration tests: the stores against real SQLite and PostgreSQL databases.

mod list_plan;
mod sweeper;
