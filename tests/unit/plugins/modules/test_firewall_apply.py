"""firewall_apply without root: what it refuses, how it parses, the state it keeps, the timer's hand-over.

The firewall tools are faked where they would change the machine; restore.sh and the rollback timer run for real
(with stand-in tools), since their shell is part of what is tested.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from ansible_collections.microseg.illumio.plugins.modules import firewall_apply as fa
from module_runner import run_module

# --- nftables scripts -----------------------------------------------------------------------------------------

RENDERED_NFT = """#!/usr/sbin/nft -f
# microseg.illumio policy for web1 (/orgs/1/workloads/1), enforcement mode full
define mgmt = { 192.0.2.10 }
table inet illumio {}
delete table inet illumio
table inet illumio {
\tset mgmt_allow_v4 { type ipv4_addr; flags interval; elements = $mgmt; }
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiifname "lo" accept
\t\tct state established,related accept
\t\tip saddr @mgmt_allow_v4 accept comment "management; flush ruleset is only a comment here"
\t\ttcp dport { 80, 443 } accept comment "/orgs/1/sec_policy/active/rule_sets/1 # not a comment"
\t}
\tchain output { type filter hook output priority filter; policy accept; }
}
"""


def test_statements_are_found_at_top_level_only():
    statements = fa.nft_statements(
        RENDERED_NFT + "add rule inet illumio input \\\n  tcp dport 22 accept; flush chain inet illumio output\n"
    )
    heads = [(line, words[:4]) for line, words in statements]
    assert heads == [
        (3, ["define", "mgmt", "="]),
        (4, ["table", "inet", "illumio"]),
        (5, ["delete", "table", "inet", "illumio"]),
        (6, ["table", "inet", "illumio"]),
        (17, ["add", "rule", "inet", "illumio"]),
        (18, ["flush", "chain", "inet", "illumio"]),
    ]


def test_a_rendered_replacement_script_is_accepted_as_it_is():
    assert fa.check_nft_script(RENDERED_NFT) is True
    assert fa.prepare_nft_script(RENDERED_NFT) == RENDERED_NFT


def test_a_bare_table_gets_the_replace_pattern_in_front():
    bare = "table inet illumio {\n\tchain input { type filter hook input priority 0; policy drop; }\n}"
    assert fa.check_nft_script(bare) is False
    assert fa.prepare_nft_script(bare) == "table inet illumio {}\ndelete table inet illumio\n" + bare + "\n"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("flush ruleset", "'flush ruleset' is not allowed"),
        ("table inet illumio {}\nflush ruleset\n", "line 2: 'flush ruleset'"),
        ("list ruleset", "not a statement this module allows"),
        ("table ip filter { chain input { type filter hook input priority 0; } }", "table ip filter"),
        ("add rule ip filter INPUT drop", "add rule refers to table ip filter"),
        ("table illumio { }", "table ip illumio"),  # no family is family ip
        ("delete table inet keepme", "table inet keepme"),
        ("add chain inet other c", "table inet other"),
        ("add element ip6 x s { ::1 }", "table ip6 x"),
        ("flush table netdev illumio", "table netdev illumio"),
        ("table inet $name { }", "table inet $name"),
        ('add ct helper inet keepme ftp { type "ftp" protocol tcp; }', "table inet keepme"),
        ("reset counters table inet illumio", "only table inet illumio may be touched"),
        ('include "/etc/nftables.d/*.nft"', "include is not allowed"),
        ("monitor", "not a statement this module allows"),
        ("table inet illumio { chain c { } } }", "unbalanced"),
        ("table inet illumio { chain c {", "never closed"),
        ("   \n# only a comment\n", "empty"),
    ],
)
def test_scripts_that_could_touch_anything_else_are_refused(script, message):
    with pytest.raises(fa.FirewallError, match=None) as raised:
        fa.prepare_nft_script(script)
    assert message in str(raised.value)


def test_listing_is_normalised_for_what_traffic_changes():
    listing = """table inet illumio {
\tset mgmt4 {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 10.0.0.1, 10.1.0.0/16 }
\t}

\tset flows {
\t\ttype ipv4_addr . inet_service
\t\tsize 1000
\t\tflags dynamic,timeout
\t\ttimeout 1h
\t\telements = { 1.2.3.4 . 80 expires 59m58s counter packets 1 bytes 60,
\t\t\t     5.6.7.8 . 22 expires 1m counter packets 3 bytes 180 }
\t}

