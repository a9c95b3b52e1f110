//! The in-memory match index of one tenant, and the decision it gives for an observable.
//!
//! Layout, chosen to stay near 64 bytes per indicator at a million indicators:
//! * one 32-byte [`Entry`] per indicator in a slab (`entries`), reused through a free list;
//! * every key in one byte arena (`keys`): addresses as raw bytes, hashes and thumbprints as
//!   their normalised (lower-case hex) text, domains as text, URLs as `host path`, each behind
//!   a two-byte length. Hashes stay text so that a lookup hashes the observable's own text:
//!   decoding its hex cost more than the rest of the lookup (a profile of the benchmark),
//!   for about 10 bytes per indicator more at the benchmark's mix;
//! * one hash table of slab positions per key kind (exact sets: SHA-256, SHA-1, MD5,
//!   thumbprint, IP; domains; URLs), several indicators of one key sharing a hash;
//! * for URLs, the hashes of the hosts that have URL indicators, so the path prefixes of a
//!   URL are probed only when its host has any (host, then path prefix);
//! * for domains, the name is probed label by label, longest suffix first: the same walk a
//!   reversed-label trie makes, one probe per label, without a node per label.

use std::cmp::Reverse;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};

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

/// One indicator in the slab; 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: i64,
    /// Expiry in ticks ([`to_ticks`]); [`NEVER`] when none.
    expires: i64,
    /// Where the key starts in the arena.
    key_at: u32,
    /// Index into `group_sets`.
    groups: u32,
    /// Seconds since the Unix epoch of `lastUpdateTime` (recency for feeds' `max=`).
    updated_secs: u32,
    kind: KeyKind,
    action: Action,
    severity: Severity,
    live: bool,
}

impl Entry {
    fn active(&self, now_ticks: i64) -> bool {
        self.live && self.expires > now_ticks
    }
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
    slot: u32,
}

/// A tenant's match index. See the module documentation for the layout.
pub struct MatchIndex {
    entries: Vec<Entry>,
    free: Vec<u32>,
    keys: Vec<u8>,
    /// Arena bytes of removed keys; compacted away once they outweigh the live ones.
    garbage: usize,
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

/// The arena's bytes of the key at `at` (after its two-byte length).
fn key_at(keys: &[u8], at: u32) -> &[u8] {
    let at = at as usize;
    let len = u16::from_le_bytes([keys[at], keys[at + 1]]) as usize;
    &keys[at + 2..at + 2 + len]
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
    best: u32,
    others: Vec<Action>,
}

impl MatchIndex {
    pub fn new() -> MatchIndex {
        MatchIndex {
            entries: Vec::new(),
            free: Vec::new(),
            keys: Vec::new(),
            garbage: 0,
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
    /// and slab may hold up to twice what they use); later upserts grow them again as needed.
    pub fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        self.free.shrink_to_fit();
        self.keys.shrink_to_fit();
        // Taken out for the loop, so that the rehash can read the slab and arena.
        let mut tables = std::mem::take(&mut self.tables);
        for table in &mut tables {
            table
                .shrink_to_fit(|&s| self.hash(key_at(&self.keys, self.entries[s as usize].key_at)));
        }
        self.tables = tables;
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
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.free.capacity() * 4
            + self.keys.capacity()
            + table_bytes
            + hosts
            + groups
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
            key_at: 0,
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
            entries,
            keys,
            tables,
            ..
        } = self;
        let existing = tables[kind as usize]
            .find(hash, |&slot| {
                let e = &entries[slot as usize];
                e.id == record.id && key_at(keys, e.key_at) == key.as_slice()
            })
            .copied();
        if let Some(slot) = existing {
            let kept = &mut entries[slot as usize];
            *kept = Entry {
                key_at: kept.key_at,
                ..entry
            };
            return true;
        }
        let key_pos = self.keys.len() as u32;
        self.keys
            .extend_from_slice(&(key.len() as u16).to_le_bytes());
        self.keys.extend_from_slice(&key);
        let entry = Entry {
            key_at: key_pos,
            ..entry
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = entry;
                slot
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        let Self {
            entries,
            keys,
            tables,
            hasher,
            ..
        } = self;
        tables[kind as usize].insert_unique(hash, slot, |&s| {
            hasher.hash_one(key_at(keys, entries[s as usize].key_at))
        });
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
            entries,
            keys,
            tables,
            ..
        } = self;
        let Ok(found) = tables[kind as usize].find_entry(hash, |&slot| {
            let e = &entries[slot as usize];
            e.id == id && key_at(keys, e.key_at) == key.as_slice()
        }) else {
            return false;
        };
        let (slot, _) = found.remove();
        self.forget_slot(slot, kind, &key);
        true
    }

