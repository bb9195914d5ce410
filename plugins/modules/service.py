#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: service
short_description: Manage services in the draft policy of the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update, rename and delete services in the draft policy of the Illumio Policy Compute Engine (PCE).
    A service names ports and protocols (V(tcp/443), a UDP port range, an ICMP type) or Windows services, so
    that rules can allow them by name.
  - A service is identified by its O(name), matched exactly.
  - Ports, protocols and ICMP types are checked locally before anything is sent to the PCE.
  - Changes are made to the B(draft) policy. They take effect once provisioned, for example with
    M(microseg.illumio.policy_provision); the result says so in RV(provision_pending).
  - The built-in service V(All Services) can be read but never changed, renamed or deleted.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Name of the service, matched exactly and case-sensitively.
    type: str
    required: true
  new_name:
    description:
      - Rename the service to this name. It keeps its href, so rules that use it keep using it.
      - If only a service named O(new_name) exists, it is considered renamed already.
      - If services with both names exist, the module fails rather than guess.
      - If neither exists, a service named O(new_name) is created.
      - Only with O(state=present).
    type: str
  service_ports:
    description:
      - Ports and protocols of the service.
      - B(The list replaces the service's ports:) entries not listed are removed. When O(service_ports) is not
        given, the ports are left as they are. Order does not matter.
      - Mutually exclusive with O(windows_services).
    type: list
    elements: dict
    suboptions:
      proto:
        description:
          - Protocol by name (V(tcp), V(udp), V(icmp), V(icmpv6), V(sctp), V(gre), V(esp), V(ah), V(igmp)) or
            IP protocol number (V(0) to V(255)). Returned by name when it has one.
        type: raw
        required: true
      port:
        description:
          - Port, or first port of a range (V(0) to V(65535)). Only with V(tcp) or V(udp).
          - Without O(service_ports[].port) the entry means every port of the protocol.
        type: int
      to_port:
        description:
          - Last port of a range that starts at O(service_ports[].port).
        type: int
      icmp_type:
        description:
          - ICMP type (V(0) to V(255)), only with V(icmp) or V(icmpv6). Without it the entry means all of ICMP.
        type: int
      icmp_code:
        description:
          - ICMP code (V(0) to V(255)) of O(service_ports[].icmp_type).
        type: int
  windows_services:
    description:
      - Windows services of the service, each named by its service name and/or process name, optionally
        narrowed to a port or ICMP type as in O(service_ports).
      - B(The list replaces the service's Windows services.) Mutually exclusive with O(service_ports).
    type: list
    elements: dict
    suboptions:
      service_name:
        description:
          - Windows service name, for example V(Dnscache).
        type: str
      process_name:
        description:
          - Process, for example V(c:\\windows\\system32\\svchost.exe).
        type: str
      proto:
        description:
          - Protocol by name or number, as in O(service_ports[].proto). Required with a port or ICMP type.
        type: raw
      port:
        description:
          - Port, or first port of a range.
        type: int
      to_port:
        description:
          - Last port of a range that starts at O(windows_services[].port).
        type: int
      icmp_type:
        description:
          - ICMP type.
        type: int
      icmp_code:
        description:
          - ICMP code of O(windows_services[].icmp_type).
        type: int
  process_name:
    description:
      - Process the service is bound to, for services that name a process rather than ports. Only compared
        when given.
    type: str
  description:
    description:
      - Free text description. Only compared when given.
    type: str
  external_data_set:
    description:
      - Name of the external system the service comes from. Only compared when given.
    type: str
  external_data_reference:
    description:
      - ID of the service in O(external_data_set). Only compared when given.
    type: str
  state:
    description:
      - V(present) creates the service or updates it to match; V(absent) deletes it from the draft policy.
      - A deleted service that was provisioned stays in the active policy until the deletion is provisioned.
        The PCE refuses to delete a service that draft policy still uses.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description: Returns the service before and after (protocols by name, no hrefs) under C(diff).
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - Draft service names are unique on the PCE (C(name_must_be_unique)). A create whose answer is lost (the
    connection drops after the PCE stored it, or a gateway answers 502 or 504) is never sent again blindly; the
    module looks the service up first and reports it created, with its href, when it is there. When another run
    creates the same service at the same moment, the PCE refuses the second create; the module then reads the
    service and only brings it to the wanted state, so two concurrent runs both succeed and end in one run's state.
    See C(docs/retries.md).
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.service_info
  - module: microseg.illumio.policy_provision
"""

EXAMPLES = r"""
- name: Services as code, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: Web traffic
      microseg.illumio.service:
        name: S-WEB
        description: HTTP and HTTPS
        service_ports:
          - proto: tcp
            port: 80
          - proto: tcp
            port: 443

    - name: Ephemeral UDP ports and ping
      microseg.illumio.service:
        name: S-MEDIA
        service_ports:
          - proto: udp
            port: 49152
            to_port: 65535
          - proto: icmp
            icmp_type: 8
            icmp_code: 0

    - name: A Windows service
      microseg.illumio.service:
        name: S-DNS-CLIENT
        windows_services:
          - service_name: Dnscache
            proto: udp
            port: 53

    - name: Rename a service (same href, rules keep using it)
      microseg.illumio.service:
        name: S-WEB
        new_name: S-HTTP-HTTPS

    - name: Make the changes active
      microseg.illumio.policy_provision:
        update_description: Web and media services
        services:
          - S-HTTP-HTTPS
          - S-MEDIA
          - S-DNS-CLIENT

    - name: Delete a service that nothing uses any more
      microseg.illumio.service:
        name: S-TELNET
        state: absent
"""

RETURN = r"""
service:
  description:
    - The service after the task; in check mode, as it would be (RV(service.href) is V(null) when it would be
      created).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The draft service's href.
      type: str
      sample: /orgs/1/sec_policy/draft/services/7
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
      sample: [{proto: tcp, port: 80}, {proto: udp, port: 49152, to_port: 65535}, {proto: icmp, icmp_type: 8}]
    windows_services:
      description: Windows services, each with only the keys that are set.
      type: list
      elements: dict
      sample: [{service_name: Dnscache, proto: udp, port: 53}]
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
provision_pending:
  description:
    - Whether the draft service differs from the active policy after the task (a change made now or before
      and not yet provisioned, including a deletion). Provision it with M(microseg.illumio.policy_provision).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.policy_objects import Service


def port_options(proto_required):
    return dict(
        proto=dict(type="raw", required=proto_required),
        port=dict(type="int"),
        to_port=dict(type="int"),
        icmp_type=dict(type="int"),
        icmp_code=dict(type="int"),
    )


def main():
    windows_options = port_options(False)
    windows_options.update(service_name=dict(type="str"), process_name=dict(type="str"))
    argument_spec = pce_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        new_name=dict(type="str"),
        service_ports=dict(
            type="list",
            elements="dict",
            options=port_options(True),
            required_by={"to_port": "port", "icmp_code": "icmp_type"},
        ),
        windows_services=dict(
            type="list",
            elements="dict",
            options=windows_options,
            required_one_of=[["service_name", "process_name"]],
            required_by={"to_port": "port", "icmp_code": "icmp_type", "port": "proto", "icmp_type": "proto"},
        ),
        process_name=dict(type="str"),
        description=dict(type="str"),
        external_data_set=dict(type="str"),
        external_data_reference=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[["service_ports", "windows_services"]],
    )
    client = client_from_module(module)
    try:
        # ensure() validates every option (protocols and port ranges included) before the first request.
        result = Service(client, check_mode=module.check_mode).ensure(module.params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
