"""iocd as a test double, the way an integration suite uses it (and the README shows): one
`iocd serve --in-memory --emulator` per module, a reset before each test, the well-known
credentials, and an injected 429 that the client under test must wait out."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from conftest import free_port, iocd_binary, wait_healthy

# The emulator's well-known development credentials (docs/compatibility.md, "Emulator controls").
TENANT = "10cd0000-0000-4000-8000-000000000001"
CLIENT_ID = "10cd0000-0000-4000-8000-0000000000a1"
CLIENT_SECRET = "iocd-emulator-secret-not-for-production"
RESOURCE = "https://api.securitycenter.microsoft.com"


@pytest.fixture(scope="module")
def emulator():
    """A throw-away iocd: in memory, emulator controls on, gone when the module ends."""
    with tempfile.TemporaryDirectory(prefix="iocd-emulator-") as tmp:
        log = Path(tmp) / "iocd.log"
        port = free_port()
        with open(log, "w") as out:
            process = subprocess.Popen(
                [str(iocd_binary()), "serve", "--in-memory", "--emulator",
                 "--listen", f"127.0.0.1:{port}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": "warn"},
            )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(process, base, log)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def defender(emulator):
    """A clean emulator and a session holding a token, as a connector would get one."""
    # From loopback, while no app holds Iocd.Admin, the controls need no token.
    requests.post(f"{emulator}/_iocd/reset", timeout=10).raise_for_status()
    requests.delete(f"{emulator}/_iocd/faults", timeout=10).raise_for_status()
    token = requests.post(
        f"{emulator}/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
              "client_secret": CLIENT_SECRET, "scope": f"{RESOURCE}/.default"},
        timeout=10,
    ).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.base = emulator
    yield session
    session.close()


def indicator(value: str) -> dict:
    return {"indicatorValue": value, "indicatorType": "DomainName", "action": "Block",
            "title": "emulator", "description": "written by a test"}


def test_each_test_starts_from_an_empty_store(defender):
    created = defender.post(f"{defender.base}/api/indicators", json=indicator("one.example"), timeout=10)
    assert created.status_code == 200, created.text
    listed = defender.get(f"{defender.base}/api/indicators", timeout=10).json()
    assert [i["indicatorValue"] for i in listed["value"]] == ["one.example"]


def test_the_reset_left_nothing_behind(defender):
    listed = defender.get(f"{defender.base}/api/indicators", timeout=10).json()
    assert listed["value"] == []


def test_an_injected_429_is_marked_and_then_gone(defender):
    rule = requests.post(
        f"{defender.base}/_iocd/faults",
        json={"family": "submit", "status": 429, "retryAfter": 1, "count": 1},
        timeout=10,
    )
    assert rule.status_code in (200, 201), rule.text
    throttled = defender.post(f"{defender.base}/api/indicators", json=indicator("two.example"), timeout=10)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.headers["x-iocd-fault"] == str(rule.json()["id"])
    assert throttled.json()["error"]["code"]
    # The rule was for one call only: the retry a client makes after Retry-After lands.
    retried = defender.post(f"{defender.base}/api/indicators", json=indicator("two.example"), timeout=10)
    assert retried.status_code == 200, retried.text
    assert "x-iocd-fault" not in retried.headers


def test_the_journal_shows_what_the_client_sent_without_its_secrets(defender):
    # The fixture's reset emptied the journal; its token call came after and is in it.
    requests.post(
        f"{defender.base}/_iocd/faults",
        json={"family": "submit", "status": 429, "retryAfter": 1, "count": 1},
        timeout=10,
    ).raise_for_status()
    body = indicator("three.example")
    assert defender.post(f"{defender.base}/api/indicators", json=body, timeout=10).status_code == 429
    assert defender.post(f"{defender.base}/api/indicators", json=body, timeout=10).status_code == 200

    journal = requests.get(f"{defender.base}/_iocd/requests", timeout=10)
    assert journal.status_code == 200, journal.text
    entries = journal.json()["value"]
    token_calls = [e for e in entries if e["path"].endswith("/oauth2/v2.0/token")]
    assert token_calls and token_calls[0]["app"] == CLIENT_ID
    assert "client_secret=[redacted]" in token_calls[0]["requestBody"]
    assert CLIENT_SECRET not in journal.text
    assert defender.headers["Authorization"].split()[1] not in journal.text

    calls = requests.get(
        f"{defender.base}/_iocd/requests",
        params={"path": "/api/indicators", "method": "POST"},
        timeout=10,
    ).json()["value"]
    assert [c["status"] for c in calls] == [429, 200]
    assert calls[0]["fault"] and calls[1]["fault"] is None
    assert calls[0]["requestHeaders"]["authorization"] == "Bearer [redacted]"
    assert all(c["tenant"] == TENANT and c["app"] == CLIENT_ID for c in calls)
    assert json.loads(calls[1]["requestBody"]) == body

    later = requests.get(
        f"{defender.base}/_iocd/requests",
        params={"since": journal.json()["lastId"]},
        timeout=10,
    ).json()
    assert later["value"] == []
    requests.delete(f"{defender.base}/_iocd/requests", timeout=10).raise_for_status()
    assert requests.get(f"{defender.base}/_iocd/requests", timeout=10).json()["value"] == []