    /// How many indexed indicators are expired at `now`, and the latest of their expiry
    /// instants: what changes a feed between two change-log entries (an expiry takes effect at
    /// its instant; the sweeper logs it later). One pass over the slab.
    pub fn expired_at(&self, now: Timestamp) -> (usize, Option<Timestamp>) {
        let now = to_ticks(now);
        let (count, latest) = self
            .entries
            .iter()
            .filter(|e| e.live && e.expires <= now)
            .fold((0, i64::MIN), |(n, latest), e| {
                (n + 1, latest.max(e.expires))
            });
        (count, (count > 0).then(|| crate::time::from_ticks(latest)))
    }

    /// Removes every indicator whose id `keep` refuses, in one pass over the slab; returns
    /// how many were removed. For deletes known only by id (or found missing from the store).
    pub fn retain_ids(&mut self, mut keep: impl FnMut(i64) -> bool) -> usize {
        let doomed: Vec<(u32, KeyKind, Vec<u8>)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.live && !keep(e.id))
            .map(|(slot, e)| (slot as u32, e.kind, key_at(&self.keys, e.key_at).to_vec()))
            .collect();
        for (slot, kind, key) in &doomed {
            let hash = self.hash(key);
            if let Ok(found) = self.tables[*kind as usize].find_entry(hash, |s| s == slot) {
                found.remove();
            }
            self.forget_slot(*slot, *kind, key);
        }
        doomed.len()
    }

    /// Frees a slot already taken out of its table.
    fn forget_slot(&mut self, slot: u32, kind: KeyKind, key: &[u8]) {
        self.entries[slot as usize].live = false;
        self.free.push(slot);
        self.garbage += key.len() + 2;
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
        if self.garbage > 1 << 20 && self.garbage > self.keys.len() / 2 {
            self.compact_keys();
        }
    }

    /// Copies the live keys into a fresh arena; the tables hold slab positions, not arena
    /// offsets, so they stay as they are.
    fn compact_keys(&mut self) {
        let mut fresh = Vec::with_capacity(self.keys.len() - self.garbage);
        for entry in self.entries.iter_mut().filter(|e| e.live) {
            let key = key_at(&self.keys, entry.key_at);
            let at = fresh.len() as u32;
            fresh.extend_from_slice(&(key.len() as u16).to_le_bytes());
            fresh.extend_from_slice(key);
            entry.key_at = at;
        }
        self.keys = fresh;
        self.garbage = 0;
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
        for &slot in self.tables[kind as usize].iter_hash(hash) {
            let e = &self.entries[slot as usize];
            if !e.active(now_ticks)
                || key_at(&self.keys, e.key_at) != key
                || !self.applies(e, device_group)
            {
                continue;
            }
            match &mut level {
                None => {
                    level = Some(Level {
                        best: slot,
                        others: Vec::new(),
                    })
                }
                Some(level) => {
                    let current = &self.entries[level.best as usize];
                    if better(e) > better(current) {
                        level.others.push(current.action);
                        level.best = slot;
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
        let e = &self.entries[level.best as usize];
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
        let e = &self.entries[verdict.slot as usize];
        let value = key_text(e.kind, key_at(&self.keys, e.key_at));
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

    /// The indexed indicators in slab order, starting at position `from`, at most `max` of
    /// them, with the position to continue from (`None` at the end). Feeds read in chunks
    /// so that a lock is held only for a chunk.
    pub fn chunk(&self, from: usize, max: usize) -> (Vec<IndexedIndicator<'_>>, Option<usize>) {
        let mut out = Vec::with_capacity(max.min(self.live));
        let mut pos = from;
        while pos < self.entries.len() && out.len() < max {
            let e = &self.entries[pos];
            if e.live {
                out.push(IndexedIndicator {
                    id: e.id,
                    indicator_type: e.kind.indicator_type(),
                    value: key_text(e.kind, key_at(&self.keys, e.key_at)),
                    action: e.action,
                    severity: e.severity,
                    expires_ticks: (e.expires != NEVER).then_some(e.expires),
                    updated_secs: e.updated_secs,
                    rbac_group_names: &self.group_sets[e.groups as usize],
                    slot: pos as u32,
                });
            }
            pos += 1;
        }
        (out, (pos < self.entries.len()).then_some(pos))
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
        let e = &self.entries[indicator.slot as usize];
        let key = key_at(&self.keys, e.key_at);
        let observable = match e.kind {
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
