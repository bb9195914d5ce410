#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: pairing_profile_info
short_description: Read pairing profiles from the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - List the pairing profiles of the Illumio Policy Compute Engine (PCE), optionally only the one with a
    given name or only enabled or disabled ones.
  - "Labels are shown as C(key: value), the way M(microseg.illumio.pairing_profile) takes them."
  - Finding nothing is not an error; RV(pairing_profiles) is then empty.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Only the profile with this name, matched exactly.
    type: str
  enabled:
    description:
      - Only enabled (V(true)) or only disabled (V(false)) profiles.
    type: bool
attributes:
  check_mode:
    description: Only reads from the PCE, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: N/A
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
seealso:
  - module: microseg.illumio.pairing_profile
"""

EXAMPLES = r"""
- name: Read pairing profiles
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: The profile web-prod, if it exists
      microseg.illumio.pairing_profile_info:
        name: web-prod
      register: web_prod

    - name: Every enabled profile
      microseg.illumio.pairing_profile_info:
        enabled: true
      register: enabled_profiles

    - name: Show how many VENs paired with web-prod
      ansible.builtin.debug:
        msg: "{{ web_prod.pairing_profiles[0].total_use_count if web_prod.pairing_profiles else 'no such profile' }}"
"""

RETURN = r"""
pairing_profiles:
  description: The profiles that match, sorted by name, in the form M(microseg.illumio.pairing_profile) returns.
  returned: always
  type: list
  elements: dict
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
      description: V(unlimited) or the number of VENs one key may pair.
      type: str
      sample: unlimited
    key_lifespan:
      description: V(unlimited) or the lifespan of a key in seconds.
      type: str
      sample: "3600"
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
      description: How many VENs paired with the profile's keys.
      type: int
      sample: 7
    last_pairing_at:
      description: When a VEN last paired with it, or V(null).
      type: str
      sample: "2022-05-26T11:03:29.688Z"
    is_default:
      description: Whether this is the PCE's default profile.
      type: bool
      sample: false
    created_at:
      description: When the profile was created.
      type: str
      sample: "2022-05-25T18:41:49.242Z"
    updated_at:
      description: When the profile was last changed.
      type: str
      sample: "2022-05-25T18:41:49.242Z"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.pairing import PairingProfile


def find_profiles(client, params):
    profile_type = PairingProfile(client)
    name, enabled = params["name"], params["enabled"]
    # The PCE's name filter matches partially; the exact match is checked here.
    candidates = profile_type.read_collection({"name": name} if name is not None else None)
    found = [
        profile
        for profile in candidates
        if (name is None or profile.get("name") == name) and (enabled is None or profile.get("enabled") is enabled)
    ]
    found.sort(key=lambda profile: profile.get("name") or "")
    return [profile_type.view(profile) for profile in found]


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        name=dict(type="str"),
        enabled=dict(type="bool"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        profiles = find_profiles(client, module.params)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(changed=False, pairing_profiles=profiles)


if __name__ == "__main__":
    main()
