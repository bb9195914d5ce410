"""flow_collect: VEN flow logs in tmp_path (lines in the layout the VEN stand-in writes) into a spool.

The vtapflow/vtapdrop lines are laid out like tests/vensim/vensim.py's FlowRecorder.record() writes them (and like
the VEN documentation's example); flow.db is made by that recorder itself. Times are UTC (+00:00) so that the
expected CSV does not depend on the machine's time zone.
"""

from __future__ import annotations

import calendar
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.modules import flow_collect
from module_runner import run_module
from stand_in_flows import UUID, stand_in_flow

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "tests" / "vensim"))
import vensim  # noqa: E402 - the VEN stand-in, whose recorder makes flow.db

BASE = calendar.timegm((2026, 11, 23, 14, 0, 0, 0, 0, 0))  # 2026-11-23T14:00:00Z
CONNTRACK_TCP = (
    "ipv4     2 tcp      6 118 TIME_WAIT src=10.0.0.12 dst=10.0.0.11 sport=50972 dport=9999 packets=6 bytes=373 "
    "src=10.0.0.11 dst=10.0.0.12 sport=9999 dport=50972 packets=4 bytes=768 [ASSURED] mark=0 zone=0 use=2"
)
CONNTRACK_UDP = (
    "ipv4     2 udp      17 29 src=10.0.0.12 dst=10.0.0.53 sport=5353 dport=53 packets=1 bytes=60 "
    "src=10.0.0.53 dst=10.0.0.12 sport=53 dport=5353 packets=1 bytes=90 mark=0 use=1"
)


def vtap(seconds, src="10.0.0.12", dst="10.0.0.11", dport=9999, sport=50972, proto=6):
    """One vtapflow.log line at BASE + seconds (milliseconds, +00:00), as the stand-in writes it."""
    whole = int(seconds)
    millis = round((seconds - whole) * 1000)
    stamp = f"2026-11-23T14:{whole // 60:02d}:{whole % 60:02d}.{millis:03d}+00:00"
    return f"{stamp} eth0 0 0 4 {src} {dst} {proto} {sport} {dport} 12 C 0 I SWID={UUID} TBI=373 TB0=768\n"


class Host:
    """tmp_path as a host: DATA/log with the VEN's logs, the spool and the state file."""

    def __init__(self, root: Path):
        self.data = root / "ven_data"
        self.log = self.data / "log"
        self.log.mkdir(parents=True)
        self.spool = root / "flows" / "spool"
        self.state = root / "flows" / "state.json"
        self.vtapflow = self.log / "vtapflow.log"
        self.vtapdrop = self.log / "vtapdrop.log"

    def append(self, path: Path, *lines: str) -> None:
        with path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)

    def run(self, check_mode=False, **args):
        options = {"ven_data_dir": str(self.data), "spool_dir": str(self.spool), "state_file": str(self.state)}
        options.update(args)
        return run_module(flow_collect.main, options, check_mode=check_mode)

    def spool_text(self, names) -> str:
        return "".join((self.spool / name).read_text() for name in names)

    def spool_names(self):
        return sorted(path.name for path in self.spool.iterdir()) if self.spool.exists() else []


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


@pytest.fixture
def warnings(monkeypatch):
    found = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning: found.append(warning))
    return found


def csv(src, dst, port, proto, count, first, last):
    return f"{src},{dst},{port},{proto},{count},{BASE + first},{BASE + last}\n"


