//! Table tests: `$filter` text → SQL and binds for both dialects, and invalid input → error message.

use iocd_odata::{
    order_by_sql, parse_filter, parse_list_query, parse_order_by, Dialect, SqlValue,
    MAX_CONDITIONS, TICKS_PER_SECOND,
};

const JAN_1_2024: i64 = 1_704_067_200 * TICKS_PER_SECOND;

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_string())
}

struct Valid {
    filter: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    binds: Vec<SqlValue>,
}

fn valid_cases() -> Vec<Valid> {
    let case = |filter, sqlite, postgres, binds| Valid {
        filter,
        sqlite,
        postgres,
        binds,
    };
    vec![
        case(
            "indicatorValue eq 'evil.example'",
            "indicator_value = ?",
            "indicator_value = $1",
            vec![text("evil.example")],
        ),
        case(
            "action eq 'AlertAndBlock'",
            "action = ?",
            "action = $1",
            vec![text("AlertAndBlock")],
        ),
        // A non-nullable column needs no NULL fallback when negated.
        case("title ne 'x'", "title <> ?", "title <> $1", vec![text("x")]),
        // A nullable column does: OData's `ne` is true for null.
        case(
            "application ne 'Edge'",
            "(application <> ? OR application IS NULL)",
            "(application <> $1 OR application IS NULL)",
            vec![text("Edge")],
        ),
        case("application eq null", "application IS NULL", "application IS NULL", vec![]),
        case("expirationTime ne null", "expiration_time IS NOT NULL", "expiration_time IS NOT NULL", vec![]),
        case("not (application eq null)", "application IS NOT NULL", "application IS NOT NULL", vec![]),
        case(
            "title eq 'it''s'",
            "title = ?",
            "title = $1",
            vec![text("it's")],
        ),
        case(
            "creationTimeDateTimeUtc ge 2024-01-01T00:00:00Z",
            "creation_time >= ?",
            "creation_time >= $1",
            vec![SqlValue::Int(JAN_1_2024)],
        ),
        case(
            "expirationTime le 2026-01-01T00:00:00.123456Z",
            "expiration_time <= ?",
            "expiration_time <= $1",
            vec![SqlValue::Int(1_767_225_600 * TICKS_PER_SECOND + 1_234_560)],
        ),
        // '+' of the offset was form-decoded to a space.
        case(
            "creationTimeDateTimeUtc lt 2024-01-01T02:00:00 02:00",
            "creation_time < ?",
            "creation_time < $1",
            vec![SqlValue::Int(JAN_1_2024)],
        ),
        case(
            "creationTimeDateTimeUtc gt 2023-12-31T19:00:00-05:00",
            "creation_time > ?",
            "creation_time > $1",
            vec![SqlValue::Int(JAN_1_2024)],
        ),
        case(
            "lastUpdateTime eq '2024-01-01T00:00:00Z'",
            "last_update_time = ?",
            "last_update_time = $1",
            vec![SqlValue::Int(JAN_1_2024)],
        ),
        case(
            "not (expirationTime lt 2024-01-01T00:00:00Z)",
            "(expiration_time >= ? OR expiration_time IS NULL)",
            "(expiration_time >= $1 OR expiration_time IS NULL)",
            vec![SqlValue::Int(JAN_1_2024)],
        ),
        case("generateAlert eq true", "generate_alert = ?", "generate_alert = $1", vec![SqlValue::Bool(true)]),
        case("id eq 17", "id = ?", "id = $1", vec![SqlValue::Int(17)]),
        case("id eq '17'", "id = ?", "id = $1", vec![SqlValue::Int(17)]),
        case(
            "action eq 'Block' or action eq 'Warn' or action eq 'Audit'",
            "(action = ? OR action = ? OR action = ?)",
            "(action = $1 OR action = $2 OR action = $3)",
            vec![text("Block"), text("Warn"), text("Audit")],
        ),
        // Precedence: and binds tighter than or.
        case(
            "severity eq 'High' or severity eq 'Low' and generateAlert eq false",
            "(severity = ? OR severity = ? AND generate_alert = ?)",
            "(severity = $1 OR severity = $2 AND generate_alert = $3)",
            vec![text("High"), text("Low"), SqlValue::Bool(false)],
        ),
        case(
            "(severity eq 'High' or severity eq 'Low') and generateAlert eq false",
            "(severity = ? OR severity = ?) AND generate_alert = ?",
            "(severity = $1 OR severity = $2) AND generate_alert = $3",
            vec![text("High"), text("Low"), SqlValue::Bool(false)],
        ),
        // De Morgan: not over or becomes and of negations.
        case(
            "NOT (title eq 'a' OR id Gt 5)",
            "title <> ? AND id <= ?",
            "title <> $1 AND id <= $2",
            vec![text("a"), SqlValue::Int(5)],
        ),
        case(
            "not not title eq 'a'",
            "title = ?",
            "title = $1",
            vec![text("a")],
        ),
        case(
            "contains(title,'50%_off\\')",
            "title LIKE ? ESCAPE '\\'",
            "title ILIKE $1 ESCAPE '\\'",
            vec![text("%50\\%\\_off\\\\%")],
        ),
        case(
            "startswith(indicatorValue, 'http://')",
            "indicator_value LIKE ? ESCAPE '\\'",
            "indicator_value ILIKE $1 ESCAPE '\\'",
            vec![text("http://%")],
        ),
        case(
            "endswith(indicatorValue,'.example')",
            "indicator_value LIKE ? ESCAPE '\\'",
            "indicator_value ILIKE $1 ESCAPE '\\'",
            vec![text("%.example")],
        ),
        case(
            "not contains(application,'edge')",
            "(application NOT LIKE ? ESCAPE '\\' OR application IS NULL)",
            "(application NOT ILIKE $1 ESCAPE '\\' OR application IS NULL)",
            vec![text("%edge%")],
        ),
        case(
            "contains(title,'x') eq false",
            "title NOT LIKE ? ESCAPE '\\'",
            "title NOT ILIKE $1 ESCAPE '\\'",
            vec![text("%x%")],
        ),
        case(
            "rbacGroupNames/any(g: g eq 'Servers')",
            "EXISTS (SELECT 1 FROM json_each(rbac_group_names) WHERE value = ?)",
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(rbac_group_names::jsonb) AS e(value) WHERE e.value = $1)",
            vec![text("Servers")],
        ),
        case(
            "rbacGroupIds/any(x:x eq '1' or startswith(x,'2'))",
            "EXISTS (SELECT 1 FROM json_each(rbac_group_ids) WHERE (value = ? OR value LIKE ? ESCAPE '\\'))",
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text(rbac_group_ids::jsonb) AS e(value) WHERE (e.value = $1 OR e.value ILIKE $2 ESCAPE '\\'))",
            vec![text("1"), text("2%")],
        ),
        case(
            "not rbacGroupNames/any()",
            "NOT EXISTS (SELECT 1 FROM json_each(rbac_group_names))",
            "NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(rbac_group_names::jsonb) AS e(value))",
            vec![],
        ),
        case(
            "rbacGroupNames/all(g: g ne 'x')",
            "NOT EXISTS (SELECT 1 FROM json_each(rbac_group_names) WHERE value = ?)",
            "NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(rbac_group_names::jsonb) AS e(value) WHERE e.value = $1)",
            vec![text("x")],
        ),
        case(
            "indicatorType eq 'Url' and rbacGroupNames/any(g: g eq 'A') and creationTimeDateTimeUtc ge 2024-01-01T00:00:00Z",
            "indicator_type = ? AND EXISTS (SELECT 1 FROM json_each(rbac_group_names) WHERE value = ?) AND creation_time >= ?",
            "indicator_type = $1 AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(rbac_group_names::jsonb) AS e(value) WHERE e.value = $2) AND creation_time >= $3",
            vec![text("Url"), text("A"), SqlValue::Int(JAN_1_2024)],
        ),
    ]
}

