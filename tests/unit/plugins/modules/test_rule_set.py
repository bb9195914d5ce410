"""The rule_set module against a fake PCE: create, idempotence, check mode, diff in user form, purge, rename."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.modules import rule_set
from module_runner import run_module
from policy_pce import running_policy_pce


@pytest.fixture
def pce(serve, tls_files):
    policy_pce = running_policy_pce(serve, tls_files)
    for key, value in (("role", "web"), ("role", "db"), ("role", "batch"), ("app", "crm"), ("env", "prod")):
        policy_pce.add_label(key, value)
    policy_pce.add("services", name="SSH", service_ports=[{"port": 22, "proto": 6}])
    policy_pce.add("ip_lists", name="Jump hosts", ip_ranges=[{"from_ip": "10.0.9.0/24"}])
    return policy_pce


def run(pce, check_mode=False, diff=False, **args):
    return run_module(rule_set.main, pce.connection(**args), check_mode=check_mode, diff=diff)


WEB = {"providers": [{"role": "web"}], "consumers": ["ams"], "services": [{"port": 443, "proto": "tcp"}]}
DB = {"providers": [{"role": "db"}], "consumers": [{"role": "web"}], "services": [{"port": 5432, "proto": "tcp"}]}
ADMIN = {"providers": ["ams"], "consumers": [{"ip_list": "Jump hosts"}], "services": ["SSH"], "description": "admins"}
SCOPES = [[{"app": "crm"}, {"env": "prod"}]]


def test_check_mode_predicts_creation_in_user_form(pce):
    result = run(pce, check_mode=True, diff=True, name="RS-CRM", scopes=SCOPES, rules=[WEB, ADMIN])
    assert result["changed"] is True
    assert result["provision_pending"] is True
    assert pce.changes() == []
    assert pce.find("rule_sets", "RS-CRM") is None
    after = result["diff"]["after"]
    assert result["diff"]["before"] == {}
    assert after["scopes"] == SCOPES
    assert after["rules"][0]["providers"] == [{"role": "web"}]
    assert after["rules"][1]["consumers"] == [{"ip_list": "Jump hosts"}]
    assert after["rules"][1]["services"] == ["SSH"]
    assert "/orgs/" not in json.dumps(result["diff"])


def test_create_then_idempotent(pce):
    args = {"name": "RS-CRM", "description": "CRM", "scopes": SCOPES, "rules": [WEB, DB, ADMIN]}
    created = run(pce, diff=True, **args)
    assert created["changed"] is True
    assert created["rule_set"]["href"].startswith("/orgs/1/sec_policy/draft/rule_sets/")
    assert [r["href"] is not None for r in created["rule_set"]["rules"]] == [True, True, True]
    assert "/orgs/" not in json.dumps(created["diff"])
    assert len(pce.find("rule_sets", "RS-CRM")["rules"]) == 3

    again = run(pce, **args)
    again_check = run(pce, check_mode=True, **args)
    assert again["changed"] is False and again_check["changed"] is False
    assert again["rule_set"] == created["rule_set"]
    assert again["provision_pending"] is True  # created, never provisioned
    pce.provision()
    assert run(pce, **args)["provision_pending"] is False
    assert len(pce.changes()) == 4


def test_rules_written_differently_are_the_same_rules(pce):
    run(pce, name="RS", rules=[WEB, ADMIN])
    rewritten = [
        {
            "providers": [{"label": {"key": "role", "value": "web"}}],
            "consumers": [{"actors": "ams"}],
            "services": [{"port": 443, "to_port": 443, "proto": 6}],
            "resolve_labels_as": {"providers": ["workloads"], "consumers": ["workloads"]},
        },
        {"providers": ["ams"], "consumers": [{"ip_list": "Jump hosts"}], "ingress_services": [{"name": "SSH"}]},
    ]
    before = len(pce.changes())
    assert run(pce, name="RS", rules=list(reversed(rewritten)))["changed"] is False
    assert len(pce.changes()) == before


def test_update_adds_changes_and_purges(pce):
    run(pce, name="RS", rules=[WEB, DB])
    db_href = pce.find("rule_sets", "RS")["rules"][1]["href"]
    result = run(pce, diff=True, name="RS", rules=[dict(DB, enabled=False), ADMIN])
    assert result["changed"] is True
    rules = pce.find("rule_sets", "RS")["rules"]
    assert [r["href"] == db_href for r in rules] == [True, False]  # DB kept its href, WEB gone, ADMIN new
    assert rules[0]["enabled"] is False
    methods = [(r.method, r.body) for r in pce.changes()[3:]]
    assert methods[0][0] == "DELETE"
    assert methods[1] == ("PUT", {"enabled": False})
    assert methods[2][0] == "POST"
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert [r["providers"] for r in before["rules"]] == [[{"role": "web"}], [{"role": "db"}]]
    assert [r["providers"] for r in after["rules"]] == [[{"role": "db"}], ["ams"]]
    assert after["rules"][0]["enabled"] is False


def test_purge_false_keeps_other_rules(pce):
    run(pce, name="RS", rules=[WEB, DB])
    result = run(pce, name="RS", purge_rules=False, rules=[ADMIN])
    assert result["changed"] is True
    assert len(pce.find("rule_sets", "RS")["rules"]) == 3
    assert run(pce, name="RS", purge_rules=False, rules=[ADMIN, WEB])["changed"] is False
    emptied = run(pce, name="RS", rules=[])
    assert emptied["changed"] is True
    assert pce.find("rule_sets", "RS")["rules"] == []


def test_without_rules_the_rules_are_left_alone(pce):
    run(pce, name="RS", rules=[WEB])
    result = run(pce, name="RS", description="new text", enabled=False)
    assert result["changed"] is True
    assert len(pce.find("rule_sets", "RS")["rules"]) == 1
    [put] = [r for r in pce.changes() if r.method == "PUT"]
    assert put.body == {"description": "new text", "enabled": False}


def test_scope_change_and_empty_scope(pce):
    run(pce, name="RS", scopes=SCOPES)
    assert run(pce, name="RS", scopes=[{"app": "crm", "env": "prod"}])["changed"] is False
    everywhere = run(pce, diff=True, name="RS", scopes=[])
    assert everywhere["changed"] is True
    assert everywhere["diff"]["after"]["scopes"] == [[]]
    assert pce.find("rule_sets", "RS")["scopes"] == [[]]
    assert run(pce, name="RS", scopes=[[]])["changed"] is False


def test_update_in_check_mode_changes_nothing(pce):
    run(pce, name="RS", rules=[WEB])
    count = len(pce.changes())
    result = run(pce, check_mode=True, diff=True, name="RS", rules=[DB])
    assert result["changed"] is True
    assert [r["providers"] for r in result["rule_set"]["rules"]] == [[{"role": "db"}]]
    assert result["rule_set"]["rules"][0]["href"] is None
    assert len(pce.changes()) == count


def test_rename(pce):
    created = run(pce, name="RS-old", rules=[WEB])
    renamed = run(pce, diff=True, name="RS-old", new_name="RS-new")
    assert renamed["changed"] is True
    assert renamed["rule_set"]["href"] == created["rule_set"]["href"]
    assert renamed["diff"]["before"]["name"] == "RS-old" and renamed["diff"]["after"]["name"] == "RS-new"
    assert run(pce, name="RS-old", new_name="RS-new")["changed"] is False
    run(pce, name="RS-old")
    both = run(pce, name="RS-old", new_name="RS-new")
    assert both["failed"] is True and "both exist" in both["msg"]


def test_absent(pce):
    run(pce, name="RS", rules=[WEB])
    preview = run(pce, check_mode=True, diff=True, name="RS", state="absent")
    assert preview["changed"] is True and pce.find("rule_sets", "RS") is not None
    assert preview["diff"]["after"] == {} and preview["diff"]["before"]["name"] == "RS"
    removed = run(pce, name="RS", state="absent")
    assert removed["changed"] is True and removed["rule_set"] == {}
    assert pce.find("rule_sets", "RS") is None
    assert run(pce, name="RS", state="absent")["changed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"rules": [dict(WEB, consumers=[{"ip_lsit": "x"}])]}, "rules[0].consumers[0]: unknown actor kind 'ip_lsit'"),
        ({"rules": [dict(WEB, providers=[{"role": "nope"}])]}, "rules[0].providers[0]: label role=nope does not exist"),
        (
            {"rules": [dict(WEB, services=[{"port": 1, "proto": "tpc"}])]},
            "rules[0].services[0]: unknown protocol 'tpc'",
        ),
        ({"rules": [WEB, dict(WEB, description="same")]}, "rules[0] and rules[1] have the same"),
        ({"scopes": [[{"role": "web"}, {"role": "db"}]]}, "scopes[0]: a scope can hold only one"),
        ({"new_name": "x", "state": "absent"}, "new_name renames a rule set and only goes with state=present"),
        ({"new_name": " "}, "new_name must not be empty"),
        ({"name": ""}, "name must not be empty"),
        ({"rules": [{"providers": ["ams"], "consumers": ["ams"]}]}, "missing required arguments: services"),
    ],
)
def test_bad_input_fails_clearly_and_changes_nothing(pce, args, message):
    result = run(pce, **{"name": "RS", **args})
    assert result["failed"] is True
    assert message in result["msg"]
    assert "Traceback" not in result["msg"]
    assert pce.changes() == []
