"""ven_info against the fake PCE: selecting VENs by name, href, workload and filters; health and counts."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.modules import ven_info
from fake_pce_vens import start_ven_pce
from module_runner import run_module

MISSED_HEARTBEATS = {
    "first_reported_timestamp": "2022-08-01T17:31:40.669Z",
    "latest_event": {
        "notification_type": "agent.missed_heartbeats",
        "severity": "warning",
        "href": "/orgs/1/events/0d2cec5f-5025-4e62-b867-b6e607397105",
        "info": {"agent": {"name": None, "hostname": "db1.example.com", "href": "/orgs/1/agents/16"}},
        "timestamp": "2022-08-01T17:31:40.669Z",
    },
}


@pytest.fixture
def pce(serve, tls_files):
    pce = start_ven_pce(serve, tls_files)
    pce.add_ven("web1.example.com", labels={"role": "web", "env": "prod"})
    pce.add_ven("web2.example.com", version="23.2.20-200", labels={"role": "web", "env": "dev"})
    pce.add_ven("db1.example.com", labels={"role": "db", "env": "prod"}, conditions=[MISSED_HEARTBEATS])
    pce.add_ven("db2.example.com", status="suspended", labels={"role": "db", "env": "prod"})
    return pce


def info(pce, check_mode=False, **args):
    return run_module(ven_info.main, pce.connection(**args), check_mode=check_mode)


def hostnames(result):
    return [ven["hostname"] for ven in result["vens"]]


def test_all_vens_with_counts(pce):
    result = info(pce)
    assert result["changed"] is False
    assert hostnames(result) == ["db1.example.com", "db2.example.com", "web1.example.com", "web2.example.com"]
    assert result["summary"] == {
        "total": 4,
        "by_version": {"23.2.10-100": 3, "23.2.20-200": 1},
        "by_status": {"active": 3, "suspended": 1},
        "by_health": {"healthy": 3, "warning": 1},
    }
    assert result["not_found"] == {"hostnames": [], "hrefs": [], "workload_hrefs": []}


def test_one_ven_in_user_form(pce):
    [shown] = info(pce, hostnames=["web1.example.com"])["vens"]
    ven = pce.ven("web1.example.com")
    assert shown["href"] == ven["href"]
    assert shown["version"] == "23.2.10-100"
    assert shown["status"] == "active"
    assert shown["online"] is True
    assert shown["health"] == "healthy"
    assert shown["conditions"] == []
    assert shown["labels"] == {"role": "web", "env": "prod"}
    assert shown["workload_hrefs"] == [ven["workloads"][0]["href"]]
    assert shown["workload_href"] == ven["workloads"][0]["href"]
    assert shown["last_heartbeat_at"] == "2026-01-01T00:00:00.000Z"
    assert "/orgs/1/labels" not in json.dumps(shown["labels"])


def test_hostnames_are_exact_and_unknown_ones_reported(pce):
    result = info(pce, hostnames=["web1", "web1.example.com", "nope.example.com"])
    assert hostnames(result) == ["web1.example.com"]
    assert result["not_found"]["hostnames"] == ["nope.example.com", "web1"]
    assert "failed" not in result


def test_by_href_and_by_workload(pce):
    web2 = pce.ven("web2.example.com")
    db1 = pce.ven("db1.example.com")
    result = info(pce, hrefs=[web2["href"], "/orgs/1/vens/0000"], workload_hrefs=[db1["workloads"][0]["href"]])
    assert hostnames(result) == ["db1.example.com", "web2.example.com"]
    assert result["not_found"]["hrefs"] == ["/orgs/1/vens/0000"]


def test_label_filter_goes_to_the_pce(pce):
    result = info(pce, labels={"role": "db", "env": "prod"})
    assert hostnames(result) == ["db1.example.com", "db2.example.com"]
    [listing] = [r for r in pce.requests if r.path == "/api/v2/orgs/1/vens"]
    assert len(json.loads(listing.query["labels"])[0]) == 2


def test_status_version_and_health_filters(pce):
    assert hostnames(info(pce, status="suspended")) == ["db2.example.com"]
    assert hostnames(info(pce, version="23.2.20-200")) == ["web2.example.com"]
    assert hostnames(info(pce, health="unhealthy")) == ["db1.example.com"]
    assert hostnames(info(pce, condition="agent.missed_heartbeats")) == ["db1.example.com"]
    offline = info(pce, hostnames=["db1.example.com"])["vens"][0]
    assert offline["online"] is False and offline["health"] == "warning"
    assert offline["conditions"][0]["type"] == "agent.missed_heartbeats"


def test_named_vens_must_pass_the_filters_too(pce):
    result = info(pce, hostnames=["web1.example.com", "web2.example.com"], version="23.2.20-200")
    assert hostnames(result) == ["web2.example.com"]


def test_unknown_label_matches_nothing(pce):
    result = info(pce, labels={"role": "nope"})
    assert result["vens"] == [] and result["summary"]["total"] == 0


def test_check_mode_reads_the_same_and_changes_nothing(pce):
    assert info(pce, check_mode=True) == info(pce)
    assert pce.changes() == []


def test_unmanaged_workload_fails_clearly(pce):
    plain = pce.add_workload("plain.example.com")
    result = info(pce, workload_hrefs=[plain["href"]])
    assert result["failed"] is True
    assert "is unmanaged: it has no VEN" in result["msg"]


def test_bad_choice_fails_before_any_request(pce):
    result = info(pce, status="sleeping")
    assert result["failed"] is True
    assert pce.requests == []


def test_an_empty_list_of_names_reads_nothing(pce):
    result = info(pce, hostnames=[])
    assert result["vens"] == [] and result["summary"]["total"] == 0
