# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Back up the host firewall before the VEN removes rules, and put the host's own rules back afterwards.

VEN Operations: suspending a Linux VEN removes every rule it programmed *and* the custom iptables/NAT rules of
the host, so the host's rules must be backed up before and restored after. Unpairing restores a firewall state the
VEN chooses. This file keeps the backup (`iptables-save`, `ip6tables-save`, `nft list ruleset`) and computes
what of the backup is missing now, leaving out whatever belongs to the VEN (tables, chains and sets whose names
start with one of the VEN's prefixes, `illumio` by default, compared case-insensitively).

What comes back:
- nftables: whole tables of the backup that no longer exist, from the backup's text (`nft -f`). Tables that
  iptables-nft manages are left to the iptables part.
- iptables / ip6tables: rules of the backup that are missing now, per table and chain, inserted at the place they
  had relative to the rules that are still there, plus the non-VEN chains they need
  (one `iptables-restore --noflush` transaction per family).

Python 3.6+ standard library only: this runs on managed hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import os
import re
import tempfile
import time

DEFAULT_BACKUP_DIR = "/var/lib/microseg-illumio/ven_firewall"
DEFAULT_VEN_PREFIXES = ("illumio",)
# kind -> (command that lists it, file suffix, restore command)
KINDS = (
    ("iptables", ("iptables-save",), "rules", "iptables-restore"),
    ("ip6tables", ("ip6tables-save",), "rules", "ip6tables-restore"),
    ("nftables", ("nft", "list", "ruleset"), "nft", "nft"),
)
KIND_NAMES = tuple(kind[0] for kind in KINDS)
# nftables tables first: an iptables-nft table it brings back must not be filled again through iptables.
RESTORE_ORDER = ("nftables", "iptables", "ip6tables")
LATEST = "latest"
XTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")
BUILTIN_CHAINS = ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")
_NFT_MANAGED = re.compile(r"table (?P<family>\w+) (?P<name>\S+) is managed by iptables-nft")
_NFT_TABLE = re.compile(r"^table\s+(?P<family>[a-z0-9]+)\s+(?P<name>\S+?)\s*\{")
_JUMP_OPTIONS = ("-j", "--jump", "-g", "--goto")
_SET_OPTIONS = ("--match-set", "--add-set", "--del-set", "--map-set")


class FirewallBackupError(Exception):
    """A firewall tool failed, or a backup could not be written or read; the message says which and why."""


def ven_owned(name, prefixes=DEFAULT_VEN_PREFIXES):
    """Whether a table, chain or set name is the VEN's (starts with one of the prefixes, any case)."""
    lowered = (name or "").lower()
    return any(prefix and lowered.startswith(prefix.lower()) for prefix in prefixes)


# --- the tools ------------------------------------------------------------------------------------------------


def find_tools(module):
    """{'iptables-save': path or None, ...} for every tool this file may run, found like Ansible finds tools."""
    names = set()
    for _kind, listing, _suffix, restore in KINDS:
        names.add(listing[0])
        names.add(restore)
    return dict((name, module.get_bin_path(name)) for name in sorted(names))


def snapshot(module, tools=None):
    """{kind: text} of the firewalls this host has tools for (a missing tool means no such kind)."""
    tools = find_tools(module) if tools is None else tools
    texts = {}
    for kind, listing, _suffix, _restore in KINDS:
        path = tools.get(listing[0])
        if not path:
            continue
        rc, out, err = module.run_command([path, *listing[1:]])
        if rc != 0:
            raise FirewallBackupError(
                "%s failed (exit %d): %s" % (" ".join(listing), rc, (err or out).strip() or "no output")
            )
        if kind == "nftables":
            # nft says on stderr which tables iptables-nft manages; keep that with the listing as comments.
            notes = ["# %s" % line.strip().lstrip("# ") for line in err.splitlines() if _NFT_MANAGED.search(line)]
            out = "".join(note + "\n" for note in notes) + out
        texts[kind] = out
    return texts


# --- backup files ---------------------------------------------------------------------------------------------


def file_name(kind, stamp):
    suffix = dict((entry[0], entry[2]) for entry in KINDS)[kind]
    return "%s-%s.%s" % (kind, stamp, suffix)


def timestamp(now=None):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))


