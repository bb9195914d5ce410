#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: policy_compile
short_description: Compile the PCE's active policy into nftables or iptables rules for hosts
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Reads the active policy of the Illumio PCE once (labels, label groups, IP lists, services, rule sets with their
    rules and deny rules, enforcement boundaries, workloads) and compiles, for every host in O(hosts), the
    inbound and outbound rules the PCE's policy gives its workload.
  - Renders them for nftables (one C(nft -f) script that atomically replaces the table C(inet illumio) and
    nothing else) or for iptables (C(ipset restore) input plus C(iptables-restore --noflush) and
    C(ip6tables-restore --noflush) inputs that touch only C(ILO-*) chains and sets).
  - Peers are kept in named interval sets shared by the rules that use them; each rule carries the hrefs of the
    PCE rules it comes from as a comment. The same input always gives byte-identical output.
  - The enforcement mode of each workload decides what is enforced. V(idle) renders no policy (the nftables
    script only removes the table; the iptables chains stay empty and unhooked). V(visibility_only) blocks nothing
    and counts what would be blocked. V(selective) enforces deny rules on inbound traffic only. V(full) drops
    everything in both directions that no rule allows. Override deny rules win over allow rules, which win
    over deny rules.
  - Always allowed, before any rule and in every mode but V(idle), as the VEN does it, are the
    O(management_allow) addresses, loopback, interfaces the workload ignores, established and related
    connections, ICMPv6 neighbour discovery and MLD, DHCP and DHCPv6.
  - Run it once on the controller (C(run_once), C(delegate_to) V(localhost)); the C(microseg.illumio.firewall)
    role applies each host's part on that host.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  hosts:
    description:
      - The hosts to compile, as a list of workload hrefs, hostnames or workload names (each is also the key of
        its result and the name of its files), or as a dictionary that maps result names to workload hrefs,
        hostnames or names, for example inventory host names mapped to their C(illumio_href) host variable.
      - A host is looked up by workload href, then by exact hostname, then by workload name, then by the first
        label of the hostname when that is unique. Hosts that match no workload are listed in
        RV(missing_hosts) with a warning.
    type: raw
    required: true
  backend:
    description:
      - The host firewall to render for.
    type: str
    choices: [nftables, iptables]
    default: nftables
  dest:
    description:
      - Folder to write the rendered text to, one file per host and part, created when missing
        (C(<host>.nft), or C(<host>.ipset), C(<host>.iptables) and C(<host>.ip6tables)).
      - Files are replaced only when their content changes, atomically; other files are left alone.
      - Without it the text is returned in RV(policies); with many hosts and big peer sets that result gets large,
        so prefer O(dest) then.
    type: path
  management_allow:
    description:
      - Addresses and networks (V(192.0.2.10), V(2001:db8::/64), V(10.0.0.1-10.0.0.9)) that every host accepts
        traffic from and sends traffic to before any rule, so that Ansible and the PCE never lose their way in.
      - Give at least the address the controller connects from and the PCE's address.
      - Rendered as the sets C(mgmt_allow_v4) and C(mgmt_allow_v6) (iptables C(ILO-mgmt_allow_v4) and
        C(ILO-mgmt_allow_v6)), which are always there, empty when this is empty.
    type: list
    elements: str
    default: []
  snapshot_file:
    description:
      - A JSON file with the PCE's collections to compile from instead of reading the PCE, as a JSON object with
        the keys C(labels), C(label_groups), C(ip_lists), C(services), C(rule_sets) (with their C(rules) and
        C(deny_rules)), C(enforcement_boundaries) and C(workloads), each a list of objects exactly as the PCE
        answers them.
      - The connection options are not needed then.
    type: path
  enforcement_mode_override:
    description:
      - An enforcement mode (V(idle), V(visibility_only), V(selective), V(full)) to use for every host instead of
        its workload's, or a dictionary of host (as named in O(hosts)) to mode for some of them.
    type: raw
  resolve_fqdns:
    description:
      - Resolve the FQDNs of IP lists with the controller's resolver at compile time and include their addresses.
      - When false, FQDNs are left out with a warning, because a packet filter can't match names.
    type: bool
    default: false
  log_blocked:
    description:
      - Log what is dropped, and what would be dropped in modes that only observe, with the prefixes
        C(ILO-DROP) and C(ILO-WOULD-DROP) (kernel log, not rate limited).
    type: bool
    default: false
  record_flows:
    description:
      - Have each host's nftables table record the flows the policy accepts and drops (new TCP and UDP connections,
        per source, destination, protocol and destination port, with counts) in bounded dynamic sets, for
        M(microseg.illumio.flow_collect) with source V(nft_sets) to read. See the module C(flow_collect).
      - nftables only; hosts compiled for V(iptables) are warned and collect with the V(conntrack) source instead.
    type: bool
    default: false
  flow_set_size:
    description:
      - With O(record_flows), the most tuples each flow set holds between two collections; further new tuples are
        not recorded (M(microseg.illumio.flow_collect) warns when a set was full).
    type: int
    default: 65536
  flow_set_timeout:
    description:
      - With O(record_flows), seconds after which a tuple that saw no new connection leaves its set uncollected.
        Make it longer than the time between two collections.
    type: int
    default: 86400
  return_ir:
    description:
      - Also return each host's compiled policy in its intermediate form (RV(policies.ir)), for debugging and tests.
    type: bool
    default: false
