//! The match rules: the semantic table (tests/data/match_table.json, also run against the
//! HTTP API by the server's tests) and a property test holding the index to a brute-force
//! scan of the same indicators.

use std::cmp::Reverse;

use chrono::Duration;
use iocd_domain::matching::{
    file_rank, network_rank, IndexRecord, LayoutChanged, MatchIndex, Observable, UrlHost, UrlParts,
};
use iocd_domain::time::{parse_datetime, Timestamp};
use iocd_domain::value::normalise;
use iocd_domain::{Action, IndicatorType};
use proptest::prelude::*;
use serde_json::Value;

const TABLE: &str = include_str!("../data/match_table.json");

fn t0() -> Timestamp {
    parse_datetime("t", "2026-01-01T00:00:00Z").unwrap()
}

#[derive(Debug, Clone)]
struct Row {
    id: i64,
    ty: IndicatorType,
    value_key: String,
    action: Action,
    groups: Vec<String>,
    expires: Option<Timestamp>,
}

impl Row {
    fn record(&self) -> IndexRecord<'_> {
        IndexRecord {
            id: self.id,
            indicator_type: self.ty,
            value_key: &self.value_key,
            action: self.action,
            severity: iocd_domain::Severity::High,
            expiration_time: self.expires,
            last_update_time: t0(),
            rbac_group_names: &self.groups,
        }
    }
}

