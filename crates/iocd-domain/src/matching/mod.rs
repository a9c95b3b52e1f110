//! Defender's matching rules, implemented once: which indicator (if any) decides what happens
//! to a URL, domain, IP address, file or certificate. Pure: no I/O, no clock (the caller
//! passes `now`). The rules and every choice the docs leave open are in docs/compatibility.md
//! ("Matching").

mod index;
mod observable;
mod precedence;
mod request;

pub use index::{
    domain_suffixes, ChunkCursor, Decision, IndexRecord, IndexedIndicator, LayoutChanged,
    LayoutHold, MatchIndex, Verdict,
};
pub use observable::{FileHashes, Observable, UrlHost, UrlParts, OBSERVABLE_KINDS};
pub use precedence::{file_rank, is_blocking, network_rank};
pub use request::{parse_match_body, parse_match_query, MatchRequest, MAX_OBSERVABLES};
