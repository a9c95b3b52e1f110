//! The `iocd` binary: `apps create/list/delete` on SQLite and PostgreSQL, `serve` on an empty
//! database printing the development app, and `iocd token` against that server.

use std::process::Output;
use std::time::{Duration, Instant};

use iocd_testkit::{env, ScratchDatabase};
use serde_json::Value;

fn iocd(args: &[&str], database: &str) -> Output {
    crate::iocd()
        .command()
        .args(args)
        .env("IOCD_DATABASE_URL", database)
        .env_remove("RUST_LOG")
        .output()
        .expect("run iocd")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "iocd failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn apps_lifecycle(database: &str) {
    let tenant = uuid::Uuid::new_v4().to_string();
    let created = stdout_json(&iocd(
        &[
            "apps",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "SOAR connector",
            "--role",
            "Ti.ReadWrite",
            "--role",
            "Ti.Read.All",
        ],
        database,
    ));
    assert_eq!(created["tenantId"], tenant.as_str());
    let client_id = created["clientId"].as_str().unwrap().to_string();
    let secret = created["clientSecret"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&client_id).is_ok());
    assert!(secret.len() >= 40);

    // --database works as well as the environment variable.
    let listed = stdout_json(
        &crate::iocd()
            .command()
            .args(["apps", "list", "--database", database, "--tenant", &tenant])
            .env_remove("IOCD_DATABASE_URL")
            .output()
            .unwrap(),
    );
    let apps = listed.as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["clientId"], client_id.as_str());
    assert_eq!(apps[0]["displayName"], "SOAR connector");
    assert_eq!(
        apps[0]["roles"],
        serde_json::json!(["Ti.ReadWrite", "Ti.Read.All"])
    );
    let listing = serde_json::to_string(&listed).unwrap();
    assert!(!listing.contains(&secret), "the secret is never listed");

    // Bad input names what is wrong and stores nothing.
    let bad_role = iocd(
        &[
            "apps",
            "create",
            "--tenant",
            &tenant,
            "--name",
            "x",
            "--role",
            "ti.readwrite",
        ],
        database,
    );
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role 'ti.readwrite'"));
    let bad_tenant = iocd(
        &[
            "apps",
            "create",
            "--tenant",
            "a/b",
            "--name",
            "x",
            "--role",
            "Ti.ReadWrite",
        ],
        database,
    );
    assert!(!bad_tenant.status.success());
    assert!(String::from_utf8_lossy(&bad_tenant.stderr).contains("tenant id 'a/b' is invalid"));
    assert_eq!(
        stdout_json(&iocd(&["apps", "list"], database))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let deleted = stdout_json(&iocd(
        &[
            "apps",
            "delete",
            "--tenant",
            &tenant,
            "--client-id",
            &client_id,
        ],
        database,
    ));
    assert_eq!(deleted["deleted"], true);
    let again = iocd(
        &[
            "apps",
            "delete",
            "--tenant",
            &tenant,
            "--client-id",
            &client_id,
        ],
        database,
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no app with client id"));
    assert_eq!(
        stdout_json(&iocd(&["apps", "list"], database)),
        Value::Array(vec![])
    );
}

#[tokio::test]
async fn apps_commands_on_sqlite() {
    let db = ScratchDatabase::sqlite();
    tokio::task::spawn_blocking(move || apps_lifecycle(&db.url))
        .await
        .unwrap();
}

#[tokio::test]
async fn apps_commands_on_postgres() {
    let Some(admin) = env::postgres_url() else {
        return;
    };
    let db = ScratchDatabase::postgres(&admin).await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || apps_lifecycle(&url))
        .await
        .unwrap();
    drop(db);
}

