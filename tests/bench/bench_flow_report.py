"""Benchmark: the flow report (plugins/module_utils/flows/report.py) on 5,000 flows.

Times, best of 5, building the report model and rendering its HTML page (what `flow_report` does per run),
and as the baseline in the same run `json.dumps` of the same flow rows (the cost of merely writing the input
out once). Prints both, their ratio, and the target (render <= 0.5 s). Prints figures; it is not a timed test.
Run: .venv/bin/python tests/bench/bench_flow_report.py [--flows N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET_SECONDS = 0.5


def import_collection():
    """Make this checkout importable as ansible_collections.microseg.illumio (a symlink in a temp folder)."""
    root = Path(tempfile.mkdtemp(prefix="bench-report-"))
    (root / "ansible_collections" / "microseg").mkdir(parents=True)
    (root / "ansible_collections" / "microseg" / "illumio").symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(root))


def flow(number: int) -> dict:
    """One row as flow_query returns it: labelled or unlabelled ends, IPv4 and IPv6, five decisions."""
    src_labels = {"app": f"app{number % 12}", "env": ("prod", "dev", "test")[number % 3]} if number % 4 else {}
    dst_labels = {"app": f"app{number % 9}", "env": "prod"} if number % 5 else {}
    return {
        "src_ip": f"10.{number % 3}.{number % 250}.{number % 199}",
        "src_hostname": None,
        "src_workload": "/orgs/1/workloads/src" if src_labels else None,
        "src_labels": src_labels,
        "dst_ip": f"172.16.{number % 40}.{number % 97}" if number % 7 else f"2001:db8::{number:x}",
        "dst_hostname": None,
        "dst_workload": "/orgs/1/workloads/dst" if dst_labels else None,
        "dst_labels": dst_labels,
        "port": (443, 22, 5432, 53, 8080)[number % 5],
        "proto": 6,
        "proto_name": "tcp",
        "num_connections": number % 50 + 1,
        "policy_decision": ["allowed", "potentially_blocked", "blocked", "unknown", None][number % 5],
        "flow_direction": "outbound",
        "first_detected": "2026-11-23T13:01:00Z",
        "last_detected": "2026-11-23T13:55:10Z",
    }


def best_of(runs: int, work) -> float:
    timings: list[float] = []
    while len(timings) < runs:
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=5000)
    args = parser.parse_args()
    import_collection()
    from ansible_collections.microseg.illumio.plugins.module_utils.flows.report import build_model, render_html

    rows = [flow(number) for number in range(args.flows)]
    groups = [{"name": "dc", "cidrs": ["172.16.0.0/20", "2001:db8::/120"]}]
    baseline = best_of(5, lambda: json.dumps(rows))
    report = best_of(5, lambda: render_html(build_model(rows, address_groups=groups)))
    print(f"flow report: {args.flows} flows, model + HTML in {report:.3f} s (target <= {TARGET_SECONDS} s)")
    print(f"baseline json.dumps of the rows: {baseline:.3f} s; ratio report / baseline: {report / baseline:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
