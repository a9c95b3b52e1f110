//! Certificate credentials end to end: client assertions (RS256 + `x5t`, PS256 + `x5t#S256`)
//! at both token endpoints, every refusal Entra makes (unknown thumbprint, wrong key, audience,
//! issuer, time, replay), replay refused across replicas, and a secret and certificates on one
//! app.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use iocd_auth::{ClientCertificate, SigningKey};
use iocd_identity::Role;
use iocd_server::{AppState, Server, ServerConfig};
use iocd_testkit::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

/// A client's certificate and its private key, as a user would make them.
struct ClientKey {
    certificate_pem: String,
    key: EncodingKey,
    certificate: ClientCertificate,
}

fn client_key(name: &str) -> ClientKey {
    let private = SigningKey::generate().unwrap().to_pkcs8_pem().unwrap();
    let pair = rcgen::KeyPair::from_pem(&private).unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    let certificate_pem = params.self_signed(&pair).unwrap().pem();
    ClientKey {
        certificate: ClientCertificate::from_pem(&certificate_pem).unwrap(),
        key: EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
        certificate_pem,
    }
}

fn hex_to_b64url(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    iocd_domain::time::now().timestamp()
}

/// An assertion as MSAL Python signs it: RS256 with the SHA-1 `x5t`.
fn rs256(key: &ClientKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(hex_to_b64url(&key.certificate.thumbprint()));
    jsonwebtoken::encode(&header, claims, &key.key).unwrap()
}

/// An assertion as newer MSALs sign it: PS256 with `x5t#S256` and the certificate in `x5c`.
fn ps256(key: &ClientKey, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::PS256);
    header.x5t_s256 = Some(hex_to_b64url(&key.certificate.thumbprint_sha256()));
    let der = x509_der(&key.certificate_pem);
    header.x5c = Some(vec![STANDARD.encode(der)]);
    jsonwebtoken::encode(&header, claims, &key.key).unwrap()
}

