//! `iocd import` / `iocd export` run as the real binary against a real `iocd serve` (SQLite).

use std::path::Path;
use std::process::Output;

use iocd_testkit::{IocdProcess, NewAppCredentials, ScratchDatabase};
use serde_json::Value;

struct Server {
    url: String,
    /// The `Ti.ReadWrite.All` app the CLI authenticates as.
    app: NewAppCredentials,
    _process: IocdProcess,
    _database: ScratchDatabase,
}

async fn start_server() -> Server {
    start_server_limited(None).await
}

/// A server with the given `IOCD_RATE_LIMIT` spec, or with rate limits off; the quota is off.
async fn start_server_limited(rate_limit: Option<&str>) -> Server {
    let database = ScratchDatabase::sqlite();
    // Registered as an operator would, with `iocd apps create` on the server's database.
    let app = crate::iocd().create_app(
        &database.url,
        "00000000-0000-0000-0000-00000000c0de",
        "importer",
        "Ti.ReadWrite.All",
    );
    let serve = crate::iocd().serve().database(&database.url);
    let serve = match rate_limit {
        Some(spec) => serve
            .env("IOCD_MAX_ACTIVE_INDICATORS", "0")
            .env("IOCD_RATE_LIMIT", spec),
        None => serve.unthrottled(),
    };
    let process = serve.start().await;
    Server {
        url: process.base_url(),
        app,
        _process: process,
        _database: database,
    }
}

fn iocd(server: &Server, args: &[&str]) -> Output {
    crate::iocd()
        .command()
        .args(args)
        .env("IOCD_URL", &server.url)
        .env_remove("IOCD_TOKEN")
        .env("IOCD_TENANT_ID", &server.app.tenant_id)
        .env("IOCD_CLIENT_ID", &server.app.client_id)
        .env("IOCD_CLIENT_SECRET", &server.app.client_secret)
        .output()
        .unwrap()
}

fn import(server: &Server, file: &Path) -> Output {
    iocd(server, &["import", file.to_str().unwrap()])
}