\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tip saddr @mgmt4 tcp dport 22 counter packets 12 bytes 720 accept
\t\tquota until 10 mbytes used 2 mbytes
\t\tupdate @flows { ip saddr . tcp dport counter }
\t}
}
"""
    normal = fa.normalize_nft_listing(listing)
    assert "elements = { 10.0.0.1, 10.1.0.0/16 }" in normal  # static set: kept
    assert "1.2.3.4" not in normal and "5.6.7.8" not in normal  # dynamic set: left out
    assert "flags dynamic,timeout" in normal
    assert "tcp dport 22 counter accept" in normal
    assert "quota until 10 mbytes\n" in normal
    assert "packets" not in normal and "expires" not in normal
    assert fa.normalize_nft_listing("") == ""


# --- iptables and ipset text ----------------------------------------------------------------------------------

RENDERED_IPSET = """# microseg.illumio policy for web1: ipset restore input
create ILO-mgmt_allow_v4 hash:net family inet hashsize 1024 maxelem 1048576 -exist
create ILO-mgmt_allow_v4-T hash:net family inet hashsize 1024 maxelem 1048576 -exist
flush ILO-mgmt_allow_v4-T
add ILO-mgmt_allow_v4-T 192.0.2.10
swap ILO-mgmt_allow_v4-T ILO-mgmt_allow_v4
destroy ILO-mgmt_allow_v4-T
create ILO-p4_0123456789ab hash:net family inet hashsize 1024 maxelem 1048576 -exist
create ILO-p4_0123456789ab-T hash:net family inet hashsize 1024 maxelem 1048576 -exist
flush ILO-p4_0123456789ab-T
add ILO-p4_0123456789ab-T 10.0.0.0/24
swap ILO-p4_0123456789ab-T ILO-p4_0123456789ab
destroy ILO-p4_0123456789ab-T
"""
RENDERED_IPTABLES = """# microseg.illumio policy for web1: iptables-restore --noflush input
*filter
:ILO-INPUT - [0:0]
:ILO-OUTPUT - [0:0]
-A ILO-INPUT -m set --match-set ILO-mgmt_allow_v4 src -m comment --comment "management" -j RETURN
-A ILO-INPUT -i lo -j RETURN
-A ILO-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
-A ILO-INPUT -m set --match-set ILO-p4_0123456789ab src -p tcp --dport 80 -m comment --comment "/orgs/1/r/1" -j RETURN
-A ILO-INPUT -m set --match-set ILO-p4_0123456789ab src -m comment --comment "would drop: x"
-A ILO-INPUT -j LOG --log-prefix "ILO-DROP "
-A ILO-INPUT -m comment --comment "default" -j DROP
-A ILO-OUTPUT -j REJECT --reject-with icmp-port-unreachable
# BEGIN ILO-HOOK (leave out when the jumps exist already: iptables -C INPUT -j ILO-INPUT)
-I INPUT 1 -j ILO-INPUT
-I OUTPUT 1 -j ILO-OUTPUT
# END ILO-HOOK
COMMIT
"""


def test_rendered_iptables_text_is_accepted_and_its_body_kept():
    body = fa.check_iptables_rules(RENDERED_IPTABLES, "iptables_rules")
    assert body[:2] == [":ILO-INPUT - [0:0]", ":ILO-OUTPUT - [0:0]"]
    assert body[-2:] == ["-I INPUT 1 -j ILO-INPUT", "-I OUTPUT 1 -j ILO-OUTPUT"]
    assert not [line for line in body if line.startswith("#")]
    assert fa.check_iptables_rules("", "ip6tables_rules") == []
    assert fa.check_iptables_rules("*filter\n[0:0] -A ILO-X -j ACCEPT\nCOMMIT\n", "x") == ["[0:0] -A ILO-X -j ACCEPT"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("*nat\n:ILO-X - [0:0]\nCOMMIT\n", "only the filter table"),
        ("*filter\n:INPUT DROP [0:0]\nCOMMIT\n", "chain INPUT is not ours"),
        ("*filter\n:KEEPME - [0:0]\nCOMMIT\n", "chain KEEPME is not ours"),
        ("*filter\n-P INPUT DROP\nCOMMIT\n", "only -A/-I rules"),
        ("*filter\n-F\nCOMMIT\n", "only -A/-I rules"),
        ("*filter\n-X KEEPME\nCOMMIT\n", "only -A/-I rules"),
        ("*filter\n-D INPUT -j KEEPME\nCOMMIT\n", "only -A/-I rules"),
        ("*filter\n-A KEEPME -j DROP\nCOMMIT\n", "chain KEEPME is not ours"),
        ("*filter\n-A ILO-X -j KEEPME\nCOMMIT\n", "target KEEPME"),
        ("*filter\n-A ILO-X -g KEEPME\nCOMMIT\n", "target KEEPME"),
        ("*filter\n-A ILO-X -m set --match-set keepset src -j DROP\nCOMMIT\n", "set keepset is not ours"),
        ("*filter\n-A ILO-X -j SET --add-set keepset src\nCOMMIT\n", "set keepset is not ours"),
        ("*filter\n-A INPUT -j ACCEPT\nCOMMIT\n", "may only jump to an ILO-* chain"),
        ("*filter\n-A INPUT -j ILO-X -m comment --comment x\nCOMMIT\n", "may only jump to an ILO-* chain"),
        ("*filter\n-I ILO-X -j DROP\nCOMMIT\n", "use -A for rules in our chains"),
        ("*filter\n:ILO-X - [0:0]\n", "no COMMIT"),
        (":ILO-X - [0:0]\n", "outside a *filter block"),
        ("*filter\nCOMMIT\n*filter\nCOMMIT\n", "only one *filter block"),
        ('*filter\n-A ILO-X -m comment --comment "unclosed -j DROP\nCOMMIT\n', "cannot parse"),
    ],
)
def test_iptables_text_outside_our_chains_is_refused(text, message):
    with pytest.raises(fa.FirewallError) as raised:
        fa.check_iptables_rules(text, "iptables_rules")
    assert message in str(raised.value)


def test_ipset_text_names_the_sets_that_remain():
    assert fa.check_ipset_rules(RENDERED_IPSET) == ["ILO-mgmt_allow_v4", "ILO-p4_0123456789ab"]
    assert fa.check_ipset_rules("create ILO-a hash:ip\nrename ILO-a ILO-b\n-N ILO-c hash:ip\n-X ILO-c\n") == ["ILO-b"]
    assert fa.check_ipset_rules("create ILO-l list:set\nadd ILO-l ILO-a\n") == ["ILO-l"]
    assert fa.check_ipset_rules("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("create keepset hash:ip", "set keepset is not ours"),
        ("add keepset 192.0.2.1", "set keepset is not ours"),
        ("swap ILO-a keepset", "set keepset is not ours"),
        ("destroy", "needs a set name"),
        ("flush", "needs a set name"),
        ("-X", "needs a set name"),
        ("create ILO-l list:set\nadd ILO-l keepset", "may only hold ILO-* sets"),
        ("list", "not an ipset command"),
        ("ILO-", "not an ipset command"),
    ],
)
def test_ipset_text_outside_our_sets_is_refused(text, message):
    with pytest.raises(fa.FirewallError) as raised:
        fa.check_ipset_rules(text)
    assert message in str(raised.value)


# iptables parses a rule's options with getopt_long: any unambiguous prefix of a long option is that option, and so
# are --option=value, -jX and -vjX. Every option that names a set or a chain must be recognised in all of them.
# ("--match" is an option of its own, which getopt_long takes as itself, not as a prefix of --match-set.)
def abbreviations(option):
    return [option[:n] for n in range(3, len(option)) if option[:n] != "--match"]


GUARDED_SET_RULES = {
    "--match-set": "-A ILO-X -m set {} keepset src -j DROP",
    "--set": "-A ILO-X -m set {} keepset src -j DROP",  # the set match's old name for --match-set
    "--add-set": "-A ILO-X -j SET {} keepset src",
    "--del-set": "-A ILO-X -j SET {} keepset src",
    "--map-set": "-A ILO-X -j SET {} keepset src --map-mark",
}
GUARDED_TARGET_RULES = {
    "--jump": "-A ILO-X -p tcp {} KEEPME",
    "--goto": "-A ILO-X -p tcp {} KEEPME",
}
ABBREVIATED = [
    (template.format(written), "set keepset is not ours")
    for option, template in GUARDED_SET_RULES.items()
    for written in [*abbreviations(option), option]
] + [
    (template.format(written), "target KEEPME is neither")
    for option, template in GUARDED_TARGET_RULES.items()
    for written in [*abbreviations(option), option]
]
OTHER_SPELLINGS = [
    ("-A ILO-X -m set --match-set=keepset src -j DROP", "set keepset is not ours"),
    ("-A ILO-X -m set --match-se=keepset src -j DROP", "set keepset is not ours"),
    ("-A ILO-X -j SET --add-set=keepset src", "set keepset is not ours"),
    ("-A ILO-X -mset --se keepset src -j DROP", "set keepset is not ours"),
    ("-A ILO-X --match=set --set keepset src -j DROP", "set keepset is not ours"),
    ('-A ILO-X -m set "--match-set" keepset src -j DROP', "set keepset is not ours"),
    ("-A ILO-X --jump=KEEPME", "target KEEPME is neither"),
    ("-A ILO-X -jKEEPME", "target KEEPME is neither"),
    ("-A ILO-X -gKEEPME", "target KEEPME is neither"),
    ("-A ILO-X -vjKEEPME", "target KEEPME is neither"),
    ("-A ILO-X -nv -g KEEPME", "target KEEPME is neither"),
    ("-A ILO-X -j ACCEPT --go KEEPME", "target KEEPME is neither"),
    # iptables-restore quotes with double quotes only: to it, these single quotes are part of the words, and the
    # rule matches keepset (to a shell-like split, the comment swallowed the option).
    (
        "-A ILO-X -m set -m comment --comment 'a --match-set keepset src -j LOG --log-prefix '",
        "set keepset is not ours",
    ),
    ("-A INPUT -j ILO-X --go KEEPME", "may only jump to an ILO-* chain"),
    ("-A INPUT --jum ILO-X", "may only jump to an ILO-* chain"),
]


@pytest.mark.parametrize(("rule", "message"), ABBREVIATED + OTHER_SPELLINGS)
def test_options_that_name_a_set_or_a_chain_are_found_however_they_are_written(rule, message):
    with pytest.raises(fa.FirewallError) as raised:
        fa.check_iptables_rules(f"*filter\n:ILO-X - [0:0]\n{rule}\nCOMMIT\n", "iptables_rules")
    assert message in str(raised.value)


def test_an_abbreviated_option_is_named_in_the_refusal():
    with pytest.raises(fa.FirewallError) as raised:
        fa.check_iptables_rules("*filter\n-A ILO-X -j SET --add-se keepset src\nCOMMIT\n", "iptables_rules")
    assert str(raised.value) == (
        "iptables_rules line 2: set keepset is not ours; rules may only use ILO-* sets (written --add-se: iptables "
        "takes any unambiguous prefix of a long option, --option=value and -jX as that option)"
    )


@pytest.mark.parametrize(
    "rule",
    [
        "-A ILO-X -m set --match-se ILO-a src --jum ILO-Y",
        "-A ILO-X -m set --match-set=ILO-a src -vgILO-Y",
        "-A ILO-X -p tcp --dport 22 --match set --match-set ILO-a src -j RETURN",
        "-A ILO-X -j SET --add-set ILO-a src --exist --timeout 60",
        "-A ILO-X -p tcp -m recent --set --name ssh -j RETURN",  # recent's --set (no set match loaded)
        '-A ILO-X -m comment --comment "it\'s -- ours" -j LOG --log-prefix "ILO drop: "',
        "-A INPUT -i eth0 -j ILO-X",
    ],
)
def test_our_sets_and_chains_pass_in_any_spelling(rule):
    assert fa.check_iptables_rules(f"*filter\n{rule}\nCOMMIT\n", "x") == [rule]


def test_rule_words_are_split_as_iptables_restore_splits_them():
    assert fa.iptables_words('-A X -m comment --comment "a b" -j Y', "x") == [
        "-A", "X", "-m", "comment", "--comment", "a b", "-j", "Y"
    ]  # fmt: skip
    assert fa.iptables_words("--comment 'a b'", "x") == ["--comment", "'a", "b'"]
    assert fa.iptables_words('--comment "a \\" b" ""', "x") == ["--comment", 'a " b', ""]
    assert fa.iptables_words('--log-prefix "x"y', "x") == ["--log-prefix", "x", "y"]


@pytest.mark.parametrize(
    ("text", "live", "message"),
    [
        ("create ILO-l setlist\nadd ILO-l keepset", None, "may only hold ILO-* sets"),
        ("create ILO-l list:set\nrename ILO-l ILO-m\nadd ILO-m keepset", None, "may only hold ILO-* sets"),
        ("add ILO-l keepset", {"ILO-l": "list:set"}, "may only hold ILO-* sets"),
    ],
)
def test_list_sets_hold_only_our_sets_whatever_their_name_or_origin(text, live, message):
    with pytest.raises(fa.FirewallError) as raised:
        fa.check_ipset_rules(text, live)
    assert message in str(raised.value)


SAVED = """# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [120:9000]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [77:5000]
:ILO-INPUT - [0:0]
:ILO-OUTPUT - [0:0]
:KEEPME - [0:0]
-A INPUT -j ILO-INPUT
-A INPUT -j KEEPME
-A INPUT -i eth1 -m comment --comment "late -j ILO-INPUT" -j ILO-INPUT
-A OUTPUT -j ILO-OUTPUT
-A ILO-INPUT -i lo -j RETURN
-A ILO-INPUT -m comment --comment "two words" -j DROP
-A ILO-OUTPUT -j RETURN
-A KEEPME -p tcp -m tcp --dport 9998 -j RETURN
COMMIT
"""


def test_our_part_of_iptables_save_output():
    state = fa.XtablesState.parse(SAVED)
    assert state.chains == ["ILO-INPUT", "ILO-OUTPUT"]
    assert [line for _chain, line, _lead in state.jumps] == [
        "-A INPUT -j ILO-INPUT",
        '-A INPUT -i eth1 -m comment --comment "late -j ILO-INPUT" -j ILO-INPUT',
        "-A OUTPUT -j ILO-OUTPUT",
    ]
    assert state.foreign_refs == []
    assert fa.removal_text(state) == (
        "*filter\n-D INPUT -j ILO-INPUT\n"
        '-D INPUT -i eth1 -m comment --comment "late -j ILO-INPUT" -j ILO-INPUT\n'
        "-D OUTPUT -j ILO-OUTPUT\n"
        ":ILO-INPUT - [0:0]\n:ILO-OUTPUT - [0:0]\n-X ILO-INPUT\n-X ILO-OUTPUT\nCOMMIT\n"
    )
    # Jumps that came before any foreign rule go back to the top, the others at the end.
    assert state.snapshot() == (
        "*filter\n:ILO-INPUT - [0:0]\n:ILO-OUTPUT - [0:0]\n"
        '-A ILO-INPUT -i lo -j RETURN\n-A ILO-INPUT -m comment --comment "two words" -j DROP\n-A ILO-OUTPUT -j RETURN\n'
        "-I INPUT 1 -j ILO-INPUT\n"
        '-A INPUT -i eth1 -m comment --comment "late -j ILO-INPUT" -j ILO-INPUT\n'
        "-I OUTPUT 1 -j ILO-OUTPUT\nCOMMIT\n"
    )
    assert "KEEPME" not in state.canonical() + state.snapshot() + fa.removal_text(state)
    assert fa.replace_text(state, ["-A ILO-NEW -j DROP"]).endswith("-X ILO-OUTPUT\n-A ILO-NEW -j DROP\nCOMMIT\n")


def test_nothing_of_ours_means_no_transaction_at_all():
    state = fa.XtablesState.parse("*filter\n:INPUT ACCEPT [0:0]\n:KEEPME - [0:0]\n-A INPUT -j KEEPME\nCOMMIT\n")
    assert not state
    assert fa.removal_text(state) == ""  # iptables-restore is not even run (it could create a table)
    assert state.snapshot() == "" and state.canonical() == ""
    assert fa.replace_text(state, [":ILO-X - [0:0]"]) == "*filter\n:ILO-X - [0:0]\nCOMMIT\n"


def test_a_foreign_chain_that_jumps_to_ours_is_noticed():
    state = fa.XtablesState.parse(":ILO-X - [0:0]\n:KEEPME - [0:0]\n-A KEEPME -j ILO-X\n")
    assert state.foreign_refs == ["-A KEEPME -j ILO-X"]


def test_ipset_listing_canonical_and_snapshot():
    saved = (
        "create keepset hash:ip family inet hashsize 1024 maxelem 65536\nadd keepset 192.0.2.1\n"
        "create ILO-b hash:net family inet hashsize 2048 maxelem 65536 bucketsize 12 initval 0x1234abcd\n"
        "add ILO-b 10.0.0.2\nadd ILO-b 10.0.0.1\n"
        "create ILO-a hash:ip family inet hashsize 1024 maxelem 65536 timeout 300 counters\n"
        "add ILO-a 10.9.9.9 timeout 100 packets 3 bytes 180\n"
    )
    state = fa.IpsetState.parse(saved)
    assert state.order == ["ILO-b", "ILO-a"]
    assert state.canonical() == (
        "create ILO-a hash:ip family inet maxelem 65536 timeout 300 counters\n"
        "# members of ILO-a left out: they expire\n"
        "create ILO-b hash:net family inet maxelem 65536\nadd ILO-b 10.0.0.1\nadd ILO-b 10.0.0.2\n"
    )
    assert "keepset" not in state.snapshot()
    assert state.snapshot().splitlines()[0].endswith("initval 0x1234abcd")  # restored as saved


# --- restore.sh and the unit ----------------------------------------------------------------------------------


def write_restore_script(state_dir: Path, **tools) -> Path:
    script = state_dir / "restore.sh"
    script.write_text(fa.restore_script(str(state_dir), tools))
    script.chmod(0o700)
    return script


def test_restore_script_is_valid_shell_and_names_the_tools(tmp_path):
    script = write_restore_script(tmp_path, nft="/usr/sbin/nft", ipset="/sbin/ip set")
    subprocess.run(["sh", "-n", str(script)], check=True)
    text = script.read_text()
    assert "NFT=/usr/sbin/nft\n" in text
    assert "IPSET='/sbin/ip set'\n" in text
    assert "IPTABLES_SAVE=''\n" in text
    assert f"STATE_DIR={tmp_path}\n" in text
    usage = subprocess.run(["sh", str(script), "nonsense"], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "usage" in usage.stderr


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_restore_script_passes_shellcheck(tmp_path):
    script = write_restore_script(tmp_path, nft="/usr/sbin/nft", ipset="/usr/sbin/ipset")
    done = subprocess.run(["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    "saved",
    [
        SAVED,
        "*filter\n:INPUT ACCEPT [0:0]\n:KEEPME - [0:0]\n-A INPUT -j KEEPME\nCOMMIT\n",
        "*filter\n:ILO-ONLY - [0:0]\n-A ILO-ONLY -j DROP\nCOMMIT\n",
        "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -o br0 -g ILO-FWD\n-A FORWARD -j ILO-FWD2 -m comment --comment x\n",
    ],
)
def test_the_shell_removal_is_the_same_as_the_python_one(tmp_path, saved):
    script = write_restore_script(tmp_path)
    done = subprocess.run(["sh", str(script), "removal"], input=saved, capture_output=True, text=True, check=True)
    assert done.stdout == fa.removal_text(fa.XtablesState.parse(saved))


def test_unit_restores_the_last_known_good_ruleset_early_at_boot():
    unit = fa.unit_text("/var/lib/microseg-illumio/firewall")
    assert unit.startswith(fa.OWN_MARK)
    assert "ExecStart=/bin/sh /var/lib/microseg-illumio/firewall/restore.sh boot\n" in unit
    assert "ConditionPathExists=/var/lib/microseg-illumio/firewall/lkg/backends\n" in unit
    assert "DefaultDependencies=no\n" in unit and "Before=network-pre.target" in unit
    assert "After=local-fs.target nftables.service netfilter-persistent.service firewalld.service\n" in unit
    assert "Type=oneshot\n" in unit and "WantedBy=multi-user.target\n" in unit


# --- the rollback timer and confirm ---------------------------------------------------------------------------


class ShellModule:
    """Just enough of AnsibleModule for Rollback: commands really run, no systemd-run."""

    def get_bin_path(self, name):
        return None if name == "systemd-run" else shutil.which(name)

    def run_command(self, args, cwd=None, **_kwargs):
        done = subprocess.run(args, capture_output=True, text=True, check=False, cwd=cwd)
        return done.returncode, done.stdout, done.stderr


class ShellHost:
    def __init__(self):
        self.tools = {"sh": "/bin/sh"}


def state_with_backup(tmp_path) -> fa.StateDir:
    """A state dir whose backup restores nothing real: the tools are stand-ins that succeed."""
    state = fa.StateDir(str(tmp_path / "state"))
    state.ensure()
    write_restore_script(Path(state.path), nft="/bin/true")
    state.link("backup", state.write_snapshot({"backends": "nftables\n", "ruleset.nft": "table inet illumio {}\n"}))
    state.link("candidate", state.write_snapshot({"backends": "nftables\n", "ruleset.nft": "# new\n"}))
    return state


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def sleeping(pid):
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return not children.exists() or bool(children.read_text().split())


def process_gone(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_an_unconfirmed_apply_is_rolled_back_by_the_timer(tmp_path):
    state = state_with_backup(tmp_path)
    rollback = fa.Rollback(ShellModule(), ShellHost(), state)
    record = rollback.arm("00aa11bb", 1)
    assert record["method"] == "process" and record["timeout"] == 1
    armed = json.loads(Path(state.join("armed.00aa11bb")).read_text())
    assert armed["pid"] == record["pid"]
    wait_for(lambda: os.path.exists(state.join("fired.00aa11bb")))
    wait_for(lambda: "rollback 00aa11bb" in (fa.read_file(state.join("restore.log")) or ""))
    assert "not confirmed in time; restored the saved state" in fa.read_file(state.join("restore.log"))
    assert not os.path.exists(state.join("armed.00aa11bb"))
    assert rollback.cancel("00aa11bb", "confirmed") is False  # too late


class NoSetsidModule(ShellModule):
    def get_bin_path(self, name):
        return None if name == "setsid" else super().get_bin_path(name)


@pytest.mark.parametrize("module", [ShellModule(), NoSetsidModule()], ids=["setsid", "nohup"])
def test_confirming_claims_the_marker_and_stops_the_timer(tmp_path, module):
    state = state_with_backup(tmp_path)
    rollback = fa.Rollback(module, ShellHost(), state)
    pid = rollback.arm("00cc11dd", 30)["pid"]
    # The timer is found by its command line, which /proc shows only once the exec chain (nohup, sh) is done.
    wait_for(lambda: fa.process_has_token(pid, "00cc11dd"))
    wait_for(lambda: sleeping(pid))  # a real confirm comes seconds later, when the timer sleeps already
    assert rollback.cancel("00cc11dd", "confirmed") is True
    wait_for(lambda: process_gone(pid))
    assert state.markers("armed") == [] and state.markers("confirmed") == []
    assert not os.path.exists(state.join("restore.log"))  # nothing was restored


def test_the_timer_does_nothing_once_the_marker_is_gone(tmp_path):
    state = state_with_backup(tmp_path)
    os.rename(state.join("backup"), state.join("backup-kept"))  # a restore would fail loudly now
    done = subprocess.run(["sh", state.join("restore.sh"), "rollback", "00ee", "0"], capture_output=True, check=False)
    assert done.returncode == 0
    assert not os.path.exists(state.join("restore.log"))
    bad = subprocess.run(["sh", state.join("restore.sh"), "rollback", "../x", "0"], capture_output=True, check=False)
    assert bad.returncode == 2


def confirm(tmp_path, check_mode=False):
    return run_module(fa.main, {"confirm": True, "state_dir": str(tmp_path / "state")}, check_mode=check_mode)


def test_confirm_module_promotes_the_candidate_to_last_known_good(tmp_path):
    state = state_with_backup(tmp_path)
    candidate = state.target("candidate")
    pid = fa.Rollback(ShellModule(), ShellHost(), state).arm("00ff", 30)["pid"]
    assert confirm(tmp_path, check_mode=True)["changed"] is True
    assert state.markers("armed") == ["00ff"]
    result = confirm(tmp_path)
    assert result["changed"] is True and result["confirmed"] is True and result["rolled_back"] is False
    assert state.target("lkg") == candidate
    assert state.target("candidate") is None and state.target("backup") is None
    assert sorted(p.name for p in Path(state.path).glob("snap-*")) == [candidate]
    wait_for(lambda: process_gone(pid))
    again = confirm(tmp_path)
    assert again["changed"] is False and again["confirmed"] is False


def test_confirm_module_fails_when_the_host_rolled_back(tmp_path):
    state = state_with_backup(tmp_path)
    state.write_json("state.json", {"token": "0a0b", "rollback_timeout": 10})
    Path(state.join("fired.0a0b")).write_text("{}")
    Path(state.join("restore.log")).write_text("2026-01-01T00:00:00Z rollback 0a0b: not confirmed in time; ...\n")
    result = confirm(tmp_path)
    assert result["failed"] is True and result["rolled_back"] is True
    assert "the host rolled back apply 0a0b" in result["msg"]
    assert "not confirmed within 10 seconds" in result["msg"]
    assert "rollback 0a0b: not confirmed in time" in result["msg"]


# --- option checks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"confirm": True, "ruleset": "table inet illumio {}"}, "confirm=true confirms the last apply"),
        ({"confirm": True, "rollback_timeout": 5}, "confirm=true confirms the last apply"),
        ({"state": "absent", "ruleset": "x"}, "state=absent takes no ruleset"),
        ({"state": "absent", "rollback_timeout": 5}, "state=absent takes no ruleset"),
        ({"ruleset": "x", "rollback_timeout": -1}, "rollback_timeout must be 0"),
        ({"ruleset": "x", "state_dir": "relative/dir"}, "state_dir must be an absolute path"),
        ({"ruleset": "x", "state_dir": "/var/lib/with space"}, "state_dir must be an absolute path"),
        ({"ruleset": "x", "state_dir": "/"}, "state_dir must be an absolute path"),
        ({"ruleset": "x", "src": "/tmp/x"}, "mutually exclusive"),
        ({}, "needs ruleset/src"),
        ({"backend": "nftables", "iptables_rules": "*filter\nCOMMIT\n"}, "backend nftables needs ruleset"),
        ({"backend": "iptables", "ipset_rules": "create ILO-a hash:ip"}, "backend iptables needs iptables_rules"),
        ({"src": "/nonexistent/ruleset.nft"}, "does not exist on the host"),
    ],
)
def test_options_are_checked_before_anything_else(args, message, tmp_path):
    args.setdefault("state_dir", str(tmp_path / "state"))
    result = run_module(fa.main, args)
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert not (tmp_path / "state").exists()


# --- present / absent with a fake firewall ----------------------------------------------------------------------


class FakeFirewall:
    """Stands in for the host's tools: our objects as text, every change recorded."""

    def __init__(self):
        self.nft = ""
        self.v4 = ""
        self.v6 = ""
        self.ipset = ""
        self.calls = []
        self.fail_on = None

    def install(self, monkeypatch, unit_dir):
        fake = self

        def init(host, module):
            host.module = module
            host.tools = {
                "nft": "/usr/sbin/nft",
                "iptables_save": "/bin/true",
                "iptables_restore": "/bin/true",
                "ip6tables_save": "/bin/true",
                "ip6tables_restore": "/bin/true",
                "ipset": "/bin/true",
                "unshare": "/usr/bin/unshare",
                "sh": "/bin/sh",
            }

        def record(name, result=None):
            def method(host, *args, **kwargs):
                fake.calls.append((name, *args))
                if fake.fail_on == name:
                    raise fa.FirewallError(f"{name} failed")
                return result(*args) if callable(result) else result

            return method

        monkeypatch.setattr(fa.Host, "__init__", init)
        monkeypatch.setattr(fa.Host, "nft_listing", lambda host: fake.nft)
        monkeypatch.setattr(fa.Host, "xtables", lambda host, family: fa.XtablesState.parse(getattr(fake, family)))
        monkeypatch.setattr(fa.Host, "ipsets", lambda host: fa.IpsetState.parse(fake.ipset))
        monkeypatch.setattr(fa.Host, "nft_check", record("nft_check"))
        monkeypatch.setattr(fa.Host, "nft_apply", record("nft_apply", self.nft_apply))
        monkeypatch.setattr(fa.Host, "xtables_restore", record("xtables_restore"))
        monkeypatch.setattr(fa.Host, "ipset_restore", record("ipset_restore"))
        monkeypatch.setattr(fa.Host, "ipset_destroy", record("ipset_destroy"))
        monkeypatch.setattr(fa.Host, "trial", lambda host, backend, files: (fake.trial(backend, files), None))
        monkeypatch.setattr(fa, "UNIT_DIR", str(unit_dir))

    def nft_apply(self, path):
        text = Path(path).read_text()
        self.nft = "" if text.strip() == fa.NFT_REMOVE.strip() else self.listing(text)

    @staticmethod
    def listing(script):
        return (
            "table inet illumio {\n" + "".join(line + "\n" for line in script.splitlines() if "chain" in line) + "}\n"
        )

    def trial(self, backend, files):
        if backend == "nftables":
            return fa.render_canonical({"nft": self.listing(Path(files["ruleset.nft"]).read_text())})
        return "# iptables trial\n" + Path(files["iptables.rules"]).read_text()


