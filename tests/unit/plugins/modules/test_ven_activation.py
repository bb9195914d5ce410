"""ven_activation without root, against a stateful fake `illumio-ven-ctl` (tests/unit/fake_ven_ctl.py).

Like the VEN, the fake's `activate` without --activation-code reads the code and PCE from the data directory's
agent_activation.cfg and removes it after activating; it records every argv it gets, so the tests can say that
the activation code was never on a command line.
"""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.ven import facts
from ansible_collections.microseg.illumio.plugins.modules import ven_activation
from fake_ven_ctl import FakeVen
from module_runner import run_module

CODE = "7e3a9f0c1b2d4e5f60718293a4b5c6d7"
PCE = "pce.example.com:8443"
OLD_PCE = "old-pce.example.com:8443"
READ_ONLY_COMMANDS = {"status", "show-proxy", "version"}


@pytest.fixture(autouse=True)
def _install_record(tmp_path, monkeypatch):
    """The modules read the install record from a fixed host path; give them one in tmp_path instead."""
    real = facts.read_install_record
    path = str(tmp_path / "install.json")
    monkeypatch.setattr(facts, "read_install_record", lambda _path=None: real(path))


@pytest.fixture
def ven(tmp_path):
    return FakeVen(tmp_path, CODE)


def activation(ven, check_mode=False, diff=False, **args):
    args.setdefault("install_dir", str(ven.install_dir))
    args.setdefault("data_dir", str(ven.data_dir))
    result = run_module(ven_activation.main, args, check_mode=check_mode, diff=diff)
    # Whatever happened, the code is nowhere in what the module returns.
    assert CODE not in json.dumps(result)
    return result


def pair(ven, **args):
    return activation(ven, management_server=PCE, activation_code=CODE, **args)


def activate_calls(ven):
    return [argv for argv in ven.calls() if argv[0] == "activate"]


def assert_code_never_on_a_command_line(ven):
    for argv in ven.calls():
        assert CODE not in " ".join(argv)
        assert "--activation-code" not in argv
        assert "-a" not in argv


# --- activated ------------------------------------------------------------------------------------------------


def test_activation_from_scratch(ven):
    result = pair(ven, labels={"role": "web", "env": "prod"}, enforcement_mode="visibility_only", name="web 1")
    assert result["changed"] is True
    assert "failed" not in result
    assert result["activation"] == "activated"
    assert result["management_server"] == PCE
    assert result["workload_href"] == "/orgs/1/workloads/w1"
    assert result["paired_elsewhere"] is False
    assert result["ven"]["activated"] is True
    assert "VEN has been SUCCESSFULLY paired with Illumio" in result["output"]
    assert activate_calls(ven) == [
        [
            "activate",
            "--management-server",
            PCE,
            "--name",
            "web 1",
            "--role",
            "web",
            "--env",
            "prod",
            "--enforcement_mode",
            "visibility_only",
        ]
    ]
    # The VEN got the code from its activation file, which was 0600, and is gone now.
    [done] = ven.state()["activations"]
    assert done == {"code_source": "cfg", "code_ok": True, "server": PCE, "cfg_mode": 0o600}
    assert not ven.activation_file.exists()
    assert_code_never_on_a_command_line(ven)


def test_second_run_changes_nothing_and_does_not_use_the_code(ven):
    pair(ven)
    ven.forget_calls()
    result = pair(ven, labels={"role": "db"})
    assert result["changed"] is False
    assert result["activation"] == "activated"
    assert "output" not in result
    assert set(ven.commands()) <= READ_ONLY_COMMANDS
    assert len(ven.state()["activations"]) == 1
    assert not ven.activation_file.exists()


def test_an_already_paired_ven_is_recognised_whatever_the_case_of_the_server(ven):
    ven.pair(PCE.upper())
    result = activation(ven, management_server=PCE, activation_code=CODE)
    assert result["changed"] is False
    assert activate_calls(ven) == []


def test_a_paired_ven_needs_no_code(ven):
    ven.pair(PCE)
    result = activation(ven, management_server=PCE)
    assert result["changed"] is False
    assert "failed" not in result


def test_an_unpaired_ven_needs_the_code(ven):
    result = activation(ven, management_server=PCE)
    assert result["failed"] is True
    assert result["msg"] == f"the VEN is not paired with {PCE}: activation_code is needed to pair it"
    assert ven.commands() and set(ven.commands()) <= READ_ONLY_COMMANDS


