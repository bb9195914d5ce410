"""ven_compat_facts: options, the facts and lists it returns, warnings, check mode; the host is a fixture tree."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.ven import compat
from ansible_collections.microseg.illumio.plugins.modules import ven_compat_facts
from module_runner import run_module

UDP_500 = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   1: 00000000:01F4 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 4242 2\n"
)


@pytest.fixture
def fixture_host(tmp_path: Path):
    """A host tree: forwarding on, UDP 500 bound, tracefs mounted; no commands installed; 1 GB free."""
    root = tmp_path / "host"
    files = {
        "proc/sys/net/ipv4/ip_forward": "1\n",
        "proc/net/udp": UDP_500,
        "proc/net/if_inet6": "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n",
        "proc/mounts": "tracefs /sys/kernel/tracing tracefs rw 0 0\n",
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "opt").mkdir()
    ran = []
    made = []

    def run(argv):
        ran.append(argv)
        return 1, "", "unexpected"

    def probe(**kwargs):
        made.append(kwargs)
        return compat.Probe(
            root=str(root),
            run_command=run,
            which=lambda name: None,
            statvfs=lambda path: SimpleNamespace(f_bavail=256 * 1000, f_frsize=4096),
        )

    with mock.patch.object(ven_compat_facts, "Probe", probe):
        yield SimpleNamespace(root=root, ran=ran, made=made)


def test_returns_facts_lists_and_summary_without_changing(fixture_host):
    result = run_module(ven_compat_facts.main, {})
    assert result["changed"] is False
    facts = result["ansible_facts"]["ven_compat"]
    assert set(facts) == {"overall", "checks", "skipped"}
    assert list(facts["checks"]) == [name for name in compat.CHECK_NAMES if name != "pce_reachable"]
    assert facts["skipped"] == {"pce_reachable": "no management_server given"}
    assert result["overall"] == facts["overall"] == "red"
    assert result["red"] == ["ipsec_ports"]
    assert result["yellow"] == [
        "ip_forwarding",  # forwarding on, rules unknown: no iptables-save, no nft
        "iptables_rules",
        "ip6tables_rules",
        "routing_table",
        "disk_space",  # 1000 MB: below the recommended 1536
        "required_commands",
        "time_sync",
    ]
    assert facts["checks"]["tracefs"]["level"] == "green"
    assert facts["checks"]["ipv6_global"]["level"] == "green"
    assert result["summary"][0].startswith("ipsec_ports: red - UDP 500/4500 in use")
    assert result["summary"][-1] == "pce_reachable: skipped - no management_server given"
    # The module hands its own run_command and get_bin_path to the probe.
    assert set(fixture_host.made[0]) == {"run_command", "which"}


def test_check_mode_runs_the_same_checks(fixture_host):
    normal = run_module(ven_compat_facts.main, {"checks": ["ipsec_ports", "tracefs"]})
    checked = run_module(ven_compat_facts.main, {"checks": ["ipsec_ports", "tracefs"]}, check_mode=True)
    assert checked == normal
    assert checked["changed"] is False
    assert list(checked["ansible_facts"]["ven_compat"]["checks"]) == ["ipsec_ports", "tracefs"]


def test_skip_checks_and_options_reach_the_checks(fixture_host):
    result = run_module(
        ven_compat_facts.main,
        {
            "skip_checks": ["ipsec_ports", "time_sync", "required_commands", "routing_table"],
            "checks": ["all"],
            "disk_min_mb": 2000,
            "disk_recommended_mb": 3000,
            "data_dir": "/opt/elsewhere/data",
        },
    )
    checks = result["ansible_facts"]["ven_compat"]["checks"]
    assert "ipsec_ports" not in checks
    assert checks["disk_space"]["level"] == "red"
    assert checks["disk_space"]["details"]["filesystems"][0]["paths"] == ["/opt/illumio_ven", "/opt/elsewhere/data"]
    assert result["red"] == ["disk_space"]


def test_pce_reachable_runs_with_a_management_server(fixture_host):
    result = run_module(
        ven_compat_facts.main, {"checks": ["pce_reachable"], "management_server": "pce.invalid:8443", "timeout": 2}
    )
    check = result["ansible_facts"]["ven_compat"]["checks"]["pce_reachable"]
    assert check["level"] == "red"
    assert "pce.invalid:8443: the name does not resolve" in check["message"]


@pytest.mark.parametrize(
    ("warn_level", "expected"),
    [("none", []), ("red", ["ipsec_ports"]), ("yellow", ["ip_forwarding", "ipsec_ports"])],
)
def test_warn_level(fixture_host, warn_level, expected):
    with mock.patch.object(AnsibleModule, "warn") as warn:
        run_module(
            ven_compat_facts.main,
            {"checks": ["ip_forwarding", "ipsec_ports", "tracefs"], "warn_level": warn_level},
        )
    messages = [call.args[0] for call in warn.call_args_list]
    assert [message.split()[2] for message in messages] == expected
    assert all(message.startswith("VEN compatibility ") for message in messages)


def test_bad_options_fail(fixture_host):
    result = run_module(ven_compat_facts.main, {"checks": ["nope"]})
    assert result["failed"] is True
    assert "nope" in result["msg"]
    result = run_module(ven_compat_facts.main, {"timeout": 0})
    assert result["failed"] is True
    assert "timeout" in result["msg"]


def test_no_command_is_run_when_none_is_installed(fixture_host):
    run_module(ven_compat_facts.main, {})
    assert fixture_host.ran == []
