#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ip_list_info
short_description: Read IP lists from the draft or active policy of the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - List the IP lists of the Illumio Policy Compute Engine (PCE), optionally filtered by name, from the draft
    policy (what is being edited) or the active policy (what was provisioned).
  - Finding nothing is not an error; RV(ip_lists) is then empty.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Only IP lists with this name, matched as O(name_match) says.
    type: str
  name_match:
    description:
      - How O(name) is matched.
      - V(exact) returns only IP lists whose name equals O(name).
      - V(partial) returns IP lists whose name contains O(name), ignoring case, as the PCE's own filter does.
    type: str
    choices: [exact, partial]
    default: exact
  policy_version:
    description:
      - V(draft) reads the draft policy, including changes not provisioned yet. IP lists whose deletion is
        pending provisioning are left out.
      - V(active) reads the policy the PCE enforces, as last provisioned.
    type: str
    choices: [draft, active]
    default: draft
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
  - module: microseg.illumio.ip_list
"""

EXAMPLES = r"""
- name: Read IP lists, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: One IP list as provisioned
      microseg.illumio.ip_list_info:
        name: IPL-Corporate
        policy_version: active
      register: corporate

    - name: Every IP list whose name contains "partner"
      microseg.illumio.ip_list_info:
        name: partner
        name_match: partial
      register: partners

    - name: Show the CIDR blocks
      ansible.builtin.debug:
        msg: "{{ corporate.ip_lists[0].ip_ranges | map(attribute='from_ip') | list if corporate.ip_lists else [] }}"
"""

RETURN = r"""
ip_lists:
  description: The IP lists that match, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    href:
      description: The IP list's href (draft or active, as O(policy_version) says).
      type: str
      sample: /orgs/1/sec_policy/active/ip_lists/12
    name:
      description: Name of the IP list.
      type: str
      sample: IPL-Corporate
    description:
      description: Description of the IP list.
      type: str
      sample: Office and VPN ranges
    ip_ranges:
      description: The ranges, each with C(from_ip), C(to_ip) (V(null) unless a range), C(description) and
        C(exclusion).
      type: list
      elements: dict
      sample: [{from_ip: 10.0.0.0/8, to_ip: null, description: null, exclusion: false}]
    fqdns:
      description: The domain names, each with C(fqdn) and C(description).
      type: list
      elements: dict
      sample: [{fqdn: vpn.example.com, description: null}]
    external_data_set:
      description: External system the IP list comes from, or V(null).
      type: str
      sample: ipam
    external_data_reference:
      description: ID of the IP list in that system, or V(null).
      type: str
      sample: NET-0001
    update_type:
      description:
        - In the draft policy, the change waiting to be provisioned (V(create), V(update)), or V(null) when
          the draft equals the active policy. Always V(null) in the active policy.
      type: str
      sample: create
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.policy_objects import IpList


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        name=dict(type="str"),
        name_match=dict(type="str", choices=["exact", "partial"], default="exact"),
        policy_version=dict(type="str", choices=["draft", "active"], default="draft"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    params = module.params
    try:
        ip_lists = IpList(client, policy_version=params["policy_version"]).search(params["name"], params["name_match"])
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(changed=False, ip_lists=ip_lists)


if __name__ == "__main__":
    main()
