//! Two real `iocd` processes on one PostgreSQL database (fresh, dropped afterwards) and one Redis
//! (a key prefix of the test's own), with clients spread round-robin over both: the rate limit
//! counts exactly across replicas, the quota holds exactly, one key posted to both at once is one
//! indicator, and a write through one replica is read through the other at once.

use iocd_testkit::{client_credentials_token, domain_request, env, RedisPrefix, ScratchDatabase};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_share_limits_quota_and_keys() {
    let Some((postgres, redis)) = env::postgres_and_redis_urls() else {
        return;
    };
    let database = ScratchDatabase::postgres(&postgres).await;
    let prefix = RedisPrefix::new("replicas");
    let envs = [
        ("IOCD_DATABASE_URL", database.url.as_str()),
        ("IOCD_REDIS_URL", redis.as_str()),
        ("IOCD_REDIS_KEY_PREFIX", prefix.as_str()),
        ("IOCD_RATE_LIMIT", "submit=30/1h;get=100/1h"),
        ("IOCD_MAX_ACTIVE_INDICATORS", "12"),
        // Replicas behind one address share the issuer, so a token works on both.
        ("IOCD_ISSUER_URL", "http://iocd.replicas.test"),
        ("IOCD_DEV_APP", "false"),
    ];
    let app = crate::iocd().create_app(
        &database.url,
        "22222222-2222-2222-2222-222222222222",
        "replica test",
        "Ti.ReadWrite.All",
    );
    let replicas = [
        crate::iocd().serve().envs(&envs).start().await,
        crate::iocd().serve().envs(&envs).start().await,
    ];
    let client = reqwest::Client::new();
    let token = client_credentials_token(&client, &replicas[0].base_url(), &app).await;
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
