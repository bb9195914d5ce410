"""Heartbeats, goodbyes and policy sync as a REST client sees them on managed workloads and VENs.

The lab works these out when an object is read, from the stored heartbeat/goodbye/policy pick-up times, the
workload settings' timers and the lab clock (moved with PUT /lab/admin/clock, as a test client would).
"""

from __future__ import annotations

import pytest
from conftest import ORG
from ven_helpers import Prefixed, pair_with

ADMIN = "https://testserver/lab/admin"
DRAFT = f"{ORG}/sec_policy/draft"


@pytest.fixture
def agent(client):
    return Prefixed(client, "/lab/agent/v1")


def move_clock(client, seconds: float) -> None:
    offset = client.get(f"{ADMIN}/clock").json()["offset_seconds"]
    assert client.put(f"{ADMIN}/clock", json={"offset_seconds": offset + seconds}).status_code == 200


def label(client, key: str, value: str) -> dict:
    answer = client.post(f"{ORG}/labels", json={"key": key, "value": value})
    assert answer.status_code == 201, answer.text
    return answer.json()


def paired(client, agent, hostname: str, labels: list[dict] = ()) -> tuple[dict, dict]:
    """Pair a VEN through the API and the agent API; returns (activation answer, token header)."""
    profile = {"labels": [{"href": item["href"]} for item in labels]}
    activation = pair_with(client, agent, hostname, profile)
    return activation, {"X-Lab-Agent-Token": activation["agent_token"]}


