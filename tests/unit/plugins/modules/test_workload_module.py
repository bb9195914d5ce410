"""workload and workload_info against the fake PCE: unmanaged CRUD, managed restrictions, unpairing."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.modules import workload, workload_info
from fake_pce_workloads import start_workload_pce
from module_runner import run_module


@pytest.fixture
def workload_pce(serve, tls_files):
    return start_workload_pce(serve, tls_files)


def run(pce, check_mode=False, diff=False, **args):
    return run_module(workload.main, pce.connection(**args), check_mode=check_mode, diff=diff)


def info(pce, **args):
    return run_module(workload_info.main, pce.connection(**args))


DB = {
    "hostname": "db1.example.com",
    "name": "Database 1",
    "description": "no VEN",
    "labels": {"role": "db", "env": "prod"},
    "interfaces": [{"name": "eth0", "address": "10.1.2.3", "cidr_block": 24, "default_gateway_address": "10.1.2.1"}],
    "public_ip": "203.0.113.7",
    "os_type": "oracle-linux-8",
    "os_detail": "8.9",
    "data_center": "fra-1",
    "data_center_zone": "a",
    "service_provider": "colo",
    "external_data_set": "cmdb",
    "external_data_reference": "CI-1",
    "enforcement_mode": "visibility_only",
    "visibility_level": "flow_summary",
    "ignored_interface_names": ["docker0"],
}


def labels(pce, **pairs):
    return [pce.add_label(key, value)["href"] for key, value in pairs.items()]


def test_check_mode_predicts_creation_without_posting(workload_pce):
    labels(workload_pce, role="db", env="prod")
    result = run(workload_pce, check_mode=True, diff=True, **DB)
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["labels"] == {"role": "db", "env": "prod"}
    assert result["diff"]["after"]["os_id"] == "oracle-linux-8"
    assert "/orgs/" not in json.dumps(result["diff"])
    assert workload_pce.changes() == []


def test_create_then_idempotent(workload_pce):
    role, env = labels(workload_pce, role="db", env="prod")
    created = run(workload_pce, **DB)
    assert created["changed"] is True
    [post] = workload_pce.changes()
    assert post.path == "/api/v2/orgs/1/workloads"
    body = dict(post.body)
    assert sorted(body.pop("labels"), key=str) == sorted([{"href": role}, {"href": env}], key=str)
    assert body["interfaces"] == DB["interfaces"]
    assert body["os_id"] == "oracle-linux-8" and "os_type" not in body
    assert created["workload"]["labels"] == {"role": "db", "env": "prod"}
    assert created["workload"]["managed"] is False

    again = run(workload_pce, **DB)
    assert again["changed"] is False
    assert run(workload_pce, check_mode=True, **DB)["changed"] is False
    assert len(workload_pce.changes()) == 1


def test_update_sends_only_the_difference(workload_pce):
    labels(workload_pce, role="db", env="prod", loc="fra")
    existing = workload_pce.add_workload("w1", labels={"role": "db", "env": "prod"}, description="old")
    result = run(workload_pce, diff=True, hostname="w1", description="new", labels={"role": "db", "loc": "fra"})
    assert result["changed"] is True
    [put] = workload_pce.changes()
    assert put.path == "/api/v2" + existing["href"]
    assert set(put.body) == {"description", "labels"}
    assert result["diff"]["before"]["labels"] == {"role": "db", "env": "prod"}
    assert result["diff"]["after"]["labels"] == {"role": "db", "loc": "fra"}
    assert result["diff"]["after"]["description"] == "new"


def test_purge_labels_false_changes_only_the_keys_given(workload_pce):
    labels(workload_pce, role="db", env="prod", loc="fra")
    workload_pce.add_label("env", "dev")
    workload_pce.add_workload("w1", labels={"role": "db", "env": "prod", "loc": "fra"})
    result = run(workload_pce, hostname="w1", labels={"env": "dev", "loc": None}, purge_labels=False)
    assert result["workload"]["labels"] == {"role": "db", "env": "dev"}
    assert run(workload_pce, hostname="w1", labels={"env": "dev"}, purge_labels=False)["changed"] is False


def test_interfaces_in_another_order_are_no_change(workload_pce):
    workload_pce.add_workload(
        "w1",
        interfaces=[
            {"name": "eth1", "address": "fd00::1", "cidr_block": 64, "default_gateway_address": None},
            {"name": "eth0", "address": "10.0.0.1", "cidr_block": 24, "default_gateway_address": None},
        ],
    )
    interfaces = [
        {"name": "eth0", "address": "10.0.0.1", "cidr_block": 24},
        {"name": "eth1", "address": "FD00::1", "cidr_block": 64},
    ]
    assert run(workload_pce, hostname="w1", interfaces=interfaces)["changed"] is False


def test_found_by_name_when_no_hostname(workload_pce):
    existing = workload_pce.add_workload(None, name="appliance")
    result = run(workload_pce, name="appliance", description="x")
    assert result["changed"] is True
    assert result["workload"]["href"] == existing["href"]


def test_managed_workload_labels_and_modes_change(workload_pce):
    labels(workload_pce, role="web", env="prod")
    managed = workload_pce.add_workload(
        "web1",
        managed=True,
        labels={"role": "web"},
        interfaces=[{"name": "eth0", "address": "10.0.0.5", "cidr_block": 24}],
    )
    result = run(
        workload_pce, hostname="web1", labels={"role": "web", "env": "prod"}, enforcement_mode="full", name="Web 1"
    )
    assert result["changed"] is True
    assert set(workload_pce.changes()[0].body) == {"labels", "enforcement_mode", "name"}
    assert result["workload"]["managed"] is True
    # What the VEN reported may be repeated unchanged.
    same = run(workload_pce, hostname="web1", interfaces=[{"name": "eth0", "address": "10.0.0.5", "cidr_block": 24}])
    assert same["changed"] is False
    assert managed["enforcement_mode"] == "full"


def test_managed_workload_refuses_other_changes_before_sending(workload_pce):
    workload_pce.add_workload("web1", managed=True)
    result = run(
        workload_pce, hostname="web1", interfaces=[{"name": "eth0", "address": "10.9.9.9"}], public_ip="1.2.3.4"
    )
    assert result["failed"] is True
    assert "managed by a VEN" in result["msg"]
    assert "interfaces, public_ip" in result["msg"]
    assert workload_pce.changes() == []


def test_absent_deletes_unmanaged_once(workload_pce):
    existing = workload_pce.add_workload("w1")
    preview = run(workload_pce, check_mode=True, diff=True, hostname="w1", state="absent")
    assert preview["changed"] is True and preview["diff"]["after"] == {}
    assert workload_pce.changes() == []
    removed = run(workload_pce, hostname="w1", state="absent")
    assert removed["changed"] is True and removed["unpaired"] is False
    assert [(r.method, r.path) for r in workload_pce.changes()] == [("DELETE", "/api/v2" + existing["href"])]
    assert run(workload_pce, hostname="w1", state="absent")["changed"] is False


def test_absent_unpairs_a_managed_workload(workload_pce):
    managed = workload_pce.add_workload("web1", managed=True)
    preview = run(workload_pce, check_mode=True, hostname="web1", state="absent")
    assert preview["changed"] is True and preview["unpaired"] is True
    assert workload_pce.changes() == []
    removed = run(workload_pce, hostname="web1", state="absent", firewall_restore="default")
    assert removed["changed"] is True and removed["unpaired"] is True
    [put] = workload_pce.changes()
    assert (put.path, put.body) == (
        "/api/v2/orgs/1/vens/unpair",
        {"vens": [{"href": managed["ven"]["href"]}], "firewall_restore": "default"},
    )
    assert run(workload_pce, hostname="web1", state="absent")["changed"] is False


def test_bad_input_fails_clearly_without_changes(workload_pce):
    for args, message in (
        ({"interfaces": [{"name": "eth0", "address": "300.1.1.1"}]}, "interfaces[0].address is not a valid IP address"),
        ({"public_ip": "nope"}, "public_ip is not a valid IP address"),
        ({"labels": {"env": "nope"}}, "label env=nope does not exist on the PCE"),
        ({"hostname": ""}, "hostname or name must be given and not empty"),
    ):
        result = run(workload_pce, **{"hostname": "w1", **args})
        assert result["failed"] is True, args
        assert message in result["msg"]
    assert run(workload_pce, description="x")["msg"] == "one of the following is required: hostname, name"
    assert workload_pce.changes() == []


def test_two_workloads_with_the_hostname_are_an_error(workload_pce):
    workload_pce.add_workload("twin")
    workload_pce.add_workload("twin")
    result = run(workload_pce, hostname="twin", description="x")
    assert result["failed"] is True
    assert "2 workloads have hostname 'twin'" in result["msg"]


def test_info_filters_exactly_and_shows_user_form(workload_pce):
    labels(workload_pce, role="web", env="prod")
    workload_pce.add_workload("web1", managed=True, labels={"role": "web", "env": "prod"}, enforcement_mode="full")
    workload_pce.add_workload("web10", labels={"role": "web"})
    workload_pce.add_workload("db1", labels={"env": "prod"}, online=True)

    def hostnames(**args):
        return [w["hostname"] for w in info(workload_pce, **args)["workloads"]]

    assert hostnames() == ["db1", "web1", "web10"]
    assert hostnames(hostname="web1") == ["web1"]
    assert hostnames(labels={"role": "web"}) == ["web1", "web10"]
    assert hostnames(labels={"role": "web", "env": "prod"}) == ["web1"]
    assert hostnames(labels={"role": "nope"}) == []
    assert hostnames(managed=True) == ["web1"]
    assert hostnames(managed=False, online=True) == ["db1"]
    assert hostnames(enforcement_mode="full") == ["web1"]
    web1 = info(workload_pce, hostname="web1")["workloads"][0]
    assert web1["labels"] == {"role": "web", "env": "prod"}
    assert web1["managed"] is True and web1["ven_href"].startswith("/orgs/1/vens/")


def test_info_lists_deleted_workloads_only_when_asked(workload_pce):
    workload_pce.add_workload("gone")
    workload_pce.add_workload("here")
    assert run(workload_pce, hostname="gone", state="absent")["changed"] is True

    assert [w["hostname"] for w in info(workload_pce)["workloads"]] == ["here"]
    assert info(workload_pce)["workloads"][0]["deleted"] is False
    found = info(workload_pce, include_deleted=True)["workloads"]
    assert [(w["hostname"], w["deleted"]) for w in found] == [("gone", True), ("here", False)]
    reads = [r for r in workload_pce.requests if r.method == "GET" and r.path.endswith("/workloads")]
    assert [r.query.get("include_deleted") for r in reads] == [None, None, None, "true"]


def test_info_reads_large_collections_completely(workload_pce):
    for n in range(620):
        workload_pce.add_workload(f"h{n:04d}")
    # Plain answers stop at 500; the rest comes through an async request.
    found = info(workload_pce)
    assert len(found["workloads"]) == 620
    assert workload_pce.async_reads == 1
