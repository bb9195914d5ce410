"""VEN stand-in: `illumio-ven-ctl` and a small daemon that behave like the Illumio VEN for tests.

This is test scaffolding of the microseg.illumio collection, NOT the Illumio VEN. It installs where the VEN
installs, answers the documented `illumio-ven-ctl` subcommands with the documented output, pairs with the lab
PCE (tools/pcelab) through its lab-only agent API over TLS, heartbeats, and records flow logs (vtapflow.log,
flow.db, flowsum.db) from its host's conntrack table. It programs no policy. See README.md next to this file.

Installed as /opt/illumio_ven/lib/vensim.py and run by the /opt/illumio_ven/illumio-ven-ctl wrapper.
Python 3.6+ standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import grp
import hashlib
import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PROG = "illumio-ven-ctl"
# Tests run the stand-in in a scratch folder: VENSIM_ROOT prefixes every system path (unset on real hosts).
ROOT = os.environ.get("VENSIM_ROOT", "")
VEN_DIR = ROOT + "/opt/illumio_ven"
DEFAULT_DATA_DIR = ROOT + "/opt/illumio_ven_data"
INSTALL_RECORD = VEN_DIR + "/etc/ven_install.cfg"
VERSION_FILE = VEN_DIR + "/etc/ven_version"
CTL = VEN_DIR + "/illumio-ven-ctl"
CRON_FILE = ROOT + "/etc/cron.d/illumio-ven-monitor"
ILLUMIO_LOG = ROOT + "/var/log/illumio.log"
DEFAULT_USER = "ilo-ven"
PACKAGE = "illumio-ven"
NFT_TABLE = "illumio_vensim"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HTTP_TIMEOUT = 15
STATUS_TIMEOUT = 5
LOG_ROTATE_BYTES = 15 * 1024 * 1024  # the VEN rotates its logs to one backup at 15 MB

# Stand-in timing (the VEN heartbeats every 5 minutes); install-time environment can shorten them for tests.
DEFAULT_TIMING = {"heartbeat_seconds": 15.0, "flow_poll_seconds": 2.0, "flow_log_seconds": 60.0}
TIMING_ENV = {
    "heartbeat_seconds": "VENSIM_HEARTBEAT_SECONDS",
    "flow_poll_seconds": "VENSIM_FLOW_POLL_SECONDS",
    "flow_log_seconds": "VENSIM_FLOW_LOG_SECONDS",
}

LEGACY_MODES = {"illuminated": "visibility_only", "enforced": "full", "idle": "idle"}
ENFORCEMENT_MODES = ("full", "visibility_only", "selective", "idle")
AGENT_STATES = {"idle": "idle", "visibility_only": "illuminated", "selective": "selective", "full": "enforced"}
VISIBILITY_LEVELS = ("flow_summary", "flow_drops", "flow_off")
# `unpair` choices and the PCE's firewall_restore names for them.
UNPAIR_MODES = {"recommended": "default", "saved": "saved", "open": "disable"}
UNPAIR_DEFAULT = "open"  # "restores the host firewall state to the requested or open state if no state is specified"
COMPONENTS = ("venAgentMgr", "venPlatformHandler", "venVtapServer", "venAgentMonitor")
CLOSED_TCP_STATES = ("TIME_WAIT", "CLOSE", "LAST_ACK", "CLOSE_WAIT", "FIN_WAIT")


class VenError(Exception):
    """A failure reported as one line on stderr with exit code 1."""


class UsageError(Exception):
    """A bad command line: reported like argparse does, exit code 2."""


# --- small helpers ------------------------------------------------------------------------------------------------


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_iso_ms(stamp: float) -> str:
    """2020-02-03T16:47:15.104-08:00, the timestamp format of vtapflow.log lines."""
    moment = datetime.datetime.fromtimestamp(stamp).astimezone()
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    offset = moment.strftime("%z")
    return text + offset[:3] + ":" + offset[3:]


def read_text(path: str, default: str = "") -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return default


def read_json(path: str) -> dict:
    try:
        value = json.loads(read_text(path, "{}") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def write_file(path: str, text: str, mode: int = 0o640, owner: tuple[int, int] | None = None) -> None:
    """Atomic write; the file has its final mode from the start, so a secret is never readable by others."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    if owner is not None and os.geteuid() == 0:
        os.chown(tmp, owner[0], owner[1])
    os.replace(tmp, path)


def write_json(path: str, value: dict, mode: int = 0o640, owner: tuple[int, int] | None = None) -> None:
    write_file(path, json.dumps(value, indent=2, sort_keys=True) + "\n", mode, owner)


def run(cmd: list[str], check: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(os.environ if env is None else env)
    environment["PATH"] = SAFE_PATH
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=environment, check=False)
    except OSError as exc:
        proc = subprocess.CompletedProcess(cmd, 127, "", str(exc))
    if check and proc.returncode != 0:
        raise VenError("`{}` failed: {}".format(" ".join(cmd), (proc.stderr or proc.stdout).strip()))
    return proc


def log_line(path: str, message: str) -> None:
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{now_iso()} {message}\n")
    except OSError:
        pass


def ven_version() -> str:
    return read_text(VERSION_FILE).strip() or "0.0.0-0"


def hostname() -> str:
    return socket.gethostname()


# --- installation record and data dir -----------------------------------------------------------------------------


class Layout:
    """Where this installation keeps its data, and which user and group own it (written by the package)."""

    def __init__(self, record: dict):
        self.record = record
        self.data_dir = record.get("data_dir") or DEFAULT_DATA_DIR
        self.user = record.get("user") or DEFAULT_USER
        self.group = record.get("group") or DEFAULT_USER

    @classmethod
    def load(cls) -> Layout:
        return cls(read_json(INSTALL_RECORD))

    @property
    def installed(self) -> bool:
        return bool(self.record)

    def path(self, *parts: str) -> str:
        return os.path.join(self.data_dir, *parts)

    @property
    def config_path(self) -> str:
        return self.path("etc", "ven_config.json")

    @property
    def token_path(self) -> str:
        return self.path("etc", "agent_token")

    @property
    def activation_cfg(self) -> str:
        return self.path("etc", "agent_activation.cfg")

    @property
    def ca_path(self) -> str:
        return self.path("etc", "pce_ca.pem")

    @property
    def pid_path(self) -> str:
        return self.path("run", "vensim.pid")

    @property
    def status_cache(self) -> str:
        return self.path("run", "agent_status.json")

    @property
    def agent_log(self) -> str:
        return self.path("log", "agent.log")

    def ids(self) -> tuple[int, int]:
        """(uid, gid) of the VEN's non-privileged user and group; root's when they cannot be found."""
        try:
            uid = pwd.getpwnam(self.user).pw_uid
        except KeyError:
            uid = 0
        try:
            gid = grp.getgrnam(self.group).gr_gid
        except KeyError:
            gid = 0
        return uid, gid

    def root_group(self) -> tuple[int, int]:
        return 0, self.ids()[1]


