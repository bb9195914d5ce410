# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the VEN on this host is and does, as one dict of facts; also the install record the collection keeps."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import grp
import json
import os
import pwd

from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import (
    DEFAULT_DATA_DIR,
    DEFAULT_INSTALL_DIR,
    VenCtl,
)

# The collection's own record of how the VEN was installed (never the activation code): upgrades pass the same
# install variables again, as the installation guide requires for VEN_DATA_DIR and VEN_NONPRIV_USER.
INSTALL_RECORD = "/var/lib/microseg-illumio/ven/install.json"
ACTIVATION_FILE = os.path.join("etc", "agent_activation.cfg")
# Install variables worth remembering; secrets (VEN_ACTIVATION_CODE) never go in the record.
REMEMBERED_VARIABLES = (
    "VEN_DATA_DIR",
    "VEN_NONPRIV_USER",
    "VEN_NONPRIV_UID",
    "VEN_NONPRIV_GID",
    "VEN_DISABLE_MONITOR_RESTART",
    "VEN_PROXY_SERVER",
    "VEN_MANAGEMENT_SERVER",
)
EMPTY_FACTS = {
    "installed": False,
    "version": None,
    "activated": False,
    "prepared": False,
    "activation": None,
    "state": None,
    "running": False,
    "suspended": False,
    "agent_state": None,
    "enforcement_mode": None,
    "visibility_level": None,
    "management_server": None,
    "proxy_server": None,
    "connectivity": None,
    "workload_href": None,
    "services": {},
    "user": None,
    "group": None,
}


def read_activation_server(path):
    """The masterconfig_server of an activation file, without reading the code into anything."""
    try:
        with open(path) as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "masterconfig_server":
                    return value.strip() or None
    except OSError:
        return None
    return None


def read_install_record(path=INSTALL_RECORD):
    try:
        with open(path) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_install_record(record, path=INSTALL_RECORD):
    """Write the record atomically, readable by root only (it names users and directories of the host)."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o700)
    temporary = path + ".tmp"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)
    os.rename(temporary, path)


def remembered_environment(environment):
    return dict((key, str(value)) for key, value in environment.items() if key in REMEMBERED_VARIABLES and value)


def data_dir_of(record, data_dir=None):
    return data_dir or record.get("environment", {}).get("VEN_DATA_DIR") or DEFAULT_DATA_DIR


def _owner(path):
    try:
        stat = os.stat(path)
    except OSError:
        return None, None
    try:
        user = pwd.getpwuid(stat.st_uid).pw_name
    except KeyError:
        user = str(stat.st_uid)
    try:
        group = grp.getgrgid(stat.st_gid).gr_name
    except KeyError:
        group = str(stat.st_gid)
    return user, group


def gather(module, install_dir=None, data_dir=None, record_path=INSTALL_RECORD):
    """Facts of the VEN under install_dir; a host without a VEN gets EMPTY_FACTS with installed=False."""
    install_dir = install_dir or DEFAULT_INSTALL_DIR
    record = read_install_record(record_path)
    data_dir = data_dir_of(record, data_dir)
    facts = dict(EMPTY_FACTS, services={}, install_dir=install_dir, data_dir=data_dir)
    facts["install_record"] = record
    activation_file = os.path.join(data_dir, ACTIVATION_FILE)
    facts["activation_file"] = os.path.exists(activation_file)
    facts["activation_file_server"] = read_activation_server(activation_file)
    ctl = VenCtl(module, install_dir)
    if not ctl.installed:
        return facts
    status = ctl.status()
    facts.update((key, value) for key, value in status.items() if value is not None)
    facts["installed"] = True
    facts["version"] = facts["version"] or ctl.version()
    facts["state"] = status.get("state") or "unknown"
    facts["running"] = facts["state"] == "running"
    facts["suspended"] = facts["state"] == "suspended" or status.get("agent_state") == "suspended"
    facts["activation"], facts["activated"], facts["prepared"] = _activation(status, facts["activation_file"])
    if facts["proxy_server"] is None and "proxy_server" not in status:
        facts["proxy_server"] = ctl.proxy()
    facts["user"], facts["group"] = _owner(data_dir)
    return facts


def _activation(status, activation_file):
    """(activation, activated, prepared) from `status`, or from the agent state when it has no Activation line."""
    activation = (status.get("activation") or "").lower()
    if not activation:
        agent_state = (status.get("agent_state") or "unpaired").lower()
        if agent_state not in ("unpaired", "unknown", "not activated"):
            activation = "activated"
        else:
            activation = "prepared" if activation_file else "not activated"
    return activation, activation == "activated", activation == "prepared"
