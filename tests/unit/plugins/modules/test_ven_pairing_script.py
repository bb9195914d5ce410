"""ven_pairing_script without root: a fake pair.sh / prepare.sh served over HTTPS on 127.0.0.1.

The server uses the session's test CA (conftest's tls_files); the fake scripts record their argv, the VEN_*
variables of their environment (never the code: only whether VEN_ACTIVATION_CODE was set and was the expected
one), their own path and mode, then "install" the fake `illumio-ven-ctl` (tests/unit/fake_ven_ctl.py) and pair
or prepare it.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.ven import facts
from ansible_collections.microseg.illumio.plugins.modules import ven_pairing_script
from fake_ven_ctl import FakeVen
from module_runner import run_module
from pce_test_server import ConnectProxy, Reply

CODE = "4f3e2d1c0b0a99887766554433221100"
OLD_PCE = "old-pce.example.com:8443"

SCRIPT = """#!/bin/sh
R='{record}'
printf '%s\\n' "$@" > "$R/argv"
env | grep '^VEN_' | grep -v '^VEN_ACTIVATION_CODE=' | sort > "$R/env"
if [ -n "${{VEN_ACTIVATION_CODE+x}}" ]; then echo set; else echo unset; fi > "$R/code_set"
if [ "$VEN_ACTIVATION_CODE" = '{code}' ]; then echo equal; else echo different; fi > "$R/code_equal"
echo "$0" > "$R/path"
stat -c %a "$0" > "$R/mode"
echo "Installing the VEN package from the PCE"
mkdir -p '{install_dir}'
cp '{source}' '{install_dir}/illumio-ven-ctl'
{action}
"""

PAIR = """'{install_dir}/illumio-ven-ctl' _pair "$2" || exit 1
echo "VEN has been SUCCESSFULLY paired with Illumio"
"""

PREPARE = """'{install_dir}/illumio-ven-ctl' _prepare "$2" || exit 1
echo "The VEN is prepared: it activates the next time it starts"
"""

FAIL = """echo "Pairing with Illumio ....."
echo "activation code $VEN_ACTIVATION_CODE was refused: invalid pairing key" >&2
exit 3
"""


class Setup:
    def __init__(self, tmp_path, serve, tls_files, installed=False):
        self.ven = FakeVen(tmp_path, CODE, installed=installed)
        self.record = tmp_path / "script-record"
        self.record.mkdir()
        self.tls = tls_files
        self.action = PAIR
        self.body = None  # bytes to serve instead of the script
        self.status = 200
        self.server = serve(self.handle)
        self.pce = f"localhost:{self.server.port}"

    def script(self):
        return SCRIPT.format(
            record=self.record,
            code=CODE,
            install_dir=self.ven.install_dir,
            source=self.ven.source,
            action=self.action.format(install_dir=self.ven.install_dir),
        )

    def handle(self, request):
        if self.body is not None:
            return Reply(self.status, self.body, {"Content-Type": "text/html"})
        return Reply(self.status, self.script().encode(), {"Content-Type": "application/x-sh"})

    def run(self, check_mode=False, diff=False, **args):
        args.setdefault("management_server", self.pce)
        args.setdefault("pairing_profile_id", "8")
        args.setdefault("activation_code", CODE)
        args.setdefault("ca_path", str(self.tls.ca_cert))
        args.setdefault("install_dir", str(self.ven.install_dir))
        args.setdefault("data_dir", str(self.ven.data_dir))
        result = run_module(ven_pairing_script.main, args, check_mode=check_mode, diff=diff)
        # The code is in nothing the module returns, whatever happened.
        assert CODE not in json.dumps(result)
        return result

    def recorded(self, name):
        path = self.record / name
        return path.read_text().splitlines() if path.exists() else None

    @property
    def work_dir(self):
        return self.ven.data_dir / "tmp"


@pytest.fixture(autouse=True)
def _install_record(tmp_path, monkeypatch):
    """The modules read the install record from a fixed host path; give them one in tmp_path instead."""
    real = facts.read_install_record
    path = str(tmp_path / "install.json")
    monkeypatch.setattr(facts, "read_install_record", lambda _path=None: real(path))


@pytest.fixture
def setup(tmp_path, serve, tls_files):
    return Setup(tmp_path, serve, tls_files)


# --- pairing ----------------------------------------------------------------------------------------------------


def test_pair_downloads_the_script_over_verified_tls_and_runs_it_with_the_code_in_its_environment(setup):
    result = setup.run(activate_options=["--role", "web", "--env", "prod"], diff=True)
    assert "failed" not in result, result.get("msg")
    assert result["changed"] is True
    assert result["ran"] is True
    assert result["url"] == (f"https://{setup.pce}/api/v18/software/ven/image?pair_script=pair.sh&profile_id=8")
    [request] = setup.server.requests
    assert (request.method, request.path) == ("GET", "/api/v18/software/ven/image")
    assert request.query == {"pair_script": "pair.sh", "profile_id": "8"}
    # The code: in the environment, the right one, and on no command line.
    assert setup.recorded("argv") == ["--management-server", setup.pce, "--role", "web", "--env", "prod"]
    assert setup.recorded("code_set") == ["set"]
    assert setup.recorded("code_equal") == ["equal"]
    assert CODE not in (setup.record / "argv").read_text()
    for argv in setup.ven.calls():
        assert CODE not in " ".join(argv)
    # Run from DATA/tmp, owner-only, and removed afterwards.
    [path] = setup.recorded("path")
    assert path == str(setup.work_dir / "pair.sh")
    assert setup.recorded("mode") == ["700"]
    assert not os.path.exists(path)
    assert result["output"] == [
        "Installing the VEN package from the PCE",
        "VEN has been SUCCESSFULLY paired with Illumio",
    ]
    assert result["ven"]["activated"] is True
    assert result["ven"]["management_server"] == setup.pce
    assert result["diff"] == {
        "before": {"installed": False, "version": None, "activation": None, "management_server": None},
        "after": {
            "installed": True,
            "version": "23.2.10-100",
            "activation": "activated",
            "management_server": setup.pce,
        },
    }


def test_second_run_downloads_nothing(setup):
    setup.run()
    result = setup.run()
    assert result["changed"] is False
    assert result["ran"] is False
    assert len(setup.server.requests) == 1
    assert "output" not in result


def test_an_already_paired_ven_is_left_alone_whatever_the_case_of_the_server(setup):
    setup.ven.install()
    setup.ven.pair(setup.pce.upper())
    result = setup.run()
    assert result["changed"] is False
    assert setup.server.requests == []


def test_a_ven_paired_elsewhere_is_refused_without_a_download(setup):
    setup.ven.install()
    setup.ven.pair(OLD_PCE)
    result = setup.run()
    assert result["failed"] is True
    assert result["msg"] == (
        f"the VEN is already paired with {OLD_PCE}; use microseg.illumio.ven_activation with "
        "when_paired_elsewhere=repair (or state=deactivated before preparing an image)"
    )
    assert setup.server.requests == []
    assert setup.recorded("argv") is None


def test_the_work_dir_is_emptied_first(setup):
    setup.work_dir.mkdir()
    (setup.work_dir / "pair.sh").write_text("#!/bin/sh\necho stale\n")
    (setup.work_dir / "junk").write_text("x")
    setup.run()
    assert os.listdir(setup.work_dir) == []


def test_api_version_and_profile_id_make_the_url(setup):
    result = setup.run(api_version="v2", pairing_profile_id="123")
    assert result["url"] == f"https://{setup.pce}/api/v2/software/ven/image?pair_script=pair.sh&profile_id=123"
    assert setup.server.requests[0].path == "/api/v2/software/ven/image"


def test_download_through_a_proxy_which_the_script_also_gets(setup):
    proxy = ConnectProxy()
    try:
        result = setup.run(proxy_server=proxy.url)
    finally:
        proxy.stop()
    assert result["changed"] is True
    assert [(method, target) for method, target, _headers in proxy.tunnels] == [("CONNECT", setup.pce)]
    assert setup.recorded("argv") == ["--management-server", setup.pce, "--proxy-server", proxy.url]


# --- the environment ----------------------------------------------------------------------------------------------


def test_documented_install_variables_reach_the_script(setup, tmp_path):
    data_dir = tmp_path / "srv" / "illumio_ven_data"
    result = setup.run(environment={"VEN_DATA_DIR": str(data_dir), "VEN_NONPRIV_UID": 1500}, data_dir=None)
    assert result["changed"] is True
    assert setup.recorded("env") == [f"VEN_DATA_DIR={data_dir}", "VEN_NONPRIV_UID=1500"]
    # Without data_dir, VEN_DATA_DIR says where the script goes.
    assert setup.recorded("path") == [str(data_dir / "tmp" / "pair.sh")]
    assert setup.recorded("code_equal") == ["equal"]


def test_a_boolean_install_variable_is_passed_as_the_vens_true(setup):
    setup.run(environment={"VEN_DISABLE_MONITOR_RESTART": True})
    assert setup.recorded("env") == ["VEN_DISABLE_MONITOR_RESTART=true"]


def test_environment_keys_are_checked_and_the_code_is_not_one_of_them(setup):
    result = setup.run(environment={"VEN_ACTIVATION_CODE": CODE, "FOO": "1", "VEN_DATA_DIR": "/srv/d"})
    assert result["failed"] is True
    assert "environment: FOO is not a VEN install variable" in result["msg"]
    assert "environment: VEN_ACTIVATION_CODE come from the module's own options, not environment" in result["msg"]
    assert CODE not in result["msg"]
    assert setup.server.requests == []


def test_every_bad_option_in_one_message(setup):
    result = setup.run(
        management_server="https://pce",
        activation_code="secret!",
        proxy_server="https://proxy:3128",
        pairing_profile_id="/orgs/1/pairing_profiles/8",
        script="prepare",
        activate_options=["--role", "web"],
    )
    assert result["failed"] is True
    assert result["msg"] == "; ".join(
        [
            "management_server must be HOST:PORT, such as pce.example.com:8443 (got 'https://pce')",
            "activation_code must be the hexadecimal code of a pairing key",
            "proxy_server: the VEN supports http proxies only, not https://",
            "pairing_profile_id must be the number at the end of the profile's href",
            "the prepare script takes no activate options: the pairing profile decides them",
        ]
    )
    assert "secret!" not in result["msg"]
    assert setup.server.requests == []


# --- prepare ------------------------------------------------------------------------------------------------------


def test_prepare_script(setup):
    setup.action = PREPARE
    result = setup.run(script="prepare")
    assert result["changed"] is True
    assert result["url"].endswith("?pair_script=prepare.sh&profile_id=8")
    assert setup.server.requests[0].query == {"pair_script": "prepare.sh", "profile_id": "8"}
    assert setup.recorded("path") == [str(setup.work_dir / "prepare.sh")]
    assert result["ven"]["activation"] == "prepared"
    assert result["ven"]["activation_file_server"] == setup.pce
    again = setup.run(script="prepare")
    assert again["changed"] is False
    assert len(setup.server.requests) == 1


def test_prepare_script_refuses_activate_options(setup):
    result = setup.run(script="prepare", activate_options=["--role", "web"])
    assert result["failed"] is True
    assert result["msg"] == "the prepare script takes no activate options: the pairing profile decides them"
    assert setup.server.requests == []


def test_an_activated_ven_is_not_prepared(setup):
    setup.ven.install()
    setup.ven.pair(setup.pce)
    result = setup.run(script="prepare")
    assert result["failed"] is True
    assert f"already paired with {setup.pce}" in result["msg"]
    assert setup.server.requests == []


# --- check mode -----------------------------------------------------------------------------------------------------


def test_check_mode_downloads_and_runs_nothing(setup):
    result = setup.run(check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["ran"] is True
    assert setup.server.requests == []
    assert not setup.work_dir.exists()
    assert not setup.ven.ctl.exists()
    assert result["diff"]["after"]["activation"] == "activated"


def test_check_mode_on_a_paired_ven(setup):
    setup.ven.install()
    setup.ven.pair(setup.pce)
    result = setup.run(check_mode=True)
    assert (result["changed"], result["ran"]) == (False, False)


# --- failures -------------------------------------------------------------------------------------------------------


def test_an_untrusted_server_is_refused(setup):
    result = setup.run(ca_path=str(setup.tls.other_ca_cert))
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"cannot download the pairing script from https://{setup.pce}/api/v18/software/ven/image?"
    )
    assert "CERTIFICATE_VERIFY_FAILED" in result["msg"]
    assert setup.server.requests == []
    assert setup.recorded("argv") is None
    assert os.listdir(setup.work_dir) == []


def test_without_ca_path_the_system_trust_store_does_not_know_the_test_ca(setup):
    result = setup.run(ca_path=None)
    assert result["failed"] is True
    assert "CERTIFICATE_VERIFY_FAILED" in result["msg"]


def test_a_body_that_is_not_a_script_is_refused(setup):
    setup.body = b"<html><body>Sign in</body></html>"
    result = setup.run()
    assert result["failed"] is True
    assert result["msg"] == f"{result_url(setup)} did not return a script (is the profile id right?)"
    assert os.listdir(setup.work_dir) == []
    assert setup.recorded("argv") is None


def test_an_http_error_is_reported(setup):
    setup.status, setup.body = 404, b'{"error": "not found"}'
    result = setup.run()
    assert result["failed"] is True
    assert result["msg"] == f"cannot download the pairing script from {result_url(setup)}: HTTP Error 404: Not Found"


def test_a_failing_script_is_reported_without_the_code_and_removed(setup):
    setup.action = FAIL
    result = setup.run()
    assert result["failed"] is True
    assert result["msg"] == (
        "the pairing script failed (exit 3): Installing the VEN package from the PCE / Pairing with Illumio ..... / "
        "activation code ******** was refused: invalid pairing key"
    )
    assert "activation code ******** was refused: invalid pairing key" in result["output"]
    [path] = setup.recorded("path")
    assert not os.path.exists(path)


def test_a_script_that_does_not_pair_the_ven_is_a_failure(setup):
    setup.action = "echo done"
    result = setup.run()
    assert result["failed"] is True
    assert result["msg"] == "the pairing script ran, but the VEN is not activated, not activated"


def result_url(setup):
    return f"https://{setup.pce}/api/v18/software/ven/image?pair_script=pair.sh&profile_id=8"
