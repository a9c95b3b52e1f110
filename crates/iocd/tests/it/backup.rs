//! `iocd backup` under write load and `iocd restore`: every write acknowledged before the
//! backup began is in the restored copy, which passes `PRAGMA integrity_check`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iocd_testkit::*;
use serde_json::json;

/// Every `indicatorValue` the server at `base` lists.
async fn all_values(client: &reqwest::Client, base: &str, token: &str) -> HashSet<String> {
    let mut values = HashSet::new();
    let mut url = format!("{base}/api/indicators?$top=10000");
    loop {
        let (status, body) =
            status_json(client.get(&url).bearer_auth(token).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        for item in body["value"].as_array().unwrap() {
            values.insert(item["indicatorValue"].as_str().unwrap().to_string());
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => return values,
        }
    }
}

#[tokio::test]
async fn backup_under_write_load_restores_every_acknowledged_write() {
    let db = ScratchDatabase::sqlite();
    let server = crate::iocd()
        .serve()
        .unthrottled()
        .database(&db.url)
        .start()
        .await;
    let base = server.base_url();
    let app = crate::iocd().create_app(&db.url, TENANT, "backup test", "Ti.ReadWrite.All");
    let token = client_credentials_token(&reqwest::Client::new(), &base, &app).await;

    // Four writers, each submitting distinct indicators as fast as they are acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (stop, acknowledged, next) = (stop.clone(), acknowledged.clone(), next.clone());
        let (client, base, token) = (reqwest::Client::new(), base.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let value = format!("host{n}.backup.example");
                let res = client
                    .post(format!("{base}/api/indicators"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"indicatorValue": value, "indicatorType": "DomainName",
                        "action": "Block", "title": "t", "description": "d"}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                acknowledged.lock().unwrap().push((value, Instant::now()));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("iocd.backup");
    let began = Instant::now();
    let backup = {
        let (url, file) = (db.url.clone(), file.clone());
        tokio::task::spawn_blocking(move || {
            crate::iocd()
                .command()
                .args(["backup", "--database", &url, "--output"])
                .arg(&file)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    // Writes went on during the backup.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&backup.stdout).unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let before: Vec<&String> = acknowledged
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(v, _)| v)
        .collect();
    let during = acknowledged.len() - before.len();
    assert!(before.len() > 20, "too little load: {}", before.len());
    assert!(during > 0, "no write during the backup");
    assert!(report["indicators"].as_i64().unwrap() >= before.len() as i64);

    // A backup never overwrites a file.
    let again = crate::iocd()
        .command()
        .args(["backup", "--database", &db.url, "--output"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    // Restoring into the live, non-empty store is refused, naming why.
    let refused = crate::iocd()
        .command()
        .args(["restore", "--input"])
        .arg(&file)
        .args(["--database", &db.url])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("not empty") && why.contains("indicators"),
        "{why}"
    );
    drop(server);

    let restored_path = dir.path().join("restored.db");
    let restored_url = format!("sqlite://{}", restored_path.display());
    let restored = crate::iocd()
        .command()
        .args(["restore", "--input"])
        .arg(&file)
        .args(["--database", &restored_url])
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(
        iocd_store::backup::integrity_check(&restored_path)
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(
        iocd_store::backup::integrity_check(&file).await.unwrap(),
        "ok"
    );

    // The restored store serves every write acknowledged before the backup began, and has the
    // app (its secret still gets a token).
    let server = crate::iocd()
        .serve()
        .unthrottled()
        .database(&restored_url)
        .start()
        .await;
    let client = reqwest::Client::new();
    let token = client_credentials_token(&client, &server.base_url(), &app).await;
    let values = all_values(&client, &server.base_url(), &token).await;
    let missing: Vec<&&String> = before.iter().filter(|v| !values.contains(**v)).collect();
    assert!(missing.is_empty(), "lost after restore: {missing:?}");
    let all: HashSet<&String> = acknowledged.iter().map(|(v, _)| v).collect();
    assert!(
        values.iter().all(|v| all.contains(v)),
        "a value nobody wrote"
    );
}

#[tokio::test]
async fn backup_and_restore_refuse_what_they_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| crate::iocd().command().args(args).output().unwrap();
    let out = run(&[
        "backup",
        "--database",
        "postgres://postgres@127.0.0.1:5432/test",
        "--output",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    let missing = format!("sqlite://{}", dir.path().join("none.db").display());
    let out = run(&[
        "backup",
        "--database",
        &missing,
        "--output",
        dir.path().join("y").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let not_iocd = dir.path().join("garbage.db");
    std::fs::write(&not_iocd, b"this is not a database").unwrap();
    let out = run(&[
        "restore",
        "--input",
        not_iocd.to_str().unwrap(),
        "--database",
        &missing,
    ]);
    assert!(!out.status.success());
}