def _write_private(path, text):
    temporary = "%s.tmp-%d" % (path, os.getpid())
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)
    os.rename(temporary, path)


def ensure_dir(directory):
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    os.chmod(directory, 0o700)


def planned_files(directory, texts, stamp):
    """The paths write_backup writes for these texts: a timestamped file and a `latest` copy per kind."""
    files = []
    for kind in KIND_NAMES:
        if kind in texts:
            files.append(os.path.join(directory, file_name(kind, stamp)))
            files.append(os.path.join(directory, file_name(kind, LATEST)))
    return files


def write_backup(directory, texts, now=None):
    """Write each kind's text as KIND-<UTC time>.EXT and KIND-latest.EXT (0600) in directory (0700).

    The `latest` files always form one backup: a kind not in texts loses its `latest` file.
    """
    stamp = timestamp(now)
    try:
        ensure_dir(directory)
        written = []
        for kind in KIND_NAMES:
            latest = os.path.join(directory, file_name(kind, LATEST))
            if kind not in texts:
                if os.path.lexists(latest):
                    os.unlink(latest)
                continue
            path = os.path.join(directory, file_name(kind, stamp))
            _write_private(path, texts[kind])
            _write_private(latest, texts[kind])
            written += [path, latest]
    except OSError as exc:
        raise FirewallBackupError("cannot write the firewall backup in %s: %s" % (directory, exc)) from exc
    return written


def read_latest(directory):
    """{kind: text} of the latest backup in directory; {} when there is none."""
    texts = {}
    for kind in KIND_NAMES:
        path = os.path.join(directory, file_name(kind, LATEST))
        try:
            with open(path) as handle:
                texts[kind] = handle.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise FirewallBackupError("cannot read the firewall backup %s: %s" % (path, exc)) from exc
    return texts


# --- iptables-save text ---------------------------------------------------------------------------------------


def parse_xtables(text):
    """iptables-save text -> ordered {table: {'chains': {name: policy}, 'rules': {chain: [rule line]}}}.

    Rules are the `-A CHAIN ...` lines as printed (iptables-save prints them canonically); counters
    (`[p:b] -A ...` from `-c`) are dropped.
    """
    tables = {}
    order = []
    table = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            name = line[1:].strip()
            if name not in tables:
                tables[name] = {"chains": {}, "chain_order": [], "rules": {}}
                order.append(name)
            table = tables[name]
        elif line == "COMMIT":
            table = None
        elif table is None:
            continue
        elif line.startswith(":"):
            parts = line[1:].split()
            if parts and parts[0] not in table["chains"]:
                table["chains"][parts[0]] = parts[1] if len(parts) > 1 else "-"
                table["chain_order"].append(parts[0])
        else:
            if line.startswith("["):
                line = line.split("]", 1)[-1].strip()
            words = line.split()
            if len(words) >= 2 and words[0] == "-A":
                table["rules"].setdefault(words[1], []).append(line)
    return [(name, tables[name]) for name in order]


def rule_chain(rule):
    return rule.split()[1]


def _option_values(rule, options):
    words = rule.split()
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in options]


def rule_is_ven(rule, prefixes):
    """A rule belongs to the VEN when its chain, its jump/goto target or a set it uses is the VEN's."""
    if ven_owned(rule_chain(rule), prefixes):
        return True
    names = _option_values(rule, _JUMP_OPTIONS) + _option_values(rule, _SET_OPTIONS)
    return any(ven_owned(name, prefixes) for name in names)


def _place_missing(backup_rules, current_rules, keep_out=lambda rule: False):
    """The backup rules missing from current_rules, each with the 1-based position that puts it back where it was.

    Rules still there keep their places; a missing rule goes right after the last rule before it in the backup
    that is still there (in the chain as it will be after the earlier insertions). keep_out rules (the VEN's) help
    to find places but are never put back. Returns [(position, append, rule)].
    """
    chain = [[rule, False] for rule in current_rules]
    pointer = 0
    placed = []
    for rule in backup_rules:
        found = next((i for i in range(pointer, len(chain)) if chain[i][0] == rule and not chain[i][1]), None)
        if found is not None:
            chain[found][1] = True
            pointer = found + 1
            continue
        earlier = next((i for i in range(pointer) if chain[i][0] == rule and not chain[i][1]), None)
        if earlier is not None:
            chain[earlier][1] = True  # still there, only moved: not ours to reorder
        elif not keep_out(rule):
            chain.insert(pointer, [rule, True])
            placed.append((pointer + 1, len(chain) == pointer + 1, rule))
            pointer += 1
    return placed


