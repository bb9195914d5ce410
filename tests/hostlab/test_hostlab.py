"""Tests for tests/hostlab/hostlab: real hosts, real SSH, real nftables, and a machine left as it was found.

Needs root. Each lab here has its own state dir, bridge and subnet, so a developer's running lab is untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

HOSTLAB = Path(__file__).with_name("hostlab.py")
NEEDED_TOOLS = ("ip", "nsenter", "unshare", "pivot_root", "sshd", "ssh", "ssh-keygen", "nft", "setpriv")
MISSING_TOOLS = [tool for tool in NEEDED_TOOLS if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="hostlab needs root: network namespaces, mounts, veth links, sshd"),
    pytest.mark.skipif(bool(MISSING_TOOLS), reason=f"missing tools: {' '.join(MISSING_TOOLS)}"),
]

MAIN_HOSTS = ("t1", "t2", "t3")
LISTEN_PORT = 18080
CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n"
    "except OSError as exc:\n"
    "    sys.exit(f'connect failed: {exc}')\n"
    "print('connected')\n"
)


@dataclass(frozen=True)
class LabConfig:
    state_dir: Path
    bridge: str
    subnet: str

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOSTLAB_STATE_DIR": str(self.state_dir),
            "HOSTLAB_BRIDGE": self.bridge,
            "HOSTLAB_SUBNET": self.subnet,
        }

    @property
    def ssh_config(self) -> Path:
        return self.state_dir / "ssh_config"


MAIN_LAB = LabConfig(Path("/var/tmp/hostlab-pytest-main"), "hltest0", "10.213.251.0/24")
SCRATCH_LAB = LabConfig(Path("/var/tmp/hostlab-pytest-scratch"), "hltest1", "10.213.252.0/24")


def hostlab(lab: LabConfig, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(HOSTLAB), *args], env=lab.env, capture_output=True, text=True, timeout=90, check=False
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if check:
        assert proc.returncode == 0, f"hostlab {' '.join(args)} failed: {proc.stderr}"
    return proc


def ssh(
    lab: LabConfig, host: str, command: str, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), host, command], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert proc.returncode == 0, f"ssh {host} {command!r} failed ({proc.returncode}): {proc.stderr}"
    return proc


def connect_from(lab: LabConfig, host: str, address: str, port: int, timeout: float = 3) -> subprocess.CompletedProcess:
    return ssh(lab, host, f'python3 -c "{CONNECT}" {address} {port} {timeout}', check=False)


def recorded_host(lab: LabConfig, name: str) -> dict:
    return json.loads((lab.state_dir / "hosts" / name / "host.json").read_text())


def host_addresses(lab: LabConfig) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(hostlab(lab, "list", "--json").stdout)}


def tear_down_lab(lab: LabConfig, *extra_names: str) -> None:
    hostlab(lab, "down", "--all", *extra_names)
    assert not lab.state_dir.exists()
    assert not Path("/sys/class/net", lab.bridge).exists()


# --- machine snapshots --------------------------------------------------------------------------------------------


def own_namespace(kind: str) -> tuple[int, int]:
    info = os.stat(f"/proc/self/ns/{kind}")
    return info.st_dev, info.st_ino


def lab_processes() -> set[tuple[int, str]]:
    """Live processes that are in another network or mount namespace than this test: hosts, holders, sshds.

    Zombies are left out: they hold no namespaces or resources, and this machine's PID 1 reaps orphans late.
    """
    mine = {kind: own_namespace(kind) for kind in ("net", "mnt")}
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            spaces = {kind: os.stat(f"/proc/{entry}/ns/{kind}") for kind in mine}
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if state != "Z" and any((info.st_dev, info.st_ino) != mine[kind] for kind, info in spaces.items()):
            found.add((int(entry), cmdline.strip()))
    return found


@dataclass(frozen=True)
class MachineSnapshot:
    netns: frozenset[str]
    mounts: tuple[tuple[str, str, str], ...]
    links: frozenset[str]
    processes: frozenset[tuple[int, str]]

    @classmethod
    def take(cls) -> MachineSnapshot:
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            separator = fields.index("-")
            mounts.append((fields[4], fields[separator + 1], fields[separator + 2]))  # mount point, type, source
        return cls(
            netns=frozenset(line.split()[0] for line in netns.splitlines() if line.strip()),
            mounts=tuple(sorted(mounts)),
            links=frozenset(os.listdir("/sys/class/net")),
            processes=frozenset(lab_processes()),
        )


def assert_machine_restored(before: MachineSnapshot) -> None:
    after = MachineSnapshot.take()
    assert after.netns == before.netns
    assert after.links == before.links
    assert after.mounts == before.mounts
    assert after.processes == before.processes


# --- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab():
    hostlab(MAIN_LAB, "down", "--all", *MAIN_HOSTS)  # leftovers of an interrupted earlier run
    try:
        started = time.monotonic()
        up = hostlab(MAIN_LAB, "up", *MAIN_HOSTS)
        assert time.monotonic() - started < 20
        assert [line.split("\t")[0] for line in up.stdout.splitlines()] == list(MAIN_HOSTS)
        yield MAIN_LAB
    finally:
        tear_down_lab(MAIN_LAB)


@pytest.fixture
def scratch_lab():
    hostlab(SCRATCH_LAB, "down", "--all", "s1", "s2", "c1", "c2", "c3", "c4")
    try:
        yield SCRATCH_LAB
    finally:
        hostlab(SCRATCH_LAB, "down", "--all", "s1", "s2", "c1", "c2", "c3", "c4")


@pytest.fixture
def listener_on_t2(lab):
    """A TCP server on t2 (all addresses) that the test stops by its pid."""
    started = ssh(
        lab,
        "t2",
        f"setsid python3 -m http.server --bind :: {LISTEN_PORT} </dev/null >/dev/null 2>&1 & echo $!",
    )
    pid = int(started.stdout.strip())
    try:
        deadline = time.monotonic() + 10
        while "LISTEN" not in ssh(lab, "t2", f"ss -Htln sport = :{LISTEN_PORT} | sed 's/^/LISTEN /'").stdout:
            assert time.monotonic() < deadline, "listener on t2 did not start"
            time.sleep(0.1)
        yield host_addresses(lab)["t2"]
    finally:
        ssh(lab, "t2", f"kill {pid}", check=False)


# --- behaviour without root -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["list"], ["up", "x1"], ["down", "--all"]])
def test_non_root_is_refused_with_clear_message(args):
    python = shutil.which("python3", path="/usr/bin:/bin")  # the venv's interpreter may sit under root's home
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", python, str(HOSTLAB), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        check=False,
    )
    assert proc.returncode == 2
    assert "must run as root" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- cleanup guarantees ------------------------------------------------------------------------------------------
# A second lab, so its last `down` also removes its bridge; these run before the main lab exists, so their
# snapshots start from the machine as it was (no /run/netns mount, no lab bridge).


def test_down_leaves_the_machine_as_before(scratch_lab):
    before = MachineSnapshot.take()
    hostlab(scratch_lab, "up", "s1", "s2")
    during = MachineSnapshot.take()
    # Proves the comparison below can fail: the lab shows up in every part of the snapshot.
    assert {"hl-s1", "hl-s2"} <= during.netns - before.netns
    assert {"hlv-s1", "hlv-s2", scratch_lab.bridge} <= during.links - before.links
    assert len(during.processes - before.processes) >= 6  # per host: unshare holder, init, sshd
    assert during.mounts != before.mounts
    hostlab(scratch_lab, "down", "s1", "s2")
    assert not scratch_lab.state_dir.exists()
    assert_machine_restored(before)


def test_down_cleans_up_crashed_and_half_made_hosts(scratch_lab):
    before = MachineSnapshot.take()
    hostlab(scratch_lab, "up", "c1", "c2", "c3")
    # c1: its PID 1 is killed, which takes the whole PID namespace (sshd included) with it.
    os.kill(init_pid_of(scratch_lab, "c1"), signal.SIGKILL)
    # c2: part of its state is gone (record and overlay layers), its processes still run.
    c2_dir = scratch_lab.state_dir / "hosts" / "c2"
    (c2_dir / "host.json").unlink()
    shutil.rmtree(c2_dir / "upper", ignore_errors=True)
    # c3: its network namespace file is gone (ip netns del), but its processes keep the namespace alive.
    subprocess.run(["ip", "netns", "del", "hl-c3"], check=True)
    # c4: a host that never got further than its namespace and veth, with no state at all.
    subprocess.run(["ip", "netns", "add", "hl-c4"], check=True)
    subprocess.run(
        ["ip", "link", "add", "hlv-c4", "type", "veth", "peer", "name", "eth0", "netns", "hl-c4"], check=True
    )
    wait_until(lambda: host_addresses(scratch_lab)["c1"]["state"] == "broken")
    states = host_addresses(scratch_lab)
    assert states["c2"]["state"] == "broken"
    assert states["c3"] == {**states["c3"], "state": "broken", "detail": "missing netns"}
    assert init_pid_of(scratch_lab, "c3")  # still running: only `down` can find and end it now
    hostlab(scratch_lab, "down", "--all", "c4")
    assert not scratch_lab.state_dir.exists()
    assert_machine_restored(before)


def init_pid_of(lab: LabConfig, name: str) -> int:
    holder = recorded_host(lab, name)["holder_pid"]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == holder:
                    return int(entry)
            except (OSError, IndexError, ValueError):
                continue
    raise AssertionError(f"no init process under holder {holder} of {name}")


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


# --- the main lab: three hosts --------------------------------------------------------------------------------------


def test_hosts_have_own_hostname_and_addresses(lab):
    hosts = host_addresses(lab)
    for name, row in hosts.items():
        assert row["state"] == "running"
        assert ssh(lab, name, "hostname").stdout.strip() == name
        addresses = ssh(lab, name, "ip -o addr show").stdout
        assert f"inet {row['ipv4']}/24" in addresses
        assert f"inet6 {row['ipv6']}/64" in addresses
        others = [other for other in hosts.values() if other["name"] != name]
        assert not any(f"{other['ipv4']}/" in addresses or f"{other['ipv6']}/" in addresses for other in others)
        assert "eth0" in addresses
        assert lab.bridge not in addresses


def test_opt_is_private_to_each_host(lab):
    marker = f"/opt/hostlab-test-{uuid.uuid4().hex}"
    try:
        ssh(lab, "t1", f"echo t1 > {marker}")
        assert ssh(lab, "t1", f"cat {marker}").stdout.strip() == "t1"
        for other in ("t2", "t3"):
            assert ssh(lab, other, f"test -e {marker}", check=False).returncode == 1
        assert not Path(marker).exists()
    finally:
        ssh(lab, "t1", f"rm -f {marker}", check=False)


def test_hosts_start_without_the_machines_own_state(lab):
    """Root's home, /var/tmp and the package index start as on a fresh machine, whatever the machine holds."""
    marker = Path("/var/tmp") / f"hostlab-test-{uuid.uuid4().hex}"
    marker.write_text("machine")
    try:

        def entries(folder: str) -> list[str]:
            return sorted(ssh(lab, "t1", f"ls -A {folder}").stdout.split())

        assert entries("/root") == [".bashrc", ".profile"]
        assert entries("/var/tmp") == []
        assert entries("/var/lib/apt/lists") == ["partial"]
        assert entries("/var/cache/apt") == ["archives"]
        assert ssh(lab, "t1", "command -v python3").stdout.strip() == "/usr/bin/python3"
        assert "pyenv" not in ssh(lab, "t1", "cat /root/.bashrc").stdout
        ssh(lab, "t1", "touch /var/tmp/from-t1")
        assert not Path("/var/tmp/from-t1").exists()
    finally:
        marker.unlink()


