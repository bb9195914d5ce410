# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VEN compatibility checks, run on a Linux host before the VEN is installed or leaves the idle state.

The VEN itself reports a compatibility report to the PCE while it is idle; these checks look at the same
things from outside, before the VEN is there, plus the installation prerequisites of the VEN guide:

=================  ===========================================================  =====================
check              finds                                                        level when found
=================  ===========================================================  =====================
ip_forwarding      net.ipv4.ip_forward on and rules in the forward path         yellow (VEN report)
                   (iptables FORWARD chain, nftables chains on the forward hook)
iptables_rules     at least one rule in the iptables filter table                yellow (VEN report)
ip6tables_rules    at least one rule in the ip6tables filter table               yellow (VEN report)
ipv6_global        an IPv6 address of global scope (/proc/net/if_inet6)          yellow (VEN report)
ipsec_ports        a socket bound to UDP 500 or 4500 (/proc/net/udp, udp6)       red (VEN report)
routing_table      policy rules or routes already using the routing table (and   red (VEN report)
                   rule priority) that SecureConnect's IKE daemon uses, 220
disk_space         free space below 500 MB / below 1.5 GB on the filesystems of  red / yellow (ours)
                   the install and data directories; either one a symlink        red (VEN guide)
required_commands  commands of the VEN's package dependencies that are missing   yellow (ours)
tracefs            neither tracefs nor debugfs mounted                           yellow (ours)
time_sync          the clock reported as not synchronised / no way to tell       red / yellow (ours)
pce_reachable      the PCE refuses, times out, or its certificate chain does not  red (VEN guide)
                   verify against the CA; TLS older than 1.2, certificate        yellow (ours)
                   expiring within 30 days
=================  ===========================================================  =====================

A check that cannot look (a command missing or failing, a file unreadable) reports yellow and says why; it
never raises. Everything the checks read goes through a Probe, so tests can point it at fixture files
(``root``/``proc_root``) and fake commands, statvfs and stat.

Python 3.6+ and the standard library only: this runs on managed hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import calendar
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections import OrderedDict

GREEN = "green"
YELLOW = "yellow"
RED = "red"
LEVELS = (GREEN, YELLOW, RED)
_RANK = {GREEN: 0, YELLOW: 1, RED: 2}

# Commands the VEN's Linux packages depend on (VEN guide, "Packages and Kernel Modules"): curl, DNS tools
# (dnsutils / bind-utils), uuid-runtime, ipset, iptables and iptables-ipv6. "a|b" accepts any one of them.
DEFAULT_REQUIRED_COMMANDS = ("curl", "ipset", "iptables", "ip6tables", "uuidgen", "dig|host|nslookup")
DEFAULT_INSTALL_DIR = "/opt/illumio_ven"
DEFAULT_DATA_DIR = "/opt/illumio_ven_data"
DEFAULT_DISK_MIN_MB = 500
DEFAULT_DISK_RECOMMENDED_MB = 1536
# strongSwan (SecureConnect's IKE daemon) installs its routes in table 220, looked up by a rule of priority 220.
DEFAULT_IPSEC_ROUTING_TABLE = 220
IPSEC_PORTS = (500, 4500)
CERT_EXPIRY_WARN_DAYS = 30
_EXTRA_PATH = ("/sbin", "/usr/sbin", "/usr/local/sbin", "/bin", "/usr/bin", "/usr/local/bin")


def worst(levels):
    """The most severe of some levels; green when there are none."""
    found = GREEN
    for level in levels:
        if _RANK[level] > _RANK[found]:
            found = level
    return found


def outcome(level, message, **details):
    return {"level": level, "message": message, "details": details}


def could_not(what, why, **details):
    """A check that could not look is yellow: nothing is known to be wrong, nothing is known to be right."""
    return outcome(YELLOW, "could not {}: {}".format(what, why), **details)


def _default_which(name):
    path = os.environ.get("PATH", "")
    search = os.pathsep.join([path] + [extra for extra in _EXTRA_PATH if extra not in path.split(os.pathsep)])
    return shutil.which(name, path=search)


def _default_run(argv):
    env = dict(os.environ, LC_ALL="C", LANG="C")
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, universal_newlines=True)
    out, err = process.communicate()
    return process.returncode, out, err


