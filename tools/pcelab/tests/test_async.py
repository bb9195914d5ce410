"""Async collections (Prefer: respond-async -> job -> datafile) and events (in-process)."""

from __future__ import annotations

import time

from conftest import ORG


def wait_for_datafile(client, answer, timeout: float = 10.0):
    assert answer.status_code == 202, answer.text
    assert answer.headers["Retry-After"] == "1"
    location = answer.headers["Location"]
    assert location.startswith(f"{ORG}/jobs/")
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(location).json()
        if job["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert job["status"] == "done", job
    assert set(job) == {
        "href",
        "job_type",
        "description",
        "status",
        "result",
        "requested_at",
        "requested_by",
        "terminated_at",
        "created_by",
    }
    assert job["result"]["href"].startswith(f"{ORG}/datafiles/")
    data = client.get(job["result"]["href"])
    assert data.status_code == 200
    return data.json()


def bulk(client, count, **fields):
    answer = client.put(f"{ORG}/workloads/bulk_create", json=[{"hostname": f"h{i}", **fields} for i in range(count)])
    assert all(item["status"] == "created" for item in answer.json())


def test_async_collection_returns_everything_beyond_the_plain_limit(client):
    bulk(client, 600)
    plain = client.get(f"{ORG}/workloads")
    assert len(plain.json()) == 500 and plain.headers["X-Total-Count"] == "600"
    everything = wait_for_datafile(client, client.get(f"{ORG}/workloads", headers={"Prefer": "respond-async"}))
    assert len(everything) == 600
    assert everything[0] == plain.json()[0]


def test_async_collection_applies_filters_and_max_results(client):
    bulk(client, 30)
    answer = client.get(f"{ORG}/workloads", params={"hostname": "h1"}, headers={"Prefer": "respond-async"})
    assert sorted(item["hostname"] for item in wait_for_datafile(client, answer)) == sorted(
        f"h{i}" for i in range(30) if "h1" in f"h{i}"
    )
    limited = client.get(f"{ORG}/workloads", params={"max_results": 5}, headers={"Prefer": "respond-async"})
    assert len(wait_for_datafile(client, limited)) == 5


def test_unknown_job_and_datafile_are_404(client):
    assert client.get(f"{ORG}/jobs/0b5e1c3e-0000-4000-8000-000000000000").status_code == 404
    assert client.get(f"{ORG}/datafiles/0b5e1c3e-0000-4000-8000-000000000000").status_code == 404
    assert client.get(f"{ORG}/datafiles/..%2F..%2Fpce.sqlite3").status_code == 404


def test_event_filters(client):
    client.post(f"{ORG}/labels", json={"key": "role", "value": "A"})
    stamp = client.get("/health").json()[0]["generated_at"]
    time.sleep(0.01)
    client.post(f"{ORG}/labels", json={"key": "role", "value": "B"})
    client.post(f"{ORG}/workloads", json={"hostname": "e1"})
    events = client.get(f"{ORG}/events").json()
    assert [event["event_type"] for event in events] == ["workload.create", "label.create", "label.create"]
    assert events[0]["href"].startswith(f"{ORG}/events/")
    only_labels = client.get(f"{ORG}/events", params={"event_type": "label.create"}).json()
    assert len(only_labels) == 2
    newer = client.get(f"{ORG}/events", params={"timestamp[gte]": stamp}).json()
    assert [event["event_type"] for event in newer] == ["workload.create", "label.create"]
    older = client.get(f"{ORG}/events", params={"timestamp[lte]": stamp}).json()
    assert [event["event_type"] for event in older] == ["label.create"]
    assert len(client.get(f"{ORG}/events", params={"max_results": 1}).json()) == 1
    assert client.get(f"{ORG}/events", params={"timestamp[gte]": "yesterday"}).status_code == 406


def test_events_recorded_for_the_ven_side_have_the_pce_shape(client):
    lab = client.lab
    lab.record_event(
        1,
        "agent.activate",
        {"agent": {"href": "/orgs/1/agents/3", "hostname": "web1"}},
        {"ven": {"href": "/orgs/1/vens/abc"}},
    )
    event = client.get(f"{ORG}/events", params={"event_type": "agent.activate"}).json()[0]
    assert event["created_by"] == {"agent": {"href": "/orgs/1/agents/3", "hostname": "web1"}}
    assert event["resource_changes"][0]["resource"] == {"ven": {"href": "/orgs/1/vens/abc"}}
    assert event["resource_changes"][0]["change_type"] == "create"  # the PCE's change types: create/update/delete
    assert {
        "href",
        "timestamp",
        "pce_fqdn",
        "created_by",
        "event_type",
        "status",
        "severity",
        "action",
        "resource_changes",
        "notifications",
    } == set(event)


def test_old_datafiles_are_pruned_when_new_jobs_start(client):
    import os

    stale = client.lab.datafiles / "0b5e1c3e-0000-4000-8000-000000000001.json"
    stale.write_text("[]")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    wait_for_datafile(client, client.get(f"{ORG}/labels", headers={"Prefer": "respond-async"}))
    assert not stale.exists()
