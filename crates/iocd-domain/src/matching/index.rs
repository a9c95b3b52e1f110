//! The in-memory match index of one tenant, and the decision it gives for an observable.
//!
//! Layout, chosen to stay near 64 bytes per indicator at a million indicators:
//! * one record per indicator in a byte arena (`records`): a 30-byte header (what a decision
//!   needs: id, expiry, device groups, action...) and then the key. Addresses are kept as raw
//!   bytes, hashes and thumbprints as their normalised (lower-case hex) text, domains as text,
//!   URLs as `host path`. Hashes stay text so that a lookup hashes the observable's own text:
//!   decoding its hex cost more than the rest of the lookup (a profile of the benchmark), for
//!   about 10 bytes per indicator more at the benchmark's mix. The header sits beside its key
//!   so that a hit reads one place in memory after the table: with the header in a slab of its
//!   own, a hit was four dependent cache misses (table control bytes, table slot, slab, key)
//!   where a plain hash set of the keys has three;
//! * one hash table of record offsets per key kind (exact sets: SHA-256, SHA-1, MD5,
//!   thumbprint, IP; domains; URLs), several indicators of one key sharing a hash;
//! * removed records stay in the arena as garbage until it outweighs the live ones; then the
//!   arena is compacted and the tables refilled, unless a feed is reading it in chunks
//!   ([`MatchIndex::hold_layout`]): a feed's place is an offset, which compaction would move;
//! * for URLs, the hashes of the hosts that have URL indicators, so the path prefixes of a
//!   URL are probed only when its host has any (host, then path prefix);
//! * for domains, the name is probed label by label, longest suffix first: the same walk a
//!   reversed-label trie makes, one probe per label, without a node per label.

use std::cmp::Reverse;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use super::observable::{FileHashes, Observable, UrlHost, UrlParts};
use super::precedence::{file_rank, network_rank};
use crate::enums::{Action, IndicatorType, Severity};
use crate::indicator::Indicator;
use crate::time::{to_ticks, Timestamp};

/// What the index keeps of an indicator.
#[derive(Debug, Clone, Copy)]
pub struct IndexRecord<'a> {
    pub id: i64,
    pub indicator_type: IndicatorType,
    /// The normalised value (the upsert key's value).
    pub value_key: &'a str,
    pub action: Action,
    pub severity: Severity,
    pub expiration_time: Option<Timestamp>,
    pub last_update_time: Timestamp,
    pub rbac_group_names: &'a [String],
}

impl<'a> From<&'a Indicator> for IndexRecord<'a> {
    fn from(i: &'a Indicator) -> Self {
        IndexRecord {
            id: i.id,
            indicator_type: i.indicator_type,
            value_key: &i.value_key,
            action: i.action,
            severity: i.severity,
            expiration_time: i.expiration_time,
            last_update_time: i.last_update_time,
            rbac_group_names: &i.rbac_group_names,
        }
    }
}

/// The key kinds, one table each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Sha256,
    Sha1,
    Md5,
    Certificate,
    Ip,
    Domain,
    Url,
}

const KIND_COUNT: usize = 7;

impl KeyKind {
    /// In declaration order: a record keeps its kind as an index into this.
    const ALL: [KeyKind; KIND_COUNT] = [
        KeyKind::Sha256,
        KeyKind::Sha1,
        KeyKind::Md5,
        KeyKind::Certificate,
        KeyKind::Ip,
        KeyKind::Domain,
        KeyKind::Url,
    ];

    fn of(ty: IndicatorType) -> KeyKind {
        match ty {
            IndicatorType::FileSha256 => KeyKind::Sha256,
            IndicatorType::FileSha1 => KeyKind::Sha1,
            IndicatorType::FileMd5 => KeyKind::Md5,
            IndicatorType::CertificateThumbprint => KeyKind::Certificate,
            IndicatorType::IpAddress => KeyKind::Ip,
            IndicatorType::DomainName => KeyKind::Domain,
            IndicatorType::Url => KeyKind::Url,
        }
    }

    fn indicator_type(self) -> IndicatorType {
        match self {
            KeyKind::Sha256 => IndicatorType::FileSha256,
            KeyKind::Sha1 => IndicatorType::FileSha1,
            KeyKind::Md5 => IndicatorType::FileMd5,
            KeyKind::Certificate => IndicatorType::CertificateThumbprint,
            KeyKind::Ip => IndicatorType::IpAddress,
            KeyKind::Domain => IndicatorType::DomainName,
            KeyKind::Url => IndicatorType::Url,
        }
    }
}

