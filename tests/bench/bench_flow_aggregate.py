"""Benchmark: aggregate vtapflow.log lines (plugins/module_utils/flows/aggregate.py).

Writes N realistic vtapflow.log lines (default 1,000,000; a few thousand distinct (src, dst, dst port, proto)
tuples, about a quarter of them IPv6, random source ports, growing times) into a temporary file, then times, best
of 3:

1. the bare loop: read the file line by line and split each line;
2. the aggregation: LogTail blocks into FlowAggregate.add_vtap_lines (reading included), with the byte counts
   (the default) and without them (count_bytes=False: what a collector that only uploads needs, since the PCE's
   upload format has no bytes).

Prints lines/s of each, the ratio aggregation / bare loop, and the targets (>= 300,000 lines/s, ratio <= 2).
Prints figures; it is not a timed test. Run: .venv/bin/python tests/bench/bench_flow_aggregate.py [--lines N]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET_RATE = 300_000
TARGET_RATIO = 2.0


def import_collection():
    """Make this checkout importable as ansible_collections.microseg.illumio (a symlink in a temp folder)."""
    root = Path(tempfile.mkdtemp(prefix="bench-flows-"))
    (root / "ansible_collections" / "microseg").mkdir(parents=True)
    (root / "ansible_collections" / "microseg" / "illumio").symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(root))
    return root


def make_tuples(rng: random.Random, count: int) -> list[tuple[int, str, str, int, int]]:
    """(ip version, src, dst, dst port, proto): clients talking to a smaller set of servers on service ports."""
    services = [(6, 443), (6, 80), (6, 22), (6, 5432), (6, 3306), (6, 8443), (17, 53), (17, 123), (6, 9100)]
    tuples = set()
    while len(tuples) < count:
        proto, port = rng.choice(services)
        if rng.random() < 0.25:
            src = f"2001:db8:{rng.randrange(16):x}::{rng.randrange(1, 400):x}"
            dst = f"2001:db8:ff::{rng.randrange(1, 60):x}"
            version = 6
        else:
            src = f"10.{rng.randrange(4)}.{rng.randrange(8)}.{rng.randrange(1, 255)}"
            dst = f"10.9.0.{rng.randrange(1, 60)}"
            version = 4
        tuples.add((version, src, dst, port, proto))
    return sorted(tuples)


def write_log(path: Path, lines: int, distinct: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    tuples = make_tuples(rng, distinct)
    weights = [1.0 / (rank + 1) for rank in range(len(tuples))]  # a few busy tuples, a long tail
    picks = rng.choices(tuples, weights=weights, k=lines)
    zone = datetime.timezone(datetime.timedelta(hours=-8))
    start = datetime.datetime(2026, 11, 23, 8, 0, 0, tzinfo=zone)
    uuid = "3c1b9f96-969a-472e-bbbc-9d1c93751ef9"
    with open(path, "w", encoding="utf-8") as handle:
        batch = []
        for number, (version, src, dst, port, proto) in enumerate(picks):
            moment = start + datetime.timedelta(milliseconds=number * 3)
            stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}-08:00"
            direction = "I" if number % 3 else "O"
            batch.append(
                f"{stamp} eth0 0 0 {version} {src} {dst} {proto} {rng.randrange(32768, 61000)} {port} "
                f"{rng.randrange(1, 90000)} C 0 {direction} SWID={uuid} TBI={rng.randrange(0, 50000)} "
                f"TB0={rng.randrange(0, 5000)}\n"
            )
            if len(batch) >= 10000:
                handle.writelines(batch)
                batch.clear()
        handle.writelines(batch)


def bare_loop(path: Path) -> int:
    count = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line.split()
            count += 1
    return count


def aggregation(path: Path, count_bytes: bool = True):
    from ansible_collections.microseg.illumio.plugins.module_utils.flows.aggregate import FlowAggregate
    from ansible_collections.microseg.illumio.plugins.module_utils.flows.parsers import LogTail

    tail = LogTail(str(path))
    aggregate = FlowAggregate()
    aggregate.add_vtap_lines(itertools.chain.from_iterable(tail.blocks()), "allowed", count_bytes=count_bytes)
    return aggregate, tail


def best_of_interleaved(runs: int, works: dict) -> dict:
    """{name: (best seconds, last result)}; one run of each work per round, so that load changes hit all alike."""
    best: dict = {}
    for _run in range(runs):
        for name, work in works.items():
            gc.collect()
            started = time.perf_counter()
            result = work()
            elapsed = time.perf_counter() - started
            previous = best.get(name)
            best[name] = (elapsed if previous is None else min(previous[0], elapsed), result)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = import_collection()
    work = Path(tempfile.mkdtemp(prefix="bench-flows-data-"))
    try:
        path = work / "vtapflow.log"
        started = time.perf_counter()
        write_log(path, args.lines, args.distinct)
        print(
            f"wrote {args.lines:,} lines ({os.path.getsize(path) / 1e6:.1f} MB, {args.distinct:,} distinct tuples) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        results = best_of_interleaved(
            args.runs,
            {
                "bare": lambda: bare_loop(path),
                "with bytes": lambda: aggregation(path, True),
                "no bytes": lambda: aggregation(path, False),
            },
        )
        bare_time, counted = results["bare"]
        assert counted == args.lines
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {args.runs} (runs interleaved)")
        print(f"{'bare read + split:':25s} {bare_time:6.3f} s  {args.lines / bare_time:12,.0f} lines/s")
        for name, label in (("with bytes", "aggregation with bytes:"), ("no bytes", "aggregation, no bytes:")):
            elapsed, (aggregate, tail) = results[name]
            assert aggregate.lines == args.lines and aggregate.malformed == 0, (aggregate.lines, aggregate.malformed)
            assert aggregate.connections() == args.lines
            assert tail.state["offset"] == os.path.getsize(path)
            rate = args.lines / elapsed
            ratio = elapsed / bare_time
            print(
                f"{label:25s} {elapsed:6.3f} s  {rate:12,.0f} lines/s  ratio {ratio:.2f}  -> {len(aggregate):,} sums  "
                f"(>= {TARGET_RATE:,} lines/s: {'met' if rate >= TARGET_RATE else 'NOT met'}; "
                f"ratio <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