def require_installed() -> Layout:
    layout = Layout.load()
    if not layout.installed:
        raise VenError(f"the VEN is not installed (no {INSTALL_RECORD})")
    return layout


def load_config(layout: Layout) -> dict:
    return read_json(layout.config_path)


def save_config(layout: Layout, config: dict) -> None:
    write_json(layout.config_path, config, 0o640, layout.root_group())


def activated(layout: Layout) -> bool:
    return bool(load_config(layout).get("agent_href")) and os.path.exists(layout.token_path)


def agent_token(layout: Layout) -> str:
    return read_text(layout.token_path).strip()


def set_data_ownership(layout: Layout, post_activation: bool) -> None:
    """DPKG layout: the data dir is root:ilo-ven before activation and ilo-ven:ilo-ven after it; dirs are 0750."""
    if os.geteuid() != 0:
        return
    uid, gid = layout.ids()
    owner = uid if post_activation else 0
    os.chown(layout.data_dir, owner, gid)
    os.chmod(layout.data_dir, 0o750)  # noqa: S103 - the documented mode of the VEN directories
    for sub in ("etc", "log", "run", "tmp"):
        path = layout.path(sub)
        if os.path.isdir(path):
            os.chown(path, owner, gid)
            os.chmod(path, 0o750)  # noqa: S103 - the documented mode


def parse_activation_cfg(path: str) -> dict:
    """agent_activation.cfg: `activation_code: CODE` and `masterconfig_server: HOST:PORT` lines."""
    found = {}
    for line in read_text(path).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("activation_code", "masterconfig_server"):
            found[key.strip()] = value.strip()
    return found


def write_activation_cfg(layout: Layout, code: str, server: str) -> None:
    text = f"activation_code: {code}\nmasterconfig_server: {server}\n"
    write_file(layout.activation_cfg, text, 0o640, layout.root_group())


# --- talking to the lab PCE ---------------------------------------------------------------------------------------


class PceError(VenError):
    def __init__(self, message: str, status: int = 0, token: str = ""):
        super().__init__(message)
        self.status = status
        self.token = token


def check_server(server: str) -> str:
    host, sep, port = server.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--management-server must be HOST:PORT, such as pce.example.com:8443 (got {server!r})")
    return server


def check_proxy(proxy: str) -> str:
    """[http://]server[:port]; only the http scheme is supported (VEN Proxy Support)."""
    match = re.match(r"^(?:([A-Za-z][A-Za-z0-9+.-]*)://)?([^/:\s]+|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?/?$", proxy)
    if not match or (match.group(1) and match.group(1).lower() != "http"):
        raise UsageError(f"proxy must be [http://]SERVER[:PORT] (only the http scheme is supported), not {proxy!r}")
    if match.group(3) and not 0 < int(match.group(3)) < 65536:
        raise UsageError(f"proxy port out of range in {proxy!r}")
    return proxy


class Pce:
    """The lab PCE's agent API (tools/pcelab/AGENT_API.md), TLS verified, through the VEN's proxy if set."""

    def __init__(self, server: str, ca_file: str | None, proxy: str | None, token: str | None = None):
        self.base = "https://" + server
        context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
        handlers: list = [urllib.request.HTTPSHandler(context=context)]
        if proxy:
            url = proxy if "://" in proxy else "http://" + proxy
            handlers.append(urllib.request.ProxyHandler({"https": url, "http": url}))
        else:
            handlers.append(urllib.request.ProxyHandler({}))  # the VEN uses its own proxy setting, not the shell's
        self.opener = urllib.request.build_opener(*handlers)
        self.token = token

    def request(self, method: str, path: str, body: object = None, timeout: float = HTTP_TIMEOUT, raw: bool = False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 - always https
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("X-Lab-Agent-Token", self.token)
        try:
            with self.opener.open(req, timeout=timeout) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as exc:
            raise PceError(*describe_http_error(exc)) from None
        except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PceError(f"cannot reach the PCE at {self.base}: {reason}") from None
        if raw:
            return payload
        try:
            return json.loads(payload.decode() or "{}")
        except ValueError:
            raise PceError("the PCE answered something that is not JSON") from None


def describe_http_error(exc: urllib.error.HTTPError) -> tuple[str, int, str]:
    try:
        errors = json.loads(exc.read().decode())
        first = errors[0] if isinstance(errors, list) else errors
        token = str(first.get("token", ""))
        message = str(first.get("message", ""))
    except (ValueError, AttributeError, IndexError, KeyError, OSError):
        token, message = "", ""
    text = f"PCE answered {exc.code} {token or exc.reason}"
    return (text + (": " + message if message else ""), exc.code, token)


def pce_for(layout: Layout, config: dict | None = None, with_token: bool = True) -> Pce:
    config = load_config(layout) if config is None else config
    server = config.get("management_server")
    if not server:
        raise VenError("no management server is configured")
    ca = config.get("ca_file") if config.get("ca_file") and os.path.exists(config["ca_file"]) else None
    return Pce(server, ca, config.get("proxy_server"), agent_token(layout) if with_token else None)


# --- host facts ---------------------------------------------------------------------------------------------------


def os_release() -> dict:
    facts = {}
    for line in read_text(ROOT + "/etc/os-release").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key.strip()] = value.strip().strip('"')
    return facts


def os_facts() -> dict:
    release = os_release()
    machine = os.uname().machine
    os_id = "{}-{}-{}".format(
        release.get("ID", "linux"),
        machine,
        release.get("VERSION_CODENAME") or release.get("VERSION_ID", ""),
    )
    detail = "{} ({})".format(os.uname().release, release.get("PRETTY_NAME", "Linux"))
    return {"os_id": os_id.rstrip("-"), "os_detail": detail, "os_platform": "linux"}


def interfaces() -> list[dict]:
    """Addresses of the host's interfaces as the PCE wants them (loopback and link-local left out)."""
    found = []
    addresses = run(["ip", "-j", "addr", "show"])
    routes = run(["ip", "-j", "route", "show", "default"])
    try:
        links = json.loads(addresses.stdout or "[]")
        gateways = {r.get("dev"): r.get("gateway") for r in json.loads(routes.stdout or "[]") if r.get("gateway")}
    except ValueError:
        return found
    for link in links:
        name = link.get("ifname", "")
        for info in link.get("addr_info", []):
            try:
                address = ipaddress.ip_address(info.get("local", ""))
            except ValueError:
                continue
            if address.is_loopback or address.is_link_local:
                continue
            entry = {"name": name, "address": str(address), "cidr_block": info.get("prefixlen")}
            if address.version == 4 and gateways.get(name):
                entry["default_gateway_address"] = gateways[name]
            found.append(entry)
    return found


# --- daemon process control -----------------------------------------------------------------------------------------


def daemon_pid(layout: Layout) -> int | None:
    try:
        pid = int(read_text(layout.pid_path).strip() or "0")
    except ValueError:
        return None
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return None
    return pid if b"_daemon" in argv and any(arg.endswith(b"vensim.py") for arg in argv) else None


