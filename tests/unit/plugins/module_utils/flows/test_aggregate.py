"""module_utils/flows/aggregate.py: one table per (src, dst, dst_port, proto, decision), whatever the source."""

from __future__ import annotations

import itertools
import json
import random
import sys
from pathlib import Path

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.flows import aggregate as aggregate_module
from ansible_collections.microseg.illumio.plugins.module_utils.flows.aggregate import AggregateRow, FlowAggregate
from ansible_collections.microseg.illumio.plugins.module_utils.flows.parsers import (
    LogTail,
    SummaryRow,
    parse_conntrack,
    parse_time,
    parse_vtap_lines,
)

REPO = Path(__file__).resolve().parents[5]
sys.path.insert(0, str(REPO / "tests" / "vensim"))
import vensim  # noqa: E402 - the VEN stand-in, whose writer makes the lines read here

UUID = "3c1b9f96-969a-472e-bbbc-9d1c93751ef9"
REFERENCE_LINES = [
    "2020-02-03T16:47:15.104-08:00 docker0 0 0 4 192.168.125.208 172.17.0.2 6 64886 80 12286 C 0 U "
    "SWID=3c1b9f96-969a-472e-bbbc-9d1c93751ef9 TBI=0 TB0=116",
    "2020-02-03T16:48:15.157-08:00 docker0 0 0 4 192.168.125.208 172.17.0.2 6 64885 80 72339 C 0 U "
    "SWID=3c1b9f96-969a-472e-bbbc-9d1c93751ef9 TBI=0 TB0=116",
]


def vtap(stamp, src, dst, dst_port, proto=6, src_port=40000, bytes_in=10, bytes_out=20, version=None, extra=""):
    version = version or (6 if ":" in src else 4)
    return (
        f"{stamp} eth0 0 0 {version} {src} {dst} {proto} {src_port} {dst_port} 15 C 0 I SWID={UUID}"
        f"{extra} TBI={bytes_in} TB0={bytes_out}"
    )


def slow_aggregate(lines, decision="allowed") -> FlowAggregate:
    """The same sums through the full per-line parser: what the fast path must agree with."""
    flows, malformed = parse_vtap_lines(lines, decision)
    result = FlowAggregate()
    result.add_flows(flows)
    result.malformed = malformed
    result.lines = len(flows) + malformed
    return result


def test_the_documented_example_lines_sum_up():
    aggregate = FlowAggregate()
    assert aggregate.add_vtap_lines(REFERENCE_LINES) == (2, 0)
    (row,) = aggregate.rows()
    assert row == AggregateRow(
        src="192.168.125.208",
        dst="172.17.0.2",
        dst_port=80,
        proto=6,
        decision="allowed",
        count=2,
        first=pytest.approx(parse_time("2020-02-03T16:47:15.104-08:00")),
        last=pytest.approx(parse_time("2020-02-03T16:48:15.157-08:00")),
        bytes_in=0,
        bytes_out=232,
    )
    assert (aggregate.lines, aggregate.malformed, aggregate.connections(), len(aggregate)) == (2, 0, 2, 1)


def test_stand_in_lines_fast_and_full_parsers_agree(tmp_path):
    (tmp_path / "log").mkdir()
    recorder = vensim.FlowRecorder(vensim.Layout({"data_dir": str(tmp_path)}))
    rng = random.Random(5)
    flows = []
    for number in range(300):
        six = number % 4 == 0
        flows.append(
            {
                "detected_at": 1700000000.0 + number,
                "first_seen": 1700000000.0 + number - 2,
                "last_seen": 1700000000.0 + number,
                "interface": "eth0",
                "ip_version": 6 if six else 4,
                "src_ip": f"fd00::{rng.randrange(1, 4)}" if six else f"10.0.0.{rng.randrange(1, 4)}",
                "dst_ip": "fd00:0:0:0::99" if six else "10.0.0.99",
                "proto": rng.choice((6, 17)),
                "src_port": rng.randrange(30000, 60000),
                "dst_port": rng.choice((22, 53, 443)),
                "direction": rng.choice("IO"),
                "state": "C",
                "bytes_in": rng.randrange(1000),
                "bytes_out": rng.randrange(1000),
                "workload_uuid": UUID,
            }
        )
    recorder.record(flows)
    lines = (tmp_path / "log" / "vtapflow.log").read_text().splitlines()
    lines += ["garbage", "", REFERENCE_LINES[0].replace("TBI=0", "TBI=x")]
    fast = FlowAggregate()
    assert fast.add_vtap_lines(lines) == (300, 2)
    slow = slow_aggregate(lines)
    assert fast.rows() == slow.rows()
    assert {row.dst for row in fast.rows()} == {"10.0.0.99", "fd00::99"}
    assert fast.connections() == 300
    assert sum(row.bytes_in for row in fast.rows()) == sum(flow["bytes_in"] for flow in flows)


