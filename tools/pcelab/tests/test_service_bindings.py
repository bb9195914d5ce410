"""Service bindings: workloads bound to active virtual services (in-process TestClient), and the official SDK."""

from __future__ import annotations

import pytest
from conftest import ORG
from pcelab.contract import contract

DRAFT = f"{ORG}/sec_policy/draft"
BINDINGS = f"{ORG}/service_bindings"
CONTRACT = contract("service_bindings")


def created(answer):
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.fixture
def bound_parts(client):
    """An active virtual service (and its draft href) and two unmanaged workloads."""
    draft = created(
        client.post(
            f"{DRAFT}/virtual_services",
            json={"name": "VS-LB", "apply_to": "host_only", "service_ports": [{"port": 443, "proto": 6}]},
        )
    )
    answer = client.post(f"{ORG}/sec_policy", json={"update_description": "vs"})
    assert answer.status_code == 201, answer.text
    workloads = [created(client.post(f"{ORG}/workloads", json={"hostname": f"lb{n}"})) for n in (1, 2)]
    return draft["href"].replace("/draft/", "/active/"), draft["href"], workloads


def test_bind_list_get_delete(client, bound_parts):
    active, _, (first, second) = bound_parts
    overrides = [{"port": 443, "proto": 6, "new_port": 8443}]
    results = created(
        client.post(
            BINDINGS,
            json=[
                {"virtual_service": {"href": active}, "workload": {"href": first["href"]}, "port_overrides": overrides},
                {"virtual_service": {"href": active}, "workload": {"href": second["href"]}},
            ],
        )
    )
    assert [sorted(item) for item in results] == [["href"], ["href"]]
    one = client.get(results[0]["href"]).json()
    assert CONTRACT.answer_gaps(one) == []
    assert one["virtual_service"] == {"href": active} and one["workload"] == {"href": first["href"]}
    assert one["port_overrides"] == overrides
    listed = client.get(BINDINGS, params={"workload": second["href"]}).json()
    assert [item["href"] for item in listed] == [results[1]["href"]]
    assert len(client.get(BINDINGS, params={"virtual_service": active}).json()) == 2
    assert client.delete(results[0]["href"]).status_code == 204
    assert client.get(results[0]["href"]).status_code == 404


def test_each_refused_binding_is_answered_in_place_and_the_others_are_made(client, bound_parts):
    active, draft, (first, second) = bound_parts
    results = created(
        client.post(
            BINDINGS,
            json=[
                {"virtual_service": {"href": draft}, "workload": {"href": first["href"]}},
                {"virtual_service": {"href": active}, "workload": {"href": f"{ORG}/workloads/nope"}},
                {"virtual_service": {"href": active}, "workload": {"href": first["href"]}},
                {"virtual_service": {"href": active}, "workload": {"href": first["href"]}},
                {"virtual_service": {"href": active}, "workload": {"href": second["href"]}, "colour": "red"},
            ],
        )
    )
    tokens = [item.get("token", "made") for item in results]
    assert tokens == ["invalid_uri", "invalid_uri", "made", "service_binding_not_unique", "input_validation_error"]
    assert "not an active virtual service" in results[0]["message"]
    assert len(client.get(BINDINGS).json()) == 1


def test_a_binding_list_is_required(client):
    for body in ({"virtual_service": {"href": "x"}}, []):
        answer = client.post(BINDINGS, json=body)
        assert answer.status_code == 406, answer.text
