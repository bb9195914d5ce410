"""The compiler reproduces the PCE's policy semantics (docs/DESIGN.md), one case per rule of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.policy.compiler import Compiler
from ansible_collections.microseg.illumio.plugins.module_utils.policy.ir import summary
from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import PolicyError, Snapshot
from policy_builder import Org, compile_host, compiler_for, peers, view

# The real PCE payloads the lab PCE is tested against (illumio-py test data).
SAMPLES = Path(__file__).resolve().parents[5] / "tools" / "pcelab" / "tests" / "pce_samples"


@pytest.fixture
def org():
    """Two apps in prod, web and db roles, one address each (db1 also IPv6)."""
    org = Org()
    org.role_web, org.role_db = org.label("role", "web"), org.label("role", "db")
    org.app_shop, org.app_crm = org.label("app", "shop"), org.label("app", "crm")
    org.env_prod, org.env_dev = org.label("env", "prod"), org.label("env", "dev")
    org.workload("web1", [org.role_web, org.app_shop, org.env_prod], ["10.0.1.1"])
    org.workload("db1", [org.role_db, org.app_shop, org.env_prod], ["10.0.1.2", "fd00::2"])
    org.workload("web2", [org.role_web, org.app_crm, org.env_prod], ["10.0.2.1"])
    org.workload("db2", [org.role_db, org.app_crm, org.env_prod], ["10.0.2.2"])
    org.workload("web3", [org.role_web, org.app_shop, org.env_dev], ["10.0.3.1"])
    return org


# --- scopes: intra-scope and extra-scope ---------------------------------------------------------------------
def test_intra_scope_rule_limits_both_sides_to_the_scope(org):
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop, org.env_prod]])
    href = org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=["tcp/5432"])
    db1 = compile_host(org, "db1")
    [rule] = view(db1, "in")
    assert rule["addresses"] == {"10.0.1.1"}  # web1 only: web2 (crm) and web3 (dev) are out of scope
    assert rule["services"] == [{"proto": 6, "ports": [[5432, 5432]]}]
    assert rule["hrefs"] == [href] and rule["verdict"] == "accept"
    assert peers(compile_host(org, "web1"), "out") == {"10.0.1.2", "fd00::2"}
    # A provider outside the scope gets nothing, and neither does a consumer outside it.
    assert view(compile_host(org, "db2")) == []
    assert view(compile_host(org, "web2")) == []
    assert view(compile_host(org, "web3")) == []


def test_extra_scope_rule_takes_consumers_from_everywhere_but_providers_from_the_scope(org):
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop, org.env_prod]])
    org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=["tcp/5432"], unscoped=True)
    assert peers(compile_host(org, "db1"), "in") == {"10.0.1.1", "10.0.2.1", "10.0.3.1"}
    for consumer in ("web1", "web2", "web3"):  # consumers outside the scope get the outbound rule too
        assert peers(compile_host(org, consumer), "out") == {"10.0.1.2", "fd00::2"}
    assert view(compile_host(org, "db2")) == []  # a db outside the scope is no provider


def test_rule_set_applies_under_each_of_its_scopes_and_empty_scope_means_all(org):
    rs = org.rule_set("RS-DBS", scopes=[[org.app_shop], [org.app_crm]])
    org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=["tcp/5432"])
    assert peers(compile_host(org, "db1"), "in") == {"10.0.1.1", "10.0.3.1"}  # shop, any env
    assert peers(compile_host(org, "db2"), "in") == {"10.0.2.1"}  # crm's own web only
    everywhere = org.rule_set("RS-ALL", scopes=[[]])
    org.rule(everywhere, providers=[org.role_db], consumers=[org.role_web], services=["tcp/22"])
    ssh = [rule for rule in view(compile_host(org, "db2"), "in") if rule["services"][0]["ports"] == [[22, 22]]]
    assert ssh[0]["addresses"] == {"10.0.1.1", "10.0.2.1", "10.0.3.1"}


# --- actors ----------------------------------------------------------------------------------------------------
def test_ams_is_every_workload_of_the_scope_or_of_the_org_when_extra_scope(org):
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop]])
    intra = org.rule(rs, providers=[org.role_db], consumers=["ams"], services=["tcp/1"])
    extra = org.rule(rs, providers=[org.role_db], consumers=["ams"], services=["tcp/2"], unscoped=True)
    db1 = compile_host(org, "db1")
    assert peers(db1, "in", href=intra) == {"10.0.1.1", "10.0.1.2", "fd00::2", "10.0.3.1"}
    assert peers(db1, "in", href=extra) == {"10.0.1.1", "10.0.1.2", "fd00::2", "10.0.2.1", "10.0.2.2", "10.0.3.1"}
    # ams as provider: every workload of the scope gets the inbound rule.
    org.rule(rs, providers=["ams"], consumers=[org.role_web], services=["tcp/3"])
    assert peers(compile_host(org, "web3"), "in", href=None) >= {"10.0.1.1", "10.0.3.1"}


def test_labels_of_one_key_or_labels_of_different_keys_and(org):
    rs = org.rule_set("RS-ALL", scopes=[[]])
    either = org.rule(rs, providers=[org.role_db], consumers=[org.app_shop, org.app_crm], services=["tcp/1"])
    both = org.rule(rs, providers=[org.role_db], consumers=[org.role_web, org.env_dev], services=["tcp/2"])
    db1 = compile_host(org, "db1")
    assert peers(db1, "in", href=either) == {"10.0.1.1", "10.0.1.2", "fd00::2", "10.0.2.1", "10.0.2.2", "10.0.3.1"}
    assert peers(db1, "in", href=both) == {"10.0.3.1"}  # web AND dev


def test_label_groups_match_labels_of_their_sub_groups_in_scopes_and_actors():
    org = Org()
    rack1, rack2, rack3 = (org.label("loc", name) for name in ("rack1", "rack2", "rack3"))
    web, db = org.label("role", "web"), org.label("role", "db")
    us = org.label_group("LG-US", "loc", labels=[rack1])
    datacenters = org.label_group("LG-DC", "loc", labels=[rack2], sub_groups=[us])
    fronts = org.label_group("LG-FRONT", "role", labels=[web])
    org.workload("db-rack1", [db, rack1], ["10.0.0.1"])
    org.workload("db-rack3", [db, rack3], ["10.0.0.3"])
    org.workload("web-rack1", [web, rack1], ["10.0.1.1"])
    org.workload("web-rack2", [web, rack2], ["10.0.1.2"])
    org.workload("web-rack3", [web, rack3], ["10.0.1.3"])
    rs = org.rule_set("RS-DC", scopes=[[datacenters]])
    org.rule(rs, providers=[db], consumers=[fronts], services=["tcp/5432"])
    assert peers(compile_host(org, "db-rack1"), "in") == {"10.0.1.1", "10.0.1.2"}  # rack3 is in neither group
    assert view(compile_host(org, "db-rack3")) == []
    assert peers(compile_host(org, "web-rack2"), "out") == {"10.0.0.1"}


def test_workload_and_ip_list_actors_are_never_scoped(org):
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop, org.env_prod]])
    web2 = next(w["href"] for w in org.workloads if w["hostname"] == "web2")
    partners = org.ip_list("partners", ["198.51.100.0/24"])
    href = org.rule(
        rs, providers=[org.role_db], consumers=[{"workload": {"href": web2}}, partners], services=["tcp/5432"]
    )
    assert peers(compile_host(org, "db1"), "in", href=href) == {"10.0.2.1", "198.51.100.0/24"}
    assert peers(compile_host(org, "web2"), "out") == {"10.0.1.2", "fd00::2"}
    # A workload named as provider gets the rule even outside the scope.
    db2 = next(w["href"] for w in org.workloads if w["hostname"] == "db2")
    org.rule(rs, providers=[{"workload": {"href": db2}}], consumers=[org.role_web], services=["tcp/22"])
    assert peers(compile_host(org, "db2"), "in") == {"10.0.1.1"}  # consumers still scoped: web1 only


# --- IP lists --------------------------------------------------------------------------------------------------
def test_ip_list_ranges_minus_exclusions_in_both_families(org):
    ranges = [
        "10.10.0.0/16",
        ("192.0.2.10", "192.0.2.20"),
        "!10.10.5.0/24",
        "!192.0.2.15",
        "2001:db8::/32",
        "!2001:db8::/48",
    ]
    lst = org.ip_list("office", ranges)
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop]])
    org.rule(rs, providers=[org.role_db], consumers=[lst], services=["tcp/22"])
    [rule] = view(compile_host(org, "db1"), "in")
    assert rule["addresses"] == {
        "10.10.0.0/22",
        "10.10.4.0/24",
        "10.10.6.0/23",
        "10.10.8.0/21",
        "10.10.16.0/20",
        "10.10.32.0/19",
        "10.10.64.0/18",
        "10.10.128.0/17",
        "192.0.2.10/31",
        "192.0.2.12/31",
        "192.0.2.14",
        "192.0.2.16/30",
        "192.0.2.20",
        "2001:db8:1::/48",
        "2001:db8:2::/47",
        "2001:db8:4::/46",
        "2001:db8:8::/45",
        "2001:db8:10::/44",
        "2001:db8:20::/43",
        "2001:db8:40::/42",
        "2001:db8:80::/41",
        "2001:db8:100::/40",
        "2001:db8:200::/39",
        "2001:db8:400::/38",
        "2001:db8:800::/37",
        "2001:db8:1000::/36",
        "2001:db8:2000::/35",
        "2001:db8:4000::/34",
        "2001:db8:8000::/33",
    }


def test_fqdns_are_skipped_with_a_warning_or_resolved_when_asked(org):
    lst = org.ip_list("saas", ["203.0.113.1"], fqdns=["app.example.com", "*.cdn.example.com"])
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop]])
    org.rule(rs, providers=[lst], consumers=[org.role_web], services=["tcp/443"])
    skipped = compile_host(org, "web1")
    assert peers(skipped, "out") == {"203.0.113.1"}
    assert any("app.example.com" in text and "skipped" in text for text in skipped["warnings"])
    assert any("*.cdn.example.com" in text for text in skipped["warnings"])
    assert summary(skipped)["warnings"] == 2

    def resolver(name):
        return {"app.example.com": ["203.0.113.7", "2001:db8::7"]}[name]

    resolved = compile_host(org, "web1", resolve_fqdns=True, resolver=resolver)
    assert peers(resolved, "out") == {"203.0.113.1", "203.0.113.7", "2001:db8::7"}
    assert [text for text in resolved["warnings"] if "app.example.com" in text] == []
    assert any("wildcard FQDN *.cdn.example.com" in text for text in resolved["warnings"])

    def failing(name):
        raise OSError("Name or service not known")

    failed = compile_host(org, "web1", resolve_fqdns=True, resolver=failing)
    assert any("did not resolve (Name or service not known)" in text for text in failed["warnings"])
    # Hosts that don't use the IP list are not bothered with its warnings.
    assert compile_host(org, "db2")["warnings"] == []


# --- addresses, IPv6 -------------------------------------------------------------------------------------------
def test_ipv6_peers_get_their_own_set_and_rules_in_both_families(org):
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop, org.env_prod]])
    org.rule(rs, providers=[org.role_web], consumers=[org.role_db], services=["tcp/80"])
    [rule] = view(compile_host(org, "web1"), "in")
    assert ir_sets(compile_host(org, "web1"), rule) == {"ipv4": ["10.0.1.2"], "ipv6": ["fd00::2"]}


def ir_sets(ir, rule):
    return {family: ir["sets"][name]["elements"] for family, name in rule["peers"].items() if name}


def test_workload_addresses_leave_out_ignored_interfaces_and_loopback():
    org = Org()
    db, web = org.label("role", "db"), org.label("role", "web")
    interfaces = [
        {"name": "eth0", "address": "10.0.0.5"},
        {"name": "eth1", "address": "10.9.9.9"},
        {"name": "lo", "address": "127.0.0.1", "loopback": True},
        {"name": "eth0", "address": "fe80::1%eth0"},
    ]
    org.workload("web1", [web], interfaces=interfaces, ignored=["eth1"])
    org.workload("db1", [db], ["10.0.0.9"])
    rs = org.rule_set("RS", scopes=[[]])
    org.rule(rs, providers=[db], consumers=[web], services=["tcp/1"])
    assert peers(compile_host(org, "db1"), "in") == {"10.0.0.5", "fe80::1"}
    web1 = compile_host(org, "web1")
    assert web1["always_allow"]["ignored_interfaces"] == ["eth1"]
    assert web1["workload"]["addresses"] == {"ipv4": ["10.0.0.5"], "ipv6": ["fe80::1"]}


# --- enforcement modes and precedence --------------------------------------------------------------------------
@pytest.fixture
def layered(org):
    """Allow, deny and override deny rules that all name db1 as provider."""
    bad = org.ip_list("bad", ["10.0.1.1"])
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop, org.env_prod]])
    org.hrefs = {
        "allow": org.rule(rs, providers=[org.role_db], consumers=["ams"], services=["tcp/5432"]),
        "deny": org.deny_rule(rs, providers=[org.role_db], consumers=[org.any_ip_list], services=["all"]),
        "override_deny": org.deny_rule(
            rs, providers=[org.role_db], consumers=[bad], services=["tcp/5432"], override=True
        ),
        "outbound": org.rule(rs, providers=[org.role_web], consumers=[org.role_db], services=["tcp/80"]),
    }
    return org


def test_precedence_is_override_deny_then_allow_then_deny(layered):
    ir = compile_host(layered, "db1")
    inbound = view(ir, "in")
    assert [rule["action"] for rule in inbound] == ["override_deny", "allow", "deny"]
    assert [rule["verdict"] for rule in inbound] == ["drop", "accept", "drop"]
    assert [rule["hrefs"] for rule in inbound] == [[layered.hrefs[name]] for name in ("override_deny", "allow", "deny")]
    assert ir["defaults"] == {
        "in": {"verdict": "drop", "would_drop": False},
        "out": {"verdict": "drop", "would_drop": False},
    }


def test_every_enforcement_mode(layered):
    compiler = compiler_for(layered)
    idle = compiler.compile("db1", "idle")
    assert (idle["rules"], idle["sets"], idle["defaults"], idle["always_allow"]) == ([], {}, {}, {})

    visibility = compiler.compile("db1", "visibility_only")
    assert [(r["direction"], r["action"], r["verdict"]) for r in visibility["rules"]] == [
        ("in", "override_deny", "count"),
        ("in", "allow", "accept"),
        ("out", "allow", "accept"),
        ("out", "allow", "accept"),
        ("in", "deny", "count"),
    ]
    assert visibility["defaults"] == {
        "in": {"verdict": "accept", "would_drop": True},
        "out": {"verdict": "accept", "would_drop": True},
    }

    selective = compiler.compile("db1", "selective")
    assert [(r["direction"], r["action"], r["verdict"]) for r in selective["rules"]] == [
        ("in", "override_deny", "drop"),
        ("in", "allow", "accept"),
        ("out", "allow", "accept"),
        ("out", "allow", "accept"),
        ("in", "deny", "drop"),
    ]
    assert selective["defaults"] == {
        "in": {"verdict": "accept", "would_drop": False},
        "out": {"verdict": "accept", "would_drop": True},
    }

    full = compiler.compile("db1", "full")
    assert [r["verdict"] for r in full["rules"]] == ["drop", "accept", "accept", "accept", "drop"]
    assert full["defaults"]["out"] == {"verdict": "drop", "would_drop": False}


def test_the_workload_s_own_mode_is_used_unless_overridden(org):
    org.workload("viz", [org.role_db, org.app_shop, org.env_prod], ["10.0.1.3"], mode="visibility_only")
    org.workload("unset", [org.role_db], ["10.0.1.4"], mode=None)
    compiler = compiler_for(org)
    assert compiler.compile("viz")["enforcement_mode"] == "visibility_only"
    assert compiler.compile("viz", "full")["enforcement_mode"] == "full"
    assert compiler.compile("unset")["enforcement_mode"] == "idle"
    with pytest.raises(PolicyError, match=r"'enforced' of .* is not one of idle, visibility_only, selective, full"):
        compiler.compile("viz", "enforced")


def test_selective_outbound_deny_is_only_counted(org):
    rs = org.rule_set("RS-SHOP", scopes=[[org.app_shop, org.env_prod]])
    org.deny_rule(rs, providers=[org.any_ip_list], consumers=[org.role_web], services=["tcp/25"])
    [rule] = view(compile_host(org, "web1", "selective"), "out")
    assert (rule["action"], rule["verdict"]) == ("deny", "count")
    [rule] = view(compile_host(org, "web1", "full"), "out")
    assert rule["verdict"] == "drop"


def test_enforcement_boundaries_are_deny_rules_without_scope(org):
    org.boundary("no-ssh-from-dev", providers=[org.env_prod], consumers=[org.env_dev], services=["tcp/22"])
    for host in ("db1", "web2"):
        [rule] = view(compile_host(org, host, "selective"), "in")
        assert (rule["action"], rule["verdict"], rule["addresses"]) == ("deny", "drop", {"10.0.3.1"})
    assert peers(compile_host(org, "web3"), "out", action="deny") == {
        "10.0.1.1",
        "10.0.1.2",
        "fd00::2",
        "10.0.2.1",
        "10.0.2.2",
    }


def test_disabled_rules_and_rule_sets_are_ignored(org):
    off = org.rule_set("RS-OFF", scopes=[[]], enabled=False)
    org.rule(off, providers=["ams"], consumers=["ams"], services=["all"])
    on = org.rule_set("RS-ON", scopes=[[]])
    org.rule(on, providers=["ams"], consumers=["ams"], services=["tcp/1"], enabled=False)
    org.deny_rule(on, providers=["ams"], consumers=["ams"], services=["tcp/2"], enabled=False)
    kept = org.rule(on, providers=[org.role_db], consumers=[org.role_web], services=["tcp/3"])
    assert [rule["hrefs"] for rule in view(compile_host(org, "db1"))] == [[kept]]


# --- services --------------------------------------------------------------------------------------------------
def test_services_by_href_and_inline_are_merged_per_protocol(org):
    web_ports = org.service("S-WEB", ["tcp/80", "tcp/443", "tcp/8000-8080", "tcp/8080-8090"])
    icmp = org.service("S-ICMP", ["icmp/8", "icmp/3:4", "icmp/3", "icmpv6/128"])
    rs = org.rule_set("RS", scopes=[[]])
    org.rule(
        rs,
        providers=[org.role_db],
        consumers=[org.role_web],
        services=[web_ports, icmp, "udp/53", "tcp/81", "gre", "udp"],
    )
    [rule] = view(compile_host(org, "db1"), "in")
    assert rule["services"] == [
        {"proto": 1, "icmp": [[3, None], [8, None]]},
        {"proto": 6, "ports": [[80, 81], [443, 443], [8000, 8090]]},
        {"proto": 17},
        {"proto": 47},
        {"proto": 58, "icmp": [[128, None]]},
    ]
    org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=[web_ports, org.all_services])
    everything = [r for r in view(compile_host(org, "db1"), "in") if r["services"] == [{"proto": -1}]]
    assert len(everything) == 1


# --- problems are warnings, never silent -------------------------------------------------------------------------
def test_unknown_references_match_nothing_and_are_reported(org):
    rs = org.rule_set("RS", scopes=[[]])
    ghost_label = "/orgs/1/labels/999"
    href = org.rule(rs, providers=[org.role_db], consumers=[ghost_label, org.role_web], services=["tcp/1"])
    org.rule(
        rs,
        providers=[org.role_db],
        consumers=[{"ip_list": {"href": "/orgs/1/sec_policy/active/ip_lists/999"}}],
        services=["tcp/2"],
    )
    org.rule(
        rs,
        providers=[org.role_db],
        consumers=[org.role_web],
        services=[{"href": "/orgs/1/sec_policy/active/services/999"}],
    )
    org.rule(rs, providers=[org.role_db], consumers=[{"virtual_service": {"href": "/orgs/1/vs/1"}}], services=["tcp/4"])
    ir = compile_host(org, "db1")
    assert view(ir) == []
    text = "\n".join(ir["warnings"])
    assert f"rule {href} consumers: unknown label {ghost_label}: matches nothing" in text
    assert "unknown IP list /orgs/1/sec_policy/active/ip_lists/999" in text
    assert "virtual_service actors are not enforced" in text
    compiler = compiler_for(org)
    assert any("unknown service /orgs/1/sec_policy/active/services/999" in t for t in compiler.warnings)


def test_sec_connect_and_virtual_service_resolution_are_warned_about(org):
    rs = org.rule_set("RS", scopes=[[]])
    org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=["tcp/1"], sec_connect=True)
    vs = org.rule(
        rs,
        providers=[org.role_db],
        consumers=[org.role_web],
        services=["tcp/2"],
        resolve_labels_as={"providers": ["virtual_services"], "consumers": ["workloads"]},
    )
    ir = compile_host(org, "db1")
    assert [rule["services"][0]["ports"] for rule in view(ir)] == [[[1, 1]]]
    assert any("sec_connect can't be done by a packet filter" in text for text in ir["warnings"])
    assert any(
        vs in text and "virtual services are not enforced" in text for text in compile_host(org, "web1")["warnings"]
    )


# --- hosts, sharing, determinism -----------------------------------------------------------------------------------
def test_hosts_are_found_by_href_hostname_name_or_short_hostname(org):
    org.workload("app1.example.com", [org.role_web], ["10.0.9.1"], name="billing")
    compiler = compiler_for(org)
    href = org.workloads[-1]["href"]
    assert {compiler.find(key).href for key in (href, "app1.example.com", "billing", "app1")} == {href}
    assert compiler.find("nope") is None
    org.workload("web1", [org.role_web], ["10.0.9.2"])
    with pytest.raises(PolicyError, match="2 workloads have the hostname 'web1'"):
        compiler_for(org).compile("web1")


def test_deleted_workloads_are_no_peers(org):
    org.workloads[0]["deleted"] = True  # web1
    rs = org.rule_set("RS", scopes=[[]])
    org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=["tcp/1"])
    assert "10.0.1.1" not in peers(compile_host(org, "db1"), "in")


def test_equal_peer_sets_are_one_named_set_shared_by_rules_and_hosts(org):
    rs = org.rule_set("RS", scopes=[[org.env_prod]])
    org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=["tcp/1"])
    org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=["udp/2"])
    compiler = compiler_for(org)
    db1, db2 = compiler.compile("db1"), compiler.compile("db2")
    names = {rule["peers"]["ipv4"] for ir in (db1, db2) for rule in ir["rules"]}
    assert len(names) == 1 and len(db1["sets"]) == 1
    # Identical (peers, services) from several PCE rules become one entry naming all of them.
    href2 = org.rule(rs, providers=[org.role_db], consumers=[org.role_web], services=["tcp/1"])
    merged = [rule for rule in compile_host(org, "db1")["rules"] if rule["services"][0]["proto"] == 6]
    assert len(merged) == 1 and href2 in merged[0]["hrefs"] and len(merged[0]["hrefs"]) == 2


def test_same_input_gives_the_same_ir_whatever_the_order_and_hash_seed(org, tmp_path):
    rs = org.rule_set("RS", scopes=[[org.app_shop], [org.app_crm]])
    group = org.label_group("LG", "role", labels=[org.role_web, org.role_db])
    org.rule(rs, providers=[group], consumers=["ams", org.any_ip_list], services=["tcp/1", "udp/2"])
    org.deny_rule(rs, providers=["ams"], consumers=[org.ip_list("x", ["192.0.2.0/24"])], services=["all"])
    snapshot = org.snapshot()
    reordered = {name: list(reversed(items)) for name, items in snapshot.items()}
    first = Compiler(Snapshot(snapshot)).compile("db1")
    assert Compiler(Snapshot(reordered)).compile("db1") == first
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(snapshot))
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from ansible_collections.microseg.illumio.plugins.module_utils.policy.compiler import Compiler;"
        "from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import Snapshot;"
        "from ansible_collections.microseg.illumio.plugins.module_utils.policy.render import render;"
        "ir = Compiler(Snapshot.from_file(sys.argv[2])).compile('db1');"
        "print(json.dumps([ir, render(ir, 'nftables'), render(ir, 'iptables')], sort_keys=True))"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-c", script, _collections_root(), str(path)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


def _collections_root():
    import ansible_collections.microseg.illumio as collection

    return str(Path(collection.__path__[0]).parents[2])


def test_compiles_the_pce_sample_payloads():
    data = {
        name: json.loads((SAMPLES / f"{name}.json").read_text())
        for name in ("ip_lists", "label_groups", "rule_sets", "services", "workloads")
    }
    snapshot = Snapshot(data)
    assert [rs["href"] for rs in snapshot.rule_sets] == [
        "/orgs/1/sec_policy/active/rule_sets/1",
        "/orgs/1/sec_policy/draft/rule_sets/2",
    ]
    ir = Compiler(snapshot).compile("ubuntu-db")
    assert ir["enforcement_mode"] == "visibility_only"
    assert ir["workload"]["addresses"] == {"ipv4": ["10.0.186.116"], "ipv6": ["fd00::200:a:0:ba74"]}
    assert ir["rules"] == []


def test_bad_management_allow_is_an_error(org):
    with pytest.raises(PolicyError, match="management_allow entry 'ssh-host' is not an IP address"):
        compiler_for(org, management_allow=["ssh-host"])
    ir = compile_host(org, "db1", management_allow=["192.0.2.10", "192.0.2.11", "2001:db8::/64"])
    assert ir["always_allow"]["management"] == {"ipv4": ["192.0.2.10/31"], "ipv6": ["2001:db8::/64"]}
