#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_facts
short_description: Read the Illumio VEN of a host into facts
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host and reports what the Illumio Virtual Enforcement Node (VEN) there is and does, as
    the fact C(ven) - installed or not, version, directories and user, activation, agent and policy state,
    suspension, proxy, management server (the PCE it is paired with), the workload it is, and its services.
  - The facts come from C(illumio-ven-ctl status) (and C(show-proxy) / C(version) where C(status) does not
    say), the VEN's activation file and the data directory's owner, plus the install record the
    collection keeps when it installs the VEN (M(microseg.illumio.ven_package), role C(microseg.illumio.ven)).
  - A host without a VEN is not an error - C(ven.installed) is V(false) and the rest is empty, so a play
    can decide what to do.
  - Changes nothing on the host.
options:
  install_dir:
    description:
      - Where the VEN is installed (the folder of C(illumio-ven-ctl)).
    type: path
    default: /opt/illumio_ven
  data_dir:
    description:
      - The VEN's data directory. By default the C(VEN_DATA_DIR) the VEN was installed with (from the
        collection's install record), else C(/opt/illumio_ven_data).
    type: path
attributes:
  check_mode:
    description: Reads the same facts in check mode; nothing changes in either mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  facts:
    description: Sets the fact C(ven).
    support: full
seealso:
  - module: microseg.illumio.ven_activation
  - module: microseg.illumio.ven_compat_facts
"""

EXAMPLES = r"""
- name: Read the VEN of every host
  microseg.illumio.ven_facts:

- name: Report hosts whose VEN is paired with another PCE
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} is paired with {{ ansible_facts.ven.management_server }}"
  when:
    - ansible_facts.ven.activated
    - ansible_facts.ven.management_server != 'pce.example.com:8443'

- name: A VEN installed in a custom place
  microseg.illumio.ven_facts:
    install_dir: /srv/illumio_ven
    data_dir: /srv/illumio_ven_data
"""

RETURN = r"""
ansible_facts:
  description: The fact C(ven).
  returned: always
  type: dict
  contains:
    ven:
      description: The VEN of the host.
      returned: always
      type: dict
      contains:
        installed:
          description: Whether C(illumio-ven-ctl) is installed in O(install_dir).
          type: bool
          sample: true
        version:
          description: The VEN's version, V(null) when not installed.
          type: str
          sample: 23.2.10-100
        install_dir:
          description: Where the VEN is (or would be) installed.
          type: str
          sample: /opt/illumio_ven
        data_dir:
          description: The VEN's data directory.
          type: str
          sample: /opt/illumio_ven_data
        user:
          description: Owner of the data directory - the VEN's non-privileged user once activated.
          type: str
          sample: ilo-ven
        group:
          description: Group of the data directory.
          type: str
          sample: ilo-ven
        activation:
          description: V(activated), V(prepared) (activation deferred to the next start) or V(not activated).
          type: str
          sample: activated
        activated:
          description: Whether the VEN is paired with a PCE.
          type: bool
        prepared:
          description: Whether the VEN is installed with its activation deferred (golden image).
          type: bool
        activation_file:
          description: Whether the VEN's C(agent_activation.cfg) exists.
          type: bool
        activation_file_server:
          description: The PCE named in the activation file (where a prepared VEN will activate), else V(null).
          type: str
          sample: pce.example.com:8443
        state:
          description: What C(status) says of the VEN - V(running), V(stopped) or V(suspended).
          type: str
          sample: running
        running:
          description: Whether the VEN's processes run.
          type: bool
        suspended:
          description: Whether the VEN is suspended.
          type: bool
        agent_state:
          description: The VEN's agent state (for example V(illuminated), V(enforced), V(idle), V(unpaired)).
          type: str
          sample: illuminated
        enforcement_mode:
          description: The workload's enforcement mode, when the VEN reports it.
          type: str
          sample: visibility_only
        visibility_level:
          description: The workload's visibility level, when the VEN reports it.
          type: str
          sample: flow_summary
        management_server:
          description: The PCE the VEN is paired with (or will activate with), C(HOST:PORT).
          type: str
          sample: pce.example.com:8443
        proxy_server:
          description: The VEN's proxy, V(null) when none is set.
          type: str
        connectivity:
          description: What the VEN says of its connection to the PCE.
          type: str
          sample: Connected
        workload_href:
          description: The workload the VEN is, when it reports it.
          type: str
          sample: /orgs/1/workloads/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
        services:
          description: State of each VEN component C(status) lists.
          type: dict
          sample: {"venAgentMgr": "running", "venPlatformHandler": "running"}
        install_record:
          description: How the collection installed the VEN (method, version, install variables - no secrets).
          type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import DEFAULT_INSTALL_DIR, VenCtlError
from ansible_collections.microseg.illumio.plugins.module_utils.ven.facts import gather


def main():
    module = AnsibleModule(
        argument_spec=dict(
            install_dir=dict(type="path", default=DEFAULT_INSTALL_DIR),
            data_dir=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    try:
        facts = gather(module, module.params["install_dir"], module.params["data_dir"])
    except (VenCtlError, OSError) as exc:
        module.fail_json(msg="cannot read the VEN: %s" % exc)
    module.exit_json(changed=False, ansible_facts={"ven": facts})


if __name__ == "__main__":
    main()
