"""The service_info module: draft or active policy, protocols shown by name."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import service_info
from fake_policy_pce import FakePolicyPce
from module_runner import run_module


@pytest.fixture
def pce(serve, tls_files):
    fake = FakePolicyPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    fake.add("services", provisioned=True, name="S-Web", service_ports=[{"proto": 6, "port": 80}])
    fake.add("services", name="S-Web-Alt", service_ports=[{"proto": 6, "port": 8080, "to_port": 8090}])
    return fake


def run(pce, **args):
    return run_module(service_info.main, pce.connection(**args))


def test_draft_by_exact_name_with_protocol_names(pce):
    [web] = run(pce, name="S-Web")["services"]
    assert web["service_ports"] == [{"proto": "tcp", "port": 80}]
    assert web["update_type"] is None
    assert web["windows_services"] == []


def test_partial_and_active(pce):
    draft = run(pce, name="web", name_match="partial")["services"]
    assert [s["name"] for s in draft] == ["S-Web", "S-Web-Alt"]
    assert draft[1]["update_type"] == "create"
    active = run(pce, policy_version="active")["services"]
    assert [s["name"] for s in active] == ["All Services", "S-Web"]
    assert active[0]["service_ports"] == [{"proto": -1}]


def test_nothing_found(pce):
    assert run(pce, name="S-None") == {"changed": False, "services": []}