def test_nftables_ruleset_is_private_to_each_host(lab):
    table = f"hostlab_test_{uuid.uuid4().hex[:8]}"
    try:
        ssh(lab, "t1", f"nft add table inet {table}")
        assert table in ssh(lab, "t1", "nft list tables").stdout
        for other in ("t2", "t3"):
            assert table not in ssh(lab, other, "nft list tables").stdout
        machine = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
        assert table not in machine.stdout
    finally:
        ssh(lab, "t1", f"nft delete table inet {table}", check=False)


def test_tcp_between_hosts_follows_nftables_drop_rule(lab, listener_on_t2):
    target = listener_on_t2
    for address in (target["ipv4"], target["ipv6"]):
        assert connect_from(lab, "t1", address, LISTEN_PORT).stdout.strip() == "connected"
    drop = (
        "nft add table inet hostlab_drop && "
        "nft add chain inet hostlab_drop input '{ type filter hook input priority 0; }' && "
        f"nft add rule inet hostlab_drop input tcp dport {LISTEN_PORT} drop"
    )
    try:
        ssh(lab, "t2", drop)
        for address in (target["ipv4"], target["ipv6"]):
            blocked = connect_from(lab, "t1", address, LISTEN_PORT, timeout=1)
            assert blocked.returncode == 1
            assert "timed out" in blocked.stderr  # dropped, not refused: the rule did it, not a missing listener
        # The drop rule lives on t2 only: t3 still reaches t1's sshd, and t1 still reaches t2's sshd.
        assert connect_from(lab, "t3", host_addresses(lab)["t1"]["ipv4"], 22).returncode == 0
    finally:
        ssh(lab, "t2", "nft delete table inet hostlab_drop", check=False)
    for address in (target["ipv4"], target["ipv6"]):
        assert connect_from(lab, "t1", address, LISTEN_PORT).stdout.strip() == "connected"