class Probe(object):
    """What the checks may read: files below ``root`` (``/proc`` below ``proc_root``), commands, filesystems.

    ``run_command(argv) -> (rc, stdout, stderr)`` and ``which(name) -> path or None`` default to subprocess and
    a PATH search that includes the sbin folders; the module passes its own run_command and get_bin_path.
    ``statvfs(path)`` and ``stat(path)`` default to os.statvfs and os.stat, on paths already below ``root``.
    Command results are cached, so several checks can share one ``iptables-save``.
    """

    def __init__(self, root="/", proc_root=None, run_command=None, which=None, statvfs=None, stat=None):
        self.root = root
        self.proc_root = proc_root if proc_root is not None else os.path.join(root, "proc")
        self._run_command = run_command or _default_run
        self._which = which or _default_which
        self.statvfs = statvfs or os.statvfs
        self.stat = stat or os.stat
        self._cache = {}

    def path(self, absolute):
        """A host path (``/etc/...``) below the probe's root."""
        return os.path.join(self.root, absolute.lstrip("/"))

    def proc(self, relative):
        return os.path.join(self.proc_root, relative.lstrip("/"))

    @staticmethod
    def read(path):
        """The text of a file, or None when it cannot be read."""
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return None

    def which(self, name):
        return self._which(name)

    def run(self, argv):
        """(rc, stdout, stderr) of a command, or None when its program is not installed."""
        key = tuple(argv)
        if key not in self._cache:
            program = self.which(argv[0])
            if not program:
                self._cache[key] = None
            else:
                try:
                    self._cache[key] = self._run_command([program, *list(argv[1:])])
                except OSError as error:
                    self._cache[key] = (127, "", str(error))
        return self._cache[key]


# --- parsers (pure functions) --------------------------------------------------------------------------------


def parse_iptables_save(text, table="filter"):
    """{chain: {"policy": str or None, "rules": int}} of one table of iptables-save output."""
    chains = OrderedDict()
    current = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            current = line[1:]
        elif current != table or not line or line.startswith("#"):
            continue
        elif line.startswith(":"):
            parts = line[1:].split()
            chains.setdefault(parts[0], {"policy": None, "rules": 0})
            if len(parts) > 1 and parts[1] != "-":
                chains[parts[0]]["policy"] = parts[1]
        elif line.startswith("-A ") or line.startswith("-I "):
            name = line.split()[1]
            chains.setdefault(name, {"policy": None, "rules": 0})
            chains[name]["rules"] += 1
    return chains


_NFT_BLOCK = re.compile(r"^(table|chain|set|map|flowtable|counter|quota|limit|ct|secmark|synproxy)\b.*\{$")
_NFT_HOOK = re.compile(r"\btype\s+\w+\s+hook\s+(\w+)")
_NFT_POLICY = re.compile(r"\bpolicy\s+(\w+)")
_NFT_NOT_RULES = ("type ", "policy ", "comment ", "devices ", "flags ")


def parse_nft_ruleset(text):
    """The chains of ``nft list ruleset`` output: [{family, table, chain, hook, policy, rules}]."""
    chains = []
    stack = []  # ("table", family, name) / ("chain", record) / ("other",)
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "}":
            if stack:
                stack.pop()
            continue
        block = _NFT_BLOCK.match(line)
        if block:
            words = line[:-1].split()
            if block.group(1) == "table" and not stack:
                family, name = (words[1], words[2]) if len(words) > 2 else ("ip", words[1])
                stack.append(("table", family, name))
            elif block.group(1) == "chain" and stack and stack[-1][0] == "table":
                record = {
                    "family": stack[-1][1],
                    "table": stack[-1][2],
                    "chain": words[1],
                    "hook": None,
                    "policy": None,
                    "rules": 0,
                }
                chains.append(record)
                stack.append(("chain", record))
            else:
                stack.append(("other",))
            continue
        if line.endswith("{"):  # a block inside a rule or set (anonymous set over lines, vmap ...)
            stack.append(("other",))
            continue
        if not stack or stack[-1][0] != "chain":
            continue
        record = stack[-1][1]
        hook = _NFT_HOOK.search(line)
        if hook:
            record["hook"] = hook.group(1)
            policy = _NFT_POLICY.search(line)
            if policy:
                record["policy"] = policy.group(1)
        elif line.startswith(_NFT_NOT_RULES):
            policy = _NFT_POLICY.match(line)
            if policy:
                record["policy"] = policy.group(1)
        else:
            record["rules"] += 1
    return chains