@pytest.fixture
def firewall(monkeypatch, tmp_path):
    fake = FakeFirewall()
    (tmp_path / "units").mkdir()
    fake.install(monkeypatch, tmp_path / "units")
    return fake


RULESET = "table inet illumio {\n\tchain input { type filter hook input priority 0; policy drop; }\n}\n"


def apply(tmp_path, check_mode=False, diff=False, **args):
    args = {"ruleset": RULESET, "state_dir": str(tmp_path / "state"), **args}
    return run_module(fa.main, args, check_mode=check_mode, diff=diff)


def test_check_mode_reports_the_change_and_writes_nothing(firewall, tmp_path):
    result = apply(tmp_path, check_mode=True, diff=True)
    assert result["changed"] is True and result["backend"] == "nftables"
    assert result["diff"]["before"] == ""
    assert result["diff"]["after"].startswith("# nftables: table inet illumio\ntable inet illumio {\n")
    assert [call[0] for call in firewall.calls] == ["nft_check"]
    assert not (tmp_path / "state").exists()
    assert list((tmp_path / "units").iterdir()) == []


def test_apply_keeps_state_and_last_known_good_then_changes_nothing(firewall, tmp_path):
    result = apply(tmp_path)
    assert result["changed"] is True
    assert result["rollback"] == {"armed": False}
    assert result["boot_restore"]["installed"] is True
    assert [call[0] for call in firewall.calls] == ["nft_check", "nft_apply"]
    applied = Path(firewall.calls[1][1]).read_text()
    assert applied == fa.NFT_REMOVE + RULESET  # the replace pattern was put in front
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "restore.sh").stat().st_mode) == 0o700
    assert (state / "lkg" / "ruleset.nft").read_text() == fa.NFT_REMOVE + RULESET
    assert (state / "lkg" / "backends").read_text() == "nftables\n"
    assert not (state / "backup").exists() and not (state / "candidate").exists()
    record = json.loads((state / "state.json").read_text())
    assert record["backends"] == ["nftables"] and record["canonical"].startswith("# nftables")
    unit = tmp_path / "units" / fa.UNIT_NAME
    assert unit.read_text() == fa.unit_text(str(state))
    assert os.readlink(tmp_path / "units" / "multi-user.target.wants" / fa.UNIT_NAME) == str(unit)

    firewall.calls.clear()
    again = apply(tmp_path, diff=True)
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert [call[0] for call in firewall.calls] == ["nft_check"]


