"""Helpers for the host tests (see conftest.py): a hostlab lab of its own, SSH into its hosts, TCP checks, playbooks."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOSTLAB = REPO / "tests" / "hostlab" / "hostlab.py"
NEEDED_TOOLS = ("ip", "nsenter", "unshare", "pivot_root", "sshd", "ssh", "ssh-keygen", "nft", "iptables", "ipset")
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PLAYBOOK_TIMEOUT_SECONDS = 300
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n"
    "except OSError as exc:\n"
    "    sys.exit('connect failed: %s' % exc)\n"
    "print('connected')\n"
)


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "host tests need root (network namespaces, veth links, mounts, sshd)"
    missing = [tool for tool in NEEDED_TOOLS if not shutil.which(tool, path=SAFE_PATH)]
    if missing:
        return f"host tests need these tools: {' '.join(missing)}"
    if not Path(sys.executable).with_name("ansible-playbook").exists():
        return "ansible-playbook is not installed next to this python"
    return None


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    seconds: float

    def recap(self, host: str) -> dict[str, int]:
        """The PLAY RECAP counters of one host (ok, changed, unreachable, failed, ...)."""
        for line in self.output.splitlines():
            if line.startswith(host + " ") and "ok=" in line:
                return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}
        raise AssertionError(f"no recap for {host} in:\n{self.output}")


class HostLab:
    """One hostlab lab: its own state dir, bridge and subnet, and the hosts in it."""

    def __init__(self, state_dir: str | Path, bridge: str, subnet: str, hosts: tuple[str, ...]):
        self.state_dir = Path(state_dir)
        self.bridge = bridge
        self.subnet = subnet
        self.hosts = tuple(hosts)
        self.addresses: dict[str, dict] = {}

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOSTLAB_STATE_DIR": str(self.state_dir),
            "HOSTLAB_BRIDGE": self.bridge,
            "HOSTLAB_SUBNET": self.subnet,
        }

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def controller_ipv4(self) -> str:
        return str(ipaddress.IPv4Network(self.subnet).network_address + 1)

    def hostlab(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [sys.executable, str(HOSTLAB), *args]
        proc = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        if check:
            assert proc.returncode == 0, f"hostlab {' '.join(args)} failed: {proc.stderr}"
        return proc

    def check_subnet_is_free(self) -> None:
        """Another interface with this subnet (someone's lab) would make the lab's traffic go astray."""
        routes = subprocess.run(
            ["ip", "-o", "-4", "route", "show", "to", "match", str(ipaddress.IPv4Network(self.subnet).network_address)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in routes.splitlines():
            match = re.match(r"^(\S+) dev (\S+)", line)
            if match and match.group(1) == self.subnet and match.group(2) != self.bridge:
                pytest.fail(
                    f"{self.subnet} is routed via {match.group(2)} already (another lab?): bring that down first"
                )

    @contextlib.contextmanager
    def running(self):
        self.hostlab("down", "--all", *self.hosts)  # leftovers of an interrupted run
        try:
            self.check_subnet_is_free()
            self.hostlab("up", *self.hosts)
            self.addresses = {row["name"]: row for row in json.loads(self.hostlab("list", "--json").stdout)}
            yield self
        finally:
            self.hostlab("down", "--all", *self.hosts, check=False)

    def ipv4(self, host: str) -> str:
        return self.addresses[host]["ipv4"]

    def ipv6(self, host: str) -> str:
        return self.addresses[host]["ipv6"]

    def ssh(self, host: str, command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["ssh", "-F", str(self.ssh_config), host, command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"ssh {host} {command!r} failed ({proc.returncode}): {proc.stderr}"
        return proc

    def connect(self, source: str, address: str, port: int, timeout: float = 2) -> subprocess.CompletedProcess:
        """A TCP connect from host `source`; stdout 'connected', or exit 1 with the reason on stderr."""
        return self.ssh(source, f'python3 -c "{CONNECT}" {address} {port} {timeout}', check=False)

    def listen(self, host: str, port: int) -> int:
        """Start a TCP server on all addresses of `host`; returns its pid (the lab's `down` ends it anyway)."""
        pid = int(
            self.ssh(
                host, f"setsid python3 -m http.server --bind :: {port} </dev/null >/dev/null 2>&1 & echo $!"
            ).stdout.strip()
        )
        deadline = time.monotonic() + 15
        while f":{port}" not in self.ssh(host, f"ss -Htln sport = :{port}").stdout:
            assert time.monotonic() < deadline, f"listener on {host}:{port} did not start"
            time.sleep(0.2)
        return pid


def write_playbook(path: Path, plays: list[dict]) -> Path:
    """Plays as YAML (JSON is YAML). Strings are still templated by Ansible: keep `{{`, `{%` and `{#` out of them."""
    path.write_text(json.dumps(plays, indent=2) + "\n")
    return path
