"""ven_package without root: real stand-in packages (tests/vensim/build.py), fake dpkg/dpkg-query/rpm on PATH.

The fakes record their arguments and the install variables they were given, and keep the "installed" version
in a state folder; reading package files (dpkg-deb, rpm -qp, rpm -K) and gpg are the real tools.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.modules import ven_package as vp
from module_runner import run_module

REPO = Path(__file__).resolve().parents[4]
BUILD_SCRIPT = REPO / "tests" / "vensim" / "build.py"
PREBUILT = REPO / ".build" / "vensim"
OLD, NEW = "23.2.10-100", "23.2.20-200"
CODE = "0123456789abcdef0123456789abcdef"

FAKE_TOOL = r'''#!{python}
"""A stand-in for dpkg, dpkg-query and rpm (by its file name) that records its calls in $FAKEPKG_STATE."""
import json, os, subprocess, sys

state = os.environ["FAKEPKG_STATE"]
tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
installed = os.path.join(state, "installed")
with open(os.path.join(state, "calls.jsonl"), "a") as log:
    env = dict((k, v) for k, v in os.environ.items() if k.startswith(("VEN_", "ILLUMIO_")) or k == "DEBIAN_FRONTEND")
    log.write(json.dumps({{"tool": tool, "args": args, "env": env}}) + "\n")


def install(version):
    if os.path.exists(os.path.join(state, "fail")):
        print("Unpacking illumio-ven (%s) ..." % version)
        print("activating with code %s" % os.environ.get("VEN_ACTIVATION_CODE", "-"))
        sys.stderr.write("dpkg: error processing package illumio-ven (--install)\n")
        sys.exit(1)
    with open(installed, "w") as handle:
        handle.write(version)
    print("Illumio VEN installed: %s" % version)
    if os.environ.get("VEN_DATA_DIR") == "/warn":
        print("WARNING: the VEN was installed with VEN_DATA_DIR=/x; this upgrade uses /warn")


if tool == "dpkg" and args[:1] == ["-i"]:
    out = subprocess.check_output(["{dpkg_deb}", "-f", args[-1], "Version"], universal_newlines=True)
    install(out.strip())
elif tool == "dpkg-query":
    if not os.path.exists(installed):
        sys.stderr.write("dpkg-query: no packages found matching illumio-ven\n")
        sys.exit(1)
    fmt = args[1][len("-f="):] if args[1].startswith("-f=") else args[2]
    with open(installed) as handle:
        version = handle.read()
    text = fmt.replace("${{Status}}", "install ok installed").replace("${{Version}}", version)
    sys.stdout.write(text.replace("\\t", "\t").replace("\\n", "\n"))
elif tool == "rpm" and args[:1] == ["-q"]:
    if not os.path.exists(installed):
        print("package illumio-ven is not installed")
        sys.exit(1)
    with open(installed) as handle:
        print(handle.read())
elif tool == "rpm" and args[:1] == ["-Uvh"]:
    out = subprocess.check_output(
        ["{rpm}", "-qp", "--qf", "%{{VERSION}}-%{{RELEASE}}", args[-1]], universal_newlines=True
    )
    install(out.strip())
elif tool == "rpm":
    os.execv("{rpm}", ["{rpm}"] + args)  # -qp, -K: read the real package file
else:
    sys.exit("fake %s: unexpected arguments %s" % (tool, args))
'''


def build_packages(out: Path) -> None:
    subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(out), "--version", OLD, "--version", NEW],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def packages(tmp_path_factory) -> dict[str, Path]:
    """The stand-in's packages by 'deb'/'rpm' and version; reused from .build/vensim when `make vensim` ran."""
    if not shutil.which("dpkg-deb"):
        pytest.skip("dpkg-deb is needed to build and read the stand-in packages")
    folder = tmp_path_factory.mktemp("vensim")
    if all(next(PREBUILT.glob(f"illumio-ven-{version}.*.deb"), None) for version in (OLD, NEW)):
        for path in PREBUILT.glob("illumio-ven-*.*"):
            if path.suffix in (".deb", ".rpm"):
                shutil.copy(path, folder)
    else:
        build_packages(folder)
    found = {}
    for path in folder.iterdir():
        for version in (OLD, NEW):
            if path.name.startswith(f"illumio-ven-{version}.") and path.suffix in (".deb", ".rpm"):
                found[(path.suffix[1:], version)] = path
    return found


