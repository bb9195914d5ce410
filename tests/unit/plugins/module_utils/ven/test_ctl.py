"""module_utils/ven/ctl.py: reading `illumio-ven-ctl status` / `show-proxy`, and VenCtl's error messages.

The Linux outputs are those of the collection's VEN stand-in (tests/vensim/vensim.py cmd_status, cmd_show_proxy);
the Windows one is the VEN Installation Guide's example (`illumio-ven-ctl.ps1 status`).
"""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.ven import ctl
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import (
    VenCtl,
    VenCtlError,
    parse_show_proxy,
    parse_status,
)

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
Workload: /orgs/1/workloads/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
"""

STOPPED_NOT_ACTIVATED = """Illumio VEN is stopped
- venAgentMgr is stopped
- IPSec: feature not enabled
- venPlatformHandler is stopped
- venVtapServer is stopped
- venAgentMonitor is stopped

VEN Version: 23.2.10-100
Activation: not activated
Management Server: (not set)
Proxy Server: (not set)
VEN Connectivity: n/a
Agent State: unpaired
"""

PREPARED = """Illumio VEN is stopped
- venAgentMgr is stopped
- IPSec: feature not enabled
- venPlatformHandler is stopped
- venVtapServer is stopped
- venAgentMonitor is stopped

VEN Version: 23.2.20-200
Activation: prepared
Management Server: pce.example.com:8443
Proxy Server: http://proxy.example.com:3128
VEN Connectivity: n/a
Agent State: unpaired
"""

SUSPENDED = """Illumio VEN is suspended
- venAgentMgr is stopped
- IPSec: feature not enabled
- venPlatformHandler is stopped
- venVtapServer is stopped
- venAgentMonitor is stopped

VEN Version: 23.2.10-100
Activation: activated
Management Server: pce.example.com:8443
Proxy Server: (not set)
VEN Connectivity: Disconnected (connection refused)
Agent State: suspended
Enforcement Mode: full
Visibility Level: flow_drops
Workload: /orgs/1/workloads/w1
"""

# The installation guide's example, with its layout: each service's state on a line of its own.
WINDOWS = """Service venAgentMgrSvc:
                                       Running
Service venPlatformHandlerSvc:
                                       Running
Service venVtapServerSvc:
                                       Running
Service venAgentMonitorSvc:
                                       Running
Service venAgentMgrSvc:
                                       Enabled
Service venPlatformHandlerSvc:
                                       Enabled