def test_raw_spellings_of_one_key_are_merged():
    lines = [
        vtap("2026-01-01T00:00:01.000Z", "2001:db8:0:0::1", "2001:db8::2", "443"),
        vtap("2026-01-01T00:00:02.000+00:00", "2001:DB8::1", "2001:db8:0::2", "0443"),
        vtap("2026-01-01T00:00:03.000+00:00", "2001:db8::1", "2001:db8::2", "443"),
    ]
    aggregate = FlowAggregate()
    aggregate.add_vtap_lines(lines)
    (row,) = aggregate.rows()
    assert (row.src, row.dst, row.dst_port, row.count) == ("2001:db8::1", "2001:db8::2", 443, 3)
    assert row.first == parse_time("2026-01-01T00:00:01Z")
    assert row.last == parse_time("2026-01-01T00:00:03Z")
    assert aggregate.rows() == slow_aggregate(lines).rows()


def test_times_compare_as_times_across_offsets():
    # One clock hour apart on the wall, but the same instant: the daylight saving time change.
    lines = [
        vtap("2026-03-29T02:30:00.000+02:00", "10.0.0.1", "10.0.0.2", 22),
        vtap("2026-03-29T01:45:00.000+01:00", "10.0.0.1", "10.0.0.2", 22),
    ]
    aggregate = FlowAggregate()
    aggregate.add_vtap_lines(lines)
    (row,) = aggregate.rows()
    assert row.first == parse_time("2026-03-29T00:30:00Z")
    assert row.last == parse_time("2026-03-29T00:45:00Z")


@pytest.mark.parametrize(
    "line",
    [
        vtap("2026-01-01T00:00:01.000Z", "10.0.0.300", "10.0.0.2", 22),
        vtap("2026-01-01T00:00:01.000Z", "10.0.0.1", "fd00::2", 22),
        vtap("2026-01-01T00:00:01.000Z", "10.0.0.1", "10.0.0.2", 65536),
        vtap("2026-01-01T00:00:01.000Z", "10.0.0.1", "10.0.0.2", 22, proto=256),
        vtap("2026-01-01T00:00:01.000Z", "10.0.0.1", "10.0.0.2", 22, bytes_out="many"),
        vtap("someday", "10.0.0.1", "10.0.0.2", 22),
        "2026-01-01T00:00:01.000Z eth0",
        "TBI=1 TB0=2",
        "a b c d e f g h i j k l m n TBI=1 TB0=2",
    ],
)
def test_malformed_lines_are_counted(line):
    good = vtap("2026-01-01T00:00:01.000Z", "10.0.0.7", "10.0.0.8", 22)
    aggregate = FlowAggregate()
    assert aggregate.add_vtap_lines([line, good, line]) == (1, 2)
    assert (aggregate.lines, aggregate.malformed) == (3, 2)
    assert [row.src for row in aggregate.rows()] == ["10.0.0.7"]


def test_other_layouts_go_through_the_full_parser():
    without_workload = "2026-01-01T00:00:01.000Z eth0 0 0 4 10.0.0.1 10.0.0.2 6 40000 22 15 C 0 O TBI=5 TB0=6"
    extra_word = vtap("2026-01-01T00:00:02.000Z", "10.0.0.1", "10.0.0.2", 22, extra=" NEW=1")
    bytes_last = vtap("2026-01-01T00:00:03.000Z", "10.0.0.1", "10.0.0.2", 22).replace(
        " TBI=10 TB0=20", " TB0=20 TBI=10"
    )
    no_bytes = "2026-01-01T00:00:04.000Z eth0 0 0 4 10.0.0.1 10.0.0.2 6 40000 22 15 C 0 O"
    lines = [without_workload, extra_word, bytes_last, no_bytes]
    aggregate = FlowAggregate()
    assert aggregate.add_vtap_lines(lines) == (4, 0)
    (row,) = aggregate.rows()
    assert (row.count, row.bytes_in, row.bytes_out) == (4, 25, 46)
    assert aggregate.rows() == slow_aggregate(lines).rows()


def test_decisions_are_kept_apart():
    aggregate = FlowAggregate()
    aggregate.add_vtap_lines(REFERENCE_LINES, "allowed")
    aggregate.add_vtap_lines(REFERENCE_LINES[:1], "blocked")
    assert [(row.decision, row.count) for row in aggregate.rows()] == [("allowed", 2), ("blocked", 1)]
    assert [row.count for row in aggregate.rows("blocked")] == [1]
    assert aggregate.connections() == 3


def test_log_tail_blocks_feed_the_aggregate(tmp_path):
    log = tmp_path / "vtapflow.log"
    lines = [vtap(f"2026-01-01T00:00:{n:02d}.000Z", "10.0.0.1", f"10.0.0.{n % 3 + 2}", 443) for n in range(60)]
    log.write_text("\n".join(lines) + "\n")
    tail = LogTail(str(log), None, block_size=200)
    aggregate = FlowAggregate()
    assert aggregate.add_vtap_lines(itertools.chain.from_iterable(tail.blocks())) == (60, 0)
    assert [row.count for row in aggregate.rows()] == [20, 20, 20]