class Host:
    """The fake package tools on PATH, the install record and an install dir in a scratch folder."""

    def __init__(self, root: Path):
        self.root = root
        self.state = root / "state"
        self.bin = root / "bin"
        self.record = root / "var" / "lib" / "microseg-illumio" / "ven" / "install.json"
        self.install_dir = root / "opt" / "illumio_ven"
        self.state.mkdir()
        self.bin.mkdir()
        script = FAKE_TOOL.format(
            python=sys.executable,
            dpkg_deb=shutil.which("dpkg-deb") or "dpkg-deb",
            rpm=shutil.which("rpm") or "/usr/bin/rpm",
        )
        for name in ("dpkg", "dpkg-query", "rpm"):
            path = self.bin / name
            path.write_text(script)
            path.chmod(0o755)
        self.warnings = []

    def calls(self, tool=None, first=None):
        log = self.state / "calls.jsonl"
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [
            call
            for call in calls
            if (tool is None or call["tool"] == tool) and (first is None or call["args"][:1] == [first])
        ]

    def installs(self):
        return self.calls("dpkg", "-i") + self.calls("rpm", "-Uvh")

    def installed(self):
        path = self.state / "installed"
        return path.read_text() if path.exists() else None

    def read_record(self):
        return json.loads(self.record.read_text())


