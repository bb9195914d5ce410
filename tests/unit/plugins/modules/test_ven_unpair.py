"""ven_unpair against the fake VEN of test_ven_suspension.py (no root): modes, backup, idempotence, check mode."""

from __future__ import annotations

import os

import pytest
from ansible_collections.microseg.illumio.plugins.modules import ven_unpair
from module_runner import run_module
from test_ven_suspension import FakeHost


@pytest.fixture
def host(tmp_path, monkeypatch):
    return FakeHost(tmp_path, monkeypatch)


def run(host, check_mode=False, diff=False, **args):
    return run_module(ven_unpair.main, {"install_dir": str(host.install_dir), **args}, check_mode=check_mode, diff=diff)


@pytest.mark.parametrize("mode", ["recommended", "saved", "open"])
def test_unpair_passes_the_mode_and_then_has_nothing_left_to_do(host, mode):
    result = run(host, firewall_restore=mode)
    assert result["changed"] is True, result
    assert result["firewall_restore"] == mode
    assert result["output"][0] == f"Unpairing the VEN (firewall: {mode})"
    assert result["output"][-1] == "The VEN has been unpaired and uninstalled. PCE was notified."
    assert result["backup_files"] == []
    assert host.ctl_log() == ["unpair " + mode]
    assert not host.ctl.exists()

    again = run(host, firewall_restore=mode)
    assert again == {"changed": False, "firewall_restore": mode, "output": [], "backup_files": []}


def test_the_firewall_is_backed_up_first_when_asked(host):
    before = host.firewall()
    backup = host.root / "unpair-backup"
    result = run(host, firewall_restore="recommended", backup_dir=str(backup))
    assert result["changed"] is True
    assert sorted(os.path.basename(path) for path in result["backup_files"]) == sorted(os.listdir(str(backup)))
    assert (backup / "iptables-latest.rules").read_text() == before[0]
    assert (backup / "ip6tables-latest.rules").read_text() == before[1]
    assert (backup / "nftables-latest.nft").read_text() == before[2]
    assert (backup.stat().st_mode & 0o777) == 0o700


def test_a_failing_backup_leaves_the_ven_paired(host):
    host.update(lambda state: state.setdefault("broken", {}).update({"iptables-save": "iptables-save: denied"}))
    result = run(host, firewall_restore="saved", backup_dir=str(host.root / "b"))
    assert result["failed"] is True
    assert "the VEN was not unpaired" in result["msg"]
    assert "iptables-save failed (exit 1): iptables-save: denied" in result["msg"]
    assert host.ctl.exists()
    assert host.ctl_log() == []


def test_check_mode_changes_nothing(host):
    result = run(host, firewall_restore="open", backup_dir=str(host.root / "b"), check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["output"] == []
    assert result["diff"]["before"] == "installed: true\nstate: running\nagent_state: enforced\n"
    assert result["diff"]["after"] == "installed: false\n"
    assert host.ctl.exists()
    assert host.ctl_log() == []
    assert not (host.root / "b").exists()


def test_check_mode_without_a_ven(host, tmp_path):
    result = run(host, firewall_restore="open", install_dir=str(tmp_path / "none"), check_mode=True, diff=True)
    assert result["changed"] is False
    assert "diff" not in result


def test_a_failing_unpair_fails_with_the_vens_words(host):
    host.update(
        lambda state: state.setdefault("broken", {}).update({"illumio-ven-ctl unpair": "illumio-ven-ctl: PCE said no"})
    )
    result = run(host, firewall_restore="recommended")
    assert result["failed"] is True
    assert result["msg"] == "illumio-ven-ctl unpair failed (exit 1): illumio-ven-ctl: PCE said no"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "missing required arguments: firewall_restore"),
        ({"firewall_restore": "closed"}, "value of firewall_restore must be one of: recommended, saved, open"),
        ({"firewall_restore": "open", "backup_dir": "/"}, "backup_dir must be a directory of its own"),
    ],
)
def test_bad_input_is_refused(host, args, message):
    result = run(host, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert host.ctl.exists()
    assert host.ctl_log() == []
