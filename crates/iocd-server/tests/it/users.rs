//! People signing in through apps: the password, authorization-code (PKCE), device-code and
//! refresh-token grants, the sign-in pages, delegated tokens and what they may do.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use iocd_identity::{add_tenant_alias, create_user, set_app_sign_in, Role, UserRole};
use iocd_testkit::*;
use reqwest::Method;
use serde_json::Value;
use sha2::Digest;

const RESOURCE: &str = "https://api.securitycenter.microsoft.com";
const SCOPE: &str =
    "https://api.securitycenter.microsoft.com/Ti.ReadWrite openid profile offline_access";
const PASSWORD: &str = "correct horse battery staple";

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// A server with a public-client app and two users of its tenant: a manager and a viewer.
struct Fixture {
    server: TestServer,
    tenant: String,
    public_client: String,
}

async fn fixture() -> Fixture {
    let server = TestServer::start().await;
    let tenant = server.app.tenant_id().to_string();
    let public = server.create_app(&tenant, "Script", &[]).await;
    let public_client = public.client_id().to_string();
    set_app_sign_in(
        server.identity.as_ref(),
        &public_client,
        true,
        &["https://app.example/callback".to_string()],
    )
    .await
    .unwrap();
    for (upn, name, role) in [
        (
            "alice@contoso.example",
            "Alice Analyst",
            UserRole::IndicatorsManage,
        ),
        (
            "victor@contoso.example",
            "Victor Viewer",
            UserRole::IndicatorsRead,
        ),
    ] {
        create_user(
            server.identity.as_ref(),
            &tenant,
            name,
            upn,
            &[role],
            Some(PASSWORD),
        )
        .await
        .unwrap();
    }
    Fixture {
        server,
        tenant,
        public_client,
    }
}

impl Fixture {
    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        self.form(&format!("/{}/oauth2/v2.0/token", self.tenant), form)
            .await
    }

    async fn form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        status_json(
            self.server
                .client
                .post(self.server.url(path))
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn password_token(&self, upn: &str, password: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "password"),
            ("client_id", &self.public_client),
            ("username", upn),
            ("password", password),
            ("scope", SCOPE),
        ])
        .await
    }
}

async fn a_password_sign_in_gives_a_delegated_token_that_writes_as_the_user() {
    let f = fixture().await;
    let (status, body) = f.password_token("ALICE@contoso.example", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["refresh_token"].is_string(), "{body}");
    assert_eq!(
        body["scope"],
        "https://api.securitycenter.microsoft.com/Ti.ReadWrite openid profile offline_access"
    );
    let access = body["access_token"].as_str().unwrap();
    let token = claims(access);
    assert_eq!(token["scp"], "Ti.ReadWrite");
    assert_eq!(token["upn"], "alice@contoso.example");
    assert_eq!(token["unique_name"], "alice@contoso.example");
    assert_eq!(token["name"], "Alice Analyst");
    assert_eq!(token["tid"], f.tenant.as_str());
    assert_eq!(token["appid"], f.public_client.as_str());
    assert_eq!(token["aud"], RESOURCE);
    assert_eq!(token["idtyp"], "user");
    let id_token = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id_token["aud"], f.public_client.as_str());
    assert_eq!(id_token["oid"], token["oid"]);
    assert_eq!(id_token["preferred_username"], "alice@contoso.example");

    let (status, created) = status_json(
        f.server
            .post_json_as(access, "/api/indicators", &domain_request(1))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["createdBy"], "alice@contoso.example");
    assert_eq!(created["createdByDisplayName"], "Alice Analyst");
}

