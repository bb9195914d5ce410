"""flow_report: flow_query rows into one HTML file; check mode, diff, idempotence, mode, and clear errors."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.microseg.illumio.plugins.modules import flow_report
from module_runner import run_module

WEB = {"app": "shop", "env": "prod", "role": "web"}
PAY = {"app": "pay", "env": "prod", "role": "api"}


def flow(src_ip, dst_ip, src_labels=None, dst_labels=None, **changes):
    row = {
        "src_ip": src_ip,
        "src_hostname": "web1" if src_labels else None,
        "src_workload": "/orgs/1/workloads/a" if src_labels else None,
        "src_labels": src_labels or {},
        "dst_ip": dst_ip,
        "dst_hostname": None,
        "dst_workload": "/orgs/1/workloads/b" if dst_labels else None,
        "dst_labels": dst_labels or {},
        "port": 443,
        "proto": 6,
        "proto_name": "tcp",
        "num_connections": 12,
        "policy_decision": "potentially_blocked",
        "flow_direction": "outbound",
        "first_detected": "2026-11-23T13:01:00Z",
        "last_detected": "2026-11-23T13:55:10Z",
    }
    row.update(changes)
    return row


FLOWS = [
    flow("10.1.2.3", "10.1.9.9", WEB, None),
    flow("10.1.2.3", "10.1.5.5", WEB, PAY, policy_decision="allowed", num_connections=3),
    flow("10.1.2.4", "10.1.5.5", WEB, PAY, policy_decision="blocked", num_connections=1, port=8443),
    flow("192.168.7.1", "10.1.2.3", None, WEB, policy_decision=None, num_connections=None),
]


def report(dest, check_mode=False, diff=False, **args):
    args.setdefault("flows", FLOWS)
    return run_module(flow_report.main, dict(args, dest=str(dest)), check_mode=check_mode, diff=diff)


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_the_page_and_returns_counts(tmp_path):
    dest = tmp_path / "traffic.html"
    result = report(dest, address_groups=[{"name": "office", "cidrs": ["192.168.0.0/16"]}], title="Shop")
    assert result["changed"] is True
    assert "failed" not in result
    assert result["dest"] == str(dest)
    assert (result["groups"], result["edges"], result["flows"], result["connections"]) == (4, 3, 4, 17)
    assert result["blocked_edges"] == 2
    assert result["summary"] == [
        {
            "source": "shop | prod",
            "destination": "pay | prod",
            "connections": 4,
            "flows": 2,
            "decision": "blocked",
            "decisions": {"allowed": 1, "blocked": 1},
            "services": ["tcp/443", "tcp/8443"],
        },
        {
            "source": "shop | prod",
            "destination": "10.1.9.9",
            "connections": 12,
            "flows": 1,
            "decision": "potentially_blocked",
            "decisions": {"potentially_blocked": 1},
            "services": ["tcp/443"],
        },
        {
            "source": "office",
            "destination": "shop | prod",
            "connections": 1,
            "flows": 1,
            "decision": "unknown",
            "decisions": {"unknown": 1},
            "services": ["tcp/443"],
        },
    ]
    page = dest.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Shop</title>" in page
    assert mode_of(dest) == 0o640
    assert os.listdir(tmp_path) == ["traffic.html"]  # no temporary file left


def test_second_run_is_unchanged_and_the_file_identical(tmp_path):
    dest = tmp_path / "traffic.html"
    assert report(dest)["changed"] is True
    first = dest.read_bytes()
    again = report(dest)
    assert again["changed"] is False
    assert dest.read_bytes() == first
    changed = report(dest, flows=FLOWS[:2])
    assert changed["changed"] is True
    assert dest.read_bytes() != first


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / "traffic.html"
    result = report(dest, check_mode=True)
    assert result["changed"] is True
    assert result["edges"] == 3
    assert not dest.exists()
    assert os.listdir(tmp_path) == []
    report(dest)
    before = dest.read_bytes()
    assert report(dest, check_mode=True)["changed"] is False
    result = report(dest, check_mode=True, flows=FLOWS[:1])
    assert result["changed"] is True
    assert dest.read_bytes() == before


def test_mode_is_honoured_and_fixed_on_an_unchanged_page(tmp_path):
    dest = tmp_path / "traffic.html"
    report(dest, mode="0600")
    assert mode_of(dest) == 0o600
    result = report(dest, mode=0o644)
    assert result["changed"] is True
    assert mode_of(dest) == 0o644
    assert report(dest, mode="644")["changed"] is False


def test_diff_shows_the_summary_before_and_after(tmp_path):
    dest = tmp_path / "traffic.html"
    first = report(dest, diff=True, flows=FLOWS[:1])
    assert first["diff"]["before"] == ""
    assert first["diff"]["after"] == (
        "shop | prod -> 10.1.9.9: 12 connections, 1 flows, potentially_blocked=1, tcp/443\n"
    )
    second = report(dest, diff=True, check_mode=True, flows=FLOWS[:2])
    assert second["diff"]["before"] == first["diff"]["after"]
    assert second["diff"]["after"].splitlines() == [
        "shop | prod -> pay | prod: 3 connections, 1 flows, allowed=1, tcp/443",
        "shop | prod -> 10.1.9.9: 12 connections, 1 flows, potentially_blocked=1, tcp/443",
    ]
    foreign = tmp_path / "other.html"
    foreign.write_text("<html>hand made</html>", encoding="utf-8")
    assert report(foreign, diff=True, check_mode=True)["diff"]["before"] == ""


def test_escapes_labels_in_the_written_page(tmp_path):
    dest = tmp_path / "traffic.html"
    evil = "<script>alert(1)</script>"
    report(dest, flows=[flow("10.0.0.1", "10.0.0.2", {"app": evil, "env": "prod"}, None)])
    page = dest.read_text(encoding="utf-8")
    assert evil not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; | prod" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"flows": [FLOWS[0], {"src_ip": None, "dst_ip": None}]}, "flows[1] has neither src_ip nor dst_ip"),
        ({"flows": [FLOWS[0], {"dst_ip": "10.0.0.1", "num_connections": "x"}]}, "flows[1]: num_connections"),
        (
            {"address_groups": [{"name": "dmz", "cidrs": ["10.0.0.0/24", "10.0.0.300/32"]}]},
            "address_groups[0] (dmz): '10.0.0.300/32' is not a valid IPv4 or IPv6 CIDR",
        ),
        ({"mode": "rw-r--r--"}, "mode must be octal permissions"),
        ({"max_address_nodes": -1}, "max_address_nodes must be 0 or more"),
        ({"group_by": []}, "group_by needs at least one label key"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, args, message):
    dest = tmp_path / "traffic.html"
    result = report(dest, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert os.listdir(tmp_path) == []


def test_missing_parent_directory_is_not_created(tmp_path):
    dest = tmp_path / "missing" / "traffic.html"
    result = report(dest)
    assert result["failed"] is True
    assert result["msg"] == f"the directory of dest does not exist: {tmp_path / 'missing'} (it is not created)"
    assert not (tmp_path / "missing").exists()
    result = report(tmp_path)
    assert result["failed"] is True
    assert "dest is a directory" in result["msg"]


def test_required_options():
    result = run_module(flow_report.main, {"flows": FLOWS})
    assert result["failed"] is True
    assert "dest" in result["msg"]