# Scope field of /proc/net/if_inet6 (IPV6_ADDR_SCOPE_* of the kernel).
_IPV6_SCOPES = {0x00: "global", 0x10: "host", 0x20: "link", 0x40: "site", 0x80: "compat"}


def parse_if_inet6(text):
    """[{address, interface, prefix, scope}] from /proc/net/if_inet6."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        hexaddr = fields[0]
        groups = [hexaddr[index : index + 4] for index in range(0, 32, 4)]
        try:
            address = socket.inet_ntop(socket.AF_INET6, bytes(bytearray.fromhex(hexaddr)))
        except (ValueError, OSError):
            address = ":".join(groups)
        scope = int(fields[3], 16)
        found.append(
            {
                "address": address,
                "interface": fields[5],
                "prefix": int(fields[2], 16),
                "scope": _IPV6_SCOPES.get(scope & 0xF0, "0x{:02x}".format(scope)),
            }
        )
    return found


def _hex_address(hexaddr):
    """The address of a /proc/net/udp(6) local_address field (host byte order words, little endian assumed)."""
    try:
        raw = bytearray.fromhex(hexaddr)
        words = [bytes(raw[index : index + 4])[::-1] for index in range(0, len(raw), 4)]
        packed = b"".join(words)
        family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
        return socket.inet_ntop(family, packed)
    except (ValueError, OSError):
        return hexaddr


def parse_proc_udp(text):
    """[{address, port, inode}] of the sockets in /proc/net/udp or /proc/net/udp6."""
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or ":" not in fields[1]:
            continue
        hexaddr, hexport = fields[1].rsplit(":", 1)
        try:
            port = int(hexport, 16)
        except ValueError:
            continue
        sockets.append({"address": _hex_address(hexaddr), "port": port, "inode": fields[9]})
    return sockets


def _unescape_mount(field):
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def parse_mounts(text):
    """[{device, mountpoint, fstype}] from /proc/mounts."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append({"device": fields[0], "mountpoint": _unescape_mount(fields[1]), "fstype": fields[2]})
    return mounts


def parse_rt_tables(text):
    """{table id: name} from an iproute2 rt_tables file."""
    tables = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            try:
                tables[int(fields[0], 0)] = fields[1]
            except ValueError:
                continue
    return tables


def parse_management_server(value, default_port=443):
    """(host, port) of ``host``, ``host:port``, ``[v6]:port`` or ``v6``; raises ValueError when it is not one."""
    value = (value or "").strip()
    if value.startswith("https://"):
        value = value[len("https://") :]
    value = value.rstrip("/")
    if not value:
        raise ValueError("management_server is empty")
    if value.startswith("["):
        host, _sep, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, ""
    if not host or (port and not port.isdigit()):
        raise ValueError("management_server {!r} is not host or host:port".format(value))
    port = int(port) if port else default_port
    if not 0 < port < 65536:
        raise ValueError("management_server {!r} has no valid port".format(value))
    return host, port


# --- checks ---------------------------------------------------------------------------------------------------


def _iptables_filter(probe, command):
    """(chains, None) of ``<command> -t filter``, or (None, why it could not run)."""
    done = probe.run([command, "-t", "filter"])
    if done is None:
        return None, "{} is not installed".format(command)
    rc, out, err = done
    if rc != 0:
        return None, "{} failed (rc {}): {}".format(command, rc, (err or out).strip()[:200])
    return parse_iptables_save(out), None


def _iptables_uses_nft(probe, command):
    """Whether ``<command> -t filter`` (already run) is iptables-nft, whose rules nft lists too."""
    done = probe.run([command, "-t", "filter"])
    return bool(done and done[0] == 0 and "(nf_tables)" in done[1])


def _nft_chains(probe):
    done = probe.run(["nft", "list", "ruleset"])
    if done is None:
        return None, "nft is not installed"
    rc, out, err = done
    if rc != 0:
        return None, "nft list ruleset failed (rc {}): {}".format(rc, (err or out).strip()[:200])
    return parse_nft_ruleset(out), None