def missing_xtables(backup_text, current_text, prefixes=DEFAULT_VEN_PREFIXES):
    """What of the backup's non-VEN chains and rules is missing now.

    [{'table', 'chains': [(name, policy)], 'rules': [(chain, position, append, rule)]}] in the backup's order.
    """
    current = dict(parse_xtables(current_text or ""))
    missing = []
    for name, table in parse_xtables(backup_text or ""):
        now = current.get(name, {"chains": {}, "rules": {}})
        chains = [
            (chain, table["chains"][chain])
            for chain in table["chain_order"]
            if chain not in now["chains"] and chain not in BUILTIN_CHAINS and not ven_owned(chain, prefixes)
        ]
        rules = []
        for chain in table["chain_order"] + [c for c in table["rules"] if c not in table["chains"]]:
            if ven_owned(chain, prefixes):
                continue
            placed = _place_missing(
                table["rules"].get(chain, []),
                now["rules"].get(chain, []),
                lambda rule: rule_is_ven(rule, prefixes),
            )
            for position, append, rule in placed:
                rules.append((chain, position, append, rule))
        if chains or rules:
            missing.append({"table": name, "chains": chains, "rules": rules})
    return missing


def policy_differences(backup_text, current_text):
    """Built-in chains whose policy is not the backup's now, as text; never changed here (the VEN may set them)."""
    current = dict(parse_xtables(current_text or ""))
    found = []
    for name, table in parse_xtables(backup_text or ""):
        now = current.get(name, {"chains": {}})["chains"]
        for chain in table["chain_order"]:
            was, is_now = table["chains"][chain], now.get(chain)
            if chain in BUILTIN_CHAINS and is_now and was != "-" and is_now != was:
                found.append("%s %s policy was %s, is %s" % (name, chain, was, is_now))
    return found


def xtables_restore_text(missing):
    """`iptables-restore --noflush` text that adds exactly the missing chains and rules."""
    lines = []
    for entry in missing:
        lines.append("*%s" % entry["table"])
        for chain, _policy in entry["chains"]:
            lines.append(":%s - [0:0]" % chain)
        for chain, position, append, rule in entry["rules"]:
            body = rule.split(None, 2)[2] if len(rule.split(None, 2)) > 2 else ""
            if append:
                lines.append(("-A %s %s" % (chain, body)).rstrip())
            else:
                lines.append(("-I %s %d %s" % (chain, position, body)).rstrip())
        lines.append("COMMIT")
    return "\n".join(lines) + "\n" if lines else ""


def describe_xtables(kind, missing):
    described = []
    for entry in missing:
        for chain, _policy in entry["chains"]:
            described.append("%s %s: chain %s" % (kind, entry["table"], chain))
        for _chain, _position, _append, rule in entry["rules"]:
            described.append("%s %s: %s" % (kind, entry["table"], rule))
    return described


# --- nft list ruleset text ------------------------------------------------------------------------------------


def _braces(line):
    """Net brace depth change of one line of nft text, quotes and comments understood."""
    depth = 0
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "#":
            break
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
    return depth


def parse_nft_tables(text):
    """`nft list ruleset` text -> [((family, name), table text)] in order, plus the iptables-nft tables' keys."""
    tables = []
    managed = set()
    current = None
    depth = 0
    for line in (text or "").splitlines():
        note = _NFT_MANAGED.search(line) if line.lstrip().startswith("#") else None
        if note and current is None:
            managed.add((note.group("family"), note.group("name")))
            continue
        if current is None:
            start = _NFT_TABLE.match(line.strip())
            if not start:
                continue
            current = [(start.group("family"), start.group("name")), [line]]
            depth = _braces(line)
        else:
            current[1].append(line)
            depth += _braces(line)
        if depth <= 0:
            tables.append((current[0], "\n".join(current[1]) + "\n"))
            current = None
    if current is not None:
        raise FirewallBackupError("nftables listing: table %s %s is never closed" % current[0])
    for key, body in tables:
        if _looks_like_xtables(key, body):
            managed.add(key)
    return tables, managed


