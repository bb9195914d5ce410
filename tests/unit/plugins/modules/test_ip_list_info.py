"""The ip_list_info module: draft or active policy, exact or partial names, the built-in list included."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import ip_list_info
from fake_policy_pce import FakePolicyPce
from module_runner import run_module


@pytest.fixture
def pce(serve, tls_files):
    fake = FakePolicyPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    fake.add("ip_lists", provisioned=True, name="IPL-Partner", ip_ranges=[{"from_ip": "1.1.1.1", "exclusion": False}])
    fake.add("ip_lists", name="IPL-Partner-2", ip_ranges=[{"from_ip": "2.2.2.0/24", "exclusion": True}])
    return fake


def run(pce, **args):
    return run_module(ip_list_info.main, pce.connection(**args))


def names(result):
    return [ip_list["name"] for ip_list in result["ip_lists"]]


def test_exact_name_is_the_default(pce):
    result = run(pce, name="IPL-Partner")
    assert result["ip_lists"] == [
        {
            "href": pce.get("ip_lists", "IPL-Partner")["href"],
            "name": "IPL-Partner",
            "description": None,
            "ip_ranges": [{"from_ip": "1.1.1.1", "to_ip": None, "description": None, "exclusion": False}],
            "fqdns": [],
            "external_data_set": None,
            "external_data_reference": None,
            "update_type": None,
        }
    ]
    assert pce.requests[0].query == {"name": "IPL-Partner", "max_results": "500"}


def test_partial_names_and_everything(pce):
    assert names(run(pce, name="partner", name_match="partial")) == ["IPL-Partner", "IPL-Partner-2"]
    assert names(run(pce)) == ["Any (0.0.0.0/0 and ::/0)", "IPL-Partner", "IPL-Partner-2"]


def test_active_policy(pce):
    result = run(pce, policy_version="active")
    assert names(result) == ["Any (0.0.0.0/0 and ::/0)", "IPL-Partner"]
    assert result["ip_lists"][1]["href"].startswith("/orgs/1/sec_policy/active/ip_lists/")


def test_nothing_found_is_an_empty_list(pce):
    assert run(pce, name="IPL-Nope") == {"changed": False, "ip_lists": []}


def test_pce_errors_fail_without_traceback(pce):
    result = run(pce, api_key_username="api_nobody")
    assert result["failed"] is True
    assert "authentication failed" in result["msg"]
