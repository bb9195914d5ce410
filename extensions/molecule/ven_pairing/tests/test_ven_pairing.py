"""Verifier of the vensim_pairing scenario: the VEN stand-in is installed, running and paired on every host."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

testinfra_hosts = ["all"]

CTL = "/opt/illumio_ven/illumio-ven-ctl"
PCE_DIR = Path("/var/tmp/vensim-molecule-pce")  # noqa: S108 - where create.yml started the lab PCE


@pytest.fixture(scope="module")
def lab_pce():
    project = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[4]))
    sys.path.insert(0, str(project / "tests" / "vensim"))
    import vensimlab

    return vensimlab.LabPce(PCE_DIR)


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith("-"))


def test_package_is_installed(host):
    package = host.package("illumio-ven")
    assert package.is_installed
    assert package.version == "23.2.10-100"


def test_ownership_follows_the_documented_layout(host):
    assert host.user("ilo-ven").group == "ilo-ven"
    ven_dir = host.file("/opt/illumio_ven")
    assert (ven_dir.user, ven_dir.group, ven_dir.mode) == ("root", "ilo-ven", 0o750)
    data_dir = host.file("/opt/illumio_ven_data")
    assert (data_dir.user, data_dir.group, data_dir.mode) == ("ilo-ven", "ilo-ven", 0o750)
    token = host.file("/opt/illumio_ven_data/etc/agent_token")
    assert (token.user, token.mode) == ("root", 0o600)


def test_status_says_running_and_paired(host):
    shown = host.run(f"{CTL} status")
    assert shown.rc == 0, shown.stderr
    assert shown.stdout.startswith("Illumio VEN is running")
    fields = status_fields(shown.stdout)
    assert fields["Activation"] == "activated"
    assert fields["VEN Connectivity"] == "Connected"
    assert fields["Agent State"] == "illuminated"


def test_workload_is_managed_and_online_in_the_pce(host, lab_pce):
    name = host.check_output("hostname")
    workloads = lab_pce.workloads(name)
    assert len(workloads) == 1
    assert workloads[0]["ven"]["href"]
    assert workloads[0]["online"] is True
    status = status_fields(host.check_output(f"{CTL} status"))
    assert status["Workload"] == workloads[0]["href"]