fn export(server: &Server, format: &str, file: &Path) -> Vec<u8> {
    let out = iocd(
        server,
        &[
            "export",
            "--format",
            format,
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(file).unwrap()
}

/// Every indicator on the server, through the list API.
fn list(server: &Server) -> Vec<Value> {
    let out = iocd(server, &["export", "--format", "json"]);
    assert!(out.status.success());
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

#[tokio::test]
async fn csv_of_500_rows_with_bad_rows_reports_each_by_line() {
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("IndicatorType,IndicatorValue,ExpirationTime,Action,Severity,Title,Description,RecommendedActions,RbacGroups,Category,MitreTechniques,GenerateAlert\n");
    // Data row n is on physical line n + 2 (the header is line 1).
    let bad = [7usize, 123, 250, 499];
    for n in 0..500 {
        let row = match n {
            7 => "FileSha1,not-a-hash,,Block,High,t,d,,,,,\n".to_string(),
            123 => format!("Domain,host{n}.example,,Block,High,t,d,,,,,\n"),
            250 => format!("DomainName,host{n}.example,,Audit,High,t,d,,,,,False\n"),
            499 => format!("DomainName,host{n}.example,,Block\n"),
            _ => format!("DomainName,host{n}.example,2099-01-01T00:00:00.0Z,Block,Medium,title {n},\"desc, {n}\",,\"g1,g2\",,,True\n"),
        };
        csv.push_str(&row);
    }
    let file = dir.path().join("indicators.csv");
    std::fs::write(&file, csv).unwrap();
    let out = import(&server, &file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("imported 496, failed 4"), "{stdout}");
    for n in bad {
        assert!(
            stderr.contains(&format!("line {}: ", n + 2)),
            "no report for line {}: {stderr}",
            n + 2
        );
    }
    assert!(stderr.contains("indicatorValue"), "{stderr}");
    assert!(stderr.contains("generateAlert"), "{stderr}");
    let all = list(&server);
    assert_eq!(all.len(), 496);
    assert_eq!(all[0]["rbacGroupNames"], serde_json::json!(["g1", "g2"]));

    // A clean file exits 0.
    let file = dir.path().join("good.csv");
    std::fs::write(
        &file,
        "IndicatorType,IndicatorValue,Action,Title,Description\nDomainName,ok.example,Block,t,d\n",
    )
    .unwrap();
    let out = import(&server, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One import call per two seconds: 1,100 rows take three calls, so `iocd import` meets 429
/// with `Retry-After` twice. It must wait as told and land every row (without waiting it would
/// fail the second batch), and an export, another endpoint family, is not held up by it.
#[tokio::test]
async fn import_waits_out_the_rate_limit() {
    let server = start_server_limited(Some("import=1/2s")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("IndicatorType,IndicatorValue,Action,Title,Description\n");
    for n in 0..1_100 {
        csv.push_str(&format!("DomainName,throttled{n}.example,Block,t,d\n"));
    }
    let file = dir.path().join("many.csv");
    std::fs::write(&file, csv).unwrap();
    let out = import(&server, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("imported 1100, failed 0"), "{stdout}");
    assert_eq!(list(&server).len(), 1_100);
}

#[tokio::test]
async fn export_import_export_is_identical() {
    let first = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        serde_json::json!([
            {"indicatorValue": "evil.example", "indicatorType": "DomainName", "action": "Block", "title": "a, \"quoted\"", "description": "multi\nline", "severity": "High", "rbacGroupNames": ["g,1", "g2"], "expirationTime": "2099-01-01T00:00:00Z", "generateAlert": true, "mitreTechniques": ["T1566"], "category": 1},
            {"indicatorValue": "https://evil.example/p?q=1", "indicatorType": "Url", "action": "Warn", "title": "u", "description": "d", "educateUrl": "https://help.example", "application": "app"},
            {"indicatorValue": "2233223322332233223322332233223322332233223322332233223322332222", "indicatorType": "FileSha256", "action": "Audit", "generateAlert": true, "title": "h", "description": "d", "rbacGroupIds": ["7"]},
            {"indicatorValue": "8.8.4.4", "indicatorType": "IpAddress", "action": "Allowed", "title": "ip", "description": "d", "recommendedActions": "none"}
        ])
        .to_string(),
    )
    .unwrap();
    let out = import(&first, &seed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for format in ["csv", "json"] {
        let exported = export(&first, format, &dir.path().join(format!("one.{format}")));
        // Into a fresh server, and out again.
        let second = start_server().await;
        let out = import(&second, &dir.path().join(format!("one.{format}")));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let again = export(&second, format, &dir.path().join(format!("two.{format}")));
        assert_eq!(
            String::from_utf8_lossy(&exported),
            String::from_utf8_lossy(&again),
            "{format}"
        );
    }
    // STIX carries the creation time (created/valid_from), which only the server that created
    // an indicator knows, so its round trip goes back into the same server: an in-place update.
    let exported = export(&first, "stix", &dir.path().join("one.stix"));
    let out = import(&first, &dir.path().join("one.stix"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = export(&first, "stix", &dir.path().join("two.stix"));
    assert_eq!(exported, again);
    assert_eq!(list(&first).len(), 4);
}

#[tokio::test]
async fn stix_bundle_imports_supported_patterns_and_skips_the_rest() {
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = serde_json::json!({
        "type": "bundle", "id": "bundle--6f9b3b6e-3f0a-4a52-9f3b-000000000001",
        "objects": [
            {"type": "identity", "spec_version": "2.1", "id": "identity--6f9b3b6e-3f0a-4a52-9f3b-000000000002", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "ACME"},
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f9b3b6e-3f0a-4a52-9f3b-000000000003", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "bad hash", "pattern": "[file:hashes.'SHA-256' = '2233223322332233223322332233223322332233223322332233223322332222']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"},
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f9b3b6e-3f0a-4a52-9f3b-000000000004", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "c2", "pattern": "[ipv4-addr:value = '198.51.100.7']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z"},
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f9b3b6e-3f0a-4a52-9f3b-000000000005", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "v6", "pattern": "[ipv6-addr:value = '2001:4860:4860::8888']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"},
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f9b3b6e-3f0a-4a52-9f3b-000000000006", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "phish", "pattern": "[domain-name:value = 'phish.example']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"},
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f9b3b6e-3f0a-4a52-9f3b-000000000007", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "url", "pattern": "[url:value = 'https://phish.example/login']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"},
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f9b3b6e-3f0a-4a52-9f3b-000000000008", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "email", "pattern": "[email-addr:value = 'x@phish.example']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"},
            {"type": "indicator", "spec_version": "2.1", "id": "indicator--6f9b3b6e-3f0a-4a52-9f3b-000000000009", "created": "2024-01-01T00:00:00.000Z", "modified": "2024-01-01T00:00:00.000Z", "name": "two", "pattern": "[domain-name:value = 'a.example'] OR [domain-name:value = 'b.example']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"}
        ]
    });
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, bundle.to_string()).unwrap();
    let out = import(&server, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("imported 5, failed 0, skipped 3"),
        "{stdout}{stderr}"
    );
    assert!(stderr.contains("item 7: skipped"), "{stderr}");
    let mut values: Vec<String> = list(&server)
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["indicatorType"].as_str().unwrap(),
                i["indicatorValue"].as_str().unwrap()
            )
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        vec![
            "DomainName phish.example",
            "FileSha256 2233223322332233223322332233223322332233223322332233223322332222",
            "IpAddress 198.51.100.7",
            "IpAddress 2001:4860:4860::8888",
            "Url https://phish.example/login",
        ]
    );
}

fn import_csv(server: &Server, dir: &Path, name: &str, values: &[&str]) {
    let mut csv = String::from("IndicatorType,IndicatorValue,Action,Title,Description\n");
    for value in values {
        csv.push_str(&format!("DomainName,{value},Block,t,d\n"));
    }
    let file = dir.join(name);
    std::fs::write(&file, csv).unwrap();
    let out = import(server, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `iocd changes --follow` with `extra` arguments against `url`, authenticating with
/// `app`'s client credentials; the lines it prints arrive on the receiver.
fn follow_changes(
    url: &str,
    app: &NewAppCredentials,
    extra: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut follow = crate::iocd()
        .command()
        .args(["changes", "--follow"])
        .args(extra)
        .env("IOCD_URL", url)
        .env_remove("IOCD_TOKEN")
        .env("IOCD_TENANT_ID", &app.tenant_id)
        .env("IOCD_CLIENT_ID", &app.client_id)
        .env("IOCD_CLIENT_SECRET", &app.client_secret)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    (follow, rx)
}

/// `iocd changes` prints the feed as JSON lines and stops at its end; `--since` skips what was
/// seen; `--follow` keeps printing entries as they commit.
#[tokio::test]
async fn changes_prints_the_feed_as_json_lines_and_follows_it() {
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    import_csv(
        &server,
        dir.path(),
        "one.csv",
        &["a.example", "b.example", "c.example"],
    );

    let out = iocd(&server, &["changes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let values: Vec<&str> = lines
        .iter()
        .map(|e| e["indicatorValue"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["a.example", "b.example", "c.example"]);
    assert!(lines.iter().all(|e| e["kind"] == "Created"));
    let out = iocd(&server, &["changes", "--since", "2"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("c.example"), "{text}");

    let (mut follow, rx) = follow_changes(&server.url, &server.app, &["--since", "3"]);
    import_csv(&server, dir.path(), "two.csv", &["d.example"]);
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the follower prints the new entry");
    follow.kill().unwrap();
    let _ = follow.wait();
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["indicatorValue"], "d.example");
    assert_eq!(entry["sequence"], 4);
}

/// `iocd changes --follow` with client credentials outlives its token: tokens here live 60 s
/// with no leeway, and an entry written after that still reaches the follower.
#[tokio::test]
async fn changes_follow_renews_an_expired_token() {
    let database = ScratchDatabase::sqlite();
    let process = crate::iocd()
        .serve()
        .database(&database.url)
        .unthrottled()
        .env("IOCD_TOKEN_LIFETIME_SECS", "60")
        .env("IOCD_TOKEN_LEEWAY_SECS", "0")
        .start()
        .await;
    let app = crate::iocd().create_app(
        &database.url,
        "00000000-0000-0000-0000-00000000f011",
        "follower",
        "Ti.ReadWrite.All",
    );
    let (mut follow, rx) = follow_changes(&process.base_url(), &app, &["--wait", "2"]);
    tokio::time::sleep(std::time::Duration::from_secs(63)).await;
    assert!(
        follow.try_wait().unwrap().is_none(),
        "the follower stopped when its token expired"
    );
    let token = crate::iocd()
        .output(
            &["token", "--url", &process.base_url()],
            &[
                ("IOCD_TENANT_ID", &app.tenant_id),
                ("IOCD_CLIENT_ID", &app.client_id),
                ("IOCD_CLIENT_SECRET", &app.client_secret),
            ],
        )
        .stdout;
    let created = reqwest::Client::new()
        .post(process.url("/api/indicators"))
        .bearer_auth(String::from_utf8(token).unwrap().trim())
        .json(&serde_json::json!({
            "indicatorValue": "after-expiry.example", "indicatorType": "DomainName",
            "action": "Block", "title": "t", "description": "d"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the follower prints the entry written after its first token expired");
    follow.kill().unwrap();
    let _ = follow.wait();
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["indicatorValue"], "after-expiry.example");
}

/// `iocd serve --sweep-interval 200ms` deletes an indicator soon after its expirationTime and
/// logs the deletion as Expired; a live one stays.
#[tokio::test]
async fn the_sweeper_deletes_expired_indicators_on_time_and_logs_them() {
    let database = ScratchDatabase::sqlite();
    let process = crate::iocd()
        .serve()
        .database(&database.url)
        .unthrottled()
        .env("IOCD_SWEEP_INTERVAL", "200ms")
        .start()
        .await;
    let token = crate::iocd()
        .token_for_new_app(&database.url, &process.base_url())
        .await;
    let client = reqwest::Client::new();
    use iocd_domain::time::{from_ticks, to_ticks};
    // Ticks are 100 ns: 20,000,000 make two seconds.
    let expires = from_ticks(to_ticks(iocd_domain::time::now()) + 20_000_000);
    for (value, expiry) in [("short.example", Some(expires)), ("long.example", None)] {
        let mut body = serde_json::json!({
            "indicatorValue": value, "indicatorType": "DomainName", "action": "Block",
            "title": "t", "description": "d"
        });
        if let Some(at) = expiry {
            body["expirationTime"] = serde_json::json!(at.to_rfc3339());
        }
        let res = client
            .post(process.url("/api/indicators"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(database.scalar("SELECT COUNT(*) FROM indicators").await, 2);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while database.scalar("SELECT COUNT(*) FROM indicators").await != 1 {
        assert!(std::time::Instant::now() < deadline, "not swept");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let swept_at = iocd_domain::time::now();
    assert!(swept_at >= expires, "swept before it expired");
    assert!(
        swept_at < from_ticks(to_ticks(expires) + 20_000_000),
        "swept late: {swept_at} for {expires}"
    );
    let page: Value = client
        .get(process.url("/iocd/v1/changes"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<(&str, &str)> = page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["indicatorValue"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("Created", "short.example"),
            ("Created", "long.example"),
            ("Expired", "short.example")
        ]
    );
}

/// `iocd feed` writes a feed to a file (for cron), with options, and fails on a bad format.
#[tokio::test]
async fn feed_writes_a_feed_to_a_file() {
    let server = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        r#"[{"indicatorValue":"evil.example","indicatorType":"DomainName","action":"Block","title":"t","description":"d"},
            {"indicatorValue":"203.0.113.9","indicatorType":"IpAddress","action":"Block","title":"t","description":"d"}]"#,
    )
    .unwrap();
    let out = import(&server, &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("block.txt");
    let out = iocd(
        &server,
        &[
            "feed",
            "edl-domain",
            "--option",
            "subdomains=false",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "evil.example\n");
    let out = iocd(&server, &["feed", "rpz"]);
    assert!(out.status.success());
    let rpz = String::from_utf8(out.stdout).unwrap();
    assert!(rpz.contains("32.9.113.0.203.rpz-ip CNAME ."), "{rpz}");
    let out = iocd(
        &server,
        &["feed", "nope", "--output", file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown feed format"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "evil.example\n",
        "kept on failure"
    );
}