def test_apply_with_rollback_keeps_the_backup_until_confirmed(firewall, tmp_path, monkeypatch):
    armed = []
    monkeypatch.setattr(
        fa.Rollback,
        "arm",
        lambda self, token, timeout: armed.append(token) or {"timeout": timeout, "method": "process"},
    )
    firewall.nft = "table inet illumio {\n\tchain old\n}\n"
    result = apply(tmp_path, rollback_timeout=30)
    assert result["rollback"] == {"armed": True, "token": armed[0], "timeout": 30, "method": "process"}
    state = tmp_path / "state"
    assert (state / "backup" / "ruleset.nft").read_text() == fa.NFT_REMOVE + "table inet illumio {\n\tchain old\n}\n"
    assert (state / "candidate" / "ruleset.nft").read_text() == fa.NFT_REMOVE + RULESET
    assert not (state / "lkg").exists()  # only a confirmed ruleset becomes last-known-good


def test_a_failed_apply_restores_the_saved_state(firewall, tmp_path):
    firewall.fail_on = "xtables_restore"
    result = apply(
        tmp_path,
        ruleset=None,
        backend="iptables",
        iptables_rules="*filter\n:ILO-X - [0:0]\n-A ILO-X -j DROP\n-I INPUT -j ILO-X\nCOMMIT\n",
        ipset_rules="create ILO-s hash:ip\n",
    )
    assert result["failed"] is True
    assert result["msg"] == "xtables_restore failed; the previous state was restored"
    assert [call[0] for call in firewall.calls] == ["ipset_restore", "xtables_restore"]
    assert (tmp_path / "state" / "backup" / "backends").read_text() == "iptables\n"


