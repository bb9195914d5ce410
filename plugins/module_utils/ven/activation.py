# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of `illumio-ven-ctl activate` checked with the installation guide's rules, and the activation file.

The activation code never goes on a command line: it is written to agent_activation.cfg (0600), which the VEN
reads when `activate` has no --activation-code and removes after a successful activation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import os
import re

from ansible_collections.microseg.illumio.plugins.module_utils.options import url_credentials, without_credentials

LABEL_KEYS = ("role", "app", "env", "loc")
ENFORCEMENT_MODES = ("idle", "visibility_only", "selective", "full")
VISIBILITY_LEVELS = ("flow_summary", "flow_drops", "flow_off")
_SERVER = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")
_PROXY = re.compile(
    r"^(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?(?P<host>[^/:\s]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?/?$"
)
_CODE = re.compile(r"^[0-9A-Fa-f]+$")


def same_server(have, want):
    """Whether two HOST:PORT names are the same PCE (case and surrounding blanks aside)."""
    return bool(have and want) and have.strip().lower() == want.strip().lower()


def check_management_server(server):
    """'' when HOST:PORT is fine, else why not."""
    match = _SERVER.fullmatch(server or "")
    if not match or not 0 < int(match.group("port")) < 65536:
        return "management_server must be HOST:PORT, such as pce.example.com:8443 (got %r)" % (server,)
    return ""


def check_proxy(proxy):
    """The VEN takes [http://]server[:port] and only the http scheme (VEN Proxy Support)."""
    if url_credentials(proxy):
        # Said without them: the message ends up in task results and logs.
        return (
            "proxy_server must not carry a user name or password (%s): the VEN's proxy support has no "
            "authentication" % without_credentials(proxy)
        )
    match = _PROXY.fullmatch(proxy or "")
    if not match:
        return "proxy_server must be [http://]SERVER[:PORT], not %r" % (proxy,)
    if match.group("scheme") and match.group("scheme").lower() != "http":
        return "proxy_server: the VEN supports http proxies only, not %s://" % match.group("scheme")
    if match.group("port") and not 0 < int(match.group("port")) < 65536:
        return "proxy_server: port out of range in %r" % (proxy,)
    return ""


def check_activation_code(code):
    return "" if code and _CODE.fullmatch(code) else "activation_code must be the hexadecimal code of a pairing key"


def problems(options, windows=False):
    """Every broken rule of the installation guide in the activate options; [] when they can be used."""
    found = []
    labels = options.get("labels") or {}
    for key in sorted(labels):
        if key not in LABEL_KEYS:
            found.append("labels: activation sets only %s labels, not %r" % ("/".join(LABEL_KEYS), key))
        elif windows and ":" in str(labels[key]):
            found.append("labels.%s: Windows activation fails on a colon in a value (%r)" % (key, labels[key]))
    if windows and options.get("name") and ":" in options["name"]:
        found.append("name: Windows activation fails on a colon in a value (%r)" % options["name"])
    mode, level = options.get("enforcement_mode"), options.get("visibility_level")
    if mode and mode not in ENFORCEMENT_MODES:
        found.append("enforcement_mode must be one of %s, not %r" % (", ".join(ENFORCEMENT_MODES), mode))
    if level and level not in VISIBILITY_LEVELS:
        found.append("visibility_level must be one of %s, not %r" % (", ".join(VISIBILITY_LEVELS), level))
    if options.get("log_traffic") not in (None, True, False):
        found.append("log_traffic must be true or false, not %r" % (options["log_traffic"],))
    if level == "flow_off" and options.get("log_traffic") is True:
        found.append("visibility_level flow_off with log_traffic true is an invalid combination")
    if level == "flow_drops" and mode and mode != "full":
        found.append("visibility_level flow_drops is valid only with enforcement_mode full, not %s" % mode)
    if options.get("proxy_server"):
        reason = check_proxy(options["proxy_server"])
        if reason:
            found.append(reason)
        if windows:
            found.append("proxy_server: Windows VENs find their proxy themselves; leave it unset")
    return found


def activate_arguments(options, windows=False):
    """The activate options as arguments: `--role web` on Linux, `-role web` on Windows. No code here."""
    dash = "-" if windows else "--"
    arguments = []
    if options.get("management_server"):
        arguments += [dash + "management-server", options["management_server"]]
    if options.get("name"):
        arguments += [dash + "name", options["name"]]
    labels = options.get("labels") or {}
    for key in LABEL_KEYS:
        if labels.get(key):
            arguments += [dash + key, str(labels[key])]
    if options.get("enforcement_mode"):
        arguments += [dash + "enforcement_mode", options["enforcement_mode"]]
    # The guide's Linux table spells these with a dash, its Windows examples (and pair.ps1) with an underscore.
    if options.get("visibility_level"):
        arguments += ["-visibility_level" if windows else "--visibility-level", options["visibility_level"]]
    if options.get("log_traffic") is not None:
        arguments += ["-log_traffic" if windows else "--log-traffic", "true" if options["log_traffic"] else "false"]
    if options.get("proxy_server") and not windows:
        arguments += [dash + "proxy-server", options["proxy_server"]]
    return arguments


def write_activation_file(path, code, server):
    """agent_activation.cfg as documented (`activation_code:` and `masterconfig_server:` lines), mode 0600."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o750)
    if os.path.lexists(path):
        os.unlink(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("activation_code: %s\nmasterconfig_server: %s\n" % (code, server))


def remove_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
