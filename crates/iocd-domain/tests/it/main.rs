//! iocd-domain integration tests: the match rules against the semantic table and a brute-force
//! scan.

mod matching;