fn x509_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn claims(client_id: &str, aud: &str) -> Value {
    json!({
        "aud": aud,
        "iss": client_id,
        "sub": client_id,
        "iat": now(),
        "nbf": now(),
        "exp": now() + 600,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

async fn token_with(
    server_url: &str,
    tenant: &str,
    version_path: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let client = reqwest::Client::new();
    status_json(
        client
            .post(format!("{server_url}/{tenant}/{version_path}"))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn v2_token(
    server_url: &str,
    tenant: &str,
    client_id: &str,
    assertion: &str,
) -> (u16, Value) {
    token_with(
        server_url,
        tenant,
        "oauth2/v2.0/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("scope", SCOPE),
        ],
    )
    .await
}

fn description(body: &Value) -> &str {
    body["error_description"].as_str().unwrap_or_default()
}

async fn certificate_app(server: &TestServer, key: &ClientKey) -> (String, String) {
    let tenant = uuid::Uuid::new_v4().to_string();
    let created = iocd_identity::register_certificate_app(
        server.identity.as_ref(),
        &tenant,
        "certificate app",
        &[Role::ReadWriteAll],
        &key.certificate,
    )
    .await
    .unwrap();
    assert_eq!(
        created.certificates[0].thumbprint,
        key.certificate.thumbprint()
    );
    (tenant, created.client_id)
}

async fn assertions_in_both_shapes_get_tokens_the_api_accepts() {
    let server = TestServer::start().await;
    let key = client_key("cert-client");
    let (tenant, client_id) = certificate_app(&server, &key).await;
    let base = server.base_url();

    // RS256 + x5t, aud = the v2 token endpoint on the host called.
    let aud = format!("{base}/{tenant}/oauth2/v2.0/token");
    let (status, body) = v2_token(
        &base,
        &tenant,
        &client_id,
        &rs256(&key, &claims(&client_id, &aud)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let listed = server.send_as(&token, Method::GET, "/api/indicators").await;
    assert_eq!(listed.status(), 200);

    // PS256 + x5t#S256 + x5c, no iat, aud on Entra's login host, through the v1 endpoint and
    // without client_id (the assertion names the client).
    let mut no_iat = claims(
        &client_id,
        &format!("https://login.windows.net/{tenant}/oauth2/token"),
    );
    no_iat.as_object_mut().unwrap().remove("iat");
    let (status, body) = token_with(
        &base,
        &tenant,
        "oauth2/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &ps256(&key, &no_iat)),
            ("resource", "https://api.securitycenter.microsoft.com"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        server
            .send_as(token, Method::GET, "/api/indicators")
            .await
            .status(),
        200
    );

    // The app has no secret: none is accepted.
    let (status, body) = token_with(
        &base,
        &tenant,
        "oauth2/v2.0/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", "anything"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(status, 401, "{body}");
}

async fn bad_assertions_are_refused_as_entra_refuses_them() {
    let server = TestServer::start().await;
    let key = client_key("cert-client");
    let (tenant, client_id) = certificate_app(&server, &key).await;
    let base = server.base_url();
    let aud = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token");

    // A certificate the app does not have: AADSTS700027 naming the thumbprint used.
    let stranger = client_key("stranger");
    let (status, body) = v2_token(
        &base,
        &tenant,
        &client_id,
        &rs256(&stranger, &claims(&client_id, &aud)),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_codes"][0], 700027);
    assert!(description(&body).starts_with("AADSTS700027: "), "{body}");
    assert!(
        description(&body).contains(&stranger.certificate.thumbprint()),
        "{body}"
    );
    assert!(
        description(&body).contains("The key was not found"),
        "{body}"
    );

    // The app's thumbprint, but signed with another key.
    let mut forged = Header::new(Algorithm::RS256);
    forged.x5t = Some(hex_to_b64url(&key.certificate.thumbprint()));
    let assertion =
        jsonwebtoken::encode(&forged, &claims(&client_id, &aud), &stranger.key).unwrap();
    let (status, body) = v2_token(&base, &tenant, &client_id, &assertion).await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (401, Some(700027)),
        "{body}"
    );

    // Another audience, another issuer, expired, not yet valid, no jti, wrong assertion type.
    let cases: Vec<(Value, u64)> = vec![
        (
            claims(
                &client_id,
                &format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            ),
            700023,
        ),
        (
            claims(
                &client_id,
                "https://login.microsoftonline.com/another-tenant/oauth2/v2.0/token",
            ),
            700023,
        ),
        (
            {
                let mut c = claims(&client_id, &aud);
                c["iss"] = json!("someone-else");
                c
            },
            700021,
        ),
        (
            {
                let mut c = claims(&client_id, &aud);
                c["exp"] = json!(now() - 3600);
                c
            },
            700024,
        ),
        (
            {
                let mut c = claims(&client_id, &aud);
                c["nbf"] = json!(now() + 3600);
                c
            },
            700024,
        ),
        (
            {
                let mut c = claims(&client_id, &aud);
                c.as_object_mut().unwrap().remove("jti");
                c
            },
            50027,
        ),
    ];
    for (claims, code) in cases {
        let (status, body) = v2_token(&base, &tenant, &client_id, &rs256(&key, &claims)).await;
        assert_eq!(status, 401, "{claims} {body}");
        assert_eq!(body["error_codes"][0], code, "{claims} {body}");
    }
    let (status, body) = v2_token(&base, &tenant, &client_id, "not.a.jwt").await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (401, Some(50027)),
        "{body}"
    );
    let (status, body) = token_with(
        &base,
        &tenant,
        "oauth2/v2.0/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &rs256(&key, &claims(&client_id, &aud))),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
}

async fn a_replayed_assertion_is_refused_on_every_replica() {
    let server = TestServer::start().await;
    let key = client_key("cert-client");
    let (tenant, client_id) = certificate_app(&server, &key).await;
    let assertion = rs256(
        &key,
        &claims(
            &client_id,
            &format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        ),
    );
    let (status, body) = v2_token(&server.base_url(), &tenant, &client_id, &assertion).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = v2_token(&server.base_url(), &tenant, &client_id, &assertion).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_codes"][0], 50013, "{body}");
    assert!(description(&body).contains("already used"), "{body}");

    // A second server on the same database has seen it too.
    let stores = iocd_store::open_stores(&server.database_url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let replica = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(stores, ServerConfig::default(), &replica)
        .await
        .unwrap();
    tokio::spawn(Server::on_listener(listener, state).run(std::future::pending()));
    let (status, body) = v2_token(&replica, &tenant, &client_id, &assertion).await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (401, Some(50013)),
        "{body}"
    );
    // A fresh assertion works there.
    let fresh = rs256(
        &key,
        &claims(&client_id, &format!("{replica}/{tenant}/oauth2/v2.0/token")),
    );
    let (status, body) = v2_token(&replica, &tenant, &client_id, &fresh).await;
    assert_eq!(status, 200, "{body}");
}

async fn a_secret_and_certificates_coexist_and_certificates_can_be_removed() {
    let server = TestServer::start().await;
    let creds = server.app.credentials.clone();
    let (tenant, client_id) = (creds.tenant_id.as_str(), creds.client_id.as_str());
    let (first, second) = (client_key("first"), client_key("second"));
    for key in [&first, &second] {
        iocd_identity::add_app_certificate(
            server.identity.as_ref(),
            tenant,
            client_id,
            &key.certificate,
        )
        .await
        .unwrap();
    }
    // The same certificate twice, or on an app of another tenant, is refused.
    assert!(matches!(
        iocd_identity::add_app_certificate(
            server.identity.as_ref(),
            tenant,
            client_id,
            &first.certificate
        )
        .await,
        Err(iocd_identity::CertificateRegistrationError::AlreadyThere(_))
    ));
    assert!(matches!(
        iocd_identity::add_app_certificate(
            server.identity.as_ref(),
            "another-tenant",
            client_id,
            &first.certificate
        )
        .await,
        Err(iocd_identity::CertificateRegistrationError::NoSuchApp { .. })
    ));
    let aud = format!("{}/{tenant}/oauth2/v2.0/token", server.base_url());
    for key in [&first, &second] {
        let (status, body) = v2_token(
            &server.base_url(),
            tenant,
            client_id,
            &rs256(key, &claims(client_id, &aud)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // The secret still works.
    let _ = server.fetch_token(&creds).await;

    assert!(server
        .identity
        .remove_app_certificate(tenant, client_id, &first.certificate.thumbprint())
        .await
        .unwrap());
    let (status, body) = v2_token(
        &server.base_url(),
        tenant,
        client_id,
        &rs256(&first, &claims(client_id, &aud)),
    )
    .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (401, Some(700027)),
        "{body}"
    );
    let (status, body) = v2_token(
        &server.base_url(),
        tenant,
        client_id,
        &rs256(&second, &claims(client_id, &aud)),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Deleting the app deletes its certificates.
    assert!(server.identity.delete_app(tenant, client_id).await.unwrap());
    assert!(server
        .identity
        .app_certificates(client_id)
        .await
        .unwrap()
        .is_empty());
}

on_every_backend!(
    assertions_in_both_shapes_get_tokens_the_api_accepts,
    bad_assertions_are_refused_as_entra_refuses_them,
    a_replayed_assertion_is_refused_on_every_replica,
    a_secret_and_certificates_coexist_and_certificates_can_be_removed,
);
