"""A stateful stand-in for `illumio-ven-ctl` for unit tests without root (ven_activation, ven_pairing_script).

`FakeVen(tmp_path)` writes one small Python script and keeps the VEN's state in a JSON file. Its output follows
tests/vensim (the collection's VEN stand-in): `status` prints `Illumio VEN is running|stopped`, one line per
component and `Key: value` lines, and exits 0 when running, 3 otherwise; `activate` without --activation-code
reads the code and PCE from DATA/etc/agent_activation.cfg and removes that file after a successful activation.

Every call's argv is appended to `calls.jsonl`, so tests see exactly what the module put on command lines.
`fake.fail("activate", "reason")` makes the next calls of a command fail (exit 1) with that reason. The hidden
commands `_pair SERVER` and `_prepare SERVER` are for fake pairing scripts: they take the code from
VEN_ACTIVATION_CODE, as the VEN's installer does.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

VERSION = "23.2.10-100"

SCRIPT = r"""#!__PYTHON__
import json, os, stat, sys

STATE = __STATE__
CALLS = __CALLS__
CFG = os.path.join(__DATA__, "etc", "agent_activation.cfg")
COMPONENTS = ("venAgentMgr", "venPlatformHandler", "venVtapServer", "venAgentMonitor")


def load():
    with open(STATE) as handle:
        return json.load(handle)


def save(state):
    with open(STATE, "w") as handle:
        json.dump(state, handle, indent=1)


def option(args, *names):
    for index, arg in enumerate(args):
        if arg in names and index + 1 < len(args):
            return args[index + 1]
    return None


def read_cfg():
    found = {}
    try:
        with open(CFG) as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep:
                    found[key.strip()] = value.strip()
    except OSError:
        pass
    return found


def status(state):
    running = state["running"] and not state["suspended"]
    print("Illumio VEN is %s" % ("suspended" if state["suspended"] else "running" if running else "stopped"))
    print("- venAgentMgr (pid 4242) is running..." if running else "- venAgentMgr is stopped")
    print("- IPSec: feature not enabled")
    for name in COMPONENTS[1:]:
        print("- %s (pid 4242) is running..." % name if running else "- %s is stopped" % name)
    print("")
    if state["activated"]:
        activation, agent_state = "activated", "suspended" if state["suspended"] else "illuminated"
    else:
        activation = "prepared" if os.path.exists(CFG) else "not activated"
        agent_state = "unpaired"
    rows = [
        ("VEN Version", state["version"]),
        ("Activation", activation),
        ("Management Server", state["management_server"] or "(not set)"),
        ("Proxy Server", state["proxy_server"] or "(not set)"),
        ("VEN Connectivity", "Connected" if state["activated"] else "n/a"),
        ("Agent State", agent_state),
    ]
    if state["activated"]:
        rows += [
            ("Enforcement Mode", "visibility_only"),
            ("Visibility Level", "flow_summary"),
            ("Workload", state["workload_href"] or ""),
        ]
    for key, value in rows:
        print("%s: %s" % (key, value))
    return 0 if running else 3


def activate(state, args):
    if state["activated"]:
        sys.stderr.write("illumio-ven-ctl: the VEN is already activated; deactivate it first\n")
        return 1
    cfg = read_cfg()
    code = option(args, "--activation-code", "-a")
    source = "argv" if code else "cfg"
    code = code or cfg.get("activation_code")
    server = option(args, "--management-server", "-m") or cfg.get("masterconfig_server")
    record = {
        "code_source": source,
        "code_ok": code == state["expected_code"],
        "server": server,
        "cfg_mode": stat.S_IMODE(os.stat(CFG).st_mode) if os.path.exists(CFG) else None,
    }
    state["activations"].append(record)
    print("Checking Runtime Environment.....")
    print("Activating Illumio")
    reason = state["fail"].get("activate")
    if not reason and not code:
        reason = "no activation code (give --activation-code or write agent_activation.cfg)"
    elif not reason and not record["code_ok"]:
        reason = "Invalid activation code"
    if reason:
        save(state)
        print("Master Configuration retrieval .....FAILED")
        print(reason)
        print("Workload has FAILED pairing with Illumio")
        return 1
    state.update(activated=True, running=True, management_server=server, workload_href="/orgs/1/workloads/w1")
    if os.path.exists(CFG):
        os.unlink(CFG)
    save(state)
    print("VEN has been SUCCESSFULLY paired with Illumio")
    return 0


