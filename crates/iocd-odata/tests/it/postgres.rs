//! Runs the compiled SQL against the real PostgreSQL at `IOCD_TEST_POSTGRES_URL` (skipped when it
//! is unset). Each test works in a scratch database of its own, dropped afterwards.

use crate::fixtures::{insert_fixture_rows, selected_ids, FILTER_CASES, PAGE_CASES};
use iocd_odata::{order_by_sql, parse_filter, parse_list_query, Dialect, SqlValue};
use iocd_testkit::{env, ScratchDatabase};
use sqlx::{Connection, PgConnection, Row as _};

struct FixtureDatabase {
    connection: PgConnection,
    // Declared last: dropped after the connection is closed.
    _database: ScratchDatabase,
}

impl FixtureDatabase {
    /// The fixture rows in a scratch database; `None` (the test is skipped) without PostgreSQL.
    async fn create() -> Option<FixtureDatabase> {
        let database = ScratchDatabase::postgres(&env::postgres_url()?).await;
        let mut connection = PgConnection::connect(&database.url).await.unwrap();
        for statement in [
            "CREATE TABLE indicators (
                id BIGINT PRIMARY KEY,
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
                creation_time BIGINT NOT NULL,
                last_update_time BIGINT NOT NULL,
                expiration_time BIGINT,
                generate_alert BOOLEAN NOT NULL,
                rbac_group_names TEXT NOT NULL,
                rbac_group_ids TEXT NOT NULL
            )",
            "CREATE INDEX indicators_value ON indicators (indicator_value)",
        ] {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        insert_fixture_rows!("INSERT INTO indicators VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)", &mut connection);
        Some(FixtureDatabase {
            connection,
            _database: database,
        })
    }

    async fn ids(&mut self, sql: &str, binds: &[SqlValue]) -> Result<Vec<i64>, sqlx::Error> {
        selected_ids!(sql, binds, &mut self.connection)
    }

    /// Reports every failure at once (the scratch database is dropped either way).
    fn finish(self, failures: Vec<String>) {
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

#[tokio::test]
async fn filters_select_the_expected_rows() {
    let Some(mut db) = FixtureDatabase::create().await else {
        return;
    };
    let mut failures = Vec::new();
    for (filter, expected) in FILTER_CASES {
        // Start at $2 so that the numbering offset is exercised on every case.
        let fragment = parse_filter(filter).unwrap().to_sql(Dialect::Postgres, 2);
        let sql = format!(
            "SELECT id FROM indicators WHERE id <> $1 AND {} ORDER BY id",
            fragment.sql
        );
        let mut binds = vec![SqlValue::Int(-1)];
        binds.extend(fragment.binds);
        match db.ids(&sql, &binds).await {
            Ok(got) if got == *expected => {}
            Ok(got) => failures.push(format!(
                "{filter}: expected {expected:?}, got {got:?} ({sql})"
            )),
            Err(e) => failures.push(format!("{filter}: {e} ({sql})")),
        }
    }
    db.finish(failures);
}

#[tokio::test]
async fn paging_and_ordering_are_stable() {
    let Some(mut db) = FixtureDatabase::create().await else {
        return;
    };
    let mut failures = Vec::new();
    for (pairs, expected) in PAGE_CASES {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let query = parse_list_query(&pairs).unwrap();
        let (condition, mut binds) = match &query.filter {
            Some(filter) => {
                let fragment = filter.to_sql(Dialect::Postgres, 1);
                (fragment.sql, fragment.binds)
            }
            None => ("TRUE".to_string(), Vec::new()),
        };
        let limit = binds.len() + 1;
        binds.push(SqlValue::Int(query.top.map_or(i64::MAX, i64::from)));
        binds.push(SqlValue::Int(query.skip as i64));
        let sql = format!(
            "SELECT id FROM indicators WHERE {condition} ORDER BY {} LIMIT ${limit} OFFSET ${}",
            order_by_sql(&query.order_by),
            limit + 1
        );
        match db.ids(&sql, &binds).await {
            Ok(got) if got == *expected => {}
            Ok(got) => failures.push(format!(
                "{pairs:?}: expected {expected:?}, got {got:?} ({sql})"
            )),
            Err(e) => failures.push(format!("{pairs:?}: {e} ({sql})")),
        }
    }
    db.finish(failures);
}

#[tokio::test]
async fn equality_on_indicator_value_can_use_the_index() {
    let Some(mut db) = FixtureDatabase::create().await else {
        return;
    };
    let fragment = parse_filter("indicatorValue eq 'evil.example'")
        .unwrap()
        .to_sql(Dialect::Postgres, 1);
    // With five rows a sequential scan is cheaper; forbid it to see whether the index is usable at all.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut db.connection)
        .await
        .unwrap();
    let explain = format!("EXPLAIN SELECT id FROM indicators WHERE {}", fragment.sql);
    let mut query = sqlx::query(&explain);
    for bind in &fragment.binds {
        if let SqlValue::Text(s) = bind {
            query = query.bind(s.clone());
        }
    }
    let plan: Vec<String> = query
        .fetch_all(&mut db.connection)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let failures = if plan.iter().any(|line| line.contains("indicators_value")) {
        Vec::new()
    } else {
        vec![format!("index not used: {plan:?}")]
    };
    db.finish(failures);
}

#[tokio::test]
async fn hostile_literals_stay_data() {
    let Some(mut db) = FixtureDatabase::create().await else {
        return;
    };
    let mut failures = Vec::new();
    for filter in [
        "title eq 'x'' OR 1=1 --'",
        "contains(title,''')) OR 1=1 --')",
        "rbacGroupNames/any(g: g eq ''') OR 1=1 --')",
        r"contains(title,'\'' OR 1=1 --')",
    ] {
        let fragment = parse_filter(filter).unwrap().to_sql(Dialect::Postgres, 1);
        let sql = format!("SELECT id FROM indicators WHERE {}", fragment.sql);
        match db.ids(&sql, &fragment.binds).await {
            Ok(got) if got.is_empty() => {}
            other => failures.push(format!("{filter}: {other:?}")),
        }
    }
    db.finish(failures);
}