def test_the_proxy_goes_to_activate(ven):
    pair(ven, proxy_server="http://proxy.example.com:3128", log_traffic=False)
    [argv] = activate_calls(ven)
    assert argv[-4:] == ["--log-traffic", "false", "--proxy-server", "http://proxy.example.com:3128"]


def test_failed_activation_removes_the_activation_file_and_says_why(ven):
    ven.fail("activate", "Error: pairing key expired")
    result = pair(ven)
    assert result["failed"] is True
    assert result["msg"].startswith("illumio-ven-ctl activate failed (exit 1): ")
    assert "Error: pairing key expired" in result["msg"]
    assert "Workload has FAILED pairing with Illumio" in result["msg"]
    assert not ven.activation_file.exists()
    assert ven.state()["activated"] is False
    # The VEN did get the file (so the failure is not the module's): it was there, 0600, during the run.
    assert ven.state()["activations"][0]["cfg_mode"] == 0o600
    assert_code_never_on_a_command_line(ven)


def test_a_wrong_code_fails_and_leaves_no_file(ven):
    other = "ffffffffffffffffffffffffffffffff"
    result = activation(ven, management_server=PCE, activation_code=other)
    assert result["failed"] is True
    assert "Invalid activation code" in result["msg"]
    assert not ven.activation_file.exists()
    assert other not in json.dumps(ven.calls())


def test_an_existing_activation_file_is_replaced_by_the_given_code(ven):
    ven.prepare(OLD_PCE, "0000")
    ven.activation_file.chmod(0o644)
    result = pair(ven)
    assert result["changed"] is True
    [done] = ven.state()["activations"]
    assert done == {"code_source": "cfg", "code_ok": True, "server": PCE, "cfg_mode": 0o600}


def test_a_prepared_ven_activates_from_its_own_activation_file_without_a_code(ven):
    ven.prepare(PCE, CODE)
    result = activation(ven, management_server=PCE)
    assert result["changed"] is True
    assert result["activation"] == "activated"
    assert ven.state()["activations"][0]["code_source"] == "cfg"
    assert not ven.activation_file.exists()


def test_a_ven_prepared_for_another_pce_needs_a_code(ven):
    ven.prepare(OLD_PCE, CODE)
    result = activation(ven, management_server=PCE)
    assert result["failed"] is True
    assert "activation_code is needed" in result["msg"]
    assert ven.activation_file.exists()


# --- paired elsewhere -----------------------------------------------------------------------------------------


def test_paired_elsewhere_fails_by_default(ven):
    ven.pair(OLD_PCE)
    result = pair(ven)
    assert result["failed"] is True
    assert result["msg"] == (
        f"the VEN is paired with {OLD_PCE}, not {PCE}; set when_paired_elsewhere=repair to re-pair it"
    )
    assert result["management_server"] == OLD_PCE
    assert set(ven.commands()) <= READ_ONLY_COMMANDS
    assert ven.state()["management_server"] == OLD_PCE
    assert not ven.activation_file.exists()


def test_paired_elsewhere_warn_leaves_it(ven, monkeypatch):
    warnings = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning: warnings.append(warning))
    ven.pair(OLD_PCE)
    result = pair(ven, when_paired_elsewhere="warn")
    assert result["changed"] is False
    assert "failed" not in result
    assert result["paired_elsewhere"] is True
    assert result["management_server"] == OLD_PCE
    assert set(ven.commands()) <= READ_ONLY_COMMANDS
    assert not ven.activation_file.exists()
    assert f"the VEN is paired with {OLD_PCE}, not {PCE}; left as it is" in warnings


def test_paired_elsewhere_repair_deactivates_then_activates(ven):
    ven.pair(OLD_PCE)
    result = pair(ven, when_paired_elsewhere="repair")
    assert result["changed"] is True
    assert result["management_server"] == PCE
    assert result["paired_elsewhere"] is False
    changing = [argv[0] for argv in ven.calls() if argv[0] not in READ_ONLY_COMMANDS]
    assert changing == ["deactivate", "activate"]
    assert "The VEN has been deactivated. PCE was notified." in result["output"]
    assert result["diff"]["before"]["management_server"] == OLD_PCE
    assert result["diff"]["after"]["management_server"] == PCE
    assert not ven.activation_file.exists()
    assert_code_never_on_a_command_line(ven)


