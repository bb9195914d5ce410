#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_info
short_description: Read VENs (Virtual Enforcement Nodes) from the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - List the VENs paired with the Illumio Policy Compute Engine (PCE), with their version, status, health,
    conditions and last heartbeat, and counts by version, status and health.
  - VENs can be named by O(hostnames), O(hrefs) or O(workload_hrefs); the other options are filters. Named VENs
    must also pass every filter given. Without names the filters select from all VENs of the organization, and
    the PCE does the filtering. A list of names given empty names no VEN (the result is then empty), so that a
    task whose list of hosts comes out empty does not read every VEN.
  - Names that match no VEN are not an error; they are listed in RV(not_found).
  - "Labels are shown as C(key: value)."
  - Use it as a health gate, for example after an upgrade with M(microseg.illumio.ven_upgrade).
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  hostnames:
    description:
      - Only the VENs with these host names, matched exactly.
    type: list
    elements: str
    aliases: [hostname]
  hrefs:
    description:
      - Only the VENs with these hrefs, such as V(/orgs/1/vens/ec38510d-e4fd-41a1-a6ba-8b0bb4ce9ae9).
    type: list
    elements: str
    aliases: [href]
  workload_hrefs:
    description:
      - Only the VENs of these managed workloads, such as V(/orgs/1/workloads/ec38510d-e4fd-41a1-a6ba-8b0bb4ce9ae9).
      - Naming an unmanaged workload (one without VEN) is an error.
    type: list
    elements: str
    aliases: [workload_href, workloads]
  labels:
    description:
      - >-
        Only VENs carrying all of these labels, as a dict of label key to value, for example
        C({role: web, env: prod}).
      - A label that does not exist matches no VEN.
    type: dict
  status:
    description:
      - Only VENs in this status.
    type: str
    choices: [active, suspended, stopped, uninstalled]
  version:
    description:
      - Only VENs running this release, such as V(21.5.30-8527), matched exactly.
    type: str
  health:
    description:
      - Only VENs in this health. V(healthy) means the PCE reports no condition for the VEN; V(error) means a
        condition of error severity or worse; V(warning) other conditions; V(unhealthy) is V(warning) or V(error).
    type: str
    choices: [healthy, warning, error, unhealthy]
  condition:
    description:
      - Only VENs for which the PCE reports this condition, such as V(agent.missed_heartbeats) or
        V(agent.upgrade_time_out).
    type: str
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
  - module: microseg.illumio.ven_upgrade
  - module: microseg.illumio.workload_info
"""

EXAMPLES = r"""
- name: Read VENs
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: All VENs, with counts by version
      microseg.illumio.ven_info:
      register: fleet

    - name: Show how many VENs run each release
      ansible.builtin.debug:
        var: fleet.summary.by_version

    - name: Production web VENs that are not healthy
      microseg.illumio.ven_info:
        labels:
          role: web
          env: prod
        health: unhealthy
      register: sick

    - name: VENs still on an old release
      microseg.illumio.ven_info:
        version: 21.2.5-8017
      register: old

- name: Health gate after an upgrade
  hosts: webservers
  gather_facts: false
  tasks:
    - name: Read the VENs of this wave
      microseg.illumio.ven_info:
        hostnames: "{{ ansible_play_hosts }}"
      delegate_to: localhost
      run_once: true
      register: wave

    - name: Every VEN of the wave runs the new release, online and healthy
      ansible.builtin.assert:
        that:
          - wave.not_found | length == 0
          - wave.vens | rejectattr('version', 'eq', '23.2.20-200') | list | length == 0
          - wave.vens | rejectattr('online') | list | length == 0
          - wave.vens | rejectattr('health', 'eq', 'healthy') | list | length == 0
      run_once: true
