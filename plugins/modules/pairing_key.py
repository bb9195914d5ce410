#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: pairing_key
short_description: Generate a pairing key (activation code) from an Illumio PCE pairing profile
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Ask the Illumio Policy Compute Engine (PCE) for a new pairing key of a pairing profile and return its
    activation code, which VEN pairing scripts and C(illumio-ven-ctl activate) take.
  - Every run makes a new key, so the task always reports C(changed). In check mode nothing is made and
    RV(activation_code) is V(null).
  - The key inherits the profile's O(microseg.illumio.pairing_profile#module:allowed_uses_per_key) and
    O(microseg.illumio.pairing_profile#module:key_lifespan) at the time it is made; RV(pairing_key) shows them.
  - The profile must exist and be enabled; a disabled profile makes no keys and the module says so.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
notes:
  - >-
    The activation code is a secret. Ansible hides a module's results only when the task says so, so put
    C(no_log: true) on this task and on every task that uses the registered code (pairing commands, templates,
    C(ansible.builtin.uri) calls). Then neither the result nor C(-vvv) output, callbacks or AWX job events
    show it. The module itself never puts the code in its diff or in error messages.
  - Prefer keys that pair once (O(microseg.illumio.pairing_profile#module:allowed_uses_per_key=1)) and expire soon
    (O(microseg.illumio.pairing_profile#module:key_lifespan)), so a leaked code is of little use.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  pairing_profile:
    description:
      - Name of the pairing profile to make the key from, matched exactly.
    type: str
    required: true
    aliases: [profile]
attributes:
  check_mode:
    description: Reports that a key would be made, without making one; RV(activation_code) is then V(null).
    support: full
  diff_mode:
    description: Shows the profile and the limits of the new key, never the activation code.
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
seealso:
  - module: microseg.illumio.pairing_profile
"""

EXAMPLES = r"""
- name: Pair new web servers
  hosts: webservers
  gather_facts: false
  tasks:
    - name: One key for this run (connection from the ILLUMIO_* environment variables)
      microseg.illumio.pairing_key:
        pairing_profile: web-prod
      delegate_to: localhost
      run_once: true
      no_log: true  # the result holds the activation code
      register: web_key

    - name: Pair the VEN (the code never shows in the output)
      ansible.builtin.command:
        argv:
          - /opt/illumio_ven/illumio-ven-ctl
          - activate
          - --management-server
          - pce.example.com:8443
          - --activation-code
          - "{{ web_key.activation_code }}"
        creates: /opt/illumio_ven_data/etc/agent_id.cfg
      no_log: true
"""

RETURN = r"""
activation_code:
  description:
    - The new key's activation code, a secret. V(null) in check mode.
    - Set C(no_log) on the task, see the notes.
  returned: always
  type: str
  sample: 123815b9db69fc694cc54b8b0baa4b8f4f20b51015953f792c15f9b0d9a0d4962e36ad51b5805fc5b
pairing_key:
  description: What the new key inherits from its profile (never the code itself).
  returned: always
  type: dict
  contains:
    pairing_profile:
      description: Name of the profile the key was made from.
      type: str
      sample: web-prod
    allowed_uses_per_key:
      description: V(unlimited) or how many VENs the key may pair.
      type: str
      sample: "1"
    key_lifespan:
      description: V(unlimited) or how many seconds the key can pair VENs.
      type: str
      sample: "86400"
pairing_profile:
  description: The profile the key was made from, in the form M(microseg.illumio.pairing_profile) returns.
  returned: always
  type: dict
  sample:
    href: /orgs/1/pairing_profiles/7
    name: web-prod
    enabled: true
    enforcement_mode: visibility_only
    labels: {role: web, env: prod}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.pairing import generate_pairing_key


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        pairing_profile=dict(type="str", required=True, aliases=["profile"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        result = generate_pairing_key(client, module.params["pairing_profile"], check_mode=module.check_mode)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
