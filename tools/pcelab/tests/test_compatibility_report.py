"""GET /orgs/{org}/agents/{id}/compatibility_report (and the same report under the VEN's href).

Shape from brian1917/illumioapi compatibilityreport.go: {last_updated_at, qualify_status, results: {qualify_tests}};
pylo (cpainchaud/pylo) reads `/agents/{id}/compatibility_report` and takes `{}` as "no report".
"""

from __future__ import annotations

import pytest
from conftest import ORG
from ven_helpers import Prefixed, pair_with

TESTS = [
    {"status": "green", "ipv4_forwarding_enabled": None},
    {"status": "red", "required_packages_missing": ["ipset"]},
    {"status": "yellow", "iptables_rule_cnt": 3},
]


@pytest.fixture
def agent(client):
    return Prefixed(client, "/lab/agent/v1")


def report_path(activation: dict) -> str:
    return activation["agent_href"] + "/compatibility_report"


def test_agent_report_is_empty_until_the_ven_uploads_one(client, agent):
    activation = pair_with(client, agent, "compat-a")
    assert activation["agent_href"].startswith("/orgs/1/agents/")
    answer = client.get(report_path(activation))
    assert answer.status_code == 200 and answer.json() == {}


def test_agent_report_shows_the_uploaded_tests_and_the_worst_status(client, agent):
    activation = pair_with(client, agent, "compat-b")
    headers = {"X-Lab-Agent-Token": activation["agent_token"]}
    assert (
        agent.put("/compatibility_report", json={"results": {"qualify_tests": TESTS}}, headers=headers).status_code
        == 200
    )
    report = client.get(report_path(activation)).json()
    assert set(report) == {"last_updated_at", "qualify_status", "results"}
    assert report["qualify_status"] == "red" and report["results"] == {"qualify_tests": TESTS}
    assert report["last_updated_at"].endswith("Z")
    # The same report under the VEN's href (illumioapi takes either href).
    assert client.get(activation["ven_href"] + "/compatibility_report").json() == report


def test_unknown_or_unpaired_agents_are_404(client, agent):
    activation = pair_with(client, agent, "compat-c")
    assert client.get(f"{ORG}/agents/999999/compatibility_report").status_code == 404
    assert client.get(f"{ORG}/agents/not-a-number/compatibility_report").status_code == 404
    headers = {"X-Lab-Agent-Token": activation["agent_token"]}
    assert agent.post("/deactivate", json={}, headers=headers).status_code == 200
    gone = client.get(report_path(activation))
    assert gone.status_code == 404 and gone.json()[0]["token"] == "not_found"
