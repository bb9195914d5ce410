"""hostlab: real Linux test hosts on one machine, reachable over SSH like any other host.

Each host is a network namespace wired to a lab bridge, with its own hostname, a private mount namespace whose
root is an overlay over the machine's root, its own PID namespace and an sshd. See README.md next to this file.

Standard library only, so any python3 >= 3.10 on the machine can run it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve()
EXIT_FAILED = 1
EXIT_UNUSABLE = 2
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,10}$")  # "hlv-" + name must fit the 15-character link name limit
NETNS_DIR = Path("/run/netns")
# `ip netns add` turns /run/netns into a shared bind mount on first use and never undoes it; this marker says that
# hostlab caused it, so the last `down` can restore the machine's mount table.
NETNS_MARKER = Path("/run/hostlab-netns-mount.json")
# Every lab shares that mount: one hostlab command at a time notes, uses or releases it (labs run in parallel).
MACHINE_LOCK = Path("/run/hostlab.lock")
FIRST_INDEX = 11  # host addresses start at .11 so low addresses stay free for the controller side
LAST_INDEX = 250
SSHD_WAIT_SECONDS = 30
EXIT_WAIT_SECONDS = 10
REQUIRED_TOOLS = {
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "pivot_root": "util-linux",
    "mount": "mount",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
}
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class HostlabError(Exception):
    """An expected failure: reported as one line, never as a traceback."""


# --- lab configuration ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    """Where a lab keeps its state and which bridge and subnets it uses (overridable for parallel labs)."""

    state_dir: Path
    bridge: str
    subnet4: ipaddress.IPv4Network

    @classmethod
    def from_env(cls) -> Lab:
        subnet = os.environ.get("HOSTLAB_SUBNET", "10.213.0.0/24")
        try:
            subnet4 = ipaddress.IPv4Network(subnet)
        except ValueError as exc:
            raise HostlabError(f"HOSTLAB_SUBNET={subnet!r} is not an IPv4 network: {exc}") from None
        if subnet4.prefixlen != 24:
            raise HostlabError(f"HOSTLAB_SUBNET must be a /24, got {subnet4}")
        bridge = os.environ.get("HOSTLAB_BRIDGE", "hlbr0")
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,15}", bridge):
            raise HostlabError(f"HOSTLAB_BRIDGE={bridge!r} is not a valid link name")
        state_dir = Path(os.environ.get("HOSTLAB_STATE_DIR", "/var/lib/hostlab")).absolute()
        return cls(state_dir=state_dir, bridge=bridge, subnet4=subnet4)

    @property
    def env(self) -> dict[str, str]:
        return {
            "HOSTLAB_STATE_DIR": str(self.state_dir),
            "HOSTLAB_BRIDGE": self.bridge,
            "HOSTLAB_SUBNET": str(self.subnet4),
        }

    @property
    def subnet6(self) -> ipaddress.IPv6Network:
        # A ULA /64 derived from the IPv4 /24, so 10.213.0.11 pairs with fd68:6c61:62:d500::11 (readable at a glance).
        second, third = self.subnet4.network_address.packed[1:3]
        return ipaddress.IPv6Network(f"fd68:6c61:62:{second:02x}{third:02x}::/64")

    @property
    def bridge_ipv4(self) -> ipaddress.IPv4Address:
        return self.subnet4.network_address + 1

    @property
    def bridge_ipv6(self) -> ipaddress.IPv6Address:
        return self.subnet6.network_address + 1

    def host_ipv4(self, index: int) -> ipaddress.IPv4Address:
        return self.subnet4.network_address + index

    def host_ipv6(self, index: int) -> ipaddress.IPv6Address:
        # The decimal digits of the IPv4 host part reused as hex digits: .11 -> ::11.
        return ipaddress.IPv6Address(f"{self.subnet6.network_address}{index}")

    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    def host_dir(self, name: str) -> Path:
        return self.hosts_dir / name

    @property
    def key_path(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def ssh_config_path(self) -> Path:
        return self.state_dir / "ssh_config"

    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / ".lock"


@dataclass
class Host:
    """What hostlab records about one host in hosts/NAME/host.json."""

    name: str
    index: int
    ipv4: str
    ipv6: str
    holder_pid: int = 0
    holder_start: str = ""

    @property
    def netns(self) -> str:
        return netns_name(self.name)

    @property
    def veth(self) -> str:
        return veth_name(self.name)


def netns_name(name: str) -> str:
    return f"hl-{name}"


def veth_name(name: str) -> str:
    return f"hlv-{name}"


# --- small helpers ----------------------------------------------------------------------------------------------


def run(cmd: list[str], *, input_text: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, input=input_text, capture_output=True, text=True, env={**os.environ, "PATH": SAFE_PATH}, check=False
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().replace("\n", "; ")
        raise HostlabError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {detail}")
    return proc


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two writers never share a temporary file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def process_start_time(pid: int) -> str | None:
    """Kernel start time of a live process, which tells a recorded pid from a recycled one; None if gone/zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    state, start = fields[0], fields[19]
    return None if state in ("Z", "X") else start