def test_first_run_spools_the_sums_and_second_run_changes_nothing(host, warnings):
    host.append(
        host.vtapflow,
        vtap(1.25),
        vtap(2.0, src="10.0.0.13", dport=22, sport=40000),
        vtap(3.5, sport=50973),
    )
    host.append(host.vtapdrop, vtap(4.0, src="192.0.2.7", dport=23, sport=41000))
    first = host.run()
    assert first["changed"] is True
    assert first["flows"] == 3
    assert first["connections"] == 4
    assert first["dropped_flows"] == 0
    assert len(first["spool_files"]) == 1
    assert first["spool_files"][0].startswith("flows-") and first["spool_files"][0].endswith("-1.csv")
    assert host.spool_text(first["spool_files"]) == (
        csv("10.0.0.12", "10.0.0.11", 9999, 6, 2, 1, 4)
        + csv("10.0.0.13", "10.0.0.11", 22, 6, 1, 2, 2)
        + csv("192.0.2.7", "10.0.0.11", 23, 6, 1, 4, 4)
    )
    assert first["sources"]["vtapflow"] == {
        "path": str(host.vtapflow),
        "lines": 3,
        "malformed": 0,
        "rotations": 0,
        "lost": [],
    }
    assert first["sources"]["vtapdrop"]["lines"] == 1
    assert stat.S_IMODE(host.state.stat().st_mode) == 0o600
    assert stat.S_IMODE((host.spool / first["spool_files"][0]).stat().st_mode) == 0o600
    state = json.loads(host.state.read_text())
    assert state["sources"]["vtapflow"]["tail"]["offset"] == host.vtapflow.stat().st_size
    assert warnings == []

    second = host.run()
    assert second["changed"] is False
    assert second["spool_files"] == []
    assert second["flows"] == 0
    assert second["sources"]["vtapflow"]["lines"] == 0
    assert host.spool_names() == first["spool_files"]


def test_appended_lines_only_the_new_ones(host):
    host.append(host.vtapflow, vtap(1.0), vtap(2.0))
    first = host.run(sources=["vtapflow"])
    host.append(host.vtapflow, vtap(5.0), vtap(7.2, dport=443))
    second = host.run(sources=["vtapflow"])
    assert second["changed"] is True
    assert second["sources"]["vtapflow"]["lines"] == 2
    assert host.spool_text(second["spool_files"]) == (
        csv("10.0.0.12", "10.0.0.11", 443, 6, 1, 7, 8) + csv("10.0.0.12", "10.0.0.11", 9999, 6, 1, 5, 5)
    )
    assert set(host.spool_names()) == set(first["spool_files"] + second["spool_files"])


def test_a_partial_last_line_waits_for_its_newline(host):
    host.append(host.vtapflow, vtap(1.0), vtap(2.0).rstrip("\n"))
    first = host.run(sources=["vtapflow"])
    assert first["sources"]["vtapflow"]["lines"] == 1
    host.append(host.vtapflow, "\n")
    second = host.run(sources=["vtapflow"])
    assert host.spool_text(second["spool_files"]) == csv("10.0.0.12", "10.0.0.11", 9999, 6, 1, 2, 2)


def test_rotation_between_runs_loses_and_duplicates_nothing(host, warnings):
    host.append(host.vtapflow, vtap(1.0), vtap(2.0))
    first = host.run(sources=["vtapflow"])
    assert first["connections"] == 2
    host.append(host.vtapflow, vtap(3.0, dport=80))  # written before the rotation, not read yet
    os.rename(host.vtapflow, str(host.vtapflow) + ".1")
    host.append(host.vtapflow, vtap(4.0, dport=80), vtap(6.0, dport=443))
    second = host.run(sources=["vtapflow"])
    assert second["sources"]["vtapflow"]["lines"] == 3
    assert second["sources"]["vtapflow"]["rotations"] == 1
    assert second["sources"]["vtapflow"]["lost"] == []
    assert second["connections"] == 3
    assert host.spool_text(second["spool_files"]) == (
        csv("10.0.0.12", "10.0.0.11", 80, 6, 2, 3, 4) + csv("10.0.0.12", "10.0.0.11", 443, 6, 1, 6, 6)
    )
    third = host.run(sources=["vtapflow"])
    assert third["changed"] is False
    assert third["connections"] == 0
    assert warnings == []


def test_rotated_twice_is_reported_as_lost(host, warnings):
    host.append(host.vtapflow, vtap(1.0))
    host.run(sources=["vtapflow"])
    os.rename(host.vtapflow, str(host.vtapflow) + ".1")
    host.append(host.vtapflow, vtap(2.0))
    os.rename(host.vtapflow, str(host.vtapflow) + ".1")
    host.append(host.vtapflow, vtap(3.0))
    result = host.run(sources=["vtapflow"])
    assert result["connections"] == 1
    # (where the filesystem gives the new file the first file's inode again, a note says so too)
    assert any("are lost" in note for note in result["sources"]["vtapflow"]["lost"])
    assert any("lost" in warning for warning in warnings)