Agent State: illuminated
"""

COMPONENTS = ("venAgentMgr", "venPlatformHandler", "venVtapServer", "venAgentMonitor")


# --- parse_status ---------------------------------------------------------------------------------------------


def test_status_of_a_running_activated_ven():
    status = parse_status(RUNNING_ACTIVATED)
    assert status == {
        "state": "running",
        "services": {**dict.fromkeys(COMPONENTS, "running"), "IPSec": "not_enabled"},
        "version": "23.2.10-100",
        "activation": "activated",
        "management_server": "pce.example.com:8443",
        "proxy_server": None,
        "connectivity": "Connected",
        "agent_state": "illuminated",
        "enforcement_mode": "visibility_only",
        "visibility_level": "flow_summary",
        "workload_href": "/orgs/1/workloads/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    }


def test_status_of_a_stopped_ven_that_is_not_activated():
    status = parse_status(STOPPED_NOT_ACTIVATED)
    assert status["state"] == "stopped"
    assert status["services"] == {**dict.fromkeys(COMPONENTS, "stopped"), "IPSec": "not_enabled"}
    assert status["activation"] == "not activated"
    assert status["agent_state"] == "unpaired"
    # "(not set)" and "n/a" mean nothing is there; the keys are still present (the VEN said so).
    assert status["management_server"] is None
    assert status["proxy_server"] is None
    assert status["connectivity"] is None
    assert "proxy_server" in status
    # Lines the VEN did not print are not invented.
    assert "enforcement_mode" not in status
    assert "workload_href" not in status


def test_status_of_a_prepared_ven():
    status = parse_status(PREPARED)
    assert status["state"] == "stopped"
    assert status["activation"] == "prepared"
    assert status["version"] == "23.2.20-200"
    assert status["management_server"] == "pce.example.com:8443"
    assert status["proxy_server"] == "http://proxy.example.com:3128"


def test_status_of_a_suspended_ven():
    status = parse_status(SUSPENDED)
    assert status["state"] == "suspended"
    assert status["agent_state"] == "suspended"
    assert status["connectivity"] == "Disconnected (connection refused)"
    assert status["enforcement_mode"] == "full"
    assert status["visibility_level"] == "flow_drops"
    assert status["workload_href"] == "/orgs/1/workloads/w1"


def test_status_in_the_windows_layout_gives_the_agent_state_and_invents_nothing():
    status = parse_status(WINDOWS)
    assert status["agent_state"] == "illuminated"
    # No "Illumio VEN is ..." line and no "- component" lines: nothing to report there.
    assert status["state"] is None
    assert status["services"] == {}
    # `Service X:` lines are not mistaken for facts.
    assert set(status) == {"state", "services", "agent_state"}


def test_status_on_one_line_per_windows_service_is_not_mistaken_for_facts():
    text = "Service venAgentMgrSvc: Running\nService venPlatformHandlerSvc: Running\nAgent State: illuminated\n"
    assert parse_status(text) == {"state": None, "services": {}, "agent_state": "illuminated"}


def test_status_keys_and_first_line_are_case_insensitive_and_values_keep_colons():
    text = "ILLUMIO VEN IS Running\nmanagement server :  pce.example.com:8443  \nAGENT STATE: Enforced\n"
    status = parse_status(text)
    assert status["state"] == "running"
    assert status["management_server"] == "pce.example.com:8443"
    assert status["agent_state"] == "Enforced"


def test_status_of_nothing_is_empty():
    assert parse_status("") == {"state": None, "services": {}}


@pytest.mark.parametrize(
    ("line", "state"),
    [
        ("- venAgentMgr (pid 12) is running...", "running"),
        ("- venAgentMgr is stopped", "stopped"),
        ("  - venVtapServer (pid 7): dead but pid file exists", "dead"),
        ("- IPSec: feature not enabled", "not_enabled"),
        ("- venAgentMonitor: disabled", "disabled"),
        ("- venPlatformHandler: starting.", "starting"),
        ("- venPlatformHandler:", "unknown"),
    ],
)
def test_component_lines(line, state):
    name = line.split("-", 1)[1].split()[0].rstrip(":")
    assert parse_status(line)["services"] == {name: state}


@pytest.mark.parametrize("value", ["", "(not set)", "N/A", "none", "None", "  (Not Set)  "])
def test_empty_values_are_none(value):
    assert parse_status(f"Proxy Server: {value}\n")["proxy_server"] is None


# --- parse_show_proxy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "proxy"),
    [
        ("proxy_server: http://proxy.example.com:3128\n", "http://proxy.example.com:3128"),
        ("proxy_server: proxy.example.com:3128", "proxy.example.com:3128"),
        ("Proxy Server: 10.0.0.1:8080\n", "10.0.0.1:8080"),
        ("some banner\nproxy_server:   proxy:80  \n", "proxy:80"),
        ("No proxy is set\n", None),
        ("proxy_server: \n", None),
        ("", None),
    ],
)
def test_show_proxy(text, proxy):
    assert parse_show_proxy(text) == proxy


# --- VenCtl ---------------------------------------------------------------------------------------------------


class FakeModule:
    """run_command answers from a table of {first argument: (rc, out, err)} and records its calls."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def run_command(self, argv, **kwargs):
        self.calls.append((argv, kwargs))
        return self.answers[argv[1]]


def test_run_puts_the_ctl_of_the_install_dir_first_and_passes_options_on():
    module = FakeModule({"activate": (0, "ok\n", "")})
    venctl = VenCtl(module, "/srv/ven")
    assert venctl.path == "/srv/ven/illumio-ven-ctl"
    assert venctl.run("activate", "--name", "web1", environ_update={"X": "1"}) == (0, "ok\n", "")
    assert module.calls == [
        (["/srv/ven/illumio-ven-ctl", "activate", "--name", "web1"], {"environ_update": {"X": "1"}})
    ]


