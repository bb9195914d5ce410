"""module_utils/ven/facts.py and the ven_facts module, with a fake `illumio-ven-ctl` printing canned outputs.

The fake is a shell script in tmp_path (the module's install_dir): for `illumio-ven-ctl CMD` it prints
answers/CMD.out, exits with answers/CMD.rc (0 when missing) and appends CMD to a call log.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.ven import facts
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import DEFAULT_DATA_DIR, VenCtlError
from ansible_collections.microseg.illumio.plugins.modules import ven_facts
from module_runner import run_module

CODE = "0123456789abcdef0123"

RUNNING_ACTIVATED = """Illumio VEN is running
- venAgentMgr (pid 4242) is running...
- IPSec: feature not enabled
- venPlatformHandler (pid 4242) is running...
- venVtapServer (pid 4242) is running...
- venAgentMonitor (pid 4242) is running...

VEN Version: 23.2.10-100
Activation: activated
Management Server: pce.example.com:8443
Proxy Server: (not set)
VEN Connectivity: Connected
Agent State: illuminated
Enforcement Mode: visibility_only
Visibility Level: flow_summary
Workload: /orgs/1/workloads/w1
"""

PREPARED = """Illumio VEN is stopped
- venAgentMgr is stopped
- IPSec: feature not enabled

VEN Version: 23.2.10-100
Activation: prepared
Management Server: (not set)
Proxy Server: (not set)
VEN Connectivity: n/a
Agent State: unpaired
"""

SUSPENDED = """Illumio VEN is suspended
- venAgentMgr is stopped

VEN Version: 23.2.10-100
Activation: activated
Management Server: pce.example.com:8443
Proxy Server: http://proxy:3128
Agent State: suspended
"""

# An older VEN: no version, activation or proxy lines, so version / show-proxy are asked and the agent state decides.
TERSE = """Illumio VEN is running
- venAgentMgr (pid 1) is running...

Agent State: enforced
"""

TERSE_UNPAIRED = """Illumio VEN is stopped
- venAgentMgr is stopped