def controller_address(lab: LabConfig, family: socket.AddressFamily) -> str:
    """The bridge address the inventory tells playbooks to use for a lab PCE on the controller."""
    key = {socket.AF_INET: "hostlab_controller_ipv4", socket.AF_INET6: "hostlab_controller_ipv6"}[family]
    for line in hostlab(lab, "inventory").stdout.splitlines():
        if line.strip().startswith(f"{key}:"):
            return json.loads(line.split(":", 1)[1])
    raise AssertionError(f"{key} missing from the inventory")


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
def test_hosts_reach_a_service_on_the_bridge_address(lab, family):
    bridge = controller_address(lab, family)
    assert (
        bridge
        in subprocess.run(
            ["ip", "-o", "addr", "show", "dev", lab.bridge], capture_output=True, text=True, check=True
        ).stdout
    )
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.bind((bridge, 0))
        server.listen(4)
        port = server.getsockname()[1]
        for host in MAIN_HOSTS:
            assert connect_from(lab, host, bridge, port).returncode == 0


def test_ssh_config_and_inventory_commands_match_written_files(lab):
    assert hostlab(lab, "ssh-config").stdout == lab.ssh_config.read_text()
    assert hostlab(lab, "inventory").stdout == (lab.state_dir / "inventory.yml").read_text()
    key = lab.state_dir / "id_ed25519"
    assert key.stat().st_mode & 0o777 == 0o600


def test_ansible_ping_reaches_every_host(lab, tmp_path):
    ansible = Path(sys.executable).with_name("ansible")
    if not ansible.exists():
        pytest.skip("ansible is not installed next to this python")
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(hostlab(lab, "inventory").stdout)
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ansible"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    proc = subprocess.run(
        [str(ansible), "-i", str(inventory), "all", "-m", "ping"],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in MAIN_HOSTS:
        assert f"{host} | SUCCESS" in proc.stdout


def test_exec_runs_a_command_inside_the_host(lab):
    assert hostlab(lab, "exec", "t2", "--", "hostname").stdout.strip() == "t2"
    assert "missing" not in hostlab(lab, "list").stdout


def test_up_refuses_bad_and_existing_names(lab):
    for names, message in ((["Bad_Name"], "bad host name"), (["t1"], "already exists"), (["x", "x"], "twice")):
        proc = hostlab(lab, "up", *names, check=False)
        assert proc.returncode == 1
        assert message in proc.stderr
    assert sorted(host_addresses(lab)) == list(MAIN_HOSTS)
