#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_activation
short_description: Activate (pair), prepare or deactivate the Illumio VEN on a host
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host, where the VEN is installed, and brings its activation to O(state) with
    C(illumio-ven-ctl).
  - V(activated) pairs the VEN with the PCE O(management_server). A VEN already paired with that PCE is left
    alone (no C(changed), the activation code is not used, so a single-use key is not spent). A VEN paired
    with another PCE is handled as O(when_paired_elsewhere) says.
  - V(prepared) is for golden images - the VEN stays installed and stopped, with the activation code and PCE
    in its activation file, and activates when it next starts (the first boot of a machine made from the
    image). An activated VEN cannot be prepared - deactivate it first, or the image would clone its identity.
  - V(deactivated) says goodbye to the PCE and forgets the activation; the VEN stays installed. A prepared
    VEN loses its activation file, so it does not pair at its next start either.
  - B(The activation code never appears on a command line.) The module writes it to the VEN's activation
    file C(agent_activation.cfg) (mode 0600), which C(illumio-ven-ctl activate) reads when it has no
    C(--activation-code) and removes after activating; the module removes it too if activation fails. Put
    C(no_log) on tasks that hold the code anyway - O(activation_code) is marked secret, but a registered
    variable holding it elsewhere is not.
  - The activation options (O(labels), O(enforcement_mode), O(visibility_level), O(log_traffic), O(name),
    O(proxy_server)) apply when the VEN pairs and are checked first with the rules of the VEN installation
    guide. They do not change a VEN that is already paired - use M(microseg.illumio.workload) for its labels
    and modes, M(microseg.illumio.ven_proxy) for its proxy. A pairing profile that locks labels or modes makes
    the PCE refuse those options; the module then fails with the VEN's message.
