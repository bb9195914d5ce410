#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_suspension
short_description: Suspend or unsuspend the Illumio VEN on a Linux host, keeping the host's own firewall rules
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host. Suspends the VEN (C(illumio-ven-ctl suspend)) or takes it out of suspension
    (C(illumio-ven-ctl unsuspend)). Suspending isolates the VEN for troubleshooting; the PCE is told and shows
    the VEN as suspended.
  - B(Why a backup.) Suspending a Linux VEN removes every rule it programmed and, as the VEN Operations guide
    warns, the host's custom iptables and NAT rules too; they must be backed up before and restored after.
  - B(Suspend.) First saves the host firewall as it is - C(iptables-save), C(ip6tables-save) and
    C(nft list ruleset), each when the command exists - into O(backup_dir) (mode 0700), one timestamped file per
    command and a C(latest) copy (mode 0600), then runs C(illumio-ven-ctl suspend).
  - B(Unsuspend.) Runs C(illumio-ven-ctl unsuspend), then, with O(restore_custom_rules), puts back the host's
    own rules of the C(latest) backup that are missing now. nftables tables of the backup that no longer exist
    are created again from the backup's text (C(nft -f)). For iptables and ip6tables, the rules of the backup
    missing now are added again, each at its old place relative to the rules that are still there, with the
    chains they need, in one C(iptables-restore --noflush) transaction per family that holds only those rules
    and chains. Nothing that exists is flushed or changed. Built-in chain policies are not restored; the task
    warns when one differs from the backup.
  - B(What is the VEN's.) Tables, chains and sets whose names start with one of O(ven_owned_prefixes), and
    rules in such chains, jumping to them or using such sets, are the VEN's and are never restored; the VEN
    programs its own rules again when it is unsuspended. Tables that iptables-nft manages are restored through
    iptables, not nft.
  - Rules are restored only by the task that unsuspends the VEN; a VEN that is not suspended is left alone and
    nothing is restored (a rule deleted on purpose later is not brought back by the next run).
  - Needs root, an activated VEN, and C(iptables-save)/C(iptables-restore), C(ip6tables-save)/C(ip6tables-restore)
    or C(nft) for the firewalls in use. Python 3.6 or later, standard library only.
options:
  state:
    description:
      - V(suspended) backs up the firewall and suspends the VEN; V(unsuspended) unsuspends it and restores the
        host's own rules.
    type: str
    choices: [suspended, unsuspended]
    required: true
  backup_dir:
    description:
      - Directory on the host for the firewall backups (created with mode 0700). Each suspend writes
        C(iptables-<UTC time>.rules), C(ip6tables-<UTC time>.rules) and C(nftables-<UTC time>.nft) (the kinds
        the host has) and copies them to C(iptables-latest.rules) and so on; unsuspend reads the C(latest) files.
      - Old timestamped backups are kept; remove them when no longer needed.
    type: path
    default: /var/lib/microseg-illumio/ven_firewall
  restore_custom_rules:
    description:
      - After unsuspending, restore the host's own rules from the latest backup that are missing now.
      - V(false) leaves the firewall to the VEN and to you; the backup stays in O(backup_dir).
    type: bool
    default: true
  ven_owned_prefixes:
    description:
      - Name prefixes (compared case-insensitively) of the nftables tables, iptables chains and ipsets that
        belong to the VEN and are never restored.
      - The table C(inet illumio) of M(microseg.illumio.firewall_apply) matches the default prefix. Add V(ILO-)
        so that its iptables chains are not restored either, on a host where it was used before the VEN.
    type: list
    elements: str
    default: [illumio]
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
  - The VEN must be activated (paired); suspending or unsuspending an unpaired VEN fails.
  - The VEN programs custom iptables rules it knows about again when it is unsuspended. Only rules missing when
    this task compares, right after C(unsuspend) returns, are added; a rule the VEN puts back later than that
    could end up there twice.
  - Unsuspend restores from the C(latest) backup, whenever it was written. If the VEN was suspended some other
    way (the PCE, C(illumio-ven-ctl) by hand) after that backup, rules of that older backup are what comes back;
    use O(restore_custom_rules=false) then.
  - A rule that refers to something that no longer exists (an ipset that is gone) makes its family's
    C(iptables-restore) fail; the task then fails and says which rules it tried, and the backup stays in
    O(backup_dir) for restoring by hand.
seealso:
  - module: microseg.illumio.ven_unpair
    description: Unpair and uninstall the VEN, with the same firewall backup first.
  - module: microseg.illumio.firewall_apply
    description: The collection's own host firewall (table C(inet illumio), chains C(ILO-*)).
attributes:
  check_mode:
    description: Reads the VEN's state and the firewall and reports what would be done (suspend after a backup to
      O(backup_dir); unsuspend and the rules that would be restored) without writing a backup or running anything
      that changes the host.
    support: full
  diff_mode:
    description: Shows the VEN's state before and after and, for unsuspend, the rules that would be restored.
    support: full