async fn a_delegated_call_needs_the_users_role() {
    let f = fixture().await;
    let (status, body) = f.password_token("victor@contoso.example", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let viewer = body["access_token"].as_str().unwrap().to_string();
    let (status, refused) = status_json(
        f.server
            .post_json_as(&viewer, "/api/indicators", &domain_request(2))
            .await,
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "Forbidden");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Iocd.Indicators.Manage"),
        "{refused}"
    );
    // The viewer reads every indicator of the tenant, as in the portal.
    let (status, _) = status_json(
        f.server
            .post_json("/api/indicators", &domain_request(3))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    let (status, listed) = status_json(
        f.server
            .send_as(&viewer, Method::GET, "/api/indicators")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
}

async fn a_wrong_password_reads_the_same_for_unknown_users_and_locks_out() {
    let f = fixture().await;
    let (status, wrong) = f
        .password_token("alice@contoso.example", "not the password")
        .await;
    assert_eq!(status, 400, "{wrong}");
    assert_eq!(wrong["error"], "invalid_grant");
    assert_eq!(wrong["error_codes"][0], 50126);
    let (status, unknown) = f
        .password_token("nobody@contoso.example", "whatever it is")
        .await;
    assert_eq!(status, 400);
    assert_eq!(unknown["error_codes"], wrong["error_codes"]);
    let strip_ids = |v: &Value| v["error_description"].as_str().unwrap().to_string();
    assert_eq!(strip_ids(&unknown), strip_ids(&wrong));

    for _ in 0..10 {
        f.password_token("alice@contoso.example", "guess guess guess")
            .await;
    }
    // Locked: even the right password is refused until the window passes.
    let (status, locked) = f.password_token("alice@contoso.example", PASSWORD).await;
    assert_eq!(status, 400, "{locked}");
    assert_eq!(locked["error_codes"][0], 50053, "{locked}");
    // Another user is not affected.
    let (status, _) = f.password_token("victor@contoso.example", PASSWORD).await;
    assert_eq!(status, 200);

    // Guessing across many names from one address locks that address out.
    for n in 0..50 {
        f.password_token(&format!("user{n}@contoso.example"), "guess guess guess")
            .await;
    }
    let (status, locked) = f.password_token("victor@contoso.example", PASSWORD).await;
    assert_eq!(
        (status, &locked["error_codes"][0]),
        (400, &serde_json::json!(50053))
    );
}

async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_sign_in() {
    let f = fixture().await;
    let (_, first) = f.password_token("alice@contoso.example", PASSWORD).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String| {
        let f = &f;
        async move {
            f.token(&[
                ("grant_type", "refresh_token"),
                ("client_id", &f.public_client),
                ("refresh_token", &rt),
                ("scope", SCOPE),
            ])
            .await
        }
    };
    let (status, second) = refresh(rt1.clone()).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert_eq!(
        claims(second["access_token"].as_str().unwrap())["upn"],
        "alice@contoso.example"
    );

    let (status, replay) = refresh(rt1).await;
    assert_eq!(status, 400, "{replay}");
    assert_eq!(replay["error"], "invalid_grant");
    assert_eq!(replay["error_codes"][0], 70000);
    // The replay revoked the whole sign-in: the newest token is dead too.
    let (status, after) = refresh(rt2).await;
    assert_eq!(status, 400, "{after}");
}

fn pkce_pair() -> (String, String) {
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789".to_string();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn the_authorization_code_flow_signs_in_with_pkce() {
    let f = fixture().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (verifier, challenge) = pkce_pair();
    let authorize = format!("/{}/oauth2/v2.0/authorize", f.tenant);
    let query = [
        ("client_id", f.public_client.as_str()),
        ("response_type", "code"),
        ("redirect_uri", "http://localhost:8765/done"),
        ("scope", SCOPE),
        ("state", "s-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let page = no_redirects
        .get(f.server.url(&authorize))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"name="username""#) && html.contains(r#"name="password""#));
    assert!(html.contains("Script"), "the page names the app");

    let mut form: Vec<(&str, &str)> = query.to_vec();
    form.push(("username", "alice@contoso.example"));
    form.push(("password", "a wrong password!"));
    let retry = no_redirects
        .post(f.server.url(&authorize))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 200);
    assert!(retry.text().await.unwrap().contains("incorrect"));

    form.pop();
    form.push(("password", PASSWORD));
    let signed_in = no_redirects
        .post(f.server.url(&authorize))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 302, "a redirect back to the app");
    let location = url::Url::parse(signed_in.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/done");
    let params: std::collections::HashMap<String, String> =
        location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "s-123");
    let code = params["code"].clone();

    let exchange = |verifier: String| {
        let (f, code) = (&f, code.clone());
        async move {
            f.token(&[
                ("grant_type", "authorization_code"),
                ("client_id", &f.public_client),
                ("code", &code),
                ("redirect_uri", "http://localhost:8765/done"),
                ("code_verifier", &verifier),
            ])
            .await
        }
    };
    let (status, wrong) = exchange("not-the-verifier-0123456789-0123456789-012345".into()).await;
    assert_eq!(status, 400, "{wrong}");
    assert_eq!(wrong["error_codes"][0], 501481);
    // The failed attempt spent the code, as a one-time code must be spent.
    let (status, reused) = exchange(verifier.clone()).await;
    assert_eq!(status, 400, "{reused}");
    assert_eq!(reused["error_codes"][0], 54005);

    // A fresh sign-in, redeemed properly.
    let signed_in = no_redirects
        .post(f.server.url(&authorize))
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(signed_in.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (status, body) = f
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &f.public_client),
            ("code", &code),
            ("redirect_uri", "http://localhost:8765/done"),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["id_token"].as_str().unwrap())["nonce"], "n-456");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["scp"],
        "Ti.ReadWrite"
    );

    // An unregistered redirect URI is never redirected to.
    let refused = no_redirects
        .get(f.server.url(&authorize))
        .query(&[
            ("client_id", f.public_client.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "https://attacker.example/steal"),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.unwrap();
    assert!(page.contains("AADSTS50011"), "{page}");
}

async fn the_device_code_flow_is_approved_on_the_device_login_page() {
    let f = fixture().await;
    let (status, started) = f
        .form(
            &format!("/{}/oauth2/v2.0/devicecode", f.tenant),
            &[("client_id", &f.public_client), ("scope", SCOPE)],
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let device_code = started["device_code"].as_str().unwrap().to_string();
    let user_code = started["user_code"].as_str().unwrap().to_string();
    assert_eq!(started["interval"], 5);
    assert!(started["verification_uri"]
        .as_str()
        .unwrap()
        .ends_with("/devicelogin"));
    assert!(started["message"].as_str().unwrap().contains(&user_code));

    let poll = || {
        let (f, device_code) = (&f, device_code.clone());
        async move {
            f.token(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", &f.public_client),
                ("device_code", &device_code),
            ])
            .await
        }
    };
    let (status, pending) = poll().await;
    assert_eq!(status, 400);
    assert_eq!(pending["error"], "authorization_pending", "{pending}");
    let (_, hurried) = poll().await;
    assert_eq!(hurried["error"], "slow_down", "{hurried}");

    // The page: the code (typed in lower case with a dash), then the sign-in form.
    let typed = format!("{}-{}", &user_code[..4], &user_code[4..]).to_lowercase();
    let page = f
        .server
        .client
        .post(f.server.url("/devicelogin"))
        .form(&[("code", typed.as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"name="password""#), "{page}");
    let done = f
        .server
        .client
        .post(f.server.url("/devicelogin"))
        .form(&[
            ("code", typed.as_str()),
            ("username", "alice@contoso.example"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(done.contains("You have signed in"), "{done}");

    let (status, body) = poll().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["upn"],
        "alice@contoso.example"
    );
    let (status, again) = poll().await;
    assert_eq!(status, 400, "a device code is redeemed once: {again}");

    // A declined code answers access_denied.
    let (_, declined) = f
        .form(
            &format!("/{}/oauth2/v2.0/devicecode", f.tenant),
            &[("client_id", &f.public_client), ("scope", SCOPE)],
        )
        .await;
    f.server
        .client
        .post(f.server.url("/devicelogin"))
        .form(&[
            ("code", declined["user_code"].as_str().unwrap()),
            ("decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    let (status, denied) = f
        .token(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", &f.public_client),
            ("device_code", declined["device_code"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(status, 400);
    assert_eq!(denied["error"], "access_denied", "{denied}");
}

async fn confidential_clients_authenticate_and_public_ones_must_not() {
    let f = fixture().await;
    let confidential = f.server.app.credentials.clone();
    let form = |secret: Option<&str>, client: &str| {
        let mut form = vec![
            ("grant_type", "password".to_string()),
            ("client_id", client.to_string()),
            ("username", "alice@contoso.example".to_string()),
            ("password", PASSWORD.to_string()),
            ("resource", RESOURCE.to_string()),
        ];
        if let Some(secret) = secret {
            form.push(("client_secret", secret.to_string()));
        }
        form
    };
    let v1 = format!("/{}/oauth2/token", f.tenant);
    let send = |form: Vec<(&'static str, String)>| {
        let (f, v1) = (&f, v1.clone());
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.form(&v1, &form).await
        }
    };
    let (status, body) = send(form(
        Some(&confidential.client_secret),
        &confidential.client_id,
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["ver"], "1.0");
    assert!(
        body["refresh_token"].is_string(),
        "v1 always returns a refresh token"
    );

    let (status, body) = send(form(None, &confidential.client_id)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_codes"][0], 7000218);
    let (status, body) = send(form(Some("a secret"), &f.public_client)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error_codes"][0], 700025);
}

async fn the_app_roles_of_a_client_are_not_the_users() {
    // An app holding Ti.ReadWrite.All signs a viewer in: the delegated token gets the viewer's
    // rights, not the app's.
    let f = fixture().await;
    let app = f
        .server
        .create_app(&f.tenant, "Powerful app", &[Role::ReadWriteAll])
        .await;
    let (status, body) = f
        .token(&[
            ("grant_type", "password"),
            ("client_id", app.client_id()),
            ("client_secret", &app.credentials.client_secret),
            ("username", "victor@contoso.example"),
            ("password", PASSWORD),
            ("scope", SCOPE),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["roles"][0], "Iocd.Indicators.Read");
    let (status, _) = status_json(
        f.server
            .post_json_as(token, "/api/indicators", &domain_request(4))
            .await,
    )
    .await;
    assert_eq!(status, 403);
}

async fn a_tenant_alias_names_the_tenant_in_every_flow() {
    let f = fixture().await;
    add_tenant_alias(f.server.identity.as_ref(), &f.tenant, "contoso.example")
        .await
        .unwrap();
    let (status, body) = f
        .form(
            "/contoso.example/oauth2/v2.0/token",
            &[
                ("grant_type", "password"),
                ("client_id", &f.public_client),
                ("username", "alice@contoso.example"),
                ("password", PASSWORD),
                ("scope", SCOPE),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["tid"],
        f.tenant.as_str()
    );
    let (status, started) = f
        .form(
            "/contoso.example/oauth2/v2.0/devicecode",
            &[("client_id", &f.public_client), ("scope", SCOPE)],
        )
        .await;
    assert_eq!(status, 200, "{started}");
    let page = f
        .server
        .client
        .get(f.server.url("/contoso.example/oauth2/v2.0/authorize"))
        .query(&[
            ("client_id", f.public_client.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "http://localhost:8765/done"),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}

on_every_backend!(
    a_tenant_alias_names_the_tenant_in_every_flow,
    a_password_sign_in_gives_a_delegated_token_that_writes_as_the_user,
    a_delegated_call_needs_the_users_role,
    a_wrong_password_reads_the_same_for_unknown_users_and_locks_out,
    refresh_tokens_rotate_and_a_reused_one_revokes_the_sign_in,
    the_authorization_code_flow_signs_in_with_pkce,
    the_device_code_flow_is_approved_on_the_device_login_page,
    confidential_clients_authenticate_and_public_ones_must_not,
    the_app_roles_of_a_client_are_not_the_users,
);
