#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: policy_provision
short_description: Provision pending draft policy changes on the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Provision the draft policy of the Illumio Policy Compute Engine (PCE). The pending changes to label
    groups, IP lists, services, rule sets and deny rules (enforcement boundaries) become a new active policy
    version, which the PCE then sends to the workloads.
  - Without any of O(label_groups), O(ip_lists), O(services), O(rule_sets) and O(enforcement_boundaries), every
    pending change is provisioned. With them, only the pending changes of the objects named (by exact name).
  - Named objects without pending changes are skipped and listed in RV(not_pending). Nothing pending means
    nothing to do and V(changed=false), so a second run changes nothing.
  - A name that matches no object of the draft policy (a misspelt name, or an object whose deletion an earlier
    run provisioned) fails the task before anything is provisioned, naming what cannot be found; see O(missing).
  - Before it provisions only some objects, the module checks that the active policy would not refer to
    objects that are not provisioned (a new IP list used by a provisioned rule set, for example) and names
    what has to be provisioned together; the PCE refuses such a subset too, and its refusal is explained
    the same way.
  - In check mode nothing is provisioned; RV(pending) lists what is pending and RV(provisioned) what would be
    provisioned. Use check mode to review pending changes.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  update_description:
    description:
      - Why the policy changes; recorded with the new policy version (the PCE's commit message).
    type: str
    required: true
  label_groups:
    description:
      - Names of label groups whose pending changes to provision.
    type: list
    elements: str
  ip_lists:
    description:
      - Names of IP lists whose pending changes to provision.
    type: list
    elements: str
  services:
    description:
      - Names of services whose pending changes to provision.
    type: list
    elements: str
  rule_sets:
    description:
      - Names of rule sets whose pending changes to provision. Rules and deny rules inside a rule set are
        provisioned with their rule set.
    type: list
    elements: str
  enforcement_boundaries:
    description:
      - Names of deny rules kept outside rule sets (enforcement boundaries) whose pending changes to provision.
    type: list
    elements: str
    aliases: [deny_rules]
  missing:
    description:
      - What to do when a name in O(label_groups), O(ip_lists), O(services), O(rule_sets) or
        O(enforcement_boundaries) matches no object of the draft policy.
      - V(fail) fails the task before anything is provisioned and names the objects it cannot find.
      - V(warn) provisions the others, warns, and lists the names in RV(missing). Use it in a play that deletes
        objects and provisions their deletion by name and has to run again, since after the first run those
        names are gone from the PCE.
    type: str
    choices: [fail, warn]
    default: fail
attributes:
  check_mode:
    description: Lists what is pending and what would be provisioned, without provisioning.
    support: full
  diff_mode:
    description: Returns the pending changes before and after (names, no hrefs) under C(diff).
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
seealso:
  - module: microseg.illumio.label_group
  - module: microseg.illumio.ip_list
  - module: microseg.illumio.service
"""

EXAMPLES = r"""
- name: Provision policy, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: What is pending? (check mode provisions nothing)
      microseg.illumio.policy_provision:
        update_description: review
      check_mode: true
      register: review

    - name: Show the pending IP lists
      ansible.builtin.debug:
        msg: "{{ review.pending.ip_lists | map(attribute='name') | list }}"

    - name: Provision only the changes of one IP list and one service
      microseg.illumio.policy_provision:
        update_description: "CHG-1234: partner access"
        ip_lists:
          - IPL-Partner
        services:
          - S-WEB
      register: provisioned

    - name: Provision every pending change
      microseg.illumio.policy_provision:
        update_description: Nightly policy sync
      register: everything

    - name: Report the new policy version
      ansible.builtin.debug:
        msg: "version {{ everything.policy_version }}, {{ everything.workloads_affected }} workloads affected"
"""

RETURN = r"""
policy_version:
  description: The new active policy version; V(null) when nothing was provisioned or in check mode.
  returned: always
  type: int
  sample: 42
workloads_affected:
  description: How many workloads the PCE says the new version affects; V(null) when nothing was provisioned.
  returned: always
  type: int
  sample: 12
provisioned:
  description:
    - The objects whose changes were provisioned (in check mode, would be), by kind; each with its C(name) and
      C(update_type) (V(create), V(update) or V(delete)).
  returned: always
  type: dict
  contains:
    label_groups:
      description: Label groups.
      type: list
      elements: dict
    ip_lists:
      description: IP lists.
      type: list
      elements: dict
    services:
      description: Services.
      type: list
      elements: dict
    rule_sets:
      description: Rule sets.
      type: list
      elements: dict
    enforcement_boundaries:
      description: Deny rules outside rule sets (enforcement boundaries).
      type: list
      elements: dict
  sample:
    label_groups: []
    ip_lists: [{name: IPL-Partner, update_type: create}]
    services: [{name: S-WEB, update_type: update}]
    rule_sets: []
    enforcement_boundaries: []
pending:
  description:
    - Every pending change before the task, by kind as in RV(provisioned), including changes that were not
      provisioned because other objects were named.
  returned: always
  type: dict
  sample:
    label_groups: []
    ip_lists: [{name: IPL-Partner, update_type: create}]
    services: [{name: S-WEB, update_type: update}, {name: S-OLD, update_type: delete}]
    rule_sets: []
    enforcement_boundaries: []
not_pending:
  description: Objects named in the options that have no pending changes (or do not exist), by kind.
  returned: always
  type: dict
  sample: {services: [S-DNS]}
missing:
  description: Names in the options that match no object of the draft policy, by kind (with O(missing=warn)).
  returned: always
  type: dict
  sample: {rule_sets: [RS-Wbe]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.policy_objects import (
    PROVISION_KINDS,
    PolicyProvisioner,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.references import ReferenceResolver


def named_objects(params):
    """{collection: [names]} of the objects named, or None when none of the options is given (everything)."""
    given = dict((collection, params[collection]) for collection, _kind in PROVISION_KINDS)
    if all(names is None for names in given.values()):
        return None
    for collection, names in given.items():
        if any(not name or not name.strip() for name in names or []):
            raise PceError("%s must list names, not empty strings" % collection)
    return dict((collection, names) for collection, names in given.items() if names is not None)


def missing_names(client, provisioner, names):
    """{collection: [names]} of the names that match no draft object, pending (deletions included) or not."""
    if not names:
        return {}
    pending = provisioner.pending()
    resolver = ReferenceResolver(client)
    kinds = dict(PROVISION_KINDS)
    missing = {}
    for collection, wanted in names.items():
        known = set(obj.get("name") for obj in pending.get(collection, []))
        unknown = [name for name in wanted if name not in known]
        if not unknown:
            continue
        try:
            objects = client.get_collection(resolver.collection_path(kinds[collection]))
        except PceError as error:
            # Newer PCEs have no enforcement_boundaries collection (they became deny rules in rule sets).
            if error.status != 404 or collection != "enforcement_boundaries":
                raise
            objects = []
        known.update(obj.get("name") for obj in objects if isinstance(obj, dict))
        gone = sorted(set(name for name in unknown if name not in known))
        if gone:
            missing[collection] = gone
    return missing


def describe(missing):
    return "; ".join(
        "%s: %s" % (collection, ", ".join(repr(name) for name in names))
        for collection, names in sorted(missing.items())
    )


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        update_description=dict(type="str", required=True),
        label_groups=dict(type="list", elements="str"),
        ip_lists=dict(type="list", elements="str"),
        services=dict(type="list", elements="str"),
        rule_sets=dict(type="list", elements="str"),
        enforcement_boundaries=dict(type="list", elements="str", aliases=["deny_rules"]),
        missing=dict(type="str", choices=["fail", "warn"], default="fail"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        if not (module.params["update_description"] or "").strip():
            raise PceError("update_description must say why the policy changes; it must not be empty")
        names = named_objects(module.params)
        provisioner = PolicyProvisioner(client, check_mode=module.check_mode)
        missing = missing_names(client, provisioner, names)
        if missing and module.params["missing"] == "fail":
            raise PceError(
                "nothing provisioned: the PCE's draft policy has no objects named %s. Names must match exactly; "
                "set missing=warn to provision the others (for example when their deletion was provisioned "
                "before)" % describe(missing)
            )
        result = provisioner.provision(module.params["update_description"], names)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        if missing:
            module.warn("the PCE's draft policy has no objects named %s; they were skipped" % describe(missing))
        result["missing"] = missing
        module.exit_json(**result)


if __name__ == "__main__":
    main()
