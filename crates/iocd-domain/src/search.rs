//! The portal's search prefilter: which indicators' value or title contain a piece of text.
//!
//! A substring search (`contains(indicatorValue, t) or contains(title, t)`) cannot use an
//! ordinary index, so at a million indicators the database reads the whole tab (0.3 s on
//! SQLite) to find a term that few rows hold. A trigram index would serve it, but measured on
//! iocd's schema it halved the write throughput. This index answers the same question from
//! memory instead: every indicator's value and title, folded to lower case, in one arena that a
//! SIMD substring search (`memchr::memmem`) reads at several GB/s; one arena per indicator type,
//! so that a tab reads only its own types.
//!
//! The answer is a superset of what the database's `LIKE` / `ILIKE` finds (both sides are folded
//! character by character, so no case the database folds is missed here), and the caller still
//! runs the exact condition in SQL over the ids it gets: a false positive costs a row read, never
//! a wrong result.

use crate::IndicatorType;
use hashbrown::HashMap;

/// Bytes before a record's text: id (8), live (1), text length (4).
const HEADER: usize = 13;
const LIVE_AT: usize = 8;
const LEN_AT: usize = 9;
/// Between a value and its title, so that no term spans both (a term holding it finds nothing).
const SEPARATOR: char = '\u{1f}';
/// Garbage worth compacting away: more than this and more than half the arena.
const COMPACT_AFTER: usize = 1 << 20;

/// What a search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchHits {
    /// Every indicator that may match, in no particular order.
    Ids(Vec<i64>),
    /// More than the limit asked for: the caller should read the rows instead.
    TooMany,
}

/// The value and title of every indicator of a tenant, for substring search, one arena per
/// indicator type (a tab's search reads only its types). See the module documentation.
#[derive(Debug)]
pub struct TextIndex {
    by_type: Vec<TypeText>,
    /// The type (its place in [`IndicatorType::ALL`]) and record of each id.
    by_id: HashMap<i64, (u8, u32)>,
}

/// The records of one indicator type.
#[derive(Debug, Default)]
struct TypeText {
    /// Records, each `HEADER` bytes then its folded text, in the order they were written.
    arena: Vec<u8>,
    /// Where each record starts, ascending (a hit's record is found by binary search).
    starts: Vec<u32>,
    /// Bytes of records that were replaced or removed.
    garbage: usize,
}