def _looks_like_xtables(key, body):
    """An iptables-nft table: family ip/ip6, an iptables table name and a chain with an iptables built-in name."""
    family, name = key
    if family not in ("ip", "ip6") or name not in XTABLES_TABLES:
        return False
    return any(re.search(r"^\s*chain %s \{" % chain, body, re.MULTILINE) for chain in BUILTIN_CHAINS)


def missing_nft(backup_text, current_text, prefixes=DEFAULT_VEN_PREFIXES):
    """[((family, name), text)] of the backup's own (non-VEN, not iptables-nft) tables that do not exist now."""
    backup, managed = parse_nft_tables(backup_text)
    current, current_managed = parse_nft_tables(current_text)
    present = set(key for key, _body in current)
    skip = managed | current_managed
    return [
        (key, body)
        for key, body in backup
        if key not in present and key not in skip and not ven_owned(key[1], prefixes)
    ]


def describe_nft(missing):
    return ["nftables: table %s %s" % key for key, _body in missing]


# --- restore --------------------------------------------------------------------------------------------------


def plan_restore(backup, current, prefixes=DEFAULT_VEN_PREFIXES):
    """{kind: missing} for every kind with something to restore; backup/current are {kind: text}."""
    plan = {}
    for kind in KIND_NAMES:
        if kind not in backup or kind not in current:
            continue  # no backup of it, or no tool for it now
        if kind == "nftables":
            missing = missing_nft(backup[kind], current[kind], prefixes)
        else:
            missing = missing_xtables(backup[kind], current[kind], prefixes)
        if missing:
            plan[kind] = missing
    return plan


def describe(plan):
    """One line per table, chain or rule that the plan restores, in the order it restores them."""
    lines = []
    for kind in RESTORE_ORDER:
        if kind in plan:
            lines += describe_nft(plan[kind]) if kind == "nftables" else describe_xtables(kind, plan[kind])
    return lines


def _tool(tools, name):
    path = tools.get(name)
    if not path:
        raise FirewallBackupError("%s is needed to restore the backed-up rules and is not installed" % name)
    return path


def restore(module, backup, prefixes=DEFAULT_VEN_PREFIXES, tools=None):
    """Put back what of backup is missing now; returns the describe() lines of what was restored.

    nftables tables first, then each iptables family planned against the rules as they are after that (an
    iptables-nft table brought back by nft must not be added a second time).
    """
    tools = find_tools(module) if tools is None else tools
    restored = []
    current = snapshot(module, tools)
    plan = plan_restore(backup, current, prefixes)
    if "nftables" in plan:
        script = "".join(body for _key, body in plan["nftables"])
        _run_file(module, [_tool(tools, "nft"), "-f"], script, "nft -f")
        restored += describe_nft(plan["nftables"])
        current = snapshot(module, tools)
        plan = plan_restore(backup, current, prefixes)
    for kind, _listing, _suffix, restore_command in KINDS:
        if kind == "nftables" or kind not in plan:
            continue
        text = xtables_restore_text(plan[kind])
        command = [_tool(tools, restore_command), "--noflush"]
        rc, out, err = module.run_command(command, data=text, binary_data=True)
        _check_restore(rc, out, err, "%s --noflush" % restore_command, text)
        restored += describe_xtables(kind, plan[kind])
    return restored


def _run_file(module, command, text, what):
    """Run `command FILE` with text in a private temporary file (`nft -f FILE`)."""
    folder = getattr(module, "tmpdir", None) or tempfile.gettempdir()
    descriptor, path = tempfile.mkstemp(prefix="microseg-illumio-restore-", dir=folder)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        rc, out, err = module.run_command([*command, path])
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    _check_restore(rc, out, err, what, text)


def _check_restore(rc, out, err, what, text):
    if rc != 0:
        said = (err or out).strip() or "no output"
        raise FirewallBackupError("%s failed (exit %d): %s; it was given:\n%s" % (what, rc, said, text))
