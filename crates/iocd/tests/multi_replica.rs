//! Two real `iocd` processes on one PostgreSQL database (fresh, dropped afterwards) and one Redis
//! (a key prefix of the test's own), with clients spread round-robin over both: the rate limit
//! counts exactly across replicas, the quota holds exactly, one key posted to both at once is one
//! indicator, and a write through one replica is read through the other at once.

mod common;

use common::*;
use sqlx::Connection;

fn postgres_admin_url() -> String {
    std::env::var("IOCD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A PostgreSQL database of the test's own, dropped on drop.
struct Database {
    url: String,
    name: String,
}

impl Database {
    async fn create() -> Database {
        let admin = postgres_admin_url();
        let name = format!("iocd_replicas_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        Database {
            url: format!("{base}/{name}"),
            name,
        }
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_limits_quota_and_keys() {
    let database = Database::create().await;
    let prefix = format!("iocd-replicas:{}", uuid::Uuid::new_v4().simple());
    let envs = [
        ("IOCD_DATABASE_URL", database.url.as_str()),
        ("IOCD_REDIS_URL", "redis://127.0.0.1:6379"),
        ("IOCD_REDIS_KEY_PREFIX", prefix.as_str()),
        ("IOCD_RATE_LIMIT", "submit=30/1h;get=100/1h"),
        ("IOCD_MAX_ACTIVE_INDICATORS", "12"),
        // Replicas behind one address share the issuer, so a token works on both.
        ("IOCD_ISSUER_URL", "http://iocd.replicas.test"),
        ("IOCD_DEV_APP", "false"),
    ];
    let app = create_app(
        &database.url,
        "22222222-2222-2222-2222-222222222222",
        "replica test",
    );
    let replicas = [
        ServerProcess::start(&[], &envs).await,
        ServerProcess::start(&[], &envs).await,
    ];
    let token = fetch_token(&replicas[0].base_url, &app).await;
    let client = reqwest::Client::new();
    let post = |replica: usize, body: serde_json::Value| {
        client
            .post(replicas[replica % 2].url("/api/indicators"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };

    // One key posted 10 times at once, alternating replicas: one indicator.
    let same_key = futures::future::join_all((0..10).map(|i| {
        let mut body = domain_request(0);
        body["title"] = serde_json::json!(format!("writer {i}"));
        post(i, body)
    }))
    .await;
    for res in same_key {
        assert_eq!(res.unwrap().status(), 200);
    }
    assert_eq!(database.scalar("SELECT COUNT(*) FROM indicators").await, 1);

    // 30 distinct creates at once: 20 submit calls are left in the shared window, and the quota
    // (12) has room for 11 more.
    let creates = futures::future::join_all((1..31).map(|n| post(n, domain_request(n)))).await;
    let mut statuses = std::collections::BTreeMap::new();
    for res in creates {
        *statuses.entry(res.unwrap().status().as_u16()).or_insert(0) += 1;
    }
    assert_eq!(statuses.get(&429), Some(&10), "{statuses:?}");
    assert_eq!(statuses.get(&200), Some(&11), "{statuses:?}");
    assert_eq!(statuses.get(&400), Some(&9), "{statuses:?}");
    assert_eq!(database.scalar("SELECT COUNT(*) FROM indicators").await, 12);
    assert_eq!(
        database
            .scalar("SELECT COUNT(*) FROM (SELECT 1 FROM indicators GROUP BY tenant_id, indicator_type, value_key, action HAVING COUNT(*) > 1) d")
            .await,
        0
    );

    // Every indicator is readable through both replicas at once.
    for replica in &replicas {
        let res = client
            .get(replica.url("/api/indicators/1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}
