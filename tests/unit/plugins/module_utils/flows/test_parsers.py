"""module_utils/flows/parsers.py: vtapflow/vtapdrop lines, reading logs across rotation, flow.db / flowsum.db
views (built by the VEN stand-in), and conntrack lines."""

from __future__ import annotations

import calendar
import hashlib
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import stand_in_flows
from ansible_collections.microseg.illumio.plugins.module_utils.flows import parsers
from ansible_collections.microseg.illumio.plugins.module_utils.flows.parsers import (
    Flow,
    LogTail,
    decision_of_log,
    flow_from_row,
    parse_conntrack,
    parse_conntrack_line,
    parse_time,
    parse_vtap_line,
    parse_vtap_lines,
    read_view,
    summary_from_row,
)

REPO = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(REPO / "tests" / "vensim"))
import vensim  # noqa: E402 - the VEN stand-in, whose writer makes the lines and databases read here

# The example of the VEN's documentation (docker section), each entry joined back into the one line it is in
# the file (the PDF wraps it over three lines).
REFERENCE_LINES = [
    "2020-02-03T16:47:15.104-08:00 docker0 0 0 4 192.168.125.208 172.17.0.2 6 64886 80 12286 C 0 U "
    "SWID=3c1b9f96-969a-472e-bbbc-9d1c93751ef9 TBI=0 TB0=116",
    "2020-02-03T16:48:15.157-08:00 docker0 0 0 4 192.168.125.208 172.17.0.2 6 64885 80 72339 C 0 U "
    "SWID=3c1b9f96-969a-472e-bbbc-9d1c93751ef9 TBI=0 TB0=116",
]
# ... and as the PDF shows them: fragments that are no line of the layout.
REFERENCE_WRAPPED = [
    "2020-02-03T16:47:15.104-08:00 docker0 0 0 4 192.168.125.208",
    "172.17.0.2 6 64886 80 12286 C 0 U SWID=3c1b9f96-969a-472e-bbbc-",
    "9d1c93751ef9 TBI=0 TB0=116",
]
UUID = stand_in_flows.UUID


def epoch(text: str) -> float:
    """2020-02-04T00:47:15 (UTC, no fraction) as epoch seconds."""
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))


def stand_in_flow(**changes) -> dict:
    return stand_in_flows.stand_in_flow(1700000000.0, **changes)


@pytest.fixture
def recorder(tmp_path):
    """The stand-in's FlowRecorder writing vtapflow.log, flow.db and flowsum.db under tmp_path/log."""
    (tmp_path / "log").mkdir()
    return vensim.FlowRecorder(vensim.Layout({"data_dir": str(tmp_path)}))


# --- times ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-02-03T16:47:15.104-08:00", epoch("2020-02-04T00:47:15") + 0.104),
        ("2020-02-04T00:47:15.104Z", epoch("2020-02-04T00:47:15") + 0.104),
        ("2020-02-04T05:47:15+05:00", epoch("2020-02-04T00:47:15")),
        ("2020-02-04T05:17:15+0430", epoch("2020-02-04T00:47:15")),
        ("2020-02-04 00:47:15Z", epoch("2020-02-04T00:47:15")),
        (1580777235.5, 1580777235.5),
    ],
)
def test_times(text, expected):
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "yesterday", "2020-13-03T16:47:15Z", "2020-02-03T25:47:15Z", "2020-02-03", None])
def test_bad_times(text):
    assert parse_time(text) is None


def test_time_without_offset_is_local():
    assert parse_time("2020-02-03T16:47:15") == time.mktime((2020, 2, 3, 16, 47, 15, 0, 0, -1))


# --- vtapflow.log / vtapdrop.log lines --------------------------------------------------------------------------


def test_the_documented_example_lines():
    flows, malformed = parse_vtap_lines(REFERENCE_LINES)
    assert malformed == 0
    assert flows[0] == Flow(
        src="192.168.125.208",
        dst="172.17.0.2",
        dst_port=80,
        proto=6,
        decision="allowed",
        time=pytest.approx(epoch("2020-02-04T00:47:15") + 0.104),
        src_port=64886,
        direction="U",
        bytes_in=0,
        bytes_out=116,
        state="C",
    )
    assert flows[1].src_port == 64885
    assert flows[1].time == pytest.approx(epoch("2020-02-04T00:48:15") + 0.157)


