#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: deny_rule
short_description: Manage deny rules and enforcement boundaries on the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update and delete deny rules of the Illumio Policy Compute Engine (PCE), in either of the two
    forms the PCE has.
  - 'With O(rule_set): a deny rule inside that rule set (the PCE''s C(.../rule_sets/{id}/deny_rules)). Its
    label actors are limited to the rule set''s scope, like allow rules. O(override=true) makes it an override
    deny rule, which wins over allow rules; a plain deny rule only blocks what no allow rule allows, on workloads
    in C(selective) or C(full) enforcement. A deny rule has no name, so O(match_by) says how it is found, as for
    M(microseg.illumio.security_rule): by its content (O(providers), O(consumers), O(services),
    O(unscoped_consumers)), or by its O(description).'
  - 'With O(name) instead: an enforcement boundary (C(sec_policy/draft/enforcement_boundaries)), an org-wide deny
    rule identified by its name, with O(providers), O(consumers) and O(services). Its actors are V(ams), labels,
    label groups and IP lists.'
  - Deny rules and enforcement boundaries are draft policy. Changes take effect on workloads only once
    provisioned, for example with M(microseg.illumio.policy_provision).
  - Every name in the task is looked up before anything is changed; an unknown name fails the task without
    touching the PCE.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  rule_set:
    description:
      - Name of the rule set whose deny rule this is, matched exactly. It must exist for O(state=present); create
        it with M(microseg.illumio.rule_set).
      - Exactly one of O(rule_set) and O(name) is required.
    type: str
  name:
    description:
      - Name of the enforcement boundary, matched exactly.
      - Exactly one of O(rule_set) and O(name) is required.
    type: str
  new_name:
    description:
      - Rename the enforcement boundary to this name, keeping its href. If only a boundary named O(new_name)
        exists, it is considered renamed already; if both exist, the module fails. Only with O(name) and
        O(state=present).
    type: str
  match_by:
    description:
      - How a deny rule in O(rule_set) is identified. Only with O(rule_set); V(content) when not given.
      - V(content) - the deny rule with these O(providers), O(consumers), O(services) and O(unscoped_consumers)
        (compared as sets). Only O(override), O(enabled), O(description) and O(network_type) can then change.
      - V(description) - the one deny rule whose description equals O(description); its content is brought to
        what the task gives. The description must be unique among the rule set's deny rules.
    type: str
    choices: [content, description]
  providers:
    description:
      - The destination of the traffic to deny.
      - 'Each actor is one of: V(ams) (all managed workloads); a label V({KEY: VALUE}) (shorthand) or
        V({label: {KEY: VALUE}}); V({label_group: NAME}); V({ip_list: NAME}); in a rule set also
        V({workload: HOSTNAME}) and V({virtual_service: NAME}).'
      - Required to create; with O(rule_set) and O(match_by=content), always required.
    type: list
    elements: raw
  consumers:
    description:
      - The source of the traffic to deny; actors as for O(providers).
      - Required to create; with O(rule_set) and O(match_by=content), always required.
    type: list
    elements: raw
  services:
    description:
      - The services to deny (the PCE's C(ingress_services)).
      - 'A service by name, V(SSH) or V({name: SSH}); or a port V({port: 23, proto: tcp}), a range
        V({port: 135, to_port: 139, proto: tcp}), or ICMP V({proto: icmp}). C(proto) is a name (V(tcp), V(udp),
        V(icmp), ...), an IP protocol number, or V(all).'
      - Required to create; with O(rule_set) and O(match_by=content), always required.
    type: list
    elements: raw
    aliases: [ingress_services]
  unscoped_consumers:
    description:
      - V(true) makes the consumers of a deny rule in O(rule_set) unlimited by the rule set's scope.
        Only with O(rule_set); V(false) when not given (with O(match_by=description), an existing rule keeps its
        setting).
    type: bool
  override:
    description:
      - V(true) makes an override deny rule, which wins over allow rules. Only with O(rule_set); V(false) when not
        given.
    type: bool
  enabled:
    description:
      - Whether the deny rule is enabled. Only with O(rule_set). Only compared when given; a new rule is enabled.
    type: bool
  description:
    description:
      - Description of the deny rule or enforcement boundary. Only compared when given, except with
        O(match_by=description), where it is required and identifies the deny rule.
    type: str
  network_type:
    description:
      - Which networks the deny rule applies to. Only compared when given; the PCE's default is V(brn).
    type: str
    choices: [brn, non_brn, all]
  state:
    description:
      - V(present) creates the deny rule or boundary, or updates it to match; V(absent) deletes it.
      - With O(rule_set), O(match_by=content) and O(state=absent), identical copies of the deny rule are all
        deleted. A missing rule set with O(state=absent) is not an error.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Lists (actors, services) are compared as sets, and a label group, IP list or service is compared by the
    object it names, so writing the same rule differently does not report a change.
  - Rules have no name, so a rule create whose answer is lost is settled by looking for a rule with the same
    providers, consumers and services that was not in the rule set before; only if there is none is it sent again.
    The PCE does not refuse identical rules, so two runs adding the same rule at the same moment can both add it;
    M(microseg.illumio.rule_set) removes the copy when it manages the rule set's deny rules.
  - With O(name), enforcement boundary names are unique on the PCE (C(name_must_be_unique)). A create whose answer
    is lost (the connection drops after the PCE stored it, or a gateway answers 502 or 504) is never sent again
    blindly; the module looks the enforcement boundary up first and reports it created, with its href, when it is
    there. When another run creates the same enforcement boundary at the same moment, the PCE refuses the second
    create; the module then reads the enforcement boundary and only brings it to the wanted state, so two concurrent
    runs both succeed and end in one run's state. See C(docs/retries.md).
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.rule_set
  - module: microseg.illumio.security_rule
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description:
      - 'Returns the deny rule or boundary before and after under C(diff), in the form used in tasks (names and
        C(key: value) labels, no hrefs).'
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
"""

EXAMPLES = r"""
- name: Deny rules as code, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: No telnet to anything in the CRM production scope, whatever allow rules say
      microseg.illumio.deny_rule:
        rule_set: RS-CRM-PROD
        providers: [ams]
        consumers: [{ip_list: "Any (0.0.0.0/0 and ::/0)"}]
        services: [{port: 23, proto: tcp}]
        override: true
        description: no telnet

    - name: A deny rule known by its description; its services change in place
      microseg.illumio.deny_rule:
        rule_set: RS-CRM-PROD
        match_by: description
        description: no SMB from the web tier
        providers: [{role: db}]
        consumers: [{role: web}]
        services: [{port: 445, proto: tcp}, {port: 137, to_port: 139, proto: udp}]

    - name: Production and development never talk to each other (enforcement boundary)
      microseg.illumio.deny_rule:
        name: EB-prod-dev
        providers: [{env: prod}]
        consumers: [{env: dev}]
        services: [All Services]

    - name: Rename the boundary
      microseg.illumio.deny_rule:
        name: EB-prod-dev
        new_name: EB-production-development

    - name: Remove a deny rule
      microseg.illumio.deny_rule:
        rule_set: RS-CRM-PROD
        providers: [ams]
        consumers: [{ip_list: "Any (0.0.0.0/0 and ::/0)"}]
        services: [{port: 23, proto: tcp}]
        state: absent