def check_ip_forwarding(probe, options):
    value = probe.read(probe.proc("sys/net/ipv4/ip_forward"))
    if value is None:
        return could_not("read net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward is not readable")
    if value.strip() != "1":
        return outcome(GREEN, "IPv4 forwarding is off", ip_forward=False)
    details = {"ip_forward": True}
    counted = []
    problems = []
    chains, why = _iptables_filter(probe, "iptables-save")
    if chains is None:
        problems.append(why)
    else:
        details["iptables_forward_rules"] = chains.get("FORWARD", {}).get("rules", 0)
        details["iptables_forward_policy"] = chains.get("FORWARD", {}).get("policy")
        counted.append(details["iptables_forward_rules"])
    nft, why = _nft_chains(probe)
    if nft is None:
        if probe.which("nft"):
            problems.append(why)
    else:
        # iptables-nft keeps its rules in nftables tables too (ip filter FORWARD): count those once.
        counted_by_iptables = chains is not None and _iptables_uses_nft(probe, "iptables-save")
        forward = [
            chain
            for chain in nft
            if chain["hook"] == "forward"
            and chain["family"] in ("ip", "inet")
            and not (counted_by_iptables and chain["family"] == "ip" and chain["table"] == "filter")
        ]
        details["nft_forward_chains"] = [
            "{family} {table} {chain}: {rules} rules".format(**chain) for chain in forward if chain["rules"]
        ]
        details["nft_forward_rules"] = sum(chain["rules"] for chain in forward)
        counted.append(details["nft_forward_rules"])
    total = sum(counted)
    if total:
        return outcome(
            YELLOW,
            "IPv4 forwarding is on with {} forward rule(s); the VEN replaces the host's rules when it leaves "
            "the idle state".format(total),
            **details,
        )
    if problems:
        return outcome(
            YELLOW, "IPv4 forwarding is on; could not list forward rules: {}".format("; ".join(problems)), **details
        )
    return outcome(GREEN, "IPv4 forwarding is on, without forward rules", **details)


def _rule_count_check(probe, command, family):
    chains, why = _iptables_filter(probe, command)
    if chains is None:
        return could_not("count the {} filter rules".format(family), why)
    per_chain = OrderedDict((name, chain["rules"]) for name, chain in chains.items() if chain["rules"])
    total = sum(per_chain.values())
    details = {"rules": total, "chains": per_chain}
    if total:
        return outcome(
            YELLOW,
            "{} {} filter rule(s) in {}; the VEN removes existing rules when it leaves the idle state, "
            "back them up".format(total, family, ", ".join(per_chain)),
            **details,
        )
    return outcome(GREEN, "no {} filter rules".format(family), **details)


def check_iptables_rules(probe, options):
    return _rule_count_check(probe, "iptables-save", "iptables")


def check_ip6tables_rules(probe, options):
    return _rule_count_check(probe, "ip6tables-save", "ip6tables")


def check_ipv6_global(probe, options):
    text = probe.read(probe.proc("net/if_inet6"))
    if text is None:
        if os.path.isdir(probe.proc("net")):
            return outcome(GREEN, "IPv6 is disabled (no /proc/net/if_inet6)", addresses=[])
        return could_not("read the IPv6 addresses", "/proc/net is not readable")
    addresses = [entry for entry in parse_if_inet6(text) if entry["scope"] == "global"]
    listed = ["{address}/{prefix} ({interface})".format(**entry) for entry in addresses]
    if addresses:
        return outcome(
            YELLOW, "IPv6 global-scope address(es) configured: {}".format(", ".join(listed[:5])), addresses=listed
        )
    return outcome(GREEN, "no IPv6 global-scope addresses", addresses=[])


def _socket_owners(probe, inodes):
    """{inode: [{pid, name, exe}]} of the processes holding these sockets (only what we may read)."""
    owners = {}
    wanted = {"socket:[{}]".format(inode): inode for inode in inodes}
    try:
        pids = [name for name in os.listdir(probe.proc_root) if name.isdigit()]
    except OSError:
        return owners
    for pid in pids:
        fd_dir = os.path.join(probe.proc_root, pid, "fd")
        try:
            links = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in links:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target in wanted:
                name = (probe.read(os.path.join(probe.proc_root, pid, "comm")) or "").strip()
                try:
                    exe = os.readlink(os.path.join(probe.proc_root, pid, "exe"))
                except OSError:
                    exe = None
                owners.setdefault(wanted[target], []).append({"pid": int(pid), "name": name, "exe": exe})
    return owners


