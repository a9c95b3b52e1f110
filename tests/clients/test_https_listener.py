"""The same clients given iocd's --https-listen URL directly, trusting its CA."""

import json
import subprocess

import msal
import requests
from azure.identity import ClientSecretCredential

from conftest import DEFENDER_SCOPE
from defender import indicator_lifecycle, refused_without_token


def test_msal_confidential_client_with_a_secret(https_env, app):
    # A custom authority host: MSAL's instance discovery would ask login.microsoftonline.com,
    # which this test (like an offline user) cannot reach, so it is turned off.
    client = msal.ConfidentialClientApplication(
        app.client_id,
        authority=f"{https_env.https_url}/{app.tenant_id}",
        client_credential=app.client_secret,
        instance_discovery=False,
    )
    result = client.acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "access_token" in result, result
    indicator_lifecycle(https_env.https_url, result["access_token"])


def test_azure_identity_client_secret_credential(https_env, app):
    credential = ClientSecretCredential(
        app.tenant_id, app.client_id, app.client_secret,
        authority=https_env.https_url, disable_instance_discovery=True,
    )
    token = credential.get_token(DEFENDER_SCOPE)
    indicator_lifecycle(https_env.https_url, token.token)


def test_requests_over_https(https_env, app):
    token = requests.post(
        f"{https_env.https_url}/{app.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "scope": DEFENDER_SCOPE,
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text
    refused_without_token(https_env.https_url)
    indicator_lifecycle(https_env.https_url, token.json()["access_token"])
    # The IP-address names are covered too.
    assert requests.get(f"https://127.0.0.1:{https_env.https_port}/health", timeout=30).ok


def test_discovery_names_the_https_host_called(https_env, app):
    document = requests.get(
        f"{https_env.https_url}/{app.tenant_id}/v2.0/.well-known/openid-configuration", timeout=30
    ).json()
    assert document["token_endpoint"] == f"{https_env.https_url}/{app.tenant_id}/oauth2/v2.0/token"
    assert document["jwks_uri"] == f"{https_env.https_url}/{app.tenant_id}/discovery/v2.0/keys"


def test_curl_with_the_ca(iocd, clean_env, app):
    token = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail-with-body", "--cacert", str(iocd.ca_file),
         f"{iocd.https_url}/{app.tenant_id}/oauth2/v2.0/token",
         "-d", "grant_type=client_credentials", "-d", f"client_id={app.client_id}",
         "-d", f"client_secret={app.client_secret}", "-d", f"scope={DEFENDER_SCOPE}"],
        capture_output=True, text=True,
    )
    assert token.returncode == 0, token.stderr + token.stdout
    access_token = json.loads(token.stdout)["access_token"]
    listed = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail-with-body", "--cacert", str(iocd.ca_file),
         f"{iocd.https_url}/api/indicators", "-H", f"Authorization: Bearer {access_token}"],
        capture_output=True, text=True,
    )
    assert listed.returncode == 0, listed.stderr + listed.stdout
    assert json.loads(listed.stdout)["@odata.context"] == f"{iocd.https_url}/api/$metadata#Indicators"
