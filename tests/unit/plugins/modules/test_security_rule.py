"""The security_rule module against a fake PCE: identity by content or by description, check mode, diff."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.modules import security_rule
from module_runner import run_module
from policy_pce import running_policy_pce


@pytest.fixture
def pce(serve, tls_files):
    policy_pce = running_policy_pce(serve, tls_files)
    policy_pce.web = policy_pce.add_label("role", "web")
    policy_pce.db = policy_pce.add_label("role", "db")
    policy_pce.add("services", name="SSH", service_ports=[{"port": 22, "proto": 6}])
    policy_pce.rule_set = policy_pce.add("rule_sets", name="RS")
    return policy_pce


def run(pce, check_mode=False, diff=False, **args):
    return run_module(security_rule.main, pce.connection(**args), check_mode=check_mode, diff=diff)


RULE = {"rule_set": "RS", "providers": [{"role": "web"}], "consumers": ["ams"], "services": ["SSH"]}


def test_create_check_mode_then_real_then_idempotent(pce):
    preview = run(pce, check_mode=True, diff=True, **RULE)
    assert preview["changed"] is True and pce.changes() == []
    assert preview["diff"]["after"]["providers"] == [{"role": "web"}]
    assert preview["diff"]["after"]["rule_set"] == "RS"
    created = run(pce, diff=True, **RULE)
    assert created["changed"] is True and created["provision_pending"] is True
    assert created["security_rule"]["href"] == pce.rule_set["rules"][0]["href"]
    assert "/orgs/" not in json.dumps(created["diff"])
    assert run(pce, **RULE)["changed"] is False
    assert run(pce, check_mode=True, **RULE)["changed"] is False
    assert len(pce.changes()) == 1


def test_other_rules_are_left_alone(pce):
    other = pce.add_rule(
        pce.rule_set, providers=[{"actors": "ams"}], consumers=[{"actors": "ams"}], ingress_services=[]
    )
    run(pce, **RULE)
    run(pce, **dict(RULE, state="absent"))
    assert pce.rule_set["rules"] == [other]


def test_settable_fields_change_in_place(pce):
    created = run(pce, **RULE)
    changed = run(pce, diff=True, **dict(RULE, enabled=False, description="web admin", network_type="all"))
    assert changed["changed"] is True
    assert changed["security_rule"]["href"] == created["security_rule"]["href"]
    assert changed["diff"]["before"]["enabled"] is True and changed["diff"]["after"]["enabled"] is False
    assert pce.changes()[-1].body == {"enabled": False, "description": "web admin", "network_type": "all"}
    # enabled/description/network_type not given: not compared
    assert run(pce, **RULE)["changed"] is False


def test_other_content_is_another_rule(pce):
    run(pce, **RULE)
    run(pce, **dict(RULE, unscoped_consumers=True))
    run(pce, **dict(RULE, resolve_labels_as={"consumers": ["virtual_services"]}))
    assert len(pce.rule_set["rules"]) == 3


def test_match_by_description(pce):
    args = {"rule_set": "RS", "match_by": "description", "description": "backup"}
    missing = run(pce, **args)
    assert missing["failed"] is True
    assert "no rule in rule set 'RS' has the description 'backup'; to create it, give providers" in missing["msg"]
    created = run(pce, **dict(args, providers=["ams"], consumers=[{"role": "db"}], services=["SSH"]))
    assert created["changed"] is True
    moved = run(pce, diff=True, **dict(args, consumers=[{"role": "web"}]))
    assert moved["changed"] is True
    assert moved["security_rule"]["href"] == created["security_rule"]["href"]
    assert moved["diff"]["before"]["consumers"] == [{"role": "db"}]
    assert moved["diff"]["after"]["consumers"] == [{"role": "web"}]
    assert run(pce, **dict(args, enabled=True))["changed"] is False
    assert run(pce, **dict(args, state="absent"))["changed"] is True
    assert pce.rule_set["rules"] == []


def test_absent_removes_identical_copies(pce):
    for _copy in range(2):
        pce.add_rule(
            pce.rule_set,
            providers=[{"label": {"href": pce.web["href"]}}],
            consumers=[{"actors": "ams"}],
            ingress_services=[{"href": pce.find("services", "SSH")["href"]}],
        )
    preview = run(pce, check_mode=True, **dict(RULE, state="absent"))
    assert preview["changed"] is True and len(pce.rule_set["rules"]) == 2
    removed = run(pce, **dict(RULE, state="absent"))
    assert removed["changed"] is True and removed["security_rule"] == {}
    assert pce.rule_set["rules"] == []
    assert run(pce, **dict(RULE, state="absent"))["changed"] is False


def test_missing_rule_set(pce):
    failed = run(pce, **{**RULE, "rule_set": "RS-none"})
    assert failed["failed"] is True
    assert "rule set 'RS-none' does not exist" in failed["msg"]
    assert run(pce, **{**RULE, "rule_set": "RS-none", "state": "absent"})["changed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"consumers": [{"workload": "nope"}]}, "consumers[0]: workload 'nope' does not exist"),
        ({"services": [{"port": 22, "proto": "tcpx"}]}, "services[0]: unknown protocol 'tcpx'"),
        ({"providers": [{"colour": "blue"}]}, "providers[0]: unknown actor kind 'colour'"),
        ({"services": None}, "missing: services"),
        ({"match_by": "description"}, "match_by is description but all of the following are missing: description"),
        ({"description": " ", "match_by": "description"}, "description must not be empty"),
    ],
)
def test_bad_input(pce, args, message):
    given = {name: value for name, value in dict(RULE, **args).items() if value is not None}
    result = run(pce, **given)
    assert result["failed"] is True
    assert message in result["msg"]
    assert pce.changes() == []