def heartbeat(agent, headers: dict) -> dict:
    answer = agent.post("/heartbeat", json={}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def workload(client, activation: dict) -> dict:
    return client.get(activation["workload_href"]).json()


def listed(client, **params) -> set[str]:
    return {item["href"] for item in client.get(f"{ORG}/workloads", params=params).json()}


# --- online from heartbeats -----------------------------------------------------------------------------------
def test_missed_heartbeats_take_the_workload_offline_but_leave_the_ven_active(client, agent):
    activation, headers = paired(client, agent, "hb-offline")
    shown = workload(client, activation)
    assert shown["online"] is True and shown["agent"]["status"]["status"] == "active"
    assert activation["workload_href"] in listed(client, online="true")

    move_clock(client, 3599)  # the default disconnected timer is one hour
    assert workload(client, activation)["online"] is True
    move_clock(client, 2)
    shown = workload(client, activation)
    # Like pce_samples/workloads.json: offline, the agent still "active", last_heartbeat_on the old heartbeat.
    assert shown["online"] is False and shown["agent"]["status"]["status"] == "active"
    assert shown["agent"]["status"]["last_heartbeat_on"] == activation["status"]["last_heartbeat_at"]
    ven = client.get(activation["ven_href"]).json()
    assert ven["status"] == "active" and ven["last_heartbeat_at"] == activation["status"]["last_heartbeat_at"]
    assert activation["workload_href"] in listed(client, online="false")
    assert activation["workload_href"] not in listed(client, online="true")

    beat = heartbeat(agent, headers)
    shown = workload(client, activation)
    assert shown["online"] is True and shown["agent"]["status"]["last_heartbeat_on"] == beat["last_heartbeat_at"]
    assert activation["workload_href"] in listed(client, online="true")


def test_the_disconnected_timer_comes_from_the_workload_settings_scope_first(client, agent):
    pinned = label(client, "env", "Pinned")
    plain, _ = paired(client, agent, "hb-plain")
    never, _ = paired(client, agent, "hb-never", [pinned])
    settings = {
        "workload_disconnected_timeout_seconds": [
            {"scope": [], "value": 600},
            {"scope": [{"href": pinned["href"]}], "value": -1},
        ]
    }
    assert client.put(f"{ORG}/settings/workloads", json=settings).status_code == 204
    move_clock(client, 601)
    assert workload(client, plain)["online"] is False
    assert workload(client, never)["online"] is True  # -1: never disconnected
    offline = listed(client, online="false")
    assert plain["workload_href"] in offline and never["workload_href"] not in offline


def test_unmanaged_workloads_keep_the_online_they_were_given(client):
    made = client.post(f"{ORG}/workloads", json={"hostname": "static", "online": True}).json()
    move_clock(client, 10 * 86400)
    assert client.get(made["href"]).json()["online"] is True
    assert made["href"] in listed(client, online="true")


def test_a_goodbye_takes_the_workload_offline_after_the_goodbye_timer_and_stops_the_ven(client, agent):
    activation, headers = paired(client, agent, "hb-bye")
    said = agent.post("/goodbye", headers=headers)
    assert said.status_code == 200 and said.json()["last_goodbye_at"]
    move_clock(client, 60)  # within the default goodbye timer (900 s)
    assert workload(client, activation)["online"] is True
    move_clock(client, 900)
    shown, ven = workload(client, activation), client.get(activation["ven_href"]).json()
    assert shown["online"] is False and shown["agent"]["status"]["status"] == "stopped"
    assert ven["status"] == "stopped" and ven["last_goodbye_at"] == said.json()["last_goodbye_at"]
    assert activation["ven_href"] in {item["href"] for item in client.get(f"{ORG}/vens?status=stopped").json()}
    heartbeat(agent, headers)  # the VEN starts again
    assert workload(client, activation)["online"] is True
    assert client.get(activation["ven_href"]).json()["status"] == "active"


# --- policy sync ------------------------------------------------------------------------------------------------
def sync_state(client, activation: dict) -> str:
    return workload(client, activation)["agent"]["status"]["security_policy_sync_state"]


def provision_rule_set(client, name: str, scope_label: dict) -> None:
    made = client.post(
        f"{DRAFT}/rule_sets", json={"name": name, "scopes": [[{"label": {"href": scope_label["href"]}}]]}
    )
    assert made.status_code == 201, made.text
    answer = client.post(f"{ORG}/sec_policy", json={"update_description": name})
    assert answer.status_code == 201, answer.text


def test_policy_sync_is_syncing_until_the_ven_picks_policy_up(client, agent):
    app = label(client, "app", "SyncApp")
    activation, headers = paired(client, agent, "sync1", [app])
    status = workload(client, activation)["agent"]["status"]
    assert status["security_policy_sync_state"] == "syncing"  # just activated, as in the real sample
    assert status["security_policy_applied_at"] is None and status["fw_config_current"] is False

    first = heartbeat(agent, headers)
    status = workload(client, activation)["agent"]["status"]
    assert status["security_policy_sync_state"] == "active" and status["fw_config_current"] is True
    assert status["security_policy_applied_at"] == first["last_heartbeat_at"]
    assert status["security_policy_received_at"] == first["last_heartbeat_at"]

    provision_rule_set(client, "Sync app", app)  # policy that applies to the workload
    assert sync_state(client, activation) == "syncing"
    assert agent.get("/status", headers=headers).json()["policy_version"] != first["policy_version"]
    second = heartbeat(agent, headers)
    assert second["policy_version"] != first["policy_version"]
    assert sync_state(client, activation) == "active"


def test_provisioning_policy_for_other_workloads_leaves_the_sync_active(client, agent):
    mine, other = label(client, "app", "Mine"), label(client, "app", "Other")
    activation, headers = paired(client, agent, "sync2", [mine])
    version = heartbeat(agent, headers)["policy_version"]
    provision_rule_set(client, "Other app", other)
    assert sync_state(client, activation) == "active"
    assert heartbeat(agent, headers)["policy_version"] == version


def test_changing_the_workload_mode_makes_its_policy_sync_again(client, agent):
    activation, headers = paired(client, agent, "sync3")
    heartbeat(agent, headers)
    assert client.put(activation["workload_href"], json={"enforcement_mode": "full"}).status_code == 204
    assert sync_state(client, activation) == "syncing"
    listed_state = {
        item["href"]: item["agent"]["status"]["security_policy_sync_state"]
        for item in client.get(f"{ORG}/workloads").json()
    }
    assert listed_state[activation["workload_href"]] == "syncing"
    heartbeat(agent, headers)
    assert sync_state(client, activation) == "active"