def test_wrapped_fragments_are_counted_as_malformed():
    flows, malformed = parse_vtap_lines([*REFERENCE_WRAPPED, "", *REFERENCE_LINES[:1]])
    assert malformed == 3
    assert len(flows) == 1


def test_lines_written_by_the_stand_in(recorder, tmp_path):
    recorder.record(
        [
            stand_in_flow(),
            stand_in_flow(
                ip_version=6,
                src_ip="fd00:0:0::12",
                dst_ip="fd00::11",
                proto=17,
                src_port=5353,
                dst_port=53,
                direction="O",
                state="A",
                bytes_in=0,
                bytes_out=61,
            ),
        ]
    )
    lines = (tmp_path / "log" / "vtapflow.log").read_text().splitlines()
    flows, malformed = parse_vtap_lines(lines)
    assert malformed == 0
    assert flows[0].src == "10.0.0.12"
    assert flows[0].dst == "10.0.0.11"
    assert (flows[0].dst_port, flows[0].proto, flows[0].src_port) == (9999, 6, 50972)
    assert (flows[0].direction, flows[0].bytes_in, flows[0].bytes_out, flows[0].state) == ("I", 373, 768, "C")
    assert flows[0].time == pytest.approx(1700000000.5, abs=0.001)
    ipv6 = flows[1]
    assert (ipv6.src, ipv6.dst, ipv6.dst_port, ipv6.proto) == ("fd00::12", "fd00::11", 53, 17)
    assert (ipv6.direction, ipv6.state, ipv6.bytes_out) == ("O", "A", 61)


def test_vtapdrop_lines_are_blocked():
    assert decision_of_log("/opt/illumio_ven_data/log/vtapdrop.log") == "blocked"
    assert decision_of_log("/opt/illumio_ven_data/log/vtapdrop.log.1") == "blocked"
    assert decision_of_log("/opt/illumio_ven_data/log/vtapflow.log") == "allowed"
    flow = parse_vtap_line(REFERENCE_LINES[0], "blocked")
    assert flow.decision == "blocked"


def test_bytes_out_spelled_with_the_letter_o_and_missing_byte_counts():
    line = REFERENCE_LINES[0].replace("TB0=116", "TBO=116")
    assert parse_vtap_line(line).bytes_out == 116
    short = "2020-02-03T16:47:15.104-08:00 eth0 0 0 4 10.0.0.1 10.0.0.2 6 40000 22 5 C 0 O"
    flow = parse_vtap_line(short)
    assert (flow.dst_port, flow.bytes_in, flow.bytes_out) == (22, None, None)


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        REFERENCE_LINES[0].replace("192.168.125.208", "192.168.125.300"),
        REFERENCE_LINES[0].replace("172.17.0.2", "fd00::2"),  # mixed families
        REFERENCE_LINES[0].replace(" 80 ", " 80000 "),
        REFERENCE_LINES[0].replace(" 6 64886", " tcpish 64886"),
        REFERENCE_LINES[0].replace("TBI=0", "TBI=zero"),
        REFERENCE_LINES[0].replace("TBI=0", "TBI"),
        REFERENCE_LINES[0].replace("2020-02-03T16:47:15.104-08:00", "yesterday"),
        " ".join(REFERENCE_LINES[0].split()[:13]),
    ],
)
def test_malformed_lines_are_counted_not_raised(line):
    assert parse_vtap_line(line) is None
    assert parse_vtap_lines([line, REFERENCE_LINES[1]])[1] == 1


# --- reading the log incrementally ------------------------------------------------------------------------------


def line(number: int) -> str:
    return REFERENCE_LINES[0].replace("64886", str(10000 + number)) + "\n"


def src_ports(lines):
    return [int(text.split()[8]) - 10000 for text in lines]


def read(path, state):
    tail = LogTail(str(path), state)
    lines = list(tail.lines())
    return lines, tail


