"""pairing_profile and pairing_profile_info against the fake PCE."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.modules import pairing_profile, pairing_profile_info
from fake_pce_workloads import start_workload_pce
from module_runner import run_module


@pytest.fixture
def workload_pce(serve, tls_files):
    return start_workload_pce(serve, tls_files)


def run(pce, check_mode=False, diff=False, **args):
    return run_module(pairing_profile.main, pce.connection(**args), check_mode=check_mode, diff=diff)


def info(pce, **args):
    return run_module(pairing_profile_info.main, pce.connection(**args))


FULL = {
    "name": "web-prod",
    "description": "Production web servers",
    "enabled": True,
    "enforcement_mode": "full",
    "visibility_level": "flow_drops",
    "log_traffic": False,
    "labels": {"role": "web", "env": "prod"},
    "allowed_uses_per_key": 1,
    "key_lifespan": "1d",
    "agent_software_release": "Default",
    "role_label_lock": True,
    "app_label_lock": False,
    "env_label_lock": True,
    "loc_label_lock": False,
    "mode_lock": True,
    "enforcement_mode_lock": True,
    "visibility_level_lock": False,
    "log_traffic_lock": True,
}


def test_check_mode_predicts_creation_in_user_form(workload_pce):
    workload_pce.add_label("role", "web")
    workload_pce.add_label("env", "prod")
    result = run(workload_pce, check_mode=True, diff=True, **FULL)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    after = result["diff"]["after"]
    assert after["labels"] == {"role": "web", "env": "prod"}
    assert after["key_lifespan"] == "86400"
    assert after["allowed_uses_per_key"] == "1"
    assert "/orgs/" not in json.dumps(result["diff"])
    assert workload_pce.changes() == []
    assert workload_pce.profiles == {}


def test_create_sends_the_pce_payload_then_is_idempotent(workload_pce):
    role = workload_pce.add_label("role", "web")["href"]
    env = workload_pce.add_label("env", "prod")["href"]
    created = run(workload_pce, **FULL)
    assert created["changed"] is True
    [post] = workload_pce.changes()
    assert post.path == "/api/v2/orgs/1/pairing_profiles"
    expected = dict(FULL, labels=[{"href": role}, {"href": env}], key_lifespan=86400)
    assert post.body == expected
    profile = created["pairing_profile"]
    assert profile["href"].startswith("/orgs/1/pairing_profiles/")
    assert profile["labels"] == {"role": "web", "env": "prod"}
    assert profile["agent_software_release"] == "Default (21.5.20-8451)"
    assert profile["total_use_count"] == 0

    # Written the other ways the PCE shows them: seconds, digit strings.
    written_otherwise = {**FULL, "key_lifespan": "86400", "allowed_uses_per_key": "1"}
    again = run(workload_pce, **written_otherwise)
    again_check = run(workload_pce, check_mode=True, **FULL)
    assert again["changed"] is False
    assert again_check["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert len(workload_pce.changes()) == 1


def test_update_sends_only_what_differs_and_diffs_in_user_form(workload_pce):
    profile = workload_pce.add_profile("pp", labels={"role": "web"}, log_traffic=True)
    workload_pce.add_label("role", "db")
    result = run(workload_pce, diff=True, name="pp", labels={"role": "db"}, key_lifespan="2h", enabled=True)
    assert result["changed"] is True
    [put] = workload_pce.changes()
    assert put.path == "/api/v2" + profile["href"]
    assert put.body == {"labels": [{"href": workload_pce.find("role", "db")["href"]}], "key_lifespan": 7200}
    assert result["diff"]["before"]["labels"] == {"role": "web"}
    assert result["diff"]["after"]["labels"] == {"role": "db"}
    assert result["diff"]["before"]["key_lifespan"] == "unlimited"
    assert result["diff"]["after"]["key_lifespan"] == "7200"
    assert "/orgs/" not in json.dumps(result["diff"])
    assert run(workload_pce, name="pp", labels={"role": "db"}, key_lifespan=7200)["changed"] is False


def test_empty_labels_remove_them_all(workload_pce):
    workload_pce.add_profile("pp", labels={"role": "web"})
    assert run(workload_pce, name="pp", labels={})["changed"] is True
    assert workload_pce.profile("pp")["labels"] == []
    assert run(workload_pce, name="pp", labels={})["changed"] is False


def test_flow_off_on_a_profile_that_logs_traffic_fails_before_any_change(workload_pce):
    workload_pce.add_profile("pp", log_traffic=True)
    result = run(workload_pce, name="pp", visibility_level="flow_off")
    assert result["failed"] is True
    assert "flow_off and log_traffic true cannot be combined" in result["msg"]
    assert workload_pce.changes() == []
    fixed = run(workload_pce, name="pp", visibility_level="flow_off", log_traffic=False)
    assert fixed["changed"] is True


def test_flow_drops_in_visibility_only_fails_also_in_check_mode(workload_pce):
    result = run(workload_pce, check_mode=True, name="new", visibility_level="flow_drops")
    assert result["failed"] is True
    assert "flow_drops is not valid with enforcement_mode visibility_only" in result["msg"]
    workload_pce.add_profile("full", enforcement_mode="full", visibility_level="flow_drops")
    moved = run(workload_pce, name="full", enforcement_mode="visibility_only")
    assert moved["failed"] is True
    assert workload_pce.changes() == []


def test_legacy_mode_is_sent_as_enforcement_mode_and_compared_so(workload_pce):
    workload_pce.add_profile("pp", enforcement_mode="full")
    result = run(workload_pce, name="pp", mode="illuminated")
    assert result["changed"] is True
    assert workload_pce.changes()[0].body == {"enforcement_mode": "visibility_only"}
    assert run(workload_pce, name="pp", mode="illuminated")["changed"] is False
    assert run(workload_pce, name="pp", enforcement_mode="visibility_only")["changed"] is False


def test_mode_and_enforcement_mode_are_mutually_exclusive(workload_pce):
    result = run(workload_pce, name="pp", mode="enforced", enforcement_mode="full")
    assert result["failed"] is True
    assert "mutually exclusive" in result["msg"]
    assert workload_pce.requests == []


def test_bad_values_fail_before_talking_to_the_pce(workload_pce):
    for args, message in (
        ({"key_lifespan": "3 days"}, "key_lifespan must be 'unlimited', a positive number of seconds"),
        ({"allowed_uses_per_key": 0}, "allowed_uses_per_key must be 'unlimited' or a positive whole number"),
        ({"labels": {"role": ""}}, "label value for key role must not be empty"),
        ({"new_name": "x", "state": "absent"}, "new_name renames a pairing profile"),
        ({"new_name": " "}, "new_name must not be empty"),
        ({"visibility_level": "flow_everything"}, "value of visibility_level must be one of"),
    ):
        result = run(workload_pce, name="pp", **args)
        assert result["failed"] is True, args
        assert message in result["msg"]
    assert workload_pce.requests == []


def test_unknown_label_is_named_and_nothing_changes(workload_pce):
    result = run(workload_pce, name="pp", labels={"env": "nope"})
    assert result["failed"] is True
    assert "label env=nope does not exist on the PCE" in result["msg"]
    assert workload_pce.changes() == []


def test_rename_keeps_the_href_and_is_idempotent(workload_pce):
    profile = workload_pce.add_profile("old")
    workload_pce.add_profile("old-but-longer")
    renamed = run(workload_pce, diff=True, name="old", new_name="new")
    assert renamed["changed"] is True
    assert renamed["pairing_profile"]["href"] == profile["href"]
    assert (renamed["diff"]["before"]["name"], renamed["diff"]["after"]["name"]) == ("old", "new")
    assert run(workload_pce, name="old", new_name="new")["changed"] is False


def test_absent_deletes_once(workload_pce):
    workload_pce.add_profile("pp")
    preview = run(workload_pce, check_mode=True, diff=True, name="pp", state="absent")
    assert preview["changed"] is True
    assert preview["diff"]["after"] == {}
    assert workload_pce.profile("pp") is not None
    assert run(workload_pce, name="pp", state="absent")["changed"] is True
    assert workload_pce.profile("pp") is None
    assert run(workload_pce, name="pp", state="absent")["changed"] is False


def test_info_matches_names_exactly_and_shows_labels_as_key_value(workload_pce):
    workload_pce.add_profile("web", labels={"role": "web"})
    workload_pce.add_profile("web-2", enabled=False)
    found = info(workload_pce, name="web")
    assert [p["name"] for p in found["pairing_profiles"]] == ["web"]
    assert found["pairing_profiles"][0]["labels"] == {"role": "web"}
    assert found["changed"] is False
    assert [p["name"] for p in info(workload_pce)["pairing_profiles"]] == ["web", "web-2"]
    assert [p["name"] for p in info(workload_pce, enabled=False)["pairing_profiles"]] == ["web-2"]
    assert info(workload_pce, name="nope")["pairing_profiles"] == []