/// Expiry "never" in ticks.
const NEVER: i64 = i64::MAX;
/// Group set 0 is "all devices" (no `rbacGroupNames`).
const ALL_DEVICES: u32 = 0;

/// One indicator, as its record's header holds it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: i64,
    /// Expiry in ticks ([`to_ticks`]); [`NEVER`] when none.
    expires: i64,
    /// Index into `group_sets`.
    groups: u32,
    /// Seconds since the Unix epoch of `lastUpdateTime` (recency for feeds' `max=`).
    updated_secs: u32,
    kind: KeyKind,
    action: Action,
    severity: Severity,
    live: bool,
}

/// A record: `id` (8 bytes), `expires` (8), `groups` (4), `updated_secs` (4), `kind`,
/// `action`, `severity` and `live` (a byte each, `kind`, `action` and `severity` as indexes
/// into their `ALL`), the key's length (2), then the key. Little-endian, unaligned.
const HEADER: usize = 30;
const KIND_AT: usize = 24;
const LIVE_AT: usize = 27;
const LEN_AT: usize = 28;

fn field<const N: usize>(records: &[u8], at: usize) -> [u8; N] {
    records[at..at + N].try_into().expect("N bytes")
}

impl Entry {
    fn active(&self, now_ticks: i64) -> bool {
        self.live && self.expires > now_ticks
    }

    fn read(records: &[u8], at: u32) -> Entry {
        let at = at as usize;
        Entry {
            id: i64::from_le_bytes(field(records, at)),
            expires: i64::from_le_bytes(field(records, at + 8)),
            groups: u32::from_le_bytes(field(records, at + 16)),
            updated_secs: u32::from_le_bytes(field(records, at + 20)),
            kind: KeyKind::ALL[records[at + KIND_AT] as usize],
            action: Action::ALL[records[at + 25] as usize],
            severity: Severity::ALL[records[at + 26] as usize],
            live: records[at + LIVE_AT] != 0,
        }
    }

    /// The header's bytes but the key's length.
    fn write(&self, header: &mut [u8]) {
        header[0..8].copy_from_slice(&self.id.to_le_bytes());
        header[8..16].copy_from_slice(&self.expires.to_le_bytes());
        header[16..20].copy_from_slice(&self.groups.to_le_bytes());
        header[20..24].copy_from_slice(&self.updated_secs.to_le_bytes());
        header[KIND_AT] = self.kind as u8;
        header[25] = self.action as u8;
        header[26] = self.severity as u8;
        header[LIVE_AT] = u8::from(self.live);
    }
}

fn record_id(records: &[u8], at: u32) -> i64 {
    i64::from_le_bytes(field(records, at as usize))
}

/// The key of the record at `at`.
fn record_key(records: &[u8], at: u32) -> &[u8] {
    let at = at as usize;
    let len = u16::from_le_bytes(field(records, at + LEN_AT)) as usize;
    &records[at + HEADER..at + HEADER + len]
}

/// The bytes the record at `at` takes, header included.
fn record_len(records: &[u8], at: usize) -> usize {
    HEADER + u16::from_le_bytes(field(records, at + LEN_AT)) as usize
}

/// The offsets of the records from `from` (a record's offset) to the end, live or removed, in
/// arena order: every walk of the arena (feeds, expiry, removal by id, compaction).
fn record_offsets(records: &[u8], from: usize) -> impl Iterator<Item = usize> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        (at < records.len()).then(|| {
            let this = at;
            at += record_len(records, at);
            this
        })
    })
}

/// Where a feed reading the index in chunks is: an offset into the arena of one layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCursor {
    layout: u64,
    at: usize,
}

/// The index's layout changed under a feed reading it in chunks (the tenant's index was
/// rebuilt): its place means nothing any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutChanged;

impl std::fmt::Display for LayoutChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the match index was rebuilt while a feed was reading it")
    }
}

impl std::error::Error for LayoutChanged {}

/// While alive, the index it came from does not move its records ([`MatchIndex::hold_layout`]).
#[derive(Debug)]
pub struct LayoutHold(Arc<AtomicUsize>);

