//! `iocd serve`'s rate-limit settings, through the real binary: flags and environment variables
//! reach the server, and mistakes stop it with a message saying what is wrong.

use iocd_testkit::{client_credentials_token, domain_request, ScratchDatabase};

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
        let output = crate::iocd().output(&full_args, envs);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{args:?} {envs:?} should be refused"
        );
        assert!(stderr.contains(expected), "{args:?} {envs:?}: {stderr}");
    }
}

#[test]
fn an_unusable_redis_url_stops_the_server() {
    let database = ScratchDatabase::sqlite();
    let output = crate::iocd().output(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &database.url,
            "--redis",
            "http://cache:6379",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("invalid Redis URL"), "{stderr}");
}

#[tokio::test]
async fn environment_settings_apply_and_limits_can_be_switched_off() {
    let database = ScratchDatabase::sqlite();
    let envs = [
        ("IOCD_DATABASE_URL", database.url.as_str()),
        ("IOCD_RATE_LIMIT", "submit=2/1h;get=off"),
    ];
    let app = crate::iocd().create_app(
        &database.url,
        "11111111-1111-1111-1111-111111111111",
        "limits test",
        "Ti.ReadWrite.All",
    );
    let client = reqwest::Client::new();
    {
        let server = crate::iocd().serve().envs(&envs).start().await;
        let token = client_credentials_token(&client, &server.base_url(), &app).await;
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
    let server = crate::iocd()
        .serve()
        .args(&["--rate-limits", "off"])
        .envs(&envs)
        .start()
        .await;
    let token = client_credentials_token(&client, &server.base_url(), &app).await;
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
