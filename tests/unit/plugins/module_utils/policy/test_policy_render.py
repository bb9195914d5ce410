"""Both renderers: what the text says, and that the kernel tools accept it (in a private network namespace).

Validation runs `nft -c -f`, `ipset restore`, `iptables-restore --test --noflush` (and real loads) inside
`unshare -n`, so the machine's own firewall is never touched; it needs root and is skipped otherwise.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.policy import render_iptables, render_nft
from ansible_collections.microseg.illumio.plugins.module_utils.policy.ir import MODES
from ansible_collections.microseg.illumio.plugins.module_utils.policy.render import render
from policy_builder import Org, compiler_for

TOOLS = ("unshare", "nft", "ipset", "iptables-restore", "ip6tables-restore")


def _netns_skip_reason():
    if os.geteuid() != 0:
        return "validating rendered rulesets needs root (a private network namespace with unshare -n)"
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        return "missing tools: " + ", ".join(missing)
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "unshare -n does not work here: " + probe.stderr.decode(errors="replace").strip()
    return None


NETNS_SKIP = _netns_skip_reason()
needs_netns = pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or "")


def in_netns(tmp_path, script, **files):
    """Run a shell script in a fresh network namespace, in tmp_path holding `files`; return its output."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        ["unshare", "-n", "sh", "-ec", script], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, f"script failed:\n{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


@pytest.fixture
def org():
    org = Org()
    web, db, app = org.label("role", "web"), org.label("role", "db"), org.label("app", "shop")
    org.workload("web1", [web, app], ["10.0.1.1", "fd00::1"], ignored=["eth9"])
    org.workload("db1", [db, app], ["10.0.1.2", "fd00::2"])
    bad = org.ip_list("bad", ["192.0.2.0/24", "!192.0.2.7", "2001:db8:bad::/48"])
    web_ports = org.service("S-WEB", ["tcp/80", "tcp/443", "icmp/8", "icmp/3:4", "icmpv6/128", "gre"])
    rs = org.rule_set("RS-SHOP", scopes=[[app]])
    org.hrefs = [
        org.rule(rs, providers=[web], consumers=[org.any_ip_list], services=[web_ports], unscoped=True),
        org.rule(rs, providers=[db], consumers=[web], services=["tcp/5432", "udp/5000-5100", "sctp/9"]),
        org.rule(rs, providers=[web], consumers=[db], services=[org.all_services]),
        org.deny_rule(rs, providers=["ams"], consumers=[bad], services=["all"], override=True),
        org.deny_rule(rs, providers=["ams"], consumers=[org.any_ip_list], services=["tcp/23"]),
    ]
    return org


def texts(org, host, mode=None, **options):
    ir = compiler_for(org, management_allow=["192.0.2.250", "2001:db8::/64"], **options).compile(host, mode)
    return ir, render(ir, "nftables")["nft"], render(ir, "iptables")


# --- nftables ----------------------------------------------------------------------------------------------------
def test_nft_script_replaces_only_its_table_atomically(org):
    ir, nft, _parts = texts(org, "web1")
    lines = nft.splitlines()
    assert lines[3:6] == ["table inet illumio {}", "delete table inet illumio", "table inet illumio {"]
    assert [line for line in lines if line.startswith(("table", "delete", "flush"))] == lines[3:6]
    assert "\tchain input {\n\t\ttype filter hook input priority filter; policy drop;" in nft
    assert "\tchain output {\n\t\ttype filter hook output priority filter; policy drop;" in nft
    assert "forward" not in nft
    for name in ("mgmt_allow_v4", "mgmt_allow_v6", *ir["sets"]):
        assert f"\tset {name} {{" in nft
    for href in org.hrefs:
        assert f'comment "{href}"' in nft
    # Always-allowed traffic comes first: established connections (most packets), then management.
    chain = nft.split("\tchain input {")[1].splitlines()
    assert chain[2] == "\t\tct state established,related accept"
    assert chain[3:5] == [
        '\t\tip saddr @mgmt_allow_v4 accept comment "management"',
        '\t\tip6 saddr @mgmt_allow_v6 accept comment "management"',
    ]
    assert chain[5] == '\t\tiif "lo" accept'
    assert chain[6] == '\t\tiifname { "eth9" } accept comment "ignored interfaces"'


def test_nft_rules_per_family_and_protocol(org):
    ir, nft, _parts = texts(org, "web1")
    any4 = next(name for name, s in ir["sets"].items() if s["elements"] == ["0.0.0.0/0"])
    any6 = next(name for name, s in ir["sets"].items() if s["elements"] == ["::/0"])
    assert f"ip saddr @{any4} icmp type 8 accept" in nft
    assert f"ip saddr @{any4} icmp type 3 icmp code 4 accept" in nft
    assert f"ip saddr @{any4} tcp dport {{ 80, 443 }} accept" in nft
    assert f"ip saddr @{any4} meta l4proto 47 accept" in nft
    assert f"ip6 saddr @{any6} icmpv6 type 128 accept" in nft
    assert f"ip6 saddr @{any6} icmp " not in nft  # no IPv4 ICMP against IPv6 peers
    assert f"ip saddr @{any4} tcp dport 23 counter drop" in nft
    db1 = compiler_for(org).compile("db1")
    db_nft = render_nft.render(db1)
    assert "tcp dport 5432 accept" in db_nft and "udp dport 5000-5100 accept" in db_nft
    assert "sctp dport 9 accept" in db_nft


@pytest.mark.parametrize("mode", MODES)
def test_nft_per_mode(org, mode):
    _ir, nft, _parts = texts(org, "web1", mode, log_blocked=True)
    if mode == "idle":
        assert nft.splitlines()[3:] == [
            "table inet illumio {}",
            "delete table inet illumio",
            "# idle: the host firewall is left alone, so this only removes the table.",
        ]
        return
    input_policy = "drop" if mode == "full" else "accept"
    output_policy = "drop" if mode == "full" else "accept"
    assert f"hook input priority filter; policy {input_policy};" in nft
    assert f"hook output priority filter; policy {output_policy};" in nft
    if mode == "full":
        assert nft.count('counter log prefix "ILO-DROP " drop comment "default"') == 2
    else:
        assert 'counter log prefix "ILO-WOULD-DROP " comment "would drop: default"' in nft
    if mode == "visibility_only":
        assert " drop " not in nft and not re.search(r" drop$", nft, re.M)


def test_nft_comments_stay_short(org):
    rs = org.rule_set("RS-MANY", scopes=[[]])
    for _round in range(30):
        org.rule(rs, providers=["ams"], consumers=["ams"], services=["tcp/7"])
    nft = render_nft.render(compiler_for(org).compile("web1"))
    comments = re.findall(r'comment "([^"]*)"', nft)
    assert max(len(text.encode()) for text in comments) < 128
    assert any(text.endswith(" +29") for text in comments)


# --- iptables + ipset ------------------------------------------------------------------------------------------------
def test_iptables_touches_only_ilo_chains_and_sets(org):
    ir, _nft, parts = texts(org, "web1")
    for family in ("iptables", "ip6tables"):
        lines = [line for line in parts[family].splitlines() if line and not line.startswith("#")]
        assert lines[0] == "*filter" and lines[-1] == "COMMIT"
        assert [line for line in lines if line.startswith(":")] == [":ILO-INPUT - [0:0]", ":ILO-OUTPUT - [0:0]"]
        rules = [line for line in lines if line.startswith("-")]
        assert all(re.match(r"-A ILO-(INPUT|OUTPUT) ", line) for line in rules[:-2])
        assert rules[-2:] == ["-I INPUT 1 -j ILO-INPUT", "-I OUTPUT 1 -j ILO-OUTPUT"]
        text = parts[family]
        assert text.index(render_iptables.HOOK_BEGIN) < text.index("-I INPUT 1") < text.index(render_iptables.HOOK_END)
        assert "-F" not in text.split() and "-X" not in text.split()
    names = set(re.findall(r"^(?:create|add|flush|swap|destroy) (\S+)", parts["ipset"], re.M))
    assert all(name.startswith("ILO-") for name in names)
    for name in ir["sets"]:
        assert f"create ILO-{name} hash:net family inet" in parts["ipset"]
        assert f"swap ILO-{name}-T ILO-{name}" in parts["ipset"]
    any4 = next(name for name, s in ir["sets"].items() if s["elements"] == ["0.0.0.0/0"])
    assert f"add ILO-{any4}-T 0.0.0.0/1\nadd ILO-{any4}-T 128.0.0.0/1\n" in parts["ipset"]  # hash:net has no /0


def test_iptables_services_allow_returns_and_deny_drops(org):
    _ir, _nft, parts = texts(org, "db1")
    v4 = parts["iptables"]
    assert re.search(r"-A ILO-INPUT -m set --match-set ILO-p4_\w+ src -p tcp --dport 5432 .* -j RETURN", v4)
    assert re.search(r"-A ILO-INPUT -m set --match-set ILO-p4_\w+ src -p udp --dport 5000:5100 .* -j RETURN", v4)
    assert re.search(r"-A ILO-INPUT -m set --match-set ILO-p4_\w+ src -p tcp --dport 23 .* -j DROP", v4)
    assert re.search(r"-A ILO-OUTPUT -m set --match-set ILO-p4_\w+ dst -m comment .* -j RETURN", v4)
    assert '-A ILO-INPUT -m comment --comment "default" -j DROP' in v4
    assert "icmpv6" not in v4
    v6 = parts["ip6tables"]
    assert "-A ILO-INPUT -p ipv6-icmp --icmpv6-type 135 -j RETURN" in v6
    assert "--icmp-type" not in v6


def test_multiport_chunks_of_fifteen(org):
    ports = [f"tcp/{port}" for port in range(1000, 1040, 2)] + ["tcp/2000-2010"]
    rs = org.rule_set("RS-PORTS", scopes=[[]])
    org.rule(rs, providers=["ams"], consumers=[org.any_ip_list], services=ports)
    v4 = render_iptables.render(compiler_for(org).compile("db1"))["iptables"]
    lists = re.findall(r"--dports (\S+)", v4)
    assert len(lists) == 2
    for ports_text in lists:
        assert sum(2 if ":" in part else 1 for part in ports_text.split(",")) <= 15
    assert ",".join(lists).count(",") == 20


@pytest.mark.parametrize("mode", MODES)
def test_iptables_per_mode(org, mode):
    _ir, _nft, parts = texts(org, "web1", mode, log_blocked=True)
    v4 = parts["iptables"]
    if mode == "idle":
        assert [line for line in v4.splitlines() if not line.startswith("#")] == [
            "*filter",
            ":ILO-INPUT - [0:0]",
            ":ILO-OUTPUT - [0:0]",
            "COMMIT",
        ]
        assert [line for line in parts["ipset"].splitlines() if not line.startswith("#")] == []
        return
    if mode == "full":
        assert '-A ILO-OUTPUT -m comment --comment "default" -j DROP' in v4
        assert '-A ILO-OUTPUT -j LOG --log-prefix "ILO-DROP "' in v4
    else:
        assert '-A ILO-OUTPUT -m comment --comment "would drop: default" -j LOG --log-prefix "ILO-WOULD-DROP "' in v4
    if mode == "visibility_only":
        assert "-j DROP" not in v4


def test_both_renderers_are_deterministic(org):
    first = texts(org, "web1")
    again = texts(org, "web1")
    assert first[1:] == again[1:]


# --- the kernel's own tools accept it ---------------------------------------------------------------------------------
@needs_netns
@pytest.mark.parametrize("mode", MODES)
def test_nft_check_and_load(org, tmp_path, mode):
    _ir, nft, _parts = texts(org, "web1", mode, log_blocked=True)
    out = in_netns(
        tmp_path,
        "nft add table ip other; nft add chain ip other keep '{ type filter hook input priority 10; }';"
        "nft -c -f host_nft; nft -f host_nft; nft -f host_nft; nft list tables",
        host_nft=nft,
    )
    assert "table ip other" in out  # someone else's table survives
    assert ("table inet illumio" in out) == (mode != "idle")


@needs_netns
@pytest.mark.parametrize("mode", MODES)
def test_iptables_restore_test_and_load(org, tmp_path, mode):
    _ir, _nft, parts = texts(org, "web1", mode, log_blocked=True)
    script = """
        iptables -N OTHER; iptables -A INPUT -j OTHER; iptables -A OTHER -p tcp --dport 1 -j ACCEPT
        ipset create other hash:ip
        ipset restore < host_ipset
        iptables-restore --test --noflush < host_iptables
        ip6tables-restore --test --noflush < host_ip6tables
        iptables-restore --noflush < host_iptables
        ip6tables-restore --noflush < host_ip6tables
        # A second apply: sets swapped in place, hook block left out since the jumps exist.
        ipset restore < host_ipset
        if iptables -C INPUT -j ILO-INPUT 2>/dev/null; then
            sed '/^# BEGIN ILO-HOOK/,/^# END ILO-HOOK/d' host_iptables > again
        else
            cp host_iptables again
        fi
        iptables-restore --noflush < again
        echo ---; iptables -S; echo ---; ipset list -n
    """
    out = in_netns(
        tmp_path, script, host_ipset=parts["ipset"], host_iptables=parts["iptables"], host_ip6tables=parts["ip6tables"]
    )
    rules = out.split("---")[1]
    assert "-A OTHER -p tcp -m tcp --dport 1 -j ACCEPT" in rules
    assert "other" in out.split("---")[2].split()
    if mode == "idle":
        assert "-j ILO-INPUT" not in rules and "-A ILO-" not in rules
    else:
        assert rules.count("-A INPUT -j ILO-INPUT") == 1 and rules.count("-A OUTPUT -j ILO-OUTPUT") == 1
        assert rules.index("-A INPUT -j ILO-INPUT") < rules.index("-A INPUT -j OTHER")


@needs_netns
def test_large_sets_load_in_both_backends(tmp_path):
    org = Org()
    db, web = org.label("role", "db"), org.label("role", "web")
    rng = random.Random(5)
    addresses = {f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _round in range(5000)}
    for index, address in enumerate(sorted(addresses)):
        org.workload(f"web{index}", [web], [address, f"fd00::{index + 1:x}"])
    org.workload("db1", [db], ["10.255.0.1"])
    rs = org.rule_set("RS", scopes=[[]])
    org.rule(rs, providers=[db], consumers=[web], services=["tcp/5432"])
    ir = compiler_for(org).compile("db1")
    assert sum(len(s["elements"]) for s in ir["sets"].values()) > 5000
    parts = render(ir, "iptables")
    in_netns(
        tmp_path,
        "nft -c -f host_nft; ipset restore < host_ipset; iptables-restore --test --noflush < host_iptables;"
        "ip6tables-restore --test --noflush < host_ip6tables",
        host_nft=render(ir, "nftables")["nft"],
        host_ipset=parts["ipset"],
        host_iptables=parts["iptables"],
        host_ip6tables=parts["ip6tables"],
    )


# --- flow recording (record_flows) -----------------------------------------------------------------------------------
FLOWS = {"size": 1000, "timeout": 3600}


@pytest.mark.parametrize("mode", ["full", "selective", "visibility_only"])
def test_nft_flow_recording_routes_verdicts_through_recording_chains(org, mode):
    ir, nft, _parts = texts(org, "web1", mode, record_flows=FLOWS)
    assert ir["record_flows"] == FLOWS
    for decision in ("allow", "drop"):
        for generation in ("a", "b"):
            for family in ("v4", "v6"):
                assert f"\tset flow_{decision}_{family}_{generation} {{" in nft
    assert "\t\telements = { tcp : jump flow_allow_a, udp : jump flow_allow_a }" in nft
    assert "\t\tct state new update @flow_drop_v6_b { ip6 saddr . ip6 daddr . meta l4proto . th dport }" in nft
    chains = nft.split("\tchain input {")[1]
    policy_lines = [line for line in chains.splitlines() if "@p" in line]
    assert policy_lines and not any(line.rstrip().endswith(" accept") for line in policy_lines)
    assert all(" accept comment" not in line for line in policy_lines)
    assert any("goto flow_accept comment" in line for line in policy_lines)
    if mode == "full":
        assert '\t\tcounter goto flow_drop comment "default"' in nft
    if mode == "visibility_only":
        assert '\t\tcounter goto flow_would_drop comment "would drop: default"' in nft
    # Without the option nothing of it is there.
    _ir, plain, _parts = texts(org, "web1", mode)
    assert "flow_" not in plain


def test_flow_recording_options_are_checked(org):
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import PolicyError

    with pytest.raises(PolicyError, match="record_flows size must be a positive whole number"):
        compiler_for(org, record_flows={"size": 0, "timeout": 5})


@needs_netns
@pytest.mark.parametrize("mode", ["full", "visibility_only"])
def test_nft_flow_recording_loads_and_switches(org, tmp_path, mode):
    from ansible_collections.microseg.illumio.plugins.module_utils.flows import nft_sets

    _ir, nft, _parts = texts(org, "web1", mode, record_flows=FLOWS, log_blocked=True)
    out = in_netns(
        tmp_path,
        "nft -c -f host_nft; nft -f host_nft; nft -f switch_b; nft list map inet illumio flow_gen_drop;"
        "nft -f flush_a; nft -f host_nft; echo; nft list map inet illumio flow_gen_allow",
        host_nft=nft,
        switch_b=nft_sets.switch_script("b"),
        flush_a=nft_sets.flush_script("a"),
    )
    switched, reloaded = out.split("\n\n", 1)
    assert "tcp : jump flow_drop_b, udp : jump flow_drop_b" in switched
    assert "tcp : jump flow_allow_a, udp : jump flow_allow_a" in reloaded