def start_daemon(layout: Layout) -> int:
    pid = daemon_pid(layout)
    if pid:
        return pid
    os.makedirs(layout.path("log"), exist_ok=True)
    os.makedirs(layout.path("run"), exist_ok=True)
    with open(os.devnull, "rb") as devnull, open(layout.agent_log, "ab") as log:
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_daemon"],
            stdin=devnull,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            env=dict(os.environ, PATH=SAFE_PATH),
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = daemon_pid(layout)
        if pid:
            return pid
        time.sleep(0.05)
    raise VenError(f"the VEN daemon did not start (see {layout.agent_log})")


def stop_daemon(layout: Layout) -> bool:
    pid = daemon_pid(layout)
    if not pid:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and daemon_pid(layout) == pid:
        time.sleep(0.05)
    if daemon_pid(layout) == pid:
        os.kill(pid, signal.SIGKILL)
    try:
        os.unlink(layout.pid_path)
    except OSError:
        pass
    return True


def print_start(layout: Layout) -> int:
    print("Starting illumio-control:")
    print("- Environment Setting up Illumio VEN Environment:".ljust(60) + "[  OK  ]")
    pid = start_daemon(layout)
    for name in ("venAgentMgr", "IPSec", *COMPONENTS[1:]):
        if name == "IPSec":
            print("- IPSec Starting IPSec: feature not enabled")
            continue
        print((f"- {name} Starting {name}:").ljust(60) + "[  OK  ]")
    return pid


def print_stop(layout: Layout) -> None:
    print("Shutting down illumio-control:")
    stopped = stop_daemon(layout)
    remove_conntrack_table()
    for name in reversed(COMPONENTS):
        print((f"- {name} Stopping {name}:").ljust(60) + ("[  OK  ]" if stopped else "[ not running ]"))


# --- conntrack and flow logs ----------------------------------------------------------------------------------------

NFT_RULES = f"""table inet {NFT_TABLE} {{
    chain input {{ type filter hook input priority -150; policy accept; ct state new counter; }}
    chain output {{ type filter hook output priority -150; policy accept; ct state new counter; }}
}}
"""


def ensure_conntrack() -> str:
    """Make the kernel track this host's connections and count their bytes, as the VEN's firewall does.

    Returns an empty string, or why flows cannot be recorded.
    """
    if ROOT:
        return "a scratch root (VENSIM_ROOT) has no firewall of its own"
    for name, value in (("nf_conntrack_acct", "1"), ("nf_conntrack_tcp_timeout_established", "28800")):
        try:
            with open("/proc/sys/net/netfilter/" + name, "w", encoding="utf-8") as handle:
                handle.write(value)
        except OSError:
            pass
    if not shutil.which("nft", path=SAFE_PATH):
        return "nft is not installed: connection tracking cannot be turned on"
    if run(["nft", "list", "table", "inet", NFT_TABLE]).returncode == 0:
        return ""
    proc = subprocess.run(  # the ruleset goes in on stdin
        ["nft", "-f", "-"],
        input=NFT_RULES,
        capture_output=True,
        text=True,
        env={"PATH": SAFE_PATH},
        check=False,
    )
    return "" if proc.returncode == 0 else "nft failed: " + proc.stderr.strip()


def remove_conntrack_table() -> None:
    if not ROOT and shutil.which("nft", path=SAFE_PATH):
        run(["nft", "delete", "table", "inet", NFT_TABLE])


def read_conntrack() -> list[str]:
    text = read_text("/proc/net/nf_conntrack")
    if text:
        return text.splitlines()
    proc = run(["conntrack", "-L", "-o", "extended"])
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def parse_conntrack(line: str) -> dict | None:
    """One line of /proc/net/nf_conntrack or `conntrack -L -o extended`: original and reply tuples."""
    words = line.split()
    if len(words) < 6 or words[0] not in ("ipv4", "ipv6"):
        return None
    entry = {"family": 4 if words[0] == "ipv4" else 6, "proto_name": words[2], "state": ""}
    try:
        entry["proto"] = int(words[3])
    except ValueError:
        return None
    tuples: list[dict] = []
    for word in words[5:]:
        key, sep, value = word.partition("=")
        if not sep:
            if word.isupper() and not word.startswith("[") and not tuples:
                entry["state"] = word
            continue
        if key == "src":
            tuples.append({})
        if tuples and key in ("src", "dst", "sport", "dport", "packets", "bytes", "type", "code"):
            tuples[-1][key] = value
    if len(tuples) < 2:
        return None
    entry["orig"], entry["reply"] = tuples[0], tuples[1]
    return entry


