"""Workload planning without HTTP: normalising what users write, comparing, and the bulk plan."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.workloads import (
    WorkloadPlanner,
    _bulk_problem,
    is_managed,
    label_spec,
    normalize_interface,
    plan_bulk,
    run_bulk,
    same_interfaces,
)

LABELS = [
    {"href": "/orgs/1/labels/1", "key": "role", "value": "web"},
    {"href": "/orgs/1/labels/2", "key": "env", "value": "prod"},
    {"href": "/orgs/1/labels/3", "key": "env", "value": "dev"},
    {"href": "/orgs/1/labels/4", "key": "loc", "value": "fra"},
]


class StubClient:
    """Just enough of PceClient for planning: collections from memory, bulk PUTs recorded."""

    def __init__(self, workloads=(), bulk_answers=None):
        self.workloads = list(workloads)
        self.bulk_answers = bulk_answers or {}
        self.puts = []
        self.reads = []

    def org_path(self, rel):
        return "/orgs/1/" + rel

    def get_collection(self, path, params=None):
        self.reads.append(path)
        return LABELS if path.endswith("labels") else self.workloads

    def put(self, path, data=None):
        self.puts.append((path, data))
        answer = self.bulk_answers.get(path.rsplit("/", 1)[-1])
        if isinstance(answer, Exception):
            raise answer
        if answer is not None:
            return answer(data)
        status = {"bulk_create": "created", "bulk_update": "updated", "bulk_delete": "deleted"}[path.rsplit("/", 1)[1]]
        return [{"href": "/orgs/1/workloads/x", "status": status} for _item in data]


def doc(hostname, labels=(), managed=False, **fields):
    found = [dict(label) for label in LABELS if label["href"] in labels]
    workload = {
        "href": f"/orgs/1/workloads/{hostname}",
        "hostname": hostname,
        "labels": found,
        "interfaces": [],
        "ven": {"href": f"/orgs/1/vens/{hostname}"} if managed else None,
        "agent": {"href": None},
        "enforcement_mode": "idle",
    }
    workload.update(fields)
    return workload


def test_interfaces_are_normalised_and_checked():
    assert normalize_interface({"name": "eth0", "address": "2001:DB8:0::1", "cidr_block": "64"}, "i") == {
        "name": "eth0",
        "address": "2001:db8::1",
        "cidr_block": 64,
        "default_gateway_address": None,
    }
    with pytest.raises(PceError, match=r"i.address is not a valid IP address: '10.0.0.300'"):
        normalize_interface({"name": "eth0", "address": "10.0.0.300"}, "i")
    with pytest.raises(PceError, match="prefix length from 0 to 32"):
        normalize_interface({"name": "eth0", "address": "10.0.0.1", "cidr_block": 33}, "i")
    with pytest.raises(PceError, match="both be IPv4 or both IPv6"):
        normalize_interface({"name": "eth0", "address": "10.0.0.1", "default_gateway_address": "fe80::1"}, "i")
    with pytest.raises(PceError, match=r"i\.name is required"):
        normalize_interface({"address": "10.0.0.1"}, "i")
    with pytest.raises(PceError, match="unknown field mac"):
        normalize_interface({"name": "eth0", "address": "10.0.0.1", "mac": "x"}, "i")


def test_interfaces_compare_as_sets_of_the_four_fields():
    current = [
        {"name": "eth1", "address": "10.0.0.2", "cidr_block": None, "link_state": "up", "network": {"href": "/n"}},
        {"name": "eth0", "address": "10.0.0.1", "cidr_block": 24, "default_gateway_address": "10.0.0.254"},
    ]
    wanted = [
        normalize_interface(
            {"name": "eth0", "address": "10.0.0.1", "cidr_block": 24, "default_gateway_address": "10.0.0.254"}, "i"
        ),
        normalize_interface({"name": "eth1", "address": "10.0.0.2"}, "i"),
    ]
    assert same_interfaces(current, wanted)
    assert not same_interfaces(current, wanted[:1])


def test_label_spec_with_and_without_purge():
    assert label_spec({"role": "web", "env": None}, "labels", purge=True) == {"role": "web"}
    assert label_spec({"role": "web", "env": None}, "labels", purge=False) == {"role": "web", "env": None}
    assert label_spec(None, "labels", purge=True) is None
    with pytest.raises(PceError, match="value of label key env must be a non-empty string"):
        label_spec({"env": ""}, "labels", purge=True)


def test_labels_replace_the_set_with_purge_and_change_per_key_without():
    current = doc("w1", labels=["/orgs/1/labels/1", "/orgs/1/labels/2"])
    purging = WorkloadPlanner(StubClient())
    assert purging.changes(current, {}, {"env": "dev"}) == {"labels": [{"href": "/orgs/1/labels/3"}]}
    assert purging.changes(current, {}, {"role": "web", "env": "prod"}) == {}
    keeping = WorkloadPlanner(StubClient(), purge_labels=False)
    assert keeping.changes(current, {}, {"env": "dev"}) == {
        "labels": [{"href": "/orgs/1/labels/3"}, {"href": "/orgs/1/labels/1"}]
    }
    assert keeping.changes(current, {}, {"env": None}) == {"labels": [{"href": "/orgs/1/labels/1"}]}
    assert keeping.changes(current, {}, {"loc": None}) == {}


def test_unknown_label_names_the_label():
    with pytest.raises(PceError, match="label env=test does not exist on the PCE"):
        WorkloadPlanner(StubClient()).changes(doc("w1"), {}, {"env": "test"})


def test_text_none_and_empty_are_the_same_and_ips_compare_canonically():
    planner = WorkloadPlanner(StubClient())
    current = doc("w1", description=None, public_ip="2001:db8::7")
    wanted = planner.wanted({"description": "", "public_ip": "2001:DB8:0:0::7"})
    assert planner.changes(current, wanted, None) == {}


def test_view_is_user_form():
    planner = WorkloadPlanner(StubClient())
    shown = planner.view(doc("w1", labels=["/orgs/1/labels/1"], managed=True))
    assert shown["labels"] == {"role": "web"}
    assert shown["managed"] is True
    diff = planner.diff_view(doc("w1", labels=["/orgs/1/labels/1"]))
    assert "href" not in diff and "ven_href" not in diff
    assert "/orgs/" not in str(diff)


def test_managed_means_a_ven_or_an_agent_href():
    assert is_managed({"ven": {"href": "/orgs/1/vens/1"}})
    assert is_managed({"ven": None, "agent": {"href": "/orgs/1/agents/1"}})
    assert not is_managed({"ven": None, "agent": {"href": None, "status": None}})


def test_bulk_plan_sorts_items_into_create_update_unchanged_and_failures():
    existing = [
        doc("same", labels=["/orgs/1/labels/1"]),
        doc("differs", labels=["/orgs/1/labels/1"]),
        doc("managed", labels=["/orgs/1/labels/1"], managed=True),
        doc("twin"),
        doc("twin"),
    ]
    planner = WorkloadPlanner(StubClient())
    items = [
        {"hostname": "same", "labels": {"role": "web"}},
        {"hostname": "differs", "labels": {"role": "web", "env": "prod"}},
        {"hostname": "new", "labels": {"role": "web"}, "interfaces": [{"name": "eth0", "address": "10.0.0.9"}]},
        {"hostname": "managed", "labels": {"env": "dev"}},
        {"hostname": "managed-bad", "public_ip": "10.1.1.1"},
        {"hostname": "dup"},
        {"hostname": "dup"},
        {"hostname": "twin"},
        {"hostname": "bad-label", "labels": {"env": "nope"}},
        {"hostname": "bad-field", "color": "red"},
        {"name": "no hostname"},
    ]
    existing.append(doc("managed-bad", managed=True))
    plan = plan_bulk(planner, items, "present", existing)
    assert [hostname for hostname, _payload in plan.create] == ["new"]
    assert plan.create[0][1] == {
        "hostname": "new",
        "interfaces": [{"name": "eth0", "address": "10.0.0.9"}],
        "labels": [{"href": "/orgs/1/labels/1"}],
    }
    assert list(plan.update) == [
        (
            "differs",
            {
                "href": "/orgs/1/workloads/differs",
                "labels": [{"href": "/orgs/1/labels/2"}, {"href": "/orgs/1/labels/1"}],
            },
        ),
        ("managed", {"href": "/orgs/1/workloads/managed", "labels": [{"href": "/orgs/1/labels/3"}]}),
    ]
    assert plan.unchanged == ["same"]
    tokens = {(f["hostname"], f["token"]) for f in plan.failed}
    assert tokens == {
        ("managed-bad", "managed_workload_property_read_only"),
        ("dup", "duplicate_hostname"),
        ("twin", "ambiguous_hostname"),
        ("bad-label", "invalid_item"),
        ("bad-field", "invalid_item"),
        (None, "invalid_item"),
    }


def test_bulk_absent_deletes_unmanaged_and_refuses_managed():
    existing = [doc("old"), doc("paired", managed=True)]
    plan = plan_bulk(
        WorkloadPlanner(StubClient()), [{"hostname": h} for h in ("old", "paired", "gone")], "absent", existing
    )
    assert plan.delete == [("old", {"href": "/orgs/1/workloads/old"})]
    assert [(f["hostname"], f["token"]) for f in plan.failed] == [("paired", "managed_workload_unpair_required")]


def test_run_bulk_chunks_and_maps_item_results():
    def answer(items):
        return [
            {"href": None, "status": "error", "token": "bad", "message": "no"}
            if i["hostname"] == "h3"
            else {"href": "/x", "status": "created"}
            for i in items
        ]

    client = StubClient(bulk_answers={"bulk_create": answer})
    entries = [(f"h{n}", {"hostname": f"h{n}"}) for n in range(5)]
    failed = []
    done = run_bulk(client, WorkloadPlanner(client), "bulk_create", entries, 2, failed)
    assert [len(data) for _path, data in client.puts] == [2, 2, 1]
    assert done == ["h0", "h1", "h2", "h4"]
    assert failed == [{"hostname": "h3", "token": "bad", "message": "no"}]


def test_run_bulk_reports_a_refused_request_for_each_item_of_it():
    client = StubClient(bulk_answers={"bulk_update": PceError("PCE says no", token="too_big")})
    failed = []
    done = run_bulk(client, WorkloadPlanner(client), "bulk_update", [("a", {}), ("b", {})], 1000, failed)
    assert done == []
    assert failed == [
        {"hostname": "a", "token": "too_big", "message": "PCE says no"},
        {"hostname": "b", "token": "too_big", "message": "PCE says no"},
    ]


@pytest.mark.parametrize(
    ("outcome", "problem"),
    [
        ({"href": "/x", "status": "created"}, None),
        (
            {"href": "/x", "status": "created", "errors": [{"token": "t", "message": "m"}]},
            {"token": "t", "message": "m"},
        ),
        ({"status": "validation_failure", "errors": [{"token": "t", "message": "m"}]}, {"token": "t", "message": "m"}),
        (None, {"token": "no_result", "message": "the PCE returned no result for this item"}),
    ],
)
def test_bulk_outcomes(outcome, problem):
    assert _bulk_problem(outcome, "created") == problem
