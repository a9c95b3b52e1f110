"""People signing in with the real msal as a public client, configured only by HTTPS_PROXY and
iocd's CA, with Entra's default login host: the password grant, the device-code flow approved on
iocd's /devicelogin page, and the authorization-code flow with PKCE driven over HTTP. The
delegated tokens then write indicators as the user."""

import html.parser
import json
import subprocess
import threading
import time
import uuid
from urllib.parse import parse_qsl, urljoin, urlparse

import msal
import pytest
import requests

from defender import claims

LOGIN = "https://login.microsoftonline.com"
API = "https://api.securitycenter.microsoft.com"
SCOPES = [f"{API}/Ti.ReadWrite"]
PASSWORD = "a long and unguessable password"


class FormReader(html.parser.HTMLParser):
    """The first form of a page: its action and its inputs' names and values."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}
        self.inside = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action")
            self.inside = True
        if tag == "input" and attrs.get("name") and self.inside:
            self.fields.setdefault(attrs["name"], attrs.get("value") or "")

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False


def read_form(page: str) -> FormReader:
    reader = FormReader()
    reader.feed(page)
    assert reader.action, page
    return reader


@pytest.fixture(scope="module")
def people(iocd):
    """A tenant with a public-client app and a user who may manage indicators."""
    tenant = str(uuid.uuid4())
    iocd.run("apps", "create", "--tenant", tenant, "--name", "ops", "--role", "Ti.Read.All")
    public = json.loads(
        iocd.run("apps", "create", "--tenant", tenant, "--name", "Analyst script", "--public-client")
    )
    assert "clientSecret" not in public, public
    upn = f"alice-{uuid.uuid4().hex[:6]}@contoso.example"
    created = subprocess.run(
        [str(iocd.binary), "users", "create", "--tenant", tenant, "--name", "Alice Analyst",
         "--upn", upn, "--role", "Iocd.Indicators.Manage", "--password-stdin"],
        input=PASSWORD, capture_output=True, text=True, check=True,
        env={"IOCD_DATABASE_URL": iocd.database, "PATH": "/usr/bin:/bin"},
    )
    user = json.loads(created.stdout)
    assert user["upn"] == upn and "password" not in user, user
    return {"tenant": tenant, "client_id": public["clientId"], "upn": upn}


def public_client(people) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        people["client_id"], authority=f"{LOGIN}/{people['tenant']}"
    )


def writes_as_the_user(token: str, upn: str) -> None:
    submitted = requests.post(
        f"{API}/api/indicators",
        json={
            "indicatorValue": f"{uuid.uuid4().hex[:10]}.delegated.example",
            "indicatorType": "DomainName",
            "action": "Block",
            "title": "delegated",
            "description": "submitted on behalf of a signed-in user",
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["createdBy"] == upn
    assert submitted.json()["createdByDisplayName"] == "Alice Analyst"


def test_msal_username_password(proxy_env, people):
    client = public_client(people)
    result = client.acquire_token_by_username_password(people["upn"], PASSWORD, scopes=SCOPES)
    assert "access_token" in result, result
    token = claims(result["access_token"])
    assert token["scp"] == "Ti.ReadWrite"
    assert token["upn"] == people["upn"]
    assert token["iss"] == f"{LOGIN}/{people['tenant']}/v2.0"
    writes_as_the_user(result["access_token"], people["upn"])

    # The refresh token MSAL cached gets a new access token silently, and iocd rotates it.
    def cached_refresh_tokens():
        return {rt["secret"] for rt in client.token_cache.find(msal.TokenCache.CredentialType.REFRESH_TOKEN)}

    before = cached_refresh_tokens()
    assert len(before) == 1
    account = client.get_accounts(username=people["upn"])[0]
    refreshed = client.acquire_token_silent(SCOPES, account=account, force_refresh=True)
    assert refreshed and "access_token" in refreshed, refreshed
    assert claims(refreshed["access_token"])["upn"] == people["upn"]
    after = cached_refresh_tokens()
    assert len(after) == 1 and after != before


def test_msal_reports_a_wrong_password_as_entra_does(proxy_env, people):
    result = public_client(people).acquire_token_by_username_password(
        people["upn"], "not the password at all", scopes=SCOPES
    )
    assert result.get("error") == "invalid_grant", result
    assert "AADSTS50126" in result["error_description"], result


def test_msal_device_flow_approved_on_the_device_login_page(proxy_env, people):
    client = public_client(people)
    flow = client.initiate_device_flow(scopes=SCOPES)
    assert "user_code" in flow, flow
    assert flow["verification_uri"] == f"{LOGIN}/devicelogin"

    def approve():
        time.sleep(1)
        with requests.Session() as browser:
            page = browser.post(flow["verification_uri"], data={"code": flow["user_code"]}, timeout=30)
            form = read_form(page.text)
            assert "password" in form.fields, page.text
            done = browser.post(
                urljoin(flow["verification_uri"], form.action),
                data={**form.fields, "username": people["upn"], "password": PASSWORD},
                timeout=30,
            )
            assert "You have signed in" in done.text, done.text

    failures = []

    def approve_or_record():
        try:
            approve()
        except AssertionError as failure:
            failures.append(failure)

    approver = threading.Thread(target=approve_or_record)
    approver.start()
    started = time.monotonic()
    # A declined or failed approval would leave MSAL polling until the code expires.
    flow["expires_at"] = time.time() + 30
    result = client.acquire_token_by_device_flow(flow)
    approver.join()
    assert not failures, failures
    assert "access_token" in result, result
    # MSAL polled while the code was pending, then got the token.
    assert time.monotonic() - started >= 1
    writes_as_the_user(result["access_token"], people["upn"])


def test_msal_authorization_code_flow_with_pkce(proxy_env, people):
    client = public_client(people)
    flow = client.initiate_auth_code_flow(SCOPES, redirect_uri="http://localhost:8400/callback")
    assert "code_challenge" in flow["auth_uri"]
    with requests.Session() as browser:
        page = browser.get(flow["auth_uri"], timeout=30)
        assert page.status_code == 200, page.text
        form = read_form(page.text)
        answer = browser.post(
            urljoin(flow["auth_uri"], form.action),
            data={**form.fields, "username": people["upn"], "password": PASSWORD},
            allow_redirects=False,
            timeout=30,
        )
    assert answer.status_code == 302, answer.text
    location = urlparse(answer.headers["location"])
    assert (location.hostname, location.port) == ("localhost", 8400)
    result = client.acquire_token_by_auth_code_flow(flow, dict(parse_qsl(location.query)))
    assert "access_token" in result, result
    assert result["id_token_claims"]["preferred_username"] == people["upn"]
    writes_as_the_user(result["access_token"], people["upn"])