"""

RETURN = r"""
vens:
  description: The VENs selected, sorted by host name.
  returned: always
  type: list
  elements: dict
  contains:
    href:
      description: The VEN's href.
      type: str
      sample: /orgs/1/vens/ec38510d-e4fd-41a1-a6ba-8b0bb4ce9ae9
    name:
      description: Friendly name, or V(null).
      type: str
      sample: null
    hostname:
      description: Host name the VEN reports.
      type: str
      sample: web1.example.com
    description:
      description: Description, or V(null).
      type: str
      sample: null
    version:
      description: Release the VEN runs.
      type: str
      sample: 21.5.30-8527
    status:
      description: V(active), V(suspended), V(stopped) or V(uninstalled).
      type: str
      sample: active
    online:
      description: Whether the VEN is active and the PCE reports no missed heartbeats for it.
      type: bool
      sample: true
    health:
      description: V(healthy) (no conditions), V(warning) or V(error) (the worst severity of its conditions).
      type: str
      sample: healthy
    conditions:
      description: What the PCE reports as wrong with the VEN.
      type: list
      elements: dict
      contains:
        type:
          description: The condition's notification type.
          type: str
          sample: agent.missed_heartbeats
        severity:
          description: Severity the PCE gives it.
          type: str
          sample: warning
        first_reported_at:
          description: When the PCE first reported it.
          type: str
          sample: "2022-08-01T17:31:40.669Z"
        latest_at:
          description: When the PCE last reported it.
          type: str
          sample: "2022-08-01T17:31:40.669Z"
        info:
          description: Details the PCE gives, as it gives them.
          type: dict
          sample: {current_version: 21.2.5-8017, desired_version: 21.5.30-8527}
    workload_href:
      description: Href of the VEN's workload (the first one, for VENs with several), or V(null).
      type: str
      sample: /orgs/1/workloads/ec38510d-e4fd-41a1-a6ba-8b0bb4ce9ae9
    workload_hrefs:
      description: Hrefs of all the VEN's workloads.
      type: list
      elements: str
      sample: [/orgs/1/workloads/ec38510d-e4fd-41a1-a6ba-8b0bb4ce9ae9]
    last_heartbeat_at:
      description: When the PCE last heard from the VEN, or V(null).
      type: str
      sample: "2022-08-17T17:33:31.158Z"
    last_goodbye_at:
      description: When the VEN last said goodbye, or V(null).
      type: str
      sample: null
    os_id:
      description: Operating system identifier.
      type: str
      sample: centos-x86_64-7.0
    os_platform:
      description: V(linux), V(windows), ...
      type: str
      sample: linux
    os_detail:
      description: Operating system details.
      type: str
      sample: 3.10.0-1160.71.1.el7.x86_64 (CentOS Linux release 7.9.2009 (Core))
    labels:
      description: Labels, as key to value.
      type: dict
      sample: {role: web, env: prod}
    can_upgrade:
      description: Whether the PCE allows upgrading the VEN (its C(upgrade) capability).
      type: bool
      sample: true
summary:
  description: Counts of the selected VENs.
  returned: always
  type: dict
  contains:
    total:
      description: How many VENs were selected.
      type: int
      sample: 3
    by_version:
      description: Release to number of VENs.
      type: dict
      sample: {21.5.30-8527: 2, 21.2.5-8017: 1}
    by_status:
      description: Status to number of VENs.
      type: dict
      sample: {active: 3}
    by_health:
      description: Health to number of VENs.
      type: dict
      sample: {healthy: 2, warning: 1}
not_found:
  description: The host names, VEN hrefs and workload hrefs given that match no VEN.
  returned: always
  type: dict
  contains:
    hostnames:
      description: Host names no VEN has.
      type: list
      elements: str
      sample: [web9.example.com]
    hrefs:
      description: VEN hrefs the PCE does not know.
      type: list
      elements: str
      sample: []
    workload_hrefs:
      description: Workload hrefs the PCE does not know.
      type: list
      elements: str
      sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.vens import (
    HEALTH_FILTERS,
    VEN_STATUSES,
    VenReader,
    select_vens,
    selector_argument_spec,
    summary,
)


def read_vens(client, params):
    reader = VenReader(client)
    selection = select_vens(reader, params)
    views = [reader.view(doc) for doc in selection.vens]
    return {"changed": False, "vens": views, "summary": summary(views), "not_found": selection.missing}


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(selector_argument_spec())
    argument_spec.update(
        status=dict(type="str", choices=list(VEN_STATUSES)),
        version=dict(type="str"),
        health=dict(type="str", choices=list(HEALTH_FILTERS)),
        condition=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        result = read_vens(client, module.params)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