Agent State: unpaired
"""

FAKE_CTL = """#!/bin/sh
echo "$1" >> '{log}'
if [ -f '{answers}'/"$1".out ]; then cat '{answers}'/"$1".out; fi
if [ -f '{answers}'/"$1".err ]; then cat '{answers}'/"$1".err >&2; fi
if [ -f '{answers}'/"$1".rc ]; then exit "$(cat '{answers}'/"$1".rc)"; fi
exit 0
"""


class Ven:
    def __init__(self, root):
        self.install_dir = root / "illumio_ven"
        self.data_dir = root / "illumio_ven_data"
        self.answers = root / "answers"
        self.log = root / "calls.log"
        self.record = root / "record" / "install.json"
        self.answers.mkdir()
        (self.data_dir / "etc").mkdir(parents=True)

    def install(self):
        self.install_dir.mkdir(exist_ok=True)
        ctl = self.install_dir / "illumio-ven-ctl"
        ctl.write_text(FAKE_CTL.format(log=self.log, answers=self.answers))
        ctl.chmod(0o755)
        return self

    def answer(self, command, out="", rc=0, err=""):
        (self.answers / (command + ".out")).write_text(out)
        (self.answers / (command + ".rc")).write_text(str(rc))
        (self.answers / (command + ".err")).write_text(err)
        return self

    def calls(self):
        return self.log.read_text().split() if self.log.exists() else []

    def activation_file(self, text):
        path = self.data_dir / "etc" / "agent_activation.cfg"
        path.write_text(text)
        path.chmod(0o600)
        return path


class Runner:
    """Just enough of AnsibleModule for gather(): run_command without a shell."""

    def run_command(self, argv, **kwargs):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr


@pytest.fixture
def ven(tmp_path):
    return Ven(tmp_path)


@pytest.fixture
def record_path(ven, monkeypatch):
    """ven_facts reads the install record from its fixed path: point that at tmp_path for the test."""
    real = facts.read_install_record

    def read(path=facts.INSTALL_RECORD):
        return real(str(ven.record) if path == facts.INSTALL_RECORD else path)

    monkeypatch.setattr(facts, "read_install_record", read)
    return ven.record


def gather(ven, **kwargs):
    kwargs.setdefault("record_path", str(ven.record))
    return facts.gather(Runner(), str(ven.install_dir), str(ven.data_dir), **kwargs)


def me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


# --- gather ---------------------------------------------------------------------------------------------------


def test_a_running_activated_ven(ven):
    ven.install().answer("status", RUNNING_ACTIVATED)
    found = gather(ven)
    assert found == {
        "installed": True,
        "version": "23.2.10-100",
        "activated": True,
        "prepared": False,
        "activation": "activated",
        "state": "running",
        "running": True,
        "suspended": False,
        "agent_state": "illuminated",
        "enforcement_mode": "visibility_only",
        "visibility_level": "flow_summary",
        "management_server": "pce.example.com:8443",
        "proxy_server": None,
        "connectivity": "Connected",
        "workload_href": "/orgs/1/workloads/w1",
        "services": {
            "venAgentMgr": "running",
            "IPSec": "not_enabled",
            "venPlatformHandler": "running",
            "venVtapServer": "running",
            "venAgentMonitor": "running",
        },
        "user": me()[0],
        "group": me()[1],
        "install_dir": str(ven.install_dir),
        "data_dir": str(ven.data_dir),
        "install_record": {},
        "activation_file": False,
        "activation_file_server": None,
    }
    # status said everything: version and show-proxy are not asked.
    assert ven.calls() == ["status"]


def test_a_prepared_ven_names_the_pce_of_its_activation_file_but_never_the_code(ven):
    ven.install().answer("status", PREPARED, rc=3)
    ven.activation_file(f"activation_code: {CODE}\nmasterconfig_server: pce.example.com:8443\n")
    found = gather(ven)
    assert found["activation"] == "prepared"
    assert found["prepared"] is True
    assert found["activated"] is False
    assert found["state"] == "stopped"
    assert found["running"] is False
    assert found["activation_file"] is True
    assert found["activation_file_server"] == "pce.example.com:8443"
    assert found["management_server"] is None
    assert CODE not in json.dumps(found)


def test_a_suspended_ven(ven):
    ven.install().answer("status", SUSPENDED, rc=3)
    found = gather(ven)
    assert found["state"] == "suspended"
    assert found["suspended"] is True
    assert found["running"] is False
    assert found["activated"] is True
    assert found["proxy_server"] == "http://proxy:3128"
    assert ven.calls() == ["status"]


def test_suspension_is_also_read_from_the_agent_state(ven):
    ven.install().answer("status", TERSE.replace("enforced", "suspended"))
    assert gather(ven)["suspended"] is True


def test_what_status_does_not_say_comes_from_version_show_proxy_and_the_agent_state(ven):
    ven.install().answer("status", TERSE).answer("version", "23.2.20-200\n")
    ven.answer("show-proxy", "proxy_server: http://proxy.example.com:3128\n")
    found = gather(ven)
    assert found["version"] == "23.2.20-200"
    assert found["proxy_server"] == "http://proxy.example.com:3128"
    assert found["activation"] == "activated"
    assert found["activated"] is True
    assert sorted(ven.calls()) == ["show-proxy", "status", "version"]


def test_without_an_activation_line_an_unpaired_ven_with_an_activation_file_is_prepared(ven):
    ven.install().answer("status", TERSE_UNPAIRED, rc=3).answer("show-proxy", "No proxy is set\n")
    ven.answer("version", "23.2.10-100\n")
    assert gather(ven)["activation"] == "not activated"
    ven.activation_file(f"activation_code: {CODE}\nmasterconfig_server: pce:8443\n")
    found = gather(ven)
    assert (found["activation"], found["prepared"], found["activated"]) == ("prepared", True, False)
    assert found["proxy_server"] is None


def test_a_status_without_a_first_line_is_in_an_unknown_state(ven):
    ven.install().answer("status", "Agent State: illuminated\nProxy Server: (not set)\nVEN Version: 1\n")
    found = gather(ven)
    assert found["state"] == "unknown"
    assert found["running"] is False
    assert found["activated"] is True


def test_not_installed(ven):
    found = gather(ven)
    assert found == dict(
        facts.EMPTY_FACTS,
        install_dir=str(ven.install_dir),
        data_dir=str(ven.data_dir),
        install_record={},
        activation_file=False,
        activation_file_server=None,
    )
    assert found["installed"] is False
    assert ven.calls() == []


def test_a_ctl_that_is_not_executable_is_not_installed(ven):
    ven.install()
    (ven.install_dir / "illumio-ven-ctl").chmod(0o644)
    assert gather(ven)["installed"] is False
    assert ven.calls() == []


def test_not_installed_still_reports_a_left_over_activation_file(ven):
    ven.activation_file(f"masterconfig_server: pce:8443\nactivation_code: {CODE}\n")
    found = gather(ven)
    assert found["installed"] is False
    assert found["activation_file"] is True
    assert found["activation_file_server"] == "pce:8443"


def test_facts_are_fresh_dicts(ven):
    first = gather(ven)
    first["services"]["x"] = "y"
    assert gather(ven)["services"] == {}
    assert facts.EMPTY_FACTS["services"] == {}


def test_a_failing_status_is_an_error(ven):
    ven.install().answer("status", "", rc=126, err="permission denied")
    with pytest.raises(VenCtlError, match=r"status failed \(exit 126\): permission denied"):
        gather(ven)


def test_the_data_dir_comes_from_the_install_record(ven, tmp_path):
    other = tmp_path / "srv-data"
    other.mkdir()
    facts.write_install_record({"environment": {"VEN_DATA_DIR": str(other)}}, str(ven.record))
    found = facts.gather(Runner(), str(ven.install_dir), None, record_path=str(ven.record))
    assert found["data_dir"] == str(other)
    assert found["install_record"] == {"environment": {"VEN_DATA_DIR": str(other)}}
    # An explicit data_dir wins.
    assert gather(ven)["data_dir"] == str(ven.data_dir)


def test_defaults_for_install_and_data_dir(ven):
    found = facts.gather(Runner(), None, None, record_path=str(ven.record))
    assert found["install_dir"] == "/opt/illumio_ven"
    assert found["data_dir"] == DEFAULT_DATA_DIR


# --- the data directory's owner ---------------------------------------------------------------------------


def test_owner_of_the_data_dir(tmp_path):
    assert facts._owner(str(tmp_path)) == me()


def test_owner_of_a_missing_data_dir(tmp_path):
    assert facts._owner(str(tmp_path / "missing")) == (None, None)


def test_owner_without_a_name_is_the_number(tmp_path, monkeypatch):
    def unknown(number):
        raise KeyError(number)

    monkeypatch.setattr(facts.pwd, "getpwuid", unknown)
    monkeypatch.setattr(facts.grp, "getgrgid", unknown)
    assert facts._owner(str(tmp_path)) == (str(os.getuid()), str(os.getgid()))


# --- the activation file ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "server"),
    [
        (f"activation_code: {CODE}\nmasterconfig_server: pce.example.com:8443\n", "pce.example.com:8443"),
        ("masterconfig_server:pce:8443", "pce:8443"),
        ("  masterconfig_server :  pce:8443  \n", "pce:8443"),
        (f"activation_code: {CODE}\n", None),
        ("masterconfig_server:\n", None),
        ("junk\n\x00\n", None),
    ],
)
def test_read_activation_server(tmp_path, text, server):
    path = tmp_path / "agent_activation.cfg"
    path.write_text(text)
    assert facts.read_activation_server(str(path)) == server


def test_read_activation_server_of_nothing(tmp_path):
    assert facts.read_activation_server(str(tmp_path / "missing.cfg")) is None
    assert facts.read_activation_server(str(tmp_path)) is None  # a directory


# --- the install record -----------------------------------------------------------------------------------


def test_install_record_round_trip_0600_in_a_new_0700_folder(tmp_path):
    path = tmp_path / "var" / "lib" / "ven" / "install.json"
    record = {"method": "package", "version": "23.2.10-100", "environment": {"VEN_DATA_DIR": "/srv/d"}}
    facts.write_install_record(record, str(path))
    assert facts.read_install_record(str(path)) == record
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert json.loads(path.read_text()) == record
    assert path.read_text().startswith('{\n  "environment"')  # sorted, indented
    assert os.listdir(path.parent) == ["install.json"]  # no temporary file left


def test_install_record_is_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "install.json"
    facts.write_install_record({"version": "1"}, str(path))
    renames = []
    real_rename = os.rename

    def rename(source, target):
        # When the new record moves in, the old one is still complete.
        assert json.loads(path.read_text()) == {"version": "1"}
        assert json.loads(Path(source).read_text()) == {"version": "2"}
        renames.append((source, target))
        real_rename(source, target)

    monkeypatch.setattr(facts.os, "rename", rename)
    facts.write_install_record({"version": "2"}, str(path))
    assert renames == [(str(path) + ".tmp", str(path))]
    assert facts.read_install_record(str(path)) == {"version": "2"}


def test_a_failed_write_leaves_the_old_record(tmp_path):
    path = tmp_path / "install.json"
    facts.write_install_record({"version": "1"}, str(path))
    with pytest.raises(TypeError):
        facts.write_install_record({"version": object()}, str(path))
    assert facts.read_install_record(str(path)) == {"version": "1"}


def test_a_stale_temporary_file_does_not_make_the_record_readable(tmp_path):
    path = tmp_path / "install.json"
    stale = tmp_path / "install.json.tmp"
    stale.write_text("{}")
    stale.chmod(0o644)
    facts.write_install_record({"version": "1"}, str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"text"', "null", "\xff\xfe"])
def test_a_junk_record_reads_as_empty(tmp_path, text):
    path = tmp_path / "install.json"
    path.write_bytes(text.encode("latin-1"))
    assert facts.read_install_record(str(path)) == {}


def test_a_missing_record_or_a_folder_reads_as_empty(tmp_path):
    assert facts.read_install_record(str(tmp_path / "missing.json")) == {}
    assert facts.read_install_record(str(tmp_path)) == {}


def test_remembered_environment_keeps_documented_non_secret_values_as_text():
    environment = {
        "VEN_DATA_DIR": "/srv/data",
        "VEN_NONPRIV_UID": 1500,
        "VEN_ACTIVATION_CODE": CODE,
        "VEN_INSTALL_ACTION": "activate",
        "VEN_PROXY_SERVER": "",
        "VEN_NONPRIV_USER": None,
        "OTHER": "x",
    }
    assert facts.remembered_environment(environment) == {"VEN_DATA_DIR": "/srv/data", "VEN_NONPRIV_UID": "1500"}
    assert "VEN_ACTIVATION_CODE" not in facts.REMEMBERED_VARIABLES


def test_data_dir_of():
    assert facts.data_dir_of({}) == DEFAULT_DATA_DIR
    assert facts.data_dir_of({"environment": {"VEN_DATA_DIR": "/srv/d"}}) == "/srv/d"
    assert facts.data_dir_of({"environment": {"VEN_DATA_DIR": "/srv/d"}}, "/x") == "/x"
    assert facts.data_dir_of({"environment": {"VEN_DATA_DIR": ""}}) == DEFAULT_DATA_DIR


# --- the ven_facts module ---------------------------------------------------------------------------------


def test_ven_facts_module(ven, record_path):
    ven.install().answer("status", RUNNING_ACTIVATED)
    facts.write_install_record({"method": "package", "version": "23.2.10-100"}, str(record_path))
    result = run_module(ven_facts.main, {"install_dir": str(ven.install_dir), "data_dir": str(ven.data_dir)})
    assert result["changed"] is False
    assert "failed" not in result
    fact = result["ansible_facts"]["ven"]
    assert fact["installed"] is True
    assert fact["activated"] is True
    assert fact["management_server"] == "pce.example.com:8443"
    assert fact["install_record"] == {"method": "package", "version": "23.2.10-100"}


def test_ven_facts_in_check_mode_reads_the_same(ven, record_path):
    ven.install().answer("status", RUNNING_ACTIVATED)
    args = {"install_dir": str(ven.install_dir), "data_dir": str(ven.data_dir)}
    assert run_module(ven_facts.main, args, check_mode=True) == run_module(ven_facts.main, args)


def test_ven_facts_of_a_host_without_a_ven(ven, record_path):
    result = run_module(ven_facts.main, {"install_dir": str(ven.install_dir), "data_dir": str(ven.data_dir)})
    assert result["changed"] is False
    assert result["ansible_facts"]["ven"]["installed"] is False


def test_ven_facts_fails_with_the_vens_words(ven, record_path):
    ven.install().answer("status", "", rc=127, err="illumio-ven-ctl: libfoo.so: not found")
    result = run_module(ven_facts.main, {"install_dir": str(ven.install_dir), "data_dir": str(ven.data_dir)})
    assert result["failed"] is True
    assert result["msg"] == (
        "cannot read the VEN: illumio-ven-ctl status failed (exit 127): illumio-ven-ctl: libfoo.so: not found"
    )
