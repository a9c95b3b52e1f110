//! The portal in a real headless Chromium (Debian's `chromium` and `chromium-driver`), driven
//! through WebDriver with fantoccini: sign in and out, add with a validation error then fix it,
//! edit, filter, delete, import with a bad row, the history after an API change, a viewer who
//! cannot edit, and a forged CSRF token refused; and every read and form again with the
//! browser's JavaScript turned off.
//!
//! Skipped, with one line saying so, when `chromium` or `chromedriver` is not installed
//! (`apt-get install chromium chromium-driver`; `.ci/run` installs them). With
//! `IOCD_UPDATE_SCREENSHOTS=1` the tests also save the screenshots shown in the README
//! (`docs/portal-*.png`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use iocd_testkit::*;
use serde_json::{json, Value};

use crate::portal::{portal_server, MANAGER, PASSWORD, VIEWER};

/// One Chromium at a time: the machine's cores are few and a browser is heavy.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a page may take to show what a test waits for. Generous: under CI's parallel tests a
/// page load or the import page's refresh can take many seconds on two cores.
const WAIT: Duration = Duration::from_secs(60);

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// chromedriver on a free port and a headless Chromium session through it.
struct Browser {
    driver: Child,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Option<Browser> {
        Browser::start_with(true).await
    }