#[test]
fn valid_filters_compile_to_expected_sql() {
    let mut failures = Vec::new();
    for case in valid_cases() {
        let expr = match parse_filter(case.filter) {
            Ok(expr) => expr,
            Err(e) => {
                failures.push(format!("{}: unexpected error {e}", case.filter));
                continue;
            }
        };
        let sqlite = expr.to_sql(Dialect::Sqlite, 1);
        let postgres = expr.to_sql(Dialect::Postgres, 1);
        if sqlite.sql != case.sqlite || sqlite.binds != case.binds {
            failures.push(format!(
                "{} (sqlite): got {:?} {:?}",
                case.filter, sqlite.sql, sqlite.binds
            ));
        }
        if postgres.sql != case.postgres || postgres.binds != case.binds {
            failures.push(format!(
                "{} (postgres): got {:?} {:?}",
                case.filter, postgres.sql, postgres.binds
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_sizes_are_refused_without_exhausting_the_stack() {
    let deep = format!("{}title eq 'a'{}", "(".repeat(100_000), ")".repeat(100_000));
    let error = parse_filter(&deep).unwrap_err();
    assert!(
        error
            .message
            .contains("position 50: expression is nested too deeply"),
        "{error}"
    );

    let nots = format!("{}title eq 'a'", "not ".repeat(100_000));
    assert!(parse_filter(&nots)
        .unwrap_err()
        .message
        .contains("nested too deeply"));

    let terms = |n: usize| vec!["id eq 1"; n].join(" or ");
    assert!(parse_filter(&terms(MAX_CONDITIONS)).is_ok());
    let error = parse_filter(&terms(MAX_CONDITIONS + 1)).unwrap_err();
    assert!(
        error.message.contains("too many conditions (at most 500)"),
        "{error}"
    );
}

#[test]
fn in_lists_compile_to_sql_in_and_count_towards_the_condition_limit() {
    for filter in [
        "indicatorValue in ('a','b')",
        "indicatorValue IN ['a', 'b']",
    ] {
        let expr = parse_filter(filter).unwrap();
        let fragment = expr.to_sql(Dialect::Postgres, 1);
        assert_eq!(fragment.sql, "indicator_value IN ($1, $2)", "{filter}");
        assert_eq!(fragment.binds, vec![text("a"), text("b")], "{filter}");
        assert_eq!(
            expr.to_sql(Dialect::Sqlite, 1).sql,
            "indicator_value IN (?, ?)"
        );
    }
    let negated = parse_filter("not (application in ('Edge'))").unwrap();
    assert_eq!(
        negated.to_sql(Dialect::Sqlite, 1).sql,
        "(application NOT IN (?) OR application IS NULL)"
    );
    let typed = parse_filter("id in (1, '2') and generateAlert in (true)").unwrap();
    assert_eq!(
        typed.to_sql(Dialect::Postgres, 1).binds,
        vec![SqlValue::Int(1), SqlValue::Int(2), SqlValue::Bool(true)]
    );
    let in_lambda = parse_filter("rbacGroupNames/any(g: g in ('a','b'))").unwrap();
    assert_eq!(
        in_lambda.to_sql(Dialect::Postgres, 1).sql,
        "EXISTS (SELECT 1 FROM jsonb_array_elements_text(rbac_group_names::jsonb) AS e(value) WHERE e.value IN ($1, $2))"
    );

    let list = |n: usize| {
        let values: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        format!("id in ({})", values.join(","))
    };
    assert!(parse_filter(&list(MAX_CONDITIONS)).is_ok());
    let error = parse_filter(&list(MAX_CONDITIONS + 1)).unwrap_err();
    assert!(
        error.message.contains("too many conditions (at most 500)"),
        "{error}"
    );
}

#[test]
fn postgres_placeholders_start_at_the_requested_number() {
    let expr = parse_filter("title eq 'a' and (id eq 1 or id eq 2)").unwrap();
    let fragment = expr.to_sql(Dialect::Postgres, 4);
    assert_eq!(fragment.sql, "title = $4 AND (id = $5 OR id = $6)");
    assert_eq!(
        expr.to_sql(Dialect::Sqlite, 4).sql,
        "title = ? AND (id = ? OR id = ?)"
    );
}

/// (filter, substrings the error message must contain)
const INVALID_FILTERS: &[(&str, &[&str])] = &[
    (
        "indicatorValue eq",
        &["$filter: position 17: expected a literal after 'eq', found end of input"],
    ),
    (
        "indicatorValue eq 'abc",
        &["position 18", "unterminated string literal"],
    ),
    (
        "title eq 'a' and indicatorValue eq 'http://x/?a=1",
        &["position 35", "unterminated string literal"],
    ),
    (
        "foo eq 'x'",
        &[
            "position 0",
            "unknown property 'foo'",
            "indicatorValue",
            "rbacGroupIds",
        ],
    ),
    (
        "IndicatorValue eq 'x'",
        &["position 0", "did you mean 'indicatorValue'"],
    ),
    (
        "action eq 'alert'",
        &[
            "position 10",
            "'alert' is not a valid value for action",
            "did you mean 'Alert'",
            "AlertAndBlock",
        ],
    ),
    (
        "severity eq 'Critical'",
        &[
            "not a valid value for severity",
            "Informational, Low, Medium, High",
        ],
    ),
    (
        "creationTimeDateTimeUtc ge 'yesterday'",
        &["position 27", "creationTimeDateTimeUtc", "datetime"],
    ),
    (
        "creationTimeDateTimeUtc ge 5",
        &[
            "creationTimeDateTimeUtc is a datetime property",
            "found number 5",
        ],
    ),
    (
        "creationTimeDateTimeUtc ge 2024-01-01T00:00:00",
        &["position 27", "UTC offset"],
    ),
    (
        "creationTimeDateTimeUtc ge 2024-13-01T00:00:00Z",
        &["position 27", "not a valid date"],
    ),
    (
        "expirationTime le 2026-01-01T00:00:00.12345678Z",
        &["at most 7 fractional digits"],
    ),
    (
        "title eq 5",
        &["position 9", "title is a text property", "single quotes"],
    ),
    (
        "title eq evil",
        &["position 9", "expected a literal after 'eq'", "'evil'"],
    ),
    (
        "lastUpdateTime gt creationTimeDateTimeUtc",
        &["position 18", "comparing two properties is not supported"],
    ),
    (
        "title gt 'a'",
        &["position 6", "operator 'gt' is not supported for title"],
    ),
    (
        "generateAlert eq 'true'",
        &["generateAlert is a boolean property", "true or false"],
    ),
    ("id eq 'abc'", &["id is an integer property", "'17'"]),
    (
        "expirationTime gt null",
        &["null can only be compared with eq or ne"],
    ),
    (
        "title eq 'a' and",
        &[
            "position 16",
            "expected a condition after 'and', found end of input",
        ],
    ),
    (
        "title eq 'a' title eq 'b'",
        &["position 13", "expected 'and', 'or' or end of input"],
    ),
    (
        "(title eq 'a'",
        &["position 13", "')' to close the '(' at position 0"],
    ),
    (
        "title eqq 'a'",
        &["position 6", "expected a comparison operator"],
    ),
    ("title has 'a'", &["operator 'has' is not supported"]),
    (
        "title in 'a'",
        &["position 9", "'(' or '[' after 'in'", "string literal 'a'"],
    ),
    (
        "title in ()",
        &["position 10", "'in' needs at least one value"],
    ),
    (
        "title in []",
        &["position 10", "'in' needs at least one value"],
    ),
    (
        "title in ('a' 'b')",
        &["position 14", "',' or ')' to close the list at position 9"],
    ),
    (
        "title in ['a','b')",
        &["position 17", "',' or ']' to close the list at position 9"],
    ),
    (
        "title in ('a',)",
        &["position 14", "expected a literal after 'in'"],
    ),
    (
        "title in ('a'",
        &["position 13", "',' or ')'", "end of input"],
    ),
    ("title in (a)", &["position 10", "single quotes: 'a'"]),
    (
        "id in (1, 'x')",
        &["position 10", "id is an integer property"],
    ),
    (
        "action in ('Block','block')",
        &["position 19", "did you mean 'Block'"],
    ),
    (
        "application in ('Edge', null)",
        &[
            "position 24",
            "null cannot be in an 'in' list",
            "application eq null",
        ],
    ),
    (
        "rbacGroupNames in ('a')",
        &["rbacGroupNames is a collection", "any("],
    ),
    ("title in ('a'] ", &["position 13", "',' or ')'"]),
    ("'x' eq title", &["position 0", "property goes on the left"]),
    ("title eq \"x\"", &["position 9", "single quotes"]),
    ("", &["position 0", "expected a condition", "end of input"]),
    (
        "substringof('a',title)",
        &["unknown function 'substringof'"],
    ),
    (
        "contains(creationTimeDateTimeUtc,'1')",
        &["contains() needs a text property"],
    ),
    ("contains(title, 5)", &["second argument of contains()"]),
    (
        "rbacGroupNames eq 'x'",
        &["rbacGroupNames is a collection", "any("],
    ),
    (
        "title/any(g: g eq 'x')",
        &["'/' is only supported after rbacGroupNames or rbacGroupIds"],
    ),
    (
        "rbacGroupNames/any(g: title eq 'x')",
        &["position 22", "only the lambda variable 'g'"],
    ),
    (
        "rbacGroupNames/any(g: g gt 'x')",
        &["operator 'gt' is not supported"],
    ),
    (
        "rbacGroupNames/any(g g eq 'x')",
        &["':' after the lambda variable 'g'"],
    ),
    ("rbacGroupNames/all()", &["all() needs a condition"]),
    ("id eq 99999999999999999999", &["out of range"]),
    ("id eq 17abc", &["invalid literal '17abc'"]),
];

#[test]
fn invalid_filters_explain_position_and_problem() {
    let mut failures = Vec::new();
    for (filter, wanted) in INVALID_FILTERS {
        match parse_filter(filter) {
            Ok(expr) => failures.push(format!("{filter}: expected an error, parsed {expr:?}")),
            Err(e) => {
                assert!(
                    e.message.starts_with("$filter: "),
                    "{filter}: {}",
                    e.message
                );
                for part in *wanted {
                    if !e.message.contains(part) {
                        failures.push(format!("{filter}: {:?} lacks {part:?}", e.message));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn list_query_options_are_parsed() {
    let query = parse_list_query(&pairs(&[
        ("$filter", "severity eq 'High'"),
        ("$top", "10000"),
        ("$skip", "20"),
        ("$orderby", "creationTimeDateTimeUtc desc, title"),
        ("api-version", "junk"),
        ("client_secret", "ignored"),
    ]))
    .unwrap();
    assert!(query.filter.is_some());
    assert_eq!(query.top, Some(10_000));
    assert_eq!(query.skip, 20);
    assert_eq!(
        order_by_sql(&query.order_by),
        "creation_time DESC, title ASC, id ASC"
    );

    let empty = parse_list_query(&[]).unwrap();
    assert_eq!(empty.filter, None);
    assert_eq!(empty.top, None);
    assert_eq!(empty.skip, 0);
    assert_eq!(order_by_sql(&empty.order_by), "id ASC");
    assert_eq!(
        parse_list_query(&pairs(&[("$TOP", "0")])).unwrap().top,
        Some(0)
    );
}

/// Query parameters, and substrings the error message must contain.
type InvalidOptions = (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[test]
fn invalid_list_query_options_are_rejected() {
    let cases: &[InvalidOptions] = &[
        (&[("$top", "10001")], &["$top", "maximum of 10,000"]),
        (
            &[("$top", "99999999999999999999999")],
            &["maximum of 10,000"],
        ),
        (&[("$top", "-1")], &["$top", "non-negative integer"]),
        (
            &[("$top", "ten")],
            &["$top", "non-negative integer", "'ten'"],
        ),
        (&[("$skip", "-5")], &["$skip", "non-negative integer"]),
        (
            &[("$skip", "99999999999999999999")],
            &["$skip", "too large"],
        ),
        (
            &[("$count", "true")],
            &[
                "'$count' is not supported",
                "$filter, $top, $skip, $orderby",
            ],
        ),
        (&[("$select", "id")], &["'$select' is not supported"]),
        (&[("$expand", "x")], &["'$expand' is not supported"]),
        (
            &[("$top", "1"), ("$top", "2")],
            &["'$top' is given more than once"],
        ),
        (
            &[("$filter", "id eq 1"), ("$Filter", "id eq 2")],
            &["'$filter' is given more than once"],
        ),
        (
            &[("$filter", "title eq 'x")],
            &["unterminated string literal"],
        ),
        (
            &[("$orderby", "rbacGroupNames")],
            &["$orderby: position 0", "cannot sort by rbacGroupNames"],
        ),
        (
            &[("$orderby", "title sideways")],
            &[
                "$orderby: position 6",
                "expected 'asc', 'desc', ',' or end of input",
            ],
        ),
        (&[("$orderby", "Title")], &["did you mean 'title'"]),
        (
            &[("$orderby", "nope")],
            &["unknown property 'nope'", "creationTimeDateTimeUtc"],
        ),
        (
            &[("$orderby", "title, title desc")],
            &["title appears more than once"],
        ),
        (
            &[("$orderby", "title,")],
            &[
                "$orderby: position 6",
                "expected a property name, found end of input",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (input, wanted) in cases {
        match parse_list_query(&pairs(input)) {
            Ok(q) => failures.push(format!("{input:?}: expected an error, got {q:?}")),
            Err(e) => {
                for part in *wanted {
                    if !e.message.contains(part) {
                        failures.push(format!("{input:?}: {:?} lacks {part:?}", e.message));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn order_by_always_ends_with_a_stable_tie_breaker() {
    let sql = |text: &str| order_by_sql(&parse_order_by(text).unwrap());
    assert_eq!(
        sql("creationTimeDateTimeUtc desc"),
        "creation_time DESC, id ASC"
    );
    assert_eq!(
        sql("expirationTime"),
        "expiration_time ASC NULLS FIRST, id ASC"
    );
    assert_eq!(
        sql("expirationTime DESC"),
        "expiration_time DESC NULLS LAST, id ASC"
    );
    assert_eq!(sql("id desc"), "id DESC");
    assert_eq!(sql("severity asc,id desc"), "severity ASC, id DESC");
    assert_eq!(sql("id, title"), "id ASC");
}
