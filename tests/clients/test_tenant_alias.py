"""A tenant named by a domain alias in the authority URL, as Entra allows
(`https://login.microsoftonline.com/contoso.onmicrosoft.com`), with the real MSAL and
azure-identity through HTTPS_PROXY and the CA."""

import json
import uuid

import msal
import pytest
import requests
from azure.identity import ClientSecretCredential

from conftest import DEFENDER_SCOPE
from defender import claims, indicator_lifecycle

LOGIN = "https://login.microsoftonline.com"


@pytest.fixture(scope="module")
def domain(iocd, app) -> str:
    name = f"contoso-{uuid.uuid4().hex[:8]}.onmicrosoft.com"
    aliased = json.loads(iocd.run("tenants", "alias", "--tenant", app.tenant_id, "--domain", name))
    assert aliased == {"tenantId": app.tenant_id, "domain": name}
    tenants = json.loads(iocd.run("tenants", "list"))
    assert name in next(t for t in tenants if t["tenantId"] == app.tenant_id)["domains"]
    return name


def test_msal_with_the_alias_as_authority(proxy_env, app, domain):
    client = msal.ConfidentialClientApplication(
        app.client_id, authority=f"{LOGIN}/{domain}", client_credential=app.client_secret
    )
    result = client.acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "access_token" in result, result
    token = claims(result["access_token"])
    # The token names the tenant by its id, whatever name the authority used.
    assert token["tid"] == app.tenant_id
    assert token["iss"] == f"{LOGIN}/{app.tenant_id}/v2.0"
    indicator_lifecycle("https://api.securitycenter.microsoft.com", result["access_token"])


def test_azure_identity_with_the_alias_as_tenant(proxy_env, app, domain):
    credential = ClientSecretCredential(domain, app.client_id, app.client_secret)
    token = credential.get_token(DEFENDER_SCOPE)
    assert claims(token.token)["tid"] == app.tenant_id


def test_discovery_under_the_alias_names_the_tenant_id(proxy_env, app, domain):
    document = requests.get(f"{LOGIN}/{domain}/v2.0/.well-known/openid-configuration", timeout=30)
    assert document.status_code == 200, document.text
    assert document.json()["issuer"] == f"{LOGIN}/{app.tenant_id}/v2.0"
    unknown = requests.get(f"{LOGIN}/fabrikam-{uuid.uuid4().hex[:6]}.onmicrosoft.com/v2.0/.well-known/openid-configuration", timeout=30)
    assert unknown.status_code == 400
    assert "AADSTS90002" in unknown.json()["error_description"]