/// `iocd keys rotate` twice, then `keys list`: one active key, two retired ones still published,
/// and the certificate commands refusing bad input by name.
#[tokio::test]
async fn keys_rotate_and_list_and_certificate_commands_refuse_bad_input() {
    let db = ScratchDatabase::sqlite();
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        let first = stdout_json(&iocd(&["keys", "rotate"], &url));
        // On an empty database there was nothing to retire.
        assert!(first["previousKid"].is_null(), "{first}");
        let second = stdout_json(&iocd(
            &["keys", "rotate", "--token-lifetime-secs", "600"],
            &url,
        ));
        assert_eq!(second["previousKid"], first["kid"]);
        assert!(second["previousKeyRetiresAt"].is_string());
        let listed = stdout_json(&iocd(&["keys", "list"], &url));
        let keys = listed.as_array().unwrap();
        assert_eq!(keys.len(), 2, "{listed}");
        assert_eq!(keys[0]["kid"], second["kid"]);
        assert_eq!(keys[0]["active"], true);
        assert_eq!(keys[1]["active"], false);
        assert_eq!(keys[1]["published"], true);
        assert!(
            !String::from_utf8_lossy(&iocd(&["keys", "list"], &url).stdout).contains("PRIVATE")
        );

        let missing = iocd(
            &[
                "apps",
                "create",
                "--tenant",
                "t1",
                "--name",
                "n",
                "--role",
                "Ti.Read.All",
                "--certificate",
                "/nonexistent.pem",
            ],
            &url,
        );
        assert!(!missing.status.success());
        assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.pem"));
        let not_pem = db.dir().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let refused = iocd(
            &[
                "apps",
                "create",
                "--tenant",
                "t1",
                "--name",
                "n",
                "--role",
                "Ti.Read.All",
                "--certificate",
                not_pem.to_str().unwrap(),
            ],
            &url,
        );
        assert!(!refused.status.success());
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("no certificate found"),
            "{}",
            String::from_utf8_lossy(&refused.stderr)
        );
        let nothing = iocd(
            &[
                "apps",
                "remove-certificate",
                "--tenant",
                "t1",
                "--client-id",
                "c",
                "--thumbprint",
                "AB:CD",
            ],
            &url,
        );
        assert!(!nothing.status.success());
        assert!(String::from_utf8_lossy(&nothing.stderr)
            .contains("has no certificate with thumbprint ABCD"));
    })
    .await
    .unwrap();
}

fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no '{label}' in {text}"))
        .trim()
        .to_string()
}

#[tokio::test]
async fn serve_on_an_empty_database_prints_working_development_credentials() {
    let db = ScratchDatabase::sqlite();
    let server = crate::iocd().serve().database(&db.url).start().await;
    let port = server.port();
    let text = server
        .wait_for_output("More apps:", Duration::from_secs(60))
        .await;
    let tenant = field(&text, "tenant id:");
    let client_id = field(&text, "client id:");
    let secret = field(&text, "client secret:");
    assert!(text.contains(&format!(
        "curl -s http://127.0.0.1:{port}/{tenant}/oauth2/v2.0/token"
    )));

    // `iocd token` (the client side of the contract) gets a token the API accepts.
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let token = loop {
        let output = crate::iocd()
            .command()
            .args([
                "token",
                "--url",
                &base,
                "--tenant",
                &tenant,
                "--client-id",
                &client_id,
            ])
            .env("IOCD_CLIENT_SECRET", &secret)
            .output()
            .unwrap();
        if output.status.success() {
            break String::from_utf8(output.stdout).unwrap().trim().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{output:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(token.split('.').count(), 3);
    let res = reqwest::Client::new()
        .post(format!("{base}/api/indicators"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "indicatorValue": "evil.example.com", "indicatorType": "DomainName",
            "action": "Block", "title": "t", "description": "d"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["createdBy"], client_id.as_str());
    assert_eq!(body["createdByDisplayName"], "iocd development app");

    // A wrong secret is refused with the token endpoint's own error.
    let refused = crate::iocd()
        .command()
        .args([
            "token",
            "--url",
            &base,
            "--tenant",
            &tenant,
            "--client-id",
            &client_id,
            "--client-secret",
            "wrong",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid_client"));

    // Exactly one app was created, and its secret is not listed.
    drop(server);
    let listed = stdout_json(&iocd(&["apps", "list"], &db.url));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!serde_json::to_string(&listed).unwrap().contains(&secret));
}

/// `--access-log on` writes a line per request; without it, requests leave no line.
#[tokio::test]
async fn a_line_per_request_only_with_the_access_log_on() {
    for (switch, logged) in [("on", true), ("off", false)] {
        let process = crate::iocd()
            .serve()
            .args(&["--in-memory", "--access-log", switch])
            .start()
            .await;
        let url = format!("{}/health?probe=access-log-{switch}", process.base_url());
        let status = reqwest::get(&url).await.unwrap().status();
        assert_eq!(status, 200);
        let deadline = Instant::now() + Duration::from_secs(5);
        let line = |output: &str| {
            output
                .lines()
                .any(|l| l.contains("/health") && l.contains("finished processing request"))
        };
        while logged && !line(&process.output()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let output = process.output();
        assert_eq!(line(&output), logged, "--access-log {switch}:\n{output}");
    }
}