attributes:
  check_mode:
    description: Compiles and reports which files would change, without writing any.
    support: full
  diff_mode:
    description: With O(dest), returns the difference of each file that changes.
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - Workload addresses are the addresses of their interfaces, except loopback addresses and the interfaces listed
    in the workload's C(ignored_interface_names); IPv4 and IPv6.
  - Label and label-group actors of one side of a rule combine as on the PCE, OR within one label key and AND
    across keys; providers are always limited to the rule set's scope, consumers too unless the rule is
    extra-scope (C(unscoped_consumers)). Workload and IP-list actors are never scoped.
  - Virtual services, user groups, SecureConnect and machine authentication can't be done by a packet filter; rules
    that use them are rendered without them, with a warning.
  - The interface between this module and the firewall role is described in
    C(plugins/module_utils/policy/README.md).
"""

EXAMPLES = r"""
# In a play on the hosts to enforce: compile every host's rules once, on the controller.
- name: Compile the PCE's policy for the hosts of this play
  microseg.illumio.policy_compile:
    hosts: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'illumio_href'))) }}"
    backend: nftables
    dest: "{{ playbook_dir }}/compiled"
    management_allow:
      - "{{ ansible_env.SSH_CLIENT.split() | first }}"
      - 192.0.2.10
  delegate_to: localhost
  run_once: true
  register: compiled

- name: Return the text instead of writing files, everything in visibility only
  microseg.illumio.policy_compile:
    hosts: [web1.example.com, db1.example.com]
    backend: iptables
    enforcement_mode_override: visibility_only
    management_allow: [192.0.2.0/28]
  delegate_to: localhost
  register: compiled

- name: Compile offline from a saved snapshot of the PCE's collections
  microseg.illumio.policy_compile:
    snapshot_file: files/pce-snapshot.json
    hosts: [web1.example.com]
    enforcement_mode_override:
      web1.example.com: full
  delegate_to: localhost