def process_parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def pids_in_netns(netns: str) -> list[int]:
    """Like `ip netns pids`, done here so it also works for a namespace file that is half set up."""
    try:
        target = os.stat(NETNS_DIR / netns)
    except OSError:
        return []
    found = []
    for pid in all_pids():
        try:
            ns = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (ns.st_dev, ns.st_ino) == (target.st_dev, target.st_ino) and pid != os.getpid():
            found.append(pid)
    return found


def pids_running_init(lab: Lab, name: str) -> list[int]:
    """Processes started as this lab's init for NAME (the unshare holder and the init itself), found by argv."""
    wanted = ["_init", name, "--state-dir", str(lab.state_dir)]
    found = []
    for pid in all_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(argv[i : i + len(wanted)] == wanted for i in range(len(argv))):
            found.append(pid)
    return found


def init_pid(host: Host) -> int | None:
    """The host's PID 1 as seen from the machine: the child of the recorded unshare holder."""
    if not host.holder_pid or process_start_time(host.holder_pid) != host.holder_start:
        return None
    for pid in all_pids():
        if process_parent(pid) == host.holder_pid and process_start_time(pid):
            return pid
    return None


def mountpoints() -> list[str]:
    return [line.split()[4].replace("\\040", " ") for line in Path("/proc/self/mountinfo").read_text().splitlines()]


_machine_lock_depth = 0


