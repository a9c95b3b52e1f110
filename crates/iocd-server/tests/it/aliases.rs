//! Tenant domain aliases: an authority URL may name a tenant by a domain
//! (`/contoso.onmicrosoft.com/oauth2/v2.0/token`), as Entra allows; tokens, discovery documents
//! and keys then name the tenant by its id.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use iocd_identity::{add_tenant_alias, RegisterError, Role};
use iocd_testkit::*;
use reqwest::Method;
use serde_json::Value;

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn token_at(server: &TestServer, tenant_name: &str) -> (u16, Value) {
    let creds = &server.app.credentials;
    status_json(
        server
            .client
            .post(server.url(&format!("/{tenant_name}/oauth2/v2.0/token")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", creds.client_id.as_str()),
                ("client_secret", creds.client_secret.as_str()),
                ("scope", "https://api.securitycenter.microsoft.com/.default"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn a_domain_alias_names_the_tenant_in_every_authority_url() {
    let server = TestServer::start().await;
    let tenant = server.app.credentials.tenant_id.clone();
    let store = server.identity.as_ref();
    let domain = add_tenant_alias(store, &tenant, "Contoso.OnMicrosoft.com")
        .await
        .unwrap();
    assert_eq!(domain, "contoso.onmicrosoft.com");

    for name in ["contoso.onmicrosoft.com", "CONTOSO.onmicrosoft.com"] {
        let (status, body) = token_at(&server, name).await;
        assert_eq!(status, 200, "{name}: {body}");
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(claims(token)["tid"], tenant.as_str());
        assert_eq!(
            claims(token)["iss"],
            format!("{}/{tenant}/v2.0", server.base_url())
        );
        assert_eq!(
            server
                .send_as(token, Method::GET, "/api/indicators")
                .await
                .status(),
            200
        );
    }
    let (status, document) = status_json(
        server
            .send(
                Method::GET,
                "/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration",
            )
            .await,
    )
    .await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(
        document["issuer"],
        format!("{}/{tenant}/v2.0", server.base_url())
    );
    assert_eq!(
        document["token_endpoint"],
        format!("{}/{tenant}/oauth2/v2.0/token", server.base_url())
    );
    let (status, keys) = status_json(
        server
            .send(Method::GET, "/contoso.onmicrosoft.com/discovery/v2.0/keys")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!keys["keys"].as_array().unwrap().is_empty());

    // An unknown domain is an unknown tenant.
    let (status, body) = token_at(&server, "fabrikam.onmicrosoft.com").await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64()),
        (400, Some(90002)),
        "{body}"
    );

    // Refused: a second tenant taking the domain, a tenant without apps, a tenant id, junk.
    let other = server
        .create_app("other-tenant", "other", &[Role::ReadAll])
        .await;
    let taken = add_tenant_alias(store, other.tenant_id(), "contoso.onmicrosoft.com").await;
    assert!(
        matches!(&taken, Err(RegisterError::Invalid(m)) if m.contains("already an alias of tenant")),
        "{taken:?}"
    );
    let no_apps = add_tenant_alias(store, "nobody", "nobody.example").await;
    assert!(
        matches!(&no_apps, Err(RegisterError::Invalid(m)) if m.contains("has no apps")),
        "{no_apps:?}"
    );
    server
        .create_app("tenant.example", "dotted", &[Role::ReadAll])
        .await;
    let is_id = add_tenant_alias(store, &tenant, "tenant.example").await;
    assert!(
        matches!(&is_id, Err(RegisterError::Invalid(m)) if m.contains("already a tenant id")),
        "{is_id:?}"
    );
    assert!(add_tenant_alias(store, &tenant, "not a domain")
        .await
        .is_err());
    assert_eq!(
        store.tenant_aliases(None).await.unwrap(),
        vec![("contoso.onmicrosoft.com".to_string(), tenant.clone())]
    );
}

on_every_backend!(a_domain_alias_names_the_tenant_in_every_authority_url);