    /// A Chromium whose pages run no script at all when `javascript` is false (the content
    /// setting a user or a locked-down profile turns off).
    async fn start_with(javascript: bool) -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) = (
            find_program(&["chromium", "chromium-browser", "google-chrome"]),
            find_program(&["chromedriver"]),
        ) else {
            env::skip("install Chromium and its WebDriver (apt-get install chromium chromium-driver) to run the browser tests");
            return None;
        };
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {
                    "profile.managed_default_content_settings.javascript":
                        if javascript { 1 } else { 2 },
                },
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Some(Browser {
            driver,
            client,
            _profile: profile,
        })
    }

    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(error) => {
                let url = self.client.current_url().await;
                let page = self.client.source().await.unwrap_or_default();
                panic!("no {css} on {url:?}: {error}\n{page}")
            }
        }
    }

    /// The element's text; found again when the page replaced it between the find and the
    /// read (a stale element after a navigation or the import page's refresh).
    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.wait_for(css).await.text().await {
                Ok(text) => return text,
                Err(error) if Instant::now() >= deadline => {
                    panic!("reading the text of {css}: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits until the page's path (and query) starts with `prefix`.
    async fn wait_for_path(&self, prefix: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return;
            }
            assert!(Instant::now() < deadline, "still at {path}, not {prefix}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs in through the portal's sign-in page and iocd's own sign-in form.
    async fn sign_in(&self, server: &TestServer, upn: &str) {
        self.goto(&server.url("/portal")).await;
        self.fill("#tenant", server.app.tenant_id()).await;
        self.click("button[type=submit]").await;
        self.fill("#username", upn).await;
        self.fill("#password", PASSWORD).await;
        self.click("button[type=submit]").await;
        self.wait_for_path("/portal/indicators").await;
        self.wait_for("nav.tabs").await;
    }

    async fn sign_out(&self) {
        self.click("header form[action='/portal/signout'] button")
            .await;
        self.wait_for_path("/portal/signin?signed_out=1").await;
        assert!(self.text("main").await.contains("You have signed out."));
    }

    /// Chooses the option of value `value` in the `<select>` at `css`.
    async fn select(&self, css: &str, value: &str) {
        self.wait_for(css)
            .await
            .select_by_value(value)
            .await
            .unwrap();
    }

    /// Uploads `csv` as a file on the import page; the report's summary.
    async fn import_csv(&self, server: &TestServer, csv: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("indicators.csv");
        std::fs::write(&file, csv).unwrap();
        self.goto(&server.url("/portal/import")).await;
        self.wait_for("#file")
            .await
            .send_keys(&file.display().to_string())
            .await
            .unwrap();
        self.click("#import").await;
        self.text("#import-summary").await
    }

    /// Saves a screenshot into docs/ when `IOCD_UPDATE_SCREENSHOTS` is set.
    async fn screenshot(&self, name: &str) {
        if std::env::var_os("IOCD_UPDATE_SCREENSHOTS").is_none() {
            return;
        }
        let png = self.client.screenshot().await.unwrap();
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs")
            .join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
    }
}

async fn submit(server: &TestServer, body: &Value) -> Value {
    let (status, created) = status_json(server.post_json("/api/indicators", body).await).await;
    assert_eq!(status, 200, "{created}");
    created
}

async fn a_manager_adds_with_an_error_fixes_it_edits_filters_and_deletes() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = portal_server().await;
    browser.sign_in(&server, MANAGER).await;
    assert!(browser.text("#empty").await.contains("no indicators yet"));

    // Add, with a value the API refuses and no title: both errors, each next to its field.
    browser
        .click("a[href='/portal/indicators/new?tab=files']")
        .await;
    browser
        .click("nav.tabs a[href='/portal/indicators/new?tab=ips']")
        .await;
    browser
        .wait_for_path("/portal/indicators/new?tab=ips")
        .await;
    browser.fill("#indicatorValue", "999.1.1.1").await;
    browser
        .fill("#description", "The resolver our playbook blocks")
        .await;
    browser.click("#save").await;
    browser.wait_for("#form-errors").await;
    let value_error = browser
        .text("[data-field=indicatorValue] .field-error")
        .await;
    assert!(value_error.contains("indicatorValue"), "{value_error}");
    assert!(browser
        .text("[data-field=title] .field-error")
        .await
        .contains("title"));
    assert_eq!(
        browser
            .wait_for("#indicatorValue")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("999.1.1.1"),
        "what was typed is kept"
    );
    browser.screenshot("portal-add").await;
    // Fixed, it is saved.
    browser.fill("#indicatorValue", "8.8.8.8").await;
    browser.fill("#title", "Public resolver").await;
    browser.click("#save").await;
    browser.wait_for("#saved").await;
    assert_eq!(
        browser.text("[data-property=indicatorValue]").await,
        "8.8.8.8"
    );
    assert_eq!(browser.text("[data-property=createdBy]").await, MANAGER);

    // Edit: a new title and severity.
    browser.click("#edit").await;
    browser.fill("#title", "Resolver to block").await;
    browser.select("#severity", "High").await;
    browser.click("#save").await;
    browser.wait_for("#saved").await;
    assert_eq!(
        browser.text("[data-property=title]").await,
        "Resolver to block"
    );
    assert_eq!(browser.text("[data-property=severity]").await, "High");
    let history = browser.text("#history").await;
    assert!(
        history.contains("Updated") && history.contains("Created"),
        "{history}"
    );
    assert!(history.contains("Public resolver") && history.contains("Resolver to block"));

    // Filter: another address of low severity, then the list narrowed to High.
    submit(
        &server,
        &json!({"indicatorValue": "1.1.1.1", "indicatorType": "IpAddress", "action": "Audit",
                "generateAlert": true, "title": "other", "description": "d", "severity": "Low"}),
    )
    .await;
    browser
        .goto(&server.url("/portal/indicators?tab=ips"))
        .await;
    let rows = browser.text("#indicators tbody").await;
    assert!(
        rows.contains("8.8.8.8") && rows.contains("1.1.1.1"),
        "{rows}"
    );
    browser.select("select[name=severity]", "High").await;
    browser.wait_for_path("/portal/indicators?tab=ips").await;
    let deadline = Instant::now() + WAIT;
    while !browser.path().await.contains("severity=High") {
        assert!(Instant::now() < deadline, "the filter was not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = browser.text("#indicators tbody").await;
    assert!(
        rows.contains("8.8.8.8") && !rows.contains("1.1.1.1"),
        "{rows}"
    );
    // Search by value.
    browser
        .goto(&server.url("/portal/indicators?tab=ips"))
        .await;
    browser.fill("input[name=q]", "1.1.1").await;
    browser.click("form[role=search] button[type=submit]").await;
    let deadline = Instant::now() + WAIT;
    while !browser.path().await.contains("q=1.1.1") {
        assert!(Instant::now() < deadline, "the search was not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = browser.text("#indicators tbody").await;
    assert!(
        rows.contains("1.1.1.1") && !rows.contains("8.8.8.8"),
        "{rows}"
    );
    browser.screenshot("portal-list").await;

    // Delete one from its page (confirming the dialog).
    browser
        .goto(&server.url("/portal/indicators?tab=ips"))
        .await;
    browser
        .click("#indicators a[href^='/portal/indicators/']")
        .await;
    browser.wait_for("#properties").await;
    let gone = browser.text("[data-property=id]").await;
    browser.click("#delete").await;
    browser.client.accept_alert().await.unwrap();
    assert_eq!(browser.text("#notice").await, "1 indicator deleted.");
    let (status, _) = status_json(
        server
            .send(reqwest::Method::GET, &format!("/api/indicators/{gone}"))
            .await,
    )
    .await;
    assert_eq!(status, 404);

    // And a selection, as a BatchDelete.
    for n in 1..=2 {
        submit(&server, &domain_request(n)).await;
    }
    browser
        .goto(&server.url("/portal/indicators?tab=urls"))
        .await;
    browser.click("input[data-select-all]").await;
    browser.click("#delete-selected").await;
    browser.client.accept_alert().await.unwrap();
    assert_eq!(browser.text("#notice").await, "2 indicators deleted.");
    let (_, listed) = status_json(server.send(reqwest::Method::GET, "/api/indicators").await).await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1, "{listed}");
    browser.close().await;
}

async fn an_import_reports_the_refused_row_by_line() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = portal_server().await;
    browser.sign_in(&server, MANAGER).await;
    let summary = browser
        .import_csv(
            &server,
            "IndicatorType,IndicatorValue,Action,Title,Description\r\n\
             DomainName,good.example,Block,A domain,From the file\r\n\
             IpAddress,10.0.0.1,Block,A private address,Refused: not public\r\n\
             FileSha256,275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f,Block,A hash,From the file\r\n",
        )
        .await;
    assert!(summary.contains("2 indicators imported"), "{summary}");
    assert!(summary.contains("1 rows refused"), "{summary}");
    assert_eq!(browser.text("#refused td.line").await, "3");
    assert!(browser.text("#refused").await.contains("10.0.0.1"));
    assert_eq!(
        browser
            .wait_for("#import-progress")
            .await
            .attr("value")
            .await
            .unwrap()
            .as_deref(),
        Some("3")
    );
    browser.screenshot("portal-import").await;
    let (_, listed) = status_json(server.send(reqwest::Method::GET, "/api/indicators").await).await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 2, "{listed}");
    browser.close().await;
}

async fn a_viewer_sees_the_history_of_an_api_change_read_only_and_a_forged_token_is_refused() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start().await else {
        return;
    };
    let server = portal_server().await;
    let created = submit(&server, &domain_request(7)).await;
    let id = created["id"].as_str().unwrap().to_string();
    let mut changed = domain_request(7);
    changed["title"] = json!("Changed by the playbook");
    changed["severity"] = json!("High");
    submit(&server, &changed).await;

    browser.sign_in(&server, VIEWER).await;
    assert!(!browser.exists("#add").await, "a viewer gets no add button");
    browser
        .goto(&server.url(&format!("/portal/indicators/{id}")))
        .await;
    let newest = browser.text("#history > li:first-child").await;
    assert!(newest.starts_with("Updated by iocd test app"), "{newest}");
    assert!(newest.contains("Changed by the playbook") && newest.contains("indicator 7"));
    assert!(browser.text("#history").await.contains("Created"));
    assert!(browser.exists("#read-only").await);
    assert!(!browser.exists("#edit").await && !browser.exists("#delete").await);
    browser.screenshot("portal-detail").await;
    browser
        .goto(&server.url(&format!("/portal/indicators/{id}/edit")))
        .await;
    assert_eq!(browser.text("main h1").await, "Read-only access");
    browser.sign_out().await;

    // A manager's delete form with a forged token: refused, nothing deleted.
    browser.sign_in(&server, MANAGER).await;
    browser
        .goto(&server.url(&format!("/portal/indicators/{id}")))
        .await;
    browser
        .client
        .execute(
            "const form = document.querySelector('form[action$=\"/delete\"]');\
             form.removeAttribute('data-confirm');\
             form.querySelector('input[name=csrf]').value = 'forged';",
            vec![],
        )
        .await
        .unwrap();
    browser.click("#delete").await;
    // The refusal is the answer to the form's POST: read it once the browser is there.
    browser
        .wait_for_path(&format!("/portal/indicators/{id}/delete"))
        .await;
    assert_eq!(browser.text("main h1").await, "Request refused");
    let still = server
        .send(reqwest::Method::GET, &format!("/api/indicators/{id}"))
        .await;
    assert_eq!(still.status(), 200);
    browser.sign_out().await;
    browser.goto(&server.url("/portal/indicators")).await;
    browser.wait_for("#tenant").await;
    browser.close().await;
}

/// Every read and every form with the browser's JavaScript off: signing in, adding (an error,
/// then saved), filtering with the Apply button, the detail page's history, a selection
/// deleted without a confirmation dialog (which only the script asks), an import and its
/// report, and signing out.
async fn every_read_and_form_works_with_javascript_off() {
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = Browser::start_with(false).await else {
        return;
    };
    let server = portal_server().await;
    browser.sign_in(&server, MANAGER).await;

    browser
        .goto(&server.url("/portal/indicators/new?tab=urls"))
        .await;
    browser.select("#indicatorType", "DomainName").await;
    browser.fill("#indicatorValue", "no-script.example").await;
    browser
        .fill("#description", "Added without JavaScript")
        .await;
    browser.click("#save").await;
    assert!(browser
        .text("[data-field=title] .field-error")
        .await
        .contains("title"));
    browser.fill("#title", "No script").await;
    browser.click("#save").await;
    browser.wait_for("#saved").await;
    assert_eq!(
        browser.text("[data-property=indicatorValue]").await,
        "no-script.example"
    );
    assert!(browser.text("#history").await.contains("Created"));

    // The filter's select does not submit by itself without the script: Apply does.
    submit(&server, &domain_request(3)).await;
    browser
        .goto(&server.url("/portal/indicators?tab=urls"))
        .await;
    browser.select("select[name=severity]", "High").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !browser.path().await.contains("severity="),
        "no script submitted the filter"
    );
    browser.click("form[role=search] button[type=submit]").await;
    let deadline = Instant::now() + WAIT;
    while !browser.path().await.contains("severity=High") {
        assert!(Instant::now() < deadline, "Apply did not filter");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(browser.exists("#empty").await || browser.exists("#indicators").await);
    let filtered = browser.text("main").await;
    assert!(!filtered.contains("no-script.example"), "{filtered}");

    // A selection deleted: the checkbox by hand (no "select all"), and no dialog to accept.
    browser
        .goto(&server.url("/portal/indicators?tab=urls&q=no-script"))
        .await;
    browser.click("#indicators input[name=id]").await;
    browser.click("#delete-selected").await;
    assert_eq!(browser.text("#notice").await, "1 indicator deleted.");
    let (_, listed) = status_json(server.send(reqwest::Method::GET, "/api/indicators").await).await;
    let values: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["indicatorValue"].as_str().unwrap())
        .collect();
    assert!(!values.contains(&"no-script.example"), "{values:?}");

    // An import: a plain form post, then its report.
    let summary = browser
        .import_csv(
            &server,
            "IndicatorType,IndicatorValue,Action,Title,Description\r\n\
             DomainName,imported-without-script.example,Block,A domain,From the file\r\n",
        )
        .await;
    assert!(summary.contains("1 indicators imported"), "{summary}");

    browser.sign_out().await;
    browser.close().await;
}

on_every_backend!(
    a_manager_adds_with_an_error_fixes_it_edits_filters_and_deletes,
    an_import_reports_the_refused_row_by_line,
    a_viewer_sees_the_history_of_an_api_change_read_only_and_a_forged_token_is_refused,
    every_read_and_form_works_with_javascript_off,
);
