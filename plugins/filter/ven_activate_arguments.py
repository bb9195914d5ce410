# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter microseg.illumio.ven_activate_arguments: checked activate options as pairing-script arguments."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.microseg.illumio.plugins.module_utils.ven import activation

OPTION_NAMES = (
    "management_server",
    "name",
    "labels",
    "enforcement_mode",
    "visibility_level",
    "log_traffic",
    "proxy_server",
)


def as_bool(value):
    """Extra vars arrive as strings: -e ven_log_traffic=false must mean false."""
    try:
        return boolean(value, strict=True)
    except TypeError as exc:
        message = "ven_activate_arguments: log_traffic must be true or false, not %r" % (value,)
        raise AnsibleFilterError(message) from exc


def ven_activate_arguments(options, platform="linux"):
    """The options as `--role web …` (Linux) or `-role web …` (Windows); fails on any broken rule."""
    if not isinstance(options, dict):
        raise AnsibleFilterError("ven_activate_arguments takes a dict of activate options")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise AnsibleFilterError("ven_activate_arguments: unknown option(s) %s" % ", ".join(unknown))
    if platform not in ("linux", "windows"):
        raise AnsibleFilterError("ven_activate_arguments: platform must be linux or windows, not %r" % platform)
    given = {key: value for key, value in options.items() if value not in (None, "", {})}
    if "log_traffic" in given:
        given["log_traffic"] = as_bool(given["log_traffic"])
    windows = platform == "windows"
    found = activation.problems(given, windows=windows)
    if given.get("management_server"):
        found.insert(0, activation.check_management_server(given["management_server"]))
    found = [reason for reason in found if reason]
    if found:
        raise AnsibleFilterError("VEN activate options: " + "; ".join(found))
    return activation.activate_arguments(given, windows=windows)


class FilterModule:
    def filters(self):
        return {"ven_activate_arguments": ven_activate_arguments}
