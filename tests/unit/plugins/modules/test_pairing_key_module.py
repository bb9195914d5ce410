"""pairing_key: a new key per run, nothing in check mode, the code never in diff or errors."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.modules import pairing_key
from fake_pce_workloads import start_workload_pce
from module_runner import run_module


@pytest.fixture
def workload_pce(serve, tls_files):
    return start_workload_pce(serve, tls_files)


def run(pce, check_mode=False, diff=False, **args):
    return run_module(pairing_key.main, pce.connection(**args), check_mode=check_mode, diff=diff)


def test_each_run_makes_a_new_key(workload_pce):
    profile = workload_pce.add_profile("pp", allowed_uses_per_key="1", key_lifespan="3600")
    first = run(workload_pce, diff=True, pairing_profile="pp")
    second = run(workload_pce, profile="pp")
    assert first["changed"] is True and second["changed"] is True
    codes = [code for _profile, code in workload_pce.keys]
    assert [first["activation_code"], second["activation_code"]] == codes
    assert len(set(codes)) == 2
    [post, _again] = workload_pce.changes()
    assert (post.method, post.path, post.body) == ("POST", "/api/v2" + profile["href"] + "/pairing_key", {})
    assert first["pairing_key"] == {"pairing_profile": "pp", "allowed_uses_per_key": "1", "key_lifespan": "3600"}
    assert first["diff"] == {"before": {}, "after": {"pairing_key": first["pairing_key"]}}
    assert first["activation_code"] not in json.dumps(first["diff"])
    assert first["pairing_profile"]["name"] == "pp"


def test_check_mode_reports_a_change_and_makes_no_key(workload_pce):
    workload_pce.add_profile("pp")
    result = run(workload_pce, check_mode=True, pairing_profile="pp")
    assert result["changed"] is True
    assert result["activation_code"] is None
    assert workload_pce.changes() == []


def test_a_disabled_profile_fails_clearly(workload_pce):
    workload_pce.add_profile("off", enabled=False)
    result = run(workload_pce, pairing_profile="off")
    assert result["failed"] is True
    assert "pairing profile 'off' is disabled and makes no pairing keys" in result["msg"]
    assert workload_pce.changes() == []
    assert run(workload_pce, check_mode=True, pairing_profile="off")["failed"] is True


def test_a_missing_profile_fails_clearly_despite_partial_name_matches(workload_pce):
    workload_pce.add_profile("pp-longer")
    result = run(workload_pce, pairing_profile="pp")
    assert result["failed"] is True
    assert "pairing profile 'pp' does not exist" in result["msg"]
    assert workload_pce.changes() == []
