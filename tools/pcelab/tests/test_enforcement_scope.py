"""num_enforcement_boundaries: how many active enforcement boundaries protect a workload (in-process TestClient)."""

from __future__ import annotations

from conftest import ORG

DRAFT = f"{ORG}/sec_policy/draft"


def created(answer):
    assert answer.status_code == 201, answer.text
    return answer.json()


def counts(client, *workloads, **params):
    listed = {item["href"]: item["num_enforcement_boundaries"] for item in client.get(f"{ORG}/workloads").json()}
    one = [client.get(workload["href"]).json()["num_enforcement_boundaries"] for workload in workloads]
    assert one == [listed[workload["href"]] for workload in workloads]
    return one


def test_boundaries_are_counted_per_workload_once_provisioned(client):
    web = created(client.post(f"{ORG}/labels", json={"key": "role", "value": "web"}))
    db = created(client.post(f"{ORG}/labels", json={"key": "role", "value": "db"}))
    group = created(client.post(f"{DRAFT}/label_groups", json={"name": "dbs", "key": "role", "labels": [db]}))
    web_host = created(client.post(f"{ORG}/workloads", json={"hostname": "w", "labels": [{"href": web["href"]}]}))
    db_host = created(client.post(f"{ORG}/workloads", json={"hostname": "d", "labels": [{"href": db["href"]}]}))
    assert web_host["num_enforcement_boundaries"] == 0 and counts(client, web_host, db_host) == [0, 0]

    any_ip = {"ip_list": {"href": f"{DRAFT}/ip_lists/1"}}
    for name, providers in (
        ("all", [{"actors": "ams"}]),
        ("web", [{"label": {"href": web["href"]}}]),
        ("dbs", [{"label_group": {"href": group["href"]}}]),
    ):
        body = {
            "name": name,
            "providers": providers,
            "consumers": [any_ip],
            "ingress_services": [{"port": 22, "proto": 6}],
        }
        created(client.post(f"{DRAFT}/enforcement_boundaries", json=body))
    assert counts(client, web_host, db_host) == [0, 0]  # drafts protect nothing until provisioned

    assert client.post(f"{ORG}/sec_policy", json={"update_description": "boundaries"}).status_code == 201
    assert counts(client, web_host, db_host) == [2, 2]

    client.put(web_host["href"], json={"labels": [{"href": db["href"]}]})
    assert counts(client, web_host) == [2]
    client.put(web_host["href"], json={"labels": []})
    assert counts(client, web_host) == [1]