options:
  state:
    description:
      - What the VEN's activation should be.
    type: str
    choices: [activated, prepared, deactivated]
    default: activated
  management_server:
    description:
      - The PCE to pair with, C(HOST:PORT) (for example V(pce.example.com:8443)). Required for V(activated) and
        V(prepared).
    type: str
  activation_code:
    description:
      - The activation code of a pairing key (M(microseg.illumio.pairing_key)). Needed only when the VEN must
        pair (or be prepared); a VEN already in O(state) does not use it. For V(activated), a prepared VEN
        can also activate from the code already in its activation file.
    type: str
  when_paired_elsewhere:
    description:
      - What to do when O(state=activated) and the VEN is paired with another PCE than O(management_server).
      - V(fail) stops with a message naming that PCE; V(warn) leaves the VEN as it is and warns
        (RV(paired_elsewhere) is V(true)); V(repair) deactivates it and pairs it with O(management_server).
    type: str
    choices: [fail, warn, repair]
    default: fail
  name:
    description:
      - Friendly name of the workload in the PCE.
    type: str
  labels:
    description:
      - Labels for the workload at pairing, by key - V(role), V(app), V(env) and V(loc) only (what
        C(illumio-ven-ctl activate) takes).
    type: dict
  enforcement_mode:
    description:
      - Enforcement mode at pairing.
    type: str
    choices: [idle, visibility_only, selective, full]
  visibility_level:
    description:
      - Visibility level at pairing. V(flow_drops) is valid only with O(enforcement_mode=full).
    type: str
    choices: [flow_summary, flow_drops, flow_off]
  log_traffic:
    description:
      - Traffic logging at pairing. V(true) with O(visibility_level=flow_off) is invalid.
    type: bool
  proxy_server:
    description:
      - HTTP proxy the VEN reaches the PCE through, C([http://]HOST[:PORT]) - the VEN supports http proxies only.
    type: str
  install_dir:
    description:
      - Where the VEN is installed.
    type: path
    default: /opt/illumio_ven
  data_dir:
    description:
      - The VEN's data directory (where the activation file goes). By default the one it was installed with.
    type: path
attributes:
  check_mode:
    description: Reports what would change without running C(illumio-ven-ctl) or writing the activation file.
    support: full
  diff_mode:
    description: Shows the activation, PCE and agent state before and after.
    support: full
notes:
  - Requires the VEN to be installed (M(microseg.illumio.ven_package), or the role C(microseg.illumio.ven),
    which also pairs through the PCE's pairing script).
seealso:
  - module: microseg.illumio.ven_facts
  - module: microseg.illumio.pairing_key
  - module: microseg.illumio.ven_unpair
"""

EXAMPLES = r"""
- name: Pair the VEN, keeping the code out of logs
  microseg.illumio.ven_activation:
    management_server: pce.example.com:8443
    activation_code: "{{ pairing.activation_code }}"
    labels:
      role: web
      env: prod
    enforcement_mode: visibility_only
  no_log: true

- name: Golden image - activate at the first boot of each clone
  microseg.illumio.ven_activation:
    state: prepared
    management_server: pce.example.com:8443
    activation_code: "{{ image_pairing.activation_code }}"
  no_log: true

- name: Move a VEN to a new PCE
  microseg.illumio.ven_activation:
    management_server: pce-new.example.com:8443
    activation_code: "{{ new_pairing.activation_code }}"
    when_paired_elsewhere: repair
  no_log: true

- name: Deactivate, keeping the VEN installed
  microseg.illumio.ven_activation:
    state: deactivated
"""

RETURN = r"""
activation:
  description: The VEN's activation after the task - V(activated), V(prepared) or V(not activated).
  returned: success
  type: str
  sample: activated
management_server:
  description: The PCE the VEN is paired with (or prepared for) after the task.
  returned: success
  type: str
  sample: pce.example.com:8443
paired_elsewhere:
  description: V(true) when the VEN was left paired with another PCE (O(when_paired_elsewhere=warn)).
  returned: success
  type: bool
workload_href:
  description: The workload the VEN is, once activated and when the VEN reports it.
  returned: success
  type: str
output:
  description: What C(illumio-ven-ctl) printed, line by line (never the activation code).
  returned: changed and not check mode
  type: list
  elements: str
ven:
  description: The VEN's facts after the task, as M(microseg.illumio.ven_facts) reports them.
  returned: success
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.options import hide_credentials, refuse_stringified
from ansible_collections.microseg.illumio.plugins.module_utils.ven import activation
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import DEFAULT_INSTALL_DIR, VenCtl, VenCtlError
from ansible_collections.microseg.illumio.plugins.module_utils.ven.facts import ACTIVATION_FILE, gather

ACTIVATE_OPTIONS = ("name", "labels", "enforcement_mode", "visibility_level", "log_traffic", "proxy_server")


class Activation:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.ctl = VenCtl(module, self.params["install_dir"])
        self.facts = gather(module, self.params["install_dir"], self.params["data_dir"])
        self.activation_file = os.path.join(self.facts["data_dir"], ACTIVATION_FILE)
        self.output = []
        self.warnings = []
        self.paired_elsewhere = False

    # --- what the VEN is -------------------------------------------------------------------------------------
    def paired_with_wanted_pce(self):
        return activation.same_server(self.facts["management_server"], self.params["management_server"])

    def prepared_for_wanted_pce(self):
        server = self.facts["activation_file_server"]
        return self.facts["prepared"] and activation.same_server(server, self.params["management_server"])

    # --- transitions: each returns True when it changes (or would change) the VEN ------------------------------
    def activate(self):
        if self.facts["activated"]:
            if self.paired_with_wanted_pce():
                return False
            if not self.leave_or_repair():
                return False
        code = self.params["activation_code"]
        if not code and not self.prepared_for_wanted_pce():
            self.module.fail_json(
                msg="the VEN is not paired with %s: activation_code is needed to pair it"
                % self.params["management_server"]
            )
        if self.module.check_mode:
            return True
        arguments = activation.activate_arguments(self.params)
        self.run_with_activation_file(code, "activate", *arguments)
        return True

    def leave_or_repair(self):
        """A VEN paired with another PCE: False to leave it (warn), True once it is deactivated (repair)."""
        where = self.facts["management_server"] or "an unknown PCE"
        choice = self.params["when_paired_elsewhere"]
        if choice == "fail":
            self.module.fail_json(
                msg="the VEN is paired with %s, not %s; set when_paired_elsewhere=repair to re-pair it"
                % (where, self.params["management_server"]),
                management_server=self.facts["management_server"],
            )
        if choice == "warn":
            self.paired_elsewhere = True
            self.warnings.append(
                "the VEN is paired with %s, not %s; left as it is" % (where, self.params["management_server"])
            )
            return False
        if not self.params["activation_code"]:
            self.module.fail_json(
                msg="re-pairing the VEN with %s needs activation_code" % self.params["management_server"]
            )
        if not self.module.check_mode:
            self.output += self.ctl.check("deactivate").splitlines()
        return True

    def prepare(self):
        if self.facts["activated"]:
            self.module.fail_json(
                msg="the VEN is activated (paired with %s); deactivate it before preparing an image, "
                "or the image clones its identity" % (self.facts["management_server"] or "a PCE")
            )
        if self.prepared_for_wanted_pce() and not self.facts["running"]:
            return False
        if not self.params["activation_code"]:
            self.module.fail_json(msg="state=prepared needs activation_code (it goes in the VEN's activation file)")
        if self.module.check_mode:
            return True
        activation.write_activation_file(
            self.activation_file, self.params["activation_code"], self.params["management_server"]
        )
        try:
            self.output += self.ctl.check("prepare").splitlines()
        except VenCtlError:
            activation.remove_quietly(self.activation_file)
            raise
        return True

    def deactivate(self):
        """Not paired, and not about to pair either: a prepared VEN loses its activation file."""
        if self.facts["prepared"] or (self.facts["activation_file"] and not self.facts["activated"]):
            if not self.module.check_mode:
                activation.remove_quietly(self.activation_file)
                self.output.append("Removed the activation file %s" % self.activation_file)
            return True
        if not self.facts["activated"]:
            return False
        if not self.module.check_mode:
            self.output += self.ctl.check("deactivate").splitlines()
        return True

    def run_with_activation_file(self, code, *arguments):
        """Run ctl with the code in the activation file only; the file never outlives a failed run."""
        if code:
            activation.write_activation_file(self.activation_file, code, self.params["management_server"])
        try:
            self.output += self.ctl.check(*arguments).splitlines()
        finally:
            # Ours goes away whatever happened; a prepared image's own file stays for the next try.
            if code:
                activation.remove_quietly(self.activation_file)


def validate(module):
    params = module.params
    found = []
    if params["management_server"]:
        found.append(activation.check_management_server(params["management_server"]))
    if params["activation_code"]:
        found.append(activation.check_activation_code(params["activation_code"]))
    found += activation.problems(params)
    if params["state"] != "activated":
        given = [name for name in ACTIVATE_OPTIONS if params[name] is not None]
        if given and params["state"] == "deactivated":
            found.append("state=deactivated takes no activation options (%s)" % ", ".join(given))
        elif given:
            found.append(
                "state=prepared takes no activation options (%s): the pairing profile decides them" % ", ".join(given)
            )
    found = [reason for reason in found if reason]
    if found:
        module.fail_json(msg="; ".join(found))


def summary(facts):
    return {
        "activation": facts["activation"],
        "management_server": facts["management_server"],
        "agent_state": facts["agent_state"],
        "state": facts["state"],
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["activated", "prepared", "deactivated"], default="activated"),
            management_server=dict(type="str"),
            activation_code=dict(type="str", no_log=True),
            when_paired_elsewhere=dict(type="str", choices=["fail", "warn", "repair"], default="fail"),
            name=dict(type="str"),
            labels=dict(type="dict"),
            enforcement_mode=dict(type="str", choices=list(activation.ENFORCEMENT_MODES)),
            visibility_level=dict(type="str", choices=list(activation.VISIBILITY_LEVELS)),
            log_traffic=dict(type="bool"),
            proxy_server=dict(type="str"),
            install_dir=dict(type="path", default=DEFAULT_INSTALL_DIR),
            data_dir=dict(type="path"),
        ),
        required_if=[("state", "activated", ["management_server"]), ("state", "prepared", ["management_server"])],
        supports_check_mode=True,
    )
    hide_credentials(module, "proxy_server")
    refuse_stringified(module)
    validate(module)
    try:
        run(module)
    except (VenCtlError, OSError) as exc:
        module.fail_json(msg=str(exc))


def run(module):
    work = Activation(module)
    if not work.facts["installed"]:
        module.fail_json(msg="the VEN is not installed in %s; install it first" % module.params["install_dir"])
    before = summary(work.facts)
    state = module.params["state"]
    changed = {"activated": work.activate, "prepared": work.prepare, "deactivated": work.deactivate}[state]()
    facts = work.facts
    if changed and not module.check_mode:
        facts = gather(module, module.params["install_dir"], module.params["data_dir"])
        check_reached(module, state, facts)
    after = summary(facts) if not module.check_mode else expected_summary(before, state, module.params, changed)
    for warning in work.warnings:
        module.warn(warning)
    result = dict(
        changed=changed,
        activation=after["activation"],
        management_server=facts["management_server"],
        paired_elsewhere=work.paired_elsewhere,
        workload_href=facts["workload_href"],
        ven=facts,
        diff=dict(before=before, after=after),
    )
    if changed and not module.check_mode:
        result["output"] = work.output
    module.exit_json(**result)


def expected_summary(before, state, params, changed):
    """What check mode predicts: unchanged, or the state's activation with the PCE it pairs with."""
    if not changed:
        return before
    server = None if state == "deactivated" else params["management_server"]
    return dict(before, activation=expected_activation(state), management_server=server)


def expected_activation(state):
    return {"activated": "activated", "prepared": "prepared", "deactivated": "not activated"}[state]


def check_reached(module, state, facts):
    if facts["activation"] != expected_activation(state):
        module.fail_json(
            msg="illumio-ven-ctl reported success, but the VEN's activation is now %r, not %r"
            % (facts["activation"], expected_activation(state)),
            ven=facts,
        )


if __name__ == "__main__":
    main()
