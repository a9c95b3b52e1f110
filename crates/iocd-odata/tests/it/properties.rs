//! Property tests over the `$filter` compiler and the other query options: arbitrary text is
//! compiled or refused with a position inside it, never a panic; every expression of the
//! grammar that is generated valid compiles on both dialects, with its values only in binds.
//! (These stand in for `cargo fuzz` targets, which need a nightly toolchain; see docs/security.md.)

use iocd_odata::{parse_filter, parse_list_query, Dialect, ACTIONS, INDICATOR_TYPES, SEVERITIES};
use proptest::prelude::*;

/// Every literal the generator writes starts with this, so the compiled SQL can be searched
/// for it: it must only ever be a bind.
const MARK: &str = "ZQX";

/// A string literal, quotes doubled, whose value starts with [`MARK`].
fn text_literal() -> impl Strategy<Value = String> {
    "[a-z0-9 '%_\\\\.:/-]{0,12}".prop_map(|s| format!("'{MARK}{}'", s.replace('\'', "''")))
}

fn datetime_literal() -> impl Strategy<Value = String> {
    (
        1970u32..2200,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
    )
        .prop_map(|(y, mo, d, h, mi, s)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"))
}

const TEXT: &[&str] = &[
    "indicatorValue",
    "title",
    "application",
    "createdBy",
    "createdByDisplayName",
    "lastUpdatedBy",
    "externalId",
];
const NULLABLE: &[&str] = &[
    "application",
    "lastUpdatedBy",
    "externalId",
    "expirationTime",
];
const DATETIMES: &[&str] = &[
    "creationTimeDateTimeUtc",
    "lastUpdateTime",
    "expirationTime",
];
const OPS: &[&str] = &["eq", "ne", "gt", "ge", "lt", "le"];

fn enum_comparison() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(INDICATOR_TYPES), "indicatorType"),
        (prop::sample::select(ACTIONS), "action"),
        (prop::sample::select(SEVERITIES), "severity"),
    ]
    .prop_flat_map(|(values, name)| (Just(name), prop::sample::select(vec!["eq", "ne"]), values))
    .prop_map(|(name, op, value)| format!("{name} {op} '{value}'"))
}

/// One condition of the grammar, valid by construction.
fn condition() -> impl Strategy<Value = String> {
    let text = prop::sample::select(TEXT);
    prop_oneof![
        (
            text.clone(),
            prop::sample::select(vec!["eq", "ne"]),
            text_literal()
        )
            .prop_map(|(p, op, v)| format!("{p} {op} {v}")),
        (
            prop::sample::select(vec!["contains", "startswith", "endswith"]),
            text.clone(),
            text_literal()
        )
            .prop_map(|(f, p, v)| format!("{f}({p}, {v})")),
        (text, prop::collection::vec(text_literal(), 1..5))
            .prop_map(|(p, vs)| format!("{p} in ({})", vs.join(", "))),
        enum_comparison(),
        (
            prop::sample::select(DATETIMES),
            prop::sample::select(OPS),
            datetime_literal()
        )
            .prop_map(|(p, op, v)| format!("{p} {op} {v}")),
        (prop::sample::select(OPS), -1_000_000i64..1_000_000_000_000)
            .prop_map(|(op, id)| format!("id {op} {id}")),
        (prop::sample::select(vec!["eq", "ne"]), any::<bool>())
            .prop_map(|(op, b)| format!("generateAlert {op} {b}")),
        (
            prop::sample::select(NULLABLE),
            prop::sample::select(vec!["eq", "ne"])
        )
            .prop_map(|(p, op)| format!("{p} {op} null")),
        (
            prop::sample::select(vec!["rbacGroupNames", "rbacGroupIds"]),
            prop::sample::select(vec!["any", "all"]),
            prop::sample::select(vec!["g", "x", "grp", "each"]),
            text_literal()
        )
            .prop_map(|(p, q, v, lit)| format!("{p}/{q}({v}: {v} eq {lit})")),
        prop::sample::select(vec!["rbacGroupNames", "rbacGroupIds"])
            .prop_map(|p| format!("{p}/any()")),
    ]
}

/// A valid expression: conditions joined by `and`/`or`, negated, parenthesised.
fn expression() -> impl Strategy<Value = String> {
    condition().prop_recursive(5, 48, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["and", "or", "AND", "Or"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|e| format!("not ({e})")),
            inner.prop_map(|e| format!("({e})")),
        ]
    })
}

/// Text that is close to the grammar: its words and punctuation in any order.
fn near_miss() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                "indicatorValue",
                "title",
                "action",
                "id",
                "rbacGroupNames/any(",
                "g:",
                "g",
                "eq",
                "ne",
                "gt",
                "in",
                "and",
                "or",
                "not",
                "(",
                ")",
                "[",
                "]",
                ",",
                "'",
                "'x'",
                "''",
                "null",
                "true",
                "17",
                "-1",
                "2024-01-01T00:00:00Z",
                "contains(",
                "/",
                "/all(",
                ":",
                "'Block'",
                "99999999999999999999",
                "Title",
                " ",
                "\u{e9}",
            ])
            .prop_map(str::to_string),
            "[ -~]{1,3}",
        ],
        0..24,
    )
    .prop_map(|words| words.join(" "))
}

/// The position an error names, which must lie inside (or just past) the text.
fn error_position(message: &str) -> Option<usize> {
    let rest = message.strip_prefix("$filter: position ")?;
    rest.split(':').next()?.parse().ok()
}

fn check_refusal_or_compile(text: &str) -> Result<(), TestCaseError> {
    match parse_filter(text) {
        Ok(expr) => {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let fragment = expr.to_sql(dialect, 1);
                prop_assert!(!fragment.sql.is_empty());
            }
        }
        Err(e) => {
            let position = error_position(&e.message);
            prop_assert!(position.is_some(), "no position in {:?}", e.message);
            let position = position.unwrap_or_default();
            prop_assert!(
                position <= text.chars().count(),
                "position {} beyond {:?}",
                position,
                text
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_is_compiled_or_refused_with_a_position(text in any::<String>()) {
        check_refusal_or_compile(&text)?;
    }

    #[test]
    fn text_near_the_grammar_is_compiled_or_refused_with_a_position(text in near_miss()) {
        check_refusal_or_compile(&text)?;
    }

    #[test]
    fn generated_valid_expressions_compile_with_values_only_in_binds(text in expression()) {
        let expr = parse_filter(&text);
        prop_assert!(expr.is_ok(), "{:?} refused: {:?}", text, expr.err());
        let expr = expr.unwrap();
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let fragment = expr.to_sql(dialect, 1);
            prop_assert!(!fragment.sql.contains(MARK), "a value in the SQL: {}", fragment.sql);
            if dialect == Dialect::Sqlite {
                prop_assert_eq!(fragment.sql.matches('?').count(), fragment.binds.len());
            } else if !fragment.binds.is_empty() {
                let last = format!("${}", fragment.binds.len());
                prop_assert!(fragment.sql.contains(&last), "{} lacks {}", fragment.sql, last);
            }
        }
    }

    #[test]
    fn arbitrary_query_options_parse_or_are_refused(
        pairs in prop::collection::vec(
            (
                prop::sample::select(vec!["$filter", "$top", "$skip", "$orderby", "$count", "$select", "x"]),
                prop_oneof![any::<String>(), "[0-9-]{0,22}", "[a-zA-Z ,]{0,30}"],
            ),
            0..5,
        )
    ) {
        let pairs: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if let Err(e) = parse_list_query(&pairs) {
            prop_assert!(!e.message.is_empty());
        }
    }
}
