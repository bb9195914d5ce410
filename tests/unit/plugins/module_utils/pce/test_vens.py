"""VEN selection, health, upgrade planning and waiting, against a stub client (no HTTP)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.vens import (
    VenReader,
    check_release,
    describe_errors,
    pending_upgrades,
    plan_upgrade,
    request_upgrade,
    select_vens,
    summary,
    ven_health,
    ven_online,
    version_key,
    wait_for_release,
)

LABELS = [
    {"href": "/orgs/1/labels/1", "key": "role", "value": "web"},
    {"href": "/orgs/1/labels/2", "key": "env", "value": "prod"},
]
MISSED_HEARTBEATS = {
    "first_reported_timestamp": "2022-08-01T17:31:40.669Z",
    "latest_event": {
        "notification_type": "agent.missed_heartbeats",
        "severity": "warning",
        "href": "/orgs/1/events/0d2cec5f",
        "info": {"agent": {"hostname": "db1", "href": "/orgs/1/agents/16"}},
        "timestamp": "2022-08-01T17:31:40.669Z",
    },
}
UPGRADE_TIMED_OUT = {
    "first_reported_timestamp": "2022-08-13T00:38:32.196Z",
    "latest_event": {
        "notification_type": "agent.upgrade_time_out",
        "severity": "warning",
        "href": "/orgs/1/events/63bdd849",
        "info": {"current_version": "23.2.10-100", "desired_version": "23.2.20-200", "href": "/orgs/1/vens/3"},
        "timestamp": "2022-08-13T00:38:32.196Z",
    },
}


def ven(number, hostname, version="23.2.10-100", status="active", labels=(), conditions=(), caps=None):
    return {
        "href": f"/orgs/1/vens/{number}",
        "name": None,
        "hostname": hostname,
        "version": version,
        "status": status,
        "labels": [{"href": href} for href in labels],
        "workloads": [{"href": f"/orgs/1/workloads/{number}"}],
        "last_heartbeat_at": "2026-01-01T00:00:00.000Z",
        "conditions": list(conditions),
        "caps": ["write", "upgrade"] if caps is None else caps,
    }


class StubClient:
    """VENs and events from memory; records queries and PUTs."""

    def __init__(self, vens=(), events=(), put_answer=None, events_error=None):
        self.vens = {doc["href"]: doc for doc in vens}
        self.events = list(events)
        self.put_answer = put_answer if put_answer is not None else {"errors": []}
        self.events_error = events_error
        self.queries = []
        self.puts = []

    def org_path(self, rel):
        return "/orgs/1/" + rel

    def get_collection(self, path, params=None):
        if path.endswith("labels"):
            return LABELS
        self.queries.append(dict(params or {}))
        found = list(self.vens.values())
        if params and "hostname" in params:
            found = [doc for doc in found if params["hostname"] in doc["hostname"]]
        return found

    def get(self, path, params=None):
        if path.endswith("/events"):
            if self.events_error:
                raise self.events_error
            return self.events
        if path.startswith("/orgs/1/workloads/"):
            number = path.rsplit("/", 1)[1]
            if number == "404":
                raise PceError(f"not found: {path}", status=404)
            if number == "unmanaged":
                return {"href": path, "hostname": "plain", "ven": None}
            return {"href": path, "hostname": "x", "ven": {"href": f"/orgs/1/vens/{number}"}}
        if path not in self.vens:
            raise PceError(f"not found: {path}", status=404)
        return self.vens[path]

    def put(self, path, data=None):
        self.puts.append((path, data))
        if isinstance(self.put_answer, Exception):
            raise self.put_answer
        return self.put_answer


def params(**given):
    base = dict.fromkeys(("hostnames", "hrefs", "workload_hrefs", "labels", "status", "version", "health", "condition"))
    base.update(given)
    return base


def requested(href, release):
    return {
        "event_type": "agent.upgrade_requested",
        "status": "success",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "resource_changes": [{"resource": {"ven": {"href": href}}, "changes": {"release": release}}],
    }


# --- versions and health ---------------------------------------------------------------------------------------
def test_version_key_orders_releases_numerically():
    assert version_key("21.5.30-8527") == (21, 5, 30, 8527)
    assert version_key("23.2.9-1") < version_key("23.2.10-1")
    assert version_key(None) == ()


@pytest.mark.parametrize("release", ["23.2.20-200", "21.5.30", " 24.1.0-1 "])
def test_check_release_accepts_library_names(release):
    assert check_release(release) == release.strip()


@pytest.mark.parametrize("release", ["", None, "latest", "23.2.20-200; rm", "v23.2"])
def test_check_release_refuses_other_text(release):
    with pytest.raises(PceError, match="release must be a VEN release"):
        check_release(release)


def test_health_and_online_follow_status_and_conditions():
    healthy = ven(1, "web1")
    missed = ven(2, "db1", conditions=[MISSED_HEARTBEATS])
    suspended = ven(3, "db2", status="suspended")
    broken = ven(4, "db3", conditions=[{"latest_event": {"notification_type": "agent.tampering", "severity": "err"}}])
    assert (ven_health(healthy), ven_online(healthy)) == ("healthy", True)
    assert (ven_health(missed), ven_online(missed)) == ("warning", False)
    assert (ven_health(suspended), ven_online(suspended)) == ("healthy", False)
    assert ven_health(broken) == "error"


def test_view_shows_labels_conditions_and_workloads():
    reader = VenReader(StubClient())
    shown = reader.view(ven(3, "db1", labels=["/orgs/1/labels/1"], conditions=[UPGRADE_TIMED_OUT]))
    assert shown["labels"] == {"role": "web"}
    assert shown["workload_href"] == "/orgs/1/workloads/3"
    assert shown["conditions"][0]["type"] == "agent.upgrade_time_out"
    assert shown["conditions"][0]["info"]["desired_version"] == "23.2.20-200"
    assert shown["health"] == "warning"
    assert shown["can_upgrade"] is True


def test_summary_counts_by_version_status_and_health():
    reader = VenReader(StubClient())
    views = [reader.view(v) for v in (ven(1, "a"), ven(2, "b", "23.2.20-200"), ven(3, "c", status="stopped"))]
    counts = summary(views)
    assert counts["total"] == 3
    assert counts["by_version"] == {"23.2.10-100": 2, "23.2.20-200": 1}
    assert counts["by_status"] == {"active": 2, "stopped": 1}
    assert counts["by_health"] == {"healthy": 3}


# --- selection --------------------------------------------------------------------------------------------------
def test_filters_only_go_to_the_pce_and_are_checked_again():
    client = StubClient([ven(1, "web1", labels=["/orgs/1/labels/1"]), ven(2, "web2", status="suspended")])
    selection = select_vens(VenReader(client), params(labels={"role": "web"}, status="active", health="healthy"))
    assert [doc["hostname"] for doc in selection.vens] == ["web1"]
    query = client.queries[-1]
    assert json.loads(query["labels"]) == [["/orgs/1/labels/1"]]
    assert query["status"] == "active" and query["health"] == "healthy"


def test_hostnames_match_exactly_and_missing_ones_are_listed():
    client = StubClient([ven(1, "web1"), ven(2, "web10"), ven(3, "web10")])
    selection = select_vens(VenReader(client), params(hostnames=["web1", "web10", "nope"]))
    assert [doc["href"] for doc in selection.vens] == ["/orgs/1/vens/1", "/orgs/1/vens/2", "/orgs/1/vens/3"]
    assert selection.missing["hostnames"] == ["nope"]
    assert selection.ambiguous == {"web10": ["/orgs/1/vens/2", "/orgs/1/vens/3"]}


def test_hrefs_and_workloads_resolve_and_unknown_ones_are_listed():
    client = StubClient([ven(1, "web1"), ven(2, "web2")])
    selection = select_vens(
        VenReader(client),
        params(
            hrefs=["/orgs/1/vens/1", "/orgs/1/vens/9"], workload_hrefs=["/orgs/1/workloads/2", "/orgs/1/workloads/404"]
        ),
    )
    assert [doc["hostname"] for doc in selection.vens] == ["web1", "web2"]
    assert selection.missing["hrefs"] == ["/orgs/1/vens/9"]
    assert selection.missing["workload_hrefs"] == ["/orgs/1/workloads/404"]


def test_unmanaged_workload_and_bad_hrefs_are_errors():
    reader = VenReader(StubClient())
    with pytest.raises(PceError, match="unmanaged"):
        select_vens(reader, params(workload_hrefs=["/orgs/1/workloads/unmanaged"]))
    with pytest.raises(PceError, match="not a VEN href"):
        select_vens(reader, params(hrefs=["/orgs/1/labels/1"]))


def test_a_label_that_does_not_exist_selects_nothing_without_listing():
    client = StubClient([ven(1, "web1")])
    selection = select_vens(VenReader(client), params(labels={"role": "nope"}))
    assert selection.vens == []
    assert client.queries == []


# --- upgrades ---------------------------------------------------------------------------------------------------
def test_plan_skips_current_and_pending_and_refuses_downgrades():
    vens = [
        ven(1, "current", "23.2.20-200"),
        ven(2, "pending"),
        ven(3, "timed-out", conditions=[UPGRADE_TIMED_OUT]),
        ven(4, "newer", "24.1.0-1"),
        ven(5, "locked", caps=["write"]),
        ven(6, "todo"),
    ]
    events = [requested("/orgs/1/vens/2", "23.2.20-200"), requested("/orgs/1/vens/3", "23.2.20-200")]
    plan = plan_upgrade(StubClient(vens, events), vens, "23.2.20-200")
    assert [doc["hostname"] for doc in plan.current] == ["current"]
    assert [doc["hostname"] for doc in plan.pending] == ["pending"]
    assert [doc["hostname"] for doc in plan.upgrade] == ["timed-out", "todo"]
    assert [entry["hostname"] for entry in plan.refused] == ["newer", "locked"]
    assert "does not downgrade" in plan.refused[0]["reason"]


def test_force_sends_pending_ones_again():
    vens = [ven(2, "pending")]
    plan = plan_upgrade(StubClient(vens, [requested("/orgs/1/vens/2", "23.2.20-200")]), vens, "23.2.20-200", force=True)
    assert [doc["hostname"] for doc in plan.upgrade] == ["pending"]


def test_pending_upgrades_use_the_newest_request_and_tolerate_forbidden_events():
    events = [requested("/orgs/1/vens/2", "23.2.30-300"), requested("/orgs/1/vens/2", "23.2.20-200")]
    events[1]["timestamp"] = "2025-01-01T00:00:00.000Z"
    assert pending_upgrades(StubClient(events=events), ["/orgs/1/vens/2"]) == {"/orgs/1/vens/2": "23.2.30-300"}
    forbidden = StubClient(events_error=PceError("denied", status=403))
    assert pending_upgrades(forbidden, ["/orgs/1/vens/2"]) == {}
    broken = StubClient(events_error=PceError("boom", status=500))
    with pytest.raises(PceError, match="boom"):
        pending_upgrades(broken, ["/orgs/1/vens/2"])


def test_request_upgrade_body_and_errors():
    client = StubClient(
        put_answer={"errors": [{"token": "invalid_release", "message": "no", "hrefs": ["/orgs/1/vens/1"]}]}
    )
    errors = request_upgrade(client, [ven(1, "web1")], "9.9.9-9", dry_run=True)
    assert client.puts == [
        ("/orgs/1/vens/upgrade", {"vens": [{"href": "/orgs/1/vens/1"}], "release": "9.9.9-9", "dry_run": True})
    ]
    assert describe_errors(errors, {"/orgs/1/vens/1": ven(1, "web1")}) == ["no (invalid_release): web1"]
    assert request_upgrade(client, [], "9.9.9-9") == []


def test_request_upgrade_turns_a_pce_refusal_into_one_message():
    client = StubClient(put_answer=PceError("PCE rejected the request: bad release (invalid_release)", status=406))
    with pytest.raises(PceError, match=r"refused to upgrade 1 VEN.* bad release") as raised:
        request_upgrade(client, [ven(1, "web1")], "9.9.9-9")
    assert raised.value.status == 406


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_returns_once_every_ven_is_ready():
    doc = ven(1, "web1")
    client = StubClient([doc])
    clock = Clock()

    def sleep(seconds):
        clock.sleep(seconds)
        doc["version"] = "23.2.20-200"

    latest = wait_for_release(VenReader(client), ["/orgs/1/vens/1"], "23.2.20-200", 60, 5, sleep=sleep, clock=clock)
    assert latest["/orgs/1/vens/1"]["version"] == "23.2.20-200"
    assert clock.sleeps == [5]


def test_wait_times_out_naming_the_laggards():
    client = StubClient(
        [ven(1, "web1", "23.2.20-200"), ven(2, "web2"), ven(3, "web3", "23.2.20-200", status="stopped")]
    )
    clock = Clock()
    hrefs = ["/orgs/1/vens/1", "/orgs/1/vens/2", "/orgs/1/vens/3"]
    with pytest.raises(PceError) as raised:
        wait_for_release(VenReader(client), hrefs, "23.2.20-200", 12, 5, sleep=clock.sleep, clock=clock)
    message = str(raised.value)
    assert "2 of 3 VEN(s) did not report release 23.2.20-200" in message
    assert "web2 (/orgs/1/vens/2): version 23.2.10-100" in message
    assert "web3 (/orgs/1/vens/3): status stopped" in message
    assert "web1" not in message
    assert raised.value.laggards == ["/orgs/1/vens/2", "/orgs/1/vens/3"]
    assert sum(clock.sleeps) == 12