def test_repair_needs_the_code_before_deactivating(ven):
    ven.pair(OLD_PCE)
    result = activation(ven, management_server=PCE, when_paired_elsewhere="repair")
    assert result["failed"] is True
    assert result["msg"] == f"re-pairing the VEN with {PCE} needs activation_code"
    assert ven.state()["activated"] is True
    assert "deactivate" not in ven.commands()


def test_repair_in_check_mode_changes_nothing(ven):
    ven.pair(OLD_PCE)
    result = pair(ven, when_paired_elsewhere="repair", check_mode=True)
    assert result["changed"] is True
    assert set(ven.commands()) <= READ_ONLY_COMMANDS
    assert ven.state()["management_server"] == OLD_PCE


# --- prepared ---------------------------------------------------------------------------------------------------


def test_prepare_writes_the_activation_file_and_runs_prepare(ven):
    result = activation(ven, state="prepared", management_server=PCE, activation_code=CODE)
    assert result["changed"] is True
    assert result["activation"] == "prepared"
    assert result["ven"]["activation_file_server"] == PCE
    assert ven.activation_file.read_text() == f"activation_code: {CODE}\nmasterconfig_server: {PCE}\n"
    assert ven.activation_file_mode() == 0o600
    assert [argv for argv in ven.calls() if argv[0] not in READ_ONLY_COMMANDS] == [["prepare"]]
    assert ven.state()["running"] is False
    assert_code_never_on_a_command_line(ven)


def test_prepare_again_changes_nothing(ven):
    activation(ven, state="prepared", management_server=PCE, activation_code=CODE)
    ven.forget_calls()
    result = activation(ven, state="prepared", management_server=PCE, activation_code=CODE)
    assert result["changed"] is False
    assert set(ven.commands()) <= READ_ONLY_COMMANDS
    # Also without the code: the VEN is prepared already.
    assert activation(ven, state="prepared", management_server=PCE)["changed"] is False


def test_a_ven_prepared_for_another_pce_is_prepared_again(ven):
    ven.prepare(OLD_PCE, CODE)
    result = activation(ven, state="prepared", management_server=PCE, activation_code=CODE)
    assert result["changed"] is True
    assert f"masterconfig_server: {PCE}\n" in ven.activation_file.read_text()


def test_an_activated_ven_cannot_be_prepared(ven):
    ven.pair(PCE)
    result = activation(ven, state="prepared", management_server=PCE, activation_code=CODE)
    assert result["failed"] is True
    assert result["msg"] == (
        f"the VEN is activated (paired with {PCE}); deactivate it before preparing an image, "
        "or the image clones its identity"
    )
    assert "prepare" not in ven.commands()
    assert not ven.activation_file.exists()


def test_prepare_needs_the_code(ven):
    result = activation(ven, state="prepared", management_server=PCE)
    assert result["failed"] is True
    assert result["msg"] == "state=prepared needs activation_code (it goes in the VEN's activation file)"


def test_a_failed_prepare_removes_the_activation_file(ven):
    ven.fail("prepare", "cannot stop the VEN")
    result = activation(ven, state="prepared", management_server=PCE, activation_code=CODE)
    assert result["failed"] is True
    assert result["msg"] == "illumio-ven-ctl prepare failed (exit 1): illumio-ven-ctl: cannot stop the VEN"
    assert not ven.activation_file.exists()


def test_prepare_takes_no_activation_options(ven):
    result = activation(
        ven, state="prepared", management_server=PCE, activation_code=CODE, labels={"role": "web"}, name="x"
    )
    assert result["failed"] is True
    assert (
        result["msg"] == "state=prepared takes no activation options (name, labels): the pairing profile decides them"
    )
    assert ven.calls() == []


# --- deactivated ------------------------------------------------------------------------------------------------


def test_deactivate(ven):
    ven.pair(PCE)
    result = activation(ven, state="deactivated")
    assert result["changed"] is True
    assert result["activation"] == "not activated"
    assert result["management_server"] is None
    assert [argv for argv in ven.calls() if argv[0] not in READ_ONLY_COMMANDS] == [["deactivate"]]
    ven.forget_calls()
    again = activation(ven, state="deactivated")
    assert again["changed"] is False
    assert set(ven.commands()) <= READ_ONLY_COMMANDS


def test_deactivate_takes_no_activation_options(ven):
    result = activation(ven, state="deactivated", enforcement_mode="idle")
    assert result["failed"] is True
    assert result["msg"] == "state=deactivated takes no activation options (enforcement_mode)"