def test_malformed_lines_are_counted(host):
    host.append(
        host.vtapflow,
        vtap(1.0),
        "this is not a flow\n",
        vtap(2.0, src="10.0.0.999"),
        "\n",
        vtap(3.0),
    )
    result = host.run(sources=["vtapflow"])
    assert result["sources"]["vtapflow"]["lines"] == 4
    assert result["sources"]["vtapflow"]["malformed"] == 2
    assert host.spool_text(result["spool_files"]) == csv("10.0.0.12", "10.0.0.11", 9999, 6, 2, 1, 3)


def test_spool_files_hold_at_most_spool_file_lines(host):
    host.append(host.vtapflow, *[vtap(1.0, dport=port) for port in range(1000, 1005)])
    result = host.run(sources=["vtapflow"], spool_file_lines=2)
    assert len(result["spool_files"]) == 3
    assert [len((host.spool / name).read_text().splitlines()) for name in result["spool_files"]] == [2, 2, 1]
    assert result["flows"] == 5


def test_spool_bound_drops_the_oldest_with_a_warning(host, warnings):
    host.spool.mkdir(parents=True)
    old = host.spool / "flows-20200101T000000Z-1.csv"
    old.write_text(csv("10.0.0.1", "10.0.0.2", 80, 6, 1, 0, 0) * 3)
    host.append(host.vtapflow, vtap(1.0))
    new_line = csv("10.0.0.12", "10.0.0.11", 9999, 6, 1, 1, 1)
    result = host.run(sources=["vtapflow"], spool_max_bytes=len(new_line) + 10)
    assert result["dropped_flows"] == 3
    assert result["changed"] is True
    assert not old.exists()
    assert host.spool_names() == result["spool_files"]
    assert host.spool_text(result["spool_files"]) == new_line
    assert any("3 flows were removed" in warning for warning in warnings)


def test_check_mode_writes_nothing(host):
    host.append(host.vtapflow, vtap(1.0), vtap(2.0, dport=22))
    checked = host.run(check_mode=True, sources=["vtapflow"])
    assert checked["changed"] is True
    assert checked["flows"] == 2
    assert checked["connections"] == 2
    assert checked["spool_files"] == []
    assert not host.spool.exists()
    assert not host.state.exists()

    real = host.run(sources=["vtapflow"])
    state_before = host.state.read_text()
    host.append(host.vtapflow, vtap(3.0))
    checked_again = host.run(check_mode=True, sources=["vtapflow"])
    assert checked_again["flows"] == 1
    assert host.state.read_text() == state_before
    assert host.spool_names() == real["spool_files"]
    after = host.run(sources=["vtapflow"])
    assert after["connections"] == 1


def test_flow_db_of_the_stand_in(host):
    recorder = vensim.FlowRecorder(vensim.Layout({"data_dir": str(host.data)}))
    flow = stand_in_flow(BASE + 10.0)
    recorder.record([flow, dict(flow, src_port=50973, detected_at=BASE + 12.0, last_seen=BASE + 12.0)])
    first = host.run(sources=["flow_db"])
    assert first["sources"]["flow_db"]["lines"] == 2
    assert first["sources"]["flow_db"]["malformed"] == 0
    assert host.spool_text(first["spool_files"]) == csv("10.0.0.12", "10.0.0.11", 9999, 6, 2, 10, 12)
    assert host.run(sources=["flow_db"])["changed"] is False
    recorder.record([dict(flow, dst_port=22, detected_at=BASE + 20.0, last_seen=BASE + 20.0)])
    third = host.run(sources=["flow_db"])
    assert third["sources"]["flow_db"]["lines"] == 1
    assert host.spool_text(third["spool_files"]) == csv("10.0.0.12", "10.0.0.11", 22, 6, 1, 20, 20)


