#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: service_info
short_description: Read services from the draft or active policy of the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - List the services of the Illumio Policy Compute Engine (PCE), optionally filtered by name, from the draft
    policy (what is being edited) or the active policy (what was provisioned).
  - Protocols are shown by name (V(tcp), V(udp), V(icmp) ...) when they have one.
  - Finding nothing is not an error; RV(services) is then empty.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Only services with this name, matched as O(name_match) says.
    type: str
  name_match:
    description:
      - How O(name) is matched.
      - V(exact) returns only services whose name equals O(name).
      - V(partial) returns services whose name contains O(name), ignoring case, as the PCE's own filter does.
    type: str
    choices: [exact, partial]
    default: exact
  policy_version:
    description:
      - V(draft) reads the draft policy, including changes not provisioned yet. Services whose deletion is
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
  - module: microseg.illumio.service
"""

EXAMPLES = r"""
- name: Read services, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: A service as provisioned
      microseg.illumio.service_info:
        name: S-WEB
        policy_version: active
      register: web

    - name: Every service whose name starts with or contains "S-"
      microseg.illumio.service_info:
        name: S-
        name_match: partial
      register: services

    - name: Show the TCP ports of S-WEB
      ansible.builtin.debug:
        msg: "{{ web.services[0].service_ports | selectattr('proto', 'eq', 'tcp') | map(attribute='port') | list }}"
      when: web.services | length > 0
"""

RETURN = r"""
services:
  description: The services that match, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    href:
      description: The service's href (draft or active, as O(policy_version) says).
      type: str
      sample: /orgs/1/sec_policy/active/services/7
    name:
      description: Name of the service.
      type: str
      sample: S-WEB
    description:
      description: Description of the service.
      type: str
      sample: HTTP and HTTPS
    service_ports:
      description: Ports and protocols, each with only the keys that are set (C(proto) by name when it has one).
      type: list
      elements: dict
      sample: [{proto: tcp, port: 80}, {proto: tcp, port: 443}]
    windows_services:
      description: Windows services, each with only the keys that are set.
      type: list
      elements: dict
      sample: []
    process_name:
      description: Process the service is bound to, or V(null).
      type: str
      sample: null
    external_data_set:
      description: External system the service comes from, or V(null).
      type: str
      sample: cmdb
    external_data_reference:
      description: ID of the service in that system, or V(null).
      type: str
      sample: SVC-0001
    update_type:
      description:
        - In the draft policy, the change waiting to be provisioned (V(create), V(update)), or V(null) when
          the draft equals the active policy. Always V(null) in the active policy.
      type: str
      sample: null
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.policy_objects import Service


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
        services = Service(client, policy_version=params["policy_version"]).search(params["name"], params["name_match"])
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(changed=False, services=services)


if __name__ == "__main__":
    main()
