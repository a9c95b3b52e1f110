//! Runs the compiled SQL against the real PostgreSQL on 127.0.0.1:5432 (database `test`, trust
//! auth). Each test works in its own uniquely named schema and drops it afterwards.
//! Set IOCD_ODATA_TEST_POSTGRES_URL to use another server.

mod common;

use common::{rows, FILTER_CASES, PAGE_CASES};
use iocd_odata::{order_by_sql, parse_filter, parse_list_query, Dialect, SqlValue};
use sqlx::{Connection, PgConnection, Row as _};
use std::time::{SystemTime, UNIX_EPOCH};

struct TestSchema {
    connection: PgConnection,
    name: String,
}

async fn connect() -> PgConnection {
    let candidates = match std::env::var("IOCD_ODATA_TEST_POSTGRES_URL") {
        Ok(url) => vec![url],
        Err(_) => vec![
            "postgres://postgres@127.0.0.1:5432/test".to_string(),
            "postgres://root@127.0.0.1:5432/test".to_string(),
        ],
    };
    let mut errors = Vec::new();
    for url in &candidates {
        match PgConnection::connect(url).await {
            Ok(connection) => return connection,
            Err(e) => errors.push(format!("{url}: {e}")),
        }
    }
    panic!("cannot reach PostgreSQL: {}", errors.join("; "));
}

impl TestSchema {
    async fn create(test_name: &str) -> TestSchema {
        let mut connection = connect().await;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("iocd_odata_{test_name}_{}_{nanos}", std::process::id());
        // The schema name is generated here from safe characters, so formatting it in is fine.
        for statement in [
            format!("CREATE SCHEMA {name}"),
            format!("SET search_path TO {name}"),
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
            )"
            .to_string(),
            "CREATE INDEX indicators_value ON indicators (indicator_value)".to_string(),
        ] {
            sqlx::query(&statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
        for row in rows() {
            sqlx::query(
                "INSERT INTO indicators VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)",
            )
            .bind(row.id)
            .bind(row.indicator_value)
            .bind(row.indicator_type)
            .bind(row.action)
            .bind(row.severity)
            .bind(row.application)
            .bind(row.title)
            .bind(row.created_by)
            .bind(row.created_by_display_name)
            .bind(row.last_updated_by)
            .bind(row.external_id)
            .bind(row.creation_time)
            .bind(row.last_update_time)
            .bind(row.expiration_time)
            .bind(row.generate_alert)
            .bind(row.rbac_group_names)
            .bind(row.rbac_group_ids)
            .execute(&mut connection)
            .await
            .unwrap();
        }
        TestSchema { connection, name }
    }

    async fn ids(&mut self, sql: &str, binds: &[SqlValue]) -> Result<Vec<i64>, sqlx::Error> {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = match bind {
                SqlValue::Text(s) => query.bind(s.clone()),
                SqlValue::Int(i) => query.bind(*i),
                SqlValue::Bool(b) => query.bind(*b),
            };
        }
        let rows = query.fetch_all(&mut self.connection).await?;
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).collect())
    }

    /// Drops the schema, then reports the failures, so a failing test leaves nothing behind.
    async fn finish(mut self, failures: Vec<String>) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&mut self.connection)
            .await
            .unwrap();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

#[tokio::test]
async fn filters_select_the_expected_rows() {
    let mut db = TestSchema::create("filters").await;
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
    db.finish(failures).await;
}

#[tokio::test]
async fn paging_and_ordering_are_stable() {
    let mut db = TestSchema::create("paging").await;
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
    db.finish(failures).await;
}

#[tokio::test]
async fn equality_on_indicator_value_can_use_the_index() {
    let mut db = TestSchema::create("index").await;
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
    db.finish(failures).await;
}

#[tokio::test]
async fn hostile_literals_stay_data() {
    let mut db = TestSchema::create("hostile").await;
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
    db.finish(failures).await;
}