"""

EXAMPLES = r"""
- name: Troubleshoot a workload with its VEN out of the way
  hosts: web1
  become: true
  tasks:
    - name: Back up the firewall and suspend the VEN
      microseg.illumio.ven_suspension:
        state: suspended
      register: suspension

    - name: Show where the backup is
      ansible.builtin.debug:
        var: suspension.backup_files

    - name: Unsuspend the VEN and put the host's own rules back
      microseg.illumio.ven_suspension:
        state: unsuspended
      register: unsuspension

    - name: Show which rules came back
      ansible.builtin.debug:
        var: unsuspension.restored_rules

- name: What would unsuspending restore?
  hosts: web1
  become: true
  tasks:
    - name: Check mode with diff lists the rules without touching anything
      microseg.illumio.ven_suspension:
        state: unsuspended
        ven_owned_prefixes: [illumio, ILO-]
      check_mode: true
      diff: true
"""

RETURN = r"""
state:
  description: The VEN's state after the task (as it would be in check mode), V(suspended) or V(unsuspended).
  returned: success
  type: str
  sample: suspended
ven_state:
  description: The first line of C(illumio-ven-ctl status) after the task, such as V(running) or V(suspended).
  returned: success
  type: str
  sample: suspended
backup_files:
  description: The backup files written by this task (none in check mode or when nothing changed).
  returned: success
  type: list
  elements: str
  sample:
    - /var/lib/microseg-illumio/ven_firewall/iptables-20261123T131500Z.rules
    - /var/lib/microseg-illumio/ven_firewall/iptables-latest.rules
restored_rules:
  description: What was put back after unsuspending (in check mode, what would be).
  returned: success
  type: dict
  contains:
    count:
      description: How many tables, chains and rules.
      type: int
      sample: 2
    rules:
      description: One line per nftables table, iptables chain or rule, with the family and table.
      type: list
      elements: str
      sample:
        - "nftables: table inet custom_nat"
        - "iptables filter: -A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 5432 -j ACCEPT"
output:
  description: What C(illumio-ven-ctl suspend) or C(unsuspend) printed, line by line.
  returned: when the task suspended or unsuspended the VEN (not in check mode)
  type: list
  elements: str
  sample: [Suspending the VEN, The VEN has been suspended. PCE was notified.]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.ven import facts as ven_facts
from ansible_collections.microseg.illumio.plugins.module_utils.ven import firewall_backup
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import (
    DEFAULT_INSTALL_DIR,
    VenCtl,
    VenCtlError,
)


class SuspensionError(Exception):
    """An expected failure; main() turns it into fail_json."""


def state_text(facts):
    return "state: %s\nsuspended: %s\n" % (facts.get("state"), str(bool(facts.get("suspended"))).lower())


def gather(module, params):
    facts = ven_facts.gather(module, params["install_dir"], params["data_dir"])
    if not facts["installed"]:
        raise SuspensionError(
            "no VEN is installed here: %s is missing or not executable" % VenCtl(module, params["install_dir"]).path
        )
    if not facts["activated"]:
        raise SuspensionError(
            "the VEN is not activated (activation: %s); only an activated (paired) VEN can be %s"
            % (facts.get("activation") or "unknown", params["state"])
        )
    return facts


