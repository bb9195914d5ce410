"""module_utils/flows/writers.py: the PCE's upload CSV, JSON lines, and the bounded spool."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.flows.aggregate import AggregateRow, FlowAggregate
from ansible_collections.microseg.illumio.plugins.module_utils.flows.parsers import SummaryRow
from ansible_collections.microseg.illumio.plugins.module_utils.flows.writers import (
    Spool,
    csv_line,
    csv_text,
    json_line,
    write_csv,
    write_jsonl,
)


def row(number: int = 1, **changes) -> AggregateRow:
    values = {
        "src": f"10.0.{number // 250}.{number % 250 + 1}",
        "dst": "10.9.0.1",
        "dst_port": 443,
        "proto": 6,
        "decision": "allowed",
        "count": 3,
        "first": 1700000000.25,
        "last": 1700000100.5,
        "bytes_in": 10,
        "bytes_out": 20,
    }
    values.update(changes)
    return AggregateRow(**values)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- CSV / JSON lines -------------------------------------------------------------------------------------------


def test_csv_lines_in_the_upload_format():
    assert csv_line(row()) == "10.0.0.2,10.9.0.1,443,6,3,1700000000,1700000101"
    assert csv_line(row(first=1700000000.0, last=1700000000.0)) == "10.0.0.2,10.9.0.1,443,6,3,1700000000,1700000000"
    assert csv_line(row(src="fd00::1", dst="fd00::2", proto=58, dst_port=0)) == (
        "fd00::1,fd00::2,0,58,3,1700000000,1700000101"
    )
    assert csv_line(row(first=None, last=None)) == "10.0.0.2,10.9.0.1,443,6,3"
    assert csv_line(row(first=None, last=5.5)) == "10.0.0.2,10.9.0.1,443,6,3,5,6"
    summary = SummaryRow("10.0.0.1", "10.0.0.2", 22, 6, "allowed", 2, 1.0, 2.0, None, None)
    assert csv_line(summary) == "10.0.0.1,10.0.0.2,22,6,2,1,2"


def test_csv_lines_are_what_the_lab_pce_accepts():
    traffic = pytest.importorskip("pcelab.api.traffic")
    rows = [row(), row(src="fd00::1", dst="fd00::2", proto=17, dst_port=53), row(first=None, last=None)]
    for text in csv_text(rows).splitlines():
        flow = traffic.parse_csv_line(text, now=1800000000.0)
        assert flow.num_connections == 3
    parsed = traffic.parse_csv_line(csv_line(row()), now=0.0)
    assert (parsed.src_ip, parsed.dst_ip, parsed.dst_port, parsed.proto) == ("10.0.0.2", "10.9.0.1", 443, 6)


def test_aggregate_rows_to_files(tmp_path):
    aggregate = FlowAggregate()
    aggregate.add_vtap_lines(
        [
            "2020-02-03T16:47:15.104-08:00 docker0 0 0 4 192.168.125.208 172.17.0.2 6 64886 80 12286 C 0 U "
            "SWID=3c1b9f96-969a-472e-bbbc-9d1c93751ef9 TBI=0 TB0=116"
        ]
    )
    target = tmp_path / "flows.csv"
    assert write_csv(str(target), aggregate.rows()) == 1
    assert target.read_text() == "192.168.125.208,172.17.0.2,80,6,1,1580777235,1580777236\n"
    assert mode(target) == 0o600
    jsonl = tmp_path / "flows.jsonl"
    assert write_jsonl(str(jsonl), aggregate.rows()) == 1
    record = json.loads(jsonl.read_text())
    assert record == {
        "src": "192.168.125.208",
        "dst": "172.17.0.2",
        "dst_port": 80,
        "proto": 6,
        "decision": "allowed",
        "count": 1,
        "first": pytest.approx(1580777235.104),
        "last": pytest.approx(1580777235.104),
        "bytes_in": 0,
        "bytes_out": 116,
    }
    assert json_line(aggregate.rows()[0]).startswith('{"bytes_in":0,')
    assert mode(jsonl) == 0o600


def test_writes_replace_files_atomically(tmp_path):
    target = tmp_path / "flows.csv"
    target.write_text("old\n")
    target.chmod(0o644)
    write_csv(str(target), [row()])
    assert target.read_text().count("\n") == 1
    assert mode(target) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["flows.csv"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "flows.csv"
    target.write_text("old\n")

    class Broken(AggregateRow):
        @property
        def src(self):
            raise RuntimeError("boom")

    bad = Broken(*row())
    with pytest.raises(RuntimeError):
        write_csv(str(target), [row(), bad])
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["flows.csv"]


# --- the spool --------------------------------------------------------------------------------------------------


def test_spool_splits_into_files_of_at_most_max_lines(tmp_path):
    spool = Spool(str(tmp_path / "spool"), max_lines=4, max_bytes=10**6)
    result = spool.write([row(n) for n in range(10)], now=1700000000.0)
    assert result.flows == 10
    assert (result.dropped_files, result.dropped_flows) == ([], 0)
    files = spool.files()
    assert (
        [spool_file.name for spool_file in files]
        == result.files
        == [
            "flows-20231114T221320Z-1.csv",
            "flows-20231114T221320Z-2.csv",
            "flows-20231114T221320Z-3.csv",
        ]
    )
    assert [len(Path(spool_file.path).read_text().splitlines()) for spool_file in files] == [4, 4, 2]
    assert mode(tmp_path / "spool") == 0o700
    for spool_file in files:
        assert mode(spool_file.path) == 0o600
    text = "".join(Path(spool_file.path).read_text() for spool_file in files)
    assert text == csv_text([row(n) for n in range(10)])


def test_spool_drops_the_oldest_files_over_budget(tmp_path):
    line_size = len(csv_line(row(1))) + 1
    spool = Spool(str(tmp_path), max_lines=5, max_bytes=line_size * 12)
    first = spool.write([row(n) for n in range(5)], now=100.0)
    second = spool.write([row(n) for n in range(5, 10)], now=200.0)
    assert first.dropped_flows == second.dropped_flows == 0
    third = spool.write([row(n) for n in range(10, 15)], now=300.0)
    assert third.dropped_files == [first.files[0]]
    assert third.dropped_flows == 5
    assert [spool_file.name for spool_file in spool.files()] == second.files + third.files
    assert spool.total_bytes() <= line_size * 12


def test_a_batch_bigger_than_the_budget_keeps_its_newest_files(tmp_path):
    line_size = len(csv_line(row(1))) + 1
    spool = Spool(str(tmp_path), max_lines=2, max_bytes=line_size * 4)
    result = spool.write([row(n) for n in range(7)], now=100.0)
    assert result.dropped_flows == 4  # files of 2, 2, 2, 1 flows; the budget holds 4 lines
    assert len(result.dropped_files) == 2
    assert [len(Path(spool_file.path).read_text().splitlines()) for spool_file in spool.files()] == [2, 1]
    assert result.files == [spool_file.name for spool_file in spool.files()]


def test_spool_order_survives_a_new_spool_object_and_leaves_other_files_alone(tmp_path):
    (tmp_path / "README").write_text("not a spool file")
    Spool(str(tmp_path)).write([row(1)], now=50.0)
    Spool(str(tmp_path)).write([row(2)], now=40.0)  # clock went back: the name tells
    Spool(str(tmp_path)).write([row(3)], now=50.9)  # the same second: the next sequence number
    (tmp_path / "done").mkdir()
    os.rename(tmp_path / "flows-19700101T000050Z-2.csv", tmp_path / "done" / "flows-19700101T000050Z-2.csv")
    Spool(str(tmp_path)).write([row(4), row(5)], now=50.0)  # uploaded files in done/ keep their names
    names = [spool_file.name for spool_file in Spool(str(tmp_path)).files()]
    assert names == ["flows-19700101T000040Z-1.csv", "flows-19700101T000050Z-1.csv", "flows-19700101T000050Z-3.csv"]
    tight = Spool(str(tmp_path), max_bytes=1)
    assert tight.enforce_budget() == (names, 4)
    assert sorted(os.listdir(tmp_path)) == ["README", "done"]


def test_spool_remove_and_stale_temporaries(tmp_path):
    spool = Spool(str(tmp_path), kind="jsonl")
    (tmp_path / ".tmp-stale").write_text("half")
    os.utime(tmp_path / ".tmp-stale", (1000.0, 1000.0))
    (tmp_path / ".tmp-fresh").write_text("being written")
    result = spool.write([row(1)], now=1000.0 + 7200)
    (name,) = result.files
    assert name == "flows-19700101T021640Z-1.jsonl"
    assert json.loads((tmp_path / name).read_text())["src"] == "10.0.0.2"
    assert sorted(os.listdir(tmp_path)) == [".tmp-fresh", name]
    assert spool.remove(name) is True
    assert spool.remove(name) is False
    with pytest.raises(ValueError):
        spool.remove("../etc/passwd")


def test_spool_with_nothing_to_write_and_bad_settings(tmp_path):
    spool = Spool(str(tmp_path / "new"))
    assert spool.write([]) == ([], 0, [], 0)
    assert spool.files() == []
    assert Spool(str(tmp_path / "missing")).files() == []
    with pytest.raises(ValueError):
        Spool(str(tmp_path), max_lines=0)
    with pytest.raises(ValueError):
        Spool(str(tmp_path), kind="xml")


def test_spool_names_are_the_ones_the_uploader_reads(tmp_path):
    from ansible_collections.microseg.illumio.plugins.module_utils.pce import traffic

    result = Spool(str(tmp_path), max_lines=1).write([row(1), row(2)], now=1700000000.0)
    assert all(traffic.upload_file_key(name) for name in result.files)
    assert traffic.spool_files(str(tmp_path)) == result.files
    jsonl = Spool(str(tmp_path / "jsonl"), kind="jsonl").write([row(1)], now=1700000000.0)
    assert not traffic.upload_file_key(jsonl.files[0])  # only CSV is the upload format


def test_staged_files_are_invisible_until_published_and_discarded_when_never_published(tmp_path):
    rows = [row()]
    spool = Spool(str(tmp_path), max_lines=10)
    names = spool.stage(rows, now=1_800_000_000)
    assert names == ["flows-20270115T080000Z-1.csv"]
    assert spool.files() == [] and (tmp_path / (".staged-" + names[0])).exists()
    # A second writer in the same second does not take the staged name.
    assert spool.stage(rows, now=1_800_000_000) == ["flows-20270115T080000Z-2.csv"]
    published = spool.publish(names)
    assert published.files == names and published.flows == 1
    assert [spool_file.name for spool_file in spool.files()] == names
    # Publishing again is a no-op; a name neither staged nor in place (uploaded and removed since) is skipped.
    assert spool.publish(names).files == names
    (tmp_path / names[0]).unlink()
    assert spool.publish(names).files == []
    assert spool.discard_staged() == ["flows-20270115T080000Z-2.csv"]
    assert sorted(os.listdir(tmp_path)) == []
