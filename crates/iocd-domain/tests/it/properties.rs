//! Property tests over the submission parser and value normalisation: arbitrary input yields a
//! value or a refusal naming a property, never a panic, and what is accepted is well formed.
//! (These stand in for `cargo fuzz` targets, which need a nightly toolchain; see docs/security.md.)

use iocd_domain::submission::MAX_LIST_ITEMS;
use iocd_domain::value::normalise;
use iocd_domain::{parse_submission, IndicatorType, Patch};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const PROPERTIES: &[&str] = &[
    "indicatorValue",
    "indicatorType",
    "action",
    "title",
    "description",
    "application",
    "expirationTime",
    "severity",
    "recommendedActions",
    "rbacGroupNames",
    "rbacGroupIds",
    "educateUrl",
    "generateAlert",
    "category",
    "externalId",
    "mitreTechniques",
    "bypassDurationHours",
    "notificationId",
    "notificationBody",
    "version",
    "historicalDetection",
    "lookBackPeriod",
    "additionalInfo",
    "certificateInfo",
];

const TYPES: &[IndicatorType] = &[
    IndicatorType::FileSha1,
    IndicatorType::FileMd5,
    IndicatorType::FileSha256,
    IndicatorType::CertificateThumbprint,
    IndicatorType::IpAddress,
    IndicatorType::DomainName,
    IndicatorType::Url,
];

/// Strings that look like the values clients send, and some that do not.
fn plausible_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Block".to_string()),
        Just("Audit".to_string()),
        Just("DomainName".to_string()),
        Just("Url".to_string()),
        Just("FileSha1".to_string()),
        Just("IpAddress".to_string()),
        Just("true".to_string()),
        Just("2030-01-01T00:00:00Z".to_string()),
        Just("T1566.001".to_string()),
        "[a-f0-9]{32,64}",
        "[a-z]{1,10}(\\.[a-z]{1,10}){1,3}",
        "https?://[a-z]{1,8}\\.[a-z]{2,4}/[ -~]{0,20}",
        "[0-9]{1,3}(\\.[0-9]{1,3}){3}",
        "[0-9a-fA-F:]{2,39}",
        any::<String>(),
        "\\PC{0,40}",
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        plausible_text().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A body whose keys are mostly the real property names, with arbitrary values.
fn submission_body() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop_oneof![
                4 => prop::sample::select(PROPERTIES).prop_map(str::to_string),
                1 => "[a-zA-Z]{1,15}",
            ],
            json_value(),
        ),
        0..14,
    )
    .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>()))
}

/// How many words of at most three letters `a`..`z` there are, the empty one included.
const SHORT_WORDS: u32 = 1 + 26 + 26 * 26 + 26 * 26 * 26;

/// The `n`th word of at most three letters (`n < SHORT_WORDS`): the strings of the regex
/// `[a-z]{0,3}`, each drawn as one number, because 4,000 lists of up to 3,000 regex-generated
/// strings took most of this test binary's run time.
fn short_word(mut n: u32) -> String {
    let mut letters = 0;
    let mut words_of_this_length = 1;
    while n >= words_of_this_length {
        n -= words_of_this_length;
        letters += 1;
        words_of_this_length *= 26;
    }
    (0..letters)
        .rev()
        .map(|place| char::from(b'a' + (n / 26u32.pow(place) % 26) as u8))
        .collect()
}

#[test]
fn short_words_are_every_word_of_at_most_three_letters_once() {
    let words: Vec<String> = (0..SHORT_WORDS).map(short_word).collect();
    assert_eq!(
        [
            &words[0],
            &words[1],
            &words[26],
            &words[27],
            &words[702],
            &words[703]
        ],
        ["", "a", "z", "aa", "zz", "aaa"]
    );
    assert_eq!(words.last().unwrap(), "zzz");
    let distinct: std::collections::HashSet<&String> = words.iter().collect();
    assert_eq!(distinct.len(), words.len());
    assert!(words
        .iter()
        .all(|word| word.len() <= 3 && word.bytes().all(|b| b.is_ascii_lowercase())));
}

fn check_list(list: &Patch<Vec<String>>) {
    if let Patch::Value(entries) = list {
        assert!(entries.len() <= MAX_LIST_ITEMS);
        let mut seen = std::collections::HashSet::new();
        for entry in entries {
            assert!(!entry.is_empty() && entry.trim() == entry, "{entry:?}");
            assert!(seen.insert(entry), "repeated {entry:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn the_submission_parser_accepts_or_names_a_property(body in submission_body()) {
        match parse_submission(&body) {
            Ok(submission) => {
                prop_assert!(!submission.indicator_value.is_empty());
                prop_assert!(!submission.value_key.is_empty());
                prop_assert!(!submission.title.trim().is_empty());
                check_list(&submission.rbac_group_names);
                check_list(&submission.rbac_group_ids);
                check_list(&submission.mitre_techniques);
                // The key is a fixed point: normalising it again changes nothing.
                prop_assert_eq!(
                    normalise(submission.indicator_type, &submission.value_key).ok(),
                    Some(submission.value_key.clone())
                );
            }
            Err(refusal) => {
                prop_assert!(!refusal.message.is_empty());
                if !refusal.field.is_empty() {
                    prop_assert!(refusal.message.contains(&refusal.field), "{}", refusal.message);
                }
            }
        }
    }

    #[test]
    fn normalisation_accepts_or_refuses_and_its_keys_are_fixed_points(
        ty in prop::sample::select(TYPES),
        raw in plausible_text(),
    ) {
        if let Ok(key) = normalise(ty, raw.trim()) {
            prop_assert!(!key.is_empty());
            prop_assert_eq!(normalise(ty, &key).ok(), Some(key.clone()));
        }
    }

    #[test]
    fn huge_lists_are_refused_or_capped(
        entries in prop::collection::vec((0..SHORT_WORDS).prop_map(short_word), 0..3_000),
        as_text in any::<bool>(),
    ) {
        let list = if as_text { json!(entries.join(",")) } else { json!(entries) };
        let body = json!({"indicatorValue": "a.example", "indicatorType": "DomainName",
            "action": "Block", "title": "t", "description": "d", "rbacGroupNames": list});
        let distinct: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).collect();
        match parse_submission(&body) {
            Ok(submission) => {
                prop_assert!(distinct.len() <= MAX_LIST_ITEMS);
                check_list(&submission.rbac_group_names);
                prop_assert_eq!(
                    submission.rbac_group_names,
                    Patch::Value({
                        let mut seen = std::collections::HashSet::new();
                        entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty() && seen.insert(*e)).map(str::to_string).collect::<Vec<_>>()
                    })
                );
            }
            Err(refusal) => {
                prop_assert!(distinct.len() > MAX_LIST_ITEMS);
                prop_assert_eq!(refusal.field, "rbacGroupNames");
            }
        }
    }
}