IPT_WITH_SET = "*filter\n:ILO-X - [0:0]\n-A ILO-X -m set --match-set ILO-s src -j DROP\n-I INPUT -j ILO-X\nCOMMIT\n"


def test_iptables_apply_order_sets_then_rules_then_stale_sets(firewall, tmp_path):
    firewall.v6 = "*filter\n:ILO-OLD - [0:0]\n-A INPUT -j ILO-OLD\nCOMMIT\n"
    firewall.ipset = "create ILO-stale hash:ip family inet\ncreate ILO-s hash:ip family inet\n"
    result = apply(
        tmp_path,
        ruleset=None,
        iptables_rules=IPT_WITH_SET,
        ipset_rules="create ILO-s hash:ip -exist\n",
    )
    assert result["changed"] is True and result["backend"] == "iptables"
    calls = firewall.calls
    assert calls[0] == ("ipset_restore", "create ILO-s hash:ip -exist\n")
    assert calls[1] == ("xtables_restore", "v4", IPT_WITH_SET)
    assert calls[2] == ("xtables_restore", "v6", "*filter\n-D INPUT -j ILO-OLD\n:ILO-OLD - [0:0]\n-X ILO-OLD\nCOMMIT\n")
    assert calls[3] == ("ipset_destroy", "ILO-stale")
    assert len(calls) == 4


