#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_unpair
short_description: Unpair the Illumio VEN of a Linux host from the PCE and uninstall it
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host. Runs C(illumio-ven-ctl unpair MODE), which tells the PCE that the VEN leaves
    (the workload is removed from policy), stops the VEN, puts the host firewall into the state O(firewall_restore)
    names and B(uninstalls the VEN) - packages, program and data directories. Pairing the host again means
    installing the VEN again.
  - There is no default for O(firewall_restore) on purpose; the firewall state the host is left in is a
    security decision.
  - With O(backup_dir), the host firewall (C(iptables-save), C(ip6tables-save), C(nft list ruleset), each when
    the command exists) is saved there first, in timestamped files and a C(latest) copy, the same files
    M(microseg.illumio.ven_suspension) writes.
  - A host without a VEN (no C(illumio-ven-ctl) in O(install_dir)) is left as it is, so the task can run again.
  - Needs root. Python 3.6 or later, standard library only.
options:
  firewall_restore:
    description:
      - The firewall state the VEN leaves the host in when it uninstalls.
      - V(recommended) (the PCE's "Remove Illumio policy", its recommended choice) removes the Illumio policy and
        reverts the firewall rules to the state they had before the VEN was paired.
      - V(saved) restores the firewall to its state just before the VEN was installed.
      - V(open) leaves all ports of the workload open to traffic after the VEN is uninstalled (what the VEN
        does when no mode is given).
    type: str
    choices: [recommended, saved, open]
    required: true
  backup_dir:
    description:
      - Directory on the host (created with mode 0700) to back up the firewall to before unpairing, with files
        of mode 0600. No backup when not set.
    type: path
  install_dir:
    description:
      - Directory of the VEN software, where C(illumio-ven-ctl) is.
    type: path
    default: /opt/illumio_ven
notes:
  - The VEN can be unpaired while it is suspended.
  - A workload unpaired while it is offline may stay in the PCE's workload list for up to about 35 minutes.
  - SUSE hosts in full enforcement may fail to finish uninstalling when no rule lets them reach their package
    repositories; move them to visibility only first.
seealso:
  - module: microseg.illumio.ven_suspension
    description: Suspend the VEN instead, for troubleshooting; it can be unsuspended again.
attributes:
  check_mode:
    description: Reports whether the VEN would be unpaired (and the backup written), changing nothing.
    support: full
  diff_mode:
    description: Shows the VEN as installed before and gone after.
    support: full
"""

EXAMPLES = r"""
- name: Retire the VEN of a host
  hosts: old_web
  become: true
  tasks:
    - name: Back up the firewall, unpair and uninstall, leaving the firewall as it was before pairing
      microseg.illumio.ven_unpair:
        firewall_restore: recommended
        backup_dir: /var/lib/microseg-illumio/ven_firewall
      register: unpaired

    - name: Show what the VEN said
      ansible.builtin.debug:
        var: unpaired.output

- name: Decommission lab hosts, opening their firewalls
  hosts: lab
  become: true
  tasks:
    - name: Unpair with all ports open
      microseg.illumio.ven_unpair:
        firewall_restore: open
"""

RETURN = r"""
firewall_restore:
  description: The firewall mode given to C(illumio-ven-ctl unpair).
  returned: success
  type: str
  sample: recommended
output:
  description: What C(illumio-ven-ctl unpair) printed, line by line; empty when nothing was done.
  returned: success
  type: list
  elements: str
  sample:
    - "Unpairing the VEN (firewall: recommended)"
    - The VEN has been unpaired and uninstalled. PCE was notified.
backup_files:
  description: The firewall backup files written by this task (none without O(backup_dir), in check mode or when
    there was no VEN).
  returned: success
  type: list
  elements: str
  sample:
    - /var/lib/microseg-illumio/ven_firewall/iptables-20261123T131500Z.rules
    - /var/lib/microseg-illumio/ven_firewall/iptables-latest.rules
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.ven import firewall_backup
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import (
    DEFAULT_INSTALL_DIR,
    VenCtl,
    VenCtlError,
)


def describe_ven(ctl):
    """The VEN as diff text; a VEN whose status cannot be read is still described as installed."""
    if not ctl.installed:
        return "installed: false\n"
    try:
        status = ctl.status()
    except VenCtlError:
        status = {}
    return "installed: true\nstate: %s\nagent_state: %s\n" % (
        status.get("state") or "unknown",
        status.get("agent_state") or "unknown",
    )


def run(module):
    params = module.params
    ctl = VenCtl(module, params["install_dir"])
    result = {
        "changed": False,
        "firewall_restore": params["firewall_restore"],
        "output": [],
        "backup_files": [],
    }
    if not ctl.installed:
        return result
    result["changed"] = True
    if module._diff:
        result["diff"] = {
            "before": describe_ven(ctl),
            "after": "installed: false\n",
            "before_header": "VEN",
            "after_header": "VEN",
        }
    if module.check_mode:
        result["msg"] = "would unpair and uninstall the VEN (firewall_restore=%s)" % params["firewall_restore"]
        return result
    if params["backup_dir"]:
        texts = firewall_backup.snapshot(module)
        if not texts:
            module.warn("none of iptables-save, ip6tables-save or nft is installed: there was no firewall to back up")
        result["backup_files"] = firewall_backup.write_backup(params["backup_dir"], texts)
    out = ctl.check("unpair", params["firewall_restore"])
    result["output"] = out.splitlines()
    if ctl.installed:
        module.warn(
            "illumio-ven-ctl unpair succeeded, but %s is still there; the VEN may not be fully uninstalled" % ctl.path
        )
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            firewall_restore=dict(type="str", choices=["recommended", "saved", "open"], required=True),
            backup_dir=dict(type="path"),
            install_dir=dict(type="path", default=DEFAULT_INSTALL_DIR),
        ),
        supports_check_mode=True,
    )
    backup_dir = module.params["backup_dir"]
    if backup_dir is not None and backup_dir.rstrip("/") in ("", "/"):
        module.fail_json(msg="backup_dir must be a directory of its own, not %r" % backup_dir)
    try:
        result = run(module)
    except firewall_backup.FirewallBackupError as exc:
        module.fail_json(msg="firewall backup before unpairing (the VEN was not unpaired): %s" % exc)
    except VenCtlError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="file or process error: %s" % exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