def test_a_failed_deactivate_says_why(ven):
    ven.pair(PCE)
    ven.fail("deactivate", "cannot reach the PCE")
    result = activation(ven, state="deactivated")
    assert result["failed"] is True
    assert result["msg"] == "illumio-ven-ctl deactivate failed (exit 1): illumio-ven-ctl: cannot reach the PCE"


def test_deactivating_a_prepared_ven_cancels_the_pending_activation(ven):
    ven.prepare(PCE, CODE)
    result = activation(ven, state="deactivated")
    assert result["activation"] == "not activated"
    assert not ven.activation_file.exists()


# --- check mode and diff ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        (None, {"management_server": PCE, "activation_code": CODE}, "activated"),
        (None, {"state": "prepared", "management_server": PCE, "activation_code": CODE}, "prepared"),
        ("paired", {"state": "deactivated"}, "not activated"),
    ],
)
def test_check_mode_changes_nothing(ven, setup, args, expected):
    if setup == "paired":
        ven.pair(PCE)
    before = ven.state()
    result = activation(ven, check_mode=True, diff=True, **args)
    assert result["changed"] is True
    assert "failed" not in result
    assert "output" not in result
    assert result["activation"] == expected
    assert result["diff"]["after"]["activation"] == expected
    assert set(ven.commands()) <= READ_ONLY_COMMANDS
    assert ven.state() == before
    assert not ven.activation_file.exists()


def test_diff_of_an_activation(ven):
    result = pair(ven, diff=True)
    assert result["diff"] == {
        "before": {
            "activation": "not activated",
            "management_server": None,
            "agent_state": "unpaired",
            "state": "running",
        },
        "after": {
            "activation": "activated",
            "management_server": PCE,
            "agent_state": "illuminated",
            "state": "running",
        },
    }


def test_diff_of_no_change_is_empty(ven):
    ven.pair(PCE)
    result = pair(ven, diff=True)
    assert result["diff"]["before"] == result["diff"]["after"]


# --- options and the VEN's absence ------------------------------------------------------------------------------


def test_bad_options_are_all_named_in_one_message(ven):
    result = activation(
        ven,
        management_server="https://pce.example.com",
        activation_code="not-a-code",
        labels={"role": "web", "os": "linux"},
        visibility_level="flow_off",
        log_traffic=True,
        proxy_server="https://proxy:3128",
    )
    assert result["failed"] is True
    assert result["msg"] == "; ".join(
        [
            "management_server must be HOST:PORT, such as pce.example.com:8443 (got 'https://pce.example.com')",
            "activation_code must be the hexadecimal code of a pairing key",
            "labels: activation sets only role/app/env/loc labels, not 'os'",
            "visibility_level flow_off with log_traffic true is an invalid combination",
            "proxy_server: the VEN supports http proxies only, not https://",
        ]
    )
    assert "not-a-code" not in result["msg"]
    assert ven.calls() == []


def test_flow_drops_needs_full_enforcement(ven):
    result = pair(ven, visibility_level="flow_drops", enforcement_mode="selective")
    assert result["failed"] is True
    assert result["msg"] == "visibility_level flow_drops is valid only with enforcement_mode full, not selective"


def test_management_server_is_required_to_activate(ven):
    result = activation(ven, activation_code=CODE)
    assert result["failed"] is True
    assert "management_server" in result["msg"]
    assert ven.calls() == []


def test_not_installed(tmp_path):
    ven = FakeVen(tmp_path, CODE, installed=False)
    result = pair(ven)
    assert result["failed"] is True
    assert result["msg"] == f"the VEN is not installed in {ven.install_dir}; install it first"
    assert ven.calls() == []
    assert not ven.activation_file.exists()


def test_a_ven_that_does_not_reach_the_state_is_a_failure(ven):
    # `activate` says it worked, but the VEN is still not activated (for example a wrapper that swallows errors).
    script = ven.ctl.read_text().replace(
        "state.update(activated=True, running=True", "state.update(activated=False, running=True"
    )
    assert script != ven.ctl.read_text()
    ven.ctl.write_text(script)
    result = pair(ven)
    assert result["failed"] is True
    assert result["msg"] == (
        "illumio-ven-ctl reported success, but the VEN's activation is now 'not activated', not 'activated'"
    )


def test_check_mode_diff_shows_the_pce_a_repair_moves_to(ven):
    ven.pair(OLD_PCE)
    result = pair(ven, when_paired_elsewhere="repair", check_mode=True, diff=True)
    assert result["diff"]["before"]["management_server"] == OLD_PCE
    assert result["diff"]["after"]["management_server"] == PCE
