"""Verifier of the ven_pairing scenario: what role microseg.illumio.ven left on each host and in the lab PCE."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

testinfra_hosts = ["all"]

CTL = "/opt/illumio_ven/illumio-ven-ctl"
PCE_DIR = Path("/var/tmp/molecule-ven-pairing-pce")  # noqa: S108 - where create.yml started the lab PCE
RECORD = "/var/lib/microseg-illumio/ven/install.json"


@pytest.fixture(scope="module")
def lab_pce():
    project = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[4]))
    sys.path.insert(0, str(project / "tests" / "vensim"))
    import vensimlab

    return vensimlab.LabPce(PCE_DIR)


def status_fields(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line and not line.startswith("-"))


def name_of(host) -> str:
    return host.backend.get_hostname()


def test_every_host_has_the_older_release_from_the_library(host):
    assert host.package("illumio-ven").version == "23.2.10-100"


def test_no_activation_code_is_left_on_disk(host):
    for data_dir in ("/opt/illumio_ven_data", "/srv/illumio_ven_data"):
        assert not host.file(f"{data_dir}/tmp/pair.sh").exists  # noqa: S108 - the VEN data dir, not /tmp
        assert not host.file(f"{data_dir}/tmp/prepare.sh").exists  # noqa: S108 - the VEN data dir, not /tmp
    if name_of(host) != "mp3":
        assert not host.file("/opt/illumio_ven_data/etc/agent_activation.cfg").exists
        assert not host.file("/srv/illumio_ven_data/etc/agent_activation.cfg").exists


def test_paired_hosts_are_running_and_managed_in_the_pce(host, lab_pce):
    if name_of(host) == "mp3":
        pytest.skip("mp3 is a prepared image")
    fields = status_fields(host.run(f"{CTL} status").stdout)
    assert fields["Activation"] == "activated"
    assert fields["VEN Connectivity"] == "Connected"
    workloads = lab_pce.workloads(host.check_output("hostname"))
    assert len(workloads) == 1 and workloads[0]["online"] is True
    assert fields["Workload"] == workloads[0]["href"]


def test_pairing_script_host_has_its_label_and_mode(host, lab_pce):
    if name_of(host) != "mp1":
        pytest.skip("mp1 only")
    workload = lab_pce.workloads(host.check_output("hostname"))[0]
    status, labels = lab_pce.api("GET", "/labels?key=role&value=molecule-web")
    assert status == 200 and labels
    assert labels[0]["href"] in [label["href"] for label in workload["labels"]]
    assert workload["enforcement_mode"] == "visibility_only"
    record = json.loads(host.file(RECORD).content_string)
    assert record["method"] == "pairing_script"
    assert host.file(RECORD).mode == 0o600


def test_package_host_keeps_its_data_dir_user_and_name(host, lab_pce):
    if name_of(host) != "mp2":
        pytest.skip("mp2 only")
    data_dir = host.file("/srv/illumio_ven_data")
    assert (data_dir.user, data_dir.mode) == ("venuser", 0o750)
    assert not host.file("/opt/illumio_ven_data/etc").exists
    record = json.loads(host.file(RECORD).content_string)
    assert record["environment"]["VEN_DATA_DIR"] == "/srv/illumio_ven_data"
    assert record["environment"]["VEN_NONPRIV_USER"] == "venuser"
    assert "VEN_ACTIVATION_CODE" not in host.file(RECORD).content_string
    workload = lab_pce.workloads(host.check_output("hostname"))[0]
    assert workload["name"] == "molecule-package-host"


def test_prepared_image_pairs_when_the_ven_first_starts(host, lab_pce):
    if name_of(host) != "mp3":
        pytest.skip("mp3 only")
    before = host.run(f"{CTL} status")
    assert before.rc == 3 and status_fields(before.stdout)["Activation"] == "prepared"
    settings = host.file("/opt/illumio_ven_data/etc/agent_activation.cfg")
    assert settings.mode & 0o007 == 0
    assert lab_pce.workloads(host.check_output("hostname")) == []
    # What the first boot of a clone does: the VEN starts, reads its activation file and pairs.
    host.run_expect([0], f"{CTL} start")
    fields = status_fields(host.run(f"{CTL} status").stdout)
    assert fields["Activation"] == "activated"
    assert not settings.exists
    assert len(lab_pce.workloads(host.check_output("hostname"))) == 1


def test_repo_host_installed_the_pinned_version_from_its_repository(host, lab_pce):
    if name_of(host) != "mp4":
        pytest.skip("mp4 only")
    assert host.package("illumio-ven").version == "23.2.10-100"
    assert "23.2.20-200" in host.check_output("apt-cache policy illumio-ven"), "the newer one was there to pick"
    record = json.loads(host.file(RECORD).content_string)
    assert record["method"] == "repo"
    fields = status_fields(host.run(f"{CTL} status").stdout)
    assert fields["Activation"] == "activated"