def test_a_unit_file_that_is_not_ours_stops_the_apply_before_any_change(firewall, tmp_path):
    (tmp_path / "units" / fa.UNIT_NAME).write_text("[Unit]\nDescription=someone else's\n")
    result = apply(tmp_path)
    assert result["failed"] is True and "was not written by this module" in result["msg"]
    assert [call[0] for call in firewall.calls] == ["nft_check"]


def test_a_foreign_ruleset_is_refused_before_the_host_is_touched(firewall, tmp_path):
    result = apply(tmp_path, ruleset="table inet illumio {}\ndelete table inet illumio\nflush ruleset\n")
    assert result["failed"] is True and "'flush ruleset' is not allowed" in result["msg"]
    assert firewall.calls == []
    assert not (tmp_path / "state").exists()


def test_absent_removes_ours_and_its_files_only(firewall, tmp_path):
    apply(tmp_path, ruleset=None, iptables_rules=IPT_WITH_SET, ipset_rules="create ILO-s hash:ip -exist\n")
    state = tmp_path / "state"
    (state / "someone-elses-file").write_text("keep me")
    firewall.nft = "table inet illumio {\n}\n"
    firewall.v4 = "*filter\n:ILO-X - [0:0]\n:KEEPME - [0:0]\n-A INPUT -j KEEPME\n-A INPUT -j ILO-X\nCOMMIT\n"
    firewall.ipset = "create keepset hash:ip\ncreate ILO-s hash:ip\n"
    firewall.calls.clear()
    check = run_module(fa.main, {"state": "absent", "state_dir": str(state)}, check_mode=True, diff=True)
    assert check["changed"] is True and check["diff"]["after"] == "" and firewall.calls == []
    result = run_module(fa.main, {"state": "absent", "state_dir": str(state)})
    assert result["changed"] is True
    assert [call[0] for call in firewall.calls] == ["nft_apply", "xtables_restore", "ipset_destroy"]
    assert firewall.calls[1] == (
        "xtables_restore",
        "v4",
        "*filter\n-D INPUT -j ILO-X\n:ILO-X - [0:0]\n-X ILO-X\nCOMMIT\n",
    )
    assert firewall.calls[2] == ("ipset_destroy", "ILO-s")
    assert sorted(os.listdir(state)) == ["someone-elses-file"]
    assert list((tmp_path / "units").rglob("*.service")) == []
    assert result["boot_restore"]["installed"] is False
    firewall.nft, firewall.v4, firewall.ipset = "", "", "create keepset hash:ip\n"
    assert run_module(fa.main, {"state": "absent", "state_dir": str(state)})["changed"] is False


