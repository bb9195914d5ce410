"""Benchmark: flow_upload's uploader sending 100,000 flow summaries from a spool to a lab PCE.

Starts a throwaway lab PCE (tools/with_lab.py), writes a spool like the host-side writer's (files of 10,000
flows, 7 fields, epoch seconds), uploads it with the module's code (batches, progress records written
atomically after each batch, probes, move to done/), checks with a traffic query that every connection
arrived once, and prints flows per second, plain and gzip-compressed (each into a fresh spool, the second
one into the same lab on other addresses).

Run: .venv/bin/python tests/bench/bench_flow_upload.py [--flows 100000] [--batch-size 1000] [--file-size 10000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from with_lab import running_lab  # noqa: E402

START = int(time.time()) - 4 * 3600


def collections_root(folder: Path) -> Path:
    namespace = folder / "ansible_collections" / "microseg"
    namespace.mkdir(parents=True)
    (namespace / "illumio").symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(folder))
    return folder


def write_spool(folder: Path, flows: int, file_size: int, octet: int) -> int:
    folder.mkdir(mode=0o700)
    total = 0
    for number, offset in enumerate(range(0, flows, file_size)):
        lines = []
        for i in range(offset, min(flows, offset + file_size)):
            connections, first = 1 + i % 7, START + i % 3600
            src = f"10.{octet + i // 65536}.{i // 256 % 256}.{i % 256}"
            dst = f"10.{octet + 2}.0.{1 + i % 200}"
            lines.append(f"{src},{dst},{1024 + i % 1000},{6 if i % 4 else 17},{connections},{first},{first + i % 120}")
            total += connections
        path = folder / f"flows-20261123T{number // 3600:02d}{number // 60 % 60:02d}{number % 60:02d}Z-{number}.csv"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=100000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--file-size", type=int, default=10000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-flow-upload-"))
    collections_root(work / "collections")
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run(args, work: Path) -> None:
    from ansible_collections.microseg.illumio.plugins.module_utils.pce import traffic
    from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import PceClient

    with running_lab() as lab:
        client = PceClient(
            lab.host,
            lab.port,
            org_id=lab.org_id,
            api_key_username=lab.api_key_username,
            api_key_secret=lab.api_key_secret,
            ca_path=lab.ca_path,
        )
        for octet, compress in ((20, False), (60, True)):
            spool = work / f"spool-{octet}"
            total = write_spool(spool, args.flows, args.file_size, octet)
            began = time.perf_counter()
            result = traffic.Uploader(client, str(spool), batch_size=args.batch_size, compress=compress).run()
            elapsed = time.perf_counter() - began
            assert result["flows_accepted"] == args.flows, result
            body = traffic.flow_query_body(
                traffic.iso(START - 60),
                traffic.iso(START + 4000),
                sources={"include": [[{"ip_address": f"10.{octet}.0.0/14"}]], "exclude": []},
                max_results=200000,
            )
            rows, _job = traffic.run_query(client, body, timeout=600)
            connections = sum(row["num_connections"] for row in rows)
            print(
                f"{'gzip' if compress else 'plain'}: {args.flows} flows in {elapsed:.2f} s = "
                f"{args.flows / elapsed:,.0f} flows/s ({result['batches_sent']} batches of {args.batch_size}, "
                f"{result['files']} files); query: {len(rows)} rows, {connections} connections "
                f"(expected {total}) {'OK' if connections == total else 'MISMATCH'}",
                flush=True,
            )
        client.close()


if __name__ == "__main__":
    sys.exit(main())
