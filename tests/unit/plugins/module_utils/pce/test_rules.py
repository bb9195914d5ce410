"""Rule identity, rule plans, and the rule set / rule / enforcement boundary managers against a fake PCE."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_params
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.rules import (
    ALLOW,
    DENY,
    EnforcementBoundaries,
    RuleSets,
    RulesInRuleSet,
    check_unique,
    plan_rules,
    resolve_labels_as,
    rule_key,
    rule_payload,
    same_value,
    without_hrefs,
)
from policy_pce import running_policy_pce

AMS = {"actors": "ams"}


def lbl(n):
    return {"label": {"href": f"/orgs/1/labels/{n}"}}


def tcp(port):
    return {"proto": 6, "port": port}


def rule(href=None, **fields):
    base = {"providers": [lbl(1)], "consumers": [AMS], "ingress_services": [tcp(22)]}
    base.update(fields)
    if href:
        base["href"] = href
    return base


# --- pure functions ---------------------------------------------------------------------------------------
def test_resolve_labels_as_defaults_and_checks():
    assert resolve_labels_as(None) == {"providers": ["workloads"], "consumers": ["workloads"]}
    assert resolve_labels_as({"providers": ["virtual_services", "workloads"]}) == {
        "providers": ["workloads", "virtual_services"],
        "consumers": ["workloads"],
    }
    with pytest.raises(PceError, match="'vms' is not one of workloads, virtual_services"):
        resolve_labels_as({"providers": ["vms"]})
    with pytest.raises(PceError, match="unknown key"):
        resolve_labels_as({"provider": ["workloads"]})
    with pytest.raises(PceError, match="must be a non-empty list"):
        resolve_labels_as({"consumers": []})


def test_rule_key_ignores_order_and_pce_defaults():
    written = rule(
        providers=[AMS, lbl(2)],
        ingress_services=[tcp(22), {"href": "/s/1"}],
        resolve_labels_as={"providers": ["workloads"], "consumers": ["workloads"]},
        unscoped_consumers=False,
    )
    stored = rule(providers=[lbl(2), AMS], ingress_services=[{"href": "/s/1"}, tcp(22)], description="x")
    assert rule_key(ALLOW, written) == rule_key(ALLOW, stored)
    assert rule_key(ALLOW, stored) != rule_key(ALLOW, dict(stored, unscoped_consumers=True))
    assert rule_key(ALLOW, stored) != rule_key(
        ALLOW, dict(stored, resolve_labels_as={"providers": ["virtual_services"], "consumers": ["workloads"]})
    )
    # Deny rules have no resolve_labels_as: it is not part of their identity.
    assert rule_key(DENY, stored) == rule_key(DENY, dict(stored, resolve_labels_as={"providers": ["x"]}))


def test_same_value_semantics():
    assert same_value("description", None, "")
    assert same_value("enabled", None, True)
    assert not same_value("enabled", False, True)
    assert same_value("network_type", None, "brn")
    assert same_value("override", None, False)
    assert same_value("scopes", [], [[]])
    assert same_value("providers", [lbl(1), AMS], [AMS, lbl(1)])


def test_plan_matches_by_content_not_position():
    current = [rule("/r/1"), rule("/r/2", providers=[lbl(2)]), rule("/r/3", providers=[lbl(3)], enabled=True)]
    wanted = [
        rule(providers=[lbl(3)], enabled=False),  # was /r/3: only enabled changes
        rule(providers=[lbl(1)]),  # /r/1 as it is
        rule(providers=[lbl(4)]),  # new
    ]
    plan = plan_rules(ALLOW, current, wanted, purge=True)
    assert [r["href"] for r in plan.keep] == ["/r/1"]
    assert [(r["href"], changes) for r, changes in plan.update] == [("/r/3", {"enabled": False})]
    assert plan.create == [wanted[2]]
    assert [r["href"] for r in plan.delete] == ["/r/2"]
    kept = plan_rules(ALLOW, current, wanted, purge=False)
    assert kept.delete == [] and sorted(r["href"] for r in kept.keep) == ["/r/1", "/r/2"]


def test_plan_without_difference_is_empty():
    current = [rule("/r/1", description="a")]
    assert not plan_rules(ALLOW, current, [rule()], purge=True)
    assert not plan_rules(ALLOW, current, [rule(description="a")], purge=True)
    assert plan_rules(ALLOW, current, [rule(description="b")], purge=True)


def test_duplicate_copies_on_the_pce_are_purged():
    plan = plan_rules(ALLOW, [rule("/r/1"), rule("/r/2")], [rule()], purge=True)
    assert [r["href"] for r in plan.keep] == ["/r/1"]
    assert [r["href"] for r in plan.delete] == ["/r/2"]


def test_two_wanted_rules_with_one_identity_are_refused():
    with pytest.raises(PceError, match=r"rules\[0\] and rules\[2\] have the same providers"):
        check_unique(ALLOW, [rule(), rule(providers=[lbl(9)]), rule(providers=[lbl(1)], description="again")])


def test_without_hrefs():
    view = {"href": "/rs/1", "name": "x", "rules": [{"href": "/r/1", "providers": ["ams"]}], "deny_rules": []}
    assert without_hrefs(view) == {"name": "x", "rules": [{"providers": ["ams"]}], "deny_rules": []}
    assert without_hrefs({}) == {}


# --- against the fake PCE ---------------------------------------------------------------------------------
@pytest.fixture
def pce(serve, tls_files):
    policy_pce = running_policy_pce(serve, tls_files)
    policy_pce.web = policy_pce.add_label("role", "web")
    policy_pce.db = policy_pce.add_label("role", "db")
    policy_pce.crm = policy_pce.add_label("app", "crm")
    policy_pce.ssh = policy_pce.add("services", name="SSH", service_ports=[{"port": 22, "proto": 6}])
    return policy_pce


@pytest.fixture
def client(pce):
    return client_from_params(pce.connection())


def web_rule(**extra):
    return {"providers": [{"role": "web"}], "consumers": ["ams"], "services": ["SSH"], **extra}


def test_rule_payload_complete_and_partial(client, pce):
    from ansible_collections.microseg.illumio.plugins.module_utils.pce.actors import PolicyTranslator

    translator = PolicyTranslator(client)
    assert rule_payload(translator, ALLOW, web_rule(description="d"), "rules[0]") == {
        "providers": [{"label": {"href": pce.web["href"]}}],
        "consumers": [AMS],
        "resolve_labels_as": {"providers": ["workloads"], "consumers": ["workloads"]},
        "ingress_services": [{"href": pce.ssh["href"]}],
        "unscoped_consumers": False,
        "description": "d",
    }
    assert rule_payload(translator, ALLOW, {"enabled": False}, partial=True) == {"enabled": False}
    with pytest.raises(PceError, match=r"rules\[0\]\.consumers is required"):
        rule_payload(translator, ALLOW, {"providers": ["ams"], "services": ["SSH"]}, "rules[0]")
    with pytest.raises(PceError, match=r"rules\[0\]\.services must name at least one service"):
        rule_payload(translator, ALLOW, web_rule(services=[]), "rules[0]")
    with pytest.raises(PceError, match="providers must name at least one actor"):
        rule_payload(translator, ALLOW, web_rule(providers=[]))
    virtual = web_rule(services=[], resolve_labels_as={"providers": ["virtual_services"]})
    assert rule_payload(translator, ALLOW, virtual)["ingress_services"] == []


def test_rule_set_is_created_then_idempotent(client, pce):
    params = {
        "name": "RS-1",
        "scopes": [[{"app": "crm"}]],
        "rules": [web_rule(), web_rule(providers=[{"role": "db"}], consumers=[{"role": "web"}])],
        "purge_rules": True,
    }
    created = RuleSets(client).ensure(params)
    assert created["changed"] is True and created["provision_pending"] is True
    rule_set = pce.find("rule_sets", "RS-1")
    assert rule_set["scopes"] == [[{"label": {"href": pce.crm["href"]}}]]
    assert len(rule_set["rules"]) == 2
    assert [r["href"] for r in created["rule_set"]["rules"]] == [r["href"] for r in rule_set["rules"]]
    writes = [(r.method, r.path.rsplit("/", 1)[-1]) for r in pce.changes()]
    assert writes == [("POST", "rule_sets"), ("POST", "sec_rules"), ("POST", "sec_rules")]

    again = RuleSets(client).ensure(params)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert len(pce.changes()) == 3


def test_bad_input_anywhere_changes_nothing(client, pce):
    existing = pce.add("rule_sets", name="RS-1")
    pce.add_rule(existing, providers=[{"label": {"href": pce.web["href"]}}], consumers=[AMS], ingress_services=[])
    params = {"name": "RS-1", "rules": [web_rule(), web_rule(consumers=[{"role": "nope"}])], "purge_rules": True}
    with pytest.raises(PceError, match=r"rules\[1\]\.consumers\[0\]: label role=nope does not exist"):
        RuleSets(client).ensure(params)
    assert pce.changes() == []


def test_rule_set_pending_deletion_is_ignored(client, pce):
    old = pce.add("rule_sets", name="RS-1")
    pce.provision()
    RuleSets(client).ensure({"name": "RS-1", "state": "absent"})
    assert old["update_type"] == "delete"
    created = RuleSets(client).ensure({"name": "RS-1"})
    assert created["changed"] is True
    assert created["rule_set"]["href"] != old["href"]
    assert RuleSets(client).ensure({"name": "RS-1"})["changed"] is False


def test_absent_reports_whether_there_is_something_to_provision(client, pce):
    pce.add("rule_sets", name="never-provisioned")
    pce.add("rule_sets", name="provisioned")
    pce.provision()
    pce.add("rule_sets", name="new")
    assert RuleSets(client).ensure({"name": "new", "state": "absent"})["provision_pending"] is False
    assert RuleSets(client).ensure({"name": "provisioned", "state": "absent"})["provision_pending"] is True
    assert RuleSets(client).ensure({"name": "provisioned", "state": "absent"})["changed"] is False


def test_two_rule_sets_with_one_name_fail(client, pce):
    pce.add("rule_sets", name="twin")
    pce.add("rule_sets", name="twin")
    with pytest.raises(PceError, match="2 rule sets are named 'twin'"):
        RuleSets(client).ensure({"name": "twin"})


def test_rules_are_read_from_sub_collections_when_not_listed_inline(client, pce, monkeypatch):
    rule_set = pce.add("rule_sets", name="RS-1")
    pce.add_rule(rule_set, providers=[AMS], consumers=[AMS], ingress_services=[tcp(22)])
    original = pce._route

    def without_inline_rules(request):
        reply = original(request)
        if request.method == "GET" and request.path.endswith("/rule_sets") and isinstance(reply.body, list):
            reply.body = [{k: v for k, v in doc.items() if k not in ("rules", "deny_rules")} for doc in reply.body]
        return reply

    monkeypatch.setattr(pce, "_route", without_inline_rules)
    found = RuleSets(client).find("RS-1")
    assert len(found["rules"]) == 1 and found["deny_rules"] == []


def test_security_rule_by_description_changes_content_in_place(client, pce):
    rule_set = pce.add("rule_sets", name="RS-1")
    existing = pce.add_rule(
        rule_set, providers=[AMS], consumers=[AMS], ingress_services=[tcp(22)], description="backup"
    )
    rules = RulesInRuleSet(client, ALLOW)
    params = {
        "rule_set": "RS-1",
        "match_by": "description",
        "description": "backup",
        "services": [{"port": 10000, "proto": "tcp"}],
    }
    result = rules.ensure(params)
    assert result["changed"] is True
    assert result["security_rule"]["href"] == existing["href"]
    assert existing["ingress_services"] == [tcp(10000)]
    assert [(r.method, r.body) for r in pce.changes()] == [("PUT", {"ingress_services": [tcp(10000)]})]
    assert RulesInRuleSet(client, ALLOW).ensure(params)["changed"] is False


def test_security_rule_description_must_be_unique(client, pce):
    rule_set = pce.add("rule_sets", name="RS-1")
    for _copy in range(2):
        pce.add_rule(rule_set, providers=[AMS], consumers=[AMS], ingress_services=[], description="dup")
    with pytest.raises(PceError, match="2 rules in rule set 'RS-1' have the description 'dup'"):
        RulesInRuleSet(client, ALLOW).ensure({"rule_set": "RS-1", "match_by": "description", "description": "dup"})


def test_rule_in_a_missing_rule_set(client, pce):
    with pytest.raises(PceError, match=r"rule set .RS-none. does not exist.*microseg.illumio.rule_set"):
        RulesInRuleSet(client, ALLOW).ensure(dict(web_rule(), rule_set="RS-none"))
    gone = RulesInRuleSet(client, ALLOW).ensure(dict(web_rule(), rule_set="RS-none", state="absent"))
    assert gone["changed"] is False


def test_deny_rule_override_flips_in_place(client, pce):
    rule_set = pce.add("rule_sets", name="RS-1")
    params = dict(web_rule(), rule_set="RS-1", match_by="content", override=False)
    created = RulesInRuleSet(client, DENY).ensure(params)
    assert created["deny_rule"]["override"] is False
    flipped = RulesInRuleSet(client, DENY).ensure(dict(params, override=True))
    assert flipped["changed"] is True
    assert flipped["diff"]["before"]["override"] is False and flipped["diff"]["after"]["override"] is True
    assert len(rule_set["deny_rules"]) == 1 and rule_set["deny_rules"][0]["override"] is True
    assert "resolve_labels_as" not in rule_set["deny_rules"][0]


def test_enforcement_boundary_needs_its_content_to_be_created(client, pce):
    with pytest.raises(PceError, match="enforcement boundary 'EB' does not exist; to create it, give consumers"):
        EnforcementBoundaries(client).ensure({"name": "EB", "providers": ["ams"]})
    assert pce.changes() == []


def test_enforcement_boundary_rename_when_both_exist_fails(client, pce):
    for name in ("EB-old", "EB-new"):
        pce.add("enforcement_boundaries", name=name, providers=[AMS], consumers=[AMS], ingress_services=[])
    with pytest.raises(PceError, match="cannot rename enforcement boundary 'EB-old' to 'EB-new': both exist"):
        EnforcementBoundaries(client).ensure({"name": "EB-old", "new_name": "EB-new"})
