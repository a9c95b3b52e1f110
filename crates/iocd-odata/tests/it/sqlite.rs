//! Runs the compiled SQL against a real in-memory SQLite database and checks which rows match.

use crate::fixtures::{insert_fixture_rows, selected_ids, FILTER_CASES, PAGE_CASES};
use iocd_odata::{order_by_sql, parse_filter, parse_list_query, Dialect, SqlValue, MAX_CONDITIONS};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row as _, SqlitePool};
use std::str::FromStr;

async fn database() -> SqlitePool {
    // One connection: every connection to ":memory:" would be a separate, empty database.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::from_str("sqlite::memory:").unwrap())
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE indicators (
            id INTEGER PRIMARY KEY,
            indicator_value TEXT NOT NULL,
            indicator_type TEXT NOT NULL,
            action TEXT NOT NULL,
            severity TEXT NOT NULL,
            application TEXT,
            title TEXT NOT NULL,
            created_by TEXT NOT NULL,
            created_by_display_name TEXT NOT NULL,
            last_updated_by TEXT,
            external_id TEXT,
            creation_time INTEGER NOT NULL,
            last_update_time INTEGER NOT NULL,
            expiration_time INTEGER,
            generate_alert INTEGER NOT NULL,
            rbac_group_names TEXT NOT NULL,
            rbac_group_ids TEXT NOT NULL
        )",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("CREATE INDEX indicators_value ON indicators (indicator_value)")
        .execute(&pool)
        .await
        .unwrap();
    insert_fixture_rows!(
        "INSERT INTO indicators VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        &pool
    );
    pool
}

async fn ids(pool: &SqlitePool, sql: &str, binds: &[SqlValue]) -> Result<Vec<i64>, sqlx::Error> {
    selected_ids!(sql, binds, pool)
}

#[tokio::test]
async fn filters_select_the_expected_rows() {
    let pool = database().await;
    let mut failures = Vec::new();
    for (filter, expected) in FILTER_CASES {
        let fragment = parse_filter(filter).unwrap().to_sql(Dialect::Sqlite, 1);
        let sql = format!(
            "SELECT id FROM indicators WHERE {} ORDER BY id",
            fragment.sql
        );
        match ids(&pool, &sql, &fragment.binds).await {
            Ok(got) if got == *expected => {}
            Ok(got) => failures.push(format!(
                "{filter}: expected {expected:?}, got {got:?} ({sql})"
            )),
            Err(e) => failures.push(format!("{filter}: {e} ({sql})")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn paging_and_ordering_are_stable() {
    let pool = database().await;
    let mut failures = Vec::new();
    for (pairs, expected) in PAGE_CASES {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let query = parse_list_query(&pairs).unwrap();
        let (condition, mut binds) = match &query.filter {
            Some(filter) => {
                let fragment = filter.to_sql(Dialect::Sqlite, 1);
                (fragment.sql, fragment.binds)
            }
            None => ("1 = 1".to_string(), Vec::new()),
        };
        binds.push(SqlValue::Int(query.top.map_or(-1, i64::from)));
        binds.push(SqlValue::Int(query.skip as i64));
        let sql = format!(
            "SELECT id FROM indicators WHERE {condition} ORDER BY {} LIMIT ? OFFSET ?",
            order_by_sql(&query.order_by)
        );
        match ids(&pool, &sql, &binds).await {
            Ok(got) if got == *expected => {}
            Ok(got) => failures.push(format!(
                "{pairs:?}: expected {expected:?}, got {got:?} ({sql})"
            )),
            Err(e) => failures.push(format!("{pairs:?}: {e} ({sql})")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn equality_on_indicator_value_uses_the_index() {
    let pool = database().await;
    let fragment = parse_filter("indicatorValue eq 'evil.example'")
        .unwrap()
        .to_sql(Dialect::Sqlite, 1);
    let explain = format!(
        "EXPLAIN QUERY PLAN SELECT id FROM indicators WHERE {}",
        fragment.sql
    );
    let plan: Vec<String> = {
        let mut query = sqlx::query(&explain);
        for bind in &fragment.binds {
            if let SqlValue::Text(s) = bind {
                query = query.bind(s.clone());
            }
        }
        query
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect()
    };
    assert!(
        plan.iter()
            .any(|line| line.contains("USING INDEX indicators_value")
                || line.contains("USING COVERING INDEX indicators_value")),
        "{plan:?}"
    );
}

#[tokio::test]
async fn the_largest_accepted_filter_runs() {
    let pool = database().await;
    let terms: Vec<String> = (0..MAX_CONDITIONS as i64 - 2)
        .map(|i| format!("id eq {}", i + 100))
        .chain(std::iter::once(
            "(id eq 2 and not (title eq 'x'))".to_string(),
        ))
        .collect();
    let fragment = parse_filter(&terms.join(" or "))
        .unwrap()
        .to_sql(Dialect::Sqlite, 1);
    let sql = format!("SELECT id FROM indicators WHERE {}", fragment.sql);
    assert_eq!(ids(&pool, &sql, &fragment.binds).await.unwrap(), vec![2]);
}

#[tokio::test]
async fn hostile_literals_stay_data() {
    let pool = database().await;
    for filter in [
        "title eq 'x'' OR 1=1 --'",
        "contains(title,''')) OR 1=1 --')",
        "rbacGroupNames/any(g: g eq ''') OR 1=1 --')",
        r"contains(title,'\'' OR 1=1 --')",
    ] {
        let fragment = parse_filter(filter).unwrap().to_sql(Dialect::Sqlite, 1);
        let sql = format!("SELECT id FROM indicators WHERE {}", fragment.sql);
        assert_eq!(
            ids(&pool, &sql, &fragment.binds).await.unwrap(),
            Vec::<i64>::new(),
            "{filter}"
        );
    }
}
