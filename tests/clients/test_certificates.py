"""Certificate credentials with the real client libraries: MSAL's ConfidentialClientApplication
with {private_key, thumbprint} (RS256 + x5t) and {private_key, public_certificate} (PS256 +
x5t#S256 + x5c), and azure-identity's CertificateCredential, through HTTPS_PROXY and the CA with
the libraries' default Microsoft hosts, and through --https-listen. Plus what Entra refuses: a
replayed assertion and a certificate the app does not have."""

import base64
import datetime
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt  # PyJWT, which msal signs its assertions with
import msal
import pytest
import requests
from azure.identity import CertificateCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conftest import DEFENDER_SCOPE, Iocd
from defender import claims, indicator_lifecycle

LOGIN = "https://login.microsoftonline.com"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class ClientCertificate:
    key_pem: str
    cert_pem: str
    thumbprint: str  # SHA-1, hex, as the Azure portal shows it
    path: Path  # key and certificate in one PEM file, as CertificateCredential reads it


def make_certificate(directory: Path, name: str) -> ClientCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    path = directory / f"{name}-{uuid.uuid4().hex[:8]}.pem"
    path.write_text(key_pem + cert_pem)
    return ClientCertificate(key_pem, cert_pem, cert.fingerprint(hashes.SHA1()).hex(), path)


@dataclass
class CertificateApp:
    tenant_id: str
    client_id: str
    certificate: ClientCertificate


def register_certificate_app(iocd: Iocd, name: str) -> CertificateApp:
    certificate = make_certificate(iocd.workdir, name)
    cert_file = iocd.workdir / f"{name}-public.pem"
    cert_file.write_text(certificate.cert_pem)
    created = json.loads(iocd.run(
        "apps", "create", "--tenant", str(uuid.uuid4()), "--name", name,
        "--role", "Ti.ReadWrite.All", "--certificate", str(cert_file),
    ))
    assert "clientSecret" not in created, created
    assert created["certificates"][0]["thumbprint"] == certificate.thumbprint.upper()
    return CertificateApp(created["tenantId"], created["clientId"], certificate)


@pytest.fixture(scope="module")
def cert_app(iocd) -> CertificateApp:
    return register_certificate_app(iocd, "certificate-client")


def test_msal_with_a_sha1_thumbprint_rs256(proxy_env, cert_app):
    client = msal.ConfidentialClientApplication(
        cert_app.client_id,
        authority=f"{LOGIN}/{cert_app.tenant_id}",
        client_credential={
            "private_key": cert_app.certificate.key_pem,
            "thumbprint": cert_app.certificate.thumbprint,
        },
    )
    result = client.acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "access_token" in result, result
    assert claims(result["access_token"])["iss"] == f"{LOGIN}/{cert_app.tenant_id}/v2.0"
    indicator_lifecycle("https://api.securitycenter.microsoft.com", result["access_token"])


def test_msal_with_the_public_certificate_ps256(proxy_env, cert_app):
    client = msal.ConfidentialClientApplication(
        cert_app.client_id,
        authority=f"https://login.windows.net/{cert_app.tenant_id}",
        client_credential={
            "private_key": cert_app.certificate.key_pem,
            "public_certificate": cert_app.certificate.cert_pem,
        },
    )
    result = client.acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "access_token" in result, result
    indicator_lifecycle("https://api.security.microsoft.com", result["access_token"])


def test_azure_identity_certificate_credential(proxy_env, cert_app):
    credential = CertificateCredential(
        cert_app.tenant_id, cert_app.client_id, certificate_path=str(cert_app.certificate.path)
    )
    token = credential.get_token(DEFENDER_SCOPE)
    indicator_lifecycle("https://api.securitycenter.windows.com", token.token)


def test_msal_with_a_certificate_over_https_listen(https_env, cert_app):
    client = msal.ConfidentialClientApplication(
        cert_app.client_id,
        authority=f"{https_env.https_url}/{cert_app.tenant_id}",
        client_credential={
            "private_key": cert_app.certificate.key_pem,
            "thumbprint": cert_app.certificate.thumbprint,
        },
        instance_discovery=False,
    )
    result = client.acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "access_token" in result, result
    indicator_lifecycle(https_env.https_url, result["access_token"])


