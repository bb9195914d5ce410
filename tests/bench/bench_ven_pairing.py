"""Benchmark: pair 10 test hosts with role microseg.illumio.ven, then run it again.

Starts 10 hostlab hosts and a lab PCE with the VEN stand-in (tests/vensim/rolelab.py), runs playbooks/pair.yml
(pairing script, one key for the play, made on the controller) and prints the wall time; then runs it again and
prints that time too. The re-run must change nothing, make no pairing key and fetch no pairing script: the
benchmark checks all three (keys in the lab's database, the script folder on every host untouched) and fails
otherwise. Forks: 10, so every host works at once.

Needs root (network namespaces, sshd); prints why and exits 0 otherwise.
A third run shows the re-run with SSH pipelining (ANSIBLE_PIPELINING), which fleets usually turn on.

Run: .venv/bin/python tests/bench/bench_ven_pairing.py [--hosts 10] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "vensim"))

import rolelab  # noqa: E402


def script_folders(lab: rolelab.RoleLab) -> dict[str, str]:
    return {host: lab.script_folder_stamp(host) for host in lab.hosts}


def timed_pairing(lab: rolelab.RoleLab, pipelining: bool) -> tuple[float, dict]:
    started = time.perf_counter()
    run = lab.playbook(
        "playbooks/pair.yml",
        "-f",
        str(len(lab.hosts)),
        "-e",
        "pair_hosts=all",
        *lab.pairing_vars("bench-pairing"),
        env={"ANSIBLE_PIPELINING": "True" if pipelining else "False"},
    )
    elapsed = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"pairing failed:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}")
    return elapsed, rolelab.recap(run.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="leave the hosts and the lab PCE running")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_ven_pairing: skipped - test hosts need root")
        return 0
    hosts = tuple(f"bp{n}" for n in range(1, args.hosts + 1))
    with rolelab.RoleLab("bench-ven-pairing", hosts, "10.213.243.0/24", "hlbench0", keep=args.keep) as lab:
        first, first_recap = timed_pairing(lab, pipelining=False)
        paired = sum(1 for host in hosts if first_recap.get(host, {}).get("failed", 1) == 0)
        keys, folders = lab.pairing_keys_made(), script_folders(lab)
        second, second_recap = timed_pairing(lab, pipelining=False)
        piped, piped_recap = timed_pairing(lab, pipelining=True)
        second_recap = {
            host: {key: value + piped_recap[host][key] for key, value in counters.items()}
            for host, counters in second_recap.items()
        }
        changed = sum(counters["changed"] for counters in second_recap.values())
        problems = []
        if changed:
            problems.append(f"the re-run changed {changed} thing(s)")
        if lab.pairing_keys_made() != keys:
            problems.append("the re-run made pairing keys")
        if script_folders(lab) != folders:
            problems.append("the re-run fetched the pairing script again")
    print(f"pair {paired}/{len(hosts)} hosts (pairing script, one key for the play): {first:.1f} s")
    print(f"re-run, already paired (no key, no download, changed=0): {second:.1f} s")
    print(f"re-run with ANSIBLE_PIPELINING=True: {piped:.1f} s")
    print(f"per host: first {first / len(hosts):.2f} s, re-run {second / len(hosts):.2f} s (forks {len(hosts)})")
    for problem in problems:
        print("FAIL: " + problem)
    return 1 if problems or paired != len(hosts) else 0


if __name__ == "__main__":
    sys.exit(main())
