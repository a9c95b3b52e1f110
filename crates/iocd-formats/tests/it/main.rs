//! iocd-formats integration tests: importing and exporting portal CSV, JSON and STIX 2.1.

mod csv_import;
mod detect;
mod entities;
mod json_import;
mod round_trip;
mod stix_import;