@pytest.fixture
def host(tmp_path, monkeypatch):
    fake = Host(tmp_path)
    for name in list(os.environ):
        if name.startswith(("VEN_", "ILLUMIO_")) or name == "DEBIAN_FRONTEND":
            monkeypatch.delenv(name)  # only what the module passes should reach the fakes
    monkeypatch.setenv("FAKEPKG_STATE", str(fake.state))
    monkeypatch.setenv("PATH", f"{fake.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    monkeypatch.setattr(vp, "RECORD_PATH", str(fake.record))
    monkeypatch.setattr(AnsibleModule, "warn", lambda module, warning: fake.warnings.append(warning))
    return fake


def run(host, package, check_mode=False, diff=False, **args):
    args = dict({"path": str(package), "install_dir": str(host.install_dir)}, **args)
    return run_module(vp.main, args, check_mode=check_mode, diff=diff)


FIRST_ENVIRONMENT = {
    "VEN_DATA_DIR": "/srv/illumio_ven_data",
    "VEN_NONPRIV_USER": "venuser",
    "VEN_DISABLE_MONITOR_RESTART": True,
    "VEN_INSTALL_ACTION": "activate",
    "VEN_MANAGEMENT_SERVER": "pce.example.com:8443",
    "VEN_ACTIVATION_CODE": CODE,
}
REMEMBERED = {
    "VEN_DATA_DIR": "/srv/illumio_ven_data",
    "VEN_NONPRIV_USER": "venuser",
    "VEN_DISABLE_MONITOR_RESTART": "true",
    "VEN_MANAGEMENT_SERVER": "pce.example.com:8443",
}


def first_install(host, packages):
    return run(host, packages[("deb", OLD)], environment=FIRST_ENVIRONMENT)


def test_a_first_install_passes_the_environment_and_writes_the_record(host, packages):
    result = first_install(host, packages)
    assert result["changed"] is True, result
    assert result["action"] == "installed"
    assert (result["version_before"], result["version"]) == (None, OLD)
    assert result["package"]["name"] == "illumio-ven" and result["package"]["type"] == "deb"
    assert result["package"]["file"] == packages[("deb", OLD)].name
    [call] = host.installs()
    assert call["args"] == ["-i", str(packages[("deb", OLD)])]
    assert call["env"] == dict(
        REMEMBERED, VEN_INSTALL_ACTION="activate", VEN_ACTIVATION_CODE=CODE, DEBIAN_FRONTEND="noninteractive"
    )
    assert host.installed() == OLD
    assert stat.S_IMODE(host.record.stat().st_mode) == 0o600
    record = host.read_record()
    assert record["method"] == "package" and record["version"] == OLD
    assert record["package"] == packages[("deb", OLD)].name
    assert record["environment"] == REMEMBERED
    assert CODE not in host.record.read_text()
    assert result["environment"] == REMEMBERED
    assert CODE not in json.dumps(result)
    assert result["installer"] == [f"Illumio VEN installed: {OLD}"]


def test_the_same_version_again_changes_nothing(host, packages):
    first_install(host, packages)
    before = host.record.read_text()
    result = run(host, packages[("deb", OLD)], environment=FIRST_ENVIRONMENT)
    assert result["changed"] is False and result["action"] == "none", result
    assert result["version_before"] == result["version"] == OLD
    assert len(host.installs()) == 1
    assert host.record.read_text() == before


def test_an_upgrade_passes_the_remembered_data_dir_and_user(host, packages):
    first_install(host, packages)
    result = run(host, packages[("deb", NEW)], diff=True)
    assert result["changed"] is True and result["action"] == "upgraded", result
    assert (result["version_before"], result["version"]) == (OLD, NEW)
    assert result["passed_again"] == sorted(REMEMBERED)
    assert result["diff"]["before"] == f"illumio-ven {OLD}\n"
    assert result["diff"]["after"] == f"illumio-ven {NEW}\n"
    upgrade = host.installs()[-1]
    assert upgrade["env"] == dict(REMEMBERED, DEBIAN_FRONTEND="noninteractive")
    assert host.read_record()["version"] == NEW
    assert host.read_record()["environment"] == REMEMBERED


def test_an_upgrade_leaves_out_the_first_install_variables(host, packages):
    first_install(host, packages)
    result = run(host, packages[("deb", NEW)], environment=FIRST_ENVIRONMENT)
    assert result["action"] == "upgraded", result
    env = host.installs()[-1]["env"]
    assert "VEN_ACTIVATION_CODE" not in env and "VEN_INSTALL_ACTION" not in env
    assert any("VEN_ACTIVATION_CODE, VEN_INSTALL_ACTION left out" in warning for warning in host.warnings)


def test_an_upgrade_with_another_data_dir_is_refused_unless_forced(host, packages):
    first_install(host, packages)
    result = run(host, packages[("deb", NEW)], environment={"VEN_DATA_DIR": "/warn"})
    assert result["failed"] is True
    assert result["msg"].startswith(
        "environment: VEN_DATA_DIR=/warn differs from VEN_DATA_DIR=/srv/illumio_ven_data of the first install"
    )
    assert "set force=true" in result["msg"]
    assert len(host.installs()) == 1 and host.installed() == OLD
    forced = run(host, packages[("deb", NEW)], environment={"VEN_DATA_DIR": "/warn"}, force=True)
    assert forced["action"] == "upgraded", forced
    assert host.installs()[-1]["env"]["VEN_DATA_DIR"] == "/warn"
    assert any("because force=true" in warning for warning in host.warnings)
    # The installer's own warnings are passed on.
    assert any(warning.startswith("installer: WARNING: the VEN was installed with") for warning in host.warnings)


def test_remember_environment_false_passes_only_what_is_given(host, packages):
    first_install(host, packages)
    result = run(host, packages[("deb", NEW)], remember_environment=False, environment={"VEN_NONPRIV_UID": 2001})
    assert result["action"] == "upgraded", result
    assert host.installs()[-1]["env"] == {"VEN_NONPRIV_UID": "2001", "DEBIAN_FRONTEND": "noninteractive"}


def test_a_downgrade_is_refused_unless_allowed(host, packages):
    run(host, packages[("deb", NEW)])
    result = run(host, packages[("deb", OLD)])
    assert result["failed"] is True
    assert result["msg"] == (
        f"the package holds illumio-ven {OLD}, older than the installed {NEW}; set allow_downgrade=true to downgrade"
    )
    assert result["version_before"] == NEW
    assert len(host.installs()) == 1
    allowed = run(host, packages[("deb", OLD)], allow_downgrade=True)
    assert allowed["action"] == "downgraded" and allowed["changed"] is True, allowed
    assert host.installed() == OLD


def test_a_checksum_mismatch_leaves_everything_as_it_was(host, packages):
    result = run(host, packages[("deb", OLD)], sha256="0" * 64, environment=FIRST_ENVIRONMENT)
    assert result["failed"] is True
    assert result["msg"].startswith(f"checksum mismatch for {packages['deb', OLD]}")
    assert result["msg"].endswith("nothing was changed")
    assert host.calls() == []  # not even the installed version was asked for
    assert not host.record.exists()
    assert host.installed() is None


def test_a_matching_checksum_is_reported(host, packages):
    digest = vp.sha256_of(str(packages[("deb", OLD)]))
    result = run(host, packages[("deb", OLD)], sha256="sha256:" + digest.upper())
    assert result["changed"] is True, result
    assert result["verified"] == {"sha256": True, "signature": None, "rpm_checksig": False}
    assert result["package"]["sha256"] == digest


def test_an_unknown_variable_is_refused_before_anything(host, packages):
    result = run(host, packages[("deb", OLD)], environment={"VEN_DATADIR": "/srv", "VEN_NONPRIV_USER": "venuser"})
    assert result["failed"] is True
    assert result["msg"].startswith("environment: VEN_DATADIR is not a VEN install variable")
    assert host.calls() == []


def test_check_mode_reports_the_action_and_changes_nothing(host, packages):
    first_install(host, packages)
    record = host.record.read_text()
    result = run(host, packages[("deb", NEW)], check_mode=True, diff=True)
    assert result["changed"] is True and result["action"] == "upgraded", result
    assert result["version"] == NEW and result["installer"] == []
    assert result["diff"]["after"] == f"illumio-ven {NEW}\n"
    assert len(host.installs()) == 1 and host.installed() == OLD
    assert host.record.read_text() == record
    fresh = run(host, packages[("deb", OLD)], check_mode=True)
    assert fresh["changed"] is False and fresh["action"] == "none"


def test_a_missing_file_and_a_wrong_package_are_named(host, packages, tmp_path):
    missing = run(host, tmp_path / "nowhere.deb")
    assert missing["msg"] == "package file %s does not exist on the host (copy or download it first)" % (
        tmp_path / "nowhere.deb"
    )
    root = tmp_path / "other"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: other-agent\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.invalid>\n"
        "Description: not the VEN\n"
    )
    other = tmp_path / "other-agent_1.0-1_all.deb"
    subprocess.run(["dpkg-deb", "--build", str(root), str(other)], check=True, capture_output=True)
    wrong = run(host, other)
    assert wrong["msg"] == f"{other} holds package other-agent 1.0-1, not illumio-ven"
    not_a_package = tmp_path / "broken.deb"
    not_a_package.write_text("not a package")
    assert run(host, not_a_package)["msg"].startswith(f"{not_a_package} is not a readable deb package")
    assert host.installs() == []


