"""Unit test setup: make this checkout importable as ansible_collections.microseg.illumio, wherever it lives.

Collection code imports itself by its full name, so the tests need a folder in which
ansible_collections/microseg/illumio is this repository. A symlink in a temporary folder gives that
without copying, and it is put first on sys.path so that no installed copy of the collection wins.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _expose_collection() -> Path:
    root = Path(tempfile.mkdtemp(prefix="microseg-illumio-unit-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    namespace = root / "ansible_collections" / "microseg"
    namespace.mkdir(parents=True)
    (namespace / "illumio").symlink_to(REPO, target_is_directory=True)
    return root


COLLECTIONS_ROOT = _expose_collection()
sys.path.insert(0, str(COLLECTIONS_ROOT))
# A copy imported before this point (e.g. from an installed collection) would shadow the symlink.
for _name in [name for name in sys.modules if name.startswith("ansible_collections")]:
    del sys.modules[_name]

from pce_test_server import FakePce, TestServer, TlsFiles, make_tls_files  # noqa: E402


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    """A private CA, a server certificate for localhost/127.0.0.1 and a client certificate, all from it."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def serve(tls_files):
    """Start HTTPS test servers: serve(handler, **options) -> TestServer; all are stopped after the test."""
    started = []

    def start(handler, **options):
        server = TestServer(handler, tls_files, **options)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def fake_pce(serve, tls_files):
    """A running fake PCE with an in-memory label store (see pce_test_server.FakePce)."""
    pce = FakePce()
    pce.server = serve(pce.handle)
    pce.server_ca = tls_files.ca_cert
    return pce


@pytest.fixture(autouse=True)
def _no_pce_environment(monkeypatch):
    """Tests set the connection themselves; ILLUMIO_* or proxy variables of the caller must not leak in."""
    for name in (
        "ILLUMIO_PCE_HOST",
        "ILLUMIO_PCE_PORT",
        "ILLUMIO_PCE_ORG_ID",
        "ILLUMIO_API_KEY_USERNAME",
        "ILLUMIO_API_KEY_SECRET",
        "ILLUMIO_PCE_VALIDATE_CERTS",
        "ILLUMIO_PCE_CA_PATH",
        "ILLUMIO_PCE_CLIENT_CERT",
        "ILLUMIO_PCE_CLIENT_KEY",
        "ILLUMIO_PCE_PROXY_URL",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
