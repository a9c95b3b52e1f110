//! The web portal over plain HTTP (the browser tests are in `portal_browser.rs`): signing in
//! through iocd's own authorization endpoint, the session cookie, the CSRF token, the security
//! headers, and the pages' answers for each role.

use std::collections::HashMap;

use iocd_identity::{create_user, UserRole};
use iocd_testkit::*;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use serde_json::{json, Value};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The people of a portal test's tenant: a manager, a viewer and an administrator.
pub(crate) const MANAGER: &str = "alice@contoso.example";
pub(crate) const VIEWER: &str = "victor@contoso.example";
pub(crate) const ADMIN: &str = "ada@contoso.example";

/// A server whose tenant has the three users.
pub(crate) async fn portal_server() -> TestServer {
    let server = TestServer::start().await;
    let tenant = server.app.tenant_id().to_string();
    for (upn, name, role) in [
        (MANAGER, "Alice Analyst", UserRole::IndicatorsManage),
        (VIEWER, "Victor Viewer", UserRole::IndicatorsRead),
        (ADMIN, "Ada Admin", UserRole::Admin),
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
    server
}

/// A browser stand-in: follows no redirects by itself and keeps cookies.
struct Visitor<'a> {
    server: &'a TestServer,
    client: Client,
    cookies: HashMap<String, String>,
}

impl<'a> Visitor<'a> {
    fn new(server: &'a TestServer) -> Self {
        Visitor {
            server,
            client: Client::builder().redirect(Policy::none()).build().unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http") {
            location.to_string()
        } else {
            self.server.url(location)
        }
    }

    async fn get(&mut self, path: &str) -> Response {
        let response = self
            .client
            .get(self.absolute(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let response = self
            .client
            .post(self.absolute(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&response);
        response
    }

    /// Follows redirects from `response` (GETs), returning the last response.
    async fn follow(&mut self, mut response: Response) -> Response {
        for _ in 0..10 {
            if !response.status().is_redirection() {
                return response;
            }
            let location = response.headers()[LOCATION].to_str().unwrap().to_string();
            response = self.get(&location).await;
        }
        panic!("too many redirects");
    }

    /// Signs in through the portal's sign-in, the authorization endpoint's form and the callback.
    async fn sign_in(&mut self, upn: &str) -> Response {
        let tenant = self.server.app.tenant_id().to_string();
        let start = self
            .get(&format!("/portal/signin/start?tenant={tenant}"))
            .await;
        assert_eq!(start.status(), 303);
        let authorize = start.headers()[LOCATION].to_str().unwrap().to_string();
        assert!(
            authorize.starts_with(&format!("/{tenant}/oauth2/v2.0/authorize?")),
            "{authorize}"
        );
        assert!(
            authorize.contains("code_challenge_method=S256"),
            "{authorize}"
        );
        let page = self.get(&authorize).await;
        assert_eq!(page.status(), 200);
        let query = authorize.split_once('?').unwrap().1.to_string();
        let mut form: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        form.push(("username".into(), upn.into()));
        form.push(("password".into(), PASSWORD.into()));
        let borrowed: Vec<(&str, &str)> =
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let path = authorize.split_once('?').unwrap().0.to_string();
        let back = self.post(&path, &borrowed).await;
        assert_eq!(back.status(), 302, "{}", back.text().await.unwrap());
        let callback = back.headers()[LOCATION].to_str().unwrap().to_string();
        assert!(
            callback.starts_with(&self.server.url("/portal/callback?")),
            "{callback}"
        );
        self.follow(back).await
    }

    fn csrf(html: &str) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = html.find(marker).expect("a CSRF field") + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_string()
    }
}

async fn submit(server: &TestServer, body: &Value) -> Value {
    let (status, created) = status_json(server.post_json("/api/indicators", body).await).await;
    assert_eq!(status, 200, "{created}");
    created
}

async fn signing_in_goes_through_the_authorization_endpoint_and_sets_a_strict_cookie() {
    let server = portal_server().await;
    let mut visitor = Visitor::new(&server);
    // Without a session a page sends the browser to sign in, and back afterwards.
    let first = visitor.get("/portal/indicators?tab=ips").await;
    assert_eq!(first.status(), 303);
    assert_eq!(
        first.headers()[LOCATION],
        "/portal/signin?return=%2Fportal%2Findicators%3Ftab%3Dips"
    );
    let signin = visitor
        .get("/portal/signin?return=%2Fportal%2Findicators%3Ftab%3Dips")
        .await;
    assert_eq!(signin.status(), 200);
    assert!(signin.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));

    let tenant = server.app.tenant_id().to_string();
    let start = visitor
        .get(&format!(
            "/portal/signin/start?tenant={tenant}&return=%2Fportal%2Findicators%3Ftab%3Dips"
        ))
        .await;
    let sign_in_cookie = start
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("iocd_portal_signin="))
        .expect("the sign-in cookie");
    assert!(sign_in_cookie.contains("HttpOnly") && sign_in_cookie.contains("SameSite=Strict"));
    assert!(
        !sign_in_cookie.contains("Secure"),
        "plain HTTP: {sign_in_cookie}"
    );
    visitor.cookies.clear();

