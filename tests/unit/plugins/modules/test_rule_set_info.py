"""The rule_set_info module against a fake PCE: filters, draft and active policy, user form."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import rule_set_info
from module_runner import run_module
from policy_pce import running_policy_pce


@pytest.fixture
def pce(serve, tls_files):
    policy_pce = running_policy_pce(serve, tls_files)
    web = policy_pce.add_label("role", "web")
    crm = policy_pce.add_label("app", "crm")
    group = policy_pce.add("label_groups", name="LG-web", key="role", labels=[{"href": web["href"]}])
    ssh = policy_pce.add("services", name="SSH", service_ports=[{"port": 22, "proto": 6}])
    crm_set = policy_pce.add("rule_sets", name="RS-CRM", scopes=[[{"label": {"href": crm["href"]}}]])
    policy_pce.add_rule(
        crm_set,
        providers=[{"label_group": {"href": group["href"]}}],
        consumers=[{"actors": "ams"}],
        ingress_services=[{"href": ssh["href"]}, {"proto": 6, "port": 443}],
    )
    policy_pce.add_rule(
        crm_set,
        "deny_rules",
        providers=[{"actors": "ams"}],
        consumers=[{"actors": "ams"}],
        ingress_services=[{"proto": 17}],
    )
    policy_pce.add("rule_sets", name="RS-CRM-TEST")
    policy_pce.add("rule_sets", name="Other")
    return policy_pce


def run(pce, **args):
    return run_module(rule_set_info.main, pce.connection(**args))


def test_exact_name_in_user_form(pce):
    result = run(pce, name="RS-CRM")
    assert result["changed"] is False
    [found] = result["rule_sets"]
    assert found["name"] == "RS-CRM"
    assert found["scopes"] == [[{"app": "crm"}]]
    [rule] = found["rules"]
    assert rule["providers"] == [{"label_group": "LG-web"}]
    assert rule["consumers"] == ["ams"]
    assert rule["services"] == ["SSH", {"port": 443, "proto": "tcp"}]
    assert rule["href"].startswith(found["href"] + "/sec_rules/")
    [deny] = found["deny_rules"]
    assert deny["services"] == [{"proto": "udp"}] and deny["override"] is False
    assert found["provision_pending"] is True


def test_partial_and_all(pce):
    assert [rs["name"] for rs in run(pce, name="crm", name_match="partial")["rule_sets"]] == ["RS-CRM", "RS-CRM-TEST"]
    assert [rs["name"] for rs in run(pce)["rule_sets"]] == ["Other", "RS-CRM", "RS-CRM-TEST"]
    assert run(pce, name="nothing")["rule_sets"] == []


def test_active_policy(pce):
    assert run(pce, policy_version="active")["rule_sets"] == []
    pce.provision()
    [active] = run(pce, name="RS-CRM", policy_version="active")["rule_sets"]
    assert "/sec_policy/active/" in active["href"]
    assert active["rules"][0]["providers"] == [{"label_group": "LG-web"}]
    assert active["rules"][0]["services"][0] == "SSH"
    assert active["provision_pending"] is False


def test_pending_deletions_are_not_listed(pce):
    pce.provision()
    pce.find("rule_sets", "Other").update(update_type="delete", deleted_at="2026-01-01T00:00:00Z")
    assert [rs["name"] for rs in run(pce)["rule_sets"]] == ["RS-CRM", "RS-CRM-TEST"]
