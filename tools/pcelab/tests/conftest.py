"""Fixtures for lab PCE tests (shared with the VEN-side tests).

- `start_lab(folder, *extra_args)` starts `pcelab serve` in a subprocess on a free port and waits for its
  ready file; the returned `LabProcess` gives `.url`, `.ca`, `.session()` (TLS verified), `.stop()`.
- `lab` is one such server per test module; `api` a requests session on /api/v2 with a valid key, so an
  href from an answer is a path: `api.get("/orgs/1/labels")`, `api.get(label["href"])`.
- `client` is a Starlette TestClient on an in-memory lab (no sockets, fastest), same base and key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

API_USER = "api_0123456789abcde"
API_SECRET = "f" * 64
API_PREFIX = "/api/v2"
ORG = "/orgs/1"
PCELAB = [sys.executable, "-m", "pcelab.cli"]


class PceSession(requests.Session):
    """requests.Session whose relative paths ("/labels") are resolved against a base URL."""

    def __init__(self, base: str, ca: str | None, auth: tuple[str, str] | None = (API_USER, API_SECRET)):
        super().__init__()
        self.base = base
        self.verify = ca if ca else True
        if auth:
            self.auth = auth

    def request(self, method, url, *args, **kwargs):
        if url.startswith("/"):
            url = self.base + url
        kwargs.setdefault("timeout", 30)
        # Per request: requests lets REQUESTS_CA_BUNDLE from the environment override a session's `verify`.
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


@dataclass
class LabProcess:
    """A `pcelab serve` subprocess. `folder` holds its ready file; `data_dir` defaults to folder/data."""

    folder: Path
    args: list[str]
    data_dir: str = ""
    process: subprocess.Popen | None = None
    info: dict = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""

    def __post_init__(self):
        self.data_dir = self.data_dir or str(self.folder / "data")

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def ca(self) -> str:
        return self.info["ca"]

    # How long a start may take: what is tested is that it starts, not how fast. On a loaded 2-core machine
    # (load average 35) a start took over 20 s in a fresh-clone make test (RuntimeError: pcelab did not start).
    def start(self, timeout: float = 90.0) -> LabProcess:
        ready = self.folder / "ready.json"
        ready.unlink(missing_ok=True)
        command = [*PCELAB, "serve", "--data-dir", self.data_dir, "--api-key", f"{API_USER}:{API_SECRET}",
                   "--ready-file", str(ready), *self.args]  # fmt: skip
        if "--listen" not in self.args:
            command += ["--listen", "127.0.0.1:0"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                waited = "exited" if self.process.poll() is not None else f"not ready after {timeout:.0f} s"
                self.stop()
                raise RuntimeError(f"pcelab did not start ({waited}): {self.stderr}")
            time.sleep(0.05)
        self.info = json.loads(ready.read_text())
        return self

    def stop(self) -> None:
        """SIGTERM, then collect what it printed (stdout/stderr)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        if self.process:
            try:
                self.stdout, self.stderr = self.process.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.stdout, self.stderr = self.process.communicate()

    def session(self, prefix: str = API_PREFIX, auth: tuple[str, str] | None = (API_USER, API_SECRET)) -> PceSession:
        return PceSession(self.url + prefix, self.ca, auth)


def start_lab(folder: Path, *extra_args: str, data_dir: str = "") -> LabProcess:
    Path(folder).mkdir(parents=True, exist_ok=True)
    return LabProcess(Path(folder), list(extra_args), data_dir).start()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("pcelab"))
    yield server
    server.stop()


@pytest.fixture
def api(lab):
    with lab.session() as session:
        yield session


@pytest.fixture
def client():
    from pcelab.app import build_app
    from pcelab.core import Lab
    from starlette.testclient import TestClient

    core = Lab(":memory:")
    core.add_api_key(API_USER, API_SECRET)
    with TestClient(build_app(core), base_url="https://testserver" + API_PREFIX) as test_client:
        test_client.auth = (API_USER, API_SECRET)
        test_client.lab = core
        yield test_client
    core.close()


def connect_sdk(lab: LabProcess, org_id: int = 1):
    """The official SDK (illumio 1.1.3) on a running lab, TLS verified with the lab CA; skips without the SDK."""
    illumio = pytest.importorskip("illumio", reason="the official SDK (requirements/dev.in) is not installed")
    host, port = lab.url.split("://", 1)[1].rsplit(":", 1)
    pce = illumio.PolicyComputeEngine(host, port=port, org_id=org_id, retry_count=0)
    pce.set_credentials(API_USER, API_SECRET)
    pce.set_tls_settings(verify=lab.ca)
    return pce


@pytest.fixture
def pce(lab, monkeypatch):
    """The SDK on the module's lab. requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's
    `verify` (the SDK sets only the session's): without them the lab CA is what verifies the server."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return connect_sdk(lab)


@pytest.fixture(autouse=True, scope="session")
def _no_proxies_for_loopback():
    # The tests talk to 127.0.0.1; a proxy from the environment must not be in the way.
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost,testserver")
