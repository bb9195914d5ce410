"""Verifier of the ven_lifecycle scenario: upgrades, suspend/unsuspend and unpair, on the hosts and in the PCE."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

testinfra_hosts = ["all"]

CTL = "/opt/illumio_ven/illumio-ven-ctl"
PCE_DIR = Path("/var/tmp/molecule-ven-lifecycle-pce")  # noqa: S108 - where create.yml started the lab PCE
UNPAIR_MODES = {"ml3": "recommended", "ml4": "saved", "ml5": "open"}
BACKUP_DIR = "/var/lib/microseg-illumio/ven_firewall"


@pytest.fixture(scope="module")
def lab_pce():
    project = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[4]))
    sys.path.insert(0, str(project / "tests" / "vensim"))
    import vensimlab

    return vensimlab.LabPce(PCE_DIR)


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith("-"))


def only(host, *names: str) -> None:
    if host.backend.get_hostname() not in names:
        pytest.skip("for " + ", ".join(names))


def ven_of(lab_pce, hostname: str) -> dict:
    """The PCE's VEN record of the host."""
    workloads = lab_pce.workloads(hostname)
    assert len(workloads) == 1
    status, ven = lab_pce.api("GET", workloads[0]["ven"]["href"])
    assert status == 200
    return ven


def reported_version(lab_pce, hostname: str, wanted: str, timeout: float = 45.0) -> str:
    deadline = time.monotonic() + timeout
    version = ""
    while time.monotonic() < deadline:
        version = ven_of(lab_pce, hostname)["version"]
        if version == wanted:
            break
        time.sleep(2)
    return version


def test_package_upgrade_keeps_data_dir_user_and_activation(host, lab_pce):
    only(host, "ml1")
    assert host.package("illumio-ven").version == "23.2.20-200"
    fields = status_fields(host.run(f"{CTL} status").stdout)
    assert fields["VEN Version"] == "23.2.20-200"
    assert fields["Activation"] == "activated"
    data_dir = host.file("/srv/illumio_ven_data")
    assert (data_dir.user, data_dir.mode) == ("venuser", 0o750)
    record = json.loads(host.file("/var/lib/microseg-illumio/ven/install.json").content_string)
    assert record["version"] == "23.2.20-200"
    assert record["environment"]["VEN_DATA_DIR"] == "/srv/illumio_ven_data"
    assert record["environment"]["VEN_NONPRIV_USER"] == "venuser"
    assert reported_version(lab_pce, host.check_output("hostname"), "23.2.20-200") == "23.2.20-200"


def test_pce_driven_upgrade_reached_the_new_version(host, lab_pce):
    only(host, "ml6")
    assert host.package("illumio-ven").version == "23.2.20-200"
    assert ven_of(lab_pce, host.check_output("hostname"))["version"] == "23.2.20-200"
    assert status_fields(host.run(f"{CTL} status").stdout)["Activation"] == "activated"


def test_unsuspended_ven_runs_and_custom_rules_are_back(host, lab_pce):
    only(host, "ml2")
    shown = host.run(f"{CTL} status")
    assert shown.rc == 0 and shown.stdout.startswith("Illumio VEN is running")
    assert ven_of(lab_pce, host.check_output("hostname"))["status"] == "active"
    rules = host.check_output("iptables-save -t filter")
    assert rules.count("molecule-custom") == 1, rules
    assert "table inet molecule_custom" in host.check_output("nft list tables")


def test_suspend_backed_up_the_firewall_first(host):
    only(host, "ml2")
    backups = host.file(BACKUP_DIR)
    assert backups.is_directory and backups.mode == 0o700
    listed = host.check_output(f"ls {BACKUP_DIR}").split()
    assert any(name.startswith("iptables") for name in listed)
    for name in listed:
        assert host.file(f"{BACKUP_DIR}/{name}").mode == 0o600
    latest = [name for name in listed if name.startswith("iptables") and "latest" in name]
    assert "molecule-custom" in host.file(f"{BACKUP_DIR}/{latest[0]}").content_string


def test_unpair_removes_the_ven_with_the_chosen_firewall_restore(host, lab_pce):
    only(host, *UNPAIR_MODES)
    mode = UNPAIR_MODES[host.backend.get_hostname()]
    assert not host.package("illumio-ven").is_installed
    assert not host.file("/opt/illumio_ven").exists
    assert not host.file("/opt/illumio_ven_data").exists
    assert not host.file("/var/lib/microseg-illumio/ven/install.json").exists
    assert f"firewall_restore={mode}" in host.file("/var/log/illumio.log").content_string
    assert lab_pce.workloads(host.check_output("hostname")) == []
