"""The firewall backup and restore of ven_suspension against the real iptables and nft (root only).

Everything happens in a network namespace of this test's own (`vsusp-<pid>`), so the machine's firewall is never
touched: custom iptables/ip6tables rules, a custom nft table and VEN-like (`illumio*`) chains and a table are set up,
backed up, all removed as a VEN suspend does, the VEN's part programmed again as unsuspend does, and then the
backup's restore path must bring back exactly the host's own rules.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
TOOLS = ("ip", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore", "iptables", "nft")


def _load_firewall_backup():
    """firewall_backup uses the standard library only, so it loads from its file without the collection."""
    path = REPO / "plugins" / "module_utils" / "ven" / "firewall_backup.py"
    spec = importlib.util.spec_from_file_location("vsusp_firewall_backup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fb = _load_firewall_backup()
FOUND = {tool: shutil.which(tool, path=SBIN_PATH) for tool in TOOLS}
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a network namespace of its own)"),
    pytest.mark.skipif(
        not all(FOUND.values()), reason="needs " + " ".join(tool for tool, path in FOUND.items() if not path)
    ),
]


class NetnsModule:
    """The part of AnsibleModule that firewall_backup uses, running every command inside the namespace."""

    def __init__(self, namespace: str, tmpdir: Path):
        self.namespace = namespace
        self.tmpdir = str(tmpdir)

    def run_command(self, args, data=None, binary_data=False):
        done = subprocess.run(
            [FOUND["ip"], "netns", "exec", self.namespace, *args],
            input=data,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        return done.returncode, done.stdout, done.stderr


@pytest.fixture
def netns():
    name = f"vsusp-{os.getpid()}"
    subprocess.run([FOUND["ip"], "netns", "add", name], check=True, capture_output=True, text=True)
    try:
        yield name
    finally:
        subprocess.run([FOUND["ip"], "netns", "delete", name], check=False, capture_output=True)


def in_ns(namespace: str, script: str) -> str:
    """Run shell lines inside the namespace; each must succeed."""
    done = subprocess.run(
        [FOUND["ip"], "netns", "exec", namespace, "sh", "-euc", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "PATH": SBIN_PATH},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


HOST_RULES = """
iptables -N custom-in
iptables -A INPUT -s 198.51.100.0/24 -j custom-in
iptables -A custom-in -p tcp --dport 2222 -m comment --comment "admin ssh" -j ACCEPT
iptables -t nat -A POSTROUTING -o lo -j RETURN
ip6tables -A INPUT -p tcp --dport 2223 -j ACCEPT
nft add table inet custom_t
nft add chain inet custom_t input '{ type filter hook input priority 10; policy accept; }'
nft add rule inet custom_t input tcp dport 8080 counter accept comment '"web {8080}"'
"""

VEN_RULES = """
iptables -N illumio-in
iptables -A illumio-in -j RETURN
iptables -I INPUT 1 -j illumio-in
nft add table inet illumio_t
nft add chain inet illumio_t flows '{ type filter hook input priority 20; policy accept; }'
"""


def test_restore_brings_back_exactly_the_hosts_own_rules(netns, tmp_path):
    module = NetnsModule(netns, tmp_path)
    tools = {name: FOUND[name] for name in TOOLS}
    in_ns(netns, VEN_RULES + HOST_RULES)
    before = fb.snapshot(module, tools)
    assert "custom-in" in before["iptables"] and "table inet custom_t" in before["nftables"]

    written = fb.write_backup(str(tmp_path / "backup"), before)
    assert written
    backup = fb.read_latest(str(tmp_path / "backup"))
    assert backup == before

    # Suspend: every rule of the host goes. Unsuspend: the VEN programs its own rules again.
    in_ns(netns, "nft flush ruleset")
    in_ns(netns, VEN_RULES)

    restored = fb.restore(module, backup, tools=tools)
    assert restored == [
        "nftables: table inet custom_t",
        "iptables filter: chain custom-in",
        "iptables filter: -A INPUT -s 198.51.100.0/24 -j custom-in",
        'iptables filter: -A custom-in -p tcp -m tcp --dport 2222 -m comment --comment "admin ssh" -j ACCEPT',
        "iptables nat: -A POSTROUTING -o lo -j RETURN",
        "ip6tables filter: -A INPUT -p tcp -m tcp --dport 2223 -j ACCEPT",
    ]

    after = fb.snapshot(module, tools)
    v4 = dict(fb.parse_xtables(after["iptables"]))
    assert v4["filter"]["rules"]["INPUT"] == [
        "-A INPUT -j illumio-in",
        "-A INPUT -s 198.51.100.0/24 -j custom-in",
    ]
    assert fb.missing_xtables(before["iptables"], after["iptables"]) == []
    assert fb.missing_xtables(before["ip6tables"], after["ip6tables"]) == []
    assert fb.missing_nft(before["nftables"], after["nftables"]) == []
    assert after["nftables"].count("table inet illumio_t") == 1
    assert 'comment "web {8080}"' in after["nftables"]

    # Nothing missing any more: a second restore changes nothing.
    assert fb.restore(module, backup, tools=tools) == []
