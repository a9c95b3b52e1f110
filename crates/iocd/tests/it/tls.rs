//! HTTPS and interception over real TLS: the real `iocd` binary, and reqwest trusting only
//! iocd's CA (no built-in roots). Covers the local CA (`iocd ca`, shared and race-free on both
//! backends), the HTTPS listener (names, TLS 1.2 and 1.3, the URLs it makes up), bringing your
//! own certificate, and CONNECT interception (Microsoft hosts tunnelled into iocd with the same
//! limits, other hosts refused, `--intercept off`).

use iocd_testkit::{
    client_credentials_token, domain_request, free_port, IocdProcess, NewAppCredentials,
    ScratchDatabase,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::iocd;

/// `iocd ca` for `database`: the CA certificate PEM.
fn print_ca(database: &str) -> String {
    let output = iocd().output(&["ca", "--database", database], &[]);
    assert!(
        output.status.success(),
        "iocd ca failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Registers a `Ti.ReadWrite.All` app as an operator would.
fn create_app(database: &str, tenant: &str, name: &str) -> NewAppCredentials {
    iocd().create_app(database, tenant, name, "Ti.ReadWrite.All")
}

/// A client that trusts iocd's CA and nothing else.
fn client_trusting(ca_pem: &str) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .no_proxy()
}

/// `iocd serve` over a fresh SQLite database with an HTTPS listener, plus `extra` arguments.
async fn https_server(extra: &[&str]) -> (IocdProcess, ScratchDatabase, u16) {
    let database = ScratchDatabase::sqlite();
    let https_port = free_port();
    let https_listen = format!("127.0.0.1:{https_port}");
    let server = iocd()
        .serve()
        .database(&database.url)
        .unthrottled()
        .args(&["--https-listen", &https_listen, "--dev-app", "false"])
        .args(extra)
        .start()
        .await;
    (server, database, https_port)
}

/// Processes started together on a fresh (migrated) database all print the same CA, and it
/// stays the same afterwards.
async fn the_ca_is_created_once_by_racing_processes() {
    let database = ScratchDatabase::for_current_backend().await;
    // Migrate first: the race under test is the CA's creation, not the migrations'.
    let migrated = iocd().output(&["apps", "list", "--database", &database.url], &[]);
    assert!(migrated.status.success());
    let racers: Vec<_> = (0..4)
        .map(|_| {
            iocd()
                .command()
                .args(["ca", "--database", &database.url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let printed: Vec<String> = racers
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        })
        .collect();
    assert!(printed[0].starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(printed.iter().all(|pem| *pem == printed[0]));
    assert_eq!(print_ca(&database.url), printed[0]);
}

iocd_testkit::on_every_backend!(the_ca_is_created_once_by_racing_processes);

#[tokio::test]
async fn the_https_listener_serves_the_same_application_with_a_certificate_from_the_ca() {
    let (server, database, https_port) = https_server(&["--tls-name", "iocd.test"]).await;
    let ca = print_ca(&database.url);
    let app = create_app(&database.url, "tenant-https", "https");
    let client = client_trusting(&ca)
        .resolve("iocd.test", ([127, 0, 0, 1], https_port).into())
        .build()
        .unwrap();
    for base in [
        format!("https://localhost:{https_port}"),
        format!("https://127.0.0.1:{https_port}"),
        format!("https://iocd.test:{https_port}"),
    ] {
        let health = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(health.status(), 200, "{base}");
    }
    // A token from the HTTPS token endpoint works on both listeners (same state).
    let base = format!("https://localhost:{https_port}");
    let token = client_credentials_token(&client, &base, &app).await;
    let created = client
        .post(format!("{base}/api/indicators"))
        .bearer_auth(&token)
        .json(&domain_request(1))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        created["@odata.context"],
        format!("{base}/api/$metadata#Indicators/$entity")
    );
    let id = created["id"].as_str().expect("ids are strings");
    let plain = reqwest::Client::new()
        .get(server.url(&format!("/api/indicators/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let listed: Value = client
        .get(format!("{base}/api/v1.0/indicators"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["@odata.context"],
        format!("{base}/api/v1.0/$metadata#Indicators")
    );
}

#[tokio::test]
async fn the_https_listener_speaks_tls_1_2_and_1_3_and_http_2() {
    let (_server, database, https_port) = https_server(&[]).await;
    let ca = print_ca(&database.url);
    let url = format!("https://localhost:{https_port}/health");
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let client = client_trusting(&ca)
            .min_tls_version(version)
            .max_tls_version(version)
            .build()
            .unwrap();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{version:?}");
    }
}

#[tokio::test]
async fn a_client_without_the_ca_refuses_the_certificate() {
    let (_server, _database, https_port) = https_server(&[]).await;
    let other_ca = iocd_tls_test_ca();
    let client = client_trusting(&other_ca).build().unwrap();
    let refused = client
        .get(format!("https://localhost:{https_port}/health"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a certificate from iocd's CA was trusted under another CA"
    );
}

/// A CA certificate that is not iocd's (a fresh database's CA).
fn iocd_tls_test_ca() -> String {
    let dir = tempfile::tempdir().unwrap();
    print_ca(&format!(
        "sqlite://{}",
        dir.path().join("other.db").display()
    ))
}

#[tokio::test]
async fn an_operators_own_certificate_replaces_the_cas_on_the_https_listener() {
    let dir = tempfile::tempdir().unwrap();
    let own = rcgen::generate_simple_self_signed(vec!["own.iocd.test".to_string()]).unwrap();
    let cert_path = dir.path().join("own.pem");
    let key_path = dir.path().join("own-key.pem");
    std::fs::write(&cert_path, own.cert.pem()).unwrap();
    std::fs::write(&key_path, own.signing_key.serialize_pem()).unwrap();
    let (_server, _database, https_port) = https_server(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ])
    .await;
    let client = client_trusting(&own.cert.pem())
        .resolve("own.iocd.test", ([127, 0, 0, 1], https_port).into())
        .build()
        .unwrap();
    let health = client
        .get(format!("https://own.iocd.test:{https_port}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let one = rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["b.test".to_string()]).unwrap();
    std::fs::write(dir.path().join("c.pem"), one.cert.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), other.signing_key.serialize_pem()).unwrap();
    let database = format!("sqlite://{}", dir.path().join("iocd.db").display());
    let listen = format!("127.0.0.1:{}", free_port());
    let https = format!("127.0.0.1:{}", free_port());
    let output = iocd().output(
        &[
            "serve",
            "--database",
            &database,
            "--listen",
            &listen,
            "--https-listen",
            &https,
            "--tls-cert",
            dir.path().join("c.pem").to_str().unwrap(),
            "--tls-key",
            dir.path().join("k.pem").to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("does not hold the key"), "{stderr}");
}

/// A client that sends every https request through iocd's plain listener as its proxy.
fn proxied_client(server: &IocdProcess, ca: &str) -> reqwest::Client {
    client_trusting(ca)
        .proxy(reqwest::Proxy::https(server.base_url()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn connect_to_microsofts_hosts_reaches_iocd_itself() {
    let (server, database, _) = https_server(&[]).await;
    let ca = print_ca(&database.url);
    let app = create_app(&database.url, "tenant-intercepted", "intercepted");
    let client = proxied_client(&server, &ca);
    let token = client_credentials_token(&client, "https://login.microsoftonline.com", &app).await;
    for host in [
        "api.securitycenter.microsoft.com",
        "api.security.microsoft.com",
        "uk.api.security.microsoft.com",
        "api-gcc.securitycenter.microsoft.us",
    ] {
        let base = format!("https://{host}");
        let created = client
            .post(format!("{base}/api/indicators"))
            .bearer_auth(&token)
            .json(&domain_request(7))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 200, "{host}");
        let created: Value = created.json().await.unwrap();
        assert_eq!(
            created["@odata.context"],
            format!("{base}/api/$metadata#Indicators/$entity"),
            "{host}"
        );
    }
}

#[tokio::test]
async fn a_tunnel_has_the_body_limit_of_any_request() {
    let (server, database, _) = https_server(&["--max-body-bytes", "2048"]).await;
    let ca = print_ca(&database.url);
    let app = create_app(&database.url, "tenant-limits", "limits");
    let client = proxied_client(&server, &ca);
    let token = client_credentials_token(&client, "https://login.microsoftonline.com", &app).await;
    let mut large = domain_request(1);
    large["description"] = Value::from("x".repeat(4096));
    let refused = client
        .post("https://api.securitycenter.microsoft.com/api/indicators")
        .bearer_auth(&token)
        .json(&large)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 413);
}

#[tokio::test]
async fn connect_to_any_other_host_is_refused_and_never_forwarded() {
    let (server, database, _) = https_server(&[]).await;
    let ca = print_ca(&database.url);
    let client = proxied_client(&server, &ca);
    for url in [
        "https://example.com/",
        "https://graph.microsoft.com/v1.0/me",
        "https://login.microsoftonline.com:8443/common/discovery/instance",
    ] {
        let error = client.get(url).send().await.expect_err(url);
        // reqwest reports the proxy's refusal of the tunnel.
        assert!(
            format!("{error:?}").contains("TunnelUnsuccessful"),
            "{url}: {error:?}"
        );
    }
    // What the proxy answered, read off the wire: 403, then the connection closes.
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stream
        .write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("iocd closes the connection after refusing")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(
        answer.contains("never connects to example.com:443"),
        "{answer}"
    );
}

#[tokio::test]
async fn intercept_off_refuses_every_connect() {
    let (server, database, _) = https_server(&["--intercept", "off"]).await;
    let ca = print_ca(&database.url);
    let client = proxied_client(&server, &ca);
    assert!(client
        .get("https://login.microsoftonline.com/common/discovery/instance")
        .send()
        .await
        .is_err());
    // The plain listener itself still serves.
    let health = reqwest::get(server.url("/health")).await.unwrap();
    assert_eq!(health.status(), 200);
}
