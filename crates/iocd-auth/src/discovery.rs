//! The OpenID Connect discovery document (`/.well-known/openid-configuration`).

use serde_json::{json, Value};

/// The discovery document for one tenant, with the fields of Entra's document that client
/// libraries read. MSAL refuses a document without `authorization_endpoint`, so the endpoints
/// Entra lists beside the token endpoint (`authorize`, `devicecode`, `logout`) are derived from
/// it even though iocd only serves the client-credentials grant.
pub fn openid_configuration(issuer: &str, token_endpoint: &str, jwks_uri: &str) -> Value {
    // Entra's endpoints are siblings: …/oauth2/v2.0/token beside …/oauth2/v2.0/authorize.
    let endpoint_base = token_endpoint
        .rsplit_once('/')
        .map_or(token_endpoint, |(base, _)| base);
    json!({
        "issuer": issuer,
        "token_endpoint": token_endpoint,
        "jwks_uri": jwks_uri,
        "authorization_endpoint": format!("{endpoint_base}/authorize"),
        "device_authorization_endpoint": format!("{endpoint_base}/devicecode"),
        "end_session_endpoint": format!("{endpoint_base}/logout"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce",
            "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"
        ],
        "request_uri_parameter_supported": false,
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "tenant_region_scope": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_carries_what_clients_read() {
        let document = openid_configuration(
            "https://iocd.example/t1/v2.0",
            "https://iocd.example/t1/oauth2/v2.0/token",
            "https://iocd.example/t1/discovery/v2.0/keys",
        );
        assert_eq!(document["issuer"], "https://iocd.example/t1/v2.0");
        assert_eq!(
            document["token_endpoint"],
            "https://iocd.example/t1/oauth2/v2.0/token"
        );
        assert_eq!(
            document["jwks_uri"],
            "https://iocd.example/t1/discovery/v2.0/keys"
        );
        assert_eq!(
            document["authorization_endpoint"],
            "https://iocd.example/t1/oauth2/v2.0/authorize"
        );
        assert_eq!(
            document["id_token_signing_alg_values_supported"][0],
            "RS256"
        );
        assert!(document["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_secret_post")));
        assert!(document["response_types_supported"].is_array());
        assert!(document
            .as_object()
            .unwrap()
            .get("tenant_region_scope")
            .is_some_and(Value::is_null));
    }
}