/// Lower case, one character at a time (no context rules such as a final sigma), so that a
/// term folds the same way wherever it occurs in a text.
fn fold_into(out: &mut Vec<u8>, text: &str) {
    // Most values and titles are ASCII: fold them in one pass over the bytes.
    if text.is_ascii() {
        let start = out.len();
        out.extend_from_slice(text.as_bytes());
        out[start..].make_ascii_lowercase();
        return;
    }
    let mut buf = [0u8; 4];
    for c in text.chars().flat_map(char::to_lowercase) {
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

impl Default for TextIndex {
    fn default() -> Self {
        TextIndex {
            by_type: IndicatorType::ALL
                .iter()
                .map(|_| TypeText::default())
                .collect(),
            by_id: HashMap::new(),
        }
    }
}

impl TextIndex {
    pub fn new() -> TextIndex {
        TextIndex::default()
    }

    /// Indicators held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Bytes held (the arenas and the tables), for the figures.
    pub fn memory_bytes(&self) -> usize {
        let arenas: usize = self
            .by_type
            .iter()
            .map(|t| t.arena.capacity() + t.starts.capacity() * 4)
            .sum();
        arenas + self.by_id.capacity() * (std::mem::size_of::<(i64, (u8, u32))>() + 1)
    }

    /// Records (or replaces) indicator `id`'s type, value and title.
    pub fn upsert(&mut self, id: i64, indicator_type: IndicatorType, value: &str, title: &str) {
        let code = type_code(indicator_type);
        let text = &mut self.by_type[code as usize];
        let start = text.arena.len();
        let arena = &mut text.arena;
        arena.extend_from_slice(&id.to_le_bytes());
        arena.push(1);
        arena.extend_from_slice(&[0; 4]);
        fold_into(arena, value);
        let mut sep = [0u8; 4];
        arena.extend_from_slice(SEPARATOR.encode_utf8(&mut sep).as_bytes());
        fold_into(arena, title);
        let len = (arena.len() - start - HEADER) as u32;
        arena[start + LEN_AT..start + HEADER].copy_from_slice(&len.to_le_bytes());
        let start = u32::try_from(start).expect("a text arena stays under 4 GiB");
        text.starts.push(start);
        // One probe of the table: the insert hands back the record this one replaces, if any
        // (a load replaces none, and used to pay a second probe finding that out).
        if let Some((old_code, old_start)) = self.by_id.insert(id, (code, start)) {
            self.retire(old_code, old_start);
        }
    }

    /// Forgets indicator `id` (nothing if it is not held).
    pub fn remove(&mut self, id: i64) {
        if let Some((code, start)) = self.by_id.remove(&id) {
            self.retire(code, start);
        }
    }

    /// Marks a replaced or removed record dead, and compacts its arena once garbage is most of
    /// it. The record's id no longer points at it.
    fn retire(&mut self, code: u8, start: u32) {
        let text = &mut self.by_type[code as usize];
        let start = start as usize;
        text.arena[start + LIVE_AT] = 0;
        text.garbage += HEADER + text.text_len(start);
        if text.garbage > COMPACT_AFTER && text.garbage * 2 > text.arena.len() {
            text.compact(code, &mut self.by_id);
        }
    }

    /// The ids of indicators of one of `types` whose value or title may contain `term` (case
    /// folded), or [`SearchHits::TooMany`] once more than `limit` are found.
    pub fn search(&self, term: &str, types: &[IndicatorType], limit: usize) -> SearchHits {
        let mut needle = Vec::with_capacity(term.len());
        fold_into(&mut needle, term);
        let finder = memchr::memmem::Finder::new(&needle);
        let mut ids = Vec::new();
        for indicator_type in types {
            let text = &self.by_type[type_code(*indicator_type) as usize];
            if !text.find(&finder, limit, &mut ids) {
                return SearchHits::TooMany;
            }
        }
        SearchHits::Ids(ids)
    }

    /// Gives back the spare capacity of a load.
    pub fn shrink_to_fit(&mut self) {
        for text in &mut self.by_type {
            text.arena.shrink_to_fit();
            text.starts.shrink_to_fit();
        }
        self.by_id.shrink_to_fit();
    }
}

impl TypeText {
    fn text_len(&self, start: usize) -> usize {
        u32::from_le_bytes(
            self.arena[start + LEN_AT..start + HEADER]
                .try_into()
                .expect("4 bytes"),
        ) as usize
    }

    fn id(&self, start: usize) -> i64 {
        i64::from_le_bytes(self.arena[start..start + 8].try_into().expect("8 bytes"))
    }

    /// Adds the ids of the live records holding the needle to `ids`; `false` once `ids` would
    /// pass `limit`.
    fn find(&self, finder: &memchr::memmem::Finder<'_>, limit: usize, ids: &mut Vec<i64>) -> bool {
        let mut last_record = usize::MAX;
        let needle_len = finder.needle().len();
        for at in finder.find_iter(&self.arena) {
            let record = self.starts.partition_point(|&s| s as usize <= at) - 1;
            if record == last_record {
                continue;
            }
            let start = self.starts[record] as usize;
            let text = start + HEADER;
            // A hit in a header, or running past the text, is not one.
            if at < text || at + needle_len > text + self.text_len(start) {
                continue;
            }
            last_record = record;
            if self.arena[start + LIVE_AT] == 0 {
                continue;
            }
            if ids.len() == limit {
                return false;
            }
            ids.push(self.id(start));
        }
        true
    }

    /// Copies the live records into a new arena, in their order, and moves their ids there.
    fn compact(&mut self, code: u8, by_id: &mut HashMap<i64, (u8, u32)>) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        let mut starts = Vec::with_capacity(self.starts.len());
        for &start in &self.starts {
            let start = start as usize;
            if self.arena[start + LIVE_AT] == 0 {
                continue;
            }
            let end = start + HEADER + self.text_len(start);
            let moved = arena.len() as u32;
            arena.extend_from_slice(&self.arena[start..end]);
            starts.push(moved);
            by_id.insert(self.id(start), (code, moved));
        }
        self.arena = arena;
        self.starts = starts;
        self.garbage = 0;
    }
}

fn type_code(indicator_type: IndicatorType) -> u8 {
    IndicatorType::ALL
        .iter()
        .position(|t| *t == indicator_type)
        .expect("every type is in ALL") as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(hits: SearchHits) -> Vec<i64> {
        match hits {
            SearchHits::Ids(mut ids) => {
                ids.sort_unstable();
                ids
            }
            SearchHits::TooMany => panic!("too many"),
        }
    }

    const NETWORK: &[IndicatorType] = &[IndicatorType::DomainName, IndicatorType::Url];

    #[test]
    fn finds_a_term_in_values_and_titles_in_any_case() {
        let mut index = TextIndex::new();
        index.upsert(1, IndicatorType::DomainName, "Evil.Example", "Phishing kit");
        index.upsert(2, IndicatorType::Url, "https://a.example/EVIL", "");
        index.upsert(
            3,
            IndicatorType::DomainName,
            "good.example",
            "not evil at all",
        );
        index.upsert(4, IndicatorType::DomainName, "good.example.org", "benign");
        assert_eq!(ids(index.search("eViL", NETWORK, 10)), vec![1, 2, 3]);
        assert_eq!(ids(index.search("PHISH", NETWORK, 10)), vec![1]);
        assert_eq!(ids(index.search("nothing", NETWORK, 10)), Vec::<i64>::new());
        // Only the types asked for.
        assert_eq!(
            ids(index.search("evil", &[IndicatorType::Url], 10)),
            vec![2]
        );
    }

    #[test]
    fn a_term_never_spans_a_value_and_its_title_or_two_records() {
        let mut index = TextIndex::new();
        index.upsert(1, IndicatorType::DomainName, "abc.example", "def");
        index.upsert(2, IndicatorType::DomainName, "ghi.example", "jkl");
        assert_eq!(
            ids(index.search("exampledef", NETWORK, 10)),
            Vec::<i64>::new()
        );
        assert_eq!(ids(index.search("defghi", NETWORK, 10)), Vec::<i64>::new());
        assert_eq!(ids(index.search("def", NETWORK, 10)), vec![1]);
    }

    #[test]
    fn updates_and_removals_are_seen_and_compaction_keeps_the_rest() {
        let mut index = TextIndex::new();
        index.upsert(1, IndicatorType::DomainName, "one.example", "first");
        index.upsert(1, IndicatorType::DomainName, "one.example", "renamed");
        assert_eq!(ids(index.search("first", NETWORK, 10)), Vec::<i64>::new());
        assert_eq!(ids(index.search("renamed", NETWORK, 10)), vec![1]);
        // Enough churn to compact several times over.
        for round in 0..3 {
            for id in 2..20_000 {
                index.upsert(
                    id,
                    IndicatorType::Url,
                    &format!("https://x{id}.example/"),
                    "t",
                );
            }
            for id in 2..20_000 {
                if id % 7 != round {
                    index.remove(id);
                }
            }
        }
        let urls = &index.by_type[type_code(IndicatorType::Url) as usize];
        assert!(urls.garbage * 2 <= urls.arena.len() || urls.garbage <= COMPACT_AFTER);
        assert!(
            urls.arena.len() < 20_000 * 10,
            "compacted: {}",
            urls.arena.len()
        );
        assert_eq!(ids(index.search("renamed", NETWORK, 10)), vec![1]);
        // The last round kept the ids that leave 2 when divided by 7.
        assert_eq!(ids(index.search("//x16.example", NETWORK, 10)), vec![16]);
        assert_eq!(
            ids(index.search("//x14.example", NETWORK, 10)),
            Vec::<i64>::new()
        );
        assert_eq!(
            index.len(),
            1 + (2..20_000).filter(|id| id % 7 == 2).count()
        );
    }

    #[test]
    fn more_hits_than_the_limit_say_so() {
        let mut index = TextIndex::new();
        for id in 0..5 {
            index.upsert(id, IndicatorType::DomainName, &format!("d{id}.example"), "");
        }
        assert_eq!(index.search("example", NETWORK, 4), SearchHits::TooMany);
        assert_eq!(
            ids(index.search("example", NETWORK, 5)),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[test]
    fn ascii_and_other_text_fold_alike() {
        let mut ascii = Vec::new();
        fold_into(&mut ascii, "Evil.EXAMPLE/Path");
        assert_eq!(ascii, b"evil.example/path");
        let mut mixed = Vec::new();
        fold_into(&mut mixed, "Évil.EXAMPLE");
        assert_eq!(String::from_utf8(mixed).unwrap(), "évil.example");
    }

    #[test]
    fn folding_is_per_character_so_a_final_sigma_is_still_found() {
        let mut index = TextIndex::new();
        index.upsert(1, IndicatorType::DomainName, "x.example", "ΟΔΟΣ");
        assert_eq!(ids(index.search("Σ", NETWORK, 10)), vec![1]);
        assert_eq!(ids(index.search("οδοσ", NETWORK, 10)), vec![1]);
    }
}
