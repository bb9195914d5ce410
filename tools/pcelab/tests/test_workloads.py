"""Workloads: unmanaged CRUD, filters, managed workloads from the VEN side, bulk calls (in-process)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from conftest import ORG
from ven_helpers import Prefixed, pair_with

SAMPLE = json.loads(Path(__file__).resolve().parent.joinpath("pce_samples", "workloads.json").read_text())[0]


@pytest.fixture
def labels(client):
    def make(key, value):
        return client.post(f"{ORG}/labels", json={"key": key, "value": value}).json()

    return {"web": make("role", "Web"), "db": make("role", "DB"), "prod": make("env", "Prod"),
            "dev": make("env", "Dev")}  # fmt: skip


def create(client, **fields):
    answer = client.post(f"{ORG}/workloads", json=fields)
    assert answer.status_code == 201, answer.text
    return answer.json()


def ref(label):
    return {"href": label["href"]}


def managed(client, labels, hostname="ven-host"):
    ven_uuid = str(uuid.uuid4())
    return client.lab.create_managed_workload(1, ven_uuid, {
        "hostname": hostname,
        "interfaces": [{"name": "eth0", "address": "10.9.9.9", "cidr_block": 24}],
        "labels": [ref(labels["web"])],
        "enforcement_mode": "visibility_only",
        "online": True,
        "ven": {"href": f"/orgs/1/vens/{ven_uuid}"},
        "agent": {**SAMPLE["agent"], "href": "/orgs/1/agents/5"},
    })  # fmt: skip


def test_unmanaged_workload_has_the_sample_fields(client, labels):
    workload = create(
        client, hostname="web1.example.com", name="Web 1", labels=[ref(labels["web"]), ref(labels["prod"])],
        interfaces=[{"name": "eth0", "address": "10.0.0.5", "cidr_block": 24, "default_gateway_address": "10.0.0.1"}],
        enforcement_mode="full", visibility_level="flow_drops", public_ip="203.0.113.5", os_id="ubuntu-x86_64-jammy",
        external_data_set="cmdb", external_data_reference="ci-1", ignored_interface_names=["docker0"], online=True,
    )  # fmt: skip
    missing = set(SAMPLE) - set(workload) - {"num_enforcement_boundaries"}
    assert not missing
    assert workload["href"] == f"{ORG}/workloads/{uuid.UUID(workload['href'].rsplit('/', 1)[1])}"
    assert workload["labels"] == [
        {"href": labels["web"]["href"], "key": "role", "value": "Web"},
        {"href": labels["prod"]["href"], "key": "env", "value": "Prod"},
    ]
    assert workload["ven"] is None and workload["agent"]["status"] is None
    assert workload["interfaces"][0]["address"] == "10.0.0.5" and workload["interfaces"][0]["loopback"] is False
    assert (workload["enforcement_mode"], workload["visibility_level"]) == ("full", "flow_drops")
    assert client.get(workload["href"]).json() == workload


@pytest.mark.parametrize(
    ("body", "token"),
    [
        ({}, "input_validation_error"),
        ({"hostname": "x", "enforcement_mode": "strict"}, "input_validation_error"),
        ({"hostname": "x", "visibility_level": "all"}, "input_validation_error"),
        ({"hostname": "x", "labels": [{"href": "/orgs/1/labels/999"}]}, "invalid_uri"),
        ({"hostname": "x", "labels": ["/orgs/1/labels/1"]}, "input_validation_error"),
        ({"hostname": "x", "interfaces": [{"name": "eth0", "address": "10.0.0.300"}]}, "input_validation_error"),
        (
            {"hostname": "x", "interfaces": [{"name": "eth0", "address": "10.0.0.3", "cidr_block": 33}]},
            "input_validation_error",
        ),
        ({"hostname": "x", "public_ip": "nope"}, "input_validation_error"),
        ({"hostname": "x", "online": "yes"}, "input_validation_error"),
        ({"hostname": 5}, "input_validation_error"),
        ({"hostname": "x", "agent": {}}, "input_validation_error"),
    ],
)
def test_bad_workloads_are_refused(client, body, token):
    answer = client.post(f"{ORG}/workloads", json=body)
    assert answer.status_code == 406 and answer.json()[0]["token"] == token


def test_one_label_per_key(client, labels):
    answer = client.post(f"{ORG}/workloads", json={"hostname": "x", "labels": [ref(labels["web"]), ref(labels["db"])]})
    assert answer.json()[0]["token"] == "multiple_labels_with_same_key"


def test_filters(client, labels):
    a = create(
        client,
        hostname="web-a.prod",
        labels=[ref(labels["web"]), ref(labels["prod"])],
        interfaces=[{"name": "eth0", "address": "10.0.0.1"}],
        enforcement_mode="full",
        online=True,
    )
    b = create(client, hostname="web-b.dev", labels=[ref(labels["web"]), ref(labels["dev"])])
    c = create(client, hostname="db-a.prod", name="Database", labels=[ref(labels["db"]), ref(labels["prod"])])
    m = managed(client, labels)

    def hrefs(**params):
        answer = client.get(f"{ORG}/workloads", params=params)
        assert answer.status_code == 200, answer.text
        return {item["href"] for item in answer.json()}

    both = json.dumps([[labels["web"]["href"], labels["prod"]["href"]]])
    either = json.dumps([[labels["web"]["href"], labels["dev"]["href"]], [labels["db"]["href"]]])
    assert hrefs(labels=both) == {a["href"]}
    assert hrefs(labels=either) == {b["href"], c["href"]}
    assert hrefs(hostname="WEB-") == {a["href"], b["href"]}
    assert hrefs(name="datab") == {c["href"]}
    assert hrefs(managed="true") == {m["href"]}
    assert hrefs(managed="false") == {a["href"], b["href"], c["href"]}
    assert hrefs(online="true") == {a["href"], m["href"]}
    assert hrefs(enforcement_mode="full") == {a["href"]}
    assert hrefs(ip_address="10.0.0.1") == {a["href"]}
    assert hrefs(ip_address="10.9.9.9", managed="true") == {m["href"]}
    for bad in ({"labels": "web"}, {"labels": '["/orgs/1/labels/1"]'}, {"managed": "yes"}, {"ip_address": "x"}):
        assert client.get(f"{ORG}/workloads", params=bad).status_code == 406


def test_update_and_delete_unmanaged(client, labels):
    workload = create(client, hostname="old", labels=[ref(labels["web"])])
    answer = client.put(workload["href"], json={"hostname": "new", "labels": [ref(labels["db"])],
                                                "enforcement_mode": "selective"})  # fmt: skip
    assert answer.status_code == 204
    shown = client.get(workload["href"]).json()
    assert (shown["hostname"], shown["enforcement_mode"]) == ("new", "selective")
    assert shown["labels"] == [{"href": labels["db"]["href"], "key": "role", "value": "DB"}]
    assert client.delete(workload["href"]).status_code == 204
    assert client.get(workload["href"]).json()["deleted"] is True
    assert workload["href"] not in {item["href"] for item in client.get(f"{ORG}/workloads").json()}
    again = client.delete(workload["href"])
    assert again.status_code == 406 and again.json()[0]["token"] == "already_deleted"
    assert client.delete(f"{ORG}/workloads/{uuid.uuid4()}").status_code == 404
    assert client.delete(labels["web"]["href"]).status_code == 204  # the deleted workload no longer uses it


def test_label_renames_show_on_workloads(client, labels):
    workload = create(client, hostname="w", labels=[ref(labels["web"])])
    client.put(labels["web"]["href"], json={"value": "Frontend"})
    assert client.get(workload["href"]).json()["labels"][0]["value"] == "Frontend"


def test_managed_workload_limits(client, labels):
    workload = managed(client, labels)
    assert workload["ven"]["href"].startswith("/orgs/1/vens/") and workload["agent"]["href"] == "/orgs/1/agents/5"
    assert workload["labels"] == [{"href": labels["web"]["href"], "key": "role", "value": "Web"}]
    assert client.put(workload["href"], json={"enforcement_mode": "full", "name": "Named"}).status_code == 204
    refused = client.put(workload["href"], json={"hostname": "renamed"})
    assert refused.status_code == 406 and refused.json()[0]["token"] == "managed_workload_property_read_only"
    deleted = client.delete(workload["href"])
    assert deleted.status_code == 405 and deleted.json()[0]["token"] == "method_not_allowed_error"
    uuid_ = workload["href"].rsplit("/", 1)[1]
    client.lab.update_workload(1, uuid_, {"online": False, "interfaces": [{"name": "eth1", "address": "10.1.1.1"}]})
    shown = client.get(workload["href"]).json()
    assert shown["online"] is False and shown["interfaces"][0]["name"] == "eth1" and shown["name"] == "Named"
    client.lab.delete_workload(1, uuid_)
    assert client.lab.workload(1, uuid_) is None
    assert [event["event_type"] for event in client.get(f"{ORG}/events").json()][:2] == [
        "workload.delete", "workload.update"]  # fmt: skip


def test_bulk_create_update_delete_report_per_item(client, labels):
    items = [{"hostname": f"bulk{i}", "labels": [ref(labels["web"])]} for i in range(3)]
    items.append({"hostname": "bad", "enforcement_mode": "strict"})
    answer = client.put(f"{ORG}/workloads/bulk_create", json=items)
    assert answer.status_code == 200
    results = answer.json()
    assert [item["status"] for item in results] == ["created", "created", "created", "error"]
    assert results[3]["token"] == "input_validation_error" and results[3]["errors"][0]["message"]
    made = [item["href"] for item in results[:3]]
    updates = [{"href": made[0], "enforcement_mode": "full"}, {"href": f"{ORG}/workloads/{uuid.uuid4()}"},
               {"href": made[1], "labels": [ref(labels["db"])]}]  # fmt: skip
    statuses = [item["status"] for item in client.put(f"{ORG}/workloads/bulk_update", json=updates).json()]
    assert statuses == ["updated", "error", "updated"]
    assert client.get(made[0]).json()["enforcement_mode"] == "full"
    deletes = [{"href": made[0]}, {"href": made[0]}, {"href": "/orgs/1/labels/1"}]
    results = client.put(f"{ORG}/workloads/bulk_delete", json=deletes).json()
    assert [item["status"] for item in results] == ["deleted", "error", "error"]
    assert [item.get("token") for item in results] == [None, "already_deleted", "invalid_uri"]


@pytest.mark.parametrize("count", [0, 1001])
def test_bulk_size_limits(client, count):
    answer = client.put(f"{ORG}/workloads/bulk_create", json=[{"hostname": f"h{i}"} for i in range(count)])
    assert answer.status_code == 406 and "1 to 1000" in answer.json()[0]["message"]


def test_bulk_body_must_be_an_array(client):
    assert client.put(f"{ORG}/workloads/bulk_create", json={"hostname": "x"}).status_code == 406


def test_thousand_item_bulk_create(client, labels):
    # How fast: tests/bench/bench_pcelab_async.py prints the bulk_create rate (a figure, not a timed test).
    items = [
        {
            "hostname": f"fast{i}",
            "labels": [ref(labels["web"]), ref(labels["prod"])],
            "interfaces": [{"name": "eth0", "address": f"10.1.{i // 256}.{i % 256}"}],
        }
        for i in range(1000)
    ]
    answer = client.put(f"{ORG}/workloads/bulk_create", json=items)
    assert {item["status"] for item in answer.json()} == {"created"}
    listed = client.get(f"{ORG}/workloads", params={"hostname": "fast999"}).json()
    assert [item["interfaces"][0]["address"] for item in listed] == ["10.1.3.231"]


def test_managed_workloads_are_refused_per_item_by_bulk_delete(client):
    # The real PCE's token: pylo's WorkloadMultiDeleteTracker looks for "method_not_allowed_error" in the item's
    # `errors` to find the managed workloads it must unpair instead (REST guide: bulk_delete takes unmanaged only).
    activation = pair_with(client, Prefixed(client, "/lab/agent/v1"), "bulk-managed")
    plain = create(client, hostname="bulk-plain")
    items = [{"href": activation["workload_href"]}, {"href": plain["href"]}]
    results = client.put(f"{ORG}/workloads/bulk_delete", json=items).json()
    assert [item["href"] for item in results] == [activation["workload_href"], plain["href"]]
    assert [error["token"] for error in results[0]["errors"]] == ["method_not_allowed_error"]
    assert not results[1].get("errors")
    assert client.get(activation["workload_href"]).json()["deleted"] is False
    assert client.get(plain["href"]).json()["deleted"] is True
    single = client.delete(activation["workload_href"])
    assert single.status_code == 405 and single.json()[0]["token"] == "method_not_allowed_error"
