"""flow_query against a fake PCE: the query sent, the flows returned flat, counts, check mode and actor forms."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce import traffic
from ansible_collections.microseg.illumio.plugins.modules import flow_query
from fake_pce_traffic import start_traffic_pce
from module_runner import run_module

BASE = 1795430000


@pytest.fixture
def pce(tls_files):
    pce, server = start_traffic_pce(tls_files)
    pce.polls_before_done = 3
    for i in range(20):
        pce.flows.append((f"10.5.0.{i + 1}", "10.6.0.1", 443 if i % 2 else 22, 6, i + 1, BASE + i, BASE + 60 + i))
    pce.flows.append(("10.5.0.1", "10.6.0.1", 22, 6, 5, BASE + 100, BASE + 200))  # merged with the first
    pce.flows.append(("192.0.2.1", "10.6.0.1", 443, 6, 1, BASE - 9000, BASE - 8000))  # outside the window
    yield pce
    server.shutdown()
    server.server_close()


def query(pce, check_mode=False, **args):
    args.setdefault("start_date", traffic.iso(BASE - 10))
    args.setdefault("end_date", traffic.iso(BASE + 3600))
    return run_module(flow_query.main, pce.connection(**args), check_mode=check_mode)


def test_returns_flat_flows_and_counts(pce):
    result = query(pce, sources={"include": ["10.5.0.0/24"]})
    assert result["changed"] is False
    assert result["summary"]["flows"] == 20
    assert result["summary"]["connections"] == sum(range(1, 21)) + 5
    assert result["summary"]["by_policy_decision"]["unknown"] == 20
    assert result["summary"]["truncated"] is False
    merged = next(flow for flow in result["flows"] if flow["src_ip"] == "10.5.0.1")
    assert merged == {
        "src_ip": "10.5.0.1",
        "src_hostname": None,
        "src_workload": None,
        "src_labels": {},
        "dst_ip": "10.6.0.1",
        "dst_hostname": "db.example",
        "dst_workload": "/orgs/1/workloads/w1",
        "dst_labels": {"role": "db"},
        "port": 22,
        "proto": 6,
        "proto_name": "tcp",
        "num_connections": 6,
        "policy_decision": "unknown",
        "flow_direction": "outbound",
        "first_detected": traffic.iso(BASE),
        "last_detected": traffic.iso(BASE + 200),
    }
    [sent] = pce.query_bodies
    assert sent["sources"] == {"include": [[{"ip_address": "10.5.0.0/24"}]], "exclude": []}
    assert result["query_href"].startswith("/orgs/1/traffic_flows/async_queries/")


def test_services_filter_and_check_mode_still_queries(pce):
    result = query(pce, check_mode=True, services=[{"port": 443, "proto": "tcp"}], max_results=5)
    assert result["summary"]["flows"] == 5
    assert result["summary"]["truncated"] is True
    assert {flow["port"] for flow in result["flows"]} == {443}
    assert pce.query_bodies[0]["services"]["include"] == [{"port": 443, "proto": 6}]


def test_since_builds_a_window_up_to_now(pce):
    result = query(pce, start_date=None, end_date=None, since=600)
    body = result["query"]
    assert body["start_date"] < body["end_date"]
    assert result["summary"]["flows"] == 0


def test_actor_forms():
    class Labels:
        @staticmethod
        def href(key, value):
            return f"/orgs/1/labels/{key}-{value}"

    side = traffic.actor_side(
        {
            "include": [
                "role:web",
                ["env:prod", {"ip": "10.0.0.0/8"}],
                "/orgs/1/workloads/abc",
                {"label": {"key": "app", "value": "crm"}},
                "ams",
                "2001:db8::1",
            ],
            "exclude": [{"ip_list": "/orgs/1/sec_policy/draft/ip_lists/4"}],
        },
        Labels(),
    )
    assert side == {
        "include": [
            [{"label": {"href": "/orgs/1/labels/role-web"}}],
            [{"label": {"href": "/orgs/1/labels/env-prod"}}, {"ip_address": "10.0.0.0/8"}],
            [{"workload": {"href": "/orgs/1/workloads/abc"}}],
            [{"label": {"href": "/orgs/1/labels/app-crm"}}],
            [{"actors": "ams"}],
            [{"ip_address": "2001:db8::1"}],
        ],
        "exclude": [{"ip_list": {"href": "/orgs/1/sec_policy/draft/ip_lists/4"}}],
    }


def test_failed_query_is_reported(pce):
    pce.queries_down = True
    result = query(pce)
    assert result["failed"] is True
    assert "503" in result["msg"]