def suspend(module, params, facts, result):
    if facts["suspended"]:
        return
    result["changed"] = True
    result["state"] = "suspended"
    if module.check_mode:
        result["msg"] = "would back up the firewall to %s and suspend the VEN" % params["backup_dir"]
        return
    texts = firewall_backup.snapshot(module)
    if not texts:
        module.warn("none of iptables-save, ip6tables-save or nft is installed: there was no firewall to back up")
    result["backup_files"] = firewall_backup.write_backup(params["backup_dir"], texts)
    out = VenCtl(module, params["install_dir"]).check("suspend")
    result["output"] = out.splitlines()


def unsuspend(module, params, facts, result):
    if not facts["suspended"]:
        return
    result["changed"] = True
    result["state"] = "unsuspended"
    planned = []
    backup = {}
    if params["restore_custom_rules"]:
        backup = firewall_backup.read_latest(params["backup_dir"])
        if not backup:
            module.warn(
                "no firewall backup in %s: there are no custom rules to restore (the VEN was not suspended by "
                "this module, or the backup was removed)" % params["backup_dir"]
            )
        elif module.check_mode:
            plan = firewall_backup.plan_restore(backup, firewall_backup.snapshot(module), prefixes(params))
            planned = firewall_backup.describe(plan)
    if module.check_mode:
        result["restored_rules"] = {"count": len(planned), "rules": planned}
        result["msg"] = "would unsuspend the VEN and restore %d custom rules" % len(planned)
        return
    out = VenCtl(module, params["install_dir"]).check("unsuspend")
    result["output"] = out.splitlines()
    if backup:
        try:
            restored = firewall_backup.restore(module, backup, prefixes(params))
        except firewall_backup.FirewallBackupError as exc:
            raise SuspensionError(
                "the VEN was unsuspended, but restoring the custom rules from %s failed: %s"
                % (params["backup_dir"], exc)
            ) from exc
        result["restored_rules"] = {"count": len(restored), "rules": restored}
        warn_policies(module, backup)


def warn_policies(module, backup):
    current = firewall_backup.snapshot(module)
    for kind in ("iptables", "ip6tables"):
        if kind in backup and kind in current:
            for difference in firewall_backup.policy_differences(backup[kind], current[kind]):
                module.warn("%s: %s (left as it is; set it yourself if it should be as before)" % (kind, difference))


def prefixes(params):
    return tuple(prefix for prefix in params["ven_owned_prefixes"] if prefix)


def run(module):
    params = module.params
    result = {
        "changed": False,
        "state": params["state"],
        "backup_files": [],
        "restored_rules": {"count": 0, "rules": []},
    }
    before = gather(module, params)
    if params["state"] == "suspended":
        suspend(module, params, before, result)
    else:
        unsuspend(module, params, before, result)
    if result["changed"] and not module.check_mode:
        after = ven_facts.gather(module, params["install_dir"], params["data_dir"])
    else:
        after = dict(before, suspended=params["state"] == "suspended")
        if result["changed"]:
            after["state"] = "suspended" if params["state"] == "suspended" else "running"
    result["ven_state"] = after.get("state")
    if module._diff:
        after_text = state_text(after)
        if result["restored_rules"]["rules"]:
            after_text += "restored rules:\n" + "".join("  %s\n" % line for line in result["restored_rules"]["rules"])
        result["diff"] = {
            "before": state_text(before),
            "after": after_text,
            "before_header": "VEN",
            "after_header": "VEN",
        }
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["suspended", "unsuspended"], required=True),
            backup_dir=dict(type="path", default=firewall_backup.DEFAULT_BACKUP_DIR),
            restore_custom_rules=dict(type="bool", default=True),
            ven_owned_prefixes=dict(type="list", elements="str", default=list(firewall_backup.DEFAULT_VEN_PREFIXES)),
            install_dir=dict(type="path", default=DEFAULT_INSTALL_DIR),
            data_dir=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    if not prefixes(module.params):
        module.fail_json(msg="ven_owned_prefixes needs at least one non-empty prefix (the VEN's is illumio)")
    if module.params["backup_dir"].rstrip("/") in ("", "/"):
        module.fail_json(msg="backup_dir must be a directory of its own, not %r" % module.params["backup_dir"])
    try:
        result = run(module)
    except SuspensionError as exc:
        module.fail_json(msg=str(exc))
    except firewall_backup.FirewallBackupError as exc:
        module.fail_json(msg="firewall backup: %s" % exc)
    except VenCtlError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="file or process error: %s" % exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