fn table_rows() -> (Vec<Row>, Vec<String>) {
    let table: Value = serde_json::from_str(TABLE).unwrap();
    let mut rows = Vec::new();
    let mut refs = Vec::new();
    for (i, ind) in table["indicators"].as_array().unwrap().iter().enumerate() {
        let ty = IndicatorType::parse("t", ind["type"].as_str().unwrap()).unwrap();
        rows.push(Row {
            id: i as i64 + 1,
            ty,
            value_key: normalise(ty, ind["value"].as_str().unwrap()).unwrap(),
            action: Action::parse("a", ind["action"].as_str().unwrap()).unwrap(),
            groups: ind["groups"]
                .as_array()
                .map(|g| g.iter().map(|n| n.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
            expires: ind["expiresInSeconds"]
                .as_i64()
                .map(|s| t0() + Duration::seconds(s)),
        });
        refs.push(ind["ref"].as_str().unwrap().to_string());
    }
    (rows, refs)
}

#[test]
fn semantic_table() {
    let table: Value = serde_json::from_str(TABLE).unwrap();
    let (rows, refs) = table_rows();
    let mut index = MatchIndex::new();
    for row in &rows {
        assert!(index.upsert(&row.record()), "{row:?}");
    }
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "the table has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let observable = Observable::from_json(&case["observable"]);
        if let Some(code) = case["error"].as_str() {
            match observable {
                Err(e) if e.code.as_str() == code => {}
                other => failures.push(format!("{name}: expected error {code}, got {other:?}")),
            }
            continue;
        }
        let observable = observable.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let decision = index.decide(&observable, case["deviceGroup"].as_str(), t0());
        let got = decision
            .as_ref()
            .map(|d| (refs[d.id as usize - 1].as_str(), d.action.as_str()));
        let want = case["expect"]
            .as_str()
            .map(|r| (r, case["action"].as_str().unwrap()));
        if got != want {
            failures.push(format!(
                "{name}: expected {want:?}, got {got:?} ({decision:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reasons_name_the_rule() {
    let (rows, _) = table_rows();
    let mut index = MatchIndex::new();
    rows.iter().for_each(|r| assert!(index.upsert(&r.record())));
    let reason = |kind: &str, value: &str| {
        index
            .decide(&Observable::parse(kind, value).unwrap(), None, t0())
            .unwrap()
            .reason
    };
    assert_eq!(
        reason("domain", "sub.evil.example"),
        "domain suffix evil.example matched sub.evil.example"
    );
    assert_eq!(
        reason("domain", "conflict.example"),
        "domain conflict.example matched (Allowed decides over Block, Warn on the same key)"
    );
    assert_eq!(
        reason("url", "http://site.example/block/x"),
        "URL prefix site.example/block matched http://site.example/block/x"
    );
    assert_eq!(
        reason("ip", "::ffff:203.0.113.5"),
        "IP address 203.0.113.5 matched"
    );
}

#[test]
fn removal_and_update_in_place() {
    let (rows, _) = table_rows();
    let mut index = MatchIndex::new();
    rows.iter().for_each(|r| assert!(index.upsert(&r.record())));
    assert_eq!(index.len(), rows.len());
    let conflict_allowed = rows
        .iter()
        .find(|r| r.value_key == "conflict.example" && r.action == Action::Allowed)
        .unwrap();
    assert!(index.remove(
        conflict_allowed.id,
        conflict_allowed.ty,
        &conflict_allowed.value_key
    ));
    assert!(!index.remove(
        conflict_allowed.id,
        conflict_allowed.ty,
        &conflict_allowed.value_key
    ));
    let obs = Observable::parse("domain", "conflict.example").unwrap();
    assert_eq!(index.decide(&obs, None, t0()).unwrap().action, Action::Warn);
    // An update of the Warn indicator that scopes it to a group leaves Block for the rest.
    let mut warn = rows
        .iter()
        .find(|r| r.value_key == "conflict.example" && r.action == Action::Warn)
        .unwrap()
        .clone();
    warn.groups = vec!["Finance".into()];
    assert!(index.upsert(&warn.record()));
    assert_eq!(index.len(), rows.len() - 1);
    assert_eq!(
        index.decide(&obs, None, t0()).unwrap().action,
        Action::Block
    );
    assert_eq!(
        index.decide(&obs, Some("FINANCE"), t0()).unwrap().action,
        Action::Warn
    );
    // Removal by id (deletes known only by id) keeps the count in step.
    let removed = index.retain_ids(|id| id != warn.id);
    assert_eq!(removed, 1);
    assert_eq!(index.len(), rows.len() - 2);
    assert_eq!(
        index.decide(&obs, Some("FINANCE"), t0()).unwrap().action,
        Action::Block
    );
}

// ---- brute force: the rules written as a scan over rows, independently of the index ----

/// Removing most of a large index compacts its arena. Lookups and updates stay right across
/// it; a feed reading in chunks while holding the layout keeps its place through removals
/// (compaction waits for it), and once it lets go a cursor of the old layout is refused.
#[test]
fn compaction_keeps_lookups_and_waits_for_feeds() {
    const COUNT: i64 = 30_000;
    let rows: Vec<Row> = (1..=COUNT)
        .map(|id| Row {
            id,
            ty: IndicatorType::FileSha256,
            value_key: format!("{id:064x}"),
            action: Action::BlockAndRemediate,
            groups: Vec::new(),
            expires: None,
        })
        .collect();
    let mut index = MatchIndex::new();
    for row in &rows {
        assert!(index.upsert(&row.record()));
    }
    let full = index.heap_bytes();
    let ids_from = |index: &MatchIndex, cursor| {
        let mut ids = Vec::new();
        let mut at = Some(cursor);
        while let Some(cursor) = at {
            let (chunk, next) = index.chunk(cursor, 1000).unwrap();
            ids.extend(chunk.iter().map(|i| i.id));
            at = next;
        }
        ids
    };

    // A feed reads its first chunk and holds the layout; then two ids in three go: 20,000
    // records of 94 bytes, over a mebibyte and over half the arena.
    let hold = index.hold_layout();
    let (first, next) = index.chunk(index.first_chunk(), 1000).unwrap();
    let mut fed: Vec<i64> = first.iter().map(|i| i.id).collect();
    assert_eq!(index.retain_ids(|id| id % 3 == 0), 20_000);
    fed.extend(ids_from(&index, next.unwrap()));
    let expected: Vec<i64> = (1..=1000)
        .chain((1001..=COUNT).filter(|id| id % 3 == 0))
        .collect();
    assert_eq!(fed, expected, "the held feed lost its place");
    let old_layout = index.first_chunk();
    drop(hold);

    // The next removal compacts.
    assert!(index.remove(3, rows[2].ty, &rows[2].value_key));
    assert_eq!(index.chunk(old_layout, 10).unwrap_err(), LayoutChanged);
    assert!(
        index.heap_bytes() < full * 3 / 4,
        "{} of {full} bytes",
        index.heap_bytes()
    );
    assert_eq!(index.len(), 9_999);
    let remaining: Vec<i64> = (6..=COUNT).filter(|id| id % 3 == 0).collect();
    assert_eq!(ids_from(&index, index.first_chunk()), remaining);
    for row in &rows {
        let observable = Observable::parse("sha256", &row.value_key).unwrap();
        let found = index.verdict(&observable, None, t0()).map(|v| v.id);
        let expected = (row.id % 3 == 0 && row.id != 3).then_some(row.id);
        assert_eq!(found, expected, "id {}", row.id);
    }
    // An update in place of a moved record, and a new indicator after the compaction.
    let allowed = Row {
        action: Action::Allowed,
        ..rows[5].clone()
    };
    assert!(index.upsert(&allowed.record()));
    assert!(index.upsert(&rows[1].record()));
    let decide = |row: &Row| {
        index
            .verdict(
                &Observable::parse("sha256", &row.value_key).unwrap(),
                None,
                t0(),
            )
            .map(|v| (v.id, v.action))
    };
    assert_eq!(decide(&rows[5]), Some((6, Action::Allowed)));
    assert_eq!(decide(&rows[1]), Some((2, Action::BlockAndRemediate)));
    assert_eq!(decide(&rows[2]), None);
    assert_eq!(index.len(), 10_000);
}

fn applies(row: &Row, group: Option<&str>, now: Timestamp) -> bool {
    row.expires.is_none_or(|e| e > now)
        && (row.groups.is_empty()
            || group.is_some_and(|g| row.groups.iter().any(|n| n.eq_ignore_ascii_case(g))))
}

/// Whether the indicator path `p` covers the observed path `o`.
fn covers(p: &str, o: &str) -> bool {
    if o == p {
        return true;
    }
    let Some(next) = o.strip_prefix(p).and_then(|rest| rest.chars().next()) else {
        return false;
    };
    if p.contains('?') {
        next == '&'
    } else {
        p.ends_with('/') || next == '/' || next == '?'
    }
}

fn brute_force(
    rows: &[Row],
    observable: &Observable,
    group: Option<&str>,
    now: Timestamp,
) -> Option<(i64, Action)> {
    let live = rows.iter().filter(|r| applies(r, group, now));
    let pick = |r: &Row| Some((r.id, r.action));
    match observable {
        Observable::File(hashes) => {
            for (ty, hash) in hashes.strongest_first() {
                let best = live
                    .clone()
                    .filter(|r| r.ty == ty && r.value_key == hash)
                    .max_by_key(|r| (!r.groups.is_empty(), file_rank(r.action), Reverse(r.id)));
                if let Some(r) = best {
                    return pick(r);
                }
            }
            None
        }
        Observable::CertificateThumbprint(t) => live
            .filter(|r| r.ty == IndicatorType::CertificateThumbprint && &r.value_key == t)
            .max_by_key(|r| (!r.groups.is_empty(), file_rank(r.action), Reverse(r.id)))
            .and_then(pick),
        network => {
            let (host, path) = match network {
                Observable::Url(_, parts) => (parts.host.clone(), Some(parts.path.as_str())),
                Observable::Domain(d) => (UrlHost::Domain(d.clone()), None),
                Observable::Ip(ip) => (UrlHost::Ip(ip.to_canonical()), None),
                _ => unreachable!(),
            };
            // Specificity: (tier, length): URL paths, then domain suffixes or the address.
            let specificity = |r: &Row| -> Option<(u8, usize)> {
                match (r.ty, &host) {
                    (IndicatorType::Url, _) => {
                        let parts = UrlParts::of_canonical(&r.value_key)?;
                        (parts.host == host && covers(&parts.path, path?))
                            .then_some((2, parts.path.len()))
                    }
                    (IndicatorType::DomainName, UrlHost::Domain(name)) => {
                        let k = &r.value_key;
                        (name == k || name.ends_with(&format!(".{k}"))).then_some((1, k.len()))
                    }
                    (IndicatorType::IpAddress, UrlHost::Ip(ip)) => {
                        (r.value_key.parse::<std::net::IpAddr>().ok()? == *ip).then_some((1, 0))
                    }
                    _ => None,
                }
            };
            live.filter_map(|r| specificity(r).map(|s| (s, r)))
                .max_by_key(|(s, r)| (*s, network_rank(r.action), Reverse(r.id)))
                .and_then(|(_, r)| pick(r))
        }
    }
}

const DOMAINS: &[&str] = &[
    "a.example",
    "b.a.example",
    "c.b.a.example",
    "x.example",
    "a.test",
];
const URLS: &[&str] = &[
    "http://a.example/",
    "http://a.example/p",
    "http://a.example/p/q",
    "https://a.example/p/",
    "http://a.example/p?x=1",
    "http://b.a.example/p",
    "http://203.0.113.1/p",
    "http://[2001:db8::1]/",
];
const IPS: &[&str] = &["203.0.113.1", "2001:db8::1", "198.51.100.2"];
const GROUPS: &[&[&str]] = &[&[], &[], &["g1"], &["g1", "g2"], &["G2"]];
const OBSERVED_URLS: &[&str] = &[
    "http://a.example/p/q/r",
    "http://c.b.a.example/p?x=1&y",
    "https://a.example/p",
    "http://b.a.example/",
    "http://203.0.113.1/p/x",
    "http://[::ffff:203.0.113.1]/p",
    "http://[2001:db8::1]/z",
    "http://a.example/pq",
    "http://a.example/p?x=1&z=2",
    "http://a.example/p/",
];

fn hash_value(ty: IndicatorType, digit: usize) -> String {
    let d = char::from_digit(digit as u32, 16).unwrap();
    std::iter::repeat_n(d, ty.hex_len().unwrap()).collect()
}

fn row_strategy() -> impl Strategy<Value = (IndicatorType, String, Action, usize, Option<i64>)> {
    let value = prop_oneof![
        prop::sample::select(DOMAINS).prop_map(|v| (IndicatorType::DomainName, v.to_string())),
        prop::sample::select(URLS).prop_map(|v| (IndicatorType::Url, v.to_string())),
        prop::sample::select(IPS).prop_map(|v| (IndicatorType::IpAddress, v.to_string())),
        (
            prop::sample::select(vec![
                IndicatorType::FileSha256,
                IndicatorType::FileSha1,
                IndicatorType::FileMd5,
                IndicatorType::CertificateThumbprint,
            ]),
            0..3usize
        )
            .prop_map(|(ty, d)| (ty, hash_value(ty, d))),
    ];
    (
        value,
        prop::sample::select(Action::ALL),
        0..GROUPS.len(),
        prop::option::of(-2i64..3),
    )
        .prop_map(|((ty, v), a, g, e)| (ty, v, a, g, e))
}

fn observable_strategy() -> impl Strategy<Value = Observable> {
    let file = (0..4usize, 0..4usize, 0..4usize).prop_map(|(a, b, c)| {
        let pick = |ty, d| (d < 3).then(|| hash_value(ty, d));
        let mut hashes = iocd_domain::matching::FileHashes {
            sha256: pick(IndicatorType::FileSha256, a),
            sha1: pick(IndicatorType::FileSha1, b),
            md5: pick(IndicatorType::FileMd5, c),
        };
        if hashes.sha256.is_none() && hashes.sha1.is_none() && hashes.md5.is_none() {
            hashes.md5 = Some(hash_value(IndicatorType::FileMd5, 0));
        }
        Observable::File(hashes)
    });
    prop_oneof![
        prop::sample::select(OBSERVED_URLS).prop_map(|u| Observable::parse("url", u).unwrap()),
        prop::sample::select(DOMAINS)
            .prop_map(|d| Observable::parse("domain", &format!("z.{d}")).unwrap()),
        prop::sample::select(DOMAINS).prop_map(|d| Observable::parse("domain", d).unwrap()),
        prop::sample::select(IPS).prop_map(|i| Observable::parse("ip", i).unwrap()),
        file,
        (0..3usize).prop_map(|d| Observable::parse(
            "certificateThumbprint",
            &hash_value(IndicatorType::CertificateThumbprint, d)
        )
        .unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn index_equals_brute_force(
        specs in prop::collection::vec(row_strategy(), 0..40),
        removed in prop::collection::vec(any::<bool>(), 40),
        observables in prop::collection::vec(observable_strategy(), 1..20),
        group in prop::option::of(prop::sample::select(vec!["g1", "g2", "g3"])),
    ) {
        let now = t0();
        let rows: Vec<Row> = specs.iter().enumerate().map(|(i, (ty, v, a, g, e))| Row {
            id: i as i64 + 1,
            ty: *ty,
            value_key: normalise(*ty, v).unwrap(),
            action: *a,
            groups: GROUPS[*g].iter().map(|s| s.to_string()).collect(),
            expires: e.map(|s| now + Duration::seconds(s)),
        }).collect();
        let mut index = MatchIndex::new();
        for row in &rows {
            prop_assert!(index.upsert(&row.record()));
        }
        let mut kept = Vec::new();
        for (row, remove) in rows.iter().zip(&removed) {
            if *remove {
                prop_assert!(index.remove(row.id, row.ty, &row.value_key));
            } else {
                kept.push(row.clone());
            }
        }
        prop_assert_eq!(index.len(), kept.len());
        for observable in &observables {
            let got = index.decide(observable, group, now).map(|d| (d.id, d.action));
            prop_assert_eq!(got, brute_force(&kept, observable, group, now), "{:?}", observable);
        }
    }
}
