//! Two real `iocd` processes on one PostgreSQL database (fresh, dropped afterwards) and one Redis
//! (a key prefix of the test's own), with clients spread round-robin over both: the rate limit
//! counts exactly across replicas, the quota holds exactly, one key posted to both at once is one
//! indicator, a write through one replica is read through the other at once, and the change log
//! is one gapless sequence per tenant across both.

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

/// Concurrent writes spread over two replicas on one PostgreSQL: the tenant's change feed, read
/// through either replica, has every acknowledged write exactly once, numbered 1, 2, 3, …
/// without gaps, and a long-poll on one replica wakes for a write through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_log_every_change_once_in_one_sequence() {
    let Some(postgres) = env::postgres_url() else {
        return;
    };
    let database = ScratchDatabase::postgres(&postgres).await;
    let envs = [
        ("IOCD_DATABASE_URL", database.url.as_str()),
        ("IOCD_RATE_LIMITS", "off"),
        ("IOCD_MAX_ACTIVE_INDICATORS", "0"),
        ("IOCD_ISSUER_URL", "http://iocd.replicas.test"),
        ("IOCD_DEV_APP", "false"),
    ];
    let app = crate::iocd().create_app(
        &database.url,
        "33333333-3333-3333-3333-333333333333",
        "replica log test",
        "Ti.ReadWrite.All",
    );
    let replicas = [
        crate::iocd().serve().envs(&envs).start().await,
        crate::iocd().serve().envs(&envs).start().await,
    ];
    let client = reqwest::Client::new();
    let token = client_credentials_token(&client, &replicas[0].base_url(), &app).await;
    // 6 writers × 20 writes, alternating replicas; every third write updates an earlier value.
    let writes = futures::future::join_all((0..6).map(|w| {
        let client = client.clone();
        let token = token.clone();
        let urls = [
            replicas[0].url("/api/indicators"),
            replicas[1].url("/api/indicators"),
        ];
        async move {
            let mut acknowledged = Vec::new();
            for n in 0..20 {
                let value = if n % 3 == 2 {
                    w * 100 + n - 2
                } else {
                    w * 100 + n
                };
                let mut body = domain_request(value);
                body["title"] = serde_json::json!(format!("write {w}/{n}"));
                let res = client
                    .post(&urls[n % 2])
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let body: serde_json::Value = res.json().await.unwrap();
                acknowledged.push(body["id"].as_str().unwrap().to_string());
            }
            acknowledged
        }
    }))
    .await;
    let mut acknowledged: Vec<String> = writes.into_iter().flatten().collect();
    acknowledged.sort();

    for replica in &replicas {
        let url = replica.url("/iocd/v1/changes?since=0&limit=1000");
        let page: serde_json::Value = client
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = page["value"].as_array().unwrap();
        let sequences: Vec<i64> = entries
            .iter()
            .map(|e| e["sequence"].as_i64().unwrap())
            .collect();
        assert_eq!(sequences, (1..=120).collect::<Vec<i64>>());
        let mut logged: Vec<String> = entries
            .iter()
            .map(|e| e["indicatorId"].as_str().unwrap().to_string())
            .collect();
        logged.sort();
        assert_eq!(logged, acknowledged);
        // Of each writer's 20 writes, 6 update a value it created (n = 2, 5, …, 17).
        let created = entries.iter().filter(|e| e["kind"] == "Created").count();
        assert_eq!(created, 6 * 14);
    }

    // A long-poll on replica 1 wakes (within its one-second re-read) for a write through 0.
    let poll = client
        .get(replicas[1].url("/iocd/v1/changes?since=120&wait=30"))
        .bearer_auth(&token)
        .send();
    let write = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        client
            .post(replicas[0].url("/api/indicators"))
            .bearer_auth(&token)
            .json(&domain_request(999))
            .send()
            .await
            .unwrap()
    };
    let started = std::time::Instant::now();
    let (polled, written) = tokio::join!(poll, write);
    assert_eq!(written.status(), 200);
    let page: serde_json::Value = polled.unwrap().json().await.unwrap();
    assert_eq!(page["nextSince"], 121, "{page}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
