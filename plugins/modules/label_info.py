#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: label_info
short_description: Read labels from the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - List the labels of the Illumio Policy Compute Engine (PCE), optionally filtered by key, value or href.
  - Without filters, returns every label of the organization.
  - Finding nothing is not an error; RV(labels) is then empty.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  key:
    description:
      - Only labels with this key (matched exactly), for example V(role).
    type: str
  value:
    description:
      - Only labels with this value, matched as O(value_match) says.
    type: str
  value_match:
    description:
      - How O(value) is matched.
      - V(exact) returns only labels whose value equals O(value).
      - V(partial) returns labels whose value contains O(value), ignoring case, as the PCE's own filter does.
    type: str
    choices: [exact, partial]
    default: exact
  hrefs:
    description:
      - Only the labels with these hrefs, for example V(/orgs/1/labels/42). Hrefs that do not exist are skipped.
      - Combined with O(key) and O(value), a label must match all of them.
    type: list
    elements: str
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
"""

EXAMPLES = r"""
- name: Read labels, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: The label env=prod, if it exists
      microseg.illumio.label_info:
        key: env
        value: prod
      register: prod

    - name: Every role label whose value contains "web" (web, web-frontend, Webshop...)
      microseg.illumio.label_info:
        key: role
        value: web
        value_match: partial
      register: web_roles

    - name: Every label of the organization
      microseg.illumio.label_info: {}
      register: all_labels

    - name: Show the href of env=prod
      ansible.builtin.debug:
        msg: "{{ prod.labels[0].href if prod.labels else 'env=prod does not exist' }}"

- name: From a play on other hosts, read on the controller (connection from ILLUMIO_* variables)
  hosts: webservers
  tasks:
    - name: Look up labels by href
      microseg.illumio.label_info:
        hrefs:
          - /orgs/1/labels/1
          - /orgs/1/labels/7
      delegate_to: localhost
      run_once: true
      register: by_href
"""

RETURN = r"""
labels:
  description: The labels that match, sorted by key and value.
  returned: always
  type: list
  elements: dict
  contains:
    href:
      description: The label's href.
      type: str
      sample: /orgs/1/labels/42
    key:
      description: Label key.
      type: str
      sample: role
    value:
      description: Label value.
      type: str
      sample: web
    external_data_set:
      description: External system the label comes from, or V(null).
      type: str
      sample: cmdb
    external_data_reference:
      description: ID of the label in that system, or V(null).
      type: str
      sample: ROLE-0042
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.object_types import Label


def read_by_hrefs(client, hrefs):
    """The labels with these hrefs; an href the PCE does not know is skipped, as a filter would."""
    labels = []
    for href in hrefs:
        if "/labels/" not in href:
            raise PceError("not a label href: %r (expected something like /orgs/1/labels/42)" % (href,))
        try:
            labels.append(client.get(href))
        except PceError as error:
            if error.status != 404:
                raise
    return labels


def matches(label, key, value, value_match):
    if key is not None and label.get("key") != key:
        return False
    if value is None:
        return True
    if value_match == "exact":
        return label.get("value") == value
    return value.lower() in (label.get("value") or "").lower()


def find_labels(client, params):
    key, value, value_match = params["key"], params["value"], params["value_match"]
    label_type = Label(client)
    if params["hrefs"] is not None:
        candidates = read_by_hrefs(client, params["hrefs"])
    else:
        # The PCE filters by key and (partially) by value itself; the exact match is checked below.
        query = dict((name, given) for name, given in (("key", key), ("value", value)) if given is not None)
        candidates = label_type.read_collection(query)
    found = [label for label in candidates if matches(label, key, value, value_match)]
    found.sort(key=lambda label: (label.get("key") or "", label.get("value") or ""))
    return [label_type.view(label) for label in found]


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        key=dict(type="str", no_log=False),
        value=dict(type="str"),
        value_match=dict(type="str", choices=["exact", "partial"], default="exact"),
        hrefs=dict(type="list", elements="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        labels = find_labels(client, module.params)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(changed=False, labels=labels)


if __name__ == "__main__":
    main()