"""

RETURN = r"""
policies:
  description: The result of each host compiled, keyed by the name it was given in O(hosts).
  returned: always
  type: dict
  contains:
    workload:
      description: Href of the host's workload.
      type: str
      sample: /orgs/1/workloads/ef7f0f53-2295-4416-aaaf-965146934c53
    hostname:
      description: Hostname of the workload.
      type: str
      sample: web1.example.com
    enforcement_mode:
      description: The enforcement mode the policy was compiled for (the workload's, or the override).
      type: str
      sample: full
    nft:
      description: The C(nft -f) script (backend V(nftables), without O(dest)).
      type: str
      returned: when O(backend=nftables) and no O(dest)
    ipset:
      description:
        - The C(ipset restore) input; load it before the iptables inputs (backend V(iptables), without O(dest)).
      type: str
      returned: when O(backend=iptables) and no O(dest)
    iptables:
      description: The C(iptables-restore --noflush) input (backend V(iptables), without O(dest)).
      type: str
      returned: when O(backend=iptables) and no O(dest)
    ip6tables:
      description: The C(ip6tables-restore --noflush) input (backend V(iptables), without O(dest)).
      type: str
      returned: when O(backend=iptables) and no O(dest)
    files:
      description: Paths of the files written (or that would be), by part (C(nft), C(ipset), C(iptables), C(ip6tables)).
      type: dict
      returned: when O(dest) is set
      sample: {"nft": /srv/compiled/web1.example.com.nft}
    changed:
      description: Whether any of the host's files changed (or would).
      type: bool
      returned: when O(dest) is set
    summary:
      description: Counts of the host's compiled policy.
      type: dict
      sample:
        enforcement_mode: full
        rules: 12
        inbound_rules: 7
        outbound_rules: 5
        override_deny_rules: 0
        allow_rules: 11
        deny_rules: 1
        pce_rules: 14
        sets: 6
        elements: 25012
        management_elements: 2
        warnings: 1
    warnings:
      description: Problems found in the policy that applies to this host (unknown references, FQDNs left out...).
      type: list
      elements: str
    ir:
      description: The compiled policy in its intermediate form (see C(plugins/module_utils/policy/ir.py)).
      type: dict
      returned: when O(return_ir=true)
missing_hosts:
  description: Entries of O(hosts) that match no workload on the PCE.
  returned: always
  type: list
  elements: str
summary:
  description: Totals over all hosts and what the snapshot held.
  returned: always
  type: dict
  sample:
    hosts: 2
    backend: nftables
    rules: 20
    sets: 9
    elements: 25050
    warnings: 1
    files_changed: 1
    snapshot: {labels: 12, label_groups: 2, ip_lists: 3, services: 4, rule_sets: 3, enforcement_boundaries: 0,
               workloads: 25000}
    compile_seconds: 0.41
msg:
  description: A one-line human summary.
  returned: always
  type: str
  sample: "compiled 2 host(s) for nftables: 20 rules, 9 sets, 25050 set elements, 1 warning(s); 1 file(s) changed"
"""

import os
import re
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.policy.compiler import Compiler
from ansible_collections.microseg.illumio.plugins.module_utils.policy.ir import MODES, summary
from ansible_collections.microseg.illumio.plugins.module_utils.policy.render import PARTS, render
from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import PolicyError, Snapshot

MAX_WARNINGS = 50
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


def host_names(hosts):
    """[(result name, workload href / hostname / name)] of the hosts option."""
    if isinstance(hosts, dict):
        pairs = sorted((str(name), value) for name, value in hosts.items())
    elif isinstance(hosts, (list, tuple)):
        pairs = [(str(value), value) for value in hosts]
    elif isinstance(hosts, str):
        pairs = [(part.strip(), part.strip()) for part in hosts.split(",") if part.strip()]
    else:
        raise PolicyError("hosts must be a list of hrefs / hostnames, or a dictionary of name: href or hostname")
    for name, value in pairs:
        if not isinstance(value, str) or not value.strip():
            raise PolicyError("host %r: expected a workload href, hostname or name, got %r" % (name, value))
    seen = set()
    for name, _value in pairs:
        if name in seen:
            raise PolicyError("host %r is listed twice" % name)
        seen.add(name)
    return [(name, value.strip()) for name, value in pairs]


def mode_overrides(value, names):
    """{result name: mode} from enforcement_mode_override."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        _check_mode(value, "enforcement_mode_override")
        return dict((name, value) for name in names)
    if not isinstance(value, dict):
        raise PolicyError("enforcement_mode_override must be a mode or a dictionary of host: mode")
    unknown = sorted(str(name) for name in value if str(name) not in names)
    if unknown:
        raise PolicyError("enforcement_mode_override names hosts that are not in hosts: %s" % ", ".join(unknown))
    overrides = {}
    for name, mode in value.items():
        _check_mode(mode, "enforcement_mode_override[%s]" % name)
        overrides[str(name)] = mode
    return overrides


def _check_mode(mode, what):
    if mode not in MODES:
        raise PolicyError("%s: %r is not an enforcement mode (%s)" % (what, mode, ", ".join(MODES)))


def file_stem(name, workload):
    """A safe file name for a host: its result name, or for an href the workload's hostname (else its id)."""
    stem = name
    if stem.startswith("/"):
        stem = workload.hostname or stem.rstrip("/").rsplit("/", 1)[-1]
    stem = _UNSAFE_FILE_CHARS.sub("_", stem).lstrip(".")
    return stem or "host"


def load_snapshot(module):
    if module.params["snapshot_file"]:
        return Snapshot.from_file(module.params["snapshot_file"])
    client = client_from_module(module)
    try:
        return Snapshot.from_client(client)
    finally:
        client.close()


def write_file(module, path, text):
    """(changed, diff) of making `path` hold `text`; nothing is written in check mode."""
    before = None
    if os.path.exists(path):
        try:
            with open(path, "rb") as handle:
                before = handle.read().decode("utf-8", "replace")
        except OSError as error:
            raise PolicyError("cannot read %s: %s" % (path, error)) from None
    if before == text:
        return False, None
    diff = {"before": before or "", "after": text, "before_header": path, "after_header": path}
    if not module.check_mode:
        folder = os.path.dirname(path)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".policy_compile.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(text.encode("utf-8"))
            module.atomic_move(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    return True, diff


def run(module):
    params = module.params
    pairs = host_names(params["hosts"])
    overrides = mode_overrides(params["enforcement_mode_override"], set(name for name, _value in pairs))
    started = time.time()
    snapshot = load_snapshot(module)
    compiler = Compiler(
        snapshot,
        management_allow=params["management_allow"],
        resolve_fqdns=params["resolve_fqdns"],
        log_blocked=params["log_blocked"],
        record_flows={"size": params["flow_set_size"], "timeout": params["flow_set_timeout"]}
        if params["record_flows"]
        else None,
    )
    backend, dest = params["backend"], params["dest"]
    if dest and not module.check_mode and not os.path.isdir(dest):
        try:
            os.makedirs(dest)
        except OSError as error:
            raise PolicyError("cannot create dest folder %s: %s" % (dest, error)) from None
    policies, missing, diffs, warnings, stems = {}, [], [], set(compiler.warnings), {}
    if params["record_flows"] and backend == "iptables":
        warnings.add("record_flows is for nftables only: collect the flows of iptables hosts with the conntrack source")
    totals = {"rules": 0, "sets": 0, "elements": 0, "files_changed": 0}
    for name, identifier in pairs:
        workload = compiler.find(identifier)
        if workload is None:
            missing.append(name)
            warnings.add("host %s: no workload on the PCE has the href, hostname or name %r" % (name, identifier))
            continue
        ir = compiler.compile_workload(workload, overrides.get(name))
        texts = render(ir, backend)
        counts = summary(ir)
        result = {
            "workload": workload.href,
            "hostname": workload.hostname,
            "enforcement_mode": ir["enforcement_mode"],
            "summary": counts,
            "warnings": ir["warnings"],
        }
        warnings.update(ir["warnings"])
        for key in ("rules", "sets", "elements"):
            totals[key] += counts[key]
        if dest:
            stem = file_stem(name, workload)
            if stem in stems:
                raise PolicyError("hosts %s and %s would write the same files (%s.*)" % (stems[stem], name, stem))
            stems[stem] = name
            result["files"], result["changed"] = {}, False
            for part in PARTS[backend]:
                path = os.path.join(dest, "%s.%s" % (stem, part))
                result["files"][part] = path
                changed, diff = write_file(module, path, texts[part])
                if changed:
                    result["changed"] = True
                    totals["files_changed"] += 1
                    diffs.append(diff)
        else:
            result.update(texts)
        if params["return_ir"]:
            result["ir"] = ir
        policies[name] = result
    totals.update(
        hosts=len(policies),
        backend=backend,
        warnings=len(warnings),
        snapshot=snapshot.counts(),
        compile_seconds=round(time.time() - started, 3),
    )
    message = "compiled %d host(s) for %s: %d rules, %d sets, %d set elements, %d warning(s)" % (
        totals["hosts"],
        backend,
        totals["rules"],
        totals["sets"],
        totals["elements"],
        totals["warnings"],
    )
    if dest:
        message += "; %d file(s) changed" % totals["files_changed"]
    if missing:
        message += "; no workload for: %s" % ", ".join(missing)
    result = {
        "changed": totals["files_changed"] > 0,
        "policies": policies,
        "missing_hosts": missing,
        "summary": totals,
        "msg": message,
    }
    if module._diff and diffs:
        result["diff"] = diffs
    return result, sorted(warnings)


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        hosts=dict(type="raw", required=True),
        backend=dict(type="str", choices=["nftables", "iptables"], default="nftables"),
        dest=dict(type="path"),
        management_allow=dict(type="list", elements="str", default=[]),
        snapshot_file=dict(type="path"),
        enforcement_mode_override=dict(type="raw"),
        resolve_fqdns=dict(type="bool", default=False),
        log_blocked=dict(type="bool", default=False),
        record_flows=dict(type="bool", default=False),
        flow_set_size=dict(type="int", default=65536),
        flow_set_timeout=dict(type="int", default=86400),
        return_ir=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result, warnings = run(module)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        for text in warnings[:MAX_WARNINGS]:
            module.warn(text)
        if len(warnings) > MAX_WARNINGS:
            module.warn("... and %d more warning(s): see policies.<host>.warnings" % (len(warnings) - MAX_WARNINGS))
        module.exit_json(**result)


if __name__ == "__main__":
    main()
