"""The real server: TLS with the lab CA, certificates, persistence, CLI, fault injection, concurrency."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import sqlite3
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import API_SECRET, API_USER, ORG, PCELAB, PceSession, start_lab
from cryptography import x509
from pcelab.certs import ensure_tls


def test_tls_is_verified_with_the_lab_ca_and_fails_with_another(api, lab, tmp_path):
    assert api.get(f"{ORG}/labels").status_code == 200
    other_ca = ensure_tls(tmp_path / "other", []).ca
    with pytest.raises(requests.exceptions.SSLError):
        PceSession(lab.url + "/api/v2", str(other_ca)).get(f"{ORG}/labels")
    with pytest.raises(requests.exceptions.SSLError):  # the system CAs don't know the lab CA either
        PceSession(lab.url + "/api/v2", "/etc/ssl/certs/ca-certificates.crt").get(f"{ORG}/labels")


def test_localhost_name_verifies_too(lab):
    url = lab.url.replace("127.0.0.1", "localhost")
    answer = PceSession(url + "/api/v2", lab.ca).get("/health")
    assert answer.status_code == 200 and answer.json()[0]["status"] == "normal"


def test_certificate_names_and_key_permissions(lab):
    data = Path(lab.data_dir)
    cert = x509.load_pem_x509_certificate((data / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(names.get_values_for_type(x509.DNSName))
    ips = set(names.get_values_for_type(x509.IPAddress))
    assert {"localhost", socket.gethostname()} <= dns
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= ips
    for key in ("ca.key", "server.key", "pce.sqlite3"):
        assert stat.S_IMODE((data / key).stat().st_mode) == 0o600, key
    assert stat.S_IMODE((data / "ca.pem").stat().st_mode) == 0o644


def test_unauthenticated_and_wrong_key_are_refused(lab):
    assert lab.session(auth=None).get(f"{ORG}/labels").status_code == 401
    assert lab.session(auth=(API_USER, "0" * 64)).get(f"{ORG}/labels").status_code == 401
    assert lab.session(auth=None).get("/health").status_code == 200


def test_parallel_clients(api, lab):
    def create(index: int) -> int:
        with lab.session() as session:
            return session.post(f"{ORG}/labels", json={"key": "loc", "value": f"Site-{index}"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(40)))
    assert statuses == [201] * 40
    hrefs = [label["href"] for label in api.get(f"{ORG}/labels", params={"key": "loc"}).json()]
    assert len(set(hrefs)) == 40


def test_state_and_certificates_survive_a_restart_and_names_reissue_the_cert(tmp_path):
    server = start_lab(tmp_path)
    try:
        with server.session() as api:
            label = api.post(f"{ORG}/labels", json={"key": "app", "value": "Kept"}).json()
            api.post(f"{ORG}/sec_policy/draft/ip_lists", json={"name": "Kept list"})
            api.post(f"{ORG}/sec_policy", json={"update_description": "kept"})
    finally:
        server.stop()
    assert f"pcelab listening on {server.url} ca={server.ca}" in server.stdout
    ca_before = Path(server.ca).read_bytes()
    cert_before = (tmp_path / "data" / "server.pem").read_bytes()
    server = start_lab(tmp_path)
    try:
        assert (tmp_path / "data" / "server.pem").read_bytes() == cert_before  # same names: reused
        with server.session() as api:
            assert api.get(label["href"]).json()["value"] == "Kept"
            assert (
                api.get(f"{ORG}/sec_policy/active/ip_lists", params={"name": "Kept"}).json()[0]["name"] == "Kept list"
            )
            assert api.get(f"{ORG}/sec_policy/1").json()["commit_message"] == "kept"
    finally:
        server.stop()
    server = start_lab(tmp_path, "--san", "pce.lab.example", "--san", "192.0.2.10")
    try:
        assert Path(server.ca).read_bytes() == ca_before
        cert = x509.load_pem_x509_certificate((tmp_path / "data" / "server.pem").read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "pce.lab.example" in names.get_values_for_type(x509.DNSName)
        assert ipaddress.ip_address("192.0.2.10") in names.get_values_for_type(x509.IPAddress)
        assert server.session().get("/health").status_code == 200
    finally:
        server.stop()


def test_api_key_create_prints_a_pce_style_key_and_stores_only_its_hash(tmp_path):
    data = tmp_path / "data"
    output = subprocess.run([*PCELAB, "api-key", "create", "--data-dir", str(data)], capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    username, secret = output.split()
    assert re.fullmatch(r"api_[0-9a-f]{15}", username) and re.fullmatch(r"[0-9a-f]{64}", secret)
    assert secret.encode() not in (data / "pce.sqlite3").read_bytes()
    with sqlite3.connect(data / "pce.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM api_keys WHERE username=?", (username,)).fetchone()[0] == 1
    server = start_lab(tmp_path)
    try:
        assert server.session(auth=(username, secret)).get(f"{ORG}/labels").status_code == 200
    finally:
        server.stop()


def test_fault_injection_flag_and_runtime_switch(tmp_path):
    server = start_lab(tmp_path, "--fault-rate", "1", "--fault-status", "429", "--access-log")
    try:
        with server.session() as api:
            answer = api.get(f"{ORG}/labels")
            assert answer.status_code == 429 and answer.headers["Retry-After"] == "1"
            assert answer.json()[0]["token"] == "too_many_requests"
            assert api.get("/health").status_code == 200
            with server.session(prefix="/lab/admin") as admin:
                assert admin.put("/faults", json={"rate": 0, "status": 503, "next": 2}).status_code == 200
                assert [api.get(f"{ORG}/labels").status_code for _ in range(3)] == [503, 503, 200]
                assert admin.put("/faults", json={"rate": 2}).status_code == 406
    finally:
        server.stop()
    assert "GET /api/v2/orgs/1/labels 429" in server.stderr
    assert API_SECRET not in server.stderr and "Authorization" not in server.stderr


def test_in_memory_lab_over_ipv6(tmp_path):
    server = start_lab(tmp_path, "--listen", "[::1]:0", data_dir=":memory:")
    try:
        assert server.url.startswith("https://[::1]:")
        assert not (tmp_path / "data").exists()
        with server.session() as api:
            assert api.post(f"{ORG}/labels", json={"key": "env", "value": "Mem"}).status_code == 201
    finally:
        server.stop()
    assert not Path(server.ca).exists()  # the temporary folder is removed on exit


def test_plain_http_mode(tmp_path):
    server = start_lab(tmp_path, "--http")
    try:
        assert server.url.startswith("http://") and server.info["ca"] is None
        assert requests.get(server.url + "/api/v2/health", timeout=10).status_code == 200
    finally:
        server.stop()


def test_bad_listen_address_is_a_clear_error():
    result = subprocess.run([*PCELAB, "serve", "--listen", "nonsense", "--data-dir", ":memory:"],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2 and "--listen must be HOST:PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_sub_commands():
    result = subprocess.run([sys.executable, "-m", "pcelab.cli", "--help"], capture_output=True, text=True, check=True)
    assert "serve" in result.stdout and "api-key" in result.stdout


def test_ready_file_is_json(lab):
    info = lab.info
    assert set(info) == {"url", "host", "port", "ca", "pid", "org_id"}
    assert json.loads(json.dumps(info))["port"] > 0


def test_stops_promptly_with_an_idle_keep_alive_client(tmp_path):
    import time

    server = start_lab(tmp_path)
    session = server.session()
    assert session.get(f"{ORG}/labels").status_code == 200  # leaves a kept-alive TLS connection open
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    assert server.process.returncode == 0
    assert "ERROR" not in server.stderr and "Traceback" not in server.stderr
    session.close()