class FlowRecorder:
    """vtapflow.log lines plus flow.db (each connection) and flowsum.db (per src, dst, dst port, proto)."""

    COLUMNS = (
        "detected_at TEXT, first_seen TEXT, last_seen TEXT, interface TEXT, ip_version INTEGER, src_ip TEXT, "
        "dst_ip TEXT, proto INTEGER, src_port INTEGER, dst_port INTEGER, direction TEXT, state TEXT, "
        "bytes_in INTEGER, bytes_out INTEGER, workload_uuid TEXT"
    )
    SUM_COLUMNS = (
        "src_ip TEXT, dst_ip TEXT, dst_port INTEGER, proto INTEGER, direction TEXT, num_connections INTEGER, "
        "first_seen TEXT, last_seen TEXT, bytes_in INTEGER, bytes_out INTEGER, "
        "PRIMARY KEY (src_ip, dst_ip, dst_port, proto)"
    )

    def __init__(self, layout: Layout):
        self.layout = layout
        self.log_path = layout.path("log", "vtapflow.log")
        self.flow_db = layout.path("log", "flow.db")
        self.sum_db = layout.path("log", "flowsum.db")
        self.active: dict = {}
        self.local: dict = {}  # address -> interface name
        self.ignored: set = set()  # (address, port) of the PCE: its heartbeats are the VEN's own traffic
        self.create_databases()

    def create_databases(self) -> None:
        with sqlite3.connect(self.flow_db) as db:
            for table, view in (("flows", "flow_view"), ("drop_flows", "drop_flow_view")):
                db.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, {self.COLUMNS})")
                db.execute(f"CREATE VIEW IF NOT EXISTS {view} AS SELECT * FROM {table}")  # noqa: S608 - constants
        with sqlite3.connect(self.sum_db) as db:
            for table, view in (("flow_summary", "flow_view"), ("drop_flow_summary", "drop_flow_view")):
                db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({self.SUM_COLUMNS})")
                db.execute(f"CREATE VIEW IF NOT EXISTS {view} AS SELECT * FROM {table}")  # noqa: S608 - constants
        uid, gid = self.layout.ids()
        for path in (self.flow_db, self.sum_db):
            if os.geteuid() == 0:
                os.chown(path, uid, gid)
            os.chmod(path, 0o640)

    def set_local_addresses(self, ifaces: list[dict]) -> None:
        self.local = {entry["address"]: entry["name"] for entry in ifaces}

    def poll(self, now: float, wanted: bool, workload_uuid: str, log_every: float) -> int:
        """Read conntrack once; record connections that closed or went away. Returns how many were recorded."""
        seen = {}
        for line in read_conntrack():
            entry = parse_conntrack(line)
            if entry is None:
                continue
            orig = entry["orig"]
            if orig.get("src") not in self.local and orig.get("dst") not in self.local:
                continue  # loopback and anything not to or from this host
            if (orig.get("dst"), orig.get("dport")) in self.ignored:
                continue
            key = (entry["proto"], orig.get("src"), orig.get("dst"), orig.get("sport", "0"), orig.get("dport", "0"))
            seen[key] = entry
        finished = []
        for key, entry in seen.items():
            flow = self.active.get(key)
            if flow is None:
                flow = self.active[key] = {"first": now, "logged": now, "done": False}
            flow["last"], flow["entry"] = now, entry
            closed = entry["proto"] == 6 and any(entry["state"].startswith(s) for s in CLOSED_TCP_STATES)
            if closed and not flow["done"]:
                flow["done"] = True
                finished.append((flow, "C"))
            elif not flow["done"] and now - flow["logged"] >= log_every:
                flow["logged"] = now
                finished.append((flow, "A"))
        for key in [k for k in self.active if k not in seen]:
            flow = self.active.pop(key)
            if not flow["done"]:
                finished.append((flow, "C"))
        if wanted and finished:
            self.record([self.describe(flow, state, workload_uuid) for flow, state in finished])
        return len(finished) if wanted else 0

    def describe(self, flow: dict, state: str, workload_uuid: str) -> dict:
        entry = flow["entry"]
        orig, reply = entry["orig"], entry["reply"]
        inbound = orig.get("dst") in self.local
        local = orig.get("dst") if inbound else orig.get("src")
        sent, received = int(orig.get("bytes", 0)), int(reply.get("bytes", 0))
        return {
            "detected_at": flow["last"],
            "first_seen": flow["first"],
            "last_seen": flow["last"],
            "interface": self.local.get(local, ""),
            "ip_version": entry["family"],
            "src_ip": orig.get("src"),
            "dst_ip": orig.get("dst"),
            "proto": entry["proto"],
            "src_port": int(orig.get("sport", orig.get("type", 0))),
            "dst_port": int(orig.get("dport", orig.get("code", 0))),
            "direction": "I" if inbound else "O",
            "state": state,
            "bytes_in": sent if inbound else received,
            "bytes_out": received if inbound else sent,
            "workload_uuid": workload_uuid,
        }

    def record(self, flows: list[dict]) -> None:
        lines = []
        for f in flows:
            duration_ms = int((f["last_seen"] - f["first_seen"]) * 1000)
            # time, interface, 0, 0, IP version, source, destination, protocol, source port, destination port,
            # duration (ms), state (C closed, A active), 0, direction (I in, O out), workload, bytes in, bytes out.
            fields = [
                local_iso_ms(f["detected_at"]),
                f["interface"] or "-",
                "0",
                "0",
                f["ip_version"],
                f["src_ip"],
                f["dst_ip"],
                f["proto"],
                f["src_port"],
                f["dst_port"],
                duration_ms,
                f["state"],
                "0",
                f["direction"],
                "SWID=" + (f["workload_uuid"] or "-"),
                "TBI=" + str(f["bytes_in"]),
                "TB0=" + str(f["bytes_out"]),  # spelled as in the reference's vtapflow.log example
            ]
            lines.append(" ".join(str(field) for field in fields) + "\n")
        self.rotate()
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.writelines(lines)
        rows = [self.row(f) for f in flows]
        with sqlite3.connect(self.flow_db, timeout=10) as db:
            db.executemany(
                "INSERT INTO flows (detected_at, first_seen, last_seen, interface, ip_version, src_ip, dst_ip, proto, "
                "src_port, dst_port, direction, state, bytes_in, bytes_out, workload_uuid) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        with sqlite3.connect(self.sum_db, timeout=10) as db:
            for f in flows:
                if f["state"] != "C":
                    continue  # a long-lived connection is counted once, when it ends
                db.execute(
                    "INSERT INTO flow_summary VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?) "
                    "ON CONFLICT (src_ip, dst_ip, dst_port, proto) DO UPDATE SET "
                    "num_connections = num_connections + 1, last_seen = excluded.last_seen, "
                    "bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out",
                    (
                        f["src_ip"],
                        f["dst_ip"],
                        f["dst_port"],
                        f["proto"],
                        f["direction"],
                        local_iso_ms(f["first_seen"]),
                        local_iso_ms(f["last_seen"]),
                        f["bytes_in"],
                        f["bytes_out"],
                    ),
                )

    @staticmethod
    def row(f: dict) -> tuple:
        return (
            local_iso_ms(f["detected_at"]),
            local_iso_ms(f["first_seen"]),
            local_iso_ms(f["last_seen"]),
            f["interface"],
            f["ip_version"],
            f["src_ip"],
            f["dst_ip"],
            f["proto"],
            f["src_port"],
            f["dst_port"],
            f["direction"],
            f["state"],
            f["bytes_in"],
            f["bytes_out"],
            f["workload_uuid"],
        )

    def rotate(self) -> None:
        try:
            if os.path.getsize(self.log_path) >= LOG_ROTATE_BYTES:
                os.replace(self.log_path, self.log_path + ".1")
        except OSError:
            pass


# --- the daemon -------------------------------------------------------------------------------------------------------


class Daemon:
    """AgentManager + VtapServer in one process: heartbeats, pending PCE actions, flow recording."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.running = True
        self.started = time.monotonic()
        timing = load_config(layout).get("timing", {})
        self.timing = {key: float(timing.get(key, value)) for key, value in DEFAULT_TIMING.items()}
        self.flows: FlowRecorder | None = None
        self.status: dict = read_json(layout.status_cache)
        self.next_heartbeat = 0.0
        self.next_interfaces = 0.0
        self.conntrack_problem = ""
        self.acting = False
        self.interfaces: list = []

    def log(self, message: str) -> None:
        print(f"{now_iso()} AgentManager {os.getpid()} {message}", flush=True)

    def stop(self, *_: object) -> None:
        self.running = False

    def serve(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        write_file(self.layout.pid_path, f"{os.getpid()}\n", 0o644)
        self.log(f"started (VEN stand-in {ven_version()})")
        try:
            while self.running:
                self.tick()
                time.sleep(self.timing["flow_poll_seconds"])
        finally:
            if read_text(self.layout.pid_path).strip() == str(os.getpid()):
                os.unlink(self.layout.pid_path)
            self.log("stopped")
        return 0

    def tick(self) -> None:
        now = time.monotonic()
        if not activated(self.layout):
            return
        if now >= self.next_interfaces:
            self.next_interfaces = now + 30
            self.interfaces = interfaces()
            if self.flows is not None:
                self.flows.set_local_addresses(self.interfaces)
                self.flows.ignored = management_endpoints(load_config(self.layout).get("management_server", ""))
        if now >= self.next_heartbeat:
            self.next_heartbeat = now + self.timing["heartbeat_seconds"]
            self.heartbeat()
        if self.flows is None:
            self.conntrack_problem = ensure_conntrack()
            if self.conntrack_problem:
                self.log("flow logs disabled: " + self.conntrack_problem)
            self.flows = FlowRecorder(self.layout)
            self.flows.set_local_addresses(self.interfaces)
            self.flows.ignored = management_endpoints(load_config(self.layout).get("management_server", ""))
        visibility = self.status.get("visibility_level") or "flow_summary"
        wanted = visibility not in ("flow_off", "flow_drops")  # conntrack shows accepted connections, not drops
        workload = (load_config(self.layout).get("workload_href") or "").rsplit("/", 1)[-1]
        try:
            self.flows.poll(time.time(), wanted, workload, self.timing["flow_log_seconds"])
        except (OSError, sqlite3.Error) as exc:
            self.log(f"flow recording failed: {exc}")

    def heartbeat(self) -> None:
        body = {
            "agent_version": ven_version(),
            "interfaces": self.interfaces,
            "uptime_seconds": int(time.monotonic() - self.started),
        }
        try:
            status = pce_for(self.layout).request("POST", "/lab/agent/v1/heartbeat", body)
        except PceError as exc:
            self.log(f"heartbeat failed: {exc}")
            if exc.status == 401:
                self.status["connectivity"] = "lost agent (the PCE no longer knows this VEN)"
            else:
                self.status["connectivity"] = "disconnected"
            write_json(self.layout.status_cache, self.status, 0o640, self.layout.root_group())
            return
        status["connectivity"] = "connected"
        status["received_at"] = now_iso()
        self.status = status
        write_json(self.layout.status_cache, status, 0o640, self.layout.root_group())
        for action in status.get("pending_actions", []):
            self.act(action)

    def act(self, action: dict) -> None:
        """Actions the PCE queued: unpair (goodbye + uninstall) or upgrade (download + install)."""
        if self.acting:
            return
        if action.get("type") == "unpair":
            mode = {v: k for k, v in UNPAIR_MODES.items()}.get(action.get("firewall_restore"), UNPAIR_DEFAULT)
            self.log("the PCE asked to unpair (firewall_restore={})".format(action.get("firewall_restore")))
            self.spawn([CTL, "unpair", mode], "unpair.log")
        elif action.get("type") == "upgrade" and action.get("release") != ven_version():
            self.log("the PCE asked to upgrade to {}".format(action.get("release")))
            try:
                package = download_release(self.layout, action.get("release", ""))
            except VenError as exc:
                self.log(f"upgrade failed: {exc}")
                return
            record = self.layout.record
            env = dict(os.environ, VEN_DATA_DIR=self.layout.data_dir)
            if record.get("custom_user"):
                env["VEN_NONPRIV_USER"] = self.layout.user
            self.spawn(install_command(package), "upgrade.log", env)

    def spawn(self, cmd: list[str], log_name: str, env: dict | None = None) -> None:
        """Run a command that outlives this daemon (uninstalling or upgrading stops the daemon)."""
        self.acting = True
        with open(os.devnull, "rb") as devnull, open(self.layout.path("log", log_name), "ab") as log:
            subprocess.Popen(
                cmd,
                stdin=devnull,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=dict(env or os.environ, PATH=SAFE_PATH),
            )


def management_endpoints(server: str) -> set:
    """(address, port) pairs of the management server, to keep the VEN's own PCE traffic out of its flow logs."""
    host, port = server.rpartition(":")[::2]
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), proto=socket.IPPROTO_TCP)
    except (OSError, ValueError):
        return set()
    return {(info[4][0], port) for info in infos}


