//! Signing-key rotation across replicas: after `rotate_signing_key`, tokens signed with either
//! key validate on every server sharing the database, the JWKS lists both, and once the old key
//! retires it is gone from the JWKS and its tokens are refused everywhere.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use iocd_identity::IdentityConfig;
use iocd_server::{AppState, Server, ServerConfig};
use iocd_testkit::*;
use reqwest::Method;
use serde_json::Value;

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

async fn jwks_kids(base: &str, tenant: &str) -> Vec<String> {
    let body: Value = reqwest::get(format!("{base}/{tenant}/discovery/v2.0/keys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn list_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .request(Method::GET, format!("{base}/api/indicators"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn tokens_of_both_keys_validate_on_every_replica_until_the_old_key_retires() {
    // A re-reads the keys every 200 ms; B only on the default 30 s, so B sees the rotation
    // through a token naming the new key.
    let server = TestServer::start_with(ServerConfig {
        identity: IdentityConfig {
            key_reload_interval: Duration::from_millis(200),
            ..IdentityConfig::default()
        },
        ..ServerConfig::default()
    })
    .await;
    let a = server.base_url();
    let stores = iocd_store::open_stores(&server.database_url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(stores, ServerConfig::default(), &a)
        .await
        .unwrap();
    tokio::spawn(Server::on_listener(listener, state).run(std::future::pending()));
    let tenant = server.app.credentials.tenant_id.clone();

    let old_token = server.app.token.clone();
    let old_kid = kid_of(&old_token);
    assert_eq!(jwks_kids(&a, &tenant).await, vec![old_kid.clone()]);

    let overlap = Duration::from_secs(5);
    let rotated = iocd_identity::rotate_signing_key(server.identity.as_ref(), overlap)
        .await
        .unwrap();
    let retires = std::time::Instant::now() + overlap;
    assert_eq!(rotated.previous_kid.as_deref(), Some(old_kid.as_str()));
    let new_kid = rotated.kid.clone();
    assert_ne!(new_kid, old_kid);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let new_token = server.fetch_token(&server.app.credentials).await;
    assert_eq!(kid_of(&new_token), new_kid, "A signs with the new key");
    assert_eq!(
        jwks_kids(&a, &tenant).await,
        vec![new_kid.clone(), old_kid.clone()]
    );

    // B still holds only the old key: the new token makes it re-read the keys.
    assert_eq!(list_status(&b, &new_token).await, 200);
    assert_eq!(list_status(&b, &old_token).await, 200);
    assert_eq!(
        jwks_kids(&b, &tenant).await,
        vec![new_kid.clone(), old_kid.clone()]
    );
    assert_eq!(list_status(&a, &old_token).await, 200);
    assert_eq!(list_status(&a, &new_token).await, 200);
    assert!(
        std::time::Instant::now() < retires,
        "the overlap checks ran too slowly"
    );

    // The overlap ends: the old key leaves the JWKS and its tokens are refused on both.
    tokio::time::sleep_until((retires + Duration::from_millis(300)).into()).await;
    for base in [&a, &b] {
        assert_eq!(list_status(base, &old_token).await, 401, "{base}");
        assert_eq!(list_status(base, &new_token).await, 200, "{base}");
        assert_eq!(
            jwks_kids(base, &tenant).await,
            vec![new_kid.clone()],
            "{base}"
        );
    }
    let left = server.identity.signing_keys().await.unwrap();
    assert_eq!(
        left.len(),
        1,
        "the retired key was dropped from the database"
    );
    assert_eq!(left[0].kid, new_kid);
}

on_every_backend!(tokens_of_both_keys_validate_on_every_replica_until_the_old_key_retires);