"""

RETURN = r"""
deny_rule:
  description:
    - The deny rule or enforcement boundary after the task, in the form used in tasks; in check mode, as it would
      be (without RV(deny_rule.href) when it would be created).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The href of the deny rule or enforcement boundary.
      type: str
      sample: /orgs/1/sec_policy/draft/rule_sets/7/deny_rules/3
    rule_set:
      description: Name of the rule set. Only for deny rules in a rule set.
      type: str
      returned: with O(rule_set)
      sample: RS-CRM-PROD
    name:
      description: Name of the enforcement boundary.
      type: str
      returned: with O(name)
      sample: EB-prod-dev
    providers:
      description: Providers, as written in tasks.
      type: list
      elements: raw
      sample: [ams]
    consumers:
      description: Consumers, as written in tasks.
      type: list
      elements: raw
      sample: [{ip_list: "Any (0.0.0.0/0 and ::/0)"}]
    services:
      description: Services by name, and ports.
      type: list
      elements: raw
      sample: [{port: 23, proto: tcp}]
    unscoped_consumers:
      description: Whether consumers are outside the rule set's scope.
      type: bool
      returned: with O(rule_set)
      sample: false
    override:
      description: Whether this is an override deny rule.
      type: bool
      returned: with O(rule_set)
      sample: true
    enabled:
      description: Whether the deny rule is enabled.
      type: bool
      returned: with O(rule_set)
      sample: true
    description:
      description: Description.
      type: str
      sample: no telnet
    network_type:
      description: Networks the deny rule applies to.
      type: str
      sample: brn
provision_pending:
  description: Whether the draft policy now has changes here that are not provisioned yet.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.rules import (
    DENY,
    EnforcementBoundaries,
    RulesInRuleSet,
)

RULE_SET_ONLY = ("match_by", "unscoped_consumers", "override", "enabled")


def option_problems(params):
    """What is wrong with the combination of options, beyond what the argument spec checks."""
    if params["rule_set"] is None:
        given = [option for option in RULE_SET_ONLY if params[option] is not None]
        if given:
            return "%s only go(es) with rule_set (a deny rule in a rule set), not with name" % ", ".join(given)
        return None
    if params["new_name"] is not None:
        return "new_name renames an enforcement boundary and only goes with name"
    if (params["match_by"] or "content") == "content":
        missing = [option for option in ("providers", "consumers", "services") if params[option] is None]
        if missing:
            return "match_by is content: %s identify the deny rule and are required" % ", ".join(missing)
    elif params["description"] is None:
        return "match_by is description: description is required"
    return None


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        rule_set=dict(type="str"),
        name=dict(type="str"),
        new_name=dict(type="str"),
        match_by=dict(type="str", choices=["content", "description"]),
        providers=dict(type="list", elements="raw"),
        consumers=dict(type="list", elements="raw"),
        services=dict(type="list", elements="raw", aliases=["ingress_services"]),
        unscoped_consumers=dict(type="bool"),
        override=dict(type="bool"),
        enabled=dict(type="bool"),
        description=dict(type="str"),
        network_type=dict(type="str", choices=["brn", "non_brn", "all"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("rule_set", "name")],
        required_one_of=[("rule_set", "name")],
    )
    params = dict(module.params)
    problem = option_problems(params)
    if problem is None and params["state"] == "absent" and params["new_name"] is not None:
        problem = "new_name renames an enforcement boundary and only goes with state=present"
    if problem:
        module.fail_json(msg=problem)
    client = client_from_module(module)
    try:
        if params["rule_set"] is not None:
            params["match_by"] = params["match_by"] or "content"
            params["override"] = bool(params["override"])
            manager = RulesInRuleSet(client, DENY, check_mode=module.check_mode)
        else:
            manager = EnforcementBoundaries(client, check_mode=module.check_mode)
        result = manager.ensure(params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