def test_azure_identity_certificate_credential_over_https_listen(https_env, cert_app):
    credential = CertificateCredential(
        cert_app.tenant_id, cert_app.client_id, certificate_path=str(cert_app.certificate.path),
        authority=https_env.https_url, disable_instance_discovery=True, send_certificate_chain=True,
    )
    token = credential.get_token(DEFENDER_SCOPE)
    indicator_lifecycle(https_env.https_url, token.token)


def test_a_certificate_the_app_does_not_have_is_refused_with_aadsts700027(proxy_env, cert_app):
    stranger = make_certificate(proxy_env.workdir, "stranger")
    client = msal.ConfidentialClientApplication(
        cert_app.client_id,
        authority=f"{LOGIN}/{cert_app.tenant_id}",
        client_credential={"private_key": stranger.key_pem, "thumbprint": stranger.thumbprint},
    )
    result = client.acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert result.get("error") == "invalid_client", result
    assert "AADSTS700027" in result["error_description"], result
    assert stranger.thumbprint.upper() in result["error_description"], result


def signed_assertion(app: CertificateApp, aud: str) -> str:
    now = int(time.time())
    thumbprint = bytes.fromhex(app.certificate.thumbprint)
    return jwt.encode(
        {"aud": aud, "iss": app.client_id, "sub": app.client_id, "iat": now, "nbf": now,
         "exp": now + 600, "jti": str(uuid.uuid4())},
        app.certificate.key_pem,
        algorithm="RS256",
        headers={"x5t": base64.urlsafe_b64encode(thumbprint).decode()},
    )


def test_a_replayed_assertion_is_refused(proxy_env, cert_app):
    endpoint = f"{LOGIN}/{cert_app.tenant_id}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": cert_app.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed_assertion(cert_app, endpoint),
        "scope": DEFENDER_SCOPE,
    }
    first = requests.post(endpoint, data=form, timeout=30)
    assert first.status_code == 200, first.text
    again = requests.post(endpoint, data=form, timeout=30)
    assert again.status_code == 401, again.text
    assert again.json()["error"] == "invalid_client"
    assert "AADSTS50013" in again.json()["error_description"], again.text


def test_a_secret_and_a_certificate_on_one_app(proxy_env, app):
    certificate = make_certificate(proxy_env.workdir, "added")
    cert_file = proxy_env.workdir / "added-public.pem"
    cert_file.write_text(certificate.cert_pem)
    added = json.loads(proxy_env.run(
        "apps", "add-certificate", "--tenant", app.tenant_id, "--client-id", app.client_id,
        "--certificate", str(cert_file),
    ))
    assert added["certificate"]["thumbprint"] == certificate.thumbprint.upper()
    with_cert = msal.ConfidentialClientApplication(
        app.client_id, authority=f"{LOGIN}/{app.tenant_id}",
        client_credential={"private_key": certificate.key_pem, "thumbprint": certificate.thumbprint},
    ).acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "access_token" in with_cert, with_cert
    with_secret = msal.ConfidentialClientApplication(
        app.client_id, authority=f"{LOGIN}/{app.tenant_id}", client_credential=app.client_secret,
    ).acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "access_token" in with_secret, with_secret
    listed = json.loads(proxy_env.run("apps", "list", "--tenant", app.tenant_id))
    assert listed[0]["hasSecret"] is True
    assert [c["thumbprint"] for c in listed[0]["certificates"]] == [certificate.thumbprint.upper()]
    proxy_env.run(
        "apps", "remove-certificate", "--tenant", app.tenant_id, "--client-id", app.client_id,
        "--thumbprint", certificate.thumbprint,
    )
    refused = msal.ConfidentialClientApplication(
        app.client_id, authority=f"{LOGIN}/{app.tenant_id}",
        client_credential={"private_key": certificate.key_pem, "thumbprint": certificate.thumbprint},
    ).acquire_token_for_client(scopes=[DEFENDER_SCOPE])
    assert "AADSTS700027" in refused.get("error_description", ""), refused
