#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: security_rule
short_description: Manage one allow rule inside a rule set on the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update and delete one allow rule (security rule) of an existing rule set of the Illumio Policy
    Compute Engine (PCE), leaving the rule set's other rules alone.
  - Use it when several plays each own a few rules of a shared rule set. To manage all rules of a rule set at
    once, use M(microseg.illumio.rule_set) with O(microseg.illumio.rule_set#module:rules).
  - 'Rules have no name on the PCE, so O(match_by) says how the rule is found:'
  - 'V(content) (the default) - the rule with these O(providers), O(consumers), O(services),
    O(resolve_labels_as) and O(unscoped_consumers) (compared as sets: order does not matter). Only
    O(enabled), O(description) and O(network_type) can then change; a rule with other content is another rule.'
  - V(description) - the one rule whose description equals O(description). Its providers, consumers, services
    and other fields are then brought to what the task gives, so the rule keeps its href while its content
    changes. The description must be unique among the rule set's rules.
  - Rules are draft policy. Changes take effect on workloads only once provisioned, for example with
    M(microseg.illumio.policy_provision).
  - Every name in the task is looked up before anything is changed; an unknown name fails the task without
    touching the PCE.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  rule_set:
    description:
      - Name of the rule set the rule belongs to, matched exactly. It must exist for O(state=present); create it
        with M(microseg.illumio.rule_set).
    type: str
    required: true
  match_by:
    description:
      - How the rule is identified, see the description above.
    type: str
    choices: [content, description]
    default: content
  providers:
    description:
      - Who provides the services (the destination of the traffic).
      - 'Each actor is one of: V(ams) (all managed workloads); a label V({KEY: VALUE}) (shorthand) or
        V({label: {KEY: VALUE}}); V({label_group: NAME}); V({ip_list: NAME}); V({workload: HOSTNAME});
        V({virtual_service: NAME}).'
      - Required with O(match_by=content), and to create a rule.
    type: list
    elements: raw
  consumers:
    description:
      - Who consumes the services (the source of the traffic); actors as for O(providers).
      - Required with O(match_by=content), and to create a rule.
    type: list
    elements: raw
  services:
    description:
      - The services the providers offer (the PCE's C(ingress_services)).
      - 'A service by name, V(SSH) or V({name: SSH}); or a port V({port: 8443, proto: tcp}), a range
        V({port: 8000, to_port: 8099, proto: tcp}), or ICMP V({proto: icmp, icmp_type: 8}). C(proto) is a name
        (V(tcp), V(udp), V(icmp), ...), an IP protocol number, or V(all).'
      - Required with O(match_by=content), and to create a rule.
    type: list
    elements: raw
    aliases: [ingress_services]
  resolve_labels_as:
    description:
      - What label actors of each side stand for. When not given, V(workloads) for both sides (with
        O(match_by=description), an existing rule keeps its setting).
    type: dict
    suboptions:
      providers:
        description: What provider labels resolve to.
        type: list
        elements: str
        choices: [workloads, virtual_services]
        default: [workloads]
      consumers:
        description: What consumer labels resolve to.
        type: list
        elements: str
        choices: [workloads, virtual_services]
        default: [workloads]
  unscoped_consumers:
    description:
      - V(true) makes an extra-scope rule, whose label consumers are not limited to the rule set's scope.
      - When not given, V(false) (with O(match_by=description), an existing rule keeps its setting).
    type: bool
  enabled:
    description:
      - Whether the rule is enabled. Only compared when given; a new rule is enabled.
    type: bool
  description:
    description:
      - Description of the rule. Only compared when given with O(match_by=content).
      - Required with O(match_by=description), where it identifies the rule.
    type: str
  network_type:
    description:
      - Which networks the rule applies to. Only compared when given; the PCE's default is V(brn).
    type: str
    choices: [brn, non_brn, all]
  state:
    description:
      - V(present) creates the rule or updates it to match; V(absent) deletes it.
      - With O(match_by=content) and O(state=absent), identical copies of the rule are all deleted.
      - A missing rule set with O(state=absent) is not an error.
    type: str
    choices: [present, absent]
    default: present
notes:
  - M(microseg.illumio.rule_set) with its default O(microseg.illumio.rule_set#module:purge_rules=true) removes
    rules it does not list, including rules made with this module; use
    O(microseg.illumio.rule_set#module:purge_rules=false) there when both manage the same rule set.
  - Rules have no name, so a rule create whose answer is lost is settled by looking for a rule with the same
    providers, consumers and services that was not in the rule set before; only if there is none is it sent again.
    The PCE does not refuse identical rules, so two runs adding the same rule at the same moment can both add it;
    M(microseg.illumio.rule_set) with O(microseg.illumio.rule_set#module:purge_rules=true) removes the copy.
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.rule_set
  - module: microseg.illumio.deny_rule
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description:
      - 'Returns the rule before and after under C(diff), in the form used in tasks (names and C(key: value)
        labels, no hrefs).'
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
"""

EXAMPLES = r"""
- name: Rules owned by different plays, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: The web tier answers HTTPS from everyone in the scope
      microseg.illumio.security_rule:
        rule_set: RS-CRM-PROD
        providers: [{role: web}]
        consumers: [ams]
        services: [{port: 443, proto: tcp}]
        description: HTTPS to the web tier

    - name: Monitoring reaches every workload of the scope from outside it
      microseg.illumio.security_rule:
        rule_set: RS-CRM-PROD
        providers: [ams]
        consumers: [{label_group: LG-monitoring}]
        unscoped_consumers: true
        services: [{port: 9100, proto: tcp}, {proto: icmp, icmp_type: 8}]

    - name: A rule known by its description; its services change in place
      microseg.illumio.security_rule:
        rule_set: RS-CRM-PROD
        match_by: description
        description: backup agents
        providers: [ams]
        consumers: [{ip_list: Backup servers}]
        services: [{port: 10000, to_port: 10010, proto: tcp}]

    - name: Disable a rule without deleting it
      microseg.illumio.security_rule:
        rule_set: RS-CRM-PROD
        match_by: description
        description: backup agents
        enabled: false

    - name: Remove a rule
      microseg.illumio.security_rule:
        rule_set: RS-CRM-PROD
        providers: [{role: db}]
        consumers: [{role: web}]
        services: [{port: 5432, proto: tcp}]
        state: absent
"""

RETURN = r"""
security_rule:
  description:
    - The rule after the task, in the form used in tasks; in check mode, as it would be (without RV(security_rule.href)
      when it would be created).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The rule's href.
      type: str
      sample: /orgs/1/sec_policy/draft/rule_sets/7/sec_rules/12
    rule_set:
      description: Name of the rule set.
      type: str
      sample: RS-CRM-PROD
    providers:
      description: Providers, as written in tasks.
      type: list
      elements: raw
      sample: [{role: web}]
    consumers:
      description: Consumers, as written in tasks.
      type: list
      elements: raw
      sample: [ams]
    services:
      description: Services by name, and ports.
      type: list
      elements: raw
      sample: [SSH, {port: 443, proto: tcp}]
    resolve_labels_as:
      description: What labels of each side stand for.
      type: dict
      sample: {providers: [workloads], consumers: [workloads]}
    unscoped_consumers:
      description: Whether consumers are outside the scope (extra-scope rule).
      type: bool
      sample: false
    enabled:
      description: Whether the rule is enabled.
      type: bool
      sample: true
    description:
      description: Description.
      type: str
      sample: HTTPS to the web tier
    network_type:
      description: Networks the rule applies to.
      type: str
      sample: brn
provision_pending:
  description: Whether the rule's rule set now has draft changes that are not provisioned yet.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.rules import ALLOW, RulesInRuleSet

RESOLVE_AS = ["workloads", "virtual_services"]


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        rule_set=dict(type="str", required=True),
        match_by=dict(type="str", choices=["content", "description"], default="content"),
        providers=dict(type="list", elements="raw"),
        consumers=dict(type="list", elements="raw"),
        services=dict(type="list", elements="raw", aliases=["ingress_services"]),
        resolve_labels_as=dict(
            type="dict",
            options=dict(
                providers=dict(type="list", elements="str", choices=RESOLVE_AS, default=["workloads"]),
                consumers=dict(type="list", elements="str", choices=RESOLVE_AS, default=["workloads"]),
            ),
        ),
        unscoped_consumers=dict(type="bool"),
        enabled=dict(type="bool"),
        description=dict(type="str"),
        network_type=dict(type="str", choices=["brn", "non_brn", "all"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[
            ("match_by", "content", ["providers", "consumers", "services"]),
            ("match_by", "description", ["description"]),
        ],
    )
    client = client_from_module(module)
    try:
        result = RulesInRuleSet(client, ALLOW, check_mode=module.check_mode).ensure(module.params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
