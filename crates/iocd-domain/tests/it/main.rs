//! iocd-domain integration tests: the match rules against the semantic table and a brute-force
//! scan; property tests over the submission parser and value normalisation.

mod matching;
mod properties;