    let page = visitor.sign_in(MANAGER).await;
    assert_eq!(page.status(), 200);
    assert!(
        page.url().as_str().ends_with("/portal/indicators"),
        "{}",
        page.url()
    );
    let session = visitor
        .cookies
        .get("iocd_portal")
        .expect("a session cookie");
    assert!(session.len() >= 40);
    let headers = page.headers().clone();
    let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("Alice Analyst"), "the header names the user");
    assert!(!html.contains("<script>"), "no inline script");
    assert!(html.contains(r#"<script src="/portal/assets/portal.js""#));

    // The portal's client was created in the tenant, as a public client without roles.
    let apps = server.identity.list_apps(Some(&tenant)).await.unwrap();
    let portal = apps
        .iter()
        .find(|a| a.display_name == "iocd portal")
        .expect("the portal client");
    assert!(portal.roles.is_empty());

    // A callback with a state this browser did not start is refused.
    let mut stranger = Visitor::new(&server);
    let forged = stranger.get("/portal/callback?code=abc&state=xyz").await;
    assert_eq!(forged.status(), 400);
    assert!(!stranger.cookies.contains_key("iocd_portal"));
}

async fn a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing() {
    let server = portal_server().await;
    let created = submit(&server, &domain_request(1)).await;
    let id = created["id"].as_str().unwrap().to_string();
    let mut visitor = Visitor::new(&server);
    let page = visitor.sign_in(MANAGER).await;
    let csrf = Visitor::csrf(&page.text().await.unwrap());
    let delete = format!("/portal/indicators/{id}/delete");
    for form in [vec![], vec![("csrf", "forged")]] {
        let refused = visitor.post(&delete, &form).await;
        assert_eq!(refused.status(), 403);
        assert!(refused.text().await.unwrap().contains("security token"));
    }
    let still = server
        .send(reqwest::Method::GET, &format!("/api/indicators/{id}"))
        .await;
    assert_eq!(still.status(), 200, "nothing was deleted");
    let deleted = visitor.post(&delete, &[("csrf", &csrf)]).await;
    assert_eq!(deleted.status(), 303);
    let gone = server
        .send(reqwest::Method::GET, &format!("/api/indicators/{id}"))
        .await;
    assert_eq!(gone.status(), 404);

    // Signing out needs the token too, and ends the session.
    let refused = visitor.post("/portal/signout", &[]).await;
    assert_eq!(refused.status(), 403);
    let out = visitor.post("/portal/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    assert_eq!(out.headers()[LOCATION], "/portal/signin?signed_out=1");
    assert!(!visitor.cookies.contains_key("iocd_portal"));
    let after = visitor.get("/portal/indicators").await;
    assert_eq!(after.status(), 303, "signed out");
}

async fn writes_made_in_the_portal_are_recorded_as_the_portals() {
    let server = portal_server().await;
    let mut visitor = Visitor::new(&server);
    let page = visitor.sign_in(MANAGER).await;
    let csrf = Visitor::csrf(&page.text().await.unwrap());
    let saved = visitor
        .post(
            "/portal/indicators/new",
            &[
                ("csrf", &csrf),
                ("indicatorType", "DomainName"),
                ("indicatorValue", "portal-made.example"),
                ("action", "Block"),
                ("title", "made in the portal"),
                ("description", "added by hand"),
            ],
        )
        .await;
    assert_eq!(saved.status(), 303, "{}", saved.text().await.unwrap());
    let location = saved.headers()[LOCATION].to_str().unwrap().to_string();
    let id = location
        .trim_start_matches("/portal/indicators/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let created = server
        .send(reqwest::Method::GET, &format!("/api/indicators/{id}"))
        .await;
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["createdBySource"], "Portal");
    assert_eq!(created["createdBy"], MANAGER);

    let deleted = visitor
        .post(
            &format!("/portal/indicators/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status(), 303);
    let history: Value = server
        .send(
            reqwest::Method::GET,
            &format!("/iocd/v1/indicators/{id}/history"),
        )
        .await
        .json()
        .await
        .unwrap();
    let entries = history["value"].as_array().unwrap();
    let sources: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["actor"]["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(sources, [("Created", "Portal"), ("Deleted", "Portal")]);
    assert!(entries.iter().all(|e| e["actor"]["id"] == MANAGER));
}

async fn a_viewer_sees_everything_read_only() {
    let server = portal_server().await;
    let created = submit(&server, &domain_request(2)).await;
    let id = created["id"].as_str().unwrap().to_string();
    let mut visitor = Visitor::new(&server);
    let list = visitor.sign_in(VIEWER).await;
    let html = list.text().await.unwrap();
    assert!(!html.contains(r#"id="add""#), "no add button");
    let urls = visitor
        .get("/portal/indicators?tab=urls")
        .await
        .text()
        .await
        .unwrap();
    assert!(urls.contains(created["indicatorValue"].as_str().unwrap()));
    assert!(!urls.contains("Delete selected"));
    let detail = visitor.get(&format!("/portal/indicators/{id}")).await;
    assert_eq!(detail.status(), 200);
    let detail = detail.text().await.unwrap();
    assert!(detail.contains(r#"id="read-only""#) && !detail.contains(r#"id="edit""#));
    let csrf = Visitor::csrf(&detail);
    for path in [
        "/portal/indicators/new".to_string(),
        format!("/portal/indicators/{id}/edit"),
        "/portal/import".to_string(),
        "/portal/admin".to_string(),
    ] {
        assert_eq!(visitor.get(&path).await.status(), 403, "{path}");
    }
    let refused = visitor
        .post(
            &format!("/portal/indicators/{id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status(), 403);
    let still = server
        .send(reqwest::Method::GET, &format!("/api/indicators/{id}"))
        .await;
    assert_eq!(still.status(), 200);
}

async fn the_list_runs_the_apis_query_with_tabs_filters_sorting_and_paging() {
    let server = portal_server().await;
    for n in 1..=3 {
        submit(&server, &domain_request(n)).await;
    }
    submit(
        &server,
        &json!({"indicatorValue": "8.8.4.4", "indicatorType": "IpAddress", "action": "Block",
                "title": "resolver", "description": "d", "severity": "High"}),
    )
    .await;
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(MANAGER).await;
    let ips = visitor
        .get("/portal/indicators?tab=ips")
        .await
        .text()
        .await
        .unwrap();
    assert!(ips.contains("8.8.4.4"));
    assert!(!ips.contains("host1.evil.example"));
    let filtered = visitor
        .get("/portal/indicators?tab=ips&severity=Low")
        .await
        .text()
        .await
        .unwrap();
    assert!(!filtered.contains(">8.8.4.4<"), "filtered out");
    assert!(filtered.contains("No IP addresses match these filters"));
    let search = visitor
        .get("/portal/indicators?tab=urls&q=host2")
        .await
        .text()
        .await
        .unwrap();
    assert!(search.contains("host2.evil.example") && !search.contains("host3.evil.example"));
    let page_two = visitor
        .get("/portal/indicators?tab=urls&size=25&sort=indicatorValue&dir=asc&page=2")
        .await
        .text()
        .await
        .unwrap();
    assert!(page_two.contains("past the last one"));
    let bad = visitor.get("/portal/indicators?tab=urls&action=Nope").await;
    assert_eq!(bad.status(), 200);
    assert!(bad.text().await.unwrap().contains("could not be applied"));
    // The API call the page shows is the one it ran.
    assert!(
        ips.contains("$filter=indicatorType+eq+%27IpAddress%27"),
        "{ips}"
    );
}

async fn an_empty_tenant_says_how_to_submit_a_first_indicator() {
    let server = portal_server().await;
    let mut visitor = Visitor::new(&server);
    let html = visitor.sign_in(MANAGER).await.text().await.unwrap();
    assert!(html.contains("This tenant has no indicators yet"));
    assert!(html.contains("/oauth2/v2.0/token"));
    assert!(html.contains("/api/indicators"));
}

async fn export_writes_the_current_filter_and_the_match_box_explains_the_decision() {
    let server = portal_server().await;
    for n in 1..=3 {
        submit(&server, &domain_request(n)).await;
    }
    submit(
        &server,
        &json!({"indicatorValue": "8.8.4.4", "indicatorType": "IpAddress", "action": "Block",
                "title": "resolver", "description": "d"}),
    )
    .await;
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(VIEWER).await;
    let csv = visitor
        .get("/portal/export?format=csv&tab=urls&q=host2")
        .await;
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("indicators-urls.csv"));
    let text = csv.text().await.unwrap();
    assert_eq!(
        text.lines().count(),
        2,
        "the header and the one match: {text}"
    );
    assert!(text.contains("host2.evil.example"));
    let json_export: Value = visitor
        .get("/portal/export?format=json&tab=urls")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json_export.as_array().unwrap().len(), 3);
    let stix: Value = visitor
        .get("/portal/export?format=stix&tab=ips")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stix["type"], "bundle");
    assert_eq!(stix["objects"].as_array().unwrap().len(), 1);
    assert_eq!(
        visitor
            .get("/portal/export?format=xml&tab=ips")
            .await
            .status(),
        400
    );

    let decided = visitor
        .get("/portal/match?kind=domain&value=www.host1.evil.example")
        .await;
    assert_eq!(decided.status(), 200);
    let html = decided.text().await.unwrap();
    assert!(
        html.contains("Decision: <strong class=\"decision\">Block</strong>"),
        "{html}"
    );
    assert!(html.contains("Deciding indicator"));
    let nothing = visitor
        .get("/portal/match?kind=ip&value=9.9.9.9")
        .await
        .text()
        .await
        .unwrap();
    assert!(nothing.contains("No indicator applies"));
    let bad = visitor.get("/portal/match?kind=ip&value=not-an-ip").await;
    assert_eq!(bad.status(), 400);
}

async fn an_administrator_manages_apps_and_users_and_sees_quota_and_limits() {
    let server = portal_server().await;
    submit(&server, &domain_request(1)).await;
    let mut visitor = Visitor::new(&server);
    let page = visitor.sign_in(ADMIN).await;
    let csrf = Visitor::csrf(&page.text().await.unwrap());
    let admin = visitor.get("/portal/admin").await;
    assert_eq!(admin.status(), 200);
    let html = admin.text().await.unwrap();
    assert!(
        html.contains("<strong>1</strong> active indicators of <strong>15000</strong>"),
        "{html}"
    );
    // The default app made one submit call: its submit window shows one call used.
    assert!(
        html.contains("submit: 99/100 per minute, 1499/1500 per hour"),
        "{html}"
    );

    // An app: its secret is shown once, and it works.
    let created = visitor
        .post(
            "/portal/admin/apps",
            &[
                ("csrf", &csrf),
                ("name", "SOAR playbook"),
                ("role", "Ti.ReadWrite.All"),
            ],
        )
        .await;
    assert_eq!(created.status(), 303);
    let shown = visitor.get("/portal/admin").await.text().await.unwrap();
    let secret_at = shown.find(r#"id="created-secret">"#).expect("the secret") + 20;
    let secret = &shown[secret_at..secret_at + shown[secret_at..].find('<').unwrap()];
    let id_at = shown.find(r#"id="created-client-id">"#).unwrap() + 23;
    let client_id = &shown[id_at..id_at + shown[id_at..].find('<').unwrap()];
    let token = server
        .fetch_token(&iocd_identity::NewAppCredentials {
            tenant_id: server.app.tenant_id().to_string(),
            client_id: client_id.to_string(),
            client_secret: secret.to_string(),
        })
        .await;
    assert!(!token.is_empty());
    let again = visitor.get("/portal/admin").await.text().await.unwrap();
    assert!(!again.contains(secret), "shown once");
    // Its roles change, then it goes.
    let roles = visitor
        .post(
            &format!("/portal/admin/apps/{client_id}/roles"),
            &[("csrf", &csrf), ("role", "Ti.Read.All")],
        )
        .await;
    assert_eq!(roles.status(), 303);
    let app = server
        .identity
        .find_app(server.app.tenant_id(), client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(app.roles, ["Ti.Read.All"]);
    let deleted = visitor
        .post(
            &format!("/portal/admin/apps/{client_id}/delete"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status(), 303);
    assert!(server
        .identity
        .find_app(server.app.tenant_id(), client_id)
        .await
        .unwrap()
        .is_none());

    // A user with a generated password, shown once; a role change; a bad name refused.
    let created = visitor
        .post(
            "/portal/admin/users",
            &[
                ("csrf", &csrf),
                ("upn", "bob@contoso.example"),
                ("name", "Bob"),
                ("role", "Iocd.Indicators.Manage"),
            ],
        )
        .await;
    assert_eq!(created.status(), 303);
    let shown = visitor.get("/portal/admin").await.text().await.unwrap();
    assert!(shown.contains("User <strong>bob@contoso.example</strong> created."));
    assert!(shown.contains(r#"id="created-secret""#));
    let changed = visitor
        .post(
            "/portal/admin/users/bob@contoso.example/roles",
            &[("csrf", &csrf), ("role", "Iocd.Indicators.Read")],
        )
        .await;
    assert_eq!(changed.status(), 303);
    let bob = server
        .identity
        .find_user_by_upn(server.app.tenant_id(), "bob@contoso.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.roles, ["Iocd.Indicators.Read"]);
    let refused = visitor
        .post(
            "/portal/admin/users",
            &[
                ("csrf", &csrf),
                ("upn", "not a name"),
                ("name", "X"),
                ("role", "Iocd.Indicators.Read"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("is invalid"));
    // An administrator cannot lock themselves out.
    let own = visitor
        .post(
            &format!("/portal/admin/users/{ADMIN}/roles"),
            &[("csrf", &csrf), ("role", "Iocd.Indicators.Read")],
        )
        .await;
    assert_eq!(own.status(), 400);
    let gone = visitor
        .post(
            "/portal/admin/users/bob@contoso.example/delete",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(gone.status(), 303);
    assert!(server
        .identity
        .find_user_by_upn(server.app.tenant_id(), "bob@contoso.example")
        .await
        .unwrap()
        .is_none());

    // A manager is no administrator.
    let mut manager = Visitor::new(&server);
    manager.sign_in(MANAGER).await;
    assert_eq!(manager.get("/portal/admin").await.status(), 403);
}

/// The values a list page shows (each links to its detail page), sorted.
fn listed_values(html: &str) -> Vec<String> {
    let mut values: Vec<String> = html
        .split("<td class=\"value\"><a href=\"/portal/indicators/")
        .skip(1)
        .map(|cell| {
            let text = &cell[cell.find('>').unwrap() + 1..];
            text[..text.find('<').unwrap()].to_string()
        })
        .collect();
    values.sort();
    values
}

const SEARCH_TERMS: [&str; 9] = [
    "zone1",
    "ZONE2.Example",
    "campaign 3",
    "WAVE",
    "h00",
    "/p1",
    "10.0.1",
    "renamed",
    "absent",
];

/// Searches each term on the portal's two tabs and requires the values the API's `contains`
/// filter finds; returns how many rows were found in all.
async fn searches_agree_with_the_api(server: &TestServer, visitor: &mut Visitor<'_>) -> usize {
    let mut found = 0;
    for term in SEARCH_TERMS {
        for (tab, types) in [("urls", "'Url','DomainName'"), ("ips", "'IpAddress'")] {
            let filter = format!(
                "indicatorType in ({types}) and \
                 (contains(indicatorValue,'{term}') or contains(title,'{term}'))"
            );
            let encoded: String = form_urlencoded::byte_serialize(filter.as_bytes()).collect();
            let (status, api) = status_json(
                server
                    .send(
                        reqwest::Method::GET,
                        &format!("/api/indicators?%24filter={encoded}"),
                    )
                    .await,
            )
            .await;
            assert_eq!(status, 200, "{api}");
            let mut expected: Vec<String> = api["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["indicatorValue"].as_str().unwrap().to_string())
                .collect();
            expected.sort();
            let q: String = form_urlencoded::byte_serialize(term.as_bytes()).collect();
            let html = visitor
                .get(&format!("/portal/indicators?tab={tab}&size=100&q={q}"))
                .await
                .text()
                .await
                .unwrap();
            assert_eq!(listed_values(&html), expected, "{term} on {tab}");
            found += expected.len();
        }
    }
    found
}

/// The portal's search reads the ids its in-memory search index finds: the page must be what
/// the API's `contains` filter finds, for terms in values and in titles, in any case, and after
/// the updates and deletes the index learns of from the change log.
async fn a_search_finds_what_the_apis_contains_filter_finds_after_every_change() {
    let server = portal_server().await;
    let item = |n: u32, title: &str| {
        let (ty, value) = match n % 3 {
            0 => ("DomainName", format!("h{n:03}.zone{}.example", n % 4)),
            1 => ("Url", format!("https://h{n:03}.zone{}.example/p{n}", n % 4)),
            _ => ("IpAddress", format!("10.0.{}.{n}", n % 4)),
        };
        json!({"indicatorValue": value, "indicatorType": ty, "action": "Block",
               "title": title, "description": "d"})
    };
    server
        .import(
            (0..60)
                .map(|n| item(n, &format!("Campaign {} Wave", n % 5)))
                .collect(),
        )
        .await;
    let mut visitor = Visitor::new(&server);
    visitor.sign_in(VIEWER).await;
    let before = searches_agree_with_the_api(&server, &mut visitor).await;
    assert!(before > 40, "the terms find rows: {before}");

    // Rename a few (an upsert of the same value and action), delete a few, add one.
    server
        .import(
            (0..60)
                .filter(|n| n % 6 == 1)
                .map(|n| item(n, "Renamed"))
                .collect(),
        )
        .await;
    let (_, listed) = status_json(server.send(reqwest::Method::GET, "/api/indicators").await).await;
    for indicator in listed["value"].as_array().unwrap() {
        let value = indicator["indicatorValue"].as_str().unwrap();
        if value.starts_with("h00") || value.starts_with("10.0.1.") {
            let path = format!("/api/indicators/{}", indicator["id"].as_str().unwrap());
            assert_eq!(
                server.send(reqwest::Method::DELETE, &path).await.status(),
                204
            );
        }
    }
    submit(&server, &item(60, "a late ZONE1 entry")).await;
    let renamed = visitor
        .get("/portal/indicators?tab=urls&size=100&q=renamed")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(listed_values(&renamed).len(), 10, "{renamed}");
    let after = searches_agree_with_the_api(&server, &mut visitor).await;
    assert_ne!(after, before);
}

on_every_backend!(
    a_search_finds_what_the_apis_contains_filter_finds_after_every_change,
    export_writes_the_current_filter_and_the_match_box_explains_the_decision,
    an_administrator_manages_apps_and_users_and_sees_quota_and_limits,
    signing_in_goes_through_the_authorization_endpoint_and_sets_a_strict_cookie,
    a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing,
    a_viewer_sees_everything_read_only,
    writes_made_in_the_portal_are_recorded_as_the_portals,
    the_list_runs_the_apis_query_with_tabs_filters_sorting_and_paging,
    an_empty_tenant_says_how_to_submit_a_first_indicator,
);