def test_an_installer_failure_shows_its_last_lines_without_the_code(host, packages):
    (host.state / "fail").write_text("")
    result = run(host, packages[("deb", OLD)], environment=FIRST_ENVIRONMENT)
    assert result["failed"] is True
    assert result["msg"] == (
        f"dpkg -i failed (exit 1): Unpacking illumio-ven ({OLD}) ... / activating with code ******** / "
        "dpkg: error processing package illumio-ven (--install)"
    )
    assert CODE not in json.dumps(result)
    assert not host.record.exists()


def test_the_installed_version_falls_back_to_illumio_ven_ctl(host, packages):
    host.install_dir.mkdir(parents=True)
    ctl = host.install_dir / "illumio-ven-ctl"
    ctl.write_text(f'#!/bin/sh\n[ "$1" = version ] && echo {OLD}\n')
    ctl.chmod(0o755)
    result = run(host, packages[("deb", NEW)])
    assert result["version_before"] == OLD and result["action"] == "upgraded", result
    # No record before (installed some other way): it starts now, with nothing to compare against.
    assert host.read_record()["version"] == NEW


@pytest.fixture
def rpms(packages):
    if ("rpm", OLD) not in packages or not shutil.which("rpm"):
        pytest.skip("the stand-in's .rpm needs rpmbuild to build and rpm to read")
    return packages


