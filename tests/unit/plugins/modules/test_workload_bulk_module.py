"""workload_bulk against the fake PCE: chunks, idempotence, check mode, diff, per-item failures, deletion."""

from __future__ import annotations

import json

import pytest
from ansible_collections.microseg.illumio.plugins.modules import workload_bulk
from fake_pce_workloads import start_workload_pce
from module_runner import run_module


@pytest.fixture
def workload_pce(serve, tls_files):
    pce = start_workload_pce(serve, tls_files)
    for key, value in (("role", "web"), ("env", "prod"), ("env", "dev"), ("loc", "fra")):
        pce.add_label(key, value)
    return pce


def run(pce, check_mode=False, diff=False, **args):
    return run_module(workload_bulk.main, pce.connection(**args), check_mode=check_mode, diff=diff)


def items(count, env="prod"):
    return [
        {
            "hostname": f"h{n:05d}.example",
            "labels": {"role": "web", "env": env, "loc": "fra"},
            "interfaces": [{"name": "eth0", "address": f"10.0.{n // 256}.{n % 256}", "cidr_block": 16}],
            "os_type": "linux",
        }
        for n in range(count)
    ]


def bulk_calls(pce):
    return [(r.path.rsplit("/", 1)[-1], len(r.body)) for r in pce.changes()]


def test_creates_in_chunks_then_is_idempotent(workload_pce):
    created = run(workload_pce, workloads=items(2500))
    assert created["changed"] is True
    assert created["summary"] == {"created": 2500, "updated": 0, "deleted": 0, "unchanged": 0, "failed": 0}
    assert bulk_calls(workload_pce) == [("bulk_create", 1000), ("bulk_create", 1000), ("bulk_create", 500)]
    first = workload_pce.changes()[0].body[0]
    assert first["os_id"] == "linux" and "os_type" not in first
    assert len(first["labels"]) == 3
    assert len(created["created"]) == 2500

    again = run(workload_pce, workloads=items(2500))
    assert again["changed"] is False
    assert again["summary"]["unchanged"] == 2500
    assert len(workload_pce.changes()) == 3
    # The first run reads the workloads to plan, again right before creating (another run may have made some
    # meanwhile) and once after (to find duplicates made by a concurrent run): plain, plain, plain + async as
    # there are more than 500 by then. The second run only plans: a plain read, then the async one.
    reads = [r for r in workload_pce.requests if r.method == "GET" and r.path == "/api/v2/orgs/1/workloads"]
    assert len(reads) == 6
    assert workload_pce.async_reads == 2


def test_only_changed_items_are_updated_and_diff_shows_counts_and_capped_hostnames(workload_pce):
    run(workload_pce, workloads=items(150))
    changed = items(150)
    for item in changed[:120]:
        item["labels"]["env"] = "dev"
    changed.append({"hostname": "new.example", "labels": {"role": "web"}})
    result = run(workload_pce, diff=True, workloads=changed, batch_size=50)
    assert result["summary"] == {"created": 1, "updated": 120, "deleted": 0, "unchanged": 30, "failed": 0}
    assert bulk_calls(workload_pce)[1:] == [
        ("bulk_create", 1),
        ("bulk_update", 50),
        ("bulk_update", 50),
        ("bulk_update", 20),
    ]
    update = workload_pce.changes()[4].body[0]
    assert set(update) == {"href", "labels"}
    diff = result["diff"]
    assert diff["before"]["workloads"] == 150
    assert diff["after"]["workloads"] == 151
    assert len(diff["after"]["hostnames"]) == 101
    assert diff["after"]["hostnames"][-1] == "... and 21 more"
    assert "/orgs/" not in json.dumps(diff)


def test_check_mode_counts_and_changes_nothing(workload_pce):
    run(workload_pce, workloads=items(10))
    wanted = items(12, env="dev")
    preview = run(workload_pce, check_mode=True, workloads=wanted)
    assert preview["changed"] is True
    assert preview["summary"] == {"created": 2, "updated": 10, "deleted": 0, "unchanged": 0, "failed": 0}
    assert len(workload_pce.changes()) == 1
    gone = run(workload_pce, check_mode=True, workloads=[{"hostname": i["hostname"]} for i in wanted], state="absent")
    assert gone["summary"]["deleted"] == 10
    assert len(workload_pce.changes()) == 1


def test_bad_items_stop_the_run_before_any_change(workload_pce):
    wanted = [*items(3), {"hostname": "bad", "labels": {"env": "nope"}}, {"hostname": "h00000.example"}]
    result = run(workload_pce, workloads=wanted)
    assert result["failed"] is True
    assert result["changed"] is False
    assert "3 of 5 listed workloads cannot be created or updated, so nothing was changed" in result["msg"]
    # Both entries of the twice-listed hostname fail: the module does not guess which one is meant.
    assert sorted((f["hostname"], f["token"]) for f in result["failed_items"]) == [
        ("bad", "invalid_item"),
        ("h00000.example", "duplicate_hostname"),
        ("h00000.example", "duplicate_hostname"),
    ]
    assert workload_pce.changes() == []


