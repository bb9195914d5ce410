"""Traffic `policy_decision` from the active policy: rules, deny rules, scopes, actors, services, modes.

Policy, workloads and flows go in through the API (in-process lab); decisions come back from async traffic
queries, as clients see them. A few checks call pcelab.policy_eval directly.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
from conftest import ORG
from pcelab.api.traffic import Directory, Flow, WorkloadView, parse_query, policy_decision, run_query
from pcelab.policy_eval import ActivePolicy

DRAFT = f"{ORG}/sec_policy/draft"
CSV_HEADERS = {"Content-Type": "text/csv", "X-Bulk-Traffic-Load-CSV-Version": "1"}
ANY_SERVICE = [{"proto": -1}]
PROD = {"href": "/orgs/1/labels/1", "key": "env", "value": "prod"}


def flow(src: str, dst: str, port: int, proto: int = 6) -> Flow:
    now = datetime.now(UTC).timestamp()
    return Flow(src, dst, port, proto, 1, now, now)


def created(answer) -> dict:
    assert answer.status_code == 201, answer.text
    return answer.json()


class World:
    """Labels, workloads, policy and flows of one in-process lab, and the decisions its queries report."""

    def __init__(self, client):
        self.client = client
        self.labels: dict[str, dict] = {}

    def label(self, key: str, value: str) -> dict:
        if (key, value) not in self.labels:
            self.labels[key, value] = created(self.client.post(f"{ORG}/labels", json={"key": key, "value": value}))
        return self.labels[key, value]

    def ref(self, key: str, value: str) -> dict:
        return {"label": {"href": self.label(key, value)["href"]}}

    def workload(self, name: str, addresses: list[str], labels=(), mode: str | None = "full", managed=False) -> dict:
        interfaces = [{"name": f"eth{i}", "address": address} for i, address in enumerate(addresses)]
        label_refs = [{"href": self.label(key, value)["href"]} for key, value in labels]
        if managed:
            ven = {"href": f"{ORG}/vens/{uuid.uuid4()}"}
            fields = {"hostname": name, "interfaces": interfaces, "labels": label_refs, "ven": ven, "agent": ven}
            doc = self.client.lab.create_managed_workload(1, str(uuid.uuid4()), fields)
            if mode is not None:
                assert self.client.put(doc["href"], json={"enforcement_mode": mode}).status_code == 204
            return doc
        body = {"hostname": name, "interfaces": interfaces, "labels": label_refs}
        if mode is not None:
            body["enforcement_mode"] = mode
        return created(self.client.post(f"{ORG}/workloads", json=body))

    def draft(self, kind: str, body: dict) -> dict:
        return created(self.client.post(f"{DRAFT}/{kind}", json=body))

    def rule_set(self, scopes=([],), rules=(), deny_rules=(), enabled=True, name=None) -> dict:
        body = {"name": name or f"rs-{uuid.uuid4().hex[:8]}", "scopes": list(scopes), "enabled": enabled}
        made = self.draft("rule_sets", body)
        for rule in rules:
            created(self.client.post(f"{made['href']}/sec_rules", json=rule))
        for rule in deny_rules:
            created(self.client.post(f"{made['href']}/deny_rules", json=rule))
        return made

    def provision(self) -> None:
        created(self.client.post(f"{ORG}/sec_policy", json={"update_description": "test"}))

    def decisions(self, *flows: str, **query) -> dict[tuple, str]:
        """{(src, dst, port, proto): decision} of the given CSV flow lines (uploaded first)."""
        if flows:
            answer = self.client.post(f"{ORG}/agents/bulk_traffic_flows", content="\n".join(flows), headers=CSV_HEADERS)
            assert answer.json()["num_flows_failed"] == 0, answer.text
        day = datetime.fromtimestamp(self.client.lab.now(), UTC).date().isoformat()
        body = {"start_date": day, "end_date": day, "policy_decisions": [], "max_results": 1000, **query}
        job = self.client.post(f"{ORG}/traffic_flows/async_queries", json=body)
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 10
        while (state := self.client.get(job.json()["href"]).json())["status"] != "completed":
            assert state["status"] != "failed" and time.monotonic() < deadline, state
            time.sleep(0.02)
        rows = self.client.get(state["result"]).json()
        return {
            (row["src"]["ip"], row["dst"]["ip"], row["service"]["port"], row["service"]["proto"]): row[
                "policy_decision"
            ]
            for row in rows
        }

    def decision(self, src: str, dst: str, port: int, proto: int = 6) -> str:
        return self.decisions(f"{src},{dst},{port},{proto}")[src, dst, port, proto]


def rule(providers, consumers, services=ANY_SERVICE, **fields) -> dict:
    return {"providers": providers, "consumers": consumers, "ingress_services": services, **fields}


@pytest.fixture
def world(client):
    return World(client)


# --- allow rules, scopes and actors ------------------------------------------------------------------------
def test_scoped_rule_allows_inside_its_scope_only(world):
    prod = world.ref("env", "prod")
    world.workload("web-prod", ["10.1.0.1"], [("role", "web"), ("env", "prod")])
    world.workload("db-prod", ["10.1.0.2"], [("role", "db"), ("env", "prod")])
    world.workload("web-dev", ["10.2.0.1"], [("role", "web"), ("env", "dev")])
    world.workload("db-dev", ["10.2.0.2"], [("role", "db"), ("env", "dev")])
    world.rule_set(
        scopes=[[prod]],
        rules=[rule([world.ref("role", "db")], [world.ref("role", "web")], [{"port": 5432, "proto": 6}])],
    )
    world.provision()
    found = world.decisions(
        "10.1.0.1,10.1.0.2,5432,6",  # web -> db in prod: allowed
        "10.1.0.1,10.1.0.2,5433,6",  # other port: full -> blocked
        "10.2.0.1,10.2.0.2,5432,6",  # dev: not in the scope
        "10.2.0.1,10.1.0.2,5432,6",  # dev web -> prod db: intra-scope consumers stay in prod
    )
    assert found == {
        ("10.1.0.1", "10.1.0.2", 5432, 6): "allowed",
        ("10.1.0.1", "10.1.0.2", 5433, 6): "blocked",
        ("10.2.0.1", "10.2.0.2", 5432, 6): "blocked",
        ("10.2.0.1", "10.1.0.2", 5432, 6): "blocked",
    }


def test_extra_scope_consumers_come_from_anywhere(world):
    prod = world.ref("env", "prod")
    world.workload("db-prod", ["10.1.0.2"], [("role", "db"), ("env", "prod")])
    world.workload("web-dev", ["10.2.0.1"], [("role", "web"), ("env", "dev")])
    world.workload("db-dev", ["10.2.0.2"], [("role", "db"), ("env", "dev")])
    world.rule_set(
        scopes=[[prod]],
        rules=[rule([world.ref("role", "db")], [world.ref("role", "web")], unscoped_consumers=True)],
    )
    world.provision()
    assert world.decision("10.2.0.1", "10.1.0.2", 5432) == "allowed"
    assert world.decision("10.2.0.1", "10.2.0.2", 5432) == "blocked"  # the provider must be in the scope


def test_label_group_actor_with_sub_groups_and_label_group_scope(world):
    world.workload("web", ["10.1.0.1"], [("role", "web"), ("env", "prod")])
    world.workload("api", ["10.1.0.3"], [("role", "api"), ("env", "prod")])
    world.workload("batch", ["10.1.0.4"], [("role", "batch"), ("env", "prod")])
    world.workload("db", ["10.1.0.2"], [("role", "db"), ("env", "stage")])
    inner = world.draft(
        "label_groups", {"name": "inner", "key": "role", "labels": [{"href": world.label("role", "api")["href"]}]}
    )
    front = world.draft(
        "label_groups",
        {
            "name": "front",
            "key": "role",
            "labels": [{"href": world.label("role", "web")["href"]}],
            "sub_groups": [{"href": inner["href"]}],
        },
    )
    envs = world.draft(
        "label_groups",
        {
            "name": "envs",
            "key": "env",
            "labels": [{"href": world.label("env", "prod")["href"]}, {"href": world.label("env", "stage")["href"]}],
        },
    )
    world.rule_set(
        scopes=[[{"label_group": {"href": envs["href"]}}]],
        rules=[rule([world.ref("role", "db")], [{"label_group": {"href": front["href"]}}])],
    )
    world.provision()
    found = world.decisions("10.1.0.1,10.1.0.2,5432,6", "10.1.0.3,10.1.0.2,5432,6", "10.1.0.4,10.1.0.2,5432,6")
    assert found[("10.1.0.4", "10.1.0.2", 5432, 6)] == "blocked"
    assert found[("10.1.0.1", "10.1.0.2", 5432, 6)] == found[("10.1.0.3", "10.1.0.2", 5432, 6)] == "allowed"


def test_ams_is_every_workload_within_the_scope(world):
    prod = world.ref("env", "prod")
    world.workload("a", ["10.1.0.1"], [("env", "prod")])
    world.workload("b", ["10.1.0.2"], [("env", "prod")])
    world.workload("c", ["10.2.0.1"], [("env", "dev")])
    world.rule_set(scopes=[[prod]], rules=[rule([{"actors": "ams"}], [{"actors": "ams"}], [{"port": 22, "proto": 6}])])
    world.provision()
    assert world.decision("10.1.0.1", "10.1.0.2", 22) == "allowed"
    assert world.decision("10.2.0.1", "10.1.0.2", 22) == "blocked"  # c is outside the scope
    assert world.decision("192.0.2.9", "10.1.0.2", 22) == "blocked"  # not a workload at all


def test_ip_list_consumer_minus_its_exclusion(world):
    world.workload("db", ["10.1.0.2"], [("role", "db")])
    corp = world.draft(
        "ip_lists",
        {
            "name": "corp",
            "ip_ranges": [
                {"from_ip": "192.0.2.0/24"},
                {"from_ip": "192.0.2.100", "to_ip": "192.0.2.120", "exclusion": True},
            ],
        },
    )
    world.rule_set(rules=[rule([world.ref("role", "db")], [{"ip_list": {"href": corp["href"]}}])])
    world.provision()
    found = world.decisions("192.0.2.5,10.1.0.2,5432,6", "192.0.2.110,10.1.0.2,5432,6", "198.51.100.1,10.1.0.2,5432,6")
    assert found == {
        ("192.0.2.5", "10.1.0.2", 5432, 6): "allowed",
        ("192.0.2.110", "10.1.0.2", 5432, 6): "blocked",
        ("198.51.100.1", "10.1.0.2", 5432, 6): "blocked",
    }


def test_outbound_to_an_ip_list_provider_is_judged_by_the_source(world):
    world.workload("web", ["10.1.0.1"], [("role", "web")], mode="full")
    world.workload("seen", ["10.1.0.5"], [("role", "web")], mode="visibility_only")
    dns = world.draft("ip_lists", {"name": "dns", "ip_ranges": [{"from_ip": "9.9.9.9"}]})
    world.rule_set(
        rules=[rule([{"ip_list": {"href": dns["href"]}}], [world.ref("role", "web")], [{"port": 53, "proto": 17}])]
    )
    world.provision()
    assert world.decision("10.1.0.1", "9.9.9.9", 53, 17) == "allowed"
    assert world.decision("10.1.0.1", "9.9.9.9", 443, 6) == "blocked"
    assert world.decision("10.1.0.5", "8.8.8.8", 53, 17) == "potentially_blocked"


def test_workload_actor_is_not_scoped(world):
    prod = world.ref("env", "prod")
    world.workload("db", ["10.1.0.2"], [("role", "db"), ("env", "prod")])
    jump = world.workload("jump", ["10.9.0.1"], [("env", "dev")])
    world.rule_set(scopes=[[prod]], rules=[rule([world.ref("role", "db")], [{"workload": {"href": jump["href"]}}])])
    world.provision()
    assert world.decision("10.9.0.1", "10.1.0.2", 22) == "allowed"


# --- services ----------------------------------------------------------------------------------------------------
def test_service_href_with_port_range_and_inline_services(world):
    world.workload("app", ["10.1.0.2"], [("role", "app")])
    world.workload("client", ["10.1.0.1"], [("role", "client")])
    high = world.draft("services", {"name": "high", "service_ports": [{"port": 8000, "to_port": 8099, "proto": 6}]})
    icmp = world.draft("services", {"name": "ping", "service_ports": [{"proto": 1, "icmp_type": 8}]})
    app, client = world.ref("role", "app"), world.ref("role", "client")
    world.rule_set(
        rules=[
            rule([app], [client], [{"href": high["href"]}, {"href": icmp["href"]}]),
            rule([app], [client], [{"port": 53, "proto": 17}, {"proto": 47}]),
        ]
    )
    world.provision()
    found = world.decisions(
        *(f"10.1.0.1,10.1.0.2,{port},{proto}" for port, proto in [(8000, 6), (8099, 6), (8100, 6), (8050, 17)]),
        *(f"10.1.0.1,10.1.0.2,{port},{proto}" for port, proto in [(53, 17), (53, 6), (0, 1), (0, 47), (0, 58)]),
    )
    assert {key[2:]: value for key, value in found.items()} == {
        (8000, 6): "allowed",
        (8099, 6): "allowed",
        (8100, 6): "blocked",
        (8050, 17): "blocked",
        (53, 17): "allowed",
        (53, 6): "blocked",
        (0, 1): "allowed",  # ICMP entries match by protocol: flows carry no type/code
        (0, 47): "allowed",  # a protocol without ports is the whole protocol
        (0, 58): "blocked",
    }


def test_all_services_builtin(world):
    world.workload("a", ["10.1.0.1"], [("role", "a")])
    world.workload("b", ["10.1.0.2"], [("role", "b")])
    world.rule_set(rules=[rule([world.ref("role", "b")], [world.ref("role", "a")], [{"href": f"{DRAFT}/services/1"}])])
    world.provision()
    assert world.decision("10.1.0.1", "10.1.0.2", 12345, 17) == "allowed"


# --- deny rules, precedence and enforcement modes ----------------------------------------------------------------
def test_override_deny_beats_allow_and_plain_deny_does_not(world):
    world.workload("web", ["10.1.0.1"], [("role", "web")])
    world.workload("db", ["10.1.0.2"], [("role", "db")], mode="full")
    world.workload("cache", ["10.1.0.3"], [("role", "cache")], mode="selective")
    web, db, cache = world.ref("role", "web"), world.ref("role", "db"), world.ref("role", "cache")
    world.rule_set(
        rules=[rule([db], [web]), rule([cache], [web])],
        deny_rules=[
            rule([db], [web], [{"port": 22, "proto": 6}], override=True),
            rule([cache], [web], [{"port": 6379, "proto": 6}]),
            rule([cache], [web], [{"port": 22, "proto": 6}], override=True),
        ],
    )
    world.provision()
    assert world.decision("10.1.0.1", "10.1.0.2", 22) == "blocked"
    assert world.decision("10.1.0.1", "10.1.0.2", 5432) == "allowed"
    assert world.decision("10.1.0.1", "10.1.0.3", 6379) == "allowed"  # allow beats a plain deny
    assert world.decision("10.1.0.1", "10.1.0.3", 22) == "blocked"


def test_selective_blocks_only_what_deny_rules_name(world):
    world.workload("web", ["10.1.0.1"], [("role", "web")])
    world.workload("db", ["10.1.0.2"], [("role", "db")], mode="selective")
    world.rule_set(deny_rules=[rule([world.ref("role", "db")], [{"actors": "ams"}], [{"port": 23, "proto": 6}])])
    world.provision()
    assert world.decision("10.1.0.1", "10.1.0.2", 23) == "blocked"
    assert world.decision("10.1.0.1", "10.1.0.2", 24) == "potentially_blocked"
    assert world.decision("192.0.2.1", "10.1.0.2", 23) == "potentially_blocked"  # ams names workloads only


def test_enforcement_boundary_is_a_deny_rule(world):
    world.workload("db", ["10.1.0.2"], [("env", "prod")], mode="selective")
    any_ip = {"ip_list": {"href": f"{DRAFT}/ip_lists/1"}}
    world.draft(
        "enforcement_boundaries",
        {
            "name": "prod",
            "providers": [world.ref("env", "prod")],
            "consumers": [any_ip],
            "ingress_services": [{"port": 3389, "proto": 6}],
        },
    )
    world.provision()
    assert world.decision("192.0.2.1", "10.1.0.2", 3389) == "blocked"
    assert world.decision("192.0.2.1", "10.1.0.2", 3390) == "potentially_blocked"


@pytest.mark.parametrize(
    ("mode", "managed", "unallowed", "denied"),
    [
        ("full", True, "blocked", "blocked"),
        ("full", False, "blocked", "blocked"),
        ("selective", False, "potentially_blocked", "blocked"),
        ("visibility_only", True, "potentially_blocked", "potentially_blocked"),
        ("visibility_only", False, "potentially_blocked", "potentially_blocked"),
        ("idle", True, "potentially_blocked", "potentially_blocked"),
        ("idle", False, "potentially_blocked", "potentially_blocked"),
    ],
)
def test_enforcement_modes(world, mode, managed, unallowed, denied):
    world.workload("host", ["10.1.0.2"], [("role", "db")], mode=mode, managed=managed)
    db = world.ref("role", "db")
    world.rule_set(
        rules=[
            rule([db], [{"actors": "ams"}, {"ip_list": {"href": f"{DRAFT}/ip_lists/1"}}], [{"port": 80, "proto": 6}])
        ],
        deny_rules=[rule([db], [{"ip_list": {"href": f"{DRAFT}/ip_lists/1"}}], [{"port": 23, "proto": 6}])],
    )
    world.provision()
    found = world.decisions("192.0.2.1,10.1.0.2,80,6", "192.0.2.1,10.1.0.2,81,6", "192.0.2.1,10.1.0.2,23,6")
    assert [found["192.0.2.1", "10.1.0.2", port, 6] for port in (80, 81, 23)] == ["allowed", unallowed, denied]


def test_full_without_any_rule_is_blocked(world):
    world.workload("db", ["10.1.0.2"], mode="full")
    assert world.decision("10.1.0.1", "10.1.0.2", 5432) == "blocked"


# --- only active, enabled policy counts ------------------------------------------------------------------------
def test_draft_only_rule_does_not_count_until_provisioned(world):
    world.workload("web", ["10.1.0.1"], [("role", "web")])
    world.workload("db", ["10.1.0.2"], [("role", "db")])
    made = world.rule_set()
    assert world.decision("10.1.0.1", "10.1.0.2", 5432) == "blocked"
    world.provision()
    created(
        world.client.post(f"{made['href']}/sec_rules", json=rule([world.ref("role", "db")], [world.ref("role", "web")]))
    )
    assert world.decisions()[("10.1.0.1", "10.1.0.2", 5432, 6)] == "blocked"
    world.provision()
    assert world.decisions()[("10.1.0.1", "10.1.0.2", 5432, 6)] == "allowed"


def test_disabled_rules_and_rule_sets_are_ignored(world):
    world.workload("web", ["10.1.0.1"], [("role", "web")])
    world.workload("db", ["10.1.0.2"], [("role", "db")])
    db, web = world.ref("role", "db"), world.ref("role", "web")
    world.rule_set(rules=[rule([db], [web], [{"port": 1, "proto": 6}], enabled=False)])
    world.rule_set(rules=[rule([db], [web], [{"port": 2, "proto": 6}])], enabled=False)
    world.rule_set(
        rules=[rule([db], [web], [{"port": 3, "proto": 6}])],
        deny_rules=[rule([db], [web], [{"port": 3, "proto": 6}], override=True, enabled=False)],
    )
    world.provision()
    found = world.decisions(*(f"10.1.0.1,10.1.0.2,{port},6" for port in (1, 2, 3)))
    assert [found["10.1.0.1", "10.1.0.2", port, 6] for port in (1, 2, 3)] == ["blocked", "blocked", "allowed"]


# --- addresses, unknowns, filters ------------------------------------------------------------------------------
def test_ipv6_addresses_and_ip_lists(world):
    world.workload("db6", ["10.1.0.2", "2001:db8::2"], [("role", "db")])
    world.workload("web6", ["2001:db8::1"], [("role", "web")])
    v6 = world.draft("ip_lists", {"name": "v6", "ip_ranges": [{"from_ip": "2001:db8:f::/48"}]})
    db = world.ref("role", "db")
    world.rule_set(
        rules=[
            rule([db], [world.ref("role", "web")], [{"port": 443, "proto": 6}]),
            rule([db], [{"ip_list": {"href": v6["href"]}}], [{"port": 8443, "proto": 6}]),
        ]
    )
    world.provision()
    found = world.decisions(
        "2001:db8::1,2001:db8::2,443,6", "2001:db8:f::9,2001:db8::2,8443,6", "2001:db8:e::9,2001:db8::2,8443,6"
    )
    assert found == {
        ("2001:db8::1", "2001:db8::2", 443, 6): "allowed",
        ("2001:db8:f::9", "2001:db8::2", 8443, 6): "allowed",
        ("2001:db8:e::9", "2001:db8::2", 8443, 6): "blocked",
    }


def test_neither_side_a_workload_is_unknown(world):
    world.rule_set(rules=[rule([{"actors": "ams"}], [{"ip_list": {"href": f"{DRAFT}/ip_lists/1"}}])])
    world.provision()
    assert world.decision("192.0.2.1", "192.0.2.2", 80) == "unknown"


def test_a_workload_without_enforcement_mode_is_allowed_or_unknown_unless_managed():
    def view(managed):
        return WorkloadView("/orgs/1/workloads/x", "x", None, "linux", None, (PROD,), managed)

    policy = ActivePolicy(
        {
            "rule_sets": [
                {"scopes": [[]], "rules": [rule([{"actors": "ams"}], [{"actors": "ams"}], [{"port": 80, "proto": 6}])]}
            ]
        }
    )
    for managed, unallowed in ((False, "unknown"), (True, "potentially_blocked")):
        directory = Directory(workloads_by_ip={"10.1.0.2": view(managed)}, policy=policy)
        assert policy_decision(flow("10.1.0.2", "10.1.0.2", 80), directory) == "allowed"
        assert policy_decision(flow("10.1.0.2", "10.1.0.2", 81), directory) == unallowed
        assert policy_decision(flow("192.0.2.1", "10.1.0.2", 80), directory) == unallowed


def test_policy_decisions_filter_uses_the_evaluated_decision(world):
    world.workload("web", ["10.1.0.1"], [("role", "web")], mode="visibility_only")
    world.workload("db", ["10.1.0.2"], [("role", "db")], mode="full")
    world.rule_set(rules=[rule([world.ref("role", "db")], [world.ref("role", "web")], [{"port": 5432, "proto": 6}])])
    world.provision()
    flows = ("10.1.0.1,10.1.0.2,5432,6", "10.1.0.1,10.1.0.2,22,6", "10.1.0.2,10.1.0.1,80,6", "192.0.2.1,192.0.2.2,1,6")
    everything = world.decisions(*flows)
    assert sorted(everything.values()) == ["allowed", "blocked", "potentially_blocked", "unknown"]
    for decision in ("allowed", "blocked", "potentially_blocked", "unknown"):
        only = world.decisions(policy_decisions=[decision])
        assert only == {key: value for key, value in everything.items() if value == decision}
    both = world.decisions(policy_decisions=["allowed", "blocked"])
    assert sorted(both.values()) == ["allowed", "blocked"]


# --- the evaluator as a function ---------------------------------------------------------------------------
def test_many_workloads_and_flows_stay_fast():
    """20,000 workloads, 100 rule sets, 50,000 flows: decisions are indexed, not rules x workloads per flow."""
    views = {}
    for n in range(20_000):
        label = f"/orgs/1/labels/{n % 200}"
        views[f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"] = WorkloadView(
            f"/orgs/1/workloads/{n}", None, None, "linux", "full", ({"href": label, "key": "app", "value": "x"},), True
        )
    rule_sets = [
        {
            "href": f"/orgs/1/sec_policy/active/rule_sets/{n}",
            "enabled": True,
            "scopes": [[{"label": {"href": f"/orgs/1/labels/{n}"}}]],
            "rules": [
                {
                    "href": f"/orgs/1/sec_policy/active/rule_sets/{n}/sec_rules/{n}",
                    "enabled": True,
                    "providers": [{"actors": "ams"}],
                    "consumers": [{"label": {"href": f"/orgs/1/labels/{n + 100}"}}],
                    "unscoped_consumers": True,
                    "ingress_services": [{"port": 443, "proto": 6}],
                }
            ],
        }
        for n in range(100)
    ]
    directory = Directory(workloads_by_ip=views, policy=ActivePolicy({"rule_sets": rule_sets}))
    ips = list(views)
    now = datetime.now(UTC).timestamp()
    pairs = [((n * 7 + 100 + n // 20_000) % 20_000, n % 20_000) for n in range(50_000)]  # all different
    flows = [Flow(ips[src], ips[dst], 443, 6, 1, now, now) for src, dst in pairs]
    day = datetime.now(UTC).date().isoformat()
    started = time.monotonic()
    rows = run_query(parse_query({"start_date": day, "end_date": day, "max_results": 100_000}), flows, directory)
    assert time.monotonic() - started < 20
    assert len(rows) == 50_000
    counts = {}
    for row in rows:
        counts[row["policy_decision"]] = counts.get(row["policy_decision"], 0) + 1
    # dst n (app n % 200) is in scope of rule set n % 200 when < 100; the consumer must carry app n + 100.
    expected_allowed = sum(1 for src, dst in pairs if dst % 200 < 100 and src % 200 == dst % 200 + 100)
    assert counts.get("allowed", 0) == expected_allowed > 0
    assert counts["blocked"] == 50_000 - expected_allowed