def test_rpm_install_and_upgrade_with_nodeps(host, rpms):
    first = run(host, rpms[("rpm", OLD)], rpm_nodeps=True, environment={"VEN_DATA_DIR": "/srv/d"})
    assert first["action"] == "installed" and first["package"]["type"] == "rpm", first
    assert host.installs()[0]["args"] == ["-Uvh", "--nodeps", str(rpms[("rpm", OLD)])]
    assert host.installs()[0]["env"] == {"VEN_DATA_DIR": "/srv/d"}
    upgrade = run(host, rpms[("rpm", NEW)])
    assert upgrade["action"] == "upgraded", upgrade
    assert host.installs()[-1]["args"] == ["-Uvh", str(rpms[("rpm", NEW)])]
    assert host.installs()[-1]["env"] == {"VEN_DATA_DIR": "/srv/d"}
    down = run(host, rpms[("rpm", OLD)], allow_downgrade=True)
    assert down["action"] == "downgraded", down
    assert host.installs()[-1]["args"] == ["-Uvh", "--oldpackage", str(rpms[("rpm", OLD)])]


def test_rpm_checksig_refuses_an_unsigned_package(host, rpms, packages):
    result = run(host, rpms[("rpm", OLD)], rpm_checksig=True)
    assert result["failed"] is True
    assert "the package is not signed" in result["msg"]
    assert host.installs() == []
    deb = run(host, packages[("deb", OLD)], rpm_checksig=True)
    assert deb["msg"].startswith("rpm_checksig applies to .rpm packages only")


# --- signatures with a real gpg -------------------------------------------------------------------------------


class Gpg:
    """A throw-away gpg home with one signing key (short path: gpg-agent's socket must fit)."""

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix="gpgt-")
        self.run(
            "--passphrase", "", "--quick-gen-key", "VEN signer <signer@example.invalid>", "ed25519", "sign", "never"
        )

    def run(self, *args):
        return subprocess.run(
            ["gpg", "--batch", "--homedir", self.home, "--pinentry-mode", "loopback", *args],
            check=True,
            capture_output=True,
        )

    def export(self, path, armor):
        path.write_bytes(self.run(*(["--armor"] if armor else []), "--export").stdout)
        return path

    def sign(self, package, signature):
        self.run("--passphrase", "", "--output", str(signature), "--detach-sign", str(package))
        return signature

    def close(self):
        subprocess.run(["gpgconf", "--homedir", self.home, "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture(scope="module")
def signers():
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed (Debian package gnupg)")
    made = [Gpg(), Gpg()]
    yield made
    for signer in made:
        signer.close()


@pytest.mark.parametrize("armor", [True, False])
def test_a_good_signature_passes(host, packages, signers, tmp_path, armor):
    package = packages[("deb", OLD)]
    signature = signers[0].sign(package, tmp_path / "p.sig")
    keyring = signers[0].export(tmp_path / ("key.asc" if armor else "key.gpg"), armor)
    result = run(host, package, signature=str(signature), keyring=str(keyring))
    assert result["changed"] is True, result
    assert len(result["verified"]["signature"]) == 40
    assert host.installed() == OLD


def test_a_bad_signature_or_another_key_fails_before_anything(host, packages, signers, tmp_path):
    package = packages[("deb", OLD)]
    keyring = signers[0].export(tmp_path / "key.asc", armor=True)
    wrong_file = signers[0].sign(packages[("deb", NEW)], tmp_path / "new.sig")
    bad = run(host, package, signature=str(wrong_file), keyring=str(keyring))
    assert bad["failed"] is True
    assert bad["msg"].endswith("the signature does not match the package (BADSIG)")
    other_key = signers[1].sign(package, tmp_path / "other.sig")
    unknown = run(host, package, signature=str(other_key), keyring=str(keyring))
    assert unknown["failed"] is True
    assert f"signature check of {package} with {other_key} failed" in unknown["msg"]
    assert "ERRSIG" in unknown["msg"] or "NO_PUBKEY" in unknown["msg"]
    assert host.calls() == [] and not host.record.exists()
    missing = run(host, package, signature=str(tmp_path / "none.sig"), keyring=str(keyring))
    assert missing["msg"] == "signature file %s does not exist on the host" % (tmp_path / "none.sig")
    alone = run(host, package, signature=str(other_key))
    assert alone["failed"] is True and "keyring" in alone["msg"]