impl Drop for LayoutHold {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AtomicOrdering::AcqRel);
    }
}

/// Layouts are numbered across all indexes, so a cursor of a rebuilt index is never taken for
/// one of its successor.
static NEXT_LAYOUT: AtomicU64 = AtomicU64::new(1);

fn next_layout() -> u64 {
    NEXT_LAYOUT.fetch_add(1, AtomicOrdering::Relaxed)
}

/// Which indicator decides an observable, found without allocating: what in-process callers
/// (feeds, the benchmark) need. [`MatchIndex::explain`] turns it into a [`Decision`] with its
/// reason, which costs more than the lookup itself (the value's text and a sentence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub id: i64,
    pub action: Action,
    pub indicator_type: IndicatorType,
    slot: u32,
    via: Via,
    /// The actions of the other indicators applicable on the same key (usually none: no
    /// allocation then).
    others: Vec<Action>,
}

/// How the deciding key was reached from the observable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    UrlPrefix,
    Domain,
    Ip,
    File,
    Certificate,
}

/// Why an indicator decided, for the match API's `reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub id: i64,
    pub action: Action,
    pub indicator_type: IndicatorType,
    pub reason: String,
}

/// One indexed indicator, as feeds read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedIndicator<'a> {
    pub id: i64,
    pub indicator_type: IndicatorType,
    /// The normalised value; URLs without their scheme (`host/path`).
    pub value: String,
    pub action: Action,
    pub severity: Severity,
    pub expires_ticks: Option<i64>,
    pub updated_secs: u32,
    pub rbac_group_names: &'a [Box<str>],
    /// The record's offset.
    slot: u32,
}

/// A tenant's match index. See the module documentation for the layout.
pub struct MatchIndex {
    /// The records, one per indicator ever indexed since the last compaction.
    records: Vec<u8>,
    /// Bytes of removed records; compacted away once they outweigh the live ones.
    garbage: usize,
    /// Numbers this arrangement of `records`; a compaction gives a new one.
    layout: u64,
    /// Feeds reading in chunks ([`LayoutHold`]s alive); compaction waits for none.
    layout_holds: Arc<AtomicUsize>,
    tables: [HashTable<u32>; KIND_COUNT],
    /// Host hash → number of URL indicators on that host.
    url_hosts: HashMap<u64, u32>,
    group_sets: Vec<Box<[Box<str>]>>,
    group_set_ids: HashMap<Box<[Box<str>]>, u32>,
    hasher: DefaultHashBuilder,
    live: usize,
}

impl Default for MatchIndex {
    fn default() -> Self {
        MatchIndex::new()
    }
}