def test_without_fail_on_item_errors_the_good_items_are_done(workload_pce):
    wanted = [*items(3), {"hostname": "bad", "interfaces": [{"name": "eth0", "address": "nope"}]}]
    result = run(workload_pce, workloads=wanted, fail_on_item_errors=False)
    assert result.get("failed") is not True
    assert result["summary"]["created"] == 3
    [failure] = result["failed_items"]
    assert failure["hostname"] == "bad"
    assert "interfaces[0].address is not a valid IP address" in failure["message"]


def test_items_the_pce_refuses_are_reported_and_fail_the_task(workload_pce):
    workload_pce.bulk_refuse.add("h00001.example")
    result = run(workload_pce, workloads=items(3))
    assert result["failed"] is True
    assert result["changed"] is True
    assert result["summary"]["created"] == 2
    assert result["failed_items"] == [
        {"hostname": "h00001.example", "token": "refused_for_test", "message": "refused h00001.example"}
    ]
    assert "1 of 3 listed workloads failed on the PCE" in result["msg"]


def test_managed_workloads_get_labels_in_bulk_but_are_not_deleted(workload_pce):
    workload_pce.add_workload("paired", managed=True, labels={"role": "web"})
    labelled = run(workload_pce, workloads=[{"hostname": "paired", "labels": {"role": "web", "env": "prod"}}])
    assert labelled["summary"]["updated"] == 1
    refused = run(workload_pce, workloads=[{"hostname": "paired", "public_ip": "198.51.100.1"}])
    assert refused["failed"] is True
    assert refused["failed_items"][0]["token"] == "managed_workload_property_read_only"
    gone = run(workload_pce, workloads=[{"hostname": "paired"}], state="absent")
    assert gone["failed"] is True
    assert gone["failed_items"][0]["token"] == "managed_workload_unpair_required"
    assert workload_pce.workload("paired") is not None


def test_absent_deletes_listed_workloads_once(workload_pce):
    run(workload_pce, workloads=items(5))
    run(workload_pce, workloads=[{"hostname": "keep"}])
    listed = [{"hostname": i["hostname"]} for i in items(5)] + [{"hostname": "never-existed"}]
    removed = run(workload_pce, diff=True, workloads=listed, state="absent")
    assert removed["summary"]["deleted"] == 5
    assert removed["diff"]["before"]["workloads"] == 5
    assert removed["diff"]["after"]["workloads"] == 0
    assert workload_pce.workload("keep") is not None
    assert run(workload_pce, workloads=listed, state="absent")["changed"] is False


def test_batch_size_is_checked(workload_pce):
    result = run(workload_pce, workloads=items(1), batch_size=1001)
    assert result["failed"] is True
    assert "batch_size must be from 1 to 1000" in result["msg"]
    assert workload_pce.requests == []


def test_items_are_checked_like_workload_options(workload_pce):
    result = run(
        workload_pce,
        workloads=[
            {"name": "x"},
            {"hostname": "a", "enforcement_mode": "enforced"},
            {"hostname": "b", "os_id": "linux", "os_type": "windows"},
            {"hostname": "c", "labels": ["role=web"]},
            {"hostname": "d", "ignored_interface_names": "docker0"},
        ],
    )
    assert result["failed"] is True
    messages = [failure["message"] for failure in result["failed_items"]]
    assert messages == [
        "workloads[2]: os_id and its alias os_type differ; give one of them",
        "workloads[0]: hostname is required",
        "workloads[1] (a): enforcement_mode must be one of idle, visibility_only, selective, full, got 'enforced'",
        "workloads[3] (c): labels must be a dict of label key: value, got ['role=web']",
        "workloads[4] (d): ignored_interface_names must be a list of interface names",
    ]
    assert workload_pce.changes() == []


def test_long_lists_are_shortened_in_the_invocation(workload_pce):
    result = run(workload_pce, workloads=items(25))
    shown = result["invocation"]["module_args"]["workloads"]
    assert len(shown) == 11
    assert shown[-1] == "... 15 more workloads"


def test_items_can_come_from_a_json_file(workload_pce, tmp_path):
    listed = tmp_path / "items.json"
    listed.write_text(json.dumps(items(3)))
    created = run(workload_pce, workloads_file=str(listed))
    assert created["summary"]["created"] == 3
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"workloads": items(3)}))
    assert run(workload_pce, workloads_file=str(wrapped))["changed"] is False


def test_a_bad_workloads_file_fails_clearly(workload_pce, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    not_a_list = tmp_path / "object.json"
    not_a_list.write_text('{"hostname": "x"}')
    for path, message in (
        (broken, "is not valid JSON"),
        (not_a_list, "must hold a JSON list of workloads"),
        (tmp_path / "missing.json", "cannot read workloads_file"),
    ):
        result = run(workload_pce, workloads_file=str(path))
        assert result["failed"] is True
        assert message in result["msg"]
    both = run(workload_pce, workloads=items(1), workloads_file=str(broken))
    assert "mutually exclusive" in both["msg"]
    neither = run(workload_pce)
    assert "one of the following is required: workloads, workloads_file" in neither["msg"]
    assert workload_pce.requests == []