def check_ipsec_ports(probe, options):
    found = []
    read_any = False
    for name in ("net/udp", "net/udp6"):
        text = probe.read(probe.proc(name))
        if text is None:
            continue
        read_any = True
        found.extend(entry for entry in parse_proc_udp(text) if entry["port"] in IPSEC_PORTS)
    if not read_any:
        return could_not("read the UDP sockets", "/proc/net/udp and /proc/net/udp6 are not readable")
    owners = _socket_owners(probe, [entry["inode"] for entry in found]) if found else {}
    install_dir = options.get("install_dir") or DEFAULT_INSTALL_DIR
    in_use = []
    for entry in found:
        procs = owners.get(entry["inode"], [])
        if procs and all((proc["exe"] or "").startswith(install_dir.rstrip("/") + "/") for proc in procs):
            continue  # the VEN's own IKE daemon
        who = ", ".join("{name} (pid {pid})".format(**proc) for proc in procs) or "unknown process"
        in_use.append("udp {} on {} by {}".format(entry["port"], entry["address"], who))
    if in_use:
        return outcome(
            RED,
            "UDP 500/4500 in use by other services ({}); do not enable SecureConnect for this workload".format(
                "; ".join(in_use[:4])
            ),
            sockets=in_use,
        )
    return outcome(GREEN, "UDP 500 and 4500 are free", sockets=[])


def _table_names(probe):
    names = {}
    paths = ["/usr/share/iproute2/rt_tables", "/usr/lib/iproute2/rt_tables", "/etc/iproute2/rt_tables"]
    for folder in ("/usr/share/iproute2/rt_tables.d", "/etc/iproute2/rt_tables.d"):
        try:
            paths.extend(
                os.path.join(folder, name) for name in sorted(os.listdir(probe.path(folder))) if name.endswith(".conf")
            )
        except OSError:
            pass
    for path in paths:
        text = probe.read(probe.path(path))
        if text:
            names.update(parse_rt_tables(text))
    return names


_FAMILY_NAMES = {"-4": "IPv4", "-6": "IPv6"}


def check_routing_table(probe, options):
    table = int(options.get("ipsec_routing_table") or DEFAULT_IPSEC_ROUTING_TABLE)
    names = _table_names(probe)
    refs = {str(table)}
    if table in names:
        refs.add(names[table])
    conflicts = []
    problems = []
    for family in ("-4", "-6"):
        done = probe.run(["ip", family, "rule", "show"])
        if done is None:
            return could_not("list the routing policy rules", "the ip command (iproute2) is not installed")
        rc, out, err = done
        if rc != 0:
            if family == "-6" and ("not supported" in err.lower() or "family" in err.lower()):
                continue
            problems.append("ip {} rule show failed: {}".format(family, err.strip()[:200]))
            continue
        for line in out.splitlines():
            line = line.strip()
            match = re.match(r"^(\d+):\s*(.*)$", line)
            if not match:
                continue
            priority, rule = int(match.group(1)), match.group(2)
            lookup = re.search(r"\b(?:lookup|table)\s+(\S+)", rule)
            if priority == table or (lookup and lookup.group(1) in refs):
                conflicts.append("{} rule {}".format(_FAMILY_NAMES[family], line))
        rc, out, err = probe.run(["ip", family, "route", "show", "table", str(table)]) or (127, "", "ip not found")
        if rc != 0:
            if "not exist" not in err.lower():
                problems.append("ip {} route show table {} failed: {}".format(family, table, err.strip()[:200]))
            continue
        routes = [line.strip() for line in out.splitlines() if line.strip()]
        conflicts.extend("{} route in table {}: {}".format(_FAMILY_NAMES[family], table, route) for route in routes)
    details = {"table": table, "table_name": names.get(table), "conflicts": conflicts}
    if conflicts:
        return outcome(
            RED,
            "routing table {} (the one SecureConnect's IKE daemon uses) is already in use: {}; do not enable "
            "SecureConnect for this workload".format(table, "; ".join(conflicts[:3])),
            **details,
        )
    if problems:
        return outcome(YELLOW, "could not list all routes and rules: {}".format("; ".join(problems)), **details)
    return outcome(GREEN, "routing table {0} and rule priority {0} are free".format(table), **details)