def test_merge_summaries_and_flows_without_times_or_bytes():
    first = FlowAggregate()
    first.add_vtap_lines([vtap("2026-01-01T00:00:10.000Z", "10.0.0.1", "10.0.0.2", 22, bytes_in=1, bytes_out=2)])
    conntrack_flows = parse_conntrack(
        [
            "ipv4 2 tcp 6 117 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=41000 dport=22 "
            "src=10.0.0.2 dst=10.0.0.1 sport=22 dport=41000 [ASSURED] mark=0 use=1"
        ]
    )[0]
    second = FlowAggregate()
    second.add_flows(conntrack_flows)
    assert second.rows()[0][5:] == (1, None, None, None, None)
    second.add_summary(
        SummaryRow("10.0.0.1", "10.0.0.2", 22, 6, "allowed", 5, 5.0, 2000000000.0, 100, None),
    )
    merged = FlowAggregate().merge(first).merge(second)
    (row,) = merged.rows()
    assert (row.count, row.first, row.last, row.bytes_in, row.bytes_out) == (7, 5.0, 2000000000.0, 101, 2)
    assert (merged.lines, merged.malformed) == (1, 0)


def test_records_round_trip_through_json():
    aggregate = FlowAggregate()
    aggregate.add_vtap_lines(REFERENCE_LINES)
    aggregate.add_vtap_lines([vtap("2026-01-01T00:00:10.000Z", "fd00::1", "fd00::2", 53, proto=17)], "blocked")
    records = json.loads(json.dumps(aggregate.to_records()))
    again = FlowAggregate.from_records([*records, {"src": "10.0.0.1"}, "junk"])
    assert again.rows() == aggregate.rows()


def test_vtap_time_shortcut_matches_parse_time():
    minutes = {}
    for text in (
        "2020-02-03T16:47:15.104-08:00",
        "2020-02-03T16:47:59.999-08:00",
        "2020-02-03T16:47:00.000+05:30",
        "2020-02-03T16:47:15.104Z",
        "2020-02-03T16:47:15+00:00",
        "2020-02-03T16:47:1x.104-08:00",
        "2020-02-03T16:47:99.104-08:00",
    ):
        assert aggregate_module._vtap_time(text, minutes) == parse_time(text)


def test_without_byte_counts_the_same_sums_with_bytes_unknown():
    lines = [
        *REFERENCE_LINES,
        vtap("2026-01-01T00:00:01.000Z", "fd00::1", "fd00:0::2", 53, proto=17),
        "2026-01-01T00:00:04.000Z eth0 0 0 4 10.0.0.1 10.0.0.2 6 40000 22 15 C 0 O",  # another layout
        vtap("2026-01-01T00:00:01.000Z", "10.0.0.300", "10.0.0.2", 22),
        "172.17.0.2 6 64886 80 12286 C 0 U SWID=3c1b9f96-969a-472e-bbbc-",
        "",
    ]
    with_bytes = FlowAggregate()
    assert with_bytes.add_vtap_lines(lines) == (4, 2)
    without = FlowAggregate()
    assert without.add_vtap_lines(lines, count_bytes=False) == (4, 2)
    assert [row[:8] for row in without.rows()] == [row[:8] for row in with_bytes.rows()]
    assert {(row.bytes_in, row.bytes_out) for row in without.rows()} == {(None, None)}


def test_byte_count_spellings_and_words_after_them():
    letter_o = vtap("2026-01-01T00:00:01.000Z", "10.0.0.1", "10.0.0.2", 22, bytes_in=7).replace("TB0=", "TBO=")
    trailing = vtap("2026-01-01T00:00:02.000Z", "10.0.0.1", "10.0.0.2", 22, bytes_in=1) + " NEXT=9"
    long_key = vtap("2026-01-01T00:00:03.000Z", "10.0.0.1", "10.0.0.2", 22, bytes_in=2) + " NEXTKEY=9"
    lines = [letter_o, trailing, long_key]
    aggregate = FlowAggregate()
    assert aggregate.add_vtap_lines(lines) == (3, 0)
    (row,) = aggregate.rows()
    assert (row.count, row.bytes_in, row.bytes_out) == (3, 10, 60)
    assert aggregate.rows() == slow_aggregate(lines).rows()


def test_a_line_ending_in_bytes_in_only_goes_through_the_full_parser():
    line = vtap("2026-01-01T00:00:01.000Z", "10.0.0.1", "10.0.0.2", 22, bytes_in=7).rsplit(" ", 1)[0]
    aggregate = FlowAggregate()
    assert aggregate.add_vtap_lines([line]) == (1, 0)
    assert aggregate.rows()[0][8:] == (7, None)
