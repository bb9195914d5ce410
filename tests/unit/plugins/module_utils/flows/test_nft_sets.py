"""nft_sets: reading the enforcement table's flow sets, and flow_collect's nft_sets source, against a fake nft
that keeps the maps and sets like the kernel does (tests/unit/fake_nft.py; the real kernel is exercised by
tests/vensim/test_flows_role.py).
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.flows import nft_sets
from ansible_collections.microseg.illumio.plugins.modules import flow_collect
from fake_nft import TIMEOUT, FakeNft, element, set_json
from module_runner import run_module

NOW = 1_800_000_000.0


def test_parse_set_json_turns_elements_into_flows():
    text = set_json(
        "flow_allow_v4_a",
        [element("10.0.0.1", "10.0.0.2", "tcp", 5432, 3, expires=TIMEOUT - 10), element("::1", "::2", 17, 53, 1)],
    )
    flows, full = nft_sets.parse_set_json(text, "allowed", since=NOW - 100, now=NOW)
    assert full == 0
    assert flows == [
        ("10.0.0.1", "10.0.0.2", 5432, 6, "allowed", 3, NOW - 100, NOW - 10),
        ("::1", "::2", 53, 17, "allowed", 1, NOW - 100, NOW),
    ]


def test_parse_set_json_reports_a_full_set_and_skips_odd_elements():
    elements = [element("10.0.0.1", "10.0.0.2", "tcp", 22, 1), {"elem": {"val": "nonsense"}}]
    flows, full = nft_sets.parse_set_json(set_json("flow_drop_v4_b", elements, size=2), "blocked", now=NOW)
    assert full == 2
    assert [flow[:6] for flow in flows] == [("10.0.0.1", "10.0.0.2", 22, 6, "blocked", 1)]
    with pytest.raises(nft_sets.NftSetError, match="no JSON"):
        nft_sets.parse_set_json("oops", "blocked")


def test_switch_and_flush_scripts_are_single_transactions():
    assert nft_sets.switch_script("b") == (
        "flush map inet illumio flow_gen_allow\n"
        "add element inet illumio flow_gen_allow { tcp : jump flow_allow_b, udp : jump flow_allow_b }\n"
        "flush map inet illumio flow_gen_drop\n"
        "add element inet illumio flow_gen_drop { tcp : jump flow_drop_b, udp : jump flow_drop_b }\n"
    )
    assert nft_sets.flush_script("a").splitlines() == [
        "flush set inet illumio flow_allow_v4_a",
        "flush set inet illumio flow_allow_v6_a",
        "flush set inet illumio flow_drop_v4_a",
        "flush set inet illumio flow_drop_v6_a",
    ]


@pytest.fixture
def nft(monkeypatch):
    fake = FakeNft()
    monkeypatch.setattr(
        AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/usr/sbin/" + name
    )
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, argv, data=None, binary_data=False: fake(argv, data))
    monkeypatch.setattr(nft_sets, "SETTLE_SECONDS", 0)
    return fake


@pytest.fixture
def warnings(monkeypatch):
    found = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning: found.append(warning))
    return found


def collect(tmp_path, check_mode=False, **options):
    args = {
        "sources": ["nft_sets"],
        "spool_dir": str(tmp_path / "spool"),
        "state_file": str(tmp_path / "state.json"),
        "ven_data_dir": str(tmp_path / "no_ven"),
    }
    args.update(options)
    return run_module(flow_collect.main, args, check_mode=check_mode)


def spooled(tmp_path):
    return sorted(line for path in (tmp_path / "spool").glob("flows-*.csv") for line in path.read_text().splitlines())


def test_collect_switches_reads_spools_then_flushes(tmp_path, nft, warnings):
    nft.record("allow", "ipv4", "10.0.0.9", "10.0.0.1", "tcp", 5432, packets=4)
    nft.record("drop", "ipv4", "10.0.0.9", "10.0.0.1", "tcp", 23, packets=2)
    nft.record("drop", "ipv6", "fd00::9", "fd00::1", "udp", 161)
    result = collect(tmp_path)
    assert result["changed"] is True
    assert result["flows"] == 3 and result["connections"] == 7
    assert [line.split(",")[:5] for line in spooled(tmp_path)] == [
        ["10.0.0.9", "10.0.0.1", "23", "6", "2"],
        ["10.0.0.9", "10.0.0.1", "5432", "6", "4"],
        ["fd00::9", "fd00::1", "161", "17", "1"],
    ]
    # Read, switch to b, read a again (complete now), and only then flush a - after the spool was written.
    writes = [call for call in nft.calls if call.startswith(("flush", "add"))]
    assert writes[0].startswith("flush map inet illumio flow_gen_allow") and "jump flow_allow_b" in writes[0]
    assert writes[1].startswith("flush set inet illumio flow_allow_v4_a")
    assert nft.filling == "b" and nft.sets == {}
    state = json.loads((tmp_path / "state.json").read_text())
    assert list(state["sources"]["nft_sets"]["since"]) == ["b"]
    assert warnings == []
    # Nothing new: no switch, nothing spooled, no change.
    calls = len(nft.calls)
    again = collect(tmp_path)
    assert again["changed"] is False and again["flows"] == 0
    assert not any(call.startswith(("flush", "add")) for call in nft.calls[calls:])
    # Traffic into generation b is read next time, with b's start as its first seen time.
    nft.record("allow", "ipv4", "10.0.0.8", "10.0.0.1", "udp", 53)
    third = collect(tmp_path)
    assert third["flows"] == 1 and nft.filling == "a"
    line = next(line for line in spooled(tmp_path) if line.startswith("10.0.0.8"))
    assert int(line.split(",")[5]) == int(state["sources"]["nft_sets"]["since"]["b"])


def test_check_mode_reads_both_generations_and_changes_nothing(tmp_path, nft):
    nft.record("allow", "ipv4", "10.0.0.9", "10.0.0.1", "tcp", 80, generation="a")
    nft.record("allow", "ipv4", "10.0.0.9", "10.0.0.1", "tcp", 80, generation="b", packets=2)
    result = collect(tmp_path, check_mode=True)
    assert result["changed"] is True and result["connections"] == 3
    assert not (tmp_path / "spool").exists() and not (tmp_path / "state.json").exists()
    assert nft.filling == "a" and len(nft.sets) == 2


def test_full_sets_are_warned_about(tmp_path, nft, warnings, monkeypatch):
    nft.record("drop", "ipv4", "10.0.0.9", "10.0.0.1", "tcp", 23)
    real = nft_sets.parse_set_json
    monkeypatch.setattr(
        nft_sets,
        "parse_set_json",
        lambda text, *rest: (real(text, *rest)[0], 1) if "10.0.0.9" in text else real(text, *rest),
    )
    result = collect(tmp_path)
    assert any("flow_drop_v4_a was full" in note for note in result["sources"]["nft_sets"]["lost"])
    assert any("flow_set_size" in warning for warning in warnings)


def test_a_table_that_records_nothing_is_a_warning(tmp_path, nft, warnings):
    nft.records = False
    result = collect(tmp_path)
    assert result["changed"] is False and result["flows"] == 0
    assert warnings == ["nft_sets: the table inet illumio records no flows (compile with record_flows); nothing read"]
    nft.table = False
    collect(tmp_path)
    assert warnings[-1] == "nft_sets: the table inet illumio does not exist (yet); nothing read"


def test_auto_picks_the_ven_logs_then_the_flow_sets_then_conntrack(tmp_path, nft, monkeypatch):
    nft.record("allow", "ipv4", "10.0.0.9", "10.0.0.1", "tcp", 80)
    assert list(collect(tmp_path, sources=["auto"])["sources"]) == ["nft_sets"]
    nft.records = False
    monkeypatch.setattr(flow_collect, "read_conntrack", lambda module, command, aggregate: flow_collect.new_report("x"))
    assert list(collect(tmp_path, sources=["auto"])["sources"]) == ["conntrack"]
    log = tmp_path / "ven" / "log"
    log.mkdir(parents=True)
    (log / "vtapflow.log").write_text("")
    assert list(collect(tmp_path, sources=["auto"], ven_data_dir=str(tmp_path / "ven"))["sources"]) == ["vtapflow"]
