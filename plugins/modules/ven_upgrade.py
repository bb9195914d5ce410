#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_upgrade
short_description: Have the Illumio PCE upgrade VENs to a release of its VEN library
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Ask the Illumio Policy Compute Engine (PCE) to upgrade the selected VENs to O(release), the way the PCE's
    C(Upgrade VENs) action does (C(PUT /orgs/{org}/vens/upgrade)). The PCE tells each VEN, which then downloads the
    release from the PCE's VEN library and installs it by itself; nothing runs on the hosts.
  - VENs already at O(release) are left alone, so a second run reports no change. So are VENs whose upgrade to
    O(release) the PCE's event log shows as already requested and not timed out, unless O(force) is set.
  - Nothing is sent, and the module fails with the list, when host names, hrefs or workloads match no VEN, when
    several VENs share a host name, when a VEN runs a release newer than O(release) (the PCE does not downgrade),
    or when the PCE does not let a VEN upgrade.
  - When the PCE refuses the request (for example a release that is not in its VEN library), the module fails
    with the PCE's reasons and the host names they concern.
  - With O(wait=true) the module waits until every selected VEN reports O(release), active, heard from and
    without conditions, and fails with the list of VENs that lag behind when O(timeout) passes first.
  - Run it on the controller with C(delegate_to) V(localhost) and C(run_once); it talks to the PCE's REST API.
    For upgrades that install the package on each host instead, use the C(microseg.illumio.ven) role.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  release:
    description:
      - The release to upgrade to, as the PCE's VEN library names it (version-build), for example
        V(21.5.30-8527).
    type: str
    required: true
    aliases: [ven_version]
  hostnames:
    description:
      - Upgrade the VENs with these host names, matched exactly. Each must match exactly one VEN.
      - O(hostnames), O(hrefs) and O(workload_hrefs) add up; a list given empty names no VEN, so that a task whose
        list of hosts comes out empty upgrades nothing rather than everything.
    type: list
    elements: str
    aliases: [hostname]
  hrefs:
    description:
      - Upgrade the VENs with these hrefs, such as V(/orgs/1/vens/ec38510d-e4fd-41a1-a6ba-8b0bb4ce9ae9).
    type: list
    elements: str
    aliases: [href]
  workload_hrefs:
    description:
      - Upgrade the VENs of these managed workloads.
    type: list
    elements: str
    aliases: [workload_href, workloads]
  labels:
    description:
      - >-
        Only VENs carrying all of these labels, as a dict of label key to value, for example
        C({role: web, env: prod}).
      - Alone, it selects every VEN with these labels; with O(hostnames), O(hrefs) or O(workload_hrefs) it narrows
        the VENs they name.
      - A label that does not exist matches no VEN.
    type: dict
  force:
    description:
      - Send the upgrade request again for VENs whose upgrade to O(release) is already pending.
      - VENs already at O(release) are never sent.
    type: bool
    default: false
  wait:
    description:
      - Wait until every selected VEN reports O(release), is active, is heard from and has no conditions.
      - Not done in check mode.
    type: bool
    default: false
  timeout:
    description:
      - Seconds to wait with O(wait=true) before failing with the VENs that lag behind.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two reads of the VENs while waiting.
    type: float
    default: 15
attributes:
  check_mode:
    description: >-
      Reports which VENs would be upgraded, and asks the PCE to validate the request without acting on it
      (C(dry_run)), so an unknown release fails in check mode too.
    support: full
  diff_mode:
    description: Shows the version of each VEN to upgrade before, and O(release) after.
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - The PCE can only upgrade to releases in its VEN library, and only VENs that are paired with it and online.
  - Pending upgrades are recognised from the PCE's C(agent.upgrade_requested) events; when the API key may not read
    events, every VEN not yet at O(release) is sent again, which the PCE takes as the same request.
seealso:
  - module: microseg.illumio.ven_info
