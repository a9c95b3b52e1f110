//! Identity end to end: the token endpoint (v1 and v2), discovery and JWKS, every way a bearer
//! token is refused, external issuers, role semantics and tenant isolation.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use iocd_auth::{SigningKey, TokenClaimsInput, TokenVersion};
use iocd_identity::{ExternalIssuer, Role};
use iocd_server::ServerConfig;
use iocd_testkit::*;
use reqwest::Method;
use serde_json::{json, Value};

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

async fn token_request(server: &TestServer, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let body = serde_urlencoded::to_string(form).unwrap();
    status_json(
        server
            .client
            .post(server.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn token_flows_v1_and_v2_give_entra_shaped_tokens_that_the_api_accepts() {
    let server = TestServer::start().await;
    let creds = server.app.credentials.clone();
    let tenant = creds.tenant_id.as_str();
    let base = server.url("");

    // v2: scope=<resource>/.default
    let (status, body) = token_request(
        &server,
        &format!("/{tenant}/oauth2/v2.0/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("scope", "https://api.security.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let v2 = body["access_token"].as_str().unwrap().to_string();
    let header = decode_part(&v2, 0);
    assert_eq!(header["alg"], "RS256");
    let claims = decode_part(&v2, 1);
    assert_eq!(claims["aud"], "https://api.security.microsoft.com");
    assert_eq!(claims["iss"], format!("{base}/{tenant}/v2.0"));
    assert_eq!(claims["tid"], tenant);
    assert_eq!(claims["appid"], creds.client_id.as_str());
    assert_eq!(claims["azp"], creds.client_id.as_str());
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["roles"], json!(["Ti.ReadWrite.All"]));
    assert!(claims["oid"].as_str().is_some_and(|o| !o.is_empty()));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 3599);

    // v1: resource=, numbers as strings like Entra's v1 endpoint.
    let (status, body) = token_request(
        &server,
        &format!("/{tenant}/oauth2/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("resource", "https://api.securitycenter.microsoft.com/"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], "3599");
    assert_eq!(body["resource"], "https://api.securitycenter.microsoft.com");
    let v1 = body["access_token"].as_str().unwrap().to_string();
    let claims = decode_part(&v1, 1);
    assert_eq!(claims["iss"], format!("{base}/{tenant}/"));
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["aud"], "https://api.securitycenter.microsoft.com");

    // A GET with a form body, as one real client sends, and HTTP Basic client authentication.
    let form = serde_urlencoded::to_string([
        ("grant_type", "client_credentials"),
        ("scope", "https://api.securitycenter.microsoft.com/.default"),
    ])
    .unwrap();
    let (status, body) = status_json(
        server
            .client
            .get(server.url(&format!("/{tenant}/oauth2/v2.0/token")))
            .basic_auth(&creds.client_id, Some(&creds.client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let via_get = body["access_token"].as_str().unwrap().to_string();

    // iocd's own URL is an accepted resource too.
    let (status, body) = token_request(
        &server,
        &format!("/{tenant}/oauth2/v2.0/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("scope", &format!("{base}/.default")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let own_audience = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(decode_part(&own_audience, 1)["aud"], base.as_str());

    for token in [&v2, &v1, &via_get, &own_audience] {
        let (status, body) = status_json(
            server
                .post_json_as(token, "/api/indicators", &domain_request(1))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["createdBy"], creds.client_id.as_str());
        assert_eq!(body["createdByDisplayName"], "iocd test app");
    }

    // Discovery and keys describe the same issuer and the key that signed the tokens.
    let (status, v2_doc) = server
        .anonymous_get(&format!("/{tenant}/v2.0/.well-known/openid-configuration"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v2_doc["issuer"], format!("{base}/{tenant}/v2.0"));
    assert_eq!(
        v2_doc["token_endpoint"],
        format!("{base}/{tenant}/oauth2/v2.0/token")
    );
    let (status, v1_doc) = server
        .anonymous_get(&format!("/{tenant}/.well-known/openid-configuration"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v1_doc["issuer"], format!("{base}/{tenant}/"));
    let jwks_url = v2_doc["jwks_uri"].as_str().unwrap().to_string();
    let jwks: Value = server
        .client
        .get(&jwks_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
}

/// Path, form, expected status, expected `error`, text the description must contain.
type TokenErrorCase<'a> = (String, Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);

async fn token_endpoint_errors_are_oauth_shaped() {
    let server = TestServer::start().await;
    let creds = server.app.credentials.clone();
    let tenant = creds.tenant_id.as_str();
    let v2 = format!("/{tenant}/oauth2/v2.0/token");
    let scope = "https://api.securitycenter.microsoft.com/.default";
    let cases: Vec<TokenErrorCase> = vec![
        (
            v2.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &creds.client_id),
                ("client_secret", "wrong-secret"),
                ("scope", scope),
            ],
            401,
            "invalid_client",
            "AADSTS7000215",
        ),
        (
            v2.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "11111111-2222-4333-8444-555555555555"),
                ("client_secret", &creds.client_secret),
                ("scope", scope),
            ],
            401,
            "invalid_client",
            "AADSTS700016",
        ),
        (
            v2.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &creds.client_id),
                ("scope", scope),
            ],
            401,
            "invalid_client",
            "client_secret",
        ),
        (
            "/no-such-tenant/oauth2/v2.0/token".to_string(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("scope", scope),
            ],
            400,
            "invalid_request",
            "AADSTS90002",
        ),
        (
            v2.clone(),
            vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:saml2-bearer",
                ),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("scope", scope),
            ],
            400,
            "unsupported_grant_type",
            "client_credentials",
        ),
        (
            v2.clone(),
            vec![
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("scope", scope),
            ],
            400,
            "invalid_request",
            "grant_type",
        ),
        (
            v2.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
            ],
            400,
            "invalid_request",
            "scope",
        ),
        (
            v2.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("scope", "https://api.securitycenter.microsoft.com"),
            ],
            400,
            "invalid_scope",
            "/.default",
        ),
        (
            v2.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
            400,
            "invalid_resource",
            "graph.microsoft.com",
        ),
        (
            format!("/{tenant}/oauth2/token"),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
            ],
            400,
            "invalid_request",
            "resource",
        ),
    ];
    for (path, form, want_status, want_error, mentions) in cases {
        let (status, body) = token_request(&server, &path, &form).await;
        assert_eq!(status, want_status, "{path} {form:?}: {body}");
        assert_eq!(body["error"], want_error, "{form:?}: {body}");
        let description = body["error_description"].as_str().unwrap();
        assert!(description.contains(mentions), "{description}");
        assert!(body["error_codes"].is_array(), "{body}");
        assert!(body.get("access_token").is_none());
    }
    // Another tenant's app cannot get a token through this tenant's endpoint.
    let other = server
        .create_app(
            &uuid::Uuid::new_v4().to_string(),
            "other tenant app",
            &[Role::ReadWriteAll],
        )
        .await;
    let (status, body) = token_request(
        &server,
        &v2,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", other.client_id()),
            ("client_secret", &other.credentials.client_secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");

    // Unknown tenants have no discovery document or keys either.
    let res = server
        .client
        .get(server.url("/no-such-tenant/discovery/v2.0/keys"))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_tenant");
}

/// Claims for a token signed with the server's own key, to alter one at a time.
fn own_claims(server: &TestServer) -> TokenClaimsInput {
    TokenClaimsInput {
        tenant_id: server.app.tenant_id().to_string(),
        client_id: server.app.client_id().to_string(),
        app_object_id: uuid::Uuid::new_v4().to_string(),
        app_display_name: Some("iocd test app".to_string()),
        roles: vec!["Ti.ReadWrite.All".to_string()],
        audience: AUDIENCE.to_string(),
        issuer: format!("{}/{{tenantid}}/v2.0", server.url("")),
        version: TokenVersion::V2,
        lifetime: Duration::from_secs(3599),
    }
}

async fn server_key(server: &TestServer) -> SigningKey {
    let stored = server
        .identity
        .signing_key()
        .await
        .unwrap()
        .expect("a stored key");
    SigningKey::from_pkcs8_pem(&stored.private_key_pem).unwrap()
}

fn unsigned_token(header: Value, claims: Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn every_bad_token_is_refused_with_401_and_a_challenge() {
    let server = TestServer::start().await;
    let key = server_key(&server).await;
    let now = iocd_domain::time::system_now();
    let issue =
        |input: TokenClaimsInput, at: SystemTime| key.issue_at(&input, at).unwrap().access_token;
    let good = issue(own_claims(&server), now);
    // The real key's token is accepted: the rejections below are about what was changed.
    let (status, body) = status_json(
        server
            .post_json_as(&good, "/api/indicators", &domain_request(0))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let attacker = SigningKey::generate().unwrap();
    let forged = {
        // Same header (kid of the real key), signed by another key.
        let token = attacker.issue(&own_claims(&server)).unwrap().access_token;
        let mut parts: Vec<&str> = token.split('.').collect();
        let real_header = good.split('.').next().unwrap().to_string();
        parts[0] = &real_header;
        parts.join(".")
    };
    let good_claims = decode_part(&good, 1);
    let kid = decode_part(&good, 0)["kid"].clone();
    let alg_none = unsigned_token(
        json!({"alg": "none", "typ": "JWT", "kid": kid}),
        good_claims.clone(),
        b"",
    );
    let hs256_with_public_key = {
        let jwks: Value = server
            .client
            .get(server.url(&format!("/{}/discovery/v2.0/keys", server.app.tenant_id())))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = kid.as_str().map(str::to_string);
        jsonwebtoken::encode(
            &header,
            &good_claims,
            &jsonwebtoken::EncodingKey::from_secret(jwks["keys"][0].to_string().as_bytes()),
        )
        .unwrap()
    };
    let expired = issue(own_claims(&server), now - Duration::from_secs(2 * 3600));
    let not_yet_valid = issue(own_claims(&server), now + Duration::from_secs(600));
    let wrong_audience = issue(
        TokenClaimsInput {
            audience: "https://graph.microsoft.com".to_string(),
            ..own_claims(&server)
        },
        now,
    );
    let wrong_issuer = issue(
        TokenClaimsInput {
            issuer: "https://login.evil.example/{tenantid}/v2.0".to_string(),
            ..own_claims(&server)
        },
        now,
    );
    let unknown_tenant = issue(
        TokenClaimsInput {
            tenant_id: uuid::Uuid::new_v4().to_string(),
            ..own_claims(&server)
        },
        now,
    );
    let cases = [
        ("forged signature", forged, "signature"),
        ("alg none", alg_none, "none"),
        ("HS256 with the public key", hs256_with_public_key, "HMAC"),
        ("expired", expired, "expired"),
        ("not yet valid", not_yet_valid, "not valid before"),
        ("wrong audience", wrong_audience, "audience"),
        ("wrong issuer", wrong_issuer, "issuer"),
        ("unknown tenant", unknown_tenant, "not known"),
        ("garbage", "not-a-jwt".to_string(), "three"),
    ];
    let rows_before = server.row_count().await;
    for (name, token, mentions) in cases {
        for (method, path) in [
            (Method::POST, "/api/indicators"),
            (Method::GET, "/api/indicators/1"),
            (Method::DELETE, "/api/indicators/1"),
        ] {
            let mut req = server.request_as(&token, method.clone(), path);
            if method == Method::POST {
                req = req.json(&domain_request(1));
            }
            let res = req.send().await.unwrap();
            let challenge = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let (status, body) = status_json(res).await;
            assert_eq!(status, 401, "{name} {method} {path}: {body}");
            assert_eq!(body["error"]["code"], "Unauthorized", "{name}");
            assert!(
                challenge.starts_with("Bearer error=\"invalid_token\""),
                "{name}: {challenge}"
            );
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(mentions), "{name}: {message}");
        }
    }
    // No credentials at all, and the wrong scheme.
    let (status, body) = server.anonymous_get("/api/indicators/1").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "Unauthorized");
    let (status, _) = status_json(
        server
            .client
            .get(server.url("/api/indicators/1"))
            .basic_auth("a", Some("b"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        server.row_count().await,
        rows_before,
        "refused calls wrote nothing"
    );

    // Within the leeway (60 s) an expired token still works.
    let barely_expired = issue(own_claims(&server), now - Duration::from_secs(3599 + 20));
    let (status, body) = status_json(
        server
            .send_as(&barely_expired, Method::GET, "/api/indicators/1")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn missing_roles_are_403_naming_the_required_roles() {
    let server = TestServer::start().await;
    let tenant = server.app.tenant_id().to_string();
    let reader = server.create_app(&tenant, "reader", &[Role::ReadAll]).await;
    for (method, path) in [
        (Method::POST, "/api/indicators"),
        (Method::DELETE, "/api/indicators/1"),
    ] {
        let mut req = server.request_as(&reader.token, method.clone(), path);
        if method == Method::POST {
            req = req.json(&domain_request(1));
        }
        let (status, body) = status_json(req.send().await.unwrap()).await;
        assert_eq!(status, 403, "{method}: {body}");
        assert_eq!(body["error"]["code"], "Forbidden");
        assert_eq!(
            body["error"]["message"],
            "Missing application roles. API required roles: Ti.ReadWrite.All, Ti.ReadWrite"
        );
    }
    // A token without any role (an app granted nothing) may not even read.
    let key = server_key(&server).await;
    let roleless = key
        .issue(&TokenClaimsInput {
            roles: vec![],
            ..own_claims(&server)
        })
        .unwrap()
        .access_token;
    let (status, body) = status_json(
        server
            .send_as(&roleless, Method::GET, "/api/indicators/1")
            .await,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Ti.Read.All"));
    assert_eq!(server.row_count().await, 0);
}

async fn role_semantics_own_versus_all() {
    let server = TestServer::start().await;
    let tenant = server.app.tenant_id().to_string();
    let own1 = server
        .create_app(&tenant, "connector one", &[Role::ReadWrite])
        .await;
    let own2 = server
        .create_app(&tenant, "connector two", &[Role::ReadWrite])
        .await;
    let reader = server.create_app(&tenant, "reader", &[Role::ReadAll]).await;

    let (status, created) = status_json(
        server
            .post_json_as(&own1.token, "/api/indicators", &domain_request(7))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["createdBy"], own1.client_id());
    assert_eq!(created["createdByDisplayName"], "connector one");
    let path = format!("/api/indicators/{}", created["id"].as_str().unwrap());

    // The other Ti.ReadWrite app neither sees, updates nor deletes it.
    let (status, _) = status_json(server.send_as(&own2.token, Method::GET, &path).await).await;
    assert_eq!(status, 404);
    let (status, _) = status_json(server.send_as(&own2.token, Method::DELETE, &path).await).await;
    assert_eq!(status, 404);
    let (status, body) = status_json(
        server
            .post_json_as(&own2.token, "/api/indicators", &domain_request(7))
            .await,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "Forbidden");

    // Its creator and Ti.Read.All read it; Ti.Read.All cannot change it.
    for token in [&own1.token, &reader.token, &server.app.token] {
        let (status, body) = status_json(server.send_as(token, Method::GET, &path).await).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["createdBy"], own1.client_id());
    }
    // Ti.ReadWrite.All updates it: lastUpdatedBy is the updating app.
    let (status, updated) = status_json(
        server
            .post_json("/api/indicators", &domain_request(7))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["createdBy"], own1.client_id());
    assert_eq!(updated["lastUpdatedBy"], server.app.client_id());

    // The creator updates and deletes its own.
    let (status, body) = status_json(
        server
            .post_json_as(&own1.token, "/api/indicators", &domain_request(7))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lastUpdatedBy"], own1.client_id());
    let res = server.send_as(&own1.token, Method::DELETE, &path).await;
    assert_eq!(res.status(), 204);

    // Ti.ReadWrite.All deletes another app's indicator.
    let (_, second) = status_json(
        server
            .post_json_as(&own2.token, "/api/indicators", &domain_request(8))
            .await,
    )
    .await;
    let second_path = format!("/api/indicators/{}", second["id"].as_str().unwrap());
    let res = server.send(Method::DELETE, &second_path).await;
    assert_eq!(res.status(), 204);
    assert_eq!(server.row_count().await, 0);
}

async fn tenants_are_isolated() {
    let server = TestServer::start().await;
    let (status, created) = status_json(
        server
            .post_json("/api/indicators", &domain_request(3))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/api/indicators/{id}");
    let other_tenant = uuid::Uuid::new_v4().to_string();
    let stranger = server
        .create_app(&other_tenant, "stranger", &[Role::ReadWriteAll])
        .await;

    let (status, body) =
        status_json(server.send_as(&stranger.token, Method::GET, &path).await).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.get("indicatorValue").is_none());
    let (status, _) =
        status_json(server.send_as(&stranger.token, Method::DELETE, &path).await).await;
    assert_eq!(status, 404);
    // The same key in the other tenant is a separate indicator, with that tenant's own ids.
    let (status, theirs) = status_json(
        server
            .post_json_as(&stranger.token, "/api/indicators", &domain_request(3))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{theirs}");
    assert_eq!(theirs["id"], "1");
    assert_eq!(theirs["createdBy"], stranger.client_id());
    // The first tenant's indicator is untouched.
    let (status, ours) = status_json(server.send(Method::GET, &path).await).await;
    assert_eq!(status, 200);
    assert_eq!(ours["createdBy"], server.app.client_id());
    assert_eq!(ours["lastUpdatedBy"], Value::Null);
    assert_eq!(server.row_count().await, 2);
    // Deleting in one tenant leaves the other's.
    let res = server
        .send_as(&stranger.token, Method::DELETE, "/api/indicators/1")
        .await;
    assert_eq!(res.status(), 204);
    let (status, _) = status_json(server.send(Method::GET, &path).await).await;
    assert_eq!(status, 200);
}

/// A JWKS endpoint the test serves itself on loopback, standing in for Entra.
async fn serve_jwks(jwks: Value) -> String {
    let app = axum::Router::new().route(
        "/common/discovery/v2.0/keys",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let addr = serve_router(app).await;
    format!("http://{addr}/common/discovery/v2.0/keys")
}

async fn external_issuer_tokens_are_accepted_by_their_jwks() {
    let entra_key = SigningKey::generate().unwrap();
    let jwks_url = serve_jwks(entra_key.jwks()).await;
    let entra_issuer = "https://login.test.example/{tenantid}/v2.0";
    let mut config = ServerConfig::default();
    config.identity.external_issuers = vec![ExternalIssuer {
        issuer: entra_issuer.to_string(),
        jwks_url,
    }];
    let server = TestServer::start_with(config).await;
    let entra_tenant = uuid::Uuid::new_v4().to_string();
    let entra_app = uuid::Uuid::new_v4().to_string();
    let claims = TokenClaimsInput {
        tenant_id: entra_tenant.clone(),
        client_id: entra_app.clone(),
        app_object_id: uuid::Uuid::new_v4().to_string(),
        app_display_name: None,
        roles: vec!["Ti.ReadWrite".to_string()],
        audience: "https://api.securitycenter.microsoft.com".to_string(),
        issuer: entra_issuer.to_string(),
        version: TokenVersion::V1,
        lifetime: Duration::from_secs(3599),
    };
    let token = entra_key.issue(&claims).unwrap().access_token;
    let (status, body) = status_json(
        server
            .post_json_as(&token, "/api/indicators", &domain_request(5))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["createdBy"], entra_app.as_str());
    // Without `app_displayname` the app id stands in for the display name.
    assert_eq!(body["createdByDisplayName"], entra_app.as_str());
    assert_eq!(
        body["id"], "1",
        "the external tenant has its own indicators"
    );
    // The default test tenant does not see the external tenant's indicator.
    let (status, _) = status_json(server.send(Method::GET, "/api/indicators/1").await).await;
    assert_eq!(status, 404);

    // A token naming the external issuer but signed by another key is refused.
    let impostor = SigningKey::generate().unwrap();
    let forged = impostor.issue(&claims).unwrap().access_token;
    let (status, body) = status_json(
        server
            .send_as(&forged, Method::GET, "/api/indicators/1")
            .await,
    )
    .await;
    assert_eq!(status, 401, "{body}");
}

async fn replicas_starting_together_share_one_signing_key() {
    let database = ScratchDatabase::for_current_backend().await;
    let stores_a = iocd_store::open_stores(&database.url).await.unwrap();
    let stores_b = iocd_store::open_stores(&database.url).await.unwrap();
    let (a, b) = tokio::join!(
        iocd_server::AppState::new(stores_a, ServerConfig::default(), "http://a.example"),
        iocd_server::AppState::new(stores_b, ServerConfig::default(), "http://a.example"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.identity.signing_key().kid(),
        b.identity.signing_key().kid()
    );
    let stores_c = iocd_store::open_stores(&database.url).await.unwrap();
    let c = iocd_server::AppState::new(stores_c, ServerConfig::default(), "http://a.example")
        .await
        .unwrap();
    assert_eq!(
        a.identity.signing_key().kid(),
        c.identity.signing_key().kid()
    );
    assert_eq!(
        database.scalar("SELECT COUNT(*) FROM signing_keys").await,
        1
    );
    // The secret is stored only as an argon2id hash.
    let creds = iocd_identity::register_app(
        c.identity.store().as_ref(),
        "tenant-a",
        "app",
        &[Role::ReadAll],
    )
    .await
    .unwrap();
    let apps = c
        .identity
        .store()
        .list_apps(Some("tenant-a"))
        .await
        .unwrap();
    assert_eq!(apps.len(), 1);
    assert!(apps[0].secret_hash.starts_with("$argon2id$"));
    assert!(!apps[0].secret_hash.contains(&creds.client_secret));
}

async fn remembered_secrets_never_admit_a_wrong_secret_or_a_deleted_app() {
    let server = TestServer::start().await;
    let tenant = server.app.tenant_id().to_string();
    let app = server
        .create_app(&tenant, "short-lived", &[Role::ReadWrite])
        .await;
    let form = |secret: &str| {
        vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".to_string(), app.client_id().to_string()),
            ("client_secret".to_string(), secret.to_string()),
            ("scope".to_string(), format!("{AUDIENCE}/.default")),
        ]
    };
    let path = format!("/{tenant}/oauth2/v2.0/token");
    let ask = |secret: String| {
        let body = serde_urlencoded::to_string(form(&secret)).unwrap();
        let req = server
            .client
            .post(server.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move { status_json(req.send().await.unwrap()).await }
    };
    // The right secret was just verified (create_app fetched a token): it is remembered now.
    let (status, _) = ask(app.credentials.client_secret.clone()).await;
    assert_eq!(status, 200);
    let mut wrong = app.credentials.client_secret.clone();
    wrong.pop();
    let (status, body) = ask(wrong).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client");
    // A burst of good requests all succeed.
    let burst =
        futures::future::join_all((0..20).map(|_| ask(app.credentials.client_secret.clone())))
            .await;
    assert!(burst.iter().all(|(status, _)| *status == 200));
    // Once deleted, the app gets no new token although its secret is still remembered.
    assert!(server
        .identity
        .delete_app(&tenant, app.client_id())
        .await
        .unwrap());
    let (status, body) = ask(app.credentials.client_secret.clone()).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("AADSTS700016"));
}

on_every_backend!(
    remembered_secrets_never_admit_a_wrong_secret_or_a_deleted_app,
    token_flows_v1_and_v2_give_entra_shaped_tokens_that_the_api_accepts,
    token_endpoint_errors_are_oauth_shaped,
    every_bad_token_is_refused_with_401_and_a_challenge,
    missing_roles_are_403_naming_the_required_roles,
    role_semantics_own_versus_all,
    tenants_are_isolated,
    external_issuer_tokens_are_accepted_by_their_jwks,
    replicas_starting_together_share_one_signing_key,
);

/// A token signed with iocd's own key, carrying tenant B's `tid` and an `appid` registered in
/// tenant A, was accepted in tenant B. Only a holder of the key can mint one; it is refused all
/// the same, while the token of an app of B (and of a deleted app) still works.
#[tokio::test]
async fn an_own_token_whose_app_belongs_to_another_tenant_is_refused() {
    let server = TestServer::start().await;
    let key = server_key(&server).await;
    let tenant_b = uuid::Uuid::new_v4().to_string();
    let app_b = server
        .create_app(&tenant_b, "tenant b app", &[Role::ReadWriteAll])
        .await;
    let mint = |client_id: &str| {
        key.issue(&TokenClaimsInput {
            tenant_id: tenant_b.clone(),
            client_id: client_id.to_string(),
            ..own_claims(&server)
        })
        .unwrap()
        .access_token
    };
    let crossed = mint(server.app.client_id());
    let (status, body) = status_json(
        server
            .send_as(&crossed, Method::GET, "/api/indicators")
            .await,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("is not registered in tenant"),
        "{body}"
    );
    let own = mint(app_b.client_id());
    let (status, body) =
        status_json(server.send_as(&own, Method::GET, "/api/indicators").await).await;
    assert_eq!(status, 200, "{body}");
    let deleted = mint(&uuid::Uuid::new_v4().to_string());
    let (status, body) = status_json(
        server
            .send_as(&deleted, Method::GET, "/api/indicators")
            .await,
    )
    .await;
    assert_eq!(
        status, 200,
        "a deleted app's token stays valid until it expires: {body}"
    );
}
