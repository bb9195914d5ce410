"""Agent-side API: activation, heartbeat, status, suspend, goodbye, compatibility report, pending actions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pcelab.api.agents import (
    check_activation_body,
    check_compatibility_report,
    effective_policy,
    locked_override,
    qualify_status,
)
from pcelab.api.ven_core import LabError
from ven_helpers import (
    Prefixed,
    agent_session,
    new_label,
    pair_ven,
    pair_with,
    recorded_events,
    resource_hrefs,
)

SAMPLE_AGENT = next(
    w["agent"]
    for w in json.loads(Path(__file__).resolve().parent.joinpath("pce_samples", "workloads.json").read_text())
    if w.get("agent")
)
CODE = "ab" * 41
HOST = {"activation_code": CODE, "hostname": "web1", "agent_version": "21.5.20-8451"}
PROFILE = {
    "enforcement_mode": "idle",
    "visibility_level": "flow_summary",
    "log_traffic": False,
    "role_label_lock": False,
    "app_label_lock": True,
    "env_label_lock": True,
    "loc_label_lock": True,
    "mode_lock": False,
    "enforcement_mode_lock": False,
    "visibility_level_lock": True,
    "log_traffic_lock": True,
}


# --- activation body ------------------------------------------------------------------------------------
def test_activation_body_defaults_and_interfaces():
    facts = check_activation_body(
        {**HOST, "interfaces": [{"name": "eth0", "address": "10.0.0.5", "cidr_block": 24}], "mode": "enforced"}
    )
    assert facts["os_platform"] == "linux"
    assert facts["interfaces"] == [
        {"name": "eth0", "address": "10.0.0.5", "cidr_block": 24, "default_gateway_address": None}
    ]
    assert facts["overrides"] == {"enforcement_mode": "full"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"activation_code": "not-hex"}, "activation_code"),
        ({"hostname": ""}, "hostname"),
        ({"agent_version": None}, "agent_version"),
        ({"interfaces": [{"name": "eth0", "address": "10.0.0.500"}]}, "IP addresses"),
        ({"interfaces": [{"name": "eth0", "address": "10.0.0.5", "cidr_block": 40}]}, "prefix length"),
        ({"labels": {"tier": "web"}}, "labels"),
        ({"mode": "enforced", "enforcement_mode": "full"}, "not both"),
        ({"enforcement_mode": "strict"}, "enforcement_mode"),
        ({"os_platform": "beos"}, "os_platform"),
    ],
)
def test_activation_body_errors(change, message):
    with pytest.raises(LabError, match=message):
        check_activation_body({**HOST, **change})


def test_activation_code_is_never_echoed_in_errors():
    with pytest.raises(LabError) as raised:
        check_activation_body({**HOST, "activation_code": CODE + "zz"})
    assert CODE not in raised.value.message


def test_locks_decide_which_overrides_fail():
    allowed = check_activation_body({**HOST, "labels": {"role": "web"}, "enforcement_mode": "full"})
    assert locked_override(PROFILE, allowed) is None
    assert effective_policy(PROFILE, allowed)["enforcement_mode"] == "full"
    for change, token in [
        ({"labels": {"app": "shop"}}, "label_assignment_locked"),
        ({"visibility_level": "flow_off"}, "visibility_level_locked"),
        ({"log_traffic": True}, "log_traffic_locked"),
    ]:
        assert locked_override(PROFILE, check_activation_body({**HOST, **change})).token == token
    mode_locked = {**PROFILE, "enforcement_mode_lock": True}
    assert locked_override(mode_locked, allowed).token == "enforcement_mode_locked"


# --- compatibility report ------------------------------------------------------------------------------
def test_report_accepts_both_wrappings_and_takes_the_worst_status():
    tests = [{"status": "green", "ipv4_forwarding_enabled": None}, {"status": "yellow", "iptables_rule_cnt": 12}]
    assert check_compatibility_report({"qualify_tests": tests}) == tests
    assert check_compatibility_report({"results": {"qualify_tests": tests}}) == tests
    assert qualify_status(tests) == "yellow"
    assert qualify_status([*tests, {"status": "red", "routing_table_conflict": True}]) == "red"
    assert qualify_status([]) == "green"


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"qualify_tests": "all fine"},
        {"qualify_tests": [{"status": "blue", "iptables_rule_cnt": 1}]},
        {"qualify_tests": [{"status": "green"}]},
        {"qualify_tests": [{"status": "green", "a": 1, "b": 2}]},
        {"qualify_tests": [{"status": "green", "bad name!": 1}]},
    ],
)
def test_bad_reports_are_refused(report):
    with pytest.raises(LabError):
        check_compatibility_report(report)


# --- over HTTPS (conftest `lab`/`api`), and in-process (`client`) where the workload document is checked -----
INTERFACES = [{"name": "eth0", "address": "10.1.0.5", "cidr_block": 24, "default_gateway_address": "10.1.0.1"}]


@pytest.fixture
def agent(lab):
    with agent_session(lab) as session:
        yield session


def token_header(activation: dict) -> dict:
    return {"X-Lab-Agent-Token": activation["agent_token"]}


def test_activation_creates_a_managed_workload_with_the_profiles_settings(client):
    agent = Prefixed(client, "/lab/agent/v1")
    env = new_label(client, "env")
    profile = {"labels": [{"href": env["href"]}], "enforcement_mode": "selective", "visibility_level": "flow_drops"}
    activation = pair_with(client, agent, "db1", profile, os_id="rhel-x86_64-9", interfaces=INTERFACES)
    uuid = activation["ven_href"].rsplit("/", 1)[1]
    assert activation["workload_href"].endswith(uuid)
    workload = client.lab.workload(1, uuid)
    assert [label["href"] for label in workload["labels"]] == [env["href"]]
    assert (workload["enforcement_mode"], workload["visibility_level"]) == ("selective", "flow_drops")
    assert workload["ven"] == {"href": activation["ven_href"]}
    assert set(workload["agent"]) == set(SAMPLE_AGENT)
    assert set(workload["agent"]["status"]) == set(SAMPLE_AGENT["status"])
    assert workload["agent"]["href"] == activation["agent_href"]
    assert workload["interfaces"][0]["address"] == "10.1.0.5"
    status = agent.get("/status", headers=token_header(activation)).json()
    assert status["enforcement_mode"] == "selective" and status["mode"] == "illuminated"
    assert status["pending_actions"] == [] and status["status"] == "active"
    events = recorded_events(client.lab, "agent.activate")
    assert resource_hrefs(events, "ven") == [activation["ven_href"]]
    assert activation["agent_token"] not in json.dumps(events)


def test_heartbeat_updates_version_interfaces_and_heartbeat_time(client):
    agent = Prefixed(client, "/lab/agent/v1")
    activation = pair_with(client, agent, "hb1")
    client.lab.clock_offset += 30
    answer = agent.post(
        "/heartbeat",
        json={"agent_version": "21.5.30-8527", "interfaces": INTERFACES, "uptime_seconds": 99},
        headers=token_header(activation),
    )
    assert answer.status_code == 200, answer.text
    workload = client.lab.workload(1, activation["ven_href"].rsplit("/", 1)[1])
    assert workload["interfaces"][0]["address"] == "10.1.0.5"
    assert workload["online"] is True
    assert workload["agent"]["status"]["agent_version"] == "21.5.30-8527"
    assert workload["agent"]["status"]["uptime_seconds"] == 99
    assert answer.json()["last_heartbeat_at"] == workload["agent"]["status"]["last_heartbeat_on"]
    assert answer.json()["last_heartbeat_at"] != activation["status"]["last_heartbeat_at"]


def test_suspend_unsuspend_and_goodbye_events(client):
    agent = Prefixed(client, "/lab/agent/v1")
    activation = pair_with(client, agent, "sus1")
    headers = token_header(activation)
    assert agent.post("/suspend", headers=headers).json()["suspended"] is True
    assert client.get(activation["ven_href"]).json()["status"] == "suspended"
    assert agent.post("/unsuspend", headers=headers).json()["status"] == "active"
    assert agent.post("/deactivate", json={"firewall_restore": "default"}, headers=headers).status_code == 200
    for event_type in ("agent.suspend", "agent.unsuspend", "agent.unpair"):
        assert resource_hrefs(recorded_events(client.lab, event_type), "ven") == [activation["ven_href"]]
    [unpair] = recorded_events(client.lab, "agent.unpair")
    assert unpair["resource_changes"][0]["changes"] == {"firewall_restore": "default"}
    assert unpair["created_by"]["agent"]["href"] == activation["agent_href"]
    assert client.lab.workload(1, activation["ven_href"].rsplit("/", 1)[1]) is None


def test_locked_label_override_fails_and_consumes_nothing(api, agent):
    label = new_label(api, "app")
    profile = api.post("/orgs/1/pairing_profiles", json={"name": "locked-app", "allowed_uses_per_key": 1}).json()
    code = api.post(f"{profile['href']}/pairing_key", json={}).json()["activation_code"]
    body = {"activation_code": code, "hostname": "x", "agent_version": "21.5.20-8451"}
    refused = agent.post("/activate", json={**body, "labels": {"app": label["value"]}})
    assert refused.status_code == 403 and refused.json()[0]["token"] == "label_assignment_locked"
    assert agent.post("/activate", json=body).status_code == 201


def test_command_line_label_must_exist(api, agent):
    profile = api.post("/orgs/1/pairing_profiles", json={"name": "open-role", "role_label_lock": False}).json()
    code = api.post(f"{profile['href']}/pairing_key", json={}).json()["activation_code"]
    body = {"activation_code": code, "hostname": "x", "agent_version": "21.5.20-8451", "labels": {"role": "ghost"}}
    refused = agent.post("/activate", json=body)
    assert refused.status_code == 406 and "no role label 'ghost'" in refused.json()[0]["message"]


def test_calls_without_a_valid_token_are_refused(agent):
    assert agent.get("/status").status_code == 401
    refused = agent.post("/heartbeat", json={}, headers={"X-Lab-Agent-Token": "nope"})
    assert refused.status_code == 401
    assert refused.json()[0]["token"] == "invalid_agent_token"


def test_goodbye_removes_the_ven_and_revokes_the_token(lab, api, agent):
    activation = pair_ven(lab, "bye1")
    headers = token_header(activation)
    assert agent.post("/deactivate", json={"firewall_restore": "default"}, headers=headers).json() == {"unpaired": True}
    assert api.get(activation["ven_href"]).status_code == 404
    assert agent.get("/status", headers=headers).status_code == 401
    assert agent.post("/deactivate", json={"firewall_restore": "melt"}, headers=headers).status_code in (401, 406)


def test_compatibility_report_round_trip(lab, api, agent):
    activation = pair_ven(lab, "compat1")
    report_path = activation["ven_href"] + "/compatibility_report"
    # No report yet: an empty object, as pylo (agent_get_compatibility_report) reads a VEN without one.
    assert api.get(report_path).json() == {}
    tests = [
        {"status": "green", "ipv4_forwarding_enabled": None},
        {"status": "yellow", "iptables_rule_cnt": 14},
        {"status": "green", "ipv6_global_scope": None},
    ]
    uploaded = agent.put("/compatibility_report", json={"qualify_tests": tests}, headers=token_header(activation))
    assert uploaded.status_code == 200
    shown = api.get(report_path).json()
    assert set(shown) == {"last_updated_at", "qualify_status", "results"}
    assert shown["qualify_status"] == "yellow" and shown["results"] == {"qualify_tests": tests}
    bad_tests = {"qualify_tests": [{"status": "blue"}]}
    bad = agent.put("/compatibility_report", json=bad_tests, headers=token_header(activation))
    assert bad.status_code == 406