@contextlib.contextmanager
def machine_lock():
    """Exclusive, machine-wide; re-entrant within one command (an `up` that fails releases what it noted)."""
    global _machine_lock_depth
    if _machine_lock_depth:
        _machine_lock_depth += 1
        try:
            yield
        finally:
            _machine_lock_depth -= 1
        return
    fd = os.open(MACHINE_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _machine_lock_depth = 1
        yield
    finally:
        _machine_lock_depth = 0
        os.close(fd)


def note_netns_mount_before_first_use() -> None:
    if NETNS_MARKER.exists() or str(NETNS_DIR) in mountpoints():
        return
    write_atomically(NETNS_MARKER, json.dumps({"dir_made": not NETNS_DIR.exists()}) + "\n")


def release_netns_mount_if_unused() -> list[str]:
    with machine_lock():
        return _release_netns_mount_if_unused()


def _release_netns_mount_if_unused() -> list[str]:
    try:
        dir_made = json.loads(NETNS_MARKER.read_text())["dir_made"]
    except (OSError, ValueError, KeyError):
        return []
    if NETNS_DIR.is_dir() and any(NETNS_DIR.iterdir()):
        return []  # someone else's namespaces live there now
    if str(NETNS_DIR) in mountpoints():
        result = run(["umount", str(NETNS_DIR)], check=False)
        if result.returncode != 0:
            return [f"cannot unmount {NETNS_DIR}: {result.stderr.strip()}"]
    if dir_made:
        try:
            NETNS_DIR.rmdir()
        except OSError:
            pass
    NETNS_MARKER.unlink(missing_ok=True)
    return []


def sshd_answers(address: str, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


# --- lab state --------------------------------------------------------------------------------------------------


class LabLock:
    """Exclusive lock over one lab's state; survives the lock file being removed by the last `down`."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.fd = -1

    def __enter__(self) -> LabLock:
        while True:
            self.lab.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.lab.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.lab.lock_path).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                self.fd = fd
                return self
            os.close(fd)  # the previous holder removed the lab meanwhile; lock the new file instead

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)


def load_host(lab: Lab, name: str) -> Host | None:
    try:
        return Host(**json.loads((lab.host_dir(name) / "host.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save_host(lab: Lab, host: Host) -> None:
    write_atomically(lab.host_dir(host.name) / "host.json", json.dumps(asdict(host), indent=2) + "\n")


def recorded_names(lab: Lab) -> list[str]:
    try:
        return sorted(entry.name for entry in lab.hosts_dir.iterdir() if entry.is_dir())
    except FileNotFoundError:
        return []


def recorded_hosts(lab: Lab) -> list[Host]:
    return [host for host in (load_host(lab, name) for name in recorded_names(lab)) if host]


def generate_key(path: Path, comment: str) -> None:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    os.chmod(path, 0o600)


def ensure_lab_key(lab: Lab) -> None:
    if not lab.key_path.exists():
        generate_key(lab.key_path, "hostlab")


def write_client_files(lab: Lab) -> None:
    """known_hosts, ssh_config and the Ansible inventory, regenerated from the records after every change."""
    hosts = recorded_hosts(lab)
    known = []
    for host in hosts:
        pub = lab.host_dir(host.name) / "ssh_host_ed25519_key.pub"
        if pub.exists():
            key_type, key = pub.read_text().split()[:2]
            known.append(f"{host.name},{host.ipv4},{host.ipv6} {key_type} {key}\n")
    write_atomically(lab.known_hosts_path, "".join(known))
    write_atomically(lab.ssh_config_path, render_ssh_config(lab, hosts))
    write_atomically(lab.inventory_path, render_inventory(lab, hosts))


def render_ssh_config(lab: Lab, hosts: list[Host]) -> str:
    lines = [f"# Written by hostlab. Use: ssh -F {lab.ssh_config_path} NAME\n"]
    for host in hosts:
        lines.append(
            f"Host {host.name} {host.ipv4} {host.ipv6}\n"
            f"    HostName {host.ipv4}\n"
            "    User root\n"
            f"    IdentityFile {lab.key_path}\n"
            "    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {lab.known_hosts_path}\n"
            "    GlobalKnownHostsFile /dev/null\n"
            "    StrictHostKeyChecking yes\n"
            "    PasswordAuthentication no\n"
            "    BatchMode yes\n"
            "    ConnectTimeout 10\n"
            "    LogLevel ERROR\n"
        )
    return "\n".join(lines)


def render_inventory(lab: Lab, hosts: list[Host]) -> str:
    # JSON strings are valid YAML scalars, which keeps quoting right for any path.
    def q(value: object) -> str:
        return json.dumps(str(value))

    lines = ["# Written by hostlab.", "all:", "  children:", "    hostlab:", "      hosts:"]
    if not hosts:
        lines[-1] = "      hosts: {}"
    for host in hosts:
        lines += [
            f"        {host.name}:",
            f"          ansible_host: {q(host.ipv4)}",
            f"          hostlab_ipv4: {q(host.ipv4)}",
            f"          hostlab_ipv6: {q(host.ipv6)}",
        ]
    lines += [
        "      vars:",
        "        ansible_user: root",
        f"        ansible_ssh_private_key_file: {q(lab.key_path)}",
        f"        ansible_ssh_common_args: {q(f'-F {lab.ssh_config_path}')}",
        "        ansible_python_interpreter: /usr/bin/python3",
        f"        hostlab_controller_ipv4: {q(lab.bridge_ipv4)}",
        f"        hostlab_controller_ipv6: {q(lab.bridge_ipv6)}",
    ]
    return "\n".join(lines) + "\n"


# --- up ---------------------------------------------------------------------------------------------------------


def check_new_names(lab: Lab, names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise HostlabError("a host name is given twice")
    for name in names:
        if not NAME_PATTERN.match(name):
            raise HostlabError(f"bad host name {name!r}: use 1-11 of a-z, 0-9 and '-', starting with a letter")
        if lab.host_dir(name).exists():
            raise HostlabError(f"host {name} already exists (hostlab down {name} first)")
        if (NETNS_DIR / netns_name(name)).exists() or link_exists(veth_name(name)):
            raise HostlabError(
                f"{netns_name(name)} or {veth_name(name)} already exists outside this lab's state "
                f"(another lab uses the name, or a leftover: hostlab down {name})"
            )


def allocate_hosts(lab: Lab, names: list[str]) -> list[Host]:
    """Lowest free addresses in the order given; recorded before anything is built so `down` finds half-made hosts."""
    used = {host.index for host in recorded_hosts(lab)}
    free = (index for index in range(FIRST_INDEX, LAST_INDEX + 1) if index not in used)
    hosts = []
    for name in names:
        index = next(free, None)
        if index is None:
            raise HostlabError(f"no free address left in {lab.subnet4}")
        host = Host(name=name, index=index, ipv4=str(lab.host_ipv4(index)), ipv6=str(lab.host_ipv6(index)))
        lab.host_dir(name).mkdir(parents=True)
        save_host(lab, host)
        hosts.append(host)
    return hosts


def ensure_bridge(lab: Lab) -> None:
    if not link_exists(lab.bridge):
        run(["ip", "link", "add", lab.bridge, "type", "bridge"])
    elif not Path("/sys/class/net", lab.bridge, "bridge").exists():
        raise HostlabError(f"link {lab.bridge} exists and is not a bridge")
    addresses = run(["ip", "-o", "addr", "show", "dev", lab.bridge]).stdout
    for address in (f"{lab.bridge_ipv4}/24", f"{lab.bridge_ipv6}/64"):
        if f" {address} " not in addresses:
            # nodad: the address is usable at once instead of after a second of duplicate address detection.
            run(["ip", "addr", "add", address, "dev", lab.bridge, "nodad"])
    run(["ip", "link", "set", lab.bridge, "up"])


def build_network(lab: Lab, host: Host) -> None:
    run(["ip", "netns", "add", host.netns])
    run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns])
    run(["ip", "link", "set", host.veth, "alias", f"hostlab {host.name} {lab.state_dir}"])
    run(["ip", "link", "set", host.veth, "master", lab.bridge, "up"])
    commands = [
        "link set lo up",
        f"addr add {host.ipv4}/24 dev eth0",
        f"addr add {host.ipv6}/64 dev eth0 nodad",
        "link set eth0 up",
        f"route add default via {lab.bridge_ipv4}",
        f"route add ::/0 via {lab.bridge_ipv6}",
    ]
    run(["ip", "-n", host.netns, "-batch", "-"], input_text="\n".join(commands) + "\n")


# Folders whose content is the machine's own state, not its software: a host starts with them empty, as a freshly
# installed machine does, so neither the machine's package index, its root's dotfiles (a pyenv in .bashrc that
# changes which python3 Ansible finds) nor other labs' leftovers in /var/tmp decide how a test on a host behaves.
# (folder, mode, owner) - the owner by name, when that user exists on the machine.
FRESH_FOLDERS = (
    ("root", 0o700, "root"),
    ("var/tmp", 0o1777, "root"),
    ("var/lib/apt/lists", 0o755, "root"),
    ("var/lib/apt/lists/partial", 0o700, "_apt"),
    ("var/cache/apt", 0o755, "root"),
    ("var/cache/apt/archives", 0o755, "root"),
    ("var/cache/apt/archives/partial", 0o700, "_apt"),
)
# Root's shell start-up files as Debian's base-files installs them (dot.bashrc, dot.profile).
ROOT_DOTFILES = {".bashrc": "/usr/share/base-files/dot.bashrc", ".profile": "/usr/share/base-files/dot.profile"}


def start_as_a_fresh_machine(upper: Path) -> None:
    """Opaque folders in the new upper layer hide what the machine (the lower layer) has in them."""
    for folder, mode, owner in FRESH_FOLDERS:
        path = upper / folder
        for parent in reversed(Path(folder).parents[:-1]):  # merged with the machine's: same mode and owner
            if not (upper / parent).exists():
                lower = os.stat(Path("/") / parent)
                (upper / parent).mkdir()
                os.chmod(upper / parent, stat.S_IMODE(lower.st_mode))
                os.chown(upper / parent, lower.st_uid, lower.st_gid)
        path.mkdir()
        os.setxattr(path, "trusted.overlay.opaque", b"y")
        os.chmod(path, mode)
        try:
            os.chown(path, pwd.getpwnam(owner).pw_uid, 0)
        except KeyError:
            pass  # no _apt user: apt is not installed, and nothing uses the folder
    for name, source in ROOT_DOTFILES.items():
        if os.path.isfile(source):
            shutil.copyfile(source, upper / "root" / name)


def start_init(lab: Lab, host: Host) -> None:
    """Start the host's PID 1 inside its network namespace and new UTS, IPC, mount and PID namespaces."""
    hdir = lab.host_dir(host.name)
    if not (hdir / "upper").exists():
        (hdir / "upper").mkdir()
        start_as_a_fresh_machine(hdir / "upper")
    for sub in ("work", "root"):
        (hdir / sub).mkdir(exist_ok=True)
    generate_key(hdir / "ssh_host_ed25519_key", f"root@{host.name}")
    cmd = [
        "nsenter", f"--net={NETNS_DIR / host.netns}", "--",
        "unshare", "--uts", "--ipc", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private", "--",
        sys.executable, str(SCRIPT), "_init", host.name, "--state-dir", str(lab.state_dir),
    ]  # fmt: skip
    with open(hdir / "init.log", "ab") as log:
        holder = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # the host outlives this command and ignores its terminal's signals
            env={"PATH": SAFE_PATH, "LANG": "C.UTF-8", **lab.env},
        )
    host.holder_pid = holder.pid
    host.holder_start = process_start_time(holder.pid) or ""
    save_host(lab, host)
    wait_for_sshd(lab, host, holder)


def wait_for_sshd(lab: Lab, host: Host, holder: subprocess.Popen) -> None:
    deadline = time.monotonic() + SSHD_WAIT_SECONDS
    while time.monotonic() < deadline:
        if holder.poll() is not None:
            raise HostlabError(f"host {host.name}: init exited early; log: {log_tail(lab, host.name)}")
        if sshd_answers(host.ipv4, timeout=0.5):
            return
        time.sleep(0.05)
    raise HostlabError(f"host {host.name}: sshd not answering on {host.ipv4}:22 after {SSHD_WAIT_SECONDS}s")


def log_tail(lab: Lab, name: str, lines: int = 5) -> str:
    try:
        text = (lab.host_dir(name) / "init.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty)"


def create_host(lab: Lab, host: Host) -> str | None:
    """Build one host; on failure tear down what was made and return the reason."""
    try:
        build_network(lab, host)
        start_init(lab, host)
        return None
    except HostlabError as exc:
        remove_host(lab, host.name)
        return str(exc)


def cmd_up(lab: Lab, args: argparse.Namespace) -> int:
    started = time.monotonic()
    with LabLock(lab), machine_lock():
        try:
            check_new_names(lab, args.names)
            ensure_lab_key(lab)
            note_netns_mount_before_first_use()
            ensure_bridge(lab)
            hosts = allocate_hosts(lab, args.names)
            # Hosts are independent and most of the time goes to waiting on processes, so build them in parallel.
            with ThreadPoolExecutor(max_workers=min(len(hosts), 16)) as pool:
                reasons = list(pool.map(lambda host: create_host(lab, host), hosts))
        finally:
            if recorded_names(lab):
                write_client_files(lab)
            else:
                remove_lab(lab)  # nothing came up (or a name was refused): leave nothing behind
    failures = {host.name: reason for host, reason in zip(hosts, reasons, strict=True) if reason}
    for name, reason in failures.items():
        print(f"hostlab: {name}: {reason}", file=sys.stderr)
    report_hosts(lab, [host for host in hosts if host.name not in failures], time.monotonic() - started)
    return EXIT_FAILED if failures else 0


def report_hosts(lab: Lab, hosts: list[Host], seconds: float) -> None:
    for host in hosts:
        print(f"{host.name}\t{host.ipv4}\t{host.ipv6}")
    if hosts:
        print(f"up {len(hosts)} host(s) in {seconds:.1f}s", file=sys.stderr)
        print(f"ssh:     ssh -F {lab.ssh_config_path} {hosts[0].name}", file=sys.stderr)
        print(f"ansible: ansible -i {lab.inventory_path} all -m ping", file=sys.stderr)


# --- down -------------------------------------------------------------------------------------------------------


def kill_host_processes(lab: Lab, name: str) -> list[str]:
    """SIGKILL the host's init (which ends its whole PID namespace) and anything else inside its network namespace.

    Processes are found three independent ways (recorded pid, netns membership, init argv) so a host whose state
    is partly gone is still found.
    """
    host = load_host(lab, name)
    victims = set(pids_in_netns(netns_name(name))) | set(pids_running_init(lab, name))
    if host:
        pid = init_pid(host)
        if pid:
            victims.add(pid)
        if host.holder_pid and process_start_time(host.holder_pid) == host.holder_start:
            victims.add(host.holder_pid)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    alive = victims
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if process_start_time(pid)}
        time.sleep(0.02)
    return [f"processes still alive after SIGKILL: {sorted(alive)}"] if alive else []


def remove_host_links(lab: Lab, name: str) -> list[str]:
    problems = []
    if link_exists(veth_name(name)):
        result = run(["ip", "link", "del", veth_name(name)], check=False)
        if result.returncode != 0 and link_exists(veth_name(name)):
            problems.append(f"cannot delete link {veth_name(name)}: {result.stderr.strip()}")
    netns_file = NETNS_DIR / netns_name(name)
    if netns_file.exists():
        result = run(["ip", "netns", "del", netns_name(name)], check=False)
        if netns_file.exists():
            problems.append(f"cannot delete netns {netns_name(name)}: {result.stderr.strip()}")
    return problems


def unmount_below(path: Path) -> list[str]:
    """The host's mounts live in its own mount namespace; this only catches ones leaked into the machine's."""
    prefix = str(path) + "/"
    problems = []
    for point in sorted((p for p in mountpoints() if p.startswith(prefix)), key=len, reverse=True):
        result = run(["umount", "-l", point], check=False)
        if result.returncode != 0:
            problems.append(f"cannot unmount {point}: {result.stderr.strip()}")
    return problems


def remove_host(lab: Lab, name: str) -> list[str]:
    """Remove every resource of one host, each independently, so a half-made or broken host still goes away."""
    problems = kill_host_processes(lab, name)
    problems += remove_host_links(lab, name)
    hdir = lab.host_dir(name)
    problems += unmount_below(hdir)
    shutil.rmtree(hdir, ignore_errors=True)
    if hdir.exists():
        problems.append(f"cannot remove {hdir}")
    return problems


def remove_lab(lab: Lab) -> list[str]:
    """Last host gone: remove the bridge and the lab's state, lock file last."""
    problems = []
    if link_exists(lab.bridge):
        result = run(["ip", "link", "del", lab.bridge], check=False)
        if link_exists(lab.bridge):
            problems.append(f"cannot delete bridge {lab.bridge}: {result.stderr.strip()}")
    for entry in lab.state_dir.iterdir() if lab.state_dir.exists() else []:
        if entry != lab.lock_path:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    lab.lock_path.unlink(missing_ok=True)
    try:
        lab.state_dir.rmdir()
    except OSError:
        pass  # the directory was there before hostlab or holds files we did not make: leave it
    return problems + release_netns_mount_if_unused()


def cmd_down(lab: Lab, args: argparse.Namespace) -> int:
    if not args.names and not args.all:
        raise HostlabError("name the hosts to remove, or use --all")
    for name in args.names:
        if not NAME_PATTERN.match(name):
            raise HostlabError(f"bad host name {name!r}")
    with LabLock(lab):
        names = sorted(set(args.names) | (set(recorded_names(lab)) if args.all else set()))
        with ThreadPoolExecutor(max_workers=max(1, min(len(names), 16))) as pool:
            results = dict(zip(names, pool.map(lambda name: remove_host(lab, name), names), strict=True))
        problems = [f"{name}: {problem}" for name, found in results.items() for problem in found]
        if recorded_names(lab):
            write_client_files(lab)
        else:
            problems += remove_lab(lab)
    for problem in problems:
        print(f"hostlab: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else 0


# --- list, inventory, ssh-config, exec --------------------------------------------------------------------------


def host_status(lab: Lab, host: Host) -> tuple[str, str]:
    missing = []
    if not (NETNS_DIR / host.netns).exists():
        missing.append("netns")
    if not link_exists(host.veth):
        missing.append("veth")
    if not init_pid(host):
        missing.append("init")
    if not missing and not sshd_answers(host.ipv4, timeout=0.5):
        missing.append("sshd")
    return ("broken", "missing " + ", ".join(missing)) if missing else ("running", "")


def cmd_list(lab: Lab, args: argparse.Namespace) -> int:
    rows = []
    for name in recorded_names(lab):
        host = load_host(lab, name)
        if host is None:
            rows.append({"name": name, "ipv4": "", "ipv6": "", "state": "broken", "detail": "no host.json"})
            continue
        state, detail = host_status(lab, host)
        rows.append({"name": name, "ipv4": host.ipv4, "ipv6": host.ipv6, "state": state, "detail": detail})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':<12} {'IPV4':<15} {'IPV6':<28} STATE")
    for row in rows:
        print(f"{row['name']:<12} {row['ipv4']:<15} {row['ipv6']:<28} {row['state']} {row['detail']}".rstrip())
    return 0


def cmd_inventory(lab: Lab, args: argparse.Namespace) -> int:
    print(render_inventory(lab, recorded_hosts(lab)), end="")
    return 0


def cmd_ssh_config(lab: Lab, args: argparse.Namespace) -> int:
    print(render_ssh_config(lab, recorded_hosts(lab)), end="")
    return 0


def cmd_exec(lab: Lab, args: argparse.Namespace) -> int:
    host = load_host(lab, args.name)
    pid = init_pid(host) if host else None
    if not pid:
        raise HostlabError(f"host {args.name} is not running (see hostlab list)")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    os.execvp(  # noqa: S606 - replacing this process with the command inside the host is the point
        "nsenter", ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *(command or ["sh"])]
    )


# --- init: PID 1 of a host --------------------------------------------------------------------------------------

SSHD_CONFIG = """\
# Written by hostlab: root logs in with the lab key only.
Port 22
ListenAddress 0.0.0.0
ListenAddress ::
HostKey /etc/hostlab/ssh_host_ed25519_key
AuthorizedKeysFile /etc/hostlab/authorized_keys .ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PidFile /run/sshd.pid
MaxStartups 200
MaxSessions 100
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
"""
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
MNT_DETACH = 2


def mount(fstype: str, target: Path, options: str, source: str | None = None) -> None:
    run(["mount", "-t", fstype, "-o", options, source or fstype, str(target)])


def mount_overlay_root(lab: Lab, name: str) -> Path:
    hdir = lab.host_dir(name)
    root = hdir / "root"
    run(["mount", "--make-rprivate", "/"])  # nothing mounted here may leak back into the machine
    mount("overlay", root, f"lowerdir=/,upperdir={hdir / 'upper'},workdir={hdir / 'work'}")
    mount("proc", root / "proc", "nosuid,nodev,noexec")
    mount("sysfs", root / "sys", "ro,nosuid,nodev,noexec")  # shows this namespace's links; ro guards the machine
    build_dev(root / "dev")
    mount("tmpfs", root / "run", "mode=755,nosuid,nodev")
    mount("tmpfs", root / "tmp", "mode=1777,nosuid,nodev")
    # The state dir is reachable through the lower layer; hide it so nothing in the host walks into its own layers.
    hidden = root / lab.state_dir.relative_to("/")
    if hidden.is_dir():
        mount("tmpfs", hidden, "ro,size=4k,mode=755")
    return root


def build_dev(dev: Path) -> None:
    mount("tmpfs", dev, "mode=755,nosuid,size=1m")
    for node, (major, minor) in DEVICES.items():
        os.mknod(dev / node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(dev / node, 0o666)  # noqa: S103 - /dev/null and friends are world-writable on every Linux
    for sub in ("pts", "shm"):
        (dev / sub).mkdir()
    mount("devpts", dev / "pts", "newinstance,ptmxmode=0666,mode=620,gid=5")  # own ptys for ssh sessions
    mount("tmpfs", dev / "shm", "mode=1777,nosuid,nodev")
    os.symlink("pts/ptmx", dev / "ptmx")
    os.symlink("/proc/self/fd", dev / "fd")
    for number, stream in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{number}", dev / stream)


def install_host_files(lab: Lab, host: Host, root: Path) -> None:
    """Identity and sshd files, written through the overlay so they land in this host's upper layer only."""
    conf = root / "etc/hostlab"
    conf.mkdir(exist_ok=True)
    shutil.copyfile(lab.host_dir(host.name) / "ssh_host_ed25519_key", conf / "ssh_host_ed25519_key")
    os.chmod(conf / "ssh_host_ed25519_key", 0o600)
    shutil.copyfile(lab.key_path.with_suffix(".pub"), conf / "authorized_keys")
    (conf / "sshd_config").write_text(SSHD_CONFIG)
    (root / "etc/hostname").write_text(host.name + "\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"{host.ipv4}\t{host.name}\n{host.ipv6}\t{host.name}\n"
    )
    (root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")  # tools key facts on it; keep it unique
    (root / "run/sshd").mkdir(mode=0o755)


def switch_root(root: Path) -> None:
    # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves only the host's mounts.
    os.chdir(root)
    run(["pivot_root", ".", "."])
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(b".", MNT_DETACH) != 0:
        raise HostlabError(f"cannot detach the old root: {os.strerror(ctypes.get_errno())}")
    os.chdir("/")


def start_sshd() -> int:
    return subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/hostlab/sshd_config"]).pid


def reap_forever(sshd_pid: int) -> None:
    """Be a proper PID 1: reap every orphan, and bring sshd back if it dies."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            pid, status = sshd_pid, 0
        if pid == sshd_pid:
            print(f"hostlab init: sshd exited ({status}); restarting", flush=True)
            time.sleep(1)
            sshd_pid = start_sshd()


def cmd_init(lab: Lab, args: argparse.Namespace) -> int:
    host = load_host(lab, args.name)
    if host is None or os.getpid() != 1:
        raise HostlabError("_init is started by `hostlab up` as PID 1 of a new PID namespace")
    root = mount_overlay_root(lab, host.name)
    install_host_files(lab, host, root)
    switch_root(root)
    socket.sethostname(host.name)
    os.environ["HOSTNAME"] = host.name
    # As PID 1, signals without handlers are ignored; end cleanly on TERM/INT (down uses SIGKILL anyway).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    print(f"hostlab init: {host.name} ready", flush=True)
    reap_forever(start_sshd())
    return 0


# --- command line -----------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hostlab", description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="create hosts and start their sshd")
    up.add_argument("names", nargs="+", metavar="NAME")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="remove hosts and everything made for them")
    down.add_argument("names", nargs="*", metavar="NAME")
    down.add_argument("--all", action="store_true", help="every host in this lab's state")
    down.set_defaults(func=cmd_down)
    listing = sub.add_parser("list", help="hosts, addresses and whether they run")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    sub.add_parser("inventory", help="print the Ansible inventory (YAML)").set_defaults(func=cmd_inventory)
    sub.add_parser("ssh-config", help="print the ssh_config for ssh -F").set_defaults(func=cmd_ssh_config)
    execute = sub.add_parser("exec", help="run a command inside a host without ssh")
    execute.add_argument("name")
    execute.add_argument("command", nargs=argparse.REMAINDER)
    execute.set_defaults(func=cmd_exec)
    init = sub.add_parser("_init")  # internal: PID 1 of a host
    init.add_argument("name")
    init.add_argument("--state-dir", required=True)
    init.set_defaults(func=cmd_init)
    return parser.parse_args(argv)


def check_usable() -> None:
    if os.geteuid() != 0:
        print(
            "hostlab: must run as root: it creates network namespaces, veth links, mounts and sshd processes "
            "(try: sudo tests/hostlab/hostlab ...)",
            file=sys.stderr,
        )
        sys.exit(EXIT_UNUSABLE)
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool, path=SAFE_PATH)})
    if missing:
        print(f"hostlab: missing tools; install the Debian packages: {' '.join(missing)}", file=sys.stderr)
        sys.exit(EXIT_UNUSABLE)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    check_usable()
    try:
        if args.command == "_init":
            os.environ["HOSTLAB_STATE_DIR"] = args.state_dir
        return args.func(Lab.from_env(), args)
    except HostlabError as exc:
        print(f"hostlab: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("hostlab: interrupted; `hostlab down NAME` removes half-made hosts", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
