"""End to end: a lab PCE's policy, built and provisioned with the object modules, enforced by playbooks/enforce.yml.

Per backend, a lab of its own (own state dir, bridge, subnet) with two hosts, ea-web and ea-db (eai-web and eai-db
for iptables), and a lab PCE listening on the lab's bridge address over TLS (certificate for that IP, verified with
the lab's CA). The hosts are
registered on the PCE as unmanaged workloads with their lab addresses and labels (microseg.illumio.workload);
playbooks/policy_as_code.yml makes tests/hosts/files/enforce_lab_policy.yml (web may reach db on tcp/5432, nothing
else) and provisions it; playbooks/enforce.yml then reads the PCE, compiles and applies with full enforcement.
Checked for real: web reaches db:5432 but not db:5433, a second enforce.yml run changes nothing, SSH still works.

The tests of one backend build on each other, in file order.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hostlab_support import REPO, HostLab, PlaybookRun, write_playbook

BACKEND_SETTING = {"nftables": "auto", "iptables": "iptables"}
LABS = {
    "nftables": HostLab("/var/tmp/hostlab-pytest-ea-nft", "hlea0", "10.213.230.0/24", ("ea-web", "ea-db")),
    # Host names are network namespace names too: unique across labs, so both can run at once (-n 2).
    "iptables": HostLab("/var/tmp/hostlab-pytest-ea-ipt", "hlea1", "10.213.231.0/24", ("eai-web", "eai-db")),
}
ROLES = ("web", "db")  # of each lab's hosts, in order
ALLOWED_PORT = 5432
DROPPED_PORT = 5433
POLICY_FILE = Path(__file__).resolve().parent / "files" / "enforce_lab_policy.yml"
POLICY_AS_CODE = REPO / "playbooks" / "policy_as_code.yml"
ENFORCE = REPO / "playbooks" / "enforce.yml"
READY_SECONDS = 30


def pcelab_command() -> list[str]:
    beside = Path(sys.executable).with_name("pcelab")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "pcelab.cli"]


@contextlib.contextmanager
def lab_pce(data_dir: Path, address: str):
    """A lab PCE served from DATA_DIR on ADDRESS (any free port), certificate for that IP: its ILLUMIO_* variables."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    created = subprocess.run(
        [*pcelab_command(), "api-key", "create", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    username, secret = created.stdout.split()[:2]
    ready = data_dir / "ready"
    ready.unlink(missing_ok=True)
    with open(data_dir / "serve.log", "ab") as log:
        process = subprocess.Popen(
            [
                *pcelab_command(),
                "serve",
                "--data-dir",
                str(data_dir),
                "--listen",
                f"{address}:0",
                "--san",
                address,
                "--ready-file",
                str(ready),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + READY_SECONDS
        while not (ready.exists() and ready.stat().st_size):
            assert process.poll() is None, f"pcelab serve exited; see {data_dir / 'serve.log'}"
            assert time.monotonic() < deadline, f"pcelab serve was not ready in {READY_SECONDS} s"
            time.sleep(0.05)
        yield {
            "ILLUMIO_PCE_HOST": address,
            "ILLUMIO_PCE_PORT": str(json.loads(ready.read_text())["port"]),
            "ILLUMIO_PCE_ORG_ID": "1",
            "ILLUMIO_API_KEY_USERNAME": username,
            "ILLUMIO_API_KEY_SECRET": secret,
            "ILLUMIO_PCE_CA_PATH": str(data_dir / "ca.pem"),
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Scenario:
    backend: str
    lab: HostLab
    workdir: Path
    run_playbook: object

    def enforce(self) -> PlaybookRun:
        args = ["-e", "enforce_hosts=hostlab", "-e", "firewall_enforcement_mode=full"]
        args += ["-e", f"firewall_backend={BACKEND_SETTING[self.backend]}"]
        return self.run_playbook(self.lab, ENFORCE, *args)

    @property
    def web(self) -> str:
        return self.lab.hosts[0]

    @property
    def db(self) -> str:
        return self.lab.hosts[1]

    def reaches(self, address: str, port: int, source: str = "") -> bool:
        done = self.lab.connect(source or self.web, address, port)
        if done.returncode == 0:
            return True
        # Dropped on the way out of the source (refused by its own firewall) or on the way in (timed out).
        assert "timed out" in done.stderr or "not permitted" in done.stderr, done.stderr
        return False


def register_workloads(lab: HostLab, workdir: Path) -> Path:
    """A playbook that registers both lab hosts as unmanaged workloads, with their lab addresses and labels."""
    tasks = [
        {
            "name": f"Workload {host}",
            "microseg.illumio.workload": {
                "hostname": host,
                "name": host,
                "labels": {"role": role, "app": "shop", "env": "prod"},
                "interfaces": [
                    {"name": "eth0", "address": lab.ipv4(host), "cidr_block": 24},
                    {"name": "eth0", "address": lab.ipv6(host), "cidr_block": 64},
                ],
            },
        }
        for host, role in zip(lab.hosts, ROLES, strict=True)
    ]
    play = {"name": "Register the lab hosts", "hosts": "localhost", "gather_facts": False, "tasks": tasks}
    return write_playbook(workdir / "workloads.yml", [play])


class EnforceOnLabPce:
    """One backend's scenario; each subclass runs it in a lab of its own."""

    BACKEND = ""

    @pytest.fixture(scope="class")
    @classmethod
    def scenario(cls, ansible_playbook, tmp_path_factory):
        lab = LABS[cls.BACKEND]
        workdir = tmp_path_factory.mktemp(f"ea-{cls.BACKEND}")
        with lab.running(), lab_pce(workdir / "pce", lab.controller_ipv4) as pce, pytest.MonkeyPatch.context() as mp:
            for name, value in pce.items():
                mp.setenv(name, value)
            for port in (ALLOWED_PORT, DROPPED_PORT):
                lab.listen(lab.hosts[1], port)
            yield Scenario(cls.BACKEND, lab, workdir, ansible_playbook)

    def test_policy_and_workloads_on_the_lab_pce(self, scenario):
        policy = scenario.run_playbook(scenario.lab, POLICY_AS_CODE, "-e", f"policy_file={POLICY_FILE}")
        assert policy.returncode == 0, policy.output
        assert "provisioned policy version" in policy.output, policy.output
        workloads = scenario.run_playbook(scenario.lab, register_workloads(scenario.lab, scenario.workdir))
        assert workloads.returncode == 0, workloads.output
        assert workloads.recap("localhost")["changed"] == 2, workloads.output
        # Open before enforcement: the drop below is the policy's doing.
        assert scenario.reaches(scenario.lab.ipv4(scenario.db), DROPPED_PORT)

    def test_enforce_applies_the_policy(self, scenario):
        run = scenario.enforce()
        assert run.returncode == 0, run.output
        # One compile, from the lab PCE, for the backend the hosts were given.
        assert re.findall(r"-> localhost\] => \(item=(\w+)\)", run.output) == [scenario.backend], run.output
        for host in scenario.lab.hosts:
            assert run.recap(host)["changed"] >= 2, run.output  # applied and confirmed
        for address in (scenario.lab.ipv4(scenario.db), scenario.lab.ipv6(scenario.db)):
            assert scenario.reaches(address, ALLOWED_PORT), f"{scenario.web} -> {address}:{ALLOWED_PORT} should connect"
            assert not scenario.reaches(address, DROPPED_PORT), (
                f"{scenario.web} -> {address}:{DROPPED_PORT} should fail"
            )
        # Nothing else is allowed: db may not open connections to web either.
        assert not scenario.reaches(scenario.lab.ipv4(scenario.web), 22, source=scenario.db)
        listing = {"nftables": "nft list table inet illumio", "iptables": "iptables-save -t filter | grep ILO-"}
        assert scenario.lab.ssh(scenario.db, listing[scenario.backend]).stdout

    def test_second_enforce_changes_nothing(self, scenario):
        run = scenario.enforce()
        assert run.returncode == 0, run.output
        for host in scenario.lab.hosts:
            assert run.recap(host)["changed"] == 0, run.output

    def test_ssh_still_works(self, scenario):
        for host in scenario.lab.hosts:
            assert scenario.lab.ssh(host, "true", timeout=30).returncode == 0
        assert scenario.reaches(scenario.lab.ipv4(scenario.db), ALLOWED_PORT)


class TestNftables(EnforceOnLabPce):
    BACKEND = "nftables"


class TestIptables(EnforceOnLabPce):
    BACKEND = "iptables"
