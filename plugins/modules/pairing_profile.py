#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: pairing_profile
short_description: Manage pairing profiles on the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update, rename and delete pairing profiles of the Illumio Policy Compute Engine (PCE).
  - A pairing profile holds what a VEN gets when it pairs with one of the profile's keys (labels, enforcement
    mode, visibility level, traffic logging, VEN release) and which of those the pairing command line may not
    override (the C(*_lock) options). Keys are made with M(microseg.illumio.pairing_key).
  - A profile is identified by its O(name), matched exactly.
  - Only the options you give are compared and changed; the PCE's defaults apply to the others when a
    profile is created.
  - Combinations the VEN reference calls invalid are refused before anything changes, checked on the profile
    as it would be after the task (so O(visibility_level=flow_off) fails on a profile that logs traffic
    unless O(log_traffic=false) is given too).
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Name of the pairing profile, unique in the organization.
    type: str
    required: true
  new_name:
    description:
      - Rename the profile to this name. It keeps its href and its keys keep working.
      - If only a profile named O(new_name) exists, it is considered renamed already.
      - If profiles with both names exist, the module fails rather than guess.
      - Only with O(state=present).
    type: str
  state:
    description:
      - V(present) creates the profile or updates it to match; V(absent) deletes it.
      - Deleting a profile makes its keys useless for pairing; VENs that paired with it stay paired.
    type: str
    choices: [present, absent]
    default: present
  description:
    description:
      - Free text about the profile.
    type: str
  enabled:
    description:
      - Whether the profile makes keys and its keys pair VENs. A disabled profile's keys pair nothing.
    type: bool
  enforcement_mode:
    description:
      - Enforcement mode of the workloads that pair with the profile.
      - V(idle) leaves the host firewall alone; V(visibility_only) allows everything and records flows;
        V(selective) enforces deny rules only; V(full) denies everything that rules do not allow.
      - Mutually exclusive with O(mode).
    type: str
    choices: [idle, visibility_only, selective, full]
  mode:
    description:
      - The legacy (before Illumio Core 20.2) spelling of O(enforcement_mode), for playbooks written for it.
      - V(idle) is O(enforcement_mode=idle), V(illuminated) is O(enforcement_mode=visibility_only),
        V(enforced) is O(enforcement_mode=full). The module sets and compares O(enforcement_mode).
      - Mutually exclusive with O(enforcement_mode), as the VEN reference advises for the activate command.
    type: str
    choices: [idle, illuminated, enforced]
  visibility_level:
    description:
      - What the VEN records about traffic.
      - V(flow_summary) (Blocked + Allowed) records allowed and blocked connections; V(flow_drops) (Blocked)
        only blocked ones; V(flow_off) nothing; V(enhanced_data_collection) also byte counts.
      - V(flow_drops) is refused with O(enforcement_mode=visibility_only) (illuminated), where nothing is
        blocked, as the VEN reference says ("visibility-level flow_drops is invalid in Illuminated policy
        state").
      - V(flow_off) is refused together with O(log_traffic=true).
    type: str
    choices: [flow_summary, flow_drops, flow_off, enhanced_data_collection]
  log_traffic:
    description:
      - Whether the VEN sends its traffic log to the PCE (syslog forwarding of flow records).
      - Cannot be V(true) with O(visibility_level=flow_off).
    type: bool
  labels:
    description:
      - "Labels that paired workloads get, as a dict of label key to value, for example C({role: web, env: prod})."
      - At most one label per key (a dict cannot say more). The labels must exist; create them with
        M(microseg.illumio.label) first.
      - The labels given replace the profile's labels; V({}) removes them all. Omit the option to leave them.
    type: dict
  allowed_uses_per_key:
    description:
      - How many VENs one key of the profile may pair, V(unlimited) or a positive whole number.
      - A key keeps the limit the profile had when the key was made.
    type: raw
  key_lifespan:
    description:
      - How long a key of the profile can pair VENs after it was made, V(unlimited) or a time.
      - A time is a positive number of seconds (V(3600)) or a duration made of whole numbers with the units
        V(s), V(m), V(h), V(d) and V(w), for example V(30m), V(12h), V(2d), V(1w) or V(1d12h). The PCE stores
        seconds, and RV(pairing_profile.key_lifespan) shows seconds.
    type: raw
  agent_software_release:
    description:
      - VEN release that pairing scripts of this profile install, for example V(21.5.20-8451), or V(Default)
        for the PCE's default release. V(Default) matches what the PCE shows, for example
        C(Default (21.5.20-8451)).
    type: str
  role_label_lock:
    description:
      - Whether the pairing command line may not set a different C(role) label (V(true) locks it).
    type: bool
  app_label_lock:
    description:
      - Whether the pairing command line may not set a different C(app) label.
    type: bool
  env_label_lock:
    description:
      - Whether the pairing command line may not set a different C(env) label.
    type: bool
  loc_label_lock:
    description:
      - Whether the pairing command line may not set a different C(loc) label.
    type: bool
  mode_lock:
    description:
      - Whether the pairing command line may not set a different legacy C(--mode).
    type: bool
  enforcement_mode_lock:
    description:
      - Whether the pairing command line may not set a different C(--enforcement_mode).
    type: bool
  visibility_level_lock:
    description:
      - Whether the pairing command line may not set a different C(--visibility-level).
    type: bool
  log_traffic_lock:
    description:
      - Whether the pairing command line may not set a different C(--log-traffic).
    type: bool
  external_data_set:
    description:
      - Name of the external system the profile comes from, for example a CMDB. Only compared when given.
    type: str
  external_data_reference:
    description:
      - ID of the profile in O(external_data_set). Only compared when given.
    type: str
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description:
      - "Returns the profile before and after under C(diff), with labels as C(key: value) and without hrefs."
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - Pairing profile names are unique on the PCE (C(name_must_be_unique)). A create whose answer is lost (the
    connection drops after the PCE stored it, or a gateway answers 502 or 504) is never sent again blindly; the
    module looks the pairing profile up first and reports it created, with its href, when it is there. When another
    run creates the same pairing profile at the same moment, the PCE refuses the second create; the module then
    reads the pairing profile and only brings it to the wanted state, so two concurrent runs both succeed and end in
    one run's state. See C(docs/retries.md).
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.pairing_profile_info
  - module: microseg.illumio.pairing_key
  - module: microseg.illumio.label
"""

EXAMPLES = r"""
- name: Pairing profiles as code
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: The labels the profile gives must exist
      microseg.illumio.label:
        key: "{{ item.key }}"
        value: "{{ item.value }}"
      loop: "{{ {'role': 'web', 'env': 'prod'} | dict2items }}"

    - name: Web servers pair in visibility only, with one-use keys that expire after a day
      microseg.illumio.pairing_profile:
        name: web-prod
        description: Production web servers
        enabled: true
        enforcement_mode: visibility_only
        visibility_level: flow_summary
        log_traffic: false
        labels:
          role: web
          env: prod
        allowed_uses_per_key: 1
        key_lifespan: 1d
        agent_software_release: Default
        role_label_lock: true
        env_label_lock: true
        app_label_lock: false
        loc_label_lock: false
        enforcement_mode_lock: true
        visibility_level_lock: true
        log_traffic_lock: true
        external_data_set: cmdb
        external_data_reference: PP-0007

    - name: Move the profile to full enforcement and record only blocked flows
      microseg.illumio.pairing_profile:
        name: web-prod
        enforcement_mode: full
        visibility_level: flow_drops

    - name: Rename it (same href, existing keys keep working)
      microseg.illumio.pairing_profile:
        name: web-prod
        new_name: web-production

    - name: Stop pairing with it
      microseg.illumio.pairing_profile:
        name: web-production
        enabled: false

    - name: Delete it
      microseg.illumio.pairing_profile:
        name: web-production
        state: absent
"""

RETURN = r"""
pairing_profile:
  description:
    - The profile after the task; in check mode, as it would be (without RV(pairing_profile.href) when it
      would be created, and with only the options given).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The profile's href.
      type: str
      sample: /orgs/1/pairing_profiles/7
    name:
      description: Name of the profile.
      type: str
      sample: web-prod
    description:
      description: Description.
      type: str
      sample: Production web servers
    enabled:
      description: Whether the profile makes keys and its keys pair VENs.
      type: bool
      sample: true
    enforcement_mode:
      description: Enforcement mode of paired workloads.
      type: str
      sample: visibility_only
    visibility_level:
      description: Visibility level of paired workloads.
      type: str
      sample: flow_summary
    log_traffic:
      description: Whether the VEN sends its traffic log.
      type: bool
      sample: false
    labels:
      description: Labels of paired workloads, as key to value.
      type: dict
      sample: {role: web, env: prod}
    allowed_uses_per_key:
      description: V(unlimited) or the number of VENs one key may pair, as a string like the PCE answers.
      type: str
      sample: "1"
    key_lifespan:
      description: V(unlimited) or the lifespan of a key in seconds, as a string like the PCE answers.
      type: str
      sample: "86400"
    agent_software_release:
      description: VEN release of the profile's pairing scripts.
      type: str
      sample: Default (21.5.20-8451)
    role_label_lock:
      description: Whether the role label is locked.
      type: bool
      sample: true
    app_label_lock:
      description: Whether the app label is locked.
      type: bool
      sample: true
    env_label_lock:
      description: Whether the env label is locked.
      type: bool
      sample: true
    loc_label_lock:
      description: Whether the loc label is locked.
      type: bool
      sample: true
    mode_lock:
      description: Whether the legacy mode is locked.
      type: bool
      sample: true
    enforcement_mode_lock:
      description: Whether the enforcement mode is locked.
      type: bool
      sample: true
    visibility_level_lock:
      description: Whether the visibility level is locked.
      type: bool
      sample: true
    log_traffic_lock:
      description: Whether traffic logging is locked.
      type: bool
      sample: true
    external_data_set:
      description: External system the profile comes from, or V(null).
      type: str
      sample: cmdb
    external_data_reference:
      description: ID of the profile in that system, or V(null).
      type: str
      sample: PP-0007
    total_use_count:
      description: How many VENs paired with the profile's keys (read-only).
      type: int
      sample: 7
    last_pairing_at:
      description: When a VEN last paired with it, or V(null) (read-only).
      type: str
      sample: "2022-05-26T11:03:29.688Z"
    is_default:
      description: Whether this is the PCE's default profile (read-only).
      type: bool
      sample: false
    created_at:
      description: When the profile was created (read-only).
      type: str
      sample: "2022-05-25T18:41:49.242Z"
    updated_at:
      description: When the profile was last changed (read-only).
      type: str
      sample: "2022-05-25T18:41:49.242Z"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.pairing import (
    ENFORCEMENT_MODES,
    LEGACY_MODES,
    LOCK_FIELDS,
    VISIBILITY_LEVELS,
    PairingProfile,
    label_dict,
    lifespan_seconds,
    uses_limit,
)


def argument_spec():
    spec = pce_argument_spec()
    spec.update(
        name=dict(type="str", required=True),
        new_name=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
        enabled=dict(type="bool"),
        enforcement_mode=dict(type="str", choices=list(ENFORCEMENT_MODES)),
        mode=dict(type="str", choices=sorted(LEGACY_MODES)),
        visibility_level=dict(type="str", choices=list(VISIBILITY_LEVELS)),
        log_traffic=dict(type="bool"),
        labels=dict(type="dict"),
        allowed_uses_per_key=dict(type="raw", no_log=False),
        key_lifespan=dict(type="raw", no_log=False),
        agent_software_release=dict(type="str"),
        external_data_set=dict(type="str"),
        external_data_reference=dict(type="str"),
    )
    for lock in LOCK_FIELDS:
        spec[lock] = dict(type="bool")
    return spec


def validate(params):
    """Option checks that need no PCE; PceError says what is wrong."""
    if params["state"] == "absent" and params["new_name"] is not None:
        raise PceError("new_name renames a pairing profile and only goes with state=present")
    if params["new_name"] is not None and not params["new_name"].strip():
        raise PceError("new_name must not be empty")
    uses_limit(params["allowed_uses_per_key"])
    lifespan_seconds(params["key_lifespan"])
    if params["labels"] is not None:
        label_dict(params["labels"])


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("mode", "enforcement_mode")],
        supports_check_mode=True,
    )
    try:
        validate(module.params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    client = client_from_module(module)
    try:
        result = PairingProfile(client, check_mode=module.check_mode).ensure(module.params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