def install_command(package: str) -> list[str]:
    return ["rpm", "-Uvh", package] if package.endswith(".rpm") else ["dpkg", "-i", package]


def download_release(layout: Layout, release: str) -> str:
    """Fetch the package of RELEASE that fits this host from the PCE's VEN library; returns its path."""
    release_facts = os_release()
    pkg_type = "rpm" if shutil.which("rpm", path=SAFE_PATH) and not shutil.which("dpkg", path=SAFE_PATH) else "deb"
    query = urllib.parse.urlencode(
        {
            "release": release,
            "os_id": release_facts.get("ID", ""),
            "os_version": release_facts.get("VERSION_ID", ""),
            "os_like": release_facts.get("ID_LIKE", ""),
            "arch": os.uname().machine,
            "pkg_type": pkg_type,
        }
    )
    pce = pce_for(layout)
    answer = pce.request("GET", "/lab/ven-software/select?" + query, raw=True).decode()
    facts = dict(line.split("=", 1) for line in answer.splitlines() if "=" in line)
    name, path = facts.get("file", ""), facts.get("path", "")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", name) or not path.startswith("/lab/ven-software/"):
        raise VenError("the PCE answered an unusable package")
    data = pce.request("GET", path, raw=True, timeout=120)
    if hashlib.sha256(data).hexdigest() != facts.get("sha256"):
        raise VenError(f"sha256 of {name} does not match")
    target = layout.path("tmp", name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as handle:
        handle.write(data)
    return target


# --- illumio-ven-ctl commands -----------------------------------------------------------------------------------------


def pairing_status(lines: list[tuple[str, bool]]) -> None:
    print("Pairing Status")
    print("-" * 18)
    for label, ok in lines:
        print("{} {}{}".format(label, "." * max(3, 36 - len(label)), "SUCCESS" if ok else "FAILED"))


def activation_options(args: argparse.Namespace) -> dict:
    """The activate options as the PCE gets them, after the option-combination rules (VEN Activate Reference)."""
    if args.mode and args.enforcement_mode:
        raise UsageError("use --mode or --enforcement_mode, not both: they could contradict each other")
    enforcement = LEGACY_MODES[args.mode] if args.mode else args.enforcement_mode
    if args.visibility_level == "flow_off" and args.log_traffic == "true":
        raise UsageError("--visibility-level flow_off and --log-traffic true is an invalid combination")
    if args.visibility_level == "flow_drops" and enforcement and enforcement != "full":
        raise UsageError(
            f"--visibility-level flow_drops is valid only in the full (enforced) policy state, not {enforcement}"
        )
    options: dict = {}
    if enforcement:
        options["enforcement_mode"] = enforcement
    if args.visibility_level:
        options["visibility_level"] = args.visibility_level
    if args.log_traffic:
        options["log_traffic"] = args.log_traffic == "true"
    labels = {key: getattr(args, key) for key in ("role", "app", "env", "loc") if getattr(args, key)}
    if labels:
        options["labels"] = labels
    if args.name:
        options["name"] = args.name
    return options


def resolve_activation(layout: Layout, args: argparse.Namespace, config: dict) -> tuple[str, str]:
    """Activation code and server: the command line first, then agent_activation.cfg, then the installed setting."""
    from_cfg = parse_activation_cfg(layout.activation_cfg)
    code = args.activation_code or from_cfg.get("activation_code", "")
    server = args.management_server or from_cfg.get("masterconfig_server") or config.get("management_server", "")
    if not code:
        raise UsageError(f"--activation-code is required (or an activation_code line in {layout.activation_cfg})")
    if not re.match(r"^[0-9a-fA-F]+$", code):
        raise UsageError("the activation code must be hexadecimal")
    if not server:
        raise UsageError("--management-server HOST:PORT is required")
    return code, check_server(server)


def cmd_activate(args: argparse.Namespace) -> int:
    options = activation_options(args)
    if args.proxy_server:
        check_proxy(args.proxy_server)
    if args.management_server:
        check_server(args.management_server)
    layout = require_installed()
    config = load_config(layout)
    if activated(layout):
        raise VenError("the VEN is already activated ({}); deactivate it first".format(config.get("workload_href")))
    code, server = resolve_activation(layout, args, config)
    return activate(layout, config, code, server, args.proxy_server, options)


def activate(layout: Layout, config: dict, code: str, server: str, proxy: str | None, options: dict) -> int:
    print("Checking Runtime Environment.....")
    ca_source = os.environ.get("PCELAB_CA_FILE")
    if ca_source and os.path.exists(ca_source):
        shutil.copyfile(ca_source, layout.ca_path)
        os.chmod(layout.ca_path, 0o644)
        config["ca_file"] = layout.ca_path
    config["management_server"] = server
    if proxy:
        config["proxy_server"] = proxy
    print("Activating Illumio")
    print("-" * 18)
    body = {"activation_code": code, "hostname": hostname(), "agent_version": ven_version(), **os_facts()}
    body["interfaces"] = interfaces()
    body.update(options)
    pce = pce_for(layout, config, with_token=False)
    try:
        answer = pce.request("POST", "/lab/agent/v1/activate", body)
    except PceError as exc:
        pairing_status(
            [
                ("Pairing Configuration exists", True),
                ("VEN Manager Daemon running", True),
                ("Master Configuration retrieval", exc.status != 0),
                ("VEN Configuration retrieval", False),
            ]
        )
        print(f"{now_iso()} AgentManager {os.getpid()}")
        print(str(exc))
        print("Verify activation code and retry pairing")
        print("Workload has FAILED pairing with Illumio")
        return 1
    print("Storing Activation Configuration")
    write_file(layout.token_path, answer["agent_token"] + "\n", 0o600, (0, 0))
    for key in ("agent_href", "ven_href", "workload_href", "org_id"):
        config[key] = answer.get(key)
    config["activated_at"] = now_iso()
    config["suspended"] = False
    config["activation_options"] = options
    save_config(layout, config)
    write_json(
        layout.status_cache, dict(answer.get("status", {}), connectivity="connected"), 0o640, layout.root_group()
    )
    try:
        os.unlink(layout.activation_cfg)  # the code is a secret; it has done its job
    except OSError:
        pass
    set_data_ownership(layout, post_activation=True)
    print("Starting Illumio Processes.....")
    stop_daemon(layout)
    start_daemon(layout)
    pairing_status(
        [
            ("Pairing Configuration exists", True),
            ("VEN Manager Daemon running", bool(daemon_pid(layout))),
            ("Master Configuration retrieval", True),
            ("VEN Configuration retrieval", True),
        ]
    )
    print("VEN has been SUCCESSFULLY paired with Illumio")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    layout = require_installed()
    if args.management_server:
        check_server(args.management_server)
    if bool(args.management_server) != bool(args.activation_code):
        raise UsageError("prepare takes --management-server and --activation-code together (or neither)")
    if activated(layout):
        raise VenError("the VEN is activated; deactivate it before preparing an image")
    print_stop(layout)
    if args.activation_code:
        write_activation_cfg(layout, args.activation_code, args.management_server)
        print(f"Activation configuration stored in {layout.activation_cfg}")
    print("The VEN is prepared: it activates the next time it starts")
    return 0


def goodbye(layout: Layout, firewall_restore: str | None) -> str:
    """Tell the PCE this VEN leaves; returns a warning when it could not be told."""
    if not activated(layout):
        return ""
    body = {"firewall_restore": firewall_restore} if firewall_restore else None
    try:
        pce_for(layout).request("POST", "/lab/agent/v1/deactivate", body)
    except PceError as exc:
        if exc.status == 401:
            return ""  # already unpaired on the PCE side
        return f"the PCE was not notified: {exc}"
    return ""


def forget_activation(layout: Layout) -> None:
    config = load_config(layout)
    for key in ("agent_href", "ven_href", "workload_href", "org_id", "activated_at", "suspended", "activation_options"):
        config.pop(key, None)
    save_config(layout, config)
    for path in (layout.token_path, layout.status_cache):
        try:
            os.unlink(path)
        except OSError:
            pass


def cmd_deactivate(args: argparse.Namespace) -> int:
    layout = require_installed()
    if not activated(layout):
        print("The VEN is not activated")
        return 0
    print("Deactivating the VEN")
    print_stop(layout)
    warning = goodbye(layout, None)
    forget_activation(layout)
    set_data_ownership(layout, post_activation=False)
    if warning:
        print("WARNING: " + warning)
    print("The VEN has been deactivated." + ("" if warning else " PCE was notified."))
    return 0


def cmd_unpair(args: argparse.Namespace) -> int:
    layout = require_installed()
    mode = args.firewall or UNPAIR_DEFAULT
    restore = UNPAIR_MODES[mode]
    print(f"Unpairing the VEN (firewall: {mode})")
    print_stop(layout)
    warning = goodbye(layout, restore)
    # The stand-in never changed the host firewall, so every restore mode leaves it as it was; say so.
    log_line(
        ILLUMIO_LOG,
        f"unpair: firewall_restore={mode} ({restore}); "
        "VEN stand-in: the host firewall was never changed, left as it is",
    )
    if warning:
        print("WARNING: " + warning)
    forget_activation(layout)
    print("Uninstalling the VEN")
    uninstall(layout)
    print("The VEN has been unpaired and uninstalled." + ("" if warning else " PCE was notified."))
    return 0


def uninstall(layout: Layout) -> None:
    if not ROOT and run(["dpkg-query", "-W", "-f", "${Status}", PACKAGE]).stdout.endswith(" installed"):
        run(["dpkg", "--purge", PACKAGE], check=True)
    elif not ROOT and run(["rpm", "-q", PACKAGE]).returncode == 0:
        run(["rpm", "-e", PACKAGE], check=True)
    # Whatever the package manager leaves (or everything, in a scratch root), removed as unpair promises.
    remove_cron()
    shutil.rmtree(layout.data_dir, ignore_errors=True)
    shutil.rmtree(VEN_DIR, ignore_errors=True)


def component_lines(layout: Layout) -> tuple[list[str], bool]:
    pid = daemon_pid(layout)
    lines = []
    for name in ("venAgentMgr", "IPSec", *COMPONENTS[1:]):
        if name == "IPSec":
            lines.append("- IPSec: feature not enabled")
        elif pid:
            lines.append(f"- {name} (pid {pid}) is running...")
        else:
            lines.append(f"- {name} is stopped")
    return lines, bool(pid)


def cmd_status(args: argparse.Namespace) -> int:
    layout = require_installed()
    config = load_config(layout)
    components, running = component_lines(layout)
    is_active = activated(layout)
    suspended = bool(config.get("suspended"))
    state = "suspended" if suspended else ("running" if running else "stopped")
    print(f"Illumio VEN is {state}")
    print("\n".join(components))
    print()
    status = read_json(layout.status_cache)
    connectivity = "n/a"
    if is_active:
        try:
            status = pce_for(layout).request("GET", "/lab/agent/v1/status", timeout=STATUS_TIMEOUT)
            connectivity = "Connected"
        except PceError as exc:
            connectivity = f"Disconnected ({exc})"
    if not is_active:
        activation = "prepared" if os.path.exists(layout.activation_cfg) else "not activated"
        agent_state = "unpaired"
    else:
        activation = "activated"
        agent_state = "suspended" if suspended else AGENT_STATES.get(status.get("enforcement_mode"), "unknown")
    rows = [
        ("VEN Version", ven_version()),
        ("Activation", activation),
        ("Management Server", config.get("management_server") or "(not set)"),
        ("Proxy Server", config.get("proxy_server") or "(not set)"),
        ("VEN Connectivity", connectivity),
        ("Agent State", agent_state),
    ]
    if is_active:
        rows += [
            ("Enforcement Mode", status.get("enforcement_mode") or "unknown"),
            ("Visibility Level", status.get("visibility_level") or "unknown"),
            ("Workload", config.get("workload_href") or ""),
        ]
    for key, value in rows:
        print(f"{key}: {value}")
    return 0 if running else 3


def cmd_start(args: argparse.Namespace) -> int:
    layout = require_installed()
    config = load_config(layout)
    if config.get("suspended"):
        raise VenError("the VEN is suspended; `illumio-ven-ctl unsuspend` starts it again")
    if not activated(layout) and parse_activation_cfg(layout.activation_cfg).get("activation_code"):
        # A prepared image: the VEN activates from agent_activation.cfg when it starts.
        from_cfg = parse_activation_cfg(layout.activation_cfg)
        server = check_server(from_cfg.get("masterconfig_server") or config.get("management_server", ""))
        return activate(layout, config, from_cfg["activation_code"], server, None, {})
    print_start(layout)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    print_stop(require_installed())
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    cmd_stop(args)
    return cmd_start(args)


def cmd_suspend(args: argparse.Namespace) -> int:
    layout = require_installed()
    if not activated(layout):
        raise VenError("the VEN is not activated")
    print("Suspending the VEN")
    pce_for(layout).request("POST", "/lab/agent/v1/suspend")
    stop_daemon(layout)
    remove_conntrack_table()
    config = load_config(layout)
    config["suspended"] = True
    save_config(layout, config)
    print("The VEN has been suspended. PCE was notified.")
    return 0


def cmd_unsuspend(args: argparse.Namespace) -> int:
    layout = require_installed()
    if not activated(layout):
        raise VenError("the VEN is not activated")
    print("Unsuspending the VEN")
    pce_for(layout).request("POST", "/lab/agent/v1/unsuspend")
    config = load_config(layout)
    config["suspended"] = False
    save_config(layout, config)
    start_daemon(layout)
    print("The VEN has been unsuspended. PCE was notified.")
    return 0


def cmd_set_proxy(args: argparse.Namespace) -> int:
    proxy = check_proxy(args.proxy)
    layout = require_installed()
    config = load_config(layout)
    config["proxy_server"] = proxy
    save_config(layout, config)
    print(f"Updating proxy to {proxy}. VEN restart needed.")
    return 0


def cmd_show_proxy(args: argparse.Namespace) -> int:
    proxy = load_config(require_installed()).get("proxy_server")
    print(f"proxy_server: {proxy}" if proxy else "No proxy is set")
    return 0


def cmd_reset_proxy(args: argparse.Namespace) -> int:
    layout = require_installed()
    config = load_config(layout)
    config.pop("proxy_server", None)
    save_config(layout, config)
    print("Resetting proxy. VEN restart needed.")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(ven_version())
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    return Daemon(require_installed()).serve()


def cmd_monitor(args: argparse.Namespace) -> int:
    """What the agent-monitor cron job runs: restart the VEN when it should run and does not."""
    layout = require_installed()
    if activated(layout) and not load_config(layout).get("suspended") and not daemon_pid(layout):
        log_line(layout.agent_log, "AgentMonitor: the VEN was not running; restarting it")
        start_daemon(layout)
    return 0


# --- package scripts (deb maintainer scripts and rpm scriptlets call these) -------------------------------------------


def remove_cron() -> None:
    try:
        os.unlink(CRON_FILE)
    except OSError:
        pass


def ensure_user(env: dict) -> tuple[str, str, bool]:
    """The VEN's non-privileged user and group: VEN_NONPRIV_USER (must exist) or ilo-ven (created)."""
    custom = env.get("VEN_NONPRIV_USER", "").strip()
    if custom:
        try:
            entry = pwd.getpwnam(custom)
        except KeyError:
            raise VenError(f"VEN_NONPRIV_USER={custom}: no such user (the VEN uses an existing user)") from None
        return custom, grp.getgrgid(entry.pw_gid).gr_name, True
    uid, gid = env.get("VEN_NONPRIV_UID", "").strip(), env.get("VEN_NONPRIV_GID", "").strip()
    for value, name in ((uid, "VEN_NONPRIV_UID"), (gid, "VEN_NONPRIV_GID")):
        if value and not value.isdigit():
            raise VenError(f"{name} must be a number, not {value!r}")
    try:
        grp.getgrnam(DEFAULT_USER)
    except KeyError:
        run(["groupadd", "--system"] + (["--gid", gid] if gid else []) + [DEFAULT_USER], check=True)
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        run(
            ["useradd", "--system", "--gid", DEFAULT_USER, "--no-create-home", "--home-dir", "/nonexistent"]
            + ["--shell", "/usr/sbin/nologin"]
            + (["--uid", uid] if uid else [])
            + [DEFAULT_USER],
            check=True,
        )
    return DEFAULT_USER, DEFAULT_USER, False


def package_configure(upgrading_from: str) -> int:
    env = os.environ
    previous = read_json(INSTALL_RECORD)
    data_dir = os.path.abspath(env.get("VEN_DATA_DIR") or DEFAULT_DATA_DIR)
    if previous and previous.get("data_dir") != data_dir:
        print(
            "WARNING: the VEN was installed with VEN_DATA_DIR={}; this upgrade uses {} (set the same "
            "VEN_DATA_DIR for upgrades)".format(previous.get("data_dir"), data_dir)
        )
    user, group, custom = ensure_user(env)
    if previous and previous.get("user") != user:
        print("WARNING: the VEN was installed for user {}; this upgrade uses {}".format(previous.get("user"), user))
    action = env.get("VEN_INSTALL_ACTION", "").strip()
    if action not in ("", "activate", "prepare"):
        raise VenError(f"VEN_INSTALL_ACTION must be activate or prepare, not {action!r}")
    record = {"data_dir": data_dir, "user": user, "group": group, "custom_user": custom, "version": ven_version()}
    os.makedirs(os.path.dirname(INSTALL_RECORD), exist_ok=True)
    write_json(INSTALL_RECORD, record, 0o640)
    layout = Layout(record)
    gid = layout.ids()[1]
    for dirpath, _subdirs, filenames in os.walk(VEN_DIR):
        os.chown(dirpath, 0, gid)
        os.chmod(dirpath, 0o750)  # noqa: S103 - the documented mode
        for name in filenames:
            os.chown(os.path.join(dirpath, name), 0, gid)
    for sub in ("", "etc", "log", "run", "tmp"):
        os.makedirs(layout.path(sub), mode=0o750, exist_ok=True)
    is_active = activated(layout)
    set_data_ownership(layout, post_activation=is_active)
    for path in (INSTALL_RECORD, layout.config_path, layout.status_cache):
        if os.path.exists(path):
            os.chown(path, 0, gid)
    config = load_config(layout)
    if env.get("VEN_MANAGEMENT_SERVER"):
        config["management_server"] = check_server(env["VEN_MANAGEMENT_SERVER"].strip())
    if env.get("VEN_PROXY_SERVER"):
        config["proxy_server"] = check_proxy(env["VEN_PROXY_SERVER"].strip())
    ca_source = env.get("PCELAB_CA_FILE")
    if ca_source and os.path.exists(ca_source):
        shutil.copyfile(ca_source, layout.ca_path)
        os.chmod(layout.ca_path, 0o644)
        config["ca_file"] = layout.ca_path
    timing = dict(config.get("timing", {}))
    for key, name in TIMING_ENV.items():
        if env.get(name):
            timing[key] = float(env[name])
    config["timing"] = timing
    save_config(layout, config)
    if env.get("VEN_DISABLE_MONITOR_RESTART", "") == "true":
        remove_cron()
    else:
        write_file(CRON_FILE, f"# Illumio VEN stand-in agent monitor\n*/10 * * * * root {CTL} _monitor\n", 0o644)
    code = env.get("VEN_ACTIVATION_CODE", "").strip()
    server = config.get("management_server", "")
    if action == "prepare":
        stop_daemon(layout)
        if code and server:
            write_activation_cfg(layout, code, server)
        print(f"Illumio VEN {ven_version()} installed and prepared: it activates the next time it starts")
        return 0
    if action == "activate" and not is_active:
        if not code or not server:
            raise VenError("VEN_INSTALL_ACTION=activate needs VEN_ACTIVATION_CODE and VEN_MANAGEMENT_SERVER")
        return activate(layout, config, code, check_server(server), None, {})
    if not config.get("suspended"):
        start_daemon(layout)
    verb = f"upgraded from {upgrading_from} to" if upgrading_from else "installed:"
    print(f"Illumio VEN {verb} {ven_version()}")
    return 0


def cmd_package_hook(args: argparse.Namespace) -> int:
    """deb: postinst configure [OLD] / prerm upgrade|remove; rpm: post 1|2 / preun 0|1 / pre 2."""
    stage, rest = args.stage, args.rest
    if stage == "postinst" and rest[:1] == ["configure"]:
        return package_configure(rest[1] if len(rest) > 1 else "")
    if stage == "post":
        return package_configure("an earlier version" if rest[:1] == ["2"] else "")
    # rpm runs the new package's %post before the old one's %preun, so %preun acts only on erase ($1 = 0).
    removing = (stage == "prerm" and rest[:1] == ["remove"]) or (stage == "preun" and rest[:1] == ["0"])
    if stage == "prerm" or stage == "pre" or removing:
        layout = Layout.load()
        if layout.installed:
            stop_daemon(layout)
    if removing:
        remove_conntrack_table()
        remove_cron()
    return 0


# --- command line -----------------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Illumio VEN control (stand-in for tests; see tests/vensim/README.md)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    act = sub.add_parser("activate", help="pair this VEN with the PCE", allow_abbrev=False)
    act.add_argument("--activation-code", "-a", dest="activation_code")
    act.add_argument("--management-server", "-m", dest="management_server")
    act.add_argument("--name", "-n")
    for key in ("env", "loc", "role", "app"):
        act.add_argument("--" + key)
    act.add_argument("--proxy-server", "--proxy_server", dest="proxy_server")
    act.add_argument("--log-traffic", "--log_traffic", dest="log_traffic", choices=("true", "false"))
    act.add_argument("--mode", choices=tuple(LEGACY_MODES))
    act.add_argument("--enforcement_mode", "--enforcement-mode", dest="enforcement_mode", choices=ENFORCEMENT_MODES)
    act.add_argument("--visibility-level", "--visibility_level", dest="visibility_level", choices=VISIBILITY_LEVELS)
    act.set_defaults(func=cmd_activate)
    prep = sub.add_parser("prepare", help="stop and leave the VEN to activate at its next start", allow_abbrev=False)
    prep.add_argument("--activation-code", "-a", dest="activation_code")
    prep.add_argument("--management-server", "-m", dest="management_server")
    prep.set_defaults(func=cmd_prepare)
    unpair = sub.add_parser("unpair", help="unpair from the PCE and uninstall")
    unpair.add_argument("firewall", nargs="?", choices=tuple(UNPAIR_MODES))
    unpair.set_defaults(func=cmd_unpair)
    setp = sub.add_parser("set-proxy", help="set the proxy the VEN uses to reach the PCE")
    setp.add_argument("proxy", metavar="[http://]SERVER[:PORT]")
    setp.set_defaults(func=cmd_set_proxy)
    simple = {
        "deactivate": (cmd_deactivate, "tell the PCE goodbye and forget the activation; stay installed"),
        "status": (cmd_status, "processes, activation and policy state"),
        "start": (cmd_start, "start the VEN processes"),
        "stop": (cmd_stop, "stop the VEN processes"),
        "restart": (cmd_restart, "stop, then start"),
        "suspend": (cmd_suspend, "stop the VEN and tell the PCE it is suspended"),
        "unsuspend": (cmd_unsuspend, "tell the PCE and start the VEN again"),
        "show-proxy": (cmd_show_proxy, "show the proxy setting"),
        "reset-proxy": (cmd_reset_proxy, "remove the proxy setting"),
        "version": (cmd_version, "print the VEN version"),
        "_daemon": (cmd_daemon, argparse.SUPPRESS),
        "_monitor": (cmd_monitor, argparse.SUPPRESS),
    }
    for name, (func, text) in simple.items():
        command = sub.add_parser(name, help=text) if text != argparse.SUPPRESS else sub.add_parser(name)
        command.set_defaults(func=func)
    hook = sub.add_parser("_package-hook")
    hook.add_argument("stage")
    hook.add_argument("rest", nargs="*")
    hook.set_defaults(func=cmd_package_hook)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        if os.geteuid() != 0 and args.command not in ("version", "show-proxy") and not ROOT:
            raise VenError("must run as root")
        return args.func(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except VenError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
