#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ip_list
short_description: Manage IP lists in the draft policy of the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update, rename and delete IP lists in the draft policy of the Illumio Policy Compute Engine (PCE).
    An IP list names addresses, ranges, CIDR blocks and domain names outside the PCE's workloads (partners,
    SaaS, the internet) so that rules can allow or deny traffic to and from them.
  - An IP list is identified by its O(name), matched exactly.
  - Addresses are checked locally before anything is sent to the PCE.
  - Changes are made to the B(draft) policy. They take effect once provisioned, for example with
    M(microseg.illumio.policy_provision); the result says so in RV(provision_pending).
  - The built-in IP list V(Any (0.0.0.0/0 and ::/0)) can be read but never changed, renamed or deleted.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Name of the IP list, matched exactly and case-sensitively.
    type: str
    required: true
  new_name:
    description:
      - Rename the IP list to this name. It keeps its href, so rules that use it keep using it.
      - If only an IP list named O(new_name) exists, it is considered renamed already.
      - If IP lists with both names exist, the module fails rather than guess.
      - If neither exists, an IP list named O(new_name) is created.
      - Only with O(state=present).
    type: str
  ip_ranges:
    description:
      - The addresses of the IP list. Each entry is either a string or a dict.
      - 'A string is an address (V(10.1.1.1), V(2001:db8::1)), a CIDR block (V(10.0.0.0/8)), a range
        (V(10.1.1.1-10.1.1.9)), or any of those after V(!) to B(exclude) it from the list (V(!10.0.0.5)).'
      - 'A dict has the keys of the PCE: C(from_ip) (address or CIDR block, required), C(to_ip) (end of a range),
        C(description) and C(exclusion) (bool).'
      - A CIDR block must be written with its network address (V(10.0.0.0/8), not V(10.1.2.3/8)).
      - B(The list replaces the IP list's ranges:) entries not listed are removed. When O(ip_ranges) is not
        given, the ranges are left as they are. Order does not matter.
    type: list
    elements: raw
  fqdns:
    description:
      - Domain names of the IP list, each a string (V(app.example.com), V(*.example.com)) or a dict with
        C(fqdn) and C(description).
      - B(The list replaces the IP list's domain names.) When O(fqdns) is not given, they are left as they are.
    type: list
    elements: raw
  description:
    description:
      - Free text description. Only compared when given.
    type: str
  external_data_set:
    description:
      - Name of the external system the IP list comes from, for example an IPAM. Only compared when given.
    type: str
  external_data_reference:
    description:
      - ID of the IP list in O(external_data_set). Only compared when given.
    type: str
  state:
    description:
      - V(present) creates the IP list or updates it to match; V(absent) deletes it from the draft policy.
      - A deleted IP list that was provisioned stays in the active policy until the deletion is provisioned.
        The PCE refuses to delete an IP list that draft policy still uses.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description: Returns the IP list before and after (no hrefs) under C(diff).
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - Draft IP list names are unique on the PCE (C(name_must_be_unique)). A create whose answer is lost (the
    connection drops after the PCE stored it, or a gateway answers 502 or 504) is never sent again blindly; the
    module looks the IP list up first and reports it created, with its href, when it is there. When another run
    creates the same IP list at the same moment, the PCE refuses the second create; the module then reads the IP
    list and only brings it to the wanted state, so two concurrent runs both succeed and end in one run's state. See
    C(docs/retries.md).
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.ip_list_info
  - module: microseg.illumio.policy_provision
"""

EXAMPLES = r"""
- name: IP lists as code, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: Corporate networks, without the guest Wi-Fi
      microseg.illumio.ip_list:
        name: IPL-Corporate
        description: Office and VPN ranges
        ip_ranges:
          - 10.0.0.0/8
          - 172.16.0.0/12
          - 192.168.10.1-192.168.10.99
          - "!10.99.0.0/16"
          - from_ip: 2001:db8::/32
            description: IPv6 offices
        fqdns:
          - vpn.example.com

    - name: Rename it (same href, rules keep using it)
      microseg.illumio.ip_list:
        name: IPL-Corporate
        new_name: IPL-Corp-Networks

    - name: Make it active
      microseg.illumio.policy_provision:
        update_description: Corporate networks IP list
        ip_lists:
          - IPL-Corp-Networks

    - name: Delete an IP list that nothing uses any more
      microseg.illumio.ip_list:
        name: IPL-Old-Partner
        state: absent
"""

RETURN = r"""
ip_list:
  description:
    - The IP list after the task; in check mode, as it would be (RV(ip_list.href) is V(null) when it would be
      created).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The draft IP list's href.
      type: str
      sample: /orgs/1/sec_policy/draft/ip_lists/12
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
provision_pending:
  description:
    - Whether the draft IP list differs from the active policy after the task (a change made now or before
      and not yet provisioned, including a deletion). Provision it with M(microseg.illumio.policy_provision).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.policy_objects import IpList


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        new_name=dict(type="str"),
        ip_ranges=dict(type="list", elements="raw"),
        fqdns=dict(type="list", elements="raw"),
        description=dict(type="str"),
        external_data_set=dict(type="str"),
        external_data_reference=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        # ensure() validates every option (addresses included) before it sends the first request.
        result = IpList(client, check_mode=module.check_mode).ensure(module.params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
