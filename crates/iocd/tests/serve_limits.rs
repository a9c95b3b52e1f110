//! `iocd serve`'s rate-limit settings, through the real binary: flags and environment variables
//! reach the server, and mistakes stop it with a message saying what is wrong.

mod common;

use common::*;

/// Arguments, environment, and what the error message must contain.
type MistakeCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn mistaken_rate_limit_settings_stop_the_server_with_a_clear_message() {
    let cases: [MistakeCase; 5] = [
        (
            &["--rate-limit", "submit=100"],
            &[],
            "window \"100\" has no '/'",
        ),
        (
            &["--rate-limit", "submit=100/1w"],
            &[],
            "unknown unit \"w\"",
        ),
        (
            &["--rate-limit", "submit=0/1m"],
            &[],
            "limit must be at least 1",
        ),
        (
            &[],
            &[("IOCD_RATE_LIMIT", "submit=5/1m;upload=1/1s")],
            "unknown rate-limit family \"upload\"",
        ),
        (&["--rate-limits", "maybe"], &[], "invalid value 'maybe'"),
    ];
    for (args, envs, expected) in cases {
        let mut full_args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "sqlite::memory:",
        ];
        full_args.extend_from_slice(args);
        let (success, _, stderr) = run_iocd(&full_args, envs);
        assert!(!success, "{args:?} {envs:?} should be refused");
        assert!(stderr.contains(expected), "{args:?} {envs:?}: {stderr}");
    }
}

#[test]
fn an_unusable_redis_url_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("iocd.db").display());
    let (success, _, stderr) = run_iocd(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &database,
            "--redis",
            "http://cache:6379",
        ],
        &[],
    );
    assert!(!success);
    assert!(stderr.contains("invalid Redis URL"), "{stderr}");
}

#[tokio::test]
async fn environment_settings_apply_and_limits_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("iocd.db").display());
    let envs = [
        ("IOCD_DATABASE_URL", database.as_str()),
        ("IOCD_RATE_LIMIT", "submit=2/1h;get=off"),
    ];
    let app = create_app(
        &database,
        "11111111-1111-1111-1111-111111111111",
        "limits test",
    );
    let client = reqwest::Client::new();
    {
        let server = ServerProcess::start(&[], &envs).await;
        let token = fetch_token(&server.base_url, &app).await;
        for n in 0..2 {
            let res = client
                .post(server.url("/api/indicators"))
                .bearer_auth(&token)
                .json(&domain_request(n))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
        let refused = client
            .post(server.url("/api/indicators"))
            .bearer_auth(&token)
            .json(&domain_request(2))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 429);
        assert_eq!(refused.headers()["retry-after"], "1800");
        for _ in 0..120 {
            let res = client
                .get(server.url("/api/indicators/1"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "get=off leaves reads unlimited");
        }
    }
    let server = ServerProcess::start(&["--rate-limits", "off"], &envs).await;
    let token = fetch_token(&server.base_url, &app).await;
    for n in 2..7 {
        let res = client
            .post(server.url("/api/indicators"))
            .bearer_auth(&token)
            .json(&domain_request(n))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
}
