"""Draft/active policy objects, rules, deny rules and provisioning (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ORG

DRAFT = f"{ORG}/sec_policy/draft"
ACTIVE = f"{ORG}/sec_policy/active"
SAMPLES = Path(__file__).resolve().parent / "pce_samples"


def created(answer):
    assert answer.status_code == 201, answer.text
    return answer.json()


def refused(answer, token=None, status=406):
    assert answer.status_code == status, answer.text
    if token:
        assert answer.json()[0]["token"] == token, answer.text
    return answer.json()[0]["message"]


@pytest.fixture
def labels(client):
    def make(key, value):
        return created(client.post(f"{ORG}/labels", json={"key": key, "value": value}))

    return {
        "web": make("role", "Web"),
        "db": make("role", "DB"),
        "prod": make("env", "Prod"),
        "paris": make("loc", "Paris"),
    }


def ip_list(client, name="Corp", ranges=None):
    body = {"name": name, "ip_ranges": ranges or [{"from_ip": "10.0.0.0/8"}]}
    return created(client.post(f"{DRAFT}/ip_lists", json=body))


def rule_set(client, name, scopes):
    return created(client.post(f"{DRAFT}/rule_sets", json={"name": name, "scopes": scopes}))


def test_builtin_any_ip_list_and_all_services_exist_in_draft_and_active(client):
    for base in (DRAFT, ACTIVE):
        any_list = client.get(f"{base}/ip_lists/1").json()
        assert any_list["name"] == "Any (0.0.0.0/0 and ::/0)"
        assert [entry["from_ip"] for entry in any_list["ip_ranges"]] == ["0.0.0.0/0", "::/0"]
        assert client.get(f"{base}/services/1").json()["service_ports"] == [{"proto": -1}]
    assert refused(client.delete(f"{DRAFT}/ip_lists/1"), "builtin_object_read_only")
    assert client.get(f"{ORG}/sec_policy/pending").json() == {}


def test_ip_list_shape_and_validation(client):
    made = ip_list(client, "Ranges", [
        {"from_ip": "192.168.1.1", "to_ip": "192.168.1.9", "description": "lab"},
        {"from_ip": "10.1.0.0/16", "exclusion": True},
        {"from_ip": "2001:db8::/32"},
    ])  # fmt: skip
    sample_keys = set(json.loads((SAMPLES / "ip_lists.json").read_text())[0])
    assert sample_keys <= set(made)
    assert made["href"] == f"{DRAFT}/ip_lists/2" and made["update_type"] == "create"
    assert made["ip_ranges"][0] == {
        "from_ip": "192.168.1.1",
        "to_ip": "192.168.1.9",
        "description": "lab",
        "exclusion": False,
    }
    for bad in (
        {"from_ip": "300.1.1.1"},
        {"from_ip": "10.0.0.1/8"},
        {"from_ip": "10.0.0.9", "to_ip": "10.0.0.1"},
        {"from_ip": "10.0.0.0/8", "to_ip": "10.0.0.9"},
        {"from_ip": "10.0.0.1", "to_ip": "::1"},
        {},
    ):
        refused(client.post(f"{DRAFT}/ip_lists", json={"name": "Bad", "ip_ranges": [bad]}), "input_validation_error")
    fqdns = created(client.post(f"{DRAFT}/ip_lists", json={"name": "Names", "fqdns": [{"fqdn": "*.example.com"}]}))
    assert fqdns["fqdns"] == [{"fqdn": "*.example.com"}]
    refused(client.post(f"{DRAFT}/ip_lists", json={"name": "N2", "fqdns": [{"fqdn": "bad name!"}]}))


def test_names_are_unique_per_type_in_draft(client):
    ip_list(client, "Same")
    refused(client.post(f"{DRAFT}/ip_lists", json={"name": "Same"}), "name_must_be_unique")
    created(client.post(f"{DRAFT}/services", json={"name": "Same"}))


def test_name_filter_is_partial(client):
    ip_list(client, "Office Paris")
    ip_list(client, "Office Lyon")
    ip_list(client, "Datacenter")
    names = [item["name"] for item in client.get(f"{DRAFT}/ip_lists", params={"name": "office"}).json()]
    assert names == ["Office Paris", "Office Lyon"]


def test_services_ports_and_validation(client):
    service = created(client.post(f"{DRAFT}/services", json={
        "name": "Web", "service_ports": [{"port": 80, "to_port": 90, "proto": 6}, {"proto": 1, "icmp_type": 8}],
        "windows_services": [{"service_name": "w3svc", "port": 443, "proto": 6}],
    }))  # fmt: skip
    assert service["service_ports"] == [{"proto": 6, "port": 80, "to_port": 90}, {"proto": 1, "icmp_type": 8}]
    assert service["windows_services"] == [{"service_name": "w3svc", "proto": 6, "port": 443}]
    for bad in (
        {"port": 80},
        {"port": 70000, "proto": 6},
        {"port": 90, "to_port": 80, "proto": 6},
        {"proto": 6, "icmp_type": 3},
        {"proto": 1, "port": 5},
        {"proto": "tcp"},
    ):
        refused(client.post(f"{DRAFT}/services", json={"name": "Bad", "service_ports": [bad]}))


def test_label_groups_expand_and_refuse_key_mismatch_and_cycles(client, labels):
    inner = created(client.post(f"{DRAFT}/label_groups", json={
        "name": "Tiers", "key": "role", "labels": [{"href": labels["web"]["href"]}]}))  # fmt: skip
    assert inner["href"].startswith(f"{DRAFT}/label_groups/") and len(inner["href"].rsplit("/", 1)[1]) == 36
    assert inner["labels"] == [{"href": labels["web"]["href"], "key": "role", "value": "Web"}]
    outer = created(client.post(f"{DRAFT}/label_groups", json={
        "name": "All tiers", "key": "role", "labels": [{"href": labels["db"]["href"]}],
        "sub_groups": [{"href": inner["href"]}]}))  # fmt: skip
    assert outer["sub_groups"] == [{"href": inner["href"], "name": "Tiers"}]
    assert client.lab.label_group_members(1, outer["href"]) == {labels["web"]["href"], labels["db"]["href"]}
    refused(client.put(inner["href"], json={"sub_groups": [{"href": outer["href"]}]}), "label_group_cycle")
    refused(
        client.post(
            f"{DRAFT}/label_groups", json={"name": "Mixed", "key": "role", "labels": [{"href": labels["prod"]["href"]}]}
        ),
        "label_group_key_mismatch",
    )
    refused(client.put(inner["href"], json={"key": "env"}), "label_group_key_immutable")
    refused(client.delete(inner["href"]), "object_in_use")
    refused(client.delete(labels["web"]["href"]), "label_in_use")


def test_rule_set_with_rules_deny_rules_and_references(client, labels):
    corp = ip_list(client)
    service = created(
        client.post(f"{DRAFT}/services", json={"name": "HTTPS", "service_ports": [{"port": 443, "proto": 6}]})
    )
    scope = [{"label": {"href": labels["prod"]["href"]}}, {"label": {"href": labels["paris"]["href"]}}]
    made = rule_set(client, "RS-Web", [scope])
    assert made["scopes"] == [scope] and made["caps"] == ["write", "provision"] and made["rules"] == []
    rule = created(client.post(f"{made['href']}/sec_rules", json={
        "providers": [{"label": {"href": labels["web"]["href"]}}],
        "consumers": [{"actors": "ams"}, {"ip_list": {"href": corp["href"]}}],
        "ingress_services": [{"href": service["href"]}, {"port": 8080, "proto": 6}],
    }))  # fmt: skip
    sample = json.loads((SAMPLES / "rules.json").read_text())[0]
    assert set(sample) <= set(rule)
    assert rule["resolve_labels_as"] == {"providers": ["workloads"], "consumers": ["workloads"]}
    assert rule["href"].startswith(f"{made['href']}/sec_rules/")
    deny = created(client.post(f"{made['href']}/deny_rules", json={
        "providers": [{"actors": "ams"}], "consumers": [{"ip_list": {"href": corp["href"]}}],
        "ingress_services": [{"proto": 17, "port": 53}], "override": True}))  # fmt: skip
    assert deny["override"] is True and "/deny_rules/" in deny["href"]
    shown = client.get(made["href"]).json()
    assert [item["href"] for item in shown["rules"]] == [rule["href"]]
    assert [item["href"] for item in shown["deny_rules"]] == [deny["href"]]
    assert client.put(rule["href"], json={"enabled": False, "description": "off"}).status_code == 204
    assert client.get(rule["href"]).json()["enabled"] is False
    assert client.delete(deny["href"]).status_code == 204
    assert client.get(deny["href"]).status_code == 404
    refused(client.delete(corp["href"]), "object_in_use")


@pytest.mark.parametrize(
    ("change", "token"),
    [
        ({"providers": [{"label": {"href": "/orgs/1/labels/999"}}]}, "invalid_uri"),
        ({"consumers": [{"ip_list": {"href": "/orgs/1/sec_policy/draft/ip_lists/999"}}]}, "invalid_uri"),
        ({"consumers": [{"ip_list": {"href": "/orgs/1/sec_policy/active/ip_lists/999"}}]}, "invalid_uri"),
        ({"ingress_services": [{"href": "/orgs/1/sec_policy/draft/services/999"}]}, "invalid_uri"),
        ({"providers": [{"workload": {"href": "/orgs/1/workloads/nope"}}]}, "invalid_uri"),
        ({"providers": [{"actors": "everything"}]}, "input_validation_error"),
        ({"providers": []}, "input_validation_error"),
        ({"network_type": "wifi"}, "input_validation_error"),
        ({"enabled": "yes"}, "input_validation_error"),
        ({"resolve_labels_as": {"providers": [], "consumers": ["workloads"]}}, "input_validation_error"),
        ({"colour": "red"}, "input_validation_error"),
    ],
)
def test_bad_rules_are_refused(client, labels, change, token):
    made = rule_set(client, "RS", [[]])
    body = {"providers": [{"actors": "ams"}], "consumers": [{"actors": "ams"}], "ingress_services": [{"proto": -1}]}
    refused(client.post(f"{made['href']}/sec_rules", json={**body, **change}), token)


def test_rule_set_scope_checks(client, labels):
    refused(client.post(f"{DRAFT}/rule_sets", json={"name": "No scope"}), "input_validation_error")
    two_roles = [{"label": {"href": labels["web"]["href"]}}, {"label": {"href": labels["db"]["href"]}}]
    refused(client.post(f"{DRAFT}/rule_sets", json={"name": "X", "scopes": [two_roles]}), "scope_key_not_unique")
    refused(
        client.post(f"{DRAFT}/rule_sets", json={"name": "X", "scopes": [[{"label": {"href": "/orgs/1/labels/77"}}]]}),
        "invalid_uri",
    )


def test_enforcement_boundaries(client, labels):
    made = created(client.post(f"{DRAFT}/enforcement_boundaries", json={
        "name": "Block prod from dev", "providers": [{"label": {"href": labels["prod"]["href"]}}],
        "consumers": [{"actors": "ams"}], "ingress_services": [{"proto": 6, "port": 22}]}))  # fmt: skip
    assert made["href"] == f"{DRAFT}/enforcement_boundaries/1" and made["network_type"] == "brn"
    refused(client.post(f"{DRAFT}/enforcement_boundaries", json={"name": "Incomplete"}), "input_validation_error")


def test_active_policy_is_read_only(client):
    assert refused(client.post(f"{ACTIVE}/ip_lists", json={"name": "x"}), status=405)
    assert refused(client.put(f"{ACTIVE}/ip_lists/1", json={"name": "x"}), status=405)
    assert refused(client.delete(f"{ACTIVE}/services/1"), status=405)


def test_provision_everything_pending(client, labels):
    corp = ip_list(client)
    made = rule_set(client, "RS-All", [[{"label": {"href": labels["prod"]["href"]}}]])
    client.post(f"{made['href']}/sec_rules", json={
        "providers": [{"actors": "ams"}], "consumers": [{"ip_list": {"href": corp["href"]}}],
        "ingress_services": [{"proto": -1}]})  # fmt: skip
    client.post(f"{ORG}/workloads", json={"hostname": "in-scope", "labels": [{"href": labels["prod"]["href"]}]})
    client.post(f"{ORG}/workloads", json={"hostname": "out-of-scope"})
    pending = client.get(f"{ORG}/sec_policy/pending").json()
    assert {kind: [item["href"] for item in items] for kind, items in pending.items()} == {
        "ip_lists": [corp["href"]], "rule_sets": [made["href"]]}  # fmt: skip
    assert pending["rule_sets"][0]["update_type"] == "create"
    version = created(client.post(f"{ORG}/sec_policy", json={"update_description": "first"}))
    assert version["href"] == f"{ORG}/sec_policy/1" and version["version"] == 1
    assert version["commit_message"] == "first" and version["workloads_affected"] == 1
    assert version["object_counts"]["ip_lists"] == 2 and version["object_counts"]["rule_sets"] == 1
    active = client.get(made["href"].replace("/draft/", "/active/")).json()
    assert active["href"] == made["href"].replace("/draft/", "/active/") and active["update_type"] is None
    assert active["rules"][0]["consumers"] == [{"ip_list": {"href": corp["href"].replace("/draft/", "/active/")}}]
    assert active["rules"][0]["update_type"] is None
    assert client.get(made["href"]).json()["update_type"] is None
    assert client.get(f"{ORG}/sec_policy/pending").json() == {}
    refused(client.post(f"{ORG}/sec_policy", json={"update_description": "again"}), "nothing_to_provision")
    assert [item["version"] for item in client.get(f"{ORG}/sec_policy").json()] == [1]
    assert client.get(f"{ORG}/sec_policy/1").json() == version
    assert client.get(f"{ORG}/sec_policy/9").status_code == 404
    assert any(event["event_type"] == "sec_policy.create" for event in client.get(f"{ORG}/events").json())


def test_change_subset_needs_its_dependencies(client, labels):
    corp = ip_list(client)
    other = ip_list(client, "Other")
    made = rule_set(client, "RS-Sub", [[]])
    client.post(f"{made['href']}/sec_rules", json={
        "providers": [{"actors": "ams"}], "consumers": [{"ip_list": {"href": corp["href"]}}],
        "ingress_services": [{"proto": -1}]})  # fmt: skip
    message = refused(
        client.post(f"{ORG}/sec_policy", json={"change_subset": {"rule_sets": [{"href": made["href"]}]}}),
        "provision_dependency_missing",
    )
    assert corp["href"] in message
    subset = {"rule_sets": [{"href": made["href"]}], "ip_lists": [{"href": corp["href"]}]}
    version = created(client.post(f"{ORG}/sec_policy", json={"update_description": "subset", "change_subset": subset}))
    assert version["object_counts"]["ip_lists"] == 2  # Any + Corp; Other stays a draft
    pending = client.get(f"{ORG}/sec_policy/pending").json()
    assert [item["href"] for item in pending["ip_lists"]] == [other["href"]]
    refused(
        client.post(f"{ORG}/sec_policy", json={"change_subset": {"ip_lists": [{"href": corp["href"]}]}}),
        "not_pending_change",
    )
    refused(client.post(f"{ORG}/sec_policy", json={"change_subset": {"widgets": []}}), "input_validation_error")


def test_updates_and_deletions_go_through_pending(client):
    corp = ip_list(client)
    client.post(f"{ORG}/sec_policy", json={"update_description": "create"})
    assert client.put(corp["href"], json={"description": "changed"}).status_code == 204
    assert client.get(corp["href"]).json()["update_type"] == "update"
    client.post(f"{ORG}/sec_policy", json={})
    assert client.get(corp["href"].replace("/draft/", "/active/")).json()["description"] == "changed"
    assert client.delete(corp["href"]).status_code == 204
    pending_delete = client.get(corp["href"]).json()
    assert pending_delete["update_type"] == "delete" and pending_delete["deleted_at"]
    assert corp["href"] in [item["href"] for item in client.get(f"{DRAFT}/ip_lists").json()]
    refused(client.delete(corp["href"]), "already_deleted")
    refused(client.put(corp["href"], json={"description": "x"}), "already_deleted")
    created(client.post(f"{ORG}/sec_policy", json={"update_description": "delete"}))
    assert client.get(corp["href"]).status_code == 404
    assert client.get(corp["href"].replace("/draft/", "/active/")).status_code == 404


def test_deleting_a_never_provisioned_draft_removes_it(client):
    corp = ip_list(client, "Temp")
    assert client.delete(corp["href"]).status_code == 204
    assert client.get(corp["href"]).status_code == 404
    refused(client.delete(corp["href"]), "not_found", status=404)
    assert client.get(f"{ORG}/sec_policy/pending").json() == {}


def test_deleting_a_used_object_from_active_needs_the_user_provisioned_too(client):
    corp = ip_list(client)
    made = rule_set(client, "RS-Dep", [[]])
    client.post(f"{made['href']}/sec_rules", json={
        "providers": [{"actors": "ams"}], "consumers": [{"ip_list": {"href": corp["href"]}}],
        "ingress_services": [{"proto": -1}]})  # fmt: skip
    client.post(f"{ORG}/sec_policy", json={})
    client.delete(made["href"])  # pending deletion of the rule set frees the IP list in draft
    assert client.delete(corp["href"]).status_code == 204
    subset = {"ip_lists": [{"href": corp["href"]}]}
    refused(client.post(f"{ORG}/sec_policy", json={"change_subset": subset}), "provision_dependency_missing")
    created(client.post(f"{ORG}/sec_policy", json={"change_subset": {**subset, "rule_sets": [{"href": made["href"]}]}}))
    assert client.get(f"{ACTIVE}/rule_sets").json() == []


def test_async_policy_collection(client):
    ip_list(client, "One")
    answer = client.get(f"{DRAFT}/ip_lists", headers={"Prefer": "respond-async"}, params={"name": "one"})
    assert answer.status_code == 202
    from test_async import wait_for_datafile

    assert [item["name"] for item in wait_for_datafile(client, answer)] == ["One"]


def test_another_org_id_gets_its_own_builtins():
    from pcelab.app import build_app
    from pcelab.core import Lab
    from starlette.testclient import TestClient

    core = Lab(":memory:", org_id=3)
    core.add_api_key("u", "s")
    with TestClient(build_app(core), base_url="https://testserver/api/v2") as other:
        other.auth = ("u", "s")
        assert (
            other.get("/orgs/3/sec_policy/active/ip_lists/1").json()["href"] == "/orgs/3/sec_policy/active/ip_lists/1"
        )
        assert other.get("/orgs/1/labels").status_code == 404
    core.close()


def test_rule_collections_in_draft_and_active(client, labels):
    made = rule_set(client, "RS-List", [[]])
    body = {"providers": [{"actors": "ams"}], "consumers": [{"actors": "ams"}], "ingress_services": [{"proto": -1}]}
    first = created(client.post(f"{made['href']}/sec_rules", json=body))
    second = created(client.post(f"{made['href']}/sec_rules", json={**body, "description": "two"}))
    listed = client.get(f"{made['href']}/sec_rules")
    assert [rule["href"] for rule in listed.json()] == [first["href"], second["href"]]
    assert listed.headers["X-Total-Count"] == "2"
    active_rules = made["href"].replace("/draft/", "/active/") + "/sec_rules"
    assert client.get(active_rules).status_code == 404  # not provisioned yet
    client.post(f"{ORG}/sec_policy", json={})
    assert [rule["description"] for rule in client.get(active_rules).json()] == ["", "two"]
    assert client.post(active_rules, json=body).status_code == 405
    client.put(second["href"], json={"description": "changed"})
    assert client.get(second["href"]).json()["update_type"] == "update"
    assert client.get(made["href"]).json()["update_type"] == "update"
    events = [event["event_type"] for event in client.get(f"{ORG}/events").json()]
    assert events[0] == "sec_rule.update" and "rule_set.create" in events


def test_rules_given_inline_with_the_rule_set_are_created_and_replaced(client, labels):
    web = {"label": {"href": labels["web"]["href"]}}
    inline = {"providers": [web], "consumers": [{"actors": "ams"}], "ingress_services": [{"port": 22, "proto": 6}]}
    made = created(client.post(f"{DRAFT}/rule_sets", json={"name": "RS-Inline", "scopes": [[]], "rules": [inline]}))
    assert len(made["rules"]) == 1
    assert made["rules"][0]["href"].startswith(f"{made['href']}/sec_rules/")
    assert made["rules"][0]["ingress_services"] == [{"port": 22, "proto": 6}]
    listed = client.get(f"{made['href']}/sec_rules").json()
    assert [rule["href"] for rule in listed] == [made["rules"][0]["href"]]
    replaced = dict(inline, ingress_services=[{"port": 443, "proto": 6}])
    assert client.put(made["href"], json={"rules": [replaced]}).status_code == 204
    rules = client.get(made["href"]).json()["rules"]
    assert [rule["ingress_services"] for rule in rules] == [[{"port": 443, "proto": 6}]]
    bad = dict(inline, providers=[{"label": {"href": "/orgs/1/labels/999999"}}])
    refused(client.post(f"{DRAFT}/rule_sets", json={"name": "RS-Bad", "scopes": [[]], "rules": [bad]}))


def test_an_active_href_names_the_same_object_and_only_once_provisioned(client):
    """The SDK's documented examples name pce.get_default_ip_list(), an active href, in draft rules."""
    rule_set = client.post(f"{ORG}/sec_policy/draft/rule_sets", json={"name": "RS-active-refs", "scopes": [[]]}).json()
    ip_list = client.post(
        f"{ORG}/sec_policy/draft/ip_lists", json={"name": "new", "ip_ranges": [{"from_ip": "10.1.0.0/16"}]}
    )
    rule = {"providers": [{"actors": "ams"}], "ingress_services": [{"proto": -1}]}
    active_any = {"ip_list": {"href": f"{ORG}/sec_policy/active/ip_lists/1"}}
    made = client.post(f"{rule_set['href']}/sec_rules", json={**rule, "consumers": [active_any]})
    assert made.status_code == 201, made.text
    assert made.json()["consumers"] == [{"ip_list": {"href": f"{ORG}/sec_policy/draft/ip_lists/1"}}]
    not_yet = {"ip_list": {"href": ip_list.json()["href"].replace("/draft/", "/active/")}}
    refused = client.post(f"{rule_set['href']}/sec_rules", json={**rule, "consumers": [not_yet]})
    assert refused.status_code == 406 and refused.json()[0]["token"] == "invalid_uri"
