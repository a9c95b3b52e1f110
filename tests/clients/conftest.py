"""Fixtures for the client-compatibility tests: a real `iocd serve` on free loopback ports with
a scratch database, its CA written to a file, and an app registered with `iocd apps create`.

Run with `python -m pytest tests/clients` from the repository root (the iocd binary is built
with `cargo build -p iocd` first unless IOCD_BIN names one).

A test points a client at iocd by environment alone, as a user would:
- `proxy_env`: HTTPS_PROXY=http://127.0.0.1:PORT plus the CA variables; the client keeps its
  default Microsoft hosts (login.microsoftonline.com, api.securitycenter.microsoft.com, …);
- `https_env`: only the CA variables, for clients given iocd's --https-listen URL.
"""

import json
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# tests/iocd_process.py, shared with tests/api-fuzz.
sys.path.insert(0, str(REPO / "tests"))
from iocd_process import free_port, serve, stop, wait_healthy  # noqa: E402,F401

# Variables that could route a client elsewhere or change its trust: cleared for every test so
# that only what the test sets is in force.
NETWORK_VARIABLES = [
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
    "AZURE_AUTHORITY_HOST",
]

# The Defender API's resource, as connectors request it.
DEFENDER_SCOPE = "https://api.securitycenter.microsoft.com/.default"


def iocd_binary() -> Path:
    explicit = os.environ.get("IOCD_BIN")
    if explicit:
        return Path(explicit)
    subprocess.run(["cargo", "build", "--quiet", "-p", "iocd", "--bin", "iocd"], cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "iocd"


@dataclass
class App:
    tenant_id: str
    client_id: str
    client_secret: str


@dataclass
class Iocd:
    binary: Path
    database: str
    plain_port: int
    https_port: int
    ca_file: Path
    workdir: Path

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.plain_port}"

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, check=False,
            env={**os.environ, "IOCD_DATABASE_URL": self.database},
        )
        assert done.returncode == 0, f"iocd {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    def register_app(self, name: str, role: str = "Ti.ReadWrite.All") -> App:
        created = json.loads(
            self.run("apps", "create", "--tenant", str(uuid.uuid4()), "--name", name, "--role", role)
        )
        return App(created["tenantId"], created["clientId"], created["clientSecret"])


@pytest.fixture(scope="session")
def iocd():
    binary = iocd_binary()
    with tempfile.TemporaryDirectory(prefix="iocd-clients-") as tmp:
        workdir = Path(tmp)
        database = f"sqlite://{workdir / 'iocd.db'}"
        log = workdir / "iocd.log"
        process, (plain, https) = serve(
            binary,
            lambda ports: ["--listen", f"127.0.0.1:{ports[0]}", "--https-listen",
                           f"127.0.0.1:{ports[1]}", "--dev-app", "false", "--rate-limits", "off"],
            2,
            {**os.environ, "IOCD_DATABASE_URL": database, "RUST_LOG": "info"},
            log,
        )
        server = Iocd(binary, database, plain, https, workdir / "iocd-ca.pem", workdir)
        server.ca_file.write_text(server.run("ca"))
        try:
            yield server
        finally:
            stop(process)


@pytest.fixture(scope="session")
def app(iocd) -> App:
    return iocd.register_app("client-compatibility")


@pytest.fixture
def clean_env(monkeypatch):
    for name in NETWORK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def proxy_env(iocd, clean_env):
    """A client's whole configuration for transparent mode: the proxy and the CA."""
    clean_env.setenv("HTTPS_PROXY", iocd.proxy_url)
    trust_ca(clean_env, iocd)
    return iocd


@pytest.fixture
def https_env(iocd, clean_env):
    """A client given iocd's HTTPS URL: only the CA is configured."""
    trust_ca(clean_env, iocd)
    return iocd


def trust_ca(env, iocd: Iocd) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        env.setenv(name, str(iocd.ca_file))