def timers(state):
    return [json.loads((state / name).read_text())["pid"] for name in os.listdir(state) if name.startswith("armed.")]


def test_an_unconfirmed_apply_of_the_same_ruleset_is_handed_to_the_next_confirm(firewall, tmp_path):
    first = apply(tmp_path, rollback_timeout=30)
    token = first["rollback"]["token"]
    [pid] = timers(tmp_path / "state")
    again = apply(tmp_path, rollback_timeout=30)  # the controller lost the first confirmation: run again
    assert again["changed"] is False
    assert again["rollback"] == {"armed": True, "token": token, "timeout": 30, "method": "process"}
    confirmed = confirm(tmp_path)
    assert confirmed["confirmed"] is True
    wait_for(lambda: process_gone(pid))
    assert (tmp_path / "state" / "lkg" / "ruleset.nft").read_text() == fa.NFT_REMOVE + RULESET


def test_applying_the_same_ruleset_without_rollback_confirms_a_pending_one(firewall, tmp_path):
    apply(tmp_path, rollback_timeout=30)
    [pid] = timers(tmp_path / "state")
    assert apply(tmp_path, check_mode=True)["changed"] is True
    result = apply(tmp_path)
    assert result["changed"] is True and result["confirmed"] is True and result["rollback"] == {"armed": False}
    wait_for(lambda: process_gone(pid))
    assert (tmp_path / "state" / "lkg" / "ruleset.nft").read_text() == fa.NFT_REMOVE + RULESET
    assert apply(tmp_path)["changed"] is False


def test_a_new_apply_while_one_is_pending_keeps_the_first_saved_state(firewall, tmp_path):
    firewall.nft = "table inet illumio {\n\tchain original\n}\n"
    apply(tmp_path, rollback_timeout=30)
    state = tmp_path / "state"
    [first_pid] = timers(state)
    second = RULESET.replace("input", "other")
    result = apply(tmp_path, ruleset=second, rollback_timeout=30)
    assert result["changed"] is True and result["rollback"]["armed"] is True
    wait_for(lambda: process_gone(first_pid))  # superseded
    [second_pid] = timers(state)
    assert second_pid != first_pid
    # Rolling back now goes to the state before the first unconfirmed apply, not to the first one's ruleset.
    assert (
        state / "backup" / "ruleset.nft"
    ).read_text() == fa.NFT_REMOVE + "table inet illumio {\n\tchain original\n}\n"
    assert (state / "candidate" / "ruleset.nft").read_text() == fa.NFT_REMOVE + second
    assert confirm(tmp_path)["confirmed"] is True
    wait_for(lambda: process_gone(second_pid))


def test_without_a_trial_the_last_applied_input_and_listing_decide(firewall, tmp_path, monkeypatch):
    # No unshare, or an nft script that only loads with this host's interfaces (it passed nft -c).
    monkeypatch.setattr(fa.Host, "trial", lambda host, backend, files: (None, "Error: Interface does not exist"))
    first = apply(tmp_path, diff=True)
    assert first["changed"] is True
    assert first["diff"]["after"].startswith("# the wanted ruleset as given")
    assert apply(tmp_path)["changed"] is False
    firewall.nft = "table inet illumio {\n\tchain changed-by-hand\n}\n"
    assert apply(tmp_path)["changed"] is True  # the live table no longer is what was applied
    assert apply(tmp_path, ruleset=RULESET + "# another input\n")["changed"] is True


