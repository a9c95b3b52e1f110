//! The indicator model of iocd, free of HTTP and SQL.
//!
//! * [`enums`]: the wire enums, spelled exactly as the Defender API spells them.
//! * [`time`]: timestamps as the API writes them and as the stores keep them.
//! * [`value`]: per-type validation and normalisation of `indicatorValue` (the upsert key).
//! * [`submission`]: turning a request body into a validated [`Submission`].
//! * [`indicator`]: the stored entity and the create / update-in-place rules.
//! * [`change`]: the change log's entries and which properties a change touched.
//! * [`matching`]: Defender's matching rules and the per-tenant in-memory match index.

pub mod change;
pub mod enums;
pub mod error;
pub mod feeds;
pub mod indicator;
pub mod matching;
pub mod search;
pub mod submission;
pub mod time;
pub mod value;

pub use change::{ChangeActor, ChangeEntry, ChangeKind, ChangeSource, PropertyChange};
pub use enums::{Action, IndicatorType, Severity};
pub use error::{ErrorCode, ValidationError};
pub use indicator::{Actor, Indicator};
pub use submission::{parse_submission, Patch, Submission};
