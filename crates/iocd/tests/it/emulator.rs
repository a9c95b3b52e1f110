//! `iocd serve --in-memory --emulator`: the well-known credentials, `--seed` at start and the
//! controls, as a test suite uses them.

use iocd_testkit::{client_credentials_token, status_json, NewAppCredentials, ScratchDatabase};
use serde_json::Value;

fn well_known() -> NewAppCredentials {
    NewAppCredentials {
        tenant_id: "10cd0000-0000-4000-8000-000000000001".into(),
        client_id: "10cd0000-0000-4000-8000-0000000000a1".into(),
        client_secret: "iocd-emulator-secret-not-for-production".into(),
    }
}

async fn list_values(client: &reqwest::Client, base: &str, token: &str) -> Vec<String> {
    let (status, body) = status_json(
        client
            .get(format!("{base}/api/indicators"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["indicatorValue"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn in_memory_emulator_has_well_known_credentials_seeds_and_resets() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.csv");
    std::fs::write(
        &seed,
        "IndicatorType,IndicatorValue,Action,Title,Description\n\
         DomainName,seeded.example.com,Block,seeded,from the seed\n\
         DomainName,not a domain!,Block,bad,refused\n",
    )
    .unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(
        &other,
        r#"[{"indicatorValue":"other.example.com","indicatorType":"DomainName","action":"Block","title":"t","description":"d"}]"#,
    )
    .unwrap();
    let process = crate::iocd()
        .serve()
        .unthrottled()
        .args(&["--in-memory", "--emulator", "--seed"])
        .arg(seed.to_str().unwrap())
        .arg("--seed")
        .arg(&format!("other-tenant={}", other.display()))
        .start()
        .await;
    let output = process.output();
    assert!(
        output.contains("line 3:") && output.contains("not a domain!"),
        "the refused row is reported with its line:\n{output}"
    );
    let client = reqwest::Client::new();
    let base = process.base_url();
    // The documented credentials work without reading the server's output.
    let token = client_credentials_token(&client, &base, &well_known()).await;
    assert_eq!(
        list_values(&client, &base, &token).await,
        ["seeded.example.com"]
    );

    let (status, body) = status_json(
        client
            .post(format!("{base}/_iocd/reset"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // One from the dev tenant, one from other-tenant.
    assert_eq!(body["indicatorsDeleted"], 2, "{body}");
    assert!(list_values(&client, &base, &token).await.is_empty());

    // reset?all=true deletes apps but provisions the well-known app again.
    let (status, body) = status_json(
        client
            .post(format!("{base}/_iocd/reset?all=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["appsDeleted"], 1);
    let token = client_credentials_token(&client, &base, &well_known()).await;
    // Seeding on demand defaults to the development tenant.
    let (status, report) = status_json(
        client
            .post(format!("{base}/_iocd/seed"))
            .header("content-type", "application/json")
            .body(std::fs::read(&other).unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["tenant"], well_known().tenant_id.as_str());
    assert_eq!(
        list_values(&client, &base, &token).await,
        ["other.example.com"]
    );

    // The in-memory store under concurrent writes and reads (the writer and the readers share
    // one database through SQLite's locks): every write lands, no call fails.
    let writes = (0..60).map(|n| {
        let client = client.clone();
        let (base, token) = (base.clone(), token.clone());
        async move {
            let res = client
                .post(format!("{base}/api/indicators"))
                .bearer_auth(&token)
                .json(&iocd_testkit::domain_request(n))
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    });
    let reads = (0..20).map(|_| {
        let client = client.clone();
        let (base, token) = (base.clone(), token.clone());
        async move {
            let res = client
                .get(format!("{base}/api/indicators?$top=5"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            res.status().as_u16()
        }
    });
    let (written, read) = futures::join!(
        futures::future::join_all(writes),
        futures::future::join_all(reads)
    );
    assert!(written.iter().all(|s| *s == 200), "{written:?}");
    assert!(read.iter().all(|s| *s == 200), "{read:?}");
    assert_eq!(list_values(&client, &base, &token).await.len(), 61);
}

#[tokio::test]
async fn dev_credentials_can_be_overridden_and_the_controls_are_off_by_default() {
    let database = ScratchDatabase::sqlite();
    let process = crate::iocd()
        .serve()
        .database(&database.url)
        .envs(&[
            ("IOCD_EMULATOR", "true"),
            ("IOCD_DEV_TENANT", "my-tenant"),
            ("IOCD_DEV_CLIENT_ID", "my-client"),
            ("IOCD_DEV_CLIENT_SECRET", "my-secret-value"),
        ])
        .start()
        .await;
    let client = reqwest::Client::new();
    let mine = NewAppCredentials {
        tenant_id: "my-tenant".into(),
        client_id: "my-client".into(),
        client_secret: "my-secret-value".into(),
    };
    client_credentials_token(&client, &process.base_url(), &mine).await;
    // The default credentials are not provisioned when overridden.
    let res = client
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            process.base_url(),
            well_known().tenant_id
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", well_known().client_id.as_str()),
            ("client_secret", well_known().client_secret.as_str()),
            ("scope", "https://api.securitycenter.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    drop(process);

    // The same database without --emulator: the controls do not exist.
    let process = crate::iocd().serve().database(&database.url).start().await;
    let (status, body): (u16, Value) = status_json(
        client
            .post(process.url("/_iocd/reset"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NotFound");
    // The emulator's app from the earlier run is still a working app (it is a database row).
    client_credentials_token(&client, &process.base_url(), &mine).await;
}

/// `iocd import` survives 429s and 503s on a fifth of its calls (plus one certain 503), and
/// every row lands exactly once.
#[tokio::test]
async fn import_survives_injected_429_and_503() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.csv");
    let mut csv = String::from("IndicatorType,IndicatorValue,Action,Title,Description\n");
    for n in 0..2_000 {
        csv.push_str(&format!("DomainName,host{n}.import.example,Block,t,d\n"));
    }
    std::fs::write(&file, csv).unwrap();
    let process = crate::iocd()
        .serve()
        .unthrottled()
        .args(&["--in-memory", "--emulator"])
        .args(&["--fault", r#"{"family":"import","status":503,"count":1}"#])
        .args(&[
            "--fault",
            r#"{"family":"import","status":429,"probability":0.1}"#,
        ])
        .args(&[
            "--fault",
            r#"{"family":"import","status":503,"probability":0.11}"#,
        ])
        .start()
        .await;
    let app = well_known();
    let output = crate::iocd()
        .command()
        .args(["import", file.to_str().unwrap()])
        .env("IOCD_URL", process.base_url())
        .env_remove("IOCD_TOKEN")
        .env("IOCD_TENANT_ID", &app.tenant_id)
        .env("IOCD_CLIENT_ID", &app.client_id)
        .env("IOCD_CLIENT_SECRET", &app.client_secret)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        process.output()
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("imported 2000, failed 0"));
    let injected = process.output().matches("injecting a fault").count();
    assert!(
        injected >= 1,
        "no fault was injected:\n{}",
        process.output()
    );
    let client = reqwest::Client::new();
    let token = client_credentials_token(&client, &process.base_url(), &app).await;
    let mut values = std::collections::HashSet::new();
    let mut url = format!("{}/api/indicators?$top=10000", process.base_url());
    loop {
        let (status, body) =
            status_json(client.get(&url).bearer_auth(&token).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        for item in body["value"].as_array().unwrap() {
            assert!(
                values.insert(item["indicatorValue"].as_str().unwrap().to_string()),
                "a row landed twice"
            );
        }
        match body["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(values.len(), 2_000);
}