def _nearest_existing(probe, path):
    current = path
    while True:
        if os.path.exists(probe.path(current)):
            return current
        parent = os.path.dirname(current.rstrip("/")) or "/"
        if parent == current:
            return current
        current = parent


def check_disk_space(probe, options):
    minimum = int(options.get("disk_min_mb") or DEFAULT_DISK_MIN_MB)
    recommended = max(int(options.get("disk_recommended_mb") or DEFAULT_DISK_RECOMMENDED_MB), minimum)
    directories = [
        ("install_dir", options.get("install_dir") or DEFAULT_INSTALL_DIR),
        ("data_dir", options.get("data_dir") or DEFAULT_DATA_DIR),
    ]
    symlinks = [path for _role, path in directories if os.path.islink(probe.path(path))]
    filesystems = OrderedDict()
    for _role, path in directories:
        where = _nearest_existing(probe, path)
        try:
            device = probe.stat(probe.path(where)).st_dev
            stats = probe.statvfs(probe.path(where))
        except OSError as error:
            return could_not("measure the free space for {}".format(path), str(error))
        free_mb = int(stats.f_bavail * stats.f_frsize // (1024 * 1024))
        record = filesystems.setdefault(device, {"paths": [], "checked": where, "free_mb": free_mb})
        record["paths"].append(path)
    details = {
        "filesystems": list(filesystems.values()),
        "minimum_mb": minimum,
        "recommended_mb": recommended,
        "symlinks": symlinks,
    }
    problems = []
    level = GREEN
    for record in filesystems.values():
        where = "{} (checked at {})".format(" and ".join(record["paths"]), record["checked"])
        if record["free_mb"] < minimum:
            level = RED
            problems.append("{}: {} MB free, the VEN needs at least {} MB".format(where, record["free_mb"], minimum))
        elif record["free_mb"] < recommended:
            level = worst([level, YELLOW])
            problems.append("{}: {} MB free, {} MB or more recommended".format(where, record["free_mb"], recommended))
    if symlinks:
        level = RED
        problems.append("the VEN cannot be installed in a symbolic link: {}".format(", ".join(symlinks)))
    if problems:
        return outcome(level, "; ".join(problems), **details)
    free = ", ".join("{}: {} MB free".format(" and ".join(r["paths"]), r["free_mb"]) for r in filesystems.values())
    return outcome(GREEN, free, **details)


def check_required_commands(probe, options):
    wanted = options.get("required_commands")
    if wanted is None:
        wanted = DEFAULT_REQUIRED_COMMANDS
    found = OrderedDict()
    missing = []
    for entry in wanted:
        choices = [choice.strip() for choice in entry.split("|") if choice.strip()]
        path = None
        for choice in choices:
            path = probe.which(choice)
            if path:
                break
        found[entry] = path
        if not path:
            missing.append(entry)
    details = {"commands": found, "missing": missing}
    if missing:
        return outcome(
            YELLOW,
            "missing: {}; the VEN package pulls its dependencies from the OS repositories, which must then be "
            "reachable".format(", ".join(missing)),
            **details,
        )
    return outcome(GREEN, "all {} required commands found".format(len(found)), **details)


def check_tracefs(probe, options):
    text = probe.read(probe.proc("mounts"))
    if text is None:
        return could_not("read the mounts", "/proc/mounts is not readable")
    mounted = [
        "{fstype} on {mountpoint}".format(**entry)
        for entry in parse_mounts(text)
        if entry["fstype"] in ("tracefs", "debugfs")
    ]
    if mounted:
        return outcome(GREEN, ", ".join(mounted), mounts=mounted)
    return outcome(
        YELLOW,
        "neither tracefs nor debugfs is mounted; the VEN then detects firewall tampering more slowly",
        mounts=[],
    )


def _yes(value):
    return value.strip().lower() in ("yes", "true", "1")


def _time_from_timedatectl(probe):
    done = probe.run(["timedatectl", "show", "--property=NTPSynchronized", "--value"])
    if done is not None and done[0] == 0 and done[1].strip():
        return _yes(done[1]), "timedatectl: NTPSynchronized={}".format(done[1].strip())
    done = probe.run(["timedatectl", "status"])
    if done is not None and done[0] == 0:
        for line in done[1].splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() in ("system clock synchronized", "ntp synchronized"):
                return _yes(value), "timedatectl: {}".format(line.strip())
    return None


def _time_from_chrony(probe):
    done = probe.run(["chronyc", "-n", "tracking"])
    if done is None or done[0] != 0:
        return None
    for line in done[1].splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "leap status":
            return value.strip().lower() != "not synchronised", "chronyc: leap status {}".format(value.strip())
    return None


def _time_from_ntp(probe):
    done = probe.run(["ntpstat"])
    if done is not None and done[0] in (0, 1):
        return done[0] == 0, "ntpstat: " + (done[1].strip().splitlines() or ["rc {}".format(done[0])])[0]
    done = probe.run(["ntpq", "-pn"])
    if done is not None and done[0] == 0:
        peers = [line for line in done[1].splitlines() if line.startswith("*")]
        return bool(peers), "ntpq: {}".format("system peer " + peers[0].split()[0][1:] if peers else "no system peer")
    return None


def check_time_sync(probe, options):
    for source in (_time_from_timedatectl, _time_from_chrony, _time_from_ntp):
        found = source(probe)
        if found is None:
            continue
        synchronized, evidence = found
        if synchronized:
            return outcome(GREEN, "the clock is synchronised ({})".format(evidence), synchronized=True)
        return outcome(
            RED,
            "the clock is not synchronised ({}); NTP must be installed and working to keep the VEN and the "
            "PCE in time".format(evidence),
            synchronized=False,
        )
    return outcome(
        YELLOW,
        "could not tell whether the clock is synchronised (no answer from timedatectl, chronyc, ntpstat or ntpq)",
        synchronized=None,
    )


def _tls_context(ca_file, ca_data=None):
    context = ssl.create_default_context(cafile=ca_file or None, cadata=ca_data or None)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _cert_name(name):
    return ", ".join("{}={}".format(key, value) for rdn in name or () for key, value in rdn)


def tls_probe(host, port, ca_file=None, timeout=10.0, expiry_warn_days=CERT_EXPIRY_WARN_DAYS, ca_data=None):
    """Connect to host:port and do a TLS handshake verifying the chain (and the name); an outcome.

    The CAs come from ``ca_file`` (a path on this host) or ``ca_data`` (PEM text), else the default trust store.

    Yellow when TLS older than 1.2 is negotiated or the certificate expires within ``expiry_warn_days``.
    """
    where = "{}:{}".format(host, port)
    try:
        context = _tls_context(ca_file, ca_data)
    except (OSError, ssl.SSLError) as error:
        source = "the CA file {}".format(ca_file) if ca_file else "the CA certificates given"
        return outcome(RED, "could not load {}: {}".format(source, error), server=where)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as error:
        return outcome(RED, "{}: the name does not resolve ({})".format(where, error), server=where)
    except socket.timeout:
        return outcome(RED, "{}: connection timed out after {} s".format(where, timeout), server=where)
    except ConnectionRefusedError:
        return outcome(RED, "{}: connection refused".format(where), server=where)
    except OSError as error:
        return outcome(RED, "{}: cannot connect ({})".format(where, error), server=where)
    try:
        raw.settimeout(timeout)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            version = tls.version()
            cipher = (tls.cipher() or (None,))[0]
            cert = tls.getpeercert() or {}
    except ssl.CertificateError as error:  # 3.7+: SSLCertVerificationError; 3.6: the hostname mismatch
        reason = getattr(error, "verify_message", None) or str(error)
        return outcome(RED, "{}: the certificate is not trusted: {}".format(where, reason), server=where)
    except ssl.SSLError as error:
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            return outcome(RED, "{}: the certificate is not trusted: {}".format(where, error), server=where)
        return outcome(RED, "{}: TLS handshake failed: {}".format(where, error), server=where)
    except socket.timeout:
        return outcome(RED, "{}: TLS handshake timed out after {} s".format(where, timeout), server=where)
    except OSError as error:
        return outcome(RED, "{}: TLS handshake failed: {}".format(where, error), server=where)
    finally:
        raw.close()
    details = {
        "server": where,
        "tls_version": version,
        "cipher": cipher,
        "subject": _cert_name(cert.get("subject")),
        "issuer": _cert_name(cert.get("issuer")),
        "not_after": cert.get("notAfter"),
    }
    warnings = []
    if version in ("SSLv3", "TLSv1", "TLSv1.1"):
        warnings.append("it negotiated {}, the VEN needs TLS 1.2 or later".format(version))
    if cert.get("notAfter"):
        try:
            left = (ssl.cert_time_to_seconds(cert["notAfter"]) - calendar.timegm(time.gmtime())) / 86400.0
        except ValueError:
            left = None
        if left is not None and left < expiry_warn_days:
            warnings.append("its certificate expires in {:.0f} day(s)".format(left))
    if warnings:
        return outcome(YELLOW, "{} is reachable but {}".format(where, " and ".join(warnings)), **details)
    return outcome(GREEN, "{} is reachable and its certificate is trusted ({})".format(where, version), **details)


def check_pce_reachable(probe, options):
    server = options.get("management_server")
    try:
        host, port = parse_management_server(server)
    except ValueError as error:
        return outcome(RED, str(error), servers=[])
    ports = [port] + [int(extra) for extra in options.get("pce_extra_ports") or () if int(extra) != port]
    timeout = float(options.get("timeout") or 10)
    warn_days = options.get("cert_expiry_warn_days")
    warn_days = CERT_EXPIRY_WARN_DAYS if warn_days is None else int(warn_days)
    results = [
        tls_probe(host, each, options.get("ca_file"), timeout, warn_days, ca_data=options.get("ca_content"))
        for each in ports
    ]
    level = worst(result["level"] for result in results)
    messages = [result["message"] for result in results if result["level"] == level]
    return outcome(level, "; ".join(messages), servers=[result["details"] for result in results])


CHECKS = OrderedDict(
    [
        ("ip_forwarding", check_ip_forwarding),
        ("iptables_rules", check_iptables_rules),
        ("ip6tables_rules", check_ip6tables_rules),
        ("ipv6_global", check_ipv6_global),
        ("ipsec_ports", check_ipsec_ports),
        ("routing_table", check_routing_table),
        ("disk_space", check_disk_space),
        ("required_commands", check_required_commands),
        ("tracefs", check_tracefs),
        ("time_sync", check_time_sync),
        ("pce_reachable", check_pce_reachable),
    ]
)
CHECK_NAMES = tuple(CHECKS)


def selected_checks(checks=None, skip=None):
    """The check names to run, in CHECKS order: ``checks`` (or all; "all" means all) minus ``skip``."""
    wanted = set(CHECK_NAMES) if not checks or "all" in checks else set(checks)
    unknown = (wanted | set(skip or ())) - set(CHECK_NAMES) - {"all"}
    if unknown:
        raise ValueError("unknown checks: {}".format(", ".join(sorted(unknown))))
    return [name for name in CHECK_NAMES if name in wanted and name not in set(skip or ())]


def run_checks(probe, names, options):
    """Run some checks: {overall, checks: {name: {level, message, details}}, skipped: {name: why}, red, yellow}.

    pce_reachable is skipped (not run) when no management_server is given. A check that raises unexpectedly
    reports yellow with the error, so one broken check never hides the others.
    """
    results = OrderedDict()
    skipped = OrderedDict()
    for name in names:
        if name == "pce_reachable" and not options.get("management_server"):
            skipped[name] = "no management_server given"
            continue
        try:
            results[name] = CHECKS[name](probe, options)
        except Exception as error:
            results[name] = could_not("run the check", "{}: {}".format(type(error).__name__, error))
    return {
        "overall": worst(result["level"] for result in results.values()),
        "checks": results,
        "skipped": skipped,
        "red": [name for name, result in results.items() if result["level"] == RED],
        "yellow": [name for name, result in results.items() if result["level"] == YELLOW],
    }


def summary_lines(report):
    """One line per check, worst first: ``name: level - message``; then the skipped ones."""
    ordered = sorted(report["checks"].items(), key=lambda item: -_RANK[item[1]["level"]])
    lines = ["{}: {} - {}".format(name, result["level"], result["message"]) for name, result in ordered]
    lines.extend("{}: skipped - {}".format(name, why) for name, why in report.get("skipped", {}).items())
    return lines
