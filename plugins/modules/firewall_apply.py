#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: firewall_apply
short_description: Apply a rendered firewall ruleset atomically, with confirm-or-rollback
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host. Applies a ruleset rendered for the host (for example by
    M(microseg.illumio.policy_compile)) to the host's own firewall, nftables or iptables + ipset, as a guest
    on the host, and keeps what it needs to undo it.
  - B(What it owns.) With nftables, the table C(inet illumio) and nothing else. With iptables, the chains
    named C(ILO-*) of the C(filter) table (IPv4 and IPv6), the rules in C(INPUT), C(OUTPUT) and C(FORWARD)
    that jump to them, and the ipsets named C(ILO-*). Other tables, chains, rules and sets are never flushed
    or changed, and a ruleset that would touch them is refused before anything changes.
  - B(nftables input) (O(ruleset) or O(src)) is an C(nft -f) script that replaces the table as a whole -
    C(table inet illumio {}), C(delete table inet illumio), then the full C(table inet illumio { ... }). A
    script without the C(delete table inet illumio) line gets the first two lines added in front. Every
    statement must name the table C(inet illumio) (C(define) lines aside); C(flush ruleset), C(include),
    other tables and other families are refused. It is checked with C(nft -c -f) and applied with C(nft -f),
    one transaction.
  - B(iptables input) (O(iptables_rules), O(ip6tables_rules)) is C(iptables-restore --noflush) text with one
    C(*filter) block that declares C(ILO-*) chains (C(:ILO-NAME - [0:0])), appends rules to them
    (C(-A ILO-NAME ...)) and adds jumps to them from C(INPUT), C(OUTPUT) or C(FORWARD)
    (C(-A INPUT ... -j ILO-NAME) or C(-I INPUT ... -j ILO-NAME)). Rules may only jump to C(ILO-*) chains or
    to the standard targets (C(ACCEPT), C(DROP), C(REJECT), C(RETURN), C(LOG), C(NFLOG), C(AUDIT),
    C(MARK), C(CONNMARK), C(SET)) and only use C(ILO-*) sets. The rules are read as iptables reads them -
    words split as C(iptables-restore) splits them (double quotes only), and every spelling of an option that
    names a chain or a set counts - an unambiguous prefix of a long option (C(--add-se) is C(--add-set)),
    C(--option=value), C(-jNAME), the set match's old C(--set). Applying replaces all of our chains and jumps
    of a family in one C(iptables-restore --noflush) transaction. A family without rules given ends up
    without our chains.
  - B(ipset input) (O(ipset_rules)) is C(ipset restore) text that only names C(ILO-*) sets (a C(list:set)
    only holds C(ILO-*) sets). Replace a set
    atomically by building a temporary set and swapping it in -
    C(create ILO-web-t hash:net family inet), C(add ILO-web-t 10.0.0.0/24),
    C(create ILO-web hash:net family inet -exist), C(swap ILO-web-t ILO-web), C(destroy ILO-web-t). Sets
    are restored before the iptables rules that use them; our sets the text no longer creates are destroyed
    after the rules stop using them.
  - B(Idempotence.) The wanted ruleset is loaded into a throw-away network namespace (C(unshare --net))
    and the listing of our objects there is compared with the live listing (counters, timeouts, the
    elements of dynamic sets and of the flow recording's generation maps C(flow_gen_*) left out); the task
    changes nothing when they are equal. The trial is also the only load before the real one - nothing is tried
    on the live host.
  - B(Without a scratch namespace) (no C(unshare), or C(unshare --net) not allowed, as in some containers) an
    nftables script is still checked with C(nft -c) (which changes nothing) and the task compares the input
    with the one it last applied and the live listing with the one taken then. An iptables ruleset is refused
    with nothing changed - the only check left, C(iptables-restore --test), parses the rules against the live
    host, where the set match and the C(SET) target look every set name up among the host's own ipsets, so it
    cannot stop a rule that uses someone else's set.
  - B(Saves and restores.) Before changing anything it saves the current state of our objects (only ours)
    in O(state_dir). If applying fails half way (iptables and ipset are not one transaction together), that
    state is restored at once.
  - B(Rollback.) With O(rollback_timeout), a timer on the host restores the saved state after that many
    seconds unless a second task with O(confirm=true), run over a new connection, confirms the apply first.
    The timer is a C(systemd-run --on-active) transient timer when systemd runs, else a detached process
    (new session) that the host's init adopts; its token and pid are kept in O(state_dir).
  - B(Why two tasks.) A ruleset that locks the controller out also cuts the connection the task runs over, so
    the module cannot wait on the host for a confirmation that only a new connection can bring, and it
    cannot report back either. So it arms the timer and returns; the play then drops its connection
    (C(ansible.builtin.meta) V(reset_connection)), waits for a new one
    (M(ansible.builtin.wait_for_connection)) and confirms.
    If the ruleset locked the controller out, the new connection only works once the timer has restored
    the previous state, and the confirm task fails saying so. Run the apply task with C(async) and C(poll)
    so it does not depend on the SSH session that the new ruleset may cut. The role
    C(microseg.illumio.firewall) does all of this.
  - B(Last-known-good.) A ruleset applied without rollback, or confirmed, becomes the last-known-good one,
    kept in O(state_dir). With O(boot_restore), a systemd unit C(microseg-illumio-firewall.service)
    restores it at boot (after C(nftables.service), C(netfilter-persistent.service), C(iptables.service),
    C(firewalld.service), before C(network-pre.target)); it runs C(sh STATE_DIR/restore.sh boot). On hosts
    without systemd nothing is installed and the module warns; run that command from the init system.
  - O(state=absent) cancels a pending rollback and removes our table or chains, jumps and sets, the unit and
    the files in O(state_dir), nothing else.
  - Needs root, C(nft) or C(iptables-restore)/C(iptables-save) (and C(ip6tables-*), C(ipset) when used),
    C(sh) and C(awk); for iptables also C(unshare) with the right to make a network namespace. Python 3.6 or
    later, standard library only.
options:
  state:
    description:
      - V(present) applies the ruleset; V(absent) removes everything the module created.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description:
      - V(nftables) applies O(ruleset); V(iptables) applies O(iptables_rules), O(ip6tables_rules) and
        O(ipset_rules).
      - V(auto) picks the backend whose input is given; when inputs for both are given, nftables if C(nft)
        is installed, else iptables. For O(state=absent) and O(confirm), V(auto) covers both.
      - Objects of the other backend left from an earlier apply (a host moved from iptables to nftables) are
        removed when the new ruleset is applied.
    type: str
    choices: [auto, nftables, iptables]
    default: auto
  ruleset:
    description:
      - The C(nft -f) script for the table C(inet illumio) (see the description for what it may contain).
    type: str
  src:
    description:
      - Path on the managed host of a file holding O(ruleset).
    type: path
  iptables_rules:
    description:
      - C(iptables-restore) text for IPv4 (see the description).
    type: str
  iptables_src:
    description:
      - Path on the managed host of a file holding O(iptables_rules).
    type: path
  ip6tables_rules:
    description:
      - C(ip6tables-restore) text for IPv6, same rules as O(iptables_rules).
    type: str
  ip6tables_src:
    description:
      - Path on the managed host of a file holding O(ip6tables_rules).
    type: path
  ipset_rules:
    description:
      - C(ipset restore) text for the C(ILO-*) sets the iptables rules use.
    type: str
  ipset_src:
    description:
      - Path on the managed host of a file holding O(ipset_rules).
    type: path
  rollback_timeout:
    description:
      - Seconds after which the host restores the previous state unless a task with O(confirm=true) confirms
        the apply first. V(0) applies without rollback (and the ruleset becomes last-known-good at once).
      - Only armed when the task changes the firewall. Leave enough time for a new SSH connection and the
        confirm task; 30 seconds or more over slow links.
    type: int
    default: 0
  confirm:
    description:
      - Confirm the last apply, from a task that runs after a new connection to the host was made. Cancels
        the pending rollback timer and keeps the applied ruleset as last-known-good.
      - Fails when the rollback already happened (the ruleset locked the controller out, or the confirmation
        came too late), with RV(rolled_back=true).
      - Does nothing when no rollback is pending. Takes no ruleset options.
    type: bool
    default: false
  state_dir:
    description:
      - Directory on the host, mode 0700, for the saved previous state, the last-known-good ruleset, the
        pending rollback and the C(restore.sh) that the timer and the boot unit run.
      - Absolute path without spaces, quotes, C($), C(%) or backslashes (it goes into a unit file).
    type: path
    default: /var/lib/microseg-illumio/firewall
  boot_restore:
    description:
      - Install (V(true)) or remove (V(false)) the systemd unit C(/etc/systemd/system/microseg-illumio-firewall.service)
        that restores the last-known-good ruleset at boot. Installed when C(/etc/systemd/system) exists;
        enabled by a link in C(multi-user.target.wants).
    type: bool
    default: true
notes:
  - The module talks to the host's own firewall tools only; it needs no connection to the PCE.
  - A pending rollback is only cancelled by O(confirm=true) or O(state=absent); a later apply while one is
    pending keeps the state saved before the first unconfirmed apply as the one to roll back to.
seealso:
  - module: community.general.iptables_state
    description: The same confirm-or-rollback idea for iptables alone, with an action plugin.
attributes:
  check_mode:
    description: Checks the ruleset (C(nft -c), a trial load in a throw-away network namespace) and reports
      whether it would change the firewall, without changing anything.
    support: full
  diff_mode:
    description: Shows the listing of our objects before and after (as they would be in check mode).
    support: full
"""

EXAMPLES = r"""
- name: Apply, then confirm over a new connection (what the role microseg.illumio.firewall does)
  hosts: web
  tasks:
    - name: Apply the rendered ruleset; the host restores the previous one in 30 s unless confirmed
      microseg.illumio.firewall_apply:
        backend: nftables
        ruleset: "{{ lookup('ansible.builtin.file', 'rendered/' ~ inventory_hostname ~ '.nft') }}"
        rollback_timeout: 30
      async: 90
      poll: 2
      register: web_firewall

    - name: Drop the connection so that the confirmation proves a new one gets through
      ansible.builtin.meta: reset_connection

    - name: Wait for a new connection (after a lock-out, only the rollback lets it through)
      ansible.builtin.wait_for_connection:
        timeout: 90
      when: web_firewall.rollback.armed

    - name: Confirm; fails with rolled_back=true when the host already went back
      microseg.illumio.firewall_apply:
        confirm: true
      when: web_firewall.rollback.armed

- name: The iptables + ipset backend
  hosts: legacy
  tasks:
    - name: Apply ILO-* chains and sets
      microseg.illumio.firewall_apply:
        backend: iptables
        iptables_rules: |
          *filter
          :ILO-IN - [0:0]
          -A ILO-IN -i lo -j ACCEPT
          -A ILO-IN -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
          -A ILO-IN -p tcp --dport 22 -m set --match-set ILO-MGMT src -j ACCEPT
          -A ILO-IN -j DROP
          -I INPUT -j ILO-IN
          COMMIT
        ipset_rules: |
          create ILO-MGMT-T hash:net family inet
          add ILO-MGMT-T 192.0.2.10
          create ILO-MGMT hash:net family inet -exist
          swap ILO-MGMT-T ILO-MGMT
          destroy ILO-MGMT-T

- name: Show what would change
  hosts: web
  tasks:
    - name: Check mode with diff validates the file on the host and lists before/after
      microseg.illumio.firewall_apply:
        src: /etc/microseg-illumio/ruleset.nft
      check_mode: true
      diff: true

- name: Remove everything the module made (table or chains/sets, unit, state files)
  hosts: web
  tasks:
    - name: Back to the host's own firewall only
      microseg.illumio.firewall_apply:
        state: absent
"""

RETURN = r"""
backend:
  description: The backend used (V(nftables) or V(iptables)); V(null) for O(state=absent) and O(confirm).
  returned: always
  type: str
  sample: nftables
rollback:
  description: The rollback timer armed by this task.
  returned: always
  type: dict
  contains:
    armed:
      description: Whether a timer was armed (only when the task changed the firewall and O(rollback_timeout) > 0).
      type: bool
      sample: true
    token:
      description: The apply's token, in the timer's command line and file names in O(state_dir).
      type: str
      sample: 3f2a9c0d51e6b7a8
    timeout:
      description: Seconds until the rollback.
      type: int
      sample: 30
    method:
      description: V(systemd) (a C(systemd-run) timer) or V(process) (a detached process).
      type: str
      sample: process
confirmed:
  description: Whether this task confirmed a pending apply (O(confirm=true)).
  returned: always
  type: bool
  sample: false
rolled_back:
  description: With O(confirm=true), whether the host had already rolled back the last apply.
  returned: always
  type: bool
  sample: false
boot_restore:
  description: The boot-time restore unit.
  returned: always
  type: dict
  contains:
    installed:
      description: Whether the unit file is installed after the task.
      type: bool
    unit:
      description: Path of the unit file.
      type: str
      sample: /etc/systemd/system/microseg-illumio-firewall.service
    command:
      description: The command that restores the last-known-good ruleset (what the unit runs).
      type: str
      sample: /bin/sh /var/lib/microseg-illumio/firewall/restore.sh boot
state_dir:
  description: The state directory.
  returned: always
  type: str
  sample: /var/lib/microseg-illumio/firewall
"""

import errno
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

TABLE_FAMILY = "inet"
TABLE_NAME = "illumio"
PREFIX = "ILO-"
BUILTIN_CHAINS = ("INPUT", "OUTPUT", "FORWARD")
STANDARD_TARGETS = frozenset(["ACCEPT", "DROP", "REJECT", "RETURN", "LOG", "NFLOG", "AUDIT", "MARK", "CONNMARK", "SET"])
# The long options of iptables (and its set match and SET target) that name a chain or a set, by what they name.
# iptables parses options with getopt_long, which takes any unambiguous prefix of a long option (and --opt=value)
# as that option: `--add-se keepset` is --add-set. "set" is the set match's old name of --match-set.
# ipset's list:set type, by its name and its alias (ipset_list_set.c).
LIST_SET_TYPES = frozenset(["list:set", "setlist"])
TARGET_OPTIONS = ("jump", "goto")
SET_OPTIONS = ("match-set", "add-set", "del-set", "map-set")
OLD_SET_OPTION = "set"
# Long options whose full name is the prefix of one above: given in full, getopt_long takes them as themselves.
OTHER_LONG_OPTIONS = frozenset(["match"])
# iptables' short options that take an argument (IPT_OPTSTRING "-:A:C:D:R:I:L::S::M:F::Z::N:X::E:P:Vh::o:p:s:d:j:i:
# fbvw::W::nt:m:xc:g:46"): required ones take the rest of the word or the next word, optional ones the rest only.
SHORT_REQUIRED_ARG = frozenset("ACDRIMNEPopsdjitmcg")
SHORT_OPTIONAL_ARG = frozenset("LSFZXhwW")
NFT_FAMILIES = frozenset(["ip", "ip6", "inet", "arp", "bridge", "netdev"])
NFT_VERBS = frozenset(["add", "create", "insert", "replace", "delete", "destroy", "flush", "reset"])
# Objects that live in a table: `[verb] KIND [family] table ...`.
NFT_TABLE_OBJECTS = frozenset(
    [
        "chain",
        "chains",
        "rule",
        "rules",
        "set",
        "sets",
        "map",
        "maps",
        "element",
        "flowtable",
        "flowtables",
        "counter",
        "counters",
        "quota",
        "quotas",
        "limit",
        "limits",
        "secmark",
        "secmarks",
        "synproxy",
        "synproxys",
        "meter",
        "meters",
    ]
)
NFT_REMOVE = "table %s %s {}\ndelete table %s %s\n" % (TABLE_FAMILY, TABLE_NAME, TABLE_FAMILY, TABLE_NAME)
UNIT_NAME = "microseg-illumio-firewall.service"
UNIT_DIR = "/etc/systemd/system"
UNIT_WANTED_BY = "multi-user.target"
OWN_MARK = "# Written by microseg.illumio.firewall_apply"
SNAPSHOT_FILES = ("backends", "ruleset.nft", "iptables.rules", "ip6tables.rules", "ipset.rules")
STATE_DIR_PATTERN = re.compile(r"^/[A-Za-z0-9._/+:@=,-]*$")


class FirewallError(Exception):
    """An expected failure; main() turns it into fail_json."""


class RolledBack(FirewallError):
    """The confirm task came after the host had rolled back."""


# --- nftables scripts ---------------------------------------------------------------------------------------


def nft_statements(text):
    """Top-level statements of an nft script as (line number, tokens before the first brace).

    Comments, quoted strings, blocks in braces and line continuations are understood; statements end at a
    newline or `;` outside braces. Only the head of a statement matters for what it touches.
    """
    statements = []
    depth = 0
    line = 1
    tokens = []
    token = ""
    head_done = False
    start = 1
    i = 0
    n = len(text)

    def end_token():
        if token and not head_done:
            tokens.append(token)
        return ""

    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] == "\n":
            token = end_token()
            i += 2
            line += 1
            continue
        if char == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if char == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 1
            token += text[i : j + 1]
            i = j + 1
            continue
        if char == "{":
            token = end_token()
            head_done = True
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise FirewallError("nftables script line %d: unbalanced '}'" % line)
        elif depth == 0 and char in "\n;":
            token = end_token()
            if tokens:
                statements.append((start, tokens))
            tokens, head_done = [], False
        elif char.isspace():
            token = end_token()
        elif depth == 0:
            if not tokens and not token:
                start = line
            token += char
        if char == "\n":
            line += 1
        i += 1
    token = end_token()
    if depth != 0:
        raise FirewallError("nftables script: a '{' is never closed")
    if tokens:
        statements.append((start, tokens))
    return statements


def _unquote(word):
    return word[1:-1] if len(word) >= 2 and word[0] == word[-1] == '"' else word


def _check_table_ref(line, words, what):
    """words start at the family (optional) of a table reference; it must be inet illumio."""
    if not words:
        raise FirewallError("nftables script line %d: %s without a table" % (line, what))
    if words[0] in NFT_FAMILIES:
        family, rest = words[0], words[1:]
    else:
        family, rest = "ip", words  # nft's default family
    name = _unquote(rest[0]) if rest else ""
    if family != TABLE_FAMILY or name != TABLE_NAME:
        raise FirewallError(
            "nftables script line %d: %s refers to table %s %s; only table %s %s may be touched"
            % (line, what, family, name or "?", TABLE_FAMILY, TABLE_NAME)
        )


def check_nft_script(text):
    """Refuse any statement that could touch something but table inet illumio; True if it deletes our table."""
    replaces = False
    for line, words in nft_statements(text):
        first = words[0]
        if first in ("define", "redefine", "undefine"):
            continue
        if first == "include":
            raise FirewallError(
                "nftables script line %d: include is not allowed (the script must be self-contained)" % line
            )
        verb = first if first in NFT_VERBS else "add"
        rest = words[1:] if first in NFT_VERBS else words
        if not rest:
            raise FirewallError("nftables script line %d: %r names no object" % (line, " ".join(words)))
        kind = rest[0]
        what = " ".join(words[:2]) if first in NFT_VERBS else kind
        if kind == "ruleset":
            raise FirewallError(
                "nftables script line %d: '%s' is not allowed: it touches every table" % (line, " ".join(words))
            )
        if kind in ("table", "tables"):
            _check_table_ref(line, rest[1:], what)
            if verb in ("delete", "destroy"):
                replaces = True
        elif kind == "ct":
            _check_table_ref(line, rest[2:], what)
        elif kind in NFT_TABLE_OBJECTS:
            _check_table_ref(line, rest[1:], what)
        else:
            raise FirewallError(
                "nftables script line %d: %r is not a statement this module allows" % (line, " ".join(words))
            )
    return replaces


def prepare_nft_script(text):
    """The script to apply: checked, with the replace pattern in front when it does not delete the table."""
    if not nft_statements(text):
        raise FirewallError("the nftables ruleset is empty; use state=absent to remove the table")
    if check_nft_script(text):
        return text if text.endswith("\n") else text + "\n"
    return NFT_REMOVE + text + ("" if text.endswith("\n") else "\n")


_NFT_STATEFUL = [
    (re.compile(r"\bcounter packets \d+ bytes \d+"), "counter"),
    (re.compile(r" expires [0-9hmsd]+"), ""),
    (re.compile(r"\bquota (over |until )?(\d+ \w+) used \d+ \w+"), r"quota \1\2"),
]


def normalize_nft_listing(text):
    """A listing without what traffic changes: counters, expiry times, elements of dynamic/timeout sets."""
    out = []
    block = []
    in_set = False
    for raw in text.splitlines():
        line = raw.rstrip()
        for pattern, repl in _NFT_STATEFUL:
            line = pattern.sub(repl, line)
        stripped = line.strip()
        if not in_set and re.match(r"^(set|map) \S+ \{$", stripped):
            in_set, block = True, [line]
            continue
        if in_set:
            block.append(line)
            if stripped == "}":
                out.extend(_set_block(block))
                in_set = False
            continue
        out.append(line)
    out.extend(block if in_set else [])
    return "\n".join(out).strip("\n") + "\n" if any(out) else ""


def _set_block(block):
    flags = [line.strip()[6:] for line in block if line.strip().startswith("flags ")]
    # The generation maps of flow recording (flow_gen_*) are switched by microseg.illumio.flow_collect.
    volatile = any("dynamic" in flag or "timeout" in flag for flag in flags) or block[0].strip().startswith(
        ("map flow_gen_", "set flow_gen_")
    )
    if not volatile:
        return block
    kept = []
    skipping = False
    for line in block:
        if line.strip().startswith("elements = {"):
            skipping = not line.rstrip().endswith("}")
            continue
        if skipping:
            skipping = not line.rstrip().endswith("}")
            continue
        kept.append(line)
    return kept


# --- iptables / ipset text ------------------------------------------------------------------------------------


def _split(line, where):
    try:
        return shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise FirewallError("%s: cannot parse %r: %s" % (where, line, exc)) from None


def iptables_words(line, where):
    """The words of an iptables-restore rule line, split as iptables-restore splits them (add_param_to_argv).

    Words are separated by blanks; a double quote opens or closes a quoted part, a closing quote ends the word, and
    a backslash escapes the next character inside quotes only. Single quotes are ordinary characters. A quote that
    is never closed is refused (iptables-restore would silently drop that last word).
    """
    words = []
    word = []
    started = False
    quoted = False
    escaped = False
    for char in line:
        if quoted:
            if escaped:
                word.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
                words.append("".join(word))
                word, started = [], False
            else:
                word.append(char)
            continue
        if char == '"':
            quoted, started = True, True
        elif char in " \t\n":
            if started:
                words.append("".join(word))
                word, started = [], False
        else:
            word.append(char)
            started = True
    if quoted:
        raise FirewallError("%s: cannot parse %r: a double quote is never closed" % (where, line))
    if started:
        words.append("".join(word))
    return words


def _ours(name):
    return name.startswith(PREFIX) and len(name) > len(PREFIX)


def _may_load_set_match(words):
    """Whether a rule may load the set match (-m set, --match set, -mset, --match=set, an abbreviation of --match)."""
    for index, word in enumerate(words):
        if word == "set" and index > 0 and words[index - 1].startswith("-"):
            return True
        if word.startswith("--") and word.partition("=")[2] == "set":
            return True
        if not word.startswith("--") and word.startswith("-") and word.endswith("mset"):
            return True
    return False


def iptables_references(words):
    """What a rule's words name, as iptables would parse them: [(kind, option as written, value, index)].

    kind is "target" (-j/--jump, -g/--goto: a chain or a target) or "set" (--match-set, --add-set, --del-set,
    --map-set, the set match's old --set). Long options count in full, abbreviated to any prefix that is not the
    full name of another option, and as --option=value; short ones alone (-j X), with the value attached (-jX) and
    after other short options (-vjX). Every word is looked at, whatever option came before it, so that nothing
    iptables could take as one of these options is missed (a word that is the value of another option is at worst
    refused for nothing).
    """
    long_options = [(name, "target") for name in TARGET_OPTIONS] + [(name, "set") for name in SET_OPTIONS]
    if _may_load_set_match(words):
        long_options.append((OLD_SET_OPTION, "set"))
    found = []
    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else None
        if word.startswith("--") and len(word) > 2:
            name, equals, attached = word[2:].partition("=")
            value = attached if equals else following
            exact = [kind for option, kind in long_options if option == name]
            if exact:
                kinds = exact
            elif name in OTHER_LONG_OPTIONS:
                kinds = []
            else:
                kinds = sorted(set(kind for option, kind in long_options if option.startswith(name)))
            for kind in kinds:
                found.append((kind, word, value, index))
        elif word.startswith("-") and len(word) > 1 and word[1] != "-":
            for position in range(1, len(word)):
                char = word[position]
                rest = word[position + 1 :]
                if char in "jg":
                    found.append(("target", word, rest if rest else following, index))
                    break
                if char in SHORT_REQUIRED_ARG or char in SHORT_OPTIONAL_ARG:
                    break
    return found


def _reference_error(where, kind, option, value):
    value = "(none)" if value is None else value
    if kind == "set":
        what = "set %s is not ours; rules may only use ILO-* sets" % value
    else:
        what = "target %s is neither an ILO-* chain nor a standard target (%s)" % (
            value,
            ", ".join(sorted(STANDARD_TARGETS)),
        )
    if option not in ("-j", "-g") and option[2:] not in TARGET_OPTIONS + SET_OPTIONS:
        what += " (written %s: iptables takes any unambiguous prefix of a long option, --option=value and -jX " % option
        what += "as that option)"
    return FirewallError("%s: %s" % (where, what))


def check_iptables_rules(text, label):
    """Body lines (between *filter and COMMIT) of checked iptables-restore text; refuses anything not ours."""
    body = []
    table = None
    committed = False
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = "%s line %d" % (label, number)
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            if line != "*filter":
                raise FirewallError("%s: only the filter table may be used, not %s" % (where, line[1:]))
            if table is not None or committed:
                raise FirewallError("%s: only one *filter block is allowed" % where)
            table = "filter"
            continue
        if table is None:
            raise FirewallError("%s: %r is outside a *filter block" % (where, line))
        if line == "COMMIT":
            table, committed = None, True
            continue
        if line.startswith(":"):
            name = line[1:].split()[0] if line[1:].split() else ""
            if not _ours(name):
                raise FirewallError(
                    "%s: chain %s is not ours; only ILO-* chains may be declared (built-in policies stay as they are)"
                    % (where, name or "?")
                )
            body.append(line)
            continue
        words = iptables_words(line, where)
        if words and re.match(r"^\[\d+:\d+\]$", words[0]):
            words = words[1:]
        if len(words) < 2 or words[0] not in ("-A", "--append", "-I", "--insert"):
            raise FirewallError("%s: only -A/-I rules and :ILO-* chain lines are allowed, not %r" % (where, line))
        chain = words[1]
        references = iptables_references(words[2:])
        for kind, option, value, _index in references:
            if kind == "set" and not (value and _ours(value)):
                raise _reference_error(where, kind, option, value)
        targets = [(option, value, index + 2) for kind, option, value, index in references if kind == "target"]
        if _ours(chain):
            if words[0] in ("-I", "--insert"):
                raise FirewallError("%s: use -A for rules in our chains (-I is for the jumps only)" % where)
            for option, value, _index in targets:
                if not (value and (_ours(value) or value in STANDARD_TARGETS)):
                    raise _reference_error(where, "target", option, value)
        elif chain in BUILTIN_CHAINS:
            last = len(words) - 2
            if not (
                len(targets) == 1
                and targets[0][2] == last
                and words[last] in ("-j", "--jump", "-g", "--goto")
                and _ours(words[-1])
            ):
                raise FirewallError(
                    "%s: a rule in %s may only jump to an ILO-* chain (as its last option)" % (where, chain)
                )
        else:
            raise FirewallError(
                "%s: chain %s is not ours; only ILO-* chains and jumps from %s"
                % (where, chain, "/".join(BUILTIN_CHAINS))
            )
        body.append(line)
    if table is not None:
        raise FirewallError("%s: the *filter block has no COMMIT" % label)
    return body


def check_ipset_rules(text, live_types=None):
    """Names of the sets that exist after the text ran on a host without our sets; refuses foreign names.

    live_types: {name: type} of our sets on the host, for lines that add to a set the text does not create.
    """
    exists = set()
    types = dict(live_types or {})
    aliases = {
        "create": "create",
        "-N": "create",
        "n": "create",
        "add": "add",
        "-A": "add",
        "a": "add",
        "del": "del",
        "-D": "del",
        "d": "del",
        "swap": "swap",
        "-W": "swap",
        "w": "swap",
        "destroy": "destroy",
        "-X": "destroy",
        "x": "destroy",
        "flush": "flush",
        "-F": "flush",
        "f": "flush",
        "rename": "rename",
        "-E": "rename",
        "e": "rename",
    }
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = "ipset_rules line %d" % number
        if not line or line.startswith("#"):
            continue
        words = [word for word in _split(line, where) if word != "-exist"]
        command = aliases.get(words[0])
        if command is None:
            raise FirewallError("%s: %r is not an ipset command this module allows" % (where, words[0]))
        names = words[1:3] if command in ("swap", "rename") else words[1:2]
        if len(names) < (2 if command in ("swap", "rename") else 1):
            raise FirewallError("%s: %s needs a set name here (it would act on every set)" % (where, command))
        for name in names:
            if not _ours(name):
                raise FirewallError("%s: set %s is not ours; only ILO-* sets may be used" % (where, name))
        name = names[0]
        if command == "create":
            exists.add(name)
            types[name] = words[2] if len(words) > 2 else ""
        elif command in ("add", "del") and types.get(name) in LIST_SET_TYPES and len(words) > 2:
            if not _ours(words[2]):
                raise FirewallError("%s: list:set %s may only hold ILO-* sets" % (where, name))
        elif command == "destroy":
            exists.discard(name)
            types.pop(name, None)
        elif command == "swap":
            exists.update(names)
            types[names[0]], types[names[1]] = types.get(names[1]), types.get(names[0])
        elif command == "rename":
            exists.discard(names[0])
            exists.add(names[1])
            types[names[1]] = types.pop(names[0], None)
    return sorted(exists)


class XtablesState(object):
    """Our part of one family's `iptables-save -t filter` output."""

    def __init__(self, chains=None, rules=None, jumps=None, foreign_refs=None):
        self.chains = chains or []  # names, save order
        self.rules = rules or []  # "-A ILO-X ..." lines
        self.jumps = jumps or []  # (chain, "-A INPUT ... -j ILO-X", leading) leading: before any foreign rule
        self.foreign_refs = foreign_refs or []  # foreign rules that jump to our chains

    def __bool__(self):
        return bool(self.chains or self.jumps)

    __nonzero__ = __bool__

    @classmethod
    def parse(cls, text):
        state = cls()
        leading = dict((chain, True) for chain in BUILTIN_CHAINS)
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith(":"):
                name = line[1:].split()[0]
                if _ours(name):
                    state.chains.append(name)
                continue
            if not line.startswith("-A "):
                continue
            parts = line.split()
            chain = parts[1]
            jumps_to_ours = len(parts) >= 4 and parts[-2] in ("-j", "-g") and _ours(parts[-1])
            if _ours(chain):
                state.rules.append(line)
            elif chain in BUILTIN_CHAINS and jumps_to_ours:
                state.jumps.append((chain, line, leading[chain]))
            else:
                if chain in leading:
                    leading[chain] = False
                if jumps_to_ours:
                    state.foreign_refs.append(line)
        return state

    def removal_lines(self):
        """iptables-restore --noflush lines (without *filter/COMMIT) that remove our chains and jumps."""
        lines = ["-D " + line[3:] for _chain, line, _lead in self.jumps]
        lines += [":%s - [0:0]" % name for name in self.chains]
        lines += ["-X %s" % name for name in self.chains]
        return lines

    def snapshot(self):
        """iptables-restore --noflush text that recreates our part (after removal_lines ran); '' if empty."""
        if not self:
            return ""
        lines = ["*filter"] + [":%s - [0:0]" % name for name in self.chains] + self.rules
        position = dict((chain, 0) for chain in BUILTIN_CHAINS)
        for chain, line, lead in self.jumps:
            if lead:
                position[chain] += 1
                lines.append("-I %s %d %s" % (chain, position[chain], line.split(None, 2)[2]))
            else:
                lines.append(line)
        return "\n".join([*lines, "COMMIT"]) + "\n"

    def canonical(self):
        lines = [":%s" % name for name in self.chains] + self.rules + sorted(line for _c, line, _l in self.jumps)
        return "\n".join(lines) + "\n" if lines else ""


def removal_text(state):
    """Complete removal transaction for one family, or '' when there is nothing of ours."""
    if not state:
        return ""
    return "\n".join(["*filter", *state.removal_lines(), "COMMIT"]) + "\n"


def replace_text(state, body):
    """One transaction: remove our current chains and jumps, then add the wanted ones."""
    lines = ["*filter"] + (state.removal_lines() if state else []) + list(body) + ["COMMIT"]
    return "\n".join(lines) + "\n"


class IpsetState(object):
    """Our sets in `ipset save` output."""

    def __init__(self):
        self.creates = {}  # name -> create line
        self.members = {}  # name -> [add lines]
        self.order = []

    def __bool__(self):
        return bool(self.order)

    __nonzero__ = __bool__

    @classmethod
    def parse(cls, text):
        state = cls()
        for raw in text.splitlines():
            words = raw.split()
            if len(words) < 2 or not _ours(words[1]):
                continue
            if words[0] == "create":
                state.creates[words[1]] = raw.strip()
                state.members.setdefault(words[1], [])
                state.order.append(words[1])
            elif words[0] == "add":
                state.members.setdefault(words[1], []).append(raw.strip())
        return state

    def snapshot(self):
        lines = []
        for name in self.order:
            lines.append(self.creates[name])
            lines.extend(self.members.get(name, []))
        return "\n".join(lines) + "\n" if lines else ""

    def types(self):
        """{name: type} of our sets."""
        return dict((name, [*self.creates[name].split(), "", "", ""][2]) for name in self.order)

    def canonical(self):
        lines = []
        for name in sorted(self.order):
            create = re.sub(r" (hashsize|initval|bucketsize) \S+", "", self.creates[name])
            lines.append(create)
            if " timeout " in create + " ":
                lines.append("# members of %s left out: they expire" % name)
                continue
            members = [re.sub(r" (packets|bytes) \d+", "", line) for line in self.members.get(name, [])]
            lines.extend(sorted(members))
        return "\n".join(lines) + "\n" if lines else ""


# --- canonical listings ---------------------------------------------------------------------------------------

SECTIONS = (
    ("nft", "nftables: table inet illumio"),
    ("v4", "iptables (IPv4 filter): ILO-* chains and jumps"),
    ("v6", "ip6tables (IPv6 filter): ILO-* chains and jumps"),
    ("ipset", "ipset: ILO-* sets"),
)


def render_canonical(parts):
    """One text of our objects from {section: text}; empty sections are left out."""
    out = []
    for key, title in SECTIONS:
        text = parts.get(key) or ""
        if text:
            out.append("# %s\n%s" % (title, text))
    return "\n".join(out)


def split_dumps(text):
    """Sections of the trial's output, separated by '==NAME==' lines."""
    parts = {}
    current = None
    for line in text.splitlines():
        match = re.match(r"^==(\w+)==$", line)
        if match:
            current = match.group(1)
            parts[current] = []
        elif current:
            parts[current].append(line)
    return dict((key, "\n".join(lines) + "\n") for key, lines in parts.items())


def sha256(*texts):
    digest = hashlib.sha256()
    for text in texts:
        digest.update((text or "").encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


# --- restore.sh and the unit ----------------------------------------------------------------------------------

RESTORE_SH = r"""#!/bin/sh
%(mark)s - do not edit; `state: absent` removes it.
# Makes the firewall objects microseg.illumio owns - nftables table inet illumio; iptables/ip6tables chains
# named ILO-* and the jumps to them from INPUT/OUTPUT/FORWARD; ipsets named ILO-* - what a snapshot directory
# holds, and touches nothing else.
#   restore.sh restore DIR          restore the snapshot in DIR
#   restore.sh boot                 restore the last-known-good ruleset (the boot unit runs this)
#   restore.sh rollback TOKEN SECS  after SECS seconds restore the saved state, unless apply TOKEN was confirmed
#   restore.sh removal              iptables-save output in, the iptables-restore input that removes ours out
PATH=/usr/sbin:/usr/bin:/sbin:/bin
umask 077
STATE_DIR=%(state_dir)s
NFT=%(nft)s
IPTABLES_SAVE=%(iptables_save)s
IPTABLES_RESTORE=%(iptables_restore)s
IP6TABLES_SAVE=%(ip6tables_save)s
IP6TABLES_RESTORE=%(ip6tables_restore)s
IPSET=%(ipset)s

log() {
    printf '%%s %%s\n' "$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ)" "$*" >> "$STATE_DIR/restore.log"
}

# iptables-save -t filter output -> iptables-restore --noflush input that removes our chains and jumps.
removal() {
    awk '
        /^:ILO-./ { n++; chain[n] = substr($1, 2) }
        /^-A (INPUT|OUTPUT|FORWARD)( .*)? -[jg] ILO-[^ ]+$/ { m++; jump[m] = "-D " substr($0, 4) }
        END {
            if (n + m == 0) exit
            print "*filter"
            for (i = 1; i <= m; i++) print jump[i]
            for (i = 1; i <= n; i++) print ":" chain[i] " - [0:0]"
            for (i = 1; i <= n; i++) print "-X " chain[i]
            print "COMMIT"
        }'
}

remove_xtables() {
    [ -n "$1" ] && [ -n "$2" ] || return 0
    saved=$("$1" -t filter) || return 1
    text=$(printf '%%s\n' "$saved" | removal)
    [ -z "$text" ] || printf '%%s\n' "$text" | "$2" --noflush
}

restore_dir() {
    dir=$1
    rc=0
    if [ ! -f "$dir/backends" ]; then echo "no snapshot in $dir" >&2; return 1; fi
    read -r backends < "$dir/backends" || backends=""
    case " $backends " in *" nftables "*)
        if [ -n "$NFT" ] && [ -f "$dir/ruleset.nft" ]; then "$NFT" -f "$dir/ruleset.nft" || rc=1; fi ;;
    esac
    case " $backends " in *" iptables "*)
        remove_xtables "$IPTABLES_SAVE" "$IPTABLES_RESTORE" || rc=1
        remove_xtables "$IP6TABLES_SAVE" "$IP6TABLES_RESTORE" || rc=1
        if [ -n "$IPSET" ]; then
            for set in $("$IPSET" list -n | grep '^ILO-.'); do "$IPSET" destroy "$set" || rc=1; done
            if [ -s "$dir/ipset.rules" ]; then "$IPSET" restore < "$dir/ipset.rules" || rc=1; fi
        fi
        if [ -s "$dir/iptables.rules" ]; then "$IPTABLES_RESTORE" --noflush < "$dir/iptables.rules" || rc=1; fi
        if [ -s "$dir/ip6tables.rules" ]; then "$IP6TABLES_RESTORE" --noflush < "$dir/ip6tables.rules" || rc=1; fi ;;
    esac
    return $rc
}

case "$1" in
removal)
    removal ;;
restore)
    restore_dir "$2" ;;
boot)
    [ -f "$STATE_DIR/lkg/backends" ] || exit 0
    if restore_dir "$STATE_DIR/lkg"; then log "boot: restored the last-known-good ruleset"; exit 0; fi
    log "boot: restoring the last-known-good ruleset FAILED"; exit 1 ;;
rollback)
    case "$2" in ''|*[!0-9a-f]*) echo "bad token" >&2; exit 2 ;; esac
    # Sleep in the background so that a TERM from the confirm task ends the sleep too.
    trap 'kill $! 2>/dev/null; exit 0' TERM
    sleep "${3:-0}" &
    wait $!
    trap - TERM
    # Whoever renames the marker first wins: the confirm task (armed -> confirmed) or this timer.
    mv "$STATE_DIR/armed.$2" "$STATE_DIR/fired.$2" 2>/dev/null || exit 0
    if restore_dir "$STATE_DIR/backup"; then
        log "rollback $2: not confirmed in time; restored the saved state"
    else
        log "rollback $2: not confirmed in time; restoring the saved state FAILED"; exit 1
    fi ;;
*)
    echo "usage: $0 restore DIR | boot | rollback TOKEN SECONDS | removal" >&2; exit 2 ;;
esac
"""

UNIT = """%(mark)s; `state: absent` removes it.
[Unit]
Description=microseg.illumio: restore the last-known-good firewall ruleset
Documentation=https://github.com/microseg/illumio
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=local-fs.target nftables.service netfilter-persistent.service firewalld.service
After=iptables.service ip6tables.service ipset.service
Conflicts=shutdown.target
ConditionPathExists=%(state_dir)s/lkg/backends

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=%(command)s

[Install]
WantedBy=%(wanted_by)s
"""


def restore_script(state_dir, tools):
    values = dict(
        (key, shlex.quote(tools.get(key) or ""))
        for key in ("nft", "iptables_save", "iptables_restore", "ip6tables_save", "ip6tables_restore", "ipset")
    )
    values.update(mark=OWN_MARK, state_dir=shlex.quote(state_dir))
    return RESTORE_SH % values


def boot_command(state_dir):
    return "/bin/sh %s/restore.sh boot" % state_dir


def unit_text(state_dir):
    return UNIT % dict(mark=OWN_MARK, state_dir=state_dir, command=boot_command(state_dir), wanted_by=UNIT_WANTED_BY)


# --- files ----------------------------------------------------------------------------------------------------


def read_file(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def write_file(path, text, mode=0o600):
    """Write atomically (temporary file in the same directory, then rename)."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def replace_symlink(target, path):
    tmp = "%s.tmp-%s" % (path, secrets.token_hex(4))
    os.symlink(target, tmp)
    os.rename(tmp, path)


class StateDir(object):
    """The module's files on the host: snapshots (snap-*) pointed to by lkg/backup/candidate links, markers."""

    def __init__(self, path):
        self.path = path.rstrip("/") or "/"

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def exists(self):
        return os.path.isdir(self.path)

    def ensure(self):
        if not os.path.isdir(self.path):
            os.makedirs(self.path, 0o700)
        os.chmod(self.path, 0o700)

    def read_json(self, name):
        text = read_file(self.join(name))
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError:
            return {}

    def write_json(self, name, data):
        write_file(self.join(name), json.dumps(data, indent=2, sort_keys=True) + "\n")

    def write_snapshot(self, files):
        """A new snap-* directory from {file name: text}; returns its name."""
        name = "snap-%s" % secrets.token_hex(8)
        os.mkdir(self.join(name), 0o700)
        for file_name in SNAPSHOT_FILES:
            write_file(self.join(name, file_name), files.get(file_name) or "")
        return name

    def link(self, which, snapshot):
        replace_symlink(snapshot, self.join(which))

    def unlink(self, which):
        if os.path.islink(self.join(which)):
            os.unlink(self.join(which))

    def target(self, which):
        path = self.join(which)
        return os.readlink(path) if os.path.islink(path) else None

    def snapshot_files(self, which):
        target = self.target(which)
        if not target:
            return None
        return dict((name, read_file(self.join(target, name)) or "") for name in SNAPSHOT_FILES)

    def collect_garbage(self):
        used = set(filter(None, (self.target(which) for which in ("lkg", "backup", "candidate"))))
        for entry in os.listdir(self.path):
            if entry.startswith("snap-") and entry not in used:
                shutil.rmtree(self.join(entry), ignore_errors=True)

    def markers(self, kind):
        if not self.exists():
            return []
        return sorted(entry[len(kind) + 1 :] for entry in os.listdir(self.path) if entry.startswith(kind + "."))


# --- the host -------------------------------------------------------------------------------------------------


class Host(object):
    """The host's firewall tools, run through the module."""

    def __init__(self, module):
        self.module = module
        find = module.get_bin_path
        self.tools = {
            "nft": find("nft"),
            "iptables_save": find("iptables-save"),
            "iptables_restore": find("iptables-restore"),
            "ip6tables_save": find("ip6tables-save"),
            "ip6tables_restore": find("ip6tables-restore"),
            "ipset": find("ipset"),
            "unshare": find("unshare"),
            "sh": find("sh") or "/bin/sh",
        }
        self.no_scratch = None

    def has(self, tool):
        return bool(self.tools.get(tool))

    def run(self, args, data=None, what=None, check=True):
        rc, out, err = self.module.run_command(args, data=data, binary_data=True, environ_update={"LC_ALL": "C"})
        if check and rc != 0:
            raise FirewallError("%s failed (exit %d): %s" % (what or " ".join(args), rc, (err or out).strip()))
        return rc, out, err

    # nftables
    def nft_listing(self):
        if not self.has("nft"):
            return ""
        rc, out, err = self.run([self.tools["nft"], "-s", "list", "table", TABLE_FAMILY, TABLE_NAME], check=False)
        if rc != 0:
            if "No such file or directory" in err:
                return ""
            raise FirewallError("nft list table %s %s failed: %s" % (TABLE_FAMILY, TABLE_NAME, err.strip()))
        return out

    def nft_check(self, path):
        self.run([self.tools["nft"], "-c", "-f", path], what="nft -c (the ruleset does not load)")

    def nft_apply(self, path):
        self.run([self.tools["nft"], "-f", path], what="nft -f")

    # iptables
    def xtables(self, family):
        save = self.tools["iptables_save" if family == "v4" else "ip6tables_save"]
        if not save:
            return XtablesState()
        return XtablesState.parse(self.run([save, "-t", "filter"])[1])

    def ipsets(self):
        if not self.has("ipset"):
            return IpsetState()
        rc, out, _err = self.run([self.tools["ipset"], "save"], check=False)
        return IpsetState.parse(out) if rc == 0 else IpsetState()

    def xtables_restore(self, family, text):
        tool = self.tools["iptables_restore" if family == "v4" else "ip6tables_restore"]
        args = [tool, "--noflush"]
        self.run(args, data=text, what=" ".join([os.path.basename(tool), *args[1:]]))

    def ipset_restore(self, text):
        self.run([self.tools["ipset"], "restore"], data=text, what="ipset restore")

    def ipset_destroy(self, name):
        self.run([self.tools["ipset"], "destroy", name])

    # the trial in a throw-away network namespace
    def trial(self, backend, files):
        """Canonical listing of the wanted ruleset loaded into a new network namespace.

        Returns (listing, None), or (None, error) when it does not load there, or (None, None) when no scratch
        namespace can be made (self.no_scratch says why).
        """
        if not self.has("unshare"):
            self.no_scratch = "unshare (util-linux) is not installed"
            return None, None
        q = shlex.quote
        t = self.tools
        if backend == "nftables":
            script = "%s -f %s && echo ==nft== && { %s -s list table %s %s 2>/dev/null || true; }" % (
                q(t["nft"]),
                q(files["ruleset.nft"]),
                q(t["nft"]),
                TABLE_FAMILY,
                TABLE_NAME,
            )
        else:
            steps = ["set -e"]
            if os.path.getsize(files["ipset.rules"]):
                steps.append("%s restore < %s" % (q(t["ipset"]), q(files["ipset.rules"])))
            for family, save, restore in (
                ("v4", "iptables_save", "iptables_restore"),
                ("v6", "ip6tables_save", "ip6tables_restore"),
            ):
                name = "iptables.rules" if family == "v4" else "ip6tables.rules"
                if os.path.getsize(files[name]):
                    steps.append("%s --noflush < %s" % (q(t[restore]), q(files[name])))
                    steps.append("echo ==%s==; %s -t filter" % (family, q(t[save])))
            if os.path.getsize(files["ipset.rules"]):
                steps.append("echo ==ipset==; %s save" % q(t["ipset"]))
            script = "\n".join(steps)
        rc, out, err = self.run([t["unshare"], "--net", "--", t["sh"], "-c", script], check=False)
        if rc != 0:
            if "unshare failed" in err:
                self.no_scratch = "unshare --net failed: %s" % err.strip()
                return None, None
            return None, (err or out).strip()
        parts = split_dumps(out)
        if backend == "nftables":
            return render_canonical({"nft": normalize_nft_listing(parts.get("nft", ""))}), None
        return render_canonical(
            {
                "v4": XtablesState.parse(parts.get("v4", "")).canonical(),
                "v6": XtablesState.parse(parts.get("v6", "")).canonical(),
                "ipset": IpsetState.parse(parts.get("ipset", "")).canonical(),
            }
        ), None


class Current(object):
    """Our objects as they are on the host."""

    def __init__(self, host, nft=True, xtables=True):
        self.nft = host.nft_listing() if nft else ""
        self.v4 = host.xtables("v4") if xtables else XtablesState()
        self.v6 = host.xtables("v6") if xtables else XtablesState()
        self.ipset = host.ipsets() if xtables else IpsetState()

    def canonical(self):
        return render_canonical(
            {
                "nft": normalize_nft_listing(self.nft),
                "v4": self.v4.canonical(),
                "v6": self.v6.canonical(),
                "ipset": self.ipset.canonical(),
            }
        )

    def backends(self):
        found = []
        if self.nft:
            found.append("nftables")
        if self.v4 or self.v6 or self.ipset:
            found.append("iptables")
        return found

    def check_foreign_refs(self):
        for family in (self.v4, self.v6):
            if family.foreign_refs:
                raise FirewallError(
                    "a chain that is not ours jumps to one of ours, so our chains cannot be replaced: %s"
                    % family.foreign_refs[0]
                )

    def snapshot(self, backends, nft_text=None):
        """Snapshot files that restore exactly this state of the given backends."""
        files = {"backends": " ".join(backends) + "\n"}
        if "nftables" in backends:
            files["ruleset.nft"] = nft_text if nft_text is not None else NFT_REMOVE + self.nft
        if "iptables" in backends:
            files["iptables.rules"] = self.v4.snapshot()
            files["ip6tables.rules"] = self.v6.snapshot()
            files["ipset.rules"] = self.ipset.snapshot()
        return files


# --- the rollback timer ---------------------------------------------------------------------------------------


def systemd_running():
    return os.path.isdir("/run/systemd/system")


def process_has_token(pid, token):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return token.encode() in handle.read()
    except OSError:
        return False


class Rollback(object):
    def __init__(self, module, host, state):
        self.module = module
        self.host = host
        self.state = state

    def arm(self, token, timeout):
        marker = "armed." + token
        record = {
            "token": token,
            "timeout": timeout,
            "armed_at": int(time.time()),
            "deadline": int(time.time()) + timeout,
        }
        self.state.write_json(marker, record)
        script = self.state.join("restore.sh")
        systemd_run = self.module.get_bin_path("systemd-run")
        if systemd_running() and systemd_run:
            unit = "microseg-illumio-firewall-rollback-%s" % token
            rc, _out, _err = self.module.run_command(
                [
                    systemd_run,
                    "--unit",
                    unit,
                    "--description",
                    "microseg.illumio: roll back firewall apply %s unless confirmed" % token,
                    "--on-active",
                    "%ds" % timeout,
                    "--timer-property=AccuracySec=1s",
                    "/bin/sh",
                    script,
                    "rollback",
                    token,
                    "0",
                ]
            )
            if rc == 0:
                record.update(method="systemd", unit=unit)
                self.state.write_json(marker, record)
                return record
        # A detached process: in the background of a shell that exits at once, in a session of its own (setsid,
        # else nohup), stdio on /dev/null so nothing waits for it; the host's init adopts it.
        detach = self.module.get_bin_path("setsid") or self.module.get_bin_path("nohup") or "nohup"
        sh = self.host.tools["sh"]
        command = [sh, script, "rollback", token, str(timeout)]
        launch = '"$@" </dev/null >/dev/null 2>&1 & echo $!'
        rc, out, err = self.module.run_command([sh, "-c", launch, "sh", detach, *command], cwd="/")
        if rc != 0 or not out.strip().isdigit():
            raise FirewallError("cannot start the rollback timer: %s" % (err or out).strip())
        record.update(method="process", pid=int(out.strip()))
        self.state.write_json(marker, record)
        return record

    def cancel(self, token, renamed_to):
        """Claim the armed marker (so the timer does nothing) and stop the timer; False if it already fired."""
        armed = self.state.join("armed." + token)
        record = self.state.read_json("armed." + token)
        try:
            os.rename(armed, self.state.join("%s.%s" % (renamed_to, token)))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        if record.get("method") == "systemd" and record.get("unit"):
            systemctl = self.module.get_bin_path("systemctl")
            if systemctl:
                self.module.run_command([systemctl, "stop", record["unit"] + ".timer"])
        elif record.get("pid") and process_has_token(int(record["pid"]), token):
            pid = int(record["pid"])
            try:
                os.killpg(pid, signal.SIGTERM)  # the timer's shell and its sleep (setsid made it a group leader)
            except OSError:
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
        os.unlink(self.state.join("%s.%s" % (renamed_to, token)))
        return True

    def cancel_all(self, renamed_to):
        return [token for token in self.state.markers("armed") if self.cancel(token, renamed_to)]


# --- the module -----------------------------------------------------------------------------------------------


class FirewallApply(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.host = Host(module)
        self.state = StateDir(self.params["state_dir"])
        self.result = {
            "changed": False,
            "backend": None,
            "rollback": {"armed": False},
            "confirmed": False,
            "rolled_back": False,
            "state_dir": self.state.path,
            "boot_restore": {
                "installed": False,
                "unit": os.path.join(UNIT_DIR, UNIT_NAME),
                "command": boot_command(self.state.path),
            },
        }

    # inputs
    def text(self, option, src_option):
        if self.params[src_option]:
            text = read_file(self.params[src_option])
            if text is None:
                raise FirewallError("%s %s does not exist on the host" % (src_option, self.params[src_option]))
            return text
        return self.params[option]

    def inputs(self):
        return {
            "nft": self.text("ruleset", "src"),
            "v4": self.text("iptables_rules", "iptables_src"),
            "v6": self.text("ip6tables_rules", "ip6tables_src"),
            "ipset": self.text("ipset_rules", "ipset_src"),
        }

    def resolve_backend(self, inputs):
        backend = self.params["backend"]
        has_nft = inputs["nft"] is not None
        has_xt = any(inputs[key] is not None for key in ("v4", "v6", "ipset"))
        if backend == "auto":
            if has_nft and has_xt:
                backend = "nftables" if self.host.has("nft") else "iptables"
            elif has_nft:
                backend = "nftables"
            elif has_xt:
                backend = "iptables"
            else:
                raise FirewallError(
                    "state=present needs ruleset/src (nftables) or iptables_rules/ip6tables_rules (iptables)"
                )
        if backend == "nftables":
            if not has_nft:
                raise FirewallError("backend nftables needs ruleset or src")
            if not self.host.has("nft"):
                raise FirewallError("backend nftables: nft is not installed on the host")
        else:
            if not (inputs["v4"] or inputs["v6"]):
                raise FirewallError(
                    "backend iptables needs iptables_rules/iptables_src or ip6tables_rules/ip6tables_src"
                )
            for key, tools in (
                ("v4", ("iptables_save", "iptables_restore")),
                ("v6", ("ip6tables_save", "ip6tables_restore")),
                ("ipset", ("ipset",)),
            ):
                missing = [tool.replace("_", "-") for tool in tools if not self.host.has(tool)]
                if inputs[key] and missing:
                    raise FirewallError("backend iptables: %s not installed on the host" % ", ".join(missing))
        return backend

    # present
    def wanted(self, backend, inputs):
        """(snapshot-style files of the wanted state, iptables bodies per family, ipset names that will exist)."""
        if backend == "nftables":
            return {"ruleset.nft": prepare_nft_script(inputs["nft"])}, None, None
        wanted = {
            "iptables.rules": inputs["v4"] or "",
            "ip6tables.rules": inputs["v6"] or "",
            "ipset.rules": inputs["ipset"] or "",
        }
        bodies = {
            "v4": check_iptables_rules(wanted["iptables.rules"], "iptables_rules"),
            "v6": check_iptables_rules(wanted["ip6tables.rules"], "ip6tables_rules"),
        }
        return wanted, bodies, check_ipset_rules(wanted["ipset.rules"])

    def present(self):
        inputs = self.inputs()
        backend = self.resolve_backend(inputs)
        self.result["backend"] = backend
        wanted, bodies, wanted_sets = self.wanted(backend, inputs)
        record = self.state.read_json("state.json") if self.state.exists() else {}
        check_xtables = backend == "iptables" or "iptables" in record.get("backends", [])
        current = Current(self.host, nft=True, xtables=check_xtables)
        current.check_foreign_refs()
        if backend == "iptables":
            check_ipset_rules(wanted["ipset.rules"], current.ipset.types())  # adds to our list:sets already there
        before = current.canonical()
        input_hash = sha256(backend, *[wanted.get(name) for name in SNAPSHOT_FILES])
        after, unchanged = self.compare(backend, wanted, before, record, input_hash)
        if self.module._diff:
            self.result["diff"] = {
                "before": before,
                "after": after,
                "before_header": "live firewall (ours only)",
                "after_header": "wanted",
            }
        script = restore_script(self.state.path, self.host.tools)
        pending = self.state.markers("armed")
        unit_changes = self.boot_unit_changes()  # first: it refuses a unit file that is not ours
        files_changed = unit_changes or read_file(self.state.join("restore.sh")) != script
        lkg_changed = unchanged and not pending and self.lkg_differs(backend, wanted, current)
        # This ruleset is live already from an earlier apply whose rollback is still pending (its confirmation never
        # came): with rollback_timeout the caller has to confirm it, so report it as armed; without, this task
        # confirms it, as applying without rollback would.
        confirm_pending = bool(unchanged and pending and not self.params["rollback_timeout"])
        if unchanged and pending and self.params["rollback_timeout"]:
            armed = self.state.read_json("armed." + pending[-1])
            self.result["rollback"] = {
                "armed": True,
                "token": pending[-1],
                "timeout": armed.get("timeout"),
                "method": armed.get("method"),
            }
        self.result["changed"] = not unchanged or files_changed or lkg_changed or confirm_pending
        if self.check_mode or not self.result["changed"]:
            return
        self.state.ensure()
        write_file(self.state.join("restore.sh"), script, 0o700)
        if not unchanged:
            self.apply(backend, wanted, bodies, wanted_sets, current, pending, input_hash)
        elif confirm_pending:
            self.confirm_pending(pending)
        elif lkg_changed:
            self.state.link("lkg", self.state.write_snapshot(self.lkg_files(backend, wanted, current)))
        self.boot_unit()
        self.state.collect_garbage()

    def compare(self, backend, wanted, before, record, input_hash):
        """(listing after the apply, whether the live firewall already is that), checking the ruleset on the way."""
        tmp = tempfile.mkdtemp(prefix="firewall_apply-", dir=self.module.tmpdir)
        try:
            files = {}
            for name in ("ruleset.nft", "iptables.rules", "ip6tables.rules", "ipset.rules"):
                files[name] = os.path.join(tmp, name)
                write_file(files[name], wanted.get(name) or "")
            if backend == "nftables":
                self.host.nft_check(files["ruleset.nft"])
            after, error = self.host.trial(backend, files)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if error and backend == "iptables":
            raise FirewallError("the ruleset does not load (trial in a scratch network namespace): %s" % error)
        if after is not None:
            return after, after == before
        if backend == "iptables":
            # A check on the host itself cannot stand in for the trial: `iptables-restore --test` parses the rules
            # against the live host (the set match and SET target look every set name up among the host's own
            # ipsets), so a rule naming someone else's set passes it, and applying is the first real load.
            raise FirewallError(
                "the iptables ruleset cannot be checked before it is applied: that needs a scratch network namespace "
                "(%s). Nothing was changed; a check against the live host would accept rules that use the host's "
                "other ipsets. Install util-linux's unshare, or run where `unshare --net` is allowed."
                % (getattr(self.host, "no_scratch", None) or "none could be made")
            )
        # No trial for an nft script (no scratch namespace, or it needs this host's interfaces and passed nft -c,
        # which checks it against the live host without changing anything; nft scripts can only name objects of
        # our own table): compare the input with the last applied one and the live listing with the one taken
        # right after that apply.
        unchanged = record.get("input_sha256") == input_hash and record.get("canonical") == before
        if unchanged:
            return before, True
        return "# the wanted ruleset as given (no listing: it was not loaded in a scratch namespace)\n" + "".join(
            wanted.get(name) or "" for name in SNAPSHOT_FILES
        ), False

    def lkg_files(self, backend, wanted, live):
        if backend == "nftables":
            return {"backends": "nftables\n", "ruleset.nft": wanted["ruleset.nft"]}
        return live.snapshot(["iptables"])

    def lkg_differs(self, backend, wanted, current):
        files = self.lkg_files(backend, wanted, current)
        return self.state.snapshot_files("lkg") != dict((name, files.get(name) or "") for name in SNAPSHOT_FILES)

    def save_backup(self, current, involved, pending, rollback):
        """Save the state to roll back to, unless an unconfirmed apply is pending: then keep the one saved before it."""
        cancelled = rollback.cancel_all("superseded") if pending else []
        backup = self.state.snapshot_files("backup") if cancelled else None
        if backup is None or set(involved) - set(backup["backends"].split()):
            self.state.link("backup", self.state.write_snapshot(current.snapshot(involved)))

    def apply(self, backend, wanted, bodies, wanted_sets, current, pending, input_hash):
        token = secrets.token_hex(8)
        rollback = Rollback(self.module, self.host, self.state)
        involved = sorted(set([backend, *current.backends()]))
        self.save_backup(current, involved, pending, rollback)
        try:
            if backend == "nftables":
                self.host.nft_apply(self.write_tmp(wanted["ruleset.nft"]))
                self.remove_xtables(current)
            else:
                self.apply_xtables(wanted, current, bodies, wanted_sets)
                if current.nft:
                    self.host.nft_apply(self.write_tmp(NFT_REMOVE))
        except FirewallError as exc:
            restore = [self.host.tools["sh"], self.state.join("restore.sh"), "restore", self.state.join("backup")]
            rc, out, err = self.module.run_command(restore)
            if rc == 0:
                raise FirewallError("%s; the previous state was restored" % exc) from exc
            raise FirewallError(
                "%s; restoring the previous state failed too: %s" % (exc, (err or out).strip())
            ) from exc
        live = Current(self.host, nft=True, xtables="iptables" in involved)
        for old in self.state.markers("fired"):
            os.unlink(self.state.join("fired." + old))
        self.state.write_json(
            "state.json",
            {
                "version": 1,
                "backend": backend,
                "backends": [backend],
                "token": token,
                "input_sha256": input_hash,
                "canonical": live.canonical(),
                "applied_at": int(time.time()),
                "rollback_timeout": self.params["rollback_timeout"],
            },
        )
        snapshot = self.state.write_snapshot(self.lkg_files(backend, wanted, live))
        if self.params["rollback_timeout"] > 0:
            self.state.link("candidate", snapshot)
            record = rollback.arm(token, self.params["rollback_timeout"])
            self.result["rollback"] = {
                "armed": True,
                "token": token,
                "timeout": record["timeout"],
                "method": record["method"],
            }
        else:
            self.state.link("lkg", snapshot)
            self.state.unlink("candidate")
            self.state.unlink("backup")

    def write_tmp(self, text):
        path = os.path.join(self.module.tmpdir, "firewall_apply-%s.nft" % secrets.token_hex(4))
        write_file(path, text)
        return path

    def apply_xtables(self, wanted, current, bodies, wanted_sets):
        if wanted["ipset.rules"].strip():
            self.host.ipset_restore(wanted["ipset.rules"])
        for family in ("v4", "v6"):
            state = getattr(current, family)
            if bodies[family]:
                self.host.xtables_restore(family, replace_text(state, bodies[family]))
            elif state:
                self.host.xtables_restore(family, removal_text(state))
        for name in self.host.ipsets().order:
            if name not in wanted_sets:
                self.host.ipset_destroy(name)

    def remove_xtables(self, current):
        for family in ("v4", "v6"):
            text = removal_text(getattr(current, family))
            if text:
                self.host.xtables_restore(family, text)
        for name in current.ipset.order:
            self.host.ipset_destroy(name)

    # boot unit
    def unit_paths(self):
        unit = os.path.join(UNIT_DIR, UNIT_NAME)
        return unit, os.path.join(UNIT_DIR, UNIT_WANTED_BY + ".wants", UNIT_NAME)

    def boot_unit_changes(self):
        """Whether the boot unit needs writing or removing; refuses (before any change) a unit that is not ours."""
        unit, _wants = self.unit_paths()
        if self.params["boot_restore"] and os.path.isdir(UNIT_DIR):
            existing = read_file(unit)
            if existing is not None and not existing.startswith(OWN_MARK):
                raise FirewallError("%s exists and was not written by this module; leaving it alone" % unit)
            return existing != unit_text(self.state.path) or not self.wants_link_is_ours()
        return self.own_unit_exists()

    def wants_link_is_ours(self):
        unit, wants = self.unit_paths()
        return os.path.islink(wants) and os.readlink(wants) == unit

    def own_unit_exists(self):
        unit, _wants = self.unit_paths()
        text = read_file(unit)
        return bool(text and text.startswith(OWN_MARK)) or self.wants_link_is_ours()

    def boot_unit(self):
        unit, wants = self.unit_paths()
        if not self.params["boot_restore"]:
            self.remove_boot_unit()
            return
        if not os.path.isdir(UNIT_DIR):
            self.module.warn(
                "no systemd on this host (%s is missing): no boot-time restore installed; run `%s` at boot"
                % (UNIT_DIR, boot_command(self.state.path))
            )
            return
        text = unit_text(self.state.path)
        reload_needed = read_file(unit) != text
        if reload_needed:
            write_file(unit, text, 0o644)
        if not self.wants_link_is_ours():
            if not os.path.isdir(os.path.dirname(wants)):
                os.makedirs(os.path.dirname(wants), 0o755)
            if os.path.islink(wants):
                os.unlink(wants)
            os.symlink(unit, wants)
            reload_needed = True
        if reload_needed:
            self.daemon_reload()

    def daemon_reload(self):
        systemctl = self.module.get_bin_path("systemctl")
        if systemd_running() and systemctl:
            self.module.run_command([systemctl, "daemon-reload"])

    def remove_boot_unit(self):
        unit, wants = self.unit_paths()
        removed = False
        if self.wants_link_is_ours():
            os.unlink(wants)
            removed = True
        text = read_file(unit)
        if text is not None and text.startswith(OWN_MARK):
            os.unlink(unit)
            removed = True
        if removed:
            self.daemon_reload()

    # absent
    def absent(self):
        record = self.state.read_json("state.json") if self.state.exists() else {}
        check_xtables = not record or "iptables" in record.get("backends", [])
        current = Current(self.host, nft=True, xtables=check_xtables)
        before = current.canonical()
        if self.module._diff:
            self.result["diff"] = {
                "before": before,
                "after": "",
                "before_header": "live firewall (ours only)",
                "after_header": "wanted",
            }
        current.check_foreign_refs()
        own_files = self.state.exists() and any(
            os.path.lexists(self.state.join(name))
            for name in ("restore.sh", "state.json", "lkg", "backup", "candidate")
        )
        self.result["changed"] = bool(before) or own_files or self.own_unit_exists()
        if self.check_mode or not self.result["changed"]:
            return
        if self.state.exists():
            Rollback(self.module, self.host, self.state).cancel_all("cancelled")
        if current.nft:
            self.host.nft_apply(self.write_tmp(NFT_REMOVE))
        self.remove_xtables(current)
        self.remove_boot_unit()
        self.remove_state_dir()

    def remove_state_dir(self):
        if not self.state.exists():
            return
        for entry in os.listdir(self.state.path):
            known = entry in ("restore.sh", "state.json", "restore.log", "lkg", "backup", "candidate") or re.match(
                r"^(snap-[0-9a-f]+|(armed|fired|confirmed|superseded|cancelled)\.[0-9a-f]+|\.tmp-.*|(lkg|backup|candidate)\.tmp-.*)$",
                entry,
            )
            if not known:
                continue
            path = self.state.join(entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        try:
            os.rmdir(self.state.path)
            parent = os.path.dirname(self.state.path)
            if os.path.basename(parent).startswith("microseg-illumio"):
                os.rmdir(parent)
        except OSError:
            pass  # something else lives there: leave it

    # confirm
    def confirm(self):
        armed = self.state.markers("armed")
        if armed and self.check_mode:
            self.result["changed"] = True
            return
        if self.confirm_pending(armed):
            self.result["changed"] = True
            self.state.collect_garbage()
            return
        record = self.state.read_json("state.json") if self.state.exists() else {}
        token = record.get("token")
        if token and os.path.exists(self.state.join("fired." + token)):
            self.result["rolled_back"] = True
            log = read_file(self.state.join("restore.log")) or ""
            lines = [line for line in log.splitlines() if token in line]
            raise RolledBack(
                "the host rolled back apply %s: it was not confirmed within %s seconds (the new ruleset locked the "
                "controller out, or the confirmation came too late), so the previous firewall state is active again%s"
                % (token, record.get("rollback_timeout", "?"), (" [%s]" % lines[-1]) if lines else "")
            )

    def confirm_pending(self, armed):
        """Stop the timers of the pending applies and keep the candidate as last-known-good; False if all fired."""
        rollback = Rollback(self.module, self.host, self.state)
        if not [token for token in armed if rollback.cancel(token, "confirmed")]:
            return False
        self.result["confirmed"] = True
        candidate = self.state.target("candidate")
        if candidate:
            self.state.link("lkg", candidate)
            self.state.unlink("candidate")
        self.state.unlink("backup")
        return True

    def run(self):
        if self.params["confirm"]:
            self.confirm()
        elif self.params["state"] == "absent":
            self.absent()
        else:
            self.present()
        unit = read_file(os.path.join(UNIT_DIR, UNIT_NAME))
        self.result["boot_restore"]["installed"] = bool(unit and unit.startswith(OWN_MARK))
        return self.result


CONTENT_OPTIONS = (
    "ruleset",
    "src",
    "iptables_rules",
    "iptables_src",
    "ip6tables_rules",
    "ip6tables_src",
    "ipset_rules",
    "ipset_src",
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            backend=dict(type="str", choices=["auto", "nftables", "iptables"], default="auto"),
            ruleset=dict(type="str"),
            src=dict(type="path"),
            iptables_rules=dict(type="str"),
            iptables_src=dict(type="path"),
            ip6tables_rules=dict(type="str"),
            ip6tables_src=dict(type="path"),
            ipset_rules=dict(type="str"),
            ipset_src=dict(type="path"),
            rollback_timeout=dict(type="int", default=0),
            confirm=dict(type="bool", default=False),
            state_dir=dict(type="path", default="/var/lib/microseg-illumio/firewall"),
            boot_restore=dict(type="bool", default=True),
        ),
        mutually_exclusive=[
            ("ruleset", "src"),
            ("iptables_rules", "iptables_src"),
            ("ip6tables_rules", "ip6tables_src"),
            ("ipset_rules", "ipset_src"),
        ],
        supports_check_mode=True,
    )
    params = module.params
    given = [name for name in CONTENT_OPTIONS if params[name] is not None]
    if params["rollback_timeout"] < 0:
        module.fail_json(msg="rollback_timeout must be 0 (no rollback) or a number of seconds")
    if params["confirm"] and (given or params["rollback_timeout"] or params["state"] == "absent"):
        module.fail_json(
            msg="confirm=true confirms the last apply and takes no ruleset, rollback_timeout or state=absent"
        )
    if params["state"] == "absent" and (given or params["rollback_timeout"]):
        module.fail_json(msg="state=absent takes no ruleset options and no rollback_timeout")
    if not STATE_DIR_PATTERN.match(params["state_dir"]) or params["state_dir"].rstrip("/") in ("", "/"):
        module.fail_json(
            msg="state_dir must be an absolute path of letters, digits and ._/+:@=,- (got %r)" % params["state_dir"]
        )
    try:
        result = FirewallApply(module).run()
    except FirewallError as exc:
        module.fail_json(msg=str(exc), rolled_back=isinstance(exc, RolledBack))
    except OSError as exc:
        module.fail_json(msg="file or process error: %s" % exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
