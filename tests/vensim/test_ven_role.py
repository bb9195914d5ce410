"""Role microseg.illumio.ven pairs test hosts without an activation code or API secret ever showing.

A real pairing run (pairing script on one host, package on another) with -vvv: neither the output nor the command
line of any process on this machine (controller, ssh, test hosts, the pairing script) holds an activation code or
the PCE API secret while it runs. The re-run changes nothing, makes no key and downloads nothing. Needs root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

import rolelab  # noqa: E402 - beside this file (pytest puts its folder on sys.path)

NEEDED_TOOLS = ("ip", "nsenter", "unshare", "sshd", "ssh", "dpkg-deb")
MISSING_TOOLS = [tool for tool in NEEDED_TOOLS if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root: network namespaces, mounts, sshd"),
    pytest.mark.skipif(bool(MISSING_TOOLS), reason=f"missing tools: {' '.join(MISSING_TOOLS)}"),
]

# The PCE's activation codes are long hex strings (82 digits on the lab and in pce-samples); package checksums
# (sha256, 64 digits) are the longest other hex strings a run prints.
LONG_HEX = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{65,}(?![0-9a-fA-F])")
PACKAGE = HERE.parent.parent / ".build" / "vensim" / "illumio-ven-23.2.10-100.deb12.amd64.deb"


class CommandLineWatch(threading.Thread):
    """Reads every process's command line on this machine every few milliseconds, keeping what matches."""

    def __init__(self, patterns: list[re.Pattern], secrets: list[str]):
        super().__init__(daemon=True)
        self.patterns = patterns
        self.secrets = secrets
        self.found: list[str] = []
        self.samples = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    line = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if any(p.search(line) for p in self.patterns) or any(s in line for s in self.secrets):
                    self.found.append(line)
            self.samples += 1
            self.stopping.wait(0.01)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


@pytest.fixture(scope="module")
def lab():
    if not PACKAGE.exists():
        pytest.skip(f"{PACKAGE} missing: run `make vensim`")
    with rolelab.RoleLab("pytest-ven-role", ("vr1", "vr2"), "10.213.245.0/24", "hlvrole0") as running:
        yield running


def pair(lab, *extra: str):
    role_vars = {
        "ven_labels": {"role": "secrets-web"},
        "ven_pairing_profile_settings": {"role_label_lock": False, "enforcement_mode": "visibility_only"},
    }
    host_vars = ["-e", json.dumps(role_vars)]
    return lab.playbook(
        "playbooks/pair.yml",
        "-vvv",
        "-e",
        "pair_hosts=all",
        *lab.pairing_vars("secrets-test", ven_pairing_key_per_host=True),
        *host_vars,
        *extra,
    )


@pytest.fixture(scope="module")
def existing_profile(lab):
    """The profile exists already, in idle mode: the role must use it as it is, not change it."""
    body = {"name": "secrets-test", "enabled": True, "enforcement_mode": "idle", "role_label_lock": False}
    status, made = lab.pce.api("POST", "/pairing_profiles", body)
    assert status == 201, made
    return made


@pytest.fixture(scope="module")
def first_run(lab, existing_profile):
    package_host = f"-e@{write_host_vars(lab)}"
    watch = CommandLineWatch([LONG_HEX], [lab.api_key[1]])
    watch.start()
    try:
        run = pair(lab, package_host)
    finally:
        watch.stop()
    return run, watch


def write_host_vars(lab) -> Path:
    """vr2 installs from the package file (its own code then goes through the activation file)."""
    path = lab.pce_dir / "package-host.yml"
    path.write_text(
        "ven_install_method: \"{{ 'package' if inventory_hostname == 'vr2' else 'pairing_script' }}\"\n"
        f"ven_package_src: {PACKAGE}\n"
        "ven_ca_trust_store: \"{{ inventory_hostname == 'vr2' }}\"\n",
        encoding="utf-8",
    )
    return path


def test_pairing_run_succeeds_and_pairs_both_hosts(lab, first_run):
    run = first_run[0]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for host in ("vr1", "vr2"):
        assert "Activation: activated" in lab.exec(host, "/opt/illumio_ven/illumio-ven-ctl", "status")
    assert lab.pairing_keys_made() == 2, "one single-use key per host, made on the controller"


def test_an_existing_profile_that_differs_is_reported_and_left_alone(lab, first_run, existing_profile):
    run = first_run[0]
    assert "Pairing profile secrets-test differs from ven_pairing_profile_settings and was not changed" in run.stdout
    status, profile = lab.pce.api("GET", existing_profile["href"])
    assert status == 200 and profile["enforcement_mode"] == "idle"


def test_no_code_or_secret_in_the_verbose_output(lab, first_run):
    run = first_run[0]
    output = run.stdout + run.stderr
    assert "ESTABLISH SSH CONNECTION" in output, "the run was not verbose enough to prove anything"
    assert LONG_HEX.findall(output) == []
    assert lab.api_key[1] not in output


def test_no_code_or_secret_on_any_command_line_while_pairing(first_run):
    watch = first_run[1]
    assert watch.samples > 50, "the watch did not sample the run"
    assert watch.found == []


def test_rerun_changes_nothing_makes_no_key_and_downloads_nothing(lab, first_run):
    before_keys = lab.pairing_keys_made()
    script_dir_before = lab.script_folder_stamp("vr1")
    run = pair(lab, f"-e@{write_host_vars(lab)}")
    assert run.returncode == 0, run.stdout[-4000:]
    counters = rolelab.recap(run.stdout)
    assert counters["vr1"]["changed"] == 0 and counters["vr2"]["changed"] == 0, counters
    assert lab.pairing_keys_made() == before_keys
    # The pairing script's folder is emptied and recreated whenever the script is fetched.
    assert lab.script_folder_stamp("vr1") == script_dir_before


def test_rolling_upgrade_in_waves_through_the_pce(lab, first_run):
    """playbooks/upgrade.yml: one host per wave, health gate on each, and a second run has nothing to do."""
    arguments = (
        "-e",
        '{"upgrade_serial": [1], "upgrade_hosts": "all", "upgrade_ven_version": "23.2.20-200", '
        '"upgrade_method": "pce", "upgrade_heartbeat_pause": 0, "upgrade_poll_interval": 3, '
        '"upgrade_timeout": 180, "upgrade_become": false}',
    )
    run = lab.playbook("playbooks/upgrade.yml", *arguments)
    assert run.returncode == 0, run.stdout[-4000:]
    assert run.stdout.count("PLAY [Upgrade the VEN in waves]") == 2, "one wave per host"
    assert "vr1: 23.2.10-100 -> 23.2.20-200, online and healthy" in run.stdout
    for host in ("vr1", "vr2"):
        assert "VEN Version: 23.2.20-200" in lab.exec(host, "/opt/illumio_ven/illumio-ven-ctl", "status")
    again = lab.playbook("playbooks/upgrade.yml", *arguments)
    assert again.returncode == 0, again.stdout[-4000:]
    assert all(counters["changed"] == 0 for counters in rolelab.recap(again.stdout).values())
