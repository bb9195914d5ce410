# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run `illumio-ven-ctl` and read what it prints (VEN Administration Guide: status, show-proxy, version)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import os
import re

DEFAULT_INSTALL_DIR = "/opt/illumio_ven"
DEFAULT_DATA_DIR = "/opt/illumio_ven_data"
CTL_NAME = "illumio-ven-ctl"
# `status` exits 0 when the VEN runs and non-zero when it is stopped or suspended; both are answers, not errors.
STATUS_ANSWERS = (0, 1, 3)
_COMPONENT = re.compile(r"^\s*-\s*(?P<name>[\w.-]+)(?:\s*\(pid\s+(?P<pid>\d+)\))?[:\s]+(?P<rest>.*)$")
_FIRST_LINE = re.compile(r"^Illumio VEN is (?P<state>\w+)", re.IGNORECASE)
_KEY_VALUE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z ]*?)\s*:\s*(?P<value>.*)$")
# `Key: value` lines of `status`, and the fact each becomes.
STATUS_KEYS = {
    "ven version": "version",
    "activation": "activation",
    "management server": "management_server",
    "proxy server": "proxy_server",
    "ven connectivity": "connectivity",
    "agent state": "agent_state",
    "enforcement mode": "enforcement_mode",
    "visibility level": "visibility_level",
    "workload": "workload_href",
}
NOT_SET = ("", "(not set)", "n/a", "none")


class VenCtlError(Exception):
    """`illumio-ven-ctl` failed; the message carries its own words."""


class VenCtl:
    """`illumio-ven-ctl` of one install directory, run through an AnsibleModule (no shell, no secrets in argv)."""

    def __init__(self, module, install_dir=DEFAULT_INSTALL_DIR):
        self.module = module
        self.path = os.path.join(install_dir, CTL_NAME)

    @property
    def installed(self):
        return os.access(self.path, os.X_OK)

    def run(self, *arguments, **kwargs):
        """(rc, stdout, stderr); `environ_update` passes secrets by environment, never on the command line."""
        return self.module.run_command([self.path, *arguments], **kwargs)

    def check(self, *arguments, **kwargs):
        """stdout of a command that must succeed; VenCtlError with the VEN's words otherwise."""
        rc, out, err = self.run(*arguments, **kwargs)
        if rc != 0:
            said = (err.strip() or out.strip() or "no output").splitlines()
            raise VenCtlError("illumio-ven-ctl %s failed (exit %d): %s" % (arguments[0], rc, " / ".join(said[-5:])))
        return out

    def status(self):
        rc, out, err = self.run("status")
        if rc not in STATUS_ANSWERS or not out.strip():
            raise VenCtlError("illumio-ven-ctl status failed (exit %d): %s" % (rc, err.strip() or "no output"))
        return parse_status(out)

    def proxy(self):
        return parse_show_proxy(self.check("show-proxy"))

    def version(self):
        return self.check("version").strip() or None


def _clean(value):
    value = value.strip()
    return None if value.lower() in NOT_SET else value


def parse_status(text):
    """`illumio-ven-ctl status` output → {'state', 'services': {name: state}, and the STATUS_KEYS facts}."""
    status = {"state": None, "services": {}}
    for line in text.splitlines():
        first = _FIRST_LINE.match(line.strip())
        if first:
            status["state"] = first.group("state").lower()
            continue
        component = _COMPONENT.match(line)
        if component:
            status["services"][component.group("name")] = _service_state(component.group("rest"))
            continue
        pair = _KEY_VALUE.match(line.strip())
        if pair and pair.group("key").lower() in STATUS_KEYS:
            status[STATUS_KEYS[pair.group("key").lower()]] = _clean(pair.group("value"))
    return status


def _service_state(text):
    text = text.lower()
    for word in ("not enabled", "running", "stopped", "dead", "disabled"):
        if word in text:
            return word.replace(" ", "_")
    return text.strip(" .") or "unknown"


def parse_show_proxy(text):
    """`proxy_server: P` → P; `No proxy is set` → None."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("proxy_server", "proxy server"):
            return _clean(value)
    return None