/// A key's bytes as the index stores them. `None` when the value is not a valid key of its
/// type (the store holds only validated values, so this is a corrupt row, skipped).
fn encode_key(ty: IndicatorType, value_key: &str) -> Option<(KeyKind, Vec<u8>)> {
    let kind = KeyKind::of(ty);
    let bytes = match kind {
        KeyKind::Sha256 | KeyKind::Sha1 | KeyKind::Md5 | KeyKind::Certificate => {
            value_key.as_bytes().to_vec()
        }
        KeyKind::Ip => ip_bytes(value_key.parse().ok()?).to_vec(),
        KeyKind::Domain => value_key.as_bytes().to_vec(),
        KeyKind::Url => UrlParts::of_canonical(value_key)?.key_text().into_bytes(),
    };
    (bytes.len() <= u16::MAX as usize).then_some((kind, bytes))
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn key_text(kind: KeyKind, key: &[u8]) -> String {
    match kind {
        KeyKind::Sha256 | KeyKind::Sha1 | KeyKind::Md5 | KeyKind::Certificate => {
            String::from_utf8_lossy(key).into_owned()
        }
        KeyKind::Ip => {
            let octets: [u8; 16] = key.try_into().expect("addresses are 16 bytes");
            Ipv6Addr::from(octets).to_canonical().to_string()
        }
        KeyKind::Domain => String::from_utf8_lossy(key).into_owned(),
        KeyKind::Url => String::from_utf8_lossy(key).replacen(' ', "", 1),
    }
}

/// The names a domain indicator may have to cover `name`, longest first: the name itself, then
/// each parent that still has a dot (a top-level label alone is never an indicator's key).
pub fn domain_suffixes(name: &str) -> impl Iterator<Item = &str> {
    std::iter::once(name)
        .chain(name.match_indices('.').map(|(i, _)| &name[i + 1..]))
        .filter(|s| s.contains('.'))
}

/// The best applicable indicator at one level, and what else applied there.
struct Level {
    /// The record's offset, and its entry.
    best: u32,
    entry: Entry,
    others: Vec<Action>,
}

impl MatchIndex {
    pub fn new() -> MatchIndex {
        MatchIndex {
            records: Vec::new(),
            garbage: 0,
            layout: next_layout(),
            layout_holds: Arc::new(AtomicUsize::new(0)),
            tables: Default::default(),
            url_hosts: HashMap::new(),
            group_sets: vec![Box::default()],
            group_set_ids: HashMap::new(),
            hasher: DefaultHashBuilder::default(),
            live: 0,
        }
    }

    /// Indicators indexed (expired ones included until they are removed).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Gives back the spare capacity the growth of a bulk load left (a loaded tenant's arena
    /// may hold up to twice what it uses); later upserts grow it again as needed.
    pub fn shrink_to_fit(&mut self) {
        self.records.shrink_to_fit();
        let Self {
            records,
            tables,
            hasher,
            ..
        } = self;
        for table in tables {
            table.shrink_to_fit(|&at| hasher.hash_one(record_key(records, at)));
        }
    }

    /// Heap bytes the index holds (its allocations' capacities).
    pub fn heap_bytes(&self) -> usize {
        let table_bytes: usize = self
            .tables
            .iter()
            .map(|t| bucket_count(t.capacity()) * (std::mem::size_of::<u32>() + 1))
            .sum();
        let hosts =
            bucket_count(self.url_hosts.capacity()) * (std::mem::size_of::<(u64, u32)>() + 1);
        let groups: usize = self
            .group_sets
            .iter()
            .map(|g| g.iter().map(|n| n.len() + 16).sum::<usize>() * 2 + 32)
            .sum();
        self.records.capacity() + table_bytes + hosts + groups
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn host_hash(&self, url_key: &[u8]) -> u64 {
        let host = url_key.split(|b| *b == b' ').next().unwrap_or_default();
        self.hasher.hash_one((b'h', host))
    }

    fn intern_groups(&mut self, names: &[String]) -> u32 {
        if names.is_empty() {
            return ALL_DEVICES;
        }
        let mut set: Vec<Box<str>> = names
            .iter()
            .map(|n| n.trim().to_lowercase().into_boxed_str())
            .collect();
        set.sort_unstable();
        set.dedup();
        let set = set.into_boxed_slice();
        if let Some(id) = self.group_set_ids.get(&set) {
            return *id;
        }
        let id = self.group_sets.len() as u32;
        self.group_sets.push(set.clone());
        self.group_set_ids.insert(set, id);
        id
    }

    fn applies(&self, entry: &Entry, device_group: Option<&str>) -> bool {
        entry.groups == ALL_DEVICES
            || device_group.is_some_and(|g| {
                let g = g.trim();
                self.group_sets[entry.groups as usize]
                    .iter()
                    .any(|name| name.eq_ignore_ascii_case(g))
            })
    }

    /// Adds an indicator, or updates the one with the same id and key in place. Returns
    /// `false` (and indexes nothing) for a value that is not a valid key of its type.
    pub fn upsert(&mut self, record: &IndexRecord<'_>) -> bool {
        let Some((kind, key)) = encode_key(record.indicator_type, record.value_key) else {
            return false;
        };
        let groups = self.intern_groups(record.rbac_group_names);
        let hash = self.hash(&key);
        let entry = Entry {
            id: record.id,
            expires: record.expiration_time.map_or(NEVER, to_ticks),
            groups,
            updated_secs: record
                .last_update_time
                .timestamp()
                .clamp(0, u32::MAX as i64) as u32,
            kind,
            action: record.action,
            severity: record.severity,
            live: true,
        };
        let Self {
            records, tables, ..
        } = self;
        let existing = tables[kind as usize]
            .find(hash, |&at| {
                record_key(records, at) == key.as_slice() && record_id(records, at) == record.id
            })
            .copied();
        if let Some(at) = existing {
            entry.write(&mut records[at as usize..at as usize + HEADER]);
            return true;
        }
        // Offsets are 32 bits: four GiB of one tenant's keys (some 40 million indicators).
        let Ok(at) = u32::try_from(self.records.len()) else {
            return false;
        };
        let mut header = [0u8; HEADER];
        entry.write(&mut header);
        header[LEN_AT..].copy_from_slice(&(key.len() as u16).to_le_bytes());
        self.records.extend_from_slice(&header);
        self.records.extend_from_slice(&key);
        let Self {
            records,
            tables,
            hasher,
            ..
        } = self;
        tables[kind as usize].insert_unique(hash, at, |&a| hasher.hash_one(record_key(records, a)));
        if kind == KeyKind::Url {
            *self.url_hosts.entry(self.host_hash(&key)).or_default() += 1;
        }
        self.live += 1;
        true
    }

    /// Removes the indicator `id` of that type and value; `false` if it was not indexed.
    pub fn remove(&mut self, id: i64, ty: IndicatorType, value_key: &str) -> bool {
        let Some((kind, key)) = encode_key(ty, value_key) else {
            return false;
        };
        let hash = self.hash(&key);
        let Self {
            records, tables, ..
        } = self;
        let Ok(found) = tables[kind as usize].find_entry(hash, |&at| {
            record_key(records, at) == key.as_slice() && record_id(records, at) == id
        }) else {
            return false;
        };
        let (at, _) = found.remove();
        self.forget(at, kind, &key);
        self.compact_if_worth_it();
        true
    }

    /// The offsets of every record, live or removed, in arena order.
    fn offsets(&self) -> impl Iterator<Item = u32> + '_ {
        record_offsets(&self.records, 0).map(|at| at as u32)
    }

    /// How many indexed indicators are expired at `now`, and the latest of their expiry
    /// instants: what changes a feed between two change-log entries (an expiry takes effect at
    /// its instant; the sweeper logs it later). One pass over the arena.
    pub fn expired_at(&self, now: Timestamp) -> (usize, Option<Timestamp>) {
        let now = to_ticks(now);
        let (count, latest) = self
            .offsets()
            .map(|at| Entry::read(&self.records, at))
            .filter(|e| e.live && e.expires <= now)
            .fold((0, i64::MIN), |(n, latest), e| {
                (n + 1, latest.max(e.expires))
            });
        (count, (count > 0).then(|| crate::time::from_ticks(latest)))
    }

    /// Removes every indicator whose id `keep` refuses, in one pass over the arena; returns
    /// how many were removed. For deletes known only by id (or found missing from the store).
    pub fn retain_ids(&mut self, mut keep: impl FnMut(i64) -> bool) -> usize {
        let doomed: Vec<(u32, KeyKind, Vec<u8>)> = self
            .offsets()
            .map(|at| (at, Entry::read(&self.records, at)))
            .filter(|(_, e)| e.live && !keep(e.id))
            .map(|(at, e)| (at, e.kind, record_key(&self.records, at).to_vec()))
            .collect();
        // Offsets hold until the end of the loop: compaction waits for it.
        for (at, kind, key) in &doomed {
            let hash = self.hash(key);
            if let Ok(found) = self.tables[*kind as usize].find_entry(hash, |a| a == at) {
                found.remove();
            }
            self.forget(*at, *kind, key);
        }
        self.compact_if_worth_it();
        doomed.len()
    }

    /// Marks a record already taken out of its table as removed.
    fn forget(&mut self, at: u32, kind: KeyKind, key: &[u8]) {
        self.records[at as usize + LIVE_AT] = 0;
        self.garbage += HEADER + key.len();
        self.live -= 1;
        if kind == KeyKind::Url {
            let host = self.host_hash(key);
            if let hashbrown::hash_map::Entry::Occupied(mut count) = self.url_hosts.entry(host) {
                *count.get_mut() -= 1;
                if *count.get() == 0 {
                    count.remove();
                }
            }
        }
    }

    /// Compacts the arena once removed records outweigh the live ones (and a mebibyte), unless
    /// a feed holds the layout: then the next removal after it tries again.
    fn compact_if_worth_it(&mut self) {
        if self.garbage > 1 << 20
            && self.garbage > self.records.len() / 2
            && self.layout_holds.load(AtomicOrdering::Acquire) == 0
        {
            self.compact();
        }
    }

    /// Copies the live records into a fresh arena, in their order, and refills the tables
    /// with their new offsets (the tables keep their capacity).
    fn compact(&mut self) {
        let mut fresh = Vec::with_capacity(self.records.len() - self.garbage);
        for table in &mut self.tables {
            table.clear();
        }
        let Self {
            records,
            tables,
            hasher,
            ..
        } = self;
        for at in record_offsets(records, 0) {
            if records[at + LIVE_AT] != 0 {
                let new_at = fresh.len() as u32;
                let record = &records[at..at + record_len(records, at)];
                fresh.extend_from_slice(record);
                let kind = record[KIND_AT] as usize;
                let hash = hasher.hash_one(&record[HEADER..]);
                tables[kind]
                    .insert_unique(hash, new_at, |&a| hasher.hash_one(record_key(&fresh, a)));
            }
        }
        self.records = fresh;
        self.garbage = 0;
        self.layout = next_layout();
    }

    /// Keeps the records where they are until the hold is dropped: for a feed reading the
    /// index in chunks, between which the index changes.
    pub fn hold_layout(&self) -> LayoutHold {
        self.layout_holds.fetch_add(1, AtomicOrdering::AcqRel);
        LayoutHold(self.layout_holds.clone())
    }

    /// The best indicator applicable at one key, under `better` (greater wins), if any.
    fn best_at<K: Ord>(
        &self,
        kind: KeyKind,
        key: &[u8],
        device_group: Option<&str>,
        now_ticks: i64,
        better: impl Fn(&Entry) -> K,
    ) -> Option<Level> {
        let hash = self.hash(key);
        let mut level: Option<Level> = None;
        for &at in self.tables[kind as usize].iter_hash(hash) {
            if record_key(&self.records, at) != key {
                continue;
            }
            let e = Entry::read(&self.records, at);
            if !e.active(now_ticks) || !self.applies(&e, device_group) {
                continue;
            }
            match &mut level {
                None => {
                    level = Some(Level {
                        best: at,
                        entry: e,
                        others: Vec::new(),
                    })
                }
                Some(level) => {
                    if better(&e) > better(&level.entry) {
                        level.others.push(level.entry.action);
                        level.best = at;
                        level.entry = e;
                    } else {
                        level.others.push(e.action);
                    }
                }
            }
        }
        level
    }

    fn network_level(
        &self,
        kind: KeyKind,
        key: &[u8],
        group: Option<&str>,
        now: i64,
    ) -> Option<Level> {
        self.best_at(kind, key, group, now, |e| {
            (network_rank(e.action), Reverse(e.id))
        })
    }

    fn file_level(
        &self,
        kind: KeyKind,
        key: &[u8],
        group: Option<&str>,
        now: i64,
    ) -> Option<Level> {
        self.best_at(kind, key, group, now, |e| {
            (e.groups != ALL_DEVICES, file_rank(e.action), Reverse(e.id))
        })
    }

    fn verdict_of(&self, level: Level, via: Via) -> Verdict {
        let e = level.entry;
        Verdict {
            id: e.id,
            action: e.action,
            indicator_type: e.kind.indicator_type(),
            slot: level.best,
            via,
            others: level.others,
        }
    }

    /// The [`Decision`] of `verdict`, found for `observable` by [`MatchIndex::verdict`]: the
    /// reason names the key that decided, how it covers the observable, and what it overruled.
    pub fn explain(&self, verdict: Verdict, observable: &Observable) -> Decision {
        let e = Entry::read(&self.records, verdict.slot);
        let value = key_text(e.kind, record_key(&self.records, verdict.slot));
        let observed: std::borrow::Cow<str> = match observable {
            Observable::Url(canonical, _) => canonical.into(),
            Observable::Domain(name) => name.into(),
            Observable::Ip(ip) => ip.to_string().into(),
            Observable::File(_) | Observable::CertificateThumbprint(_) => "".into(),
        };
        let mut reason = match verdict.via {
            Via::UrlPrefix => format!("URL prefix {value} matched {observed}"),
            Via::Domain if value == observed => format!("domain {value} matched"),
            Via::Domain => format!("domain suffix {value} matched {observed}"),
            Via::Ip if value == observed => format!("IP address {value} matched"),
            Via::Ip => format!("IP address {value} matched {observed}"),
            Via::File => format!("{} {value} matched", verdict.indicator_type),
            Via::Certificate => format!("certificate thumbprint {value} matched"),
        };
        if !verdict.others.is_empty() {
            let mut others: Vec<&str> = verdict.others.iter().map(|a| a.as_str()).collect();
            others.sort_unstable();
            others.dedup();
            let scope = if e.groups != ALL_DEVICES {
                ", device-group scoped"
            } else {
                ""
            };
            reason.push_str(&format!(
                " ({} decides over {} on the same key{scope})",
                e.action,
                others.join(", ")
            ));
        }
        Decision {
            id: verdict.id,
            action: verdict.action,
            indicator_type: verdict.indicator_type,
            reason,
        }
    }

    /// Defender's answer for `observable` on a device of `device_group` (`None`: a device in
    /// no group, to which only all-devices indicators apply) at `now`: the deciding
    /// indicator, or `None` when nothing applies.
    pub fn decide(
        &self,
        observable: &Observable,
        device_group: Option<&str>,
        now: Timestamp,
    ) -> Option<Decision> {
        let verdict = self.verdict(observable, device_group, now)?;
        Some(self.explain(verdict, observable))
    }

    /// [`MatchIndex::decide`] without the reason: which indicator decides, if any.
    pub fn verdict(
        &self,
        observable: &Observable,
        device_group: Option<&str>,
        now: Timestamp,
    ) -> Option<Verdict> {
        let now = to_ticks(now);
        match observable {
            Observable::Url(_, parts) => self.decide_url(parts, device_group, now),
            Observable::Domain(name) => self.decide_domain(name, device_group, now),
            Observable::Ip(ip) => self.decide_ip(*ip, device_group, now),
            Observable::File(hashes) => self.decide_file(hashes, device_group, now),
            Observable::CertificateThumbprint(thumbprint) => {
                let key = thumbprint.as_bytes();
                let level = self.file_level(KeyKind::Certificate, key, device_group, now)?;
                Some(self.verdict_of(level, Via::Certificate))
            }
        }
    }

    fn decide_url(&self, parts: &UrlParts, group: Option<&str>, now: i64) -> Option<Verdict> {
        // Only a URL whose host has URL indicators has its path prefixes probed; the host part
        // of the key is written once and each prefix replaces the rest. The key is built on the
        // stack when it fits: this runs for every URL looked up.
        let host: std::borrow::Cow<str> = match &parts.host {
            UrlHost::Domain(name) => name.as_str().into(),
            UrlHost::Ip(_) => parts.host.key_text().into(),
        };
        if self
            .url_hosts
            .contains_key(&self.host_hash(host.as_bytes()))
        {
            let mut on_stack = [0u8; 512];
            let mut on_heap = Vec::new();
            let longest = host.len() + 1 + parts.path.len();
            let key: &mut [u8] = if longest <= on_stack.len() {
                &mut on_stack
            } else {
                on_heap.resize(longest, 0);
                &mut on_heap
            };
            let host_len = host.len() + 1;
            key[..host.len()].copy_from_slice(host.as_bytes());
            key[host.len()] = b' ';
            let found = parts.find_covering_prefix(|prefix| {
                let end = host_len + prefix.len();
                key[host_len..end].copy_from_slice(prefix.as_bytes());
                self.network_level(KeyKind::Url, &key[..end], group, now)
            });
            if let Some(level) = found {
                return Some(self.verdict_of(level, Via::UrlPrefix));
            }
        }
        match &parts.host {
            UrlHost::Domain(name) => self.decide_domain(name, group, now),
            UrlHost::Ip(ip) => self.decide_ip(*ip, group, now),
        }
    }

    fn decide_domain(&self, name: &str, group: Option<&str>, now: i64) -> Option<Verdict> {
        domain_suffixes(name).find_map(|suffix| {
            let level = self.network_level(KeyKind::Domain, suffix.as_bytes(), group, now)?;
            Some(self.verdict_of(level, Via::Domain))
        })
    }

    fn decide_ip(&self, ip: IpAddr, group: Option<&str>, now: i64) -> Option<Verdict> {
        let level = self.network_level(KeyKind::Ip, &ip_bytes(ip), group, now)?;
        Some(self.verdict_of(level, Via::Ip))
    }

    fn decide_file(&self, hashes: &FileHashes, group: Option<&str>, now: i64) -> Option<Verdict> {
        hashes.strongest_first().find_map(|(ty, hash)| {
            let level = self.file_level(KeyKind::of(ty), hash.as_bytes(), group, now)?;
            Some(self.verdict_of(level, Via::File))
        })
    }

    /// Where a feed starts reading.
    pub fn first_chunk(&self) -> ChunkCursor {
        ChunkCursor {
            layout: self.layout,
            at: 0,
        }
    }

    /// The indexed indicators in arena order from `cursor`, at most `max` of them, with where
    /// to continue (`None` at the end). Feeds read in chunks so that a lock is held only for a
    /// chunk, and hold the layout ([`MatchIndex::hold_layout`]) meanwhile; a cursor of another
    /// layout (the tenant's index was rebuilt since) is refused.
    pub fn chunk(
        &self,
        cursor: ChunkCursor,
        max: usize,
    ) -> Result<(Vec<IndexedIndicator<'_>>, Option<ChunkCursor>), LayoutChanged> {
        if cursor.layout != self.layout {
            return Err(LayoutChanged);
        }
        let mut out = Vec::with_capacity(max.min(self.live));
        let mut next = None;
        for at in record_offsets(&self.records, cursor.at) {
            if out.len() == max {
                next = Some(ChunkCursor {
                    layout: self.layout,
                    at,
                });
                break;
            }
            let e = Entry::read(&self.records, at as u32);
            if e.live {
                out.push(IndexedIndicator {
                    id: e.id,
                    indicator_type: e.kind.indicator_type(),
                    value: key_text(e.kind, record_key(&self.records, at as u32)),
                    action: e.action,
                    severity: e.severity,
                    expires_ticks: (e.expires != NEVER).then_some(e.expires),
                    updated_secs: e.updated_secs,
                    rbac_group_names: &self.group_sets[e.groups as usize],
                    slot: at as u32,
                });
            }
        }
        Ok((out, next))
    }

    /// Whether `indicator` is what Defender would apply to its own value on a device of
    /// `device_group` at `now`: active, applicable, and not overruled by another indicator
    /// (an Allowed on the same key, a longer URL, ...). Feeds publish only such indicators,
    /// which also removes duplicates: one key has one decision.
    pub fn decides_own_value(
        &self,
        indicator: &IndexedIndicator<'_>,
        device_group: Option<&str>,
        now: Timestamp,
    ) -> bool {
        let key = record_key(&self.records, indicator.slot);
        let observable = match KeyKind::of(indicator.indicator_type) {
            KeyKind::Url => {
                let text = String::from_utf8_lossy(key).replacen(' ', "", 1);
                return self.decides_url(indicator.id, &text, device_group, now);
            }
            KeyKind::Domain => Observable::Domain(indicator.value.clone()),
            KeyKind::Ip => Observable::Ip(indicator.value.parse().expect("stored addresses parse")),
            KeyKind::Certificate => Observable::CertificateThumbprint(indicator.value.clone()),
            KeyKind::Sha256 => Observable::File(FileHashes {
                sha256: Some(indicator.value.clone()),
                ..Default::default()
            }),
            KeyKind::Sha1 => Observable::File(FileHashes {
                sha1: Some(indicator.value.clone()),
                ..Default::default()
            }),
            KeyKind::Md5 => Observable::File(FileHashes {
                md5: Some(indicator.value.clone()),
                ..Default::default()
            }),
        };
        self.verdict(&observable, device_group, now)
            .is_some_and(|d| d.id == indicator.id)
    }
}

impl MatchIndex {
    /// Whether indicator `id` is what Defender would apply to the URL `host_path` (no scheme,
    /// as feeds print URLs: `host/path`) on a device of `device_group` at `now`.
    pub fn decides_url(
        &self,
        id: i64,
        host_path: &str,
        device_group: Option<&str>,
        now: Timestamp,
    ) -> bool {
        let Some(slash) = host_path.find('/') else {
            return false;
        };
        let (host, path) = host_path.split_at(slash);
        let host = match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => UrlHost::Ip(ip),
            Err(_) => UrlHost::Domain(host.to_string()),
        };
        let parts = UrlParts {
            host,
            path: path.to_string(),
        };
        self.verdict(
            &Observable::Url(host_path.to_string(), parts),
            device_group,
            now,
        )
        .is_some_and(|d| d.id == id)
    }
}

/// Buckets hashbrown allocates for a table that can hold `capacity` items.
fn bucket_count(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    }
}