def test_an_iptables_ruleset_that_does_not_load_is_refused_before_any_change(firewall, tmp_path, monkeypatch):
    error = "iptables-restore v1.8.9 (nf_tables): Set ILO-s doesn't exist."
    monkeypatch.setattr(fa.Host, "trial", lambda host, backend, files: (None, error))
    result = apply(tmp_path, ruleset=None, iptables_rules=IPT_WITH_SET)
    assert result["failed"] is True
    assert result["msg"] == "the ruleset does not load (trial in a scratch network namespace): " + error
    assert firewall.calls == []


def test_without_a_scratch_namespace_an_iptables_ruleset_is_refused_not_tried_on_the_host(
    firewall, tmp_path, monkeypatch
):
    # iptables-restore --test on the host would look the set names up among the host's own sets: keepset exists
    # there, so a rule using it would pass. Nothing but the scratch namespace may load the ruleset first.
    def no_trial(host, backend, files):
        host.no_scratch = "unshare --net failed: unshare: unshare failed: Operation not permitted"
        return None, None

    monkeypatch.setattr(fa.Host, "trial", no_trial)
    firewall.ipset = "create keepset hash:ip family inet\ncreate ILO-s hash:ip family inet\n"
    result = apply(tmp_path, ruleset=None, iptables_rules=IPT_WITH_SET, ipset_rules="create ILO-s hash:ip -exist\n")
    assert result["failed"] is True
    assert result["msg"].startswith(
        "the iptables ruleset cannot be checked before it is applied: that needs a scratch network namespace "
        "(unshare --net failed: unshare: unshare failed: Operation not permitted). Nothing was changed"
    )
    assert firewall.calls == []
    check = apply(tmp_path, check_mode=True, ruleset=None, iptables_rules=IPT_WITH_SET)
    assert check["failed"] is True and "needs a scratch network namespace" in check["msg"]
    assert firewall.calls == []


# --- the contract with the renderers of policy_compile ----------------------------------------------------------


def compiled_ir(mode):
    """A host's compiled policy (module_utils/policy/ir.py) with a bit of everything the renderers write."""
    return {
        "version": 1,
        "workload": {"href": "/orgs/1/workloads/1", "hostname": "web1", "name": "web1", "labels": []},
        "enforcement_mode": mode,
        "log_blocked": True,
        "defaults": {}
        if mode == "idle"
        else {
            "in": {"verdict": "drop" if mode == "full" else "accept", "would_drop": mode != "full"},
            "out": {"verdict": "drop" if mode == "full" else "accept", "would_drop": mode != "full"},
        },
        "always_allow": {}
        if mode == "idle"
        else {
            "management": {"ipv4": ["192.0.2.10"], "ipv6": ["2001:db8::1"]},
            "loopback": True,
            "established": True,
            "icmpv6_nd": True,
            "dhcp": True,
            "ignored_interfaces": ["eth9"],
        },
        "sets": {
            "p4_0123456789ab": {"family": "ipv4", "elements": ["10.0.0.0/24", "0.0.0.0/0"]},
            "p6_0123456789ab": {"family": "ipv6", "elements": ["2001:db8:1::/48"]},
        },
        "rules": [
            {
                "direction": direction,
                "action": action,
                "verdict": verdict,
                "peers": {"ipv4": "p4_0123456789ab", "ipv6": "p6_0123456789ab"},
                "services": services,
                "hrefs": ["/orgs/1/sec_policy/active/rule_sets/1/sec_rules/2"],
            }
            for direction, action, verdict, services in (
                ("in", "override_deny", "drop", [{"proto": 17, "ports": [[53, 53]]}]),
                ("in", "allow", "accept", [{"proto": 6, "ports": [[80, 80], [8000, 8099]]}, {"proto": 1}]),
                ("out", "allow", "accept", [{"proto": -1}]),
                ("in", "deny", "count", [{"proto": 58, "icmp": [[128, None]]}]),
            )
        ],
        "warnings": [],
    }


@pytest.mark.parametrize("mode", ["full", "selective", "visibility_only", "idle"])
def test_what_policy_compile_renders_passes_the_checks(mode):
    render = pytest.importorskip("ansible_collections.microseg.illumio.plugins.module_utils.policy.render")
    nft = render.render(compiled_ir(mode), "nftables")["nft"]
    assert fa.check_nft_script(nft) is True  # a replacement script: applied as it is
    parts = render.render(compiled_ir(mode), "iptables")
    for family in ("iptables", "ip6tables"):
        body = fa.check_iptables_rules(parts[family], family + "_rules")
        assert all(
            line.split()[1].startswith("ILO-") or line.startswith(":ILO-") or " -j ILO-" in line for line in body
        )
    sets = fa.check_ipset_rules(parts["ipset"])
    assert all(name.startswith("ILO-") and not name.endswith("-T") for name in sets)


class SystemdModule(ShellModule):
    """systemd runs: systemd-run and systemctl are recorded, not run."""

    def __init__(self):
        self.commands = []

    def get_bin_path(self, name):
        return {"systemd-run": "/usr/bin/systemd-run", "systemctl": "/usr/bin/systemctl"}.get(name)

    def run_command(self, args, **_kwargs):
        self.commands.append(args)
        return 0, "", ""


def test_with_systemd_the_timer_is_a_transient_timer_unit(tmp_path, monkeypatch):
    monkeypatch.setattr(fa, "systemd_running", lambda: True)
    state = state_with_backup(tmp_path)
    module = SystemdModule()
    rollback = fa.Rollback(module, ShellHost(), state)
    record = rollback.arm("0123abcd", 45)
    unit = "microseg-illumio-firewall-rollback-0123abcd"
    assert record["method"] == "systemd" and record["unit"] == unit
    script = state.join("restore.sh")
    assert module.commands == [
        [
            "/usr/bin/systemd-run",
            "--unit",
            unit,
            "--description",
            "microseg.illumio: roll back firewall apply 0123abcd unless confirmed",
            "--on-active",
            "45s",
            "--timer-property=AccuracySec=1s",
            "/bin/sh",
            script,
            "rollback",
            "0123abcd",
            "0",
        ]
    ]
    assert rollback.cancel("0123abcd", "confirmed") is True
    assert module.commands[-1] == ["/usr/bin/systemctl", "stop", unit + ".timer"]