def main(argv):
    with open(CALLS, "a") as handle:
        handle.write(json.dumps(argv) + "\n")
    state = load()
    command, args = (argv[0] if argv else ""), argv[1:]
    if command == "status":
        return status(state)
    if command == "version":
        print(state["version"])
        return 0
    if command == "show-proxy":
        print("proxy_server: %s" % state["proxy_server"] if state["proxy_server"] else "No proxy is set")
        return 0
    if command == "activate":
        return activate(state, args)
    if command == "_pair":  # what a pairing script's install + activation does (code from the environment)
        if os.environ.get("VEN_ACTIVATION_CODE") != state["expected_code"]:
            sys.stderr.write("Invalid activation code\n")
            return 1
        state.update(activated=True, running=True, management_server=args[0], workload_href="/orgs/1/workloads/w2")
        save(state)
        return 0
    if command == "_prepare":  # what prepare.sh does: the VEN stopped, the code and PCE in the activation file
        if not os.path.isdir(os.path.dirname(CFG)):
            os.makedirs(os.path.dirname(CFG))
        with open(CFG, "w") as handle:
            code = os.environ["VEN_ACTIVATION_CODE"]
            handle.write("activation_code: %s\nmasterconfig_server: %s\n" % (code, args[0]))
        state["running"] = False
        save(state)
        return 0
    reason = state["fail"].get(command)
    if reason:
        sys.stderr.write("illumio-ven-ctl: %s\n" % reason)
        return 1
    if command == "deactivate":
        if not state["activated"]:
            print("The VEN is not activated")
            return 0
        print("Deactivating the VEN")
        state.update(activated=False, running=False, management_server=None, workload_href=None)
        save(state)
        print("The VEN has been deactivated. PCE was notified.")
        return 0
    if command == "prepare":
        if state["activated"]:
            sys.stderr.write("illumio-ven-ctl: the VEN is activated; deactivate it before preparing an image\n")
            return 1
        state["running"] = False
        save(state)
        print("Shutting down illumio-control:")
        print("The VEN is prepared: it activates the next time it starts")
        return 0
    sys.stderr.write("illumio-ven-ctl: error: unknown command %r\n" % command)
    return 2


sys.exit(main(sys.argv[1:]))
"""


class FakeVen:
    """A fake VEN: `install_dir/illumio-ven-ctl` (when installed), its state file and its call log."""

    def __init__(self, root: Path, code: str, installed: bool = True):
        self.root = root
        self.install_dir = root / "opt" / "illumio_ven"
        self.data_dir = root / "opt" / "illumio_ven_data"
        self.state_path = root / "ven-state.json"
        self.calls_path = root / "calls.jsonl"
        self.source = root / "ctl-source" / "illumio-ven-ctl"
        self.source.parent.mkdir(parents=True)
        script = (
            SCRIPT.replace("__PYTHON__", sys.executable)
            .replace("__STATE__", repr(str(self.state_path)))
            .replace("__CALLS__", repr(str(self.calls_path)))
            .replace("__DATA__", repr(str(self.data_dir)))
        )
        self.source.write_text(script)
        self.source.chmod(0o755)
        (self.data_dir / "etc").mkdir(parents=True)
        self.save(
            {
                "version": VERSION,
                "activated": False,
                "running": True,
                "suspended": False,
                "management_server": None,
                "proxy_server": None,
                "workload_href": None,
                "expected_code": code,
                "activations": [],
                "fail": {},
            }
        )
        if installed:
            self.install()

    # --- the VEN ---------------------------------------------------------------------------------------------
    @property
    def ctl(self) -> Path:
        return self.install_dir / "illumio-ven-ctl"

    def install(self) -> None:
        self.install_dir.mkdir(parents=True, exist_ok=True)
        self.ctl.write_bytes(self.source.read_bytes())
        self.ctl.chmod(0o755)

    @property
    def activation_file(self) -> Path:
        return self.data_dir / "etc" / "agent_activation.cfg"

    def state(self) -> dict:
        return json.loads(self.state_path.read_text())

    def save(self, state: dict) -> None:
        self.state_path.write_text(json.dumps(state, indent=1))

    def set(self, **values) -> None:
        state = self.state()
        state.update(values)
        self.save(state)

    def pair(self, server: str) -> None:
        self.set(activated=True, running=True, management_server=server, workload_href="/orgs/1/workloads/w0")

    def prepare(self, server: str, code: str) -> None:
        """A VEN prepared for `server` (golden image): stopped, with the code in its activation file."""
        self.set(running=False)
        self.activation_file.write_text(f"activation_code: {code}\nmasterconfig_server: {server}\n")
        os.chmod(self.activation_file, 0o600)

    def fail(self, command: str, reason: str) -> None:
        state = self.state()
        state["fail"][command] = reason
        self.save(state)

    # --- what happened ---------------------------------------------------------------------------------------
    def calls(self) -> list[list[str]]:
        if not self.calls_path.exists():
            return []
        return [json.loads(line) for line in self.calls_path.read_text().splitlines() if line]

    def commands(self) -> list[str]:
        return [argv[0] for argv in self.calls()]

    def forget_calls(self) -> None:
        if self.calls_path.exists():
            self.calls_path.unlink()

    def activation_file_mode(self) -> int:
        return stat.S_IMODE(self.activation_file.stat().st_mode)