def test_flowsum_db_spools_what_each_running_sum_grew_by(host):
    recorder = vensim.FlowRecorder(vensim.Layout({"data_dir": str(host.data)}))
    flow = stand_in_flow(BASE + 10.0)
    recorder.record([flow, dict(flow, src_port=50973, last_seen=BASE + 12.0)])
    first = host.run(sources=["flowsum_db"])
    assert first["sources"]["flowsum_db"]["lines"] == 1  # one summary row, count 2
    assert host.spool_text(first["spool_files"]) == csv("10.0.0.12", "10.0.0.11", 9999, 6, 2, 10, 12)
    assert host.run(sources=["flowsum_db"])["changed"] is False
    # The same row grows by 3 (updated in place) and a new row appears: only the growth is spooled.
    recorder.record([dict(flow, src_port=port, last_seen=BASE + 30.0) for port in (1, 2, 3)])
    recorder.record([dict(flow, dst_port=22, first_seen=BASE + 40.0, last_seen=BASE + 40.0)])
    third = host.run(sources=["flowsum_db"])
    assert third["flows"] == 2 and third["connections"] == 4
    assert host.spool_text(third["spool_files"]) == (
        csv("10.0.0.12", "10.0.0.11", 22, 6, 1, 40, 40) + csv("10.0.0.12", "10.0.0.11", 9999, 6, 3, 12, 30)
    )
    state = json.loads(host.state.read_text())["sources"]["flowsum_db"]["counts"]
    assert state["10.0.0.12|10.0.0.11|9999|6|allowed"][0] == 5


def test_conntrack_through_a_command_on_path(host, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    table = tmp_path / "table.txt"
    table.write_text(CONNTRACK_TCP + "\n" + CONNTRACK_UDP + "\nnot an entry\n")
    fake = bin_dir / "conntrack"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nassert sys.argv[1:] == ['-L', '-o', 'extended'], sys.argv\n"
        f"sys.stdout.write(open({str(table)!r}).read())\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))
    result = host.run(sources=["conntrack"])
    assert result["sources"]["conntrack"]["lines"] == 3
    assert result["sources"]["conntrack"]["malformed"] == 1
    assert result["connections"] == 2
    lines = host.spool_text(result["spool_files"]).splitlines()
    assert [line.split(",")[:5] for line in lines] == [
        ["10.0.0.12", "10.0.0.11", "9999", "6", "1"],
        ["10.0.0.12", "10.0.0.53", "53", "17", "1"],
    ]


def test_conntrack_without_the_command_reads_the_kernel_table(host, tmp_path, monkeypatch):
    table = tmp_path / "nf_conntrack"
    table.write_text(CONNTRACK_UDP + "\n")
    monkeypatch.setattr(flow_collect, "CONNTRACK_TABLE", str(table))
    result = host.run(sources=["conntrack"], conntrack_command="no-such-conntrack-command -L")
    assert result["sources"]["conntrack"]["path"] == str(table)
    assert result["connections"] == 1


def test_missing_files_are_not_an_error(host, warnings):
    result = host.run(sources=["vtapflow", "vtapdrop", "flow_db"])
    assert result.get("failed") is not True
    assert result["changed"] is False
    assert result["flows"] == 0
    for name in ("vtapflow", "vtapdrop", "flow_db"):
        assert result["sources"][name]["lines"] == 0
    assert len(warnings) == 3
    assert all("does not exist" in warning for warning in warnings)
    assert host.spool_names() == []
    # The file appears later: it is read from its start.
    host.append(host.vtapflow, vtap(1.0))
    later = host.run(sources=["vtapflow"])
    assert later["connections"] == 1


def test_paths_can_be_set_one_by_one(host, tmp_path):
    elsewhere = tmp_path / "elsewhere.log"
    elsewhere.write_text(vtap(1.0))
    result = host.run(sources=["vtapflow"], vtapflow_path=str(elsewhere))
    assert result["sources"]["vtapflow"]["path"] == str(elsewhere)
    assert result["connections"] == 1


def test_count_bytes_reads_the_same_flows(host):
    host.append(host.vtapflow, vtap(1.0), vtap(2.0))
    result = host.run(sources=["vtapflow"], count_bytes=True)
    assert host.spool_text(result["spool_files"]) == csv("10.0.0.12", "10.0.0.11", 9999, 6, 2, 1, 2)


def test_state_is_written_only_after_the_spool(host, monkeypatch):
    host.append(host.vtapflow, vtap(1.0))

    def crash(self, rows, now=None):
        raise OSError("disk full")

    monkeypatch.setattr(flow_collect.writers.Spool, "stage", crash)
    failed = host.run(sources=["vtapflow"])
    assert failed["failed"] is True
    assert "disk full" in failed["msg"]
    assert not host.state.exists()
    monkeypatch.undo()
    again = host.run(sources=["vtapflow"])
    assert again["connections"] == 1
    assert host.spool_text(again["spool_files"]) == csv("10.0.0.12", "10.0.0.11", 9999, 6, 1, 1, 1)