"""

EXAMPLES = r"""
- name: Upgrade the VENs of this play through the PCE, then wait for them
  hosts: webservers
  gather_facts: false
  tasks:
    - name: Ask the PCE to upgrade the play's VENs and wait until they run it
      microseg.illumio.ven_upgrade:
        release: 23.2.20-200
        hostnames: "{{ ansible_play_hosts }}"
        wait: true
        timeout: 1200
      delegate_to: localhost
      run_once: true
      register: upgrade

    - name: Show what was upgraded
      ansible.builtin.debug:
        msg: "{{ upgrade.upgraded | map(attribute='hostname') | list }}"
      run_once: true

- name: Upgrade every staging VEN (connection from the ILLUMIO_* environment variables)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Staging VENs to 23.2.20-200, without waiting
      microseg.illumio.ven_upgrade:
        release: 23.2.20-200
        labels:
          env: staging
"""

RETURN = r"""
release:
  description: The release asked for.
  returned: always
  type: str
  sample: 23.2.20-200
upgraded:
  description: The VENs the upgrade was requested for in this run (would be, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    hostname:
      description: Host name of the VEN.
      type: str
      sample: web1.example.com
    href:
      description: Href of the VEN.
      type: str
      sample: /orgs/1/vens/ec38510d-e4fd-41a1-a6ba-8b0bb4ce9ae9
    version_before:
      description: Release the VEN ran before.
      type: str
      sample: 23.2.10-100
already_at_release:
  description: Host names (hrefs for VENs without one) of the selected VENs that already run O(release).
  returned: always
  type: list
  elements: str
  sample: [web2.example.com]
already_pending:
  description: Host names of the selected VENs whose upgrade to O(release) was already requested, not sent again.
  returned: always
  type: list
  elements: str
  sample: []
refused:
  description: Selected VENs that cannot be upgraded, and why; the module fails when there are any.
  returned: always
  type: list
  elements: dict
  sample:
    - hostname: db1.example.com
      href: /orgs/1/vens/e7366e18-97e1-4eeb-945c-a565139ba077
      version: 24.1.0-1
      reason: "runs 24.1.0-1, newer than 23.2.20-200: the PCE does not downgrade VENs"
pce_errors:
  description: The PCE's reasons for refusing (part of) the request, as it gave them.
  returned: when the PCE refused part of the request
  type: list
  elements: dict
  sample: [{token: invalid_release, message: release 9.9.9-1 is not in the VEN library, hrefs: [/orgs/1/vens/ec38510d]}]
laggards:
  description: Host names of the VENs not ready at O(release) when O(timeout) passed.
  returned: when O(wait=true) timed out
  type: list
  elements: str
  sample: [web3.example.com]
vens:
  description:
    - The selected VENs, in the form M(microseg.illumio.ven_info) returns, sorted by host name.
    - As read before the request, or after waiting with O(wait=true).
  returned: always
  type: list
  elements: dict
  sample:
    - href: /orgs/1/vens/ec38510d-e4fd-41a1-a6ba-8b0bb4ce9ae9
      hostname: web1.example.com
      version: 23.2.20-200
      status: active
      online: true
      health: healthy
summary:
  description: Counts of the selected VENs by version, status and health, as M(microseg.illumio.ven_info) gives them.
  returned: always
  type: dict
  sample: {total: 2, by_version: {23.2.20-200: 2}, by_status: {active: 2}, by_health: {healthy: 2}}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.vens import (
    VenReader,
    check_release,
    describe_errors,
    named,
    plan_upgrade,
    refused_hrefs,
    request_upgrade,
    select_vens,
    selector_argument_spec,
    summary,
    wait_for_release,
)


class UpgradeFailed(Exception):
    def __init__(self, message, result):
        super(UpgradeFailed, self).__init__(message)
        self.message = message
        self.result = result


def _name(doc):
    return doc.get("hostname") or doc.get("href")


def _selection_problems(selection):
    problems = []
    missing = selection.missing
    if missing["hostnames"]:
        problems.append("no VEN has host name %s" % ", ".join(missing["hostnames"]))
    if missing["hrefs"]:
        problems.append("no such VEN: %s" % ", ".join(missing["hrefs"]))
    if missing["workload_hrefs"]:
        problems.append("no such workload: %s" % ", ".join(missing["workload_hrefs"]))
    for hostname, hrefs in sorted(selection.ambiguous.items()):
        problems.append("%d VENs have host name %s (%s): name one by href" % (len(hrefs), hostname, ", ".join(hrefs)))
    return problems


def upgrade_vens(client, params, check_mode=False):
    """Plan, request and (optionally) wait for the upgrade; returns the result or raises UpgradeFailed/PceError."""
    release = check_release(params["release"])
    if params["timeout"] < 0 or params["poll_interval"] <= 0:
        raise PceError("timeout must be 0 or more and poll_interval more than 0 seconds")
    if not named(params) and not params.get("labels"):
        raise PceError("labels is empty: name at least one label, or the VENs with hostnames, hrefs or workload_hrefs")
    reader = VenReader(client)
    selection = select_vens(reader, params)
    problems = _selection_problems(selection)
    if problems:
        raise PceError("nothing was upgraded: %s" % "; ".join(problems))
    plan = plan_upgrade(client, selection.vens, release, force=params["force"])
    views = [reader.view(doc) for doc in selection.vens]
    result = {
        "changed": False,
        "release": release,
        "upgraded": [],
        "already_at_release": [_name(doc) for doc in plan.current],
        "already_pending": [_name(doc) for doc in plan.pending],
        "refused": plan.refused,
        "vens": views,
        "summary": summary(views),
        "diff": {"before": {}, "after": {}},
    }
    if plan.refused:
        lines = ["%s: %s" % (entry["hostname"] or entry["href"], entry["reason"]) for entry in plan.refused]
        raise UpgradeFailed(
            "nothing was upgraded: %d selected VEN(s) cannot be upgraded to %s: %s"
            % (len(plan.refused), release, "; ".join(lines)),
            result,
        )
    by_href = dict((doc["href"], doc) for doc in selection.vens)
    errors = request_upgrade(client, plan.upgrade, release, dry_run=check_mode)
    refused = refused_hrefs(errors)
    done = [doc for doc in plan.upgrade if doc["href"] not in refused]
    result["upgraded"] = [
        {"hostname": doc.get("hostname"), "href": doc["href"], "version_before": doc.get("version")} for doc in done
    ]
    result["changed"] = bool(done)
    for doc in done:
        result["diff"]["before"][_name(doc)] = doc.get("version")
        result["diff"]["after"][_name(doc)] = release
    if errors:
        result["pce_errors"] = errors
        raise UpgradeFailed(
            "the PCE refused to upgrade %d of %d VEN(s) to %s%s: %s"
            % (
                len(plan.upgrade) - len(done),
                len(plan.upgrade),
                release,
                " (check mode: nothing was sent but a dry run)" if check_mode else "",
                "; ".join(describe_errors(errors, by_href)),
            ),
            result,
        )
    if params["wait"] and not check_mode and selection.vens:
        hrefs = [doc["href"] for doc in selection.vens]
        try:
            latest = wait_for_release(reader, hrefs, release, params["timeout"], params["poll_interval"])
        except PceError as error:
            latest = getattr(error, "latest", None)
            if latest is None:
                raise
            _show_latest(reader, result, selection.vens, latest)
            result["laggards"] = [_name(latest[href] or by_href[href]) for href in error.laggards]
            raise UpgradeFailed(str(error), result) from None
        _show_latest(reader, result, selection.vens, latest)
    return result


def _show_latest(reader, result, vens, latest):
    views = [reader.view(latest.get(doc["href"]) or doc) for doc in vens]
    result["vens"] = views
    result["summary"] = summary(views)


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(selector_argument_spec())
    argument_spec.update(
        release=dict(type="str", required=True, aliases=["ven_version"]),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        timeout=dict(type="int", default=1800),
        poll_interval=dict(type="float", default=15),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=[["hostnames", "hrefs", "workload_hrefs", "labels"]],
        supports_check_mode=True,
    )
    client = client_from_module(module)
    try:
        result = upgrade_vens(client, module.params, check_mode=module.check_mode)
    except UpgradeFailed as failure:
        module.fail_json(msg=failure.message, **failure.result)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
