#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_proxy
short_description: Set or clear the HTTP proxy the Illumio VEN uses to reach the PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host (Linux and other Unix-like systems). Reads the VEN's proxy setting
    (C(illumio-ven-ctl show-proxy)) and changes it only when it differs from the one wanted - C(set-proxy) for
    O(state=present), C(reset-proxy) for O(state=absent).
  - The VEN uses a new proxy setting only after a restart (VEN Proxy Support, VEN Administration Guide). With
    O(restart), the task runs C(illumio-ven-ctl restart) when it changed the setting and the VEN was running; a
    stopped or suspended VEN picks the setting up when it starts.
  - The proxy string is C([http://]SERVER[:PORT]); the VEN supports the http scheme only (no https, no
    authentication, no PAC files or WPAD). The setting is compared as written, so V(proxy.example.com:3128)
    and V(http://proxy.example.com:3128) are different settings.
  - To set the proxy at activation, use the activation's own proxy option instead; no restart is needed then.
  - Windows VENs use the operating system's proxy setting, so this module is for Linux and Unix VENs only.
options:
  state:
    description:
      - V(present) makes O(proxy_server) the VEN's proxy; V(absent) removes any proxy setting.
    type: str
    choices: [present, absent]
    default: present
  proxy_server:
    description:
      - The proxy, C([http://]SERVER[:PORT]), such as V(http://proxy.example.com:3128) or V(192.0.2.8:3128).
      - Required with O(state=present); not allowed with O(state=absent).
    type: str
  restart:
    description:
      - Restart the VEN when the task changed the proxy and the VEN was running, so that it uses the new
        setting at once.
      - With V(false) the task warns that a restart is needed.
    type: bool
    default: true
  install_dir:
    description:
      - Directory of the VEN software, where C(illumio-ven-ctl) is.
    type: path
    default: /opt/illumio_ven
  data_dir:
    description:
      - The VEN's data directory; default the one recorded when the collection installed the VEN, else
        C(/opt/illumio_ven_data).
    type: path
notes:
  - The VEN does not allow the proxy's address by itself. Write a PCE rule that allows the proxy before the
    workload goes into full enforcement, or the VEN loses the PCE for good.
seealso:
  - module: microseg.illumio.ven_suspension
    description: Suspend the VEN, keeping the host's own firewall rules.
attributes:
  check_mode:
    description: Reads the setting and reports whether it would change it and restart the VEN, changing nothing.
    support: full
  diff_mode:
    description: Shows the proxy setting before and after.
    support: full
"""

EXAMPLES = r"""
- name: Send the VENs' PCE traffic through the proxy
  hosts: dmz
  become: true
  tasks:
    - name: Set the proxy and restart the VEN when it changed
      microseg.illumio.ven_proxy:
        proxy_server: http://proxy.example.com:3128

    - name: Set it now, restart in the next maintenance window
      microseg.illumio.ven_proxy:
        proxy_server: 192.0.2.8:3128
        restart: false

- name: Connect directly again
  hosts: dmz
  become: true
  tasks:
    - name: Remove the proxy setting
      microseg.illumio.ven_proxy:
        state: absent
"""

RETURN = r"""
proxy_server:
  description: The VEN's proxy setting after the task (as it would be in check mode); V(null) when none is set.
  returned: success
  type: str
  sample: http://proxy.example.com:3128
previous_proxy_server:
  description: The VEN's proxy setting before the task; V(null) when none was set.
  returned: success
  type: str
  sample: null
restarted:
  description: Whether the task restarted the VEN (in check mode, whether it would).
  returned: success
  type: bool
  sample: true
output:
  description: What C(illumio-ven-ctl) printed for C(set-proxy) or C(reset-proxy) (and C(restart)), line by line;
    empty when nothing was run.
  returned: success
  type: list
  elements: str
  sample: [Updating proxy to http://proxy.example.com:3128. VEN restart needed.]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.options import hide_credentials, refuse_stringified
from ansible_collections.microseg.illumio.plugins.module_utils.ven import facts as ven_facts
from ansible_collections.microseg.illumio.plugins.module_utils.ven.activation import check_proxy
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import (
    DEFAULT_INSTALL_DIR,
    VenCtl,
    VenCtlError,
)


class ProxyError(Exception):
    """An expected failure; main() turns it into fail_json."""


def run(module):
    params = module.params
    wanted = params["proxy_server"].strip() if params["state"] == "present" else None
    facts = ven_facts.gather(module, params["install_dir"], params["data_dir"])
    ctl = VenCtl(module, params["install_dir"])
    if not facts["installed"]:
        raise ProxyError("no VEN is installed here: %s is missing or not executable" % ctl.path)
    previous = ctl.proxy()
    changed = previous != wanted
    restart = changed and facts["running"] and params["restart"]
    result = {
        "changed": changed,
        "proxy_server": wanted,
        "previous_proxy_server": previous,
        "restarted": bool(restart),
        "output": [],
    }
    if module._diff:
        result["diff"] = {
            "before": "proxy_server: %s\n" % (previous or "(not set)"),
            "after": "proxy_server: %s\n" % (wanted or "(not set)"),
            "before_header": "VEN proxy",
            "after_header": "VEN proxy",
        }
    if not changed or module.check_mode:
        if changed and facts["running"] and not params["restart"]:
            module.warn("the VEN would need a restart to use the new proxy setting (restart=false)")
        return result
    out = ctl.check("set-proxy", wanted) if wanted else ctl.check("reset-proxy")
    result["output"] = out.splitlines()
    if restart:
        result["output"] += ctl.check("restart").splitlines()
    elif facts["running"]:
        module.warn("the VEN keeps using the old proxy setting until it restarts (restart=false)")
    result["proxy_server"] = ctl.proxy()
    if result["proxy_server"] != wanted:
        raise ProxyError(
            "illumio-ven-ctl accepted the proxy setting, but show-proxy now says %r instead of %r"
            % (result["proxy_server"], wanted)
        )
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            proxy_server=dict(type="str"),
            restart=dict(type="bool", default=True),
            install_dir=dict(type="path", default=DEFAULT_INSTALL_DIR),
            data_dir=dict(type="path"),
        ),
        required_if=[("state", "present", ("proxy_server",))],
        supports_check_mode=True,
    )
    hide_credentials(module, "proxy_server")
    refuse_stringified(module)
    params = module.params
    if params["state"] == "absent" and params["proxy_server"] is not None:
        module.fail_json(msg="proxy_server is only for state=present; state=absent removes the proxy setting")
    if params["state"] == "present":
        reason = check_proxy((params["proxy_server"] or "").strip())
        if reason:
            module.fail_json(msg=reason)
    try:
        result = run(module)
    except ProxyError as exc:
        module.fail_json(msg=str(exc))
    except VenCtlError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="file or process error: %s" % exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