def test_log_tail_reads_only_what_was_appended(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text(line(1) + line(2))
    lines, tail = read(log, None)
    assert src_ports(lines) == [1, 2]
    assert tail.state == {
        "inode": log.stat().st_ino,
        "offset": log.stat().st_size,
        "size": log.stat().st_size,
        "head": [256, hashlib.sha1(log.read_bytes()[:256]).hexdigest()],  # noqa: S324,
    }
    assert tail.bytes_read == log.stat().st_size
    lines, tail = read(log, tail.state)
    assert lines == []
    with log.open("a") as handle:
        handle.write(line(3))
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [3]
    assert not tail.lost
    assert tail.notes == []


def test_a_partial_last_line_waits_for_its_newline(tmp_path):
    log = tmp_path / "vtapflow.log"
    text = line(1) + line(2)
    log.write_text(text[: len(line(1)) + 30])  # line 2 is half written
    lines, tail = read(log, None)
    assert src_ports(lines) == [1]
    assert tail.state["offset"] == len(line(1))
    with log.open("a") as handle:
        handle.write(text[len(line(1)) + 30 :])
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [2]
    assert tail.state["offset"] == len(text)


def test_rotation_finishes_the_rotated_file_then_reads_the_new_one(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text(line(1) + line(2))
    tail = read(log, None)[1]
    with log.open("a") as handle:
        handle.write(line(3) + line(4)[:20])  # written before the rotation, the last one never finished
    os.rename(log, str(log) + ".1")  # the VEN's rotation: rename, then a new file
    log.write_text(line(5) + line(6))
    lines, tail = read(log, tail.state)
    assert src_ports(lines[:1]) == [3]
    assert lines[1] == line(4)[:20]  # final in the rotated file: handed out, the parser counts it
    assert src_ports(lines[2:]) == [5, 6]
    assert parse_vtap_lines(lines)[1] == 1
    assert tail.state["inode"] == log.stat().st_ino
    assert tail.state["offset"] == log.stat().st_size
    assert not tail.lost


def test_rotation_when_the_new_file_is_not_there_yet(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text(line(1))
    tail = read(log, None)[1]
    with log.open("a") as handle:
        handle.write(line(2))
    os.rename(log, str(log) + ".1")
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [2]
    assert tail.state == {}
    log.write_text(line(3))
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [3]


def test_two_rotations_between_reads_are_reported(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text(line(1))
    tail = read(log, None)[1]
    os.rename(log, str(log) + ".1")
    log.write_text(line(2))
    os.replace(log, str(log) + ".1")
    log.write_text(line(3))
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [3]
    assert tail.lost
    assert any("rotated more than once" in note for note in tail.notes)


def test_rotated_file_removed_is_reported(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text(line(1))
    tail = read(log, None)[1]
    log.unlink()
    log.write_text(line(2))
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [2]
    assert tail.lost
    assert any("missing" in note for note in tail.notes)


def test_a_file_that_shrank_is_read_from_the_start(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text(line(1) + line(2))
    tail = read(log, None)[1]
    with log.open("w") as handle:  # truncated in place (copytruncate without a copy)
        handle.write(line(3))
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [3]
    assert tail.lost
    assert "shrank or was rewritten" in tail.notes[0]


def test_a_file_truncated_and_refilled_past_the_old_size_is_told_apart_by_its_head(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text(line(1))
    tail = read(log, None)[1]
    inode = log.stat().st_ino
    with log.open("w") as handle:  # same inode, bigger than before by the next read
        handle.write(line(2) + line(3))
    assert log.stat().st_ino == inode
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [2, 3]
    assert any("shrank or was rewritten" in note for note in tail.notes)


def test_copy_then_truncate_reads_the_copy_from_the_offset(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text(line(1))
    tail = read(log, None)[1]
    with log.open("a") as handle:
        handle.write(line(2))
    (tmp_path / "vtapflow.log.1").write_text(log.read_text())
    log.write_text("")
    with log.open("a") as handle:
        handle.write(line(3))
    lines, tail = read(log, tail.state)
    assert src_ports(lines) == [2, 3]
    assert not tail.lost


def test_state_is_kept_when_the_reader_stops_early(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_text("".join(line(n) for n in range(50)))
    tail = LogTail(str(log), None, block_size=256)
    blocks = tail.blocks()
    next(blocks)
    assert tail.state == {}  # not done: the caller keeps its old state
    rest = [text for block in blocks for text in block]
    assert len(rest) + 1 <= 50
    assert tail.state["offset"] == log.stat().st_size


def test_small_blocks_give_the_same_lines(tmp_path):
    log = tmp_path / "vtapflow.log"
    text = "".join(line(n) for n in range(40))
    log.write_text(text)
    tail = LogTail(str(log), None, block_size=64)
    assert list(tail.lines()) == text.splitlines()


def test_a_missing_log(tmp_path):
    lines, tail = read(tmp_path / "vtapflow.log", None)
    assert lines == []
    assert tail.state == {}


def test_utf8_garbage_does_not_stop_reading(tmp_path):
    log = tmp_path / "vtapflow.log"
    log.write_bytes(b"\xff\xfe bad\n" + line(1).encode())
    lines = read(log, None)[0]
    flows, malformed = parse_vtap_lines(lines)
    assert (len(flows), malformed) == (1, 1)


# --- flow.db / flowsum.db ---------------------------------------------------------------------------------------


def test_flow_db_views_incrementally(recorder, tmp_path):
    flow_db = str(tmp_path / "log" / "flow.db")
    recorder.record([stand_in_flow(), stand_in_flow(src_port=50973, state="A")])
    first = read_view(flow_db, "flow_view")
    assert first.error == ""
    assert [row["src_port"] for row in first.rows] == [50972, 50973]
    assert first.last_rowid == 2
    flow = flow_from_row(first.rows[0], "allowed")
    assert (flow.src, flow.dst, flow.dst_port, flow.proto, flow.direction) == ("10.0.0.12", "10.0.0.11", 9999, 6, "I")
    assert (flow.bytes_in, flow.bytes_out, flow.state) == (373, 768, "C")
    assert flow.time == pytest.approx(1700000000.5, abs=0.001)
    again = read_view(flow_db, "flow_view", first.last_rowid)
    assert again.rows == []
    assert again.last_rowid == 2
    recorder.record([stand_in_flow(src_ip="fd00::12", dst_ip="fd00::11", ip_version=6)])
    more = read_view(flow_db, "flow_view", first.last_rowid)
    assert [row["src_ip"] for row in more.rows] == ["fd00::12"]
    assert more.last_rowid == 3
    drops = read_view(flow_db, "drop_flow_view")
    assert (drops.rows, drops.last_rowid, drops.error) == ([], 0, "")


def test_flowsum_db_view(recorder, tmp_path):
    recorder.record([stand_in_flow(), stand_in_flow(src_port=50999, detected_at=1700000100.0, last_seen=1700000100.0)])
    result = read_view(str(tmp_path / "log" / "flowsum.db"), "flow_view")
    assert result.error == ""
    assert len(result.rows) == 1
    summary = summary_from_row(result.rows[0])
    assert (summary.src, summary.dst, summary.dst_port, summary.proto, summary.count) == (
        "10.0.0.12",
        "10.0.0.11",
        9999,
        6,
        2,
    )
    assert summary.first == pytest.approx(1700000000.0, abs=0.001)
    assert summary.last == pytest.approx(1700000100.0, abs=0.001)
    assert (summary.bytes_in, summary.bytes_out) == (746, 1536)
    assert summary_from_row({"src_ip": "10.0.0.1"}) is None
    assert read_view(str(tmp_path / "log" / "flowsum.db"), "drop_flow_view").rows == []


def test_views_are_opened_read_only(recorder, tmp_path):
    recorder.record([stand_in_flow()])
    flow_db = tmp_path / "log" / "flow.db"
    before = flow_db.read_bytes()
    flow_db.chmod(0o444)
    try:
        result = read_view(str(flow_db), "flow_view")
    finally:
        flow_db.chmod(0o640)
    assert result.error == ""
    assert len(result.rows) == 1
    assert flow_db.read_bytes() == before
    assert sorted(path.name for path in (tmp_path / "log").iterdir()) == ["flow.db", "flowsum.db", "vtapflow.log"]


def test_a_locked_database_is_retried_then_reported(recorder, tmp_path):
    recorder.record([stand_in_flow()])
    flow_db = str(tmp_path / "log" / "flow.db")
    writer = sqlite3.connect(flow_db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        result = read_view(flow_db, "flow_view", retries=2, wait=0.05)
        assert time.monotonic() - started >= 0.1
        assert result.rows == []
        assert result.last_rowid == 0
        assert "locked" in result.error
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert len(read_view(flow_db, "flow_view").rows) == 1


def test_missing_database_and_view(tmp_path):
    missing = read_view(str(tmp_path / "flow.db"), "flow_view", 7)
    assert (missing.rows, missing.last_rowid) == ([], 7)
    assert "does not exist" in missing.error
    assert not (tmp_path / "flow.db").exists()
    db = sqlite3.connect(tmp_path / "other.db")
    db.execute("CREATE TABLE t (a)")
    db.commit()
    db.close()
    assert "no table or view named flow_view" in read_view(str(tmp_path / "other.db"), "flow_view").error
    (tmp_path / "junk.db").write_text("not a database")
    assert read_view(str(tmp_path / "junk.db"), "flow_view").error


def test_other_view_shapes(tmp_path):
    path = str(tmp_path / "shapes.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE flows (id INTEGER PRIMARY KEY, src_ip TEXT, dst_port INTEGER)")
    db.execute("CREATE TABLE plain (src_ip TEXT)")
    db.execute("CREATE VIEW by_id AS SELECT id, src_ip FROM flows WHERE dst_port > 0")
    db.execute("CREATE VIEW no_id AS SELECT src_ip FROM flows WHERE dst_port > 0")
    db.executemany("INSERT INTO flows (src_ip, dst_port) VALUES (?, ?)", [("10.0.0.1", 22), ("10.0.0.2", 0)])
    db.executemany("INSERT INTO plain VALUES (?)", [("a",), ("b",)])
    db.commit()
    db.close()
    assert [row["src_ip"] for row in read_view(path, "by_id").rows] == ["10.0.0.1"]
    assert "no rowid" in read_view(path, "no_id").error
    table = read_view(path, "plain", 1)
    assert [row["src_ip"] for row in table.rows] == ["b"]
    assert table.last_rowid == 2
    assert [row["src_ip"] for row in read_view(path, "flows", 0, limit=1).rows] == ["10.0.0.1"]


# --- conntrack --------------------------------------------------------------------------------------------------

CONNTRACK_TCP = (
    "ipv4     2 tcp      6 118 TIME_WAIT src=10.0.0.12 dst=10.0.0.11 sport=50972 dport=9999 packets=6 bytes=373 "
    "src=10.0.0.11 dst=10.0.0.12 sport=9999 dport=50972 packets=4 bytes=768 [ASSURED] mark=0 zone=0 use=2"
)
CONNTRACK_UDP6 = (
    "ipv6     10 udp      17 29 src=fd00:0::1 dst=fd00::2 sport=5353 dport=53 [UNREPLIED] "
    "src=fd00::2 dst=fd00::1 sport=53 dport=5353 mark=0 use=1"
)
CONNTRACK_ICMP = (
    "ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=4711 packets=1 bytes=84 "
    "src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=4711 packets=1 bytes=84 mark=0 use=1"
)
CONNTRACK_ICMP6 = (
    "ipv6     10 icmpv6   58 29 src=2001:db8::1 dst=2001:db8::2 type=128 code=0 id=9 "
    "src=2001:db8::2 dst=2001:db8::1 type=129 code=0 id=9 mark=0 use=1"
)
# `conntrack -L` without `-o extended` leaves out the layer 3 columns.
CONNTRACK_PLAIN = (
    "tcp      6 431999 ESTABLISHED src=192.168.1.10 dst=192.168.1.20 sport=41234 dport=22 "
    "src=192.168.1.20 dst=192.168.1.10 sport=22 dport=41234 [ASSURED] mark=0 use=1"
)


def test_conntrack_tcp_with_accounting():
    flow = parse_conntrack_line(CONNTRACK_TCP, now=1700000000.0)
    assert flow == Flow(
        src="10.0.0.12",
        dst="10.0.0.11",
        dst_port=9999,
        proto=6,
        decision="allowed",
        time=1700000000.0,
        src_port=50972,
        direction=None,
        bytes_in=768,
        bytes_out=373,
        packets_in=4,
        packets_out=6,
        state="TIME_WAIT ASSURED",
    )


def test_conntrack_direction_from_local_addresses():
    inbound = parse_conntrack_line(CONNTRACK_TCP, local_addresses={"10.0.0.11"})
    assert (inbound.direction, inbound.bytes_in, inbound.bytes_out, inbound.packets_in) == ("I", 373, 768, 6)
    outbound = parse_conntrack_line(CONNTRACK_TCP, local_addresses={"10.0.0.12"})
    assert (outbound.direction, outbound.bytes_in, outbound.bytes_out) == ("O", 768, 373)


def test_conntrack_udp_ipv6_unreplied_without_accounting():
    flow = parse_conntrack_line(CONNTRACK_UDP6)
    assert (flow.src, flow.dst, flow.dst_port, flow.proto, flow.src_port) == ("fd00::1", "fd00::2", 53, 17, 5353)
    assert (flow.bytes_in, flow.bytes_out, flow.packets_in, flow.state, flow.time) == (None, None, None, None, None)


def test_conntrack_icmp_has_no_ports():
    flow = parse_conntrack_line(CONNTRACK_ICMP)
    assert (flow.src, flow.dst, flow.dst_port, flow.proto, flow.src_port) == ("10.0.0.1", "10.0.0.2", 0, 1, None)
    assert (flow.bytes_out, flow.bytes_in) == (84, 84)
    flow6 = parse_conntrack_line(CONNTRACK_ICMP6)
    assert (flow6.src, flow6.dst, flow6.dst_port, flow6.proto) == ("2001:db8::1", "2001:db8::2", 0, 58)


def test_conntrack_without_layer3_columns():
    flow = parse_conntrack_line(CONNTRACK_PLAIN)
    assert (flow.src, flow.dst, flow.dst_port, flow.proto, flow.state) == (
        "192.168.1.10",
        "192.168.1.20",
        22,
        6,
        "ESTABLISHED ASSURED",
    )


def test_conntrack_malformed_lines_are_counted(tmp_path):
    lines = [
        CONNTRACK_TCP,
        "",
        "garbage",
        "ipv4 2 tcp 6 118 TIME_WAIT src=10.0.0.12 dst=10.0.0.11 sport=1 dport=2",  # no reply tuple
        CONNTRACK_TCP.replace("dport=9999", "dport=99999", 1),
        CONNTRACK_TCP.replace("dst=10.0.0.11", "dst=fd00::1", 1),
        "ipv4 2 bogus 6x 1 src=1.2.3.4",
        "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been shown.",
        CONNTRACK_ICMP6,
    ]
    flows, malformed = parse_conntrack(lines, now=5.0)
    assert len(flows) == 2
    assert malformed == 6
    assert {flow.time for flow in flows} == {5.0}
    table = tmp_path / "nf_conntrack"
    table.write_text("\n".join(lines) + "\n")
    assert parsers.read_conntrack_table(str(table)) == lines
    assert parsers.read_conntrack_table(str(tmp_path / "none")) == []


def test_conntrack_lines_the_stand_in_parses_the_same_way():
    for text in (CONNTRACK_TCP, CONNTRACK_UDP6, CONNTRACK_ICMP):
        entry = vensim.parse_conntrack(text)
        flow = parse_conntrack_line(text)
        assert entry["proto"] == flow.proto
        assert parsers.normalize_address(entry["orig"]["src"])[0] == flow.src


def test_flow_fields_after_the_key_are_optional():
    flow = Flow("10.0.0.1", "10.0.0.2", 22, 6, "allowed")
    assert flow.time is flow.state is flow.src_port is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1", ("10.0.0.1", 4)),
        ("255.255.255.255", ("255.255.255.255", 4)),
        ("2001:DB8:0:0::1", ("2001:db8::1", 6)),
        ("::ffff:10.0.0.1", ("::ffff:a00:1", 6)),
        ("10.0.0.256", None),
        ("10.0.0.-1", None),
        ("10.0.0", None),
        ("10.0.0.1.2", None),
        ("10.0.0.x", None),
        ("10.0.0.\u0663", None),  # an Arabic-Indic digit is no address digit
        ("", None),
        (None, None),
        (167772161, None),
    ],
)
def test_addresses(text, expected):
    assert parsers.normalize_address(text) == expected