def test_default_install_dir():
    assert VenCtl(FakeModule({})).path == "/opt/illumio_ven/illumio-ven-ctl"


def test_installed_means_an_executable_ctl(tmp_path):
    venctl = VenCtl(FakeModule({}), str(tmp_path))
    assert venctl.installed is False
    (tmp_path / "illumio-ven-ctl").write_text("#!/bin/sh\n")
    (tmp_path / "illumio-ven-ctl").chmod(0o644)
    assert venctl.installed is False
    (tmp_path / "illumio-ven-ctl").chmod(0o755)
    assert venctl.installed is True


def test_check_returns_stdout_on_success():
    assert VenCtl(FakeModule({"deactivate": (0, "done\n", "noise")})).check("deactivate") == "done\n"


def test_check_error_carries_the_vens_own_words_from_stderr():
    module = FakeModule({"activate": (1, "Activating Illumio\n", "line 1\nError: Invalid activation code\n")})
    with pytest.raises(VenCtlError) as error:
        VenCtl(module).check("activate", "--name", "web1")
    assert str(error.value) == "illumio-ven-ctl activate failed (exit 1): line 1 / Error: Invalid activation code"


def test_check_error_falls_back_to_stdout_and_keeps_the_last_five_lines():
    out = "\n".join(f"line {n}" for n in range(1, 10)) + "\nWorkload has FAILED pairing with Illumio\n"
    with pytest.raises(VenCtlError) as error:
        VenCtl(FakeModule({"activate": (1, out, "  \n")})).check("activate")
    assert str(error.value) == (
        "illumio-ven-ctl activate failed (exit 1): line 6 / line 7 / line 8 / line 9 / "
        "Workload has FAILED pairing with Illumio"
    )


def test_check_error_without_output():
    with pytest.raises(VenCtlError, match=r"^illumio-ven-ctl prepare failed \(exit 2\): no output$"):
        VenCtl(FakeModule({"prepare": (2, "", "")})).check("prepare")


@pytest.mark.parametrize("rc", ctl.STATUS_ANSWERS)
def test_status_of_a_stopped_or_suspended_ven_is_an_answer(rc):
    assert VenCtl(FakeModule({"status": (rc, STOPPED_NOT_ACTIVATED, "")})).status()["state"] == "stopped"


def test_status_with_another_exit_code_is_an_error_even_with_output():
    with pytest.raises(VenCtlError, match=r"^illumio-ven-ctl status failed \(exit 5\): Segmentation fault$"):
        VenCtl(FakeModule({"status": (5, SUSPENDED, "Segmentation fault\n")})).status()


def test_status_without_output_is_an_error_even_when_it_exits_0():
    with pytest.raises(VenCtlError, match=r"^illumio-ven-ctl status failed \(exit 0\): no output$"):
        VenCtl(FakeModule({"status": (0, "\n", "")})).status()


def test_status_failure_without_output_raises_with_stderr():
    module = FakeModule({"status": (127, "", "illumio-ven-ctl: cannot execute\n")})
    with pytest.raises(VenCtlError, match=r"status failed \(exit 127\): illumio-ven-ctl: cannot execute$"):
        VenCtl(module).status()


def test_proxy_and_version():
    module = FakeModule({"show-proxy": (0, "proxy_server: http://p:3128\n", ""), "version": (0, "23.2.10-100\n", "")})
    assert VenCtl(module).proxy() == "http://p:3128"
    assert VenCtl(module).version() == "23.2.10-100"
    assert VenCtl(FakeModule({"version": (0, "\n", "")})).version() is None
    assert VenCtl(FakeModule({"show-proxy": (0, "No proxy is set\n", "")})).proxy() is None


def test_proxy_failure_is_an_error():
    with pytest.raises(VenCtlError, match="show-proxy failed"):
        VenCtl(FakeModule({"show-proxy": (1, "", "not installed")})).proxy()
