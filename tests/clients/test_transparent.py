"""Unmodified clients with their default Microsoft hosts, configured only by HTTPS_PROXY and
iocd's CA: iocd answers CONNECT for those hosts and serves them itself."""

import json
import socket
import subprocess

import msal
import pytest
import requests
from azure.identity import ClientSecretCredential

from conftest import DEFENDER_SCOPE
from defender import claims, indicator_lifecycle, refused_without_token

LOGIN = "https://login.microsoftonline.com"


def test_msal_confidential_client_with_a_secret(proxy_env, app):
    client = msal.ConfidentialClientApplication(
        app.client_id, authority=f"{LOGIN}/{app.tenant_id}", client_credential=app.client_secret
    )
    result = client.acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "access_token" in result, result
    assert result["token_type"].lower() == "bearer"
    # Issued through Entra's login host, so it carries Entra's v2 issuer.
    assert claims(result["access_token"])["iss"] == f"{LOGIN}/{app.tenant_id}/v2.0"
    indicator_lifecycle("https://api.securitycenter.microsoft.com", result["access_token"])


def test_msal_reports_entras_error_for_a_wrong_secret(proxy_env, app):
    client = msal.ConfidentialClientApplication(
        app.client_id, authority=f"{LOGIN}/{app.tenant_id}", client_credential="not-the-secret"
    )
    result = client.acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert result.get("error") == "invalid_client", result
    assert "AADSTS7000215" in result.get("error_description", ""), result


def test_azure_identity_client_secret_credential(proxy_env, app):
    credential = ClientSecretCredential(app.tenant_id, app.client_id, app.client_secret)
    token = credential.get_token(DEFENDER_SCOPE)
    assert token.token.count(".") == 2
    indicator_lifecycle("https://api.security.microsoft.com", token.token)


@pytest.mark.parametrize(
    "host",
    [
        "api.securitycenter.microsoft.com",
        "api.securitycenter.windows.com",
        "api.security.microsoft.com",
        "eu.api.security.microsoft.com",
        "api-us.securitycenter.microsoft.com",
        "api-gov.securitycenter.microsoft.us",
    ],
)
def test_requests_reaches_every_defender_host(proxy_env, app, host):
    token = requests.post(
        f"https://login.windows.net/{app.tenant_id}/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": app.client_secret,
            "resource": "https://api.securitycenter.microsoft.com",
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text
    assert claims(token.json()["access_token"])["iss"] == f"https://sts.windows.net/{app.tenant_id}/"
    refused_without_token(f"https://{host}")
    indicator_lifecycle(f"https://{host}", token.json()["access_token"])


def curl(*args: str) -> subprocess.CompletedProcess:
    # The environment holds no proxy and no CA: curl gets both on its command line.
    return subprocess.run(["curl", "--silent", "--show-error", *args], capture_output=True, text=True)


def test_curl_through_the_proxy(iocd, clean_env, app):
    common = ["--proxy", iocd.proxy_url, "--cacert", str(iocd.ca_file)]
    token = curl(
        *common, "--fail-with-body",
        f"{LOGIN}/{app.tenant_id}/oauth2/v2.0/token",
        "-d", "grant_type=client_credentials", "-d", f"client_id={app.client_id}",
        "-d", f"client_secret={app.client_secret}", "-d", f"scope={DEFENDER_SCOPE}",
    )
    assert token.returncode == 0, token.stderr + token.stdout
    access_token = json.loads(token.stdout)["access_token"]
    listed = curl(
        *common, "--fail-with-body", "https://api.securitycenter.microsoft.com/api/indicators",
        "-H", f"Authorization: Bearer {access_token}",
    )
    assert listed.returncode == 0, listed.stderr + listed.stdout
    assert '"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Indicators"' in listed.stdout


def test_curl_without_the_ca_does_not_trust_iocd(iocd, clean_env):
    result = curl("--proxy", iocd.proxy_url, "https://login.microsoftonline.com/common/discovery/instance")
    # 60: peer certificate cannot be authenticated with known CA certificates.
    assert result.returncode == 60, result.stderr


def test_curl_connect_to_another_host_is_refused(iocd, clean_env):
    result = curl("--proxy", iocd.proxy_url, "--cacert", str(iocd.ca_file), "https://example.com/")
    assert result.returncode != 0
    assert "403" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "target",
    ["example.com:443", "login.microsoftonline.com:80", "127.0.0.1:22", "graph.microsoft.com:443"],
)
def test_connect_to_another_target_gets_403_and_the_connection_closes(iocd, target):
    with socket.create_connection(("127.0.0.1", iocd.plain_port), timeout=10) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        received = b""
        while chunk := s.recv(4096):
            received += chunk
    # recv returned b"": iocd closed the connection after its answer.
    assert received.startswith(b"HTTP/1.1 403 "), received
    body = json.loads(received.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "Forbidden"
    assert target in body["error"]["message"]


def test_instance_and_tenant_discovery_name_the_login_host_called(proxy_env, app):
    instance = requests.get(
        f"{LOGIN}/common/discovery/instance",
        params={
            "api-version": "1.1",
            "authorization_endpoint": f"{LOGIN}/{app.tenant_id}/oauth2/v2.0/authorize",
        },
        timeout=30,
    )
    assert instance.status_code == 200, instance.text
    answer = instance.json()
    document_url = f"{LOGIN}/{app.tenant_id}/v2.0/.well-known/openid-configuration"
    assert answer["tenant_discovery_endpoint"] == document_url
    assert "login.windows.net" in answer["metadata"][0]["aliases"]
    document = requests.get(document_url, timeout=30).json()
    assert document["issuer"] == f"{LOGIN}/{app.tenant_id}/v2.0"
    assert document["token_endpoint"] == f"{LOGIN}/{app.tenant_id}/oauth2/v2.0/token"
    assert document["jwks_uri"] == f"{LOGIN}/{app.tenant_id}/discovery/v2.0/keys"
    keys = requests.get(document["jwks_uri"], timeout=30).json()
    assert keys["keys"] and keys["keys"][0]["kty"] == "RSA"
    v1 = requests.get(
        f"https://login.windows.net/{app.tenant_id}/.well-known/openid-configuration", timeout=30
    ).json()
    assert v1["issuer"] == f"https://sts.windows.net/{app.tenant_id}/"
    assert v1["token_endpoint"] == f"https://login.windows.net/{app.tenant_id}/oauth2/token"
