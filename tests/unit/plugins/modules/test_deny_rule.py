"""The deny_rule module against a fake PCE: deny rules in rule sets and enforcement boundaries."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.modules import deny_rule
from module_runner import run_module
from policy_pce import running_policy_pce


@pytest.fixture
def pce(serve, tls_files):
    policy_pce = running_policy_pce(serve, tls_files)
    policy_pce.add_label("env", "prod")
    policy_pce.add_label("env", "dev")
    policy_pce.add_workload("web01")
    policy_pce.rule_set = policy_pce.add("rule_sets", name="RS")
    return policy_pce


def run(pce, check_mode=False, diff=False, **args):
    return run_module(deny_rule.main, pce.connection(**args), check_mode=check_mode, diff=diff)


ANY = "Any (0.0.0.0/0 and ::/0)"
IN_RULE_SET = {
    "rule_set": "RS",
    "providers": ["ams"],
    "consumers": [{"ip_list": ANY}],
    "services": [{"port": 23, "proto": "tcp"}],
}
BOUNDARY = {"name": "EB", "providers": [{"env": "prod"}], "consumers": [{"env": "dev"}], "services": ["All Services"]}


def test_deny_rule_in_a_rule_set(pce):
    preview = run(pce, check_mode=True, diff=True, **IN_RULE_SET)
    assert preview["changed"] is True and pce.changes() == []
    created = run(pce, diff=True, **dict(IN_RULE_SET, override=True))
    assert created["changed"] is True and created["provision_pending"] is True
    [stored] = pce.rule_set["deny_rules"]
    assert stored["override"] is True
    assert pce.changes()[0].path.endswith("/deny_rules")
    assert created["deny_rule"]["consumers"] == [{"ip_list": ANY}]
    assert created["deny_rule"]["rule_set"] == "RS"
    assert "/orgs/" not in json.dumps(created["diff"])
    assert run(pce, **dict(IN_RULE_SET, override=True))["changed"] is False
    # override not given means false: the rule is switched back in place
    plain = run(pce, **IN_RULE_SET)
    assert plain["changed"] is True and stored["override"] is False
    assert len(pce.rule_set["deny_rules"]) == 1
    assert run(pce, **dict(IN_RULE_SET, state="absent"))["changed"] is True
    assert pce.rule_set["deny_rules"] == []
    assert run(pce, **dict(IN_RULE_SET, state="absent"))["changed"] is False


def test_deny_rule_by_description(pce):
    args = {"rule_set": "RS", "match_by": "description", "description": "no telnet"}
    run(pce, **{**IN_RULE_SET, **args})
    moved = run(pce, **dict(args, services=[{"port": 23, "proto": "tcp"}, {"port": 513, "proto": "tcp"}]))
    assert moved["changed"] is True
    assert len(pce.rule_set["deny_rules"][0]["ingress_services"]) == 2


def test_enforcement_boundary_lifecycle(pce):
    preview = run(pce, check_mode=True, diff=True, **BOUNDARY)
    assert preview["changed"] is True and pce.changes() == []
    assert preview["diff"]["after"]["services"] == ["All Services"]
    created = run(pce, **BOUNDARY)
    assert created["changed"] is True
    stored = pce.find("enforcement_boundaries", "EB")
    assert created["deny_rule"]["href"] == stored["href"]
    assert run(pce, **BOUNDARY)["changed"] is False
    updated = run(pce, diff=True, **{**BOUNDARY, "services": [{"port": 22, "proto": "tcp"}], "network_type": "all"})
    assert updated["changed"] is True
    assert updated["diff"]["before"]["services"] == ["All Services"]
    assert updated["diff"]["after"]["services"] == [{"port": 22, "proto": "tcp"}]
    assert "/orgs/" not in json.dumps(updated["diff"])
    renamed = run(pce, name="EB", new_name="EB-2")
    assert renamed["changed"] is True and renamed["deny_rule"]["href"] == stored["href"]
    assert run(pce, name="EB", new_name="EB-2")["changed"] is False
    assert run(pce, name="EB-2", state="absent")["changed"] is True
    assert run(pce, name="EB-2", state="absent")["changed"] is False
    assert pce.find("enforcement_boundaries", "EB-2") is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(BOUNDARY, rule_set="RS"), "parameters are mutually exclusive: rule_set|name"),
        ({"providers": ["ams"]}, "one of the following is required: rule_set, name"),
        (dict(BOUNDARY, override=True), "override only go(es) with rule_set"),
        (dict(BOUNDARY, consumers=[{"workload": "web01"}]), "consumers[0]: workload can't be used here"),
        (dict(IN_RULE_SET, new_name="x"), "new_name renames an enforcement boundary and only goes with name"),
        ({"rule_set": "RS", "providers": ["ams"]}, "match_by is content: consumers, services identify the deny rule"),
        ({"rule_set": "RS", "match_by": "description"}, "match_by is description: description is required"),
        (dict(BOUNDARY, state="absent", new_name="x"), "only goes with state=present"),
        (dict(IN_RULE_SET, services=[{"port": 23, "proto": "telnet"}]), "services[0]: unknown protocol 'telnet'"),
        (dict(BOUNDARY, providers=[{"env": "qa"}]), "providers[0]: label env=qa does not exist"),
    ],
)
def test_bad_input(pce, args, message):
    result = run(pce, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert pce.changes() == []
