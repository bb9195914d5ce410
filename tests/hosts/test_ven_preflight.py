"""The role microseg.illumio.ven_preflight on a real (namespaced) host: it fails on red checks, warns otherwise.

A network namespace of the test's own (vpf-test-<pid>) gets IPv4 forwarding with a FORWARD rule and a process
bound to UDP 500; ansible-playbook runs inside it with a local connection, so the checks that read
per-namespace state (/proc/net, /proc/sys/net, iptables) see exactly that. Needs root; skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostlab_support import PLAYBOOK_TIMEOUT_SECONDS, PlaybookRun, write_playbook

NAMESPACE = f"vpf-test-{os.getpid()}"
UDP_BINDER = (
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('0.0.0.0', 500))\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


def in_namespace(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", NAMESPACE, *command], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def namespace():
    """The namespace with forwarding on, one FORWARD rule and UDP 500 bound; removed with everything in it."""
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True, capture_output=True)
    binder = None
    try:
        in_namespace("ip", "link", "set", "lo", "up")
        in_namespace("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        in_namespace("iptables", "-A", "FORWARD", "-s", "192.0.2.0/24", "-j", "ACCEPT")
        binder = subprocess.Popen(
            ["ip", "netns", "exec", NAMESPACE, sys.executable, "-c", UDP_BINDER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert binder.stdout.readline().strip() == "ready"
        yield NAMESPACE
    finally:
        if binder is not None:
            binder.stdin.close()
            try:
                binder.wait(10)
            except subprocess.TimeoutExpired:
                binder.kill()
                binder.wait()
        subprocess.run(["ip", "netns", "delete", NAMESPACE], check=False, capture_output=True)


@pytest.fixture
def preflight(namespace, collections_path, tmp_path):
    """preflight(**role_vars) -> PlaybookRun: the role run by ansible-playbook inside the namespace."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"vpfhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    home = tmp_path / "ansible"

    def run(**role_vars) -> PlaybookRun:
        playbook = write_playbook(
            tmp_path / "play.yml",
            [
                {
                    "name": "VEN preflight",
                    "hosts": "vpfhost",
                    "gather_facts": False,
                    "roles": [{"role": "microseg.illumio.ven_preflight", **role_vars}],
                }
            ],
        )
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        }
        playbook_bin = str(Path(sys.executable).with_name("ansible-playbook"))
        done = subprocess.run(
            ["ip", "netns", "exec", namespace, playbook_bin, "-i", str(inventory), str(playbook)],
            env=env,
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT_SECONDS,
            check=False,
        )
        return PlaybookRun(done.returncode, done.stdout + done.stderr, 0.0)

    return run


def firewall_state() -> str:
    return in_namespace("iptables-save", "-t", "filter").stdout.split("COMMIT")[0].split("\n", 1)[1]


def test_red_checks_fail_the_host(preflight):
    before = firewall_state()
    run = preflight()
    assert run.returncode != 0, run.output
    recap = run.recap("vpfhost")
    assert recap["failed"] == 1
    assert recap["changed"] == 0
    assert "VEN preflight failed on vpfhost (ven_preflight_fail_on: red): ipsec_ports (red:" in run.output
    assert "udp 500 on 0.0.0.0 by python" in run.output
    # The summary came first, with the yellow checks of this namespace.
    assert "ip_forwarding: yellow - IPv4 forwarding is on with 1 forward rule(s)" in run.output
    assert "iptables_rules: yellow - 1 iptables filter rule(s) in FORWARD" in run.output
    assert firewall_state() == before


def test_fail_on_never_only_warns(preflight):
    run = preflight(ven_preflight_fail_on="never")
    assert run.returncode == 0, run.output
    recap = run.recap("vpfhost")
    assert (recap["failed"], recap["changed"]) == (0, 0)
    assert "[WARNING]: VEN compatibility ipsec_ports (red): UDP 500/4500 in use" in run.output
    assert "[WARNING]: VEN compatibility ip_forwarding (yellow)" in run.output
    assert "VEN preflight failed" not in run.output


def test_fail_on_yellow_and_skipped_checks(preflight):
    run = preflight(
        ven_preflight_fail_on="yellow",
        ven_preflight_checks=["ip_forwarding", "ipsec_ports", "tracefs"],
        ven_preflight_skip_checks=["ipsec_ports", "tracefs"],
    )
    assert run.returncode != 0, run.output
    assert "VEN preflight failed on vpfhost (ven_preflight_fail_on: yellow): ip_forwarding (yellow:" in run.output
    assert "ipsec_ports" not in run.output.split("TASK [microseg.illumio.ven_preflight : Fail")[1]
    run = preflight(ven_preflight_checks=["ip_forwarding"])  # yellow only: fail_on red lets it pass
    assert run.returncode == 0, run.output


def test_bad_variables_fail_early(preflight):
    run = preflight(ven_preflight_fail_on="sometimes")
    assert run.returncode != 0
    assert "ven_preflight_fail_on" in run.output
    assert "Check the host's compatibility" not in run.output
