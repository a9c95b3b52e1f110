"""The Defender indicator calls a connector makes, with `requests`, against any base URL."""

import base64
import json
import uuid

import requests


def claims(token: str) -> dict:
    """The payload of a JWT (unverified: iocd's API verifies; the test reads what a client sees)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def indicator_lifecycle(base: str, token: str) -> None:
    """Submit, list, get and delete one indicator; asserts what Defender answers at each step."""
    headers = {"Authorization": f"Bearer {token}"}
    value = f"{uuid.uuid4().hex[:12]}.evil.example"
    submitted = requests.post(
        f"{base}/api/indicators",
        json={
            "indicatorValue": value,
            "indicatorType": "DomainName",
            "action": "Block",
            "title": "client compatibility",
            "description": "submitted through an unmodified client",
        },
        headers=headers,
        timeout=30,
    )
    assert submitted.status_code == 200, submitted.text
    indicator = submitted.json()
    assert indicator["indicatorValue"] == value
    # The context names the host and scheme the client called, as Defender's does.
    assert indicator["@odata.context"] == f"{base}/api/$metadata#Indicators/$entity"

    listed = requests.get(
        f"{base}/api/indicators",
        params={"$filter": f"indicatorValue eq '{value}'"},
        headers=headers,
        timeout=30,
    )
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["@odata.context"] == f"{base}/api/$metadata#Indicators"
    assert [item["id"] for item in page["value"]] == [indicator["id"]]

    fetched = requests.get(f"{base}/api/indicators/{indicator['id']}", headers=headers, timeout=30)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["indicatorValue"] == value

    deleted = requests.delete(f"{base}/api/indicators/{indicator['id']}", headers=headers, timeout=30)
    assert deleted.status_code == 204, deleted.text
    gone = requests.get(f"{base}/api/indicators/{indicator['id']}", headers=headers, timeout=30)
    assert gone.status_code == 404, gone.text


def refused_without_token(base: str) -> None:
    """The API over the same route refuses a call without a token (so the calls above were
    really authenticated by iocd)."""
    response = requests.get(f"{base}/api/indicators", timeout=30)
    assert response.status_code == 401, response.text
