//! `iocd serve --config FILE` and `iocd config check FILE`: keys are serve's long flag names;
//! flags beat environment variables, which beat the file, which beats the defaults.

use iocd_testkit::*;
use serde_json::json;

/// `iocd config check FILE`, run to the end.
fn config_check(file: &str) -> std::process::Output {
    crate::iocd()
        .command()
        .args(["config", "check", file])
        .output()
        .unwrap()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Whether a submit with a body of about 1,500 bytes is accepted (`max-body-bytes` decides).
async fn accepts_1500_bytes(process: &IocdProcess) -> bool {
    let client = reqwest::Client::new();
    let token = client_credentials_token(
        &client,
        &process.base_url(),
        &NewAppCredentials {
            tenant_id: iocd_identity::EMULATOR_TENANT_ID.to_string(),
            client_id: iocd_identity::EMULATOR_CLIENT_ID.to_string(),
            client_secret: iocd_identity::EMULATOR_CLIENT_SECRET.to_string(),
        },
    )
    .await;
    let res = client
        .post(process.url("/api/indicators"))
        .bearer_auth(token)
        .json(
            &json!({"indicatorValue": "big.example", "indicatorType": "DomainName",
            "action": "Block", "title": "t", "description": "d".repeat(1400)}),
        )
        .send()
        .await
        .unwrap();
    match res.status().as_u16() {
        200 => true,
        413 => false,
        other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
    }
}

#[tokio::test]
async fn flags_beat_environment_beat_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "iocd.toml",
        r#"
in-memory = true
emulator = true
max-body-bytes = 1000
rate-limit = ["submit=100/1m", "list=off"]
journal-size = 5
"#,
    );
    let check = config_check(&file);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("ok (5 settings)"));

    // The file alone: the emulator is on (a file setting), bodies above 1,000 bytes are refused.
    let process = crate::iocd()
        .serve()
        .args(&["--config", &file])
        .start()
        .await;
    let res = reqwest::get(process.url("/_iocd/requests")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(!accepts_1500_bytes(&process).await);
    drop(process);

    // The environment beats the file.
    let process = crate::iocd()
        .serve()
        .args(&["--config", &file])
        .env("IOCD_MAX_BODY_BYTES", "4000")
        .start()
        .await;
    assert!(accepts_1500_bytes(&process).await);
    drop(process);

    // A flag beats the environment; IOCD_CONFIG names the file as --config does.
    let process = crate::iocd()
        .serve()
        .args(&["--max-body-bytes", "1200"])
        .env("IOCD_MAX_BODY_BYTES", "4000")
        .env("IOCD_CONFIG", &file)
        .start()
        .await;
    assert!(!accepts_1500_bytes(&process).await);
    let res = reqwest::get(process.url("/_iocd/requests")).await.unwrap();
    assert_eq!(res.status(), 200, "the file applies through IOCD_CONFIG");
}

#[tokio::test]
async fn unknown_keys_and_bad_values_are_errors_that_name_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "bad.toml",
        "listen = \"127.0.0.1:0\"\nlisen = \"x\"\ncolour = \"blue\"\n",
    );
    for args in [
        vec!["config", "check", file.as_str()],
        vec!["serve", "--in-memory", "--config", file.as_str()],
    ] {
        let out = crate::iocd().command().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("'lisen'") && stderr.contains("'colour'"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("'listen'"), "{stderr}");
    }
    let file = write(&dir, "value.toml", "max-body-bytes = \"lots\"\n");
    let out = config_check(&file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lots") && stderr.contains("--max-body-bytes"),
        "{stderr}"
    );
    let file = write(&dir, "broken.toml", "listen = \n");
    let out = config_check(&file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid TOML"));
}
