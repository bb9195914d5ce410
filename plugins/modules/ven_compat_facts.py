#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_compat_facts
short_description: Check a Linux host's compatibility with the Illumio VEN before installing it
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host and looks, without changing anything, at what the VEN's own compatibility report
    (shown by the PCE for idle workloads) looks at, plus the installation prerequisites of the VEN installation
    guide. Each check gets a level - V(green) (no incompatibility found), V(yellow) (a potential
    incompatibility, or the check could not look) or V(red) (a major incompatibility) - and a message.
  - B(ip_forwarding) - C(net.ipv4.ip_forward) is on and there are rules in the forward path (the iptables
    C(FORWARD) chain, or nftables chains on the C(forward) hook). V(yellow), as in the VEN's report - the VEN
    replaces the host's rules when it leaves the idle state. Forwarding on without forward rules is V(green).
  - B(iptables_rules), B(ip6tables_rules) - at least one rule in the filter table (C(iptables-save),
    C(ip6tables-save)). V(yellow), as in the VEN's report - back those rules up, the VEN removes them.
  - B(ipv6_global) - an IPv6 address of global scope (including unique local addresses) in
    C(/proc/net/if_inet6). V(yellow), as in the VEN's report. Link-local addresses do not count.
  - B(ipsec_ports) - a socket bound to UDP port 500 or 4500 (C(/proc/net/udp), C(/proc/net/udp6)), named
    with its process where the module may see it. V(red), as in the VEN's report - do not enable
    SecureConnect for the workload. Sockets of programs under O(install_dir) (the VEN's own) do not count.
  - B(routing_table) - policy rules or routes that already use the routing table SecureConnect's IKE daemon
    (strongSwan) installs its routes in, or the rule priority it uses, both O(ipsec_routing_table)
    (C(ip rule show), C(ip route show table N), IPv4 and IPv6). V(red), as in the VEN's report.
  - B(disk_space) - free space (for unprivileged users) on the filesystems of O(install_dir) and O(data_dir),
    measured at the nearest existing parent directory. V(red) below O(disk_min_mb) (500 MB, the guide's
    minimum), V(yellow) below O(disk_recommended_mb) (1.5 GB, the low end of the guide's recommendation).
    When the two directories are on different filesystems, each must have that much. Either directory being
    a symbolic link is V(red); the VEN cannot be installed in one.
  - B(required_commands) - commands of the VEN package's dependencies (O(required_commands)) missing from
    the host. V(yellow) - the package installs its dependencies from the OS repositories, which must be
    reachable then.
  - B(tracefs) - neither C(tracefs) nor C(debugfs) is mounted (C(/proc/mounts)). V(yellow) - the VEN then
    detects firewall tampering more slowly.
  - B(time_sync) - whether the clock is synchronised, asked from C(timedatectl), C(chronyc), C(ntpstat) or
    C(ntpq), the first that answers. V(red) when it says not synchronised (the guide says NTP must be
    installed and working), V(yellow) when none answers.
  - B(pce_reachable) - a TCP connection and a TLS handshake to O(management_server) (and
    O(pce_extra_ports)) that verifies the certificate's chain of trust (against O(ca_file), else the host's
    trust store) and its name. V(red) when the connection is refused or times out, the name does not resolve,
    or the certificate does not verify; V(yellow) when TLS older than 1.2 is negotiated or the certificate
    expires within O(cert_expiry_warn_days). Not run (listed in RV(ansible_facts.ven_compat.skipped)) without
    O(management_server). Connects directly, never through a proxy.
  - A check that cannot look (a command missing or failing, for example C(iptables-save) when not root) is
    V(yellow) and says why. Run it with C(become) to see everything.
  - Python 3.6 or later, standard library only.
options:
  checks:
    description:
      - The checks to run; V(all) runs every check.
    type: list
    elements: str
    choices: [all, ip_forwarding, iptables_rules, ip6tables_rules, ipv6_global, ipsec_ports, routing_table,
              disk_space, required_commands, tracefs, time_sync, pce_reachable]
    default: [all]
  skip_checks:
    description:
      - Checks not to run, taken away from O(checks).
    type: list
    elements: str
    choices: [ip_forwarding, iptables_rules, ip6tables_rules, ipv6_global, ipsec_ports, routing_table,
              disk_space, required_commands, tracefs, time_sync, pce_reachable]
    default: []
  management_server:
    description:
      - The PCE the VEN will pair with, as the VEN's C(--management-server) takes it - C(host:port)
        (C([address]:port) for IPv6). Without a port, 443.
      - Without it, the check C(pce_reachable) is skipped.
    type: str
  pce_extra_ports:
    description:
      - More ports of the same PCE host to check, for example V([8444]) for the event service of an
        on-premises PCE whose front end listens on 8443.
    type: list
    elements: int
    default: []
  ca_file:
    description:
      - Path on the managed host of a PEM file with the CA certificates the PCE's certificate must chain to.
        Without it (and without O(ca_content)), the host's default trust store.
    type: path
  ca_content:
    description:
      - The CA certificates the PCE's certificate must chain to, as PEM text, for a CA file that is on the
        controller and not on the host (C(lookup('file', ...))). Nothing is written to the host.
    type: str
  timeout:
    description:
      - Seconds to wait for each connection and TLS handshake to the PCE.
    type: int
    default: 10
  cert_expiry_warn_days:
    description:
      - C(pce_reachable) is V(yellow) when the PCE's certificate expires within this many days; V(0) turns
        the warning off.
    type: int
    default: 30
  install_dir:
    description:
      - Where the VEN will be installed (the package's default, or C(--prefix)).
    type: path
    default: /opt/illumio_ven
  data_dir:
    description:
      - Where the VEN will keep its data and logs (the package's default, or C(VEN_DATA_DIR)).
    type: path
    default: /opt/illumio_ven_data
  disk_min_mb:
    description:
      - Free megabytes below which C(disk_space) is V(red).
    type: int
    default: 500
  disk_recommended_mb:
    description:
      - Free megabytes below which C(disk_space) is V(yellow).
    type: int
    default: 1536
  required_commands:
    description:
      - Commands that should be on the host. C(a|b) is satisfied by either one.
      - The default covers the VEN's Linux package dependencies the guide lists - curl, ipset, iptables and
        ip6tables, uuidgen (uuid-runtime) and a DNS client (dnsutils / bind-utils).
    type: list
    elements: str
    default: [curl, ipset, iptables, ip6tables, uuidgen, "dig|host|nslookup"]
  ipsec_routing_table:
    description:
      - The routing table number, and rule priority, that SecureConnect's IKE daemon uses; strongSwan's
        default is 220.
    type: int
    default: 220
  warn_level:
    description:
      - Also emit an Ansible warning for each check at this level or worse (V(none) for no warnings).
    type: str
    choices: [none, yellow, red]
    default: none
notes:
  - Never changes the host; C(changed) is always V(false).
  - Some checks read per-network-namespace state (C(/proc/net), C(/proc/sys/net), the firewall); they see the
    namespace the module runs in.
  - The VEN's own report (PCE web console, Compatibility Report tab, idle workloads only) remains the authority
    once the VEN is installed; this module is for before.
attributes:
  check_mode:
    description: Runs every check in check mode too; it only reads.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  facts:
    description: Sets C(ven_compat).
    support: full
seealso:
  - module: microseg.illumio.firewall_apply
    description: Agentless enforcement with the host's own firewall, for hosts that will not get a VEN.
"""

EXAMPLES = r"""
- name: Check the hosts before installing the VEN
  hosts: linux
  become: true
  tasks:
    - name: Gather the VEN compatibility facts
      microseg.illumio.ven_compat_facts:
        management_server: pce.example.com:8443
        pce_extra_ports: [8444]
        ca_file: /etc/pki/tls/certs/pce-ca.pem

    - name: Stop on major incompatibilities
      ansible.builtin.assert:
        that: ansible_facts.ven_compat.overall != 'red'
        fail_msg: "red checks: {{ ansible_facts.ven_compat.checks | dict2items | selectattr('value.level', 'eq', 'red')
          | map(attribute='key') | join(', ') }}"

- name: Only the firewall checks, warnings for anything yellow or red
  hosts: linux
  become: true
  tasks:
    - name: Look at the host firewall and forwarding
      microseg.illumio.ven_compat_facts:
        checks: [ip_forwarding, iptables_rules, ip6tables_rules]
        warn_level: yellow
      register: compat

    - name: Show what was found
      ansible.builtin.debug:
        msg: "{{ compat.summary }}"
"""

RETURN = r"""
ansible_facts:
  description: The facts set.
  returned: always
  type: dict
  contains:
    ven_compat:
      description: The results of the checks.
      type: dict
      contains:
        overall:
          description: The worst level of the checks run; V(green) when none ran.
          type: str
          sample: yellow
        checks:
          description: Each check run, by name.
          type: dict
          contains:
            level:
              description: V(green), V(yellow) or V(red).
              type: str
            message:
              description: What was found, for a person.
              type: str
            details:
              description: What the check measured; its keys depend on the check.
              type: dict
          sample:
            ipsec_ports:
              level: red
              message: UDP 500/4500 in use by other services (udp 500 on 0.0.0.0 by charon (pid 812)); do not
                enable SecureConnect for this workload
              details:
                sockets: ["udp 500 on 0.0.0.0 by charon (pid 812)"]
            tracefs:
              level: green
              message: tracefs on /sys/kernel/tracing
              details:
                mounts: [tracefs on /sys/kernel/tracing]
        skipped:
          description: Checks asked for but not run, with the reason.
          type: dict
          sample:
            pce_reachable: no management_server given
overall:
  description: Same as RV(ansible_facts.ven_compat.overall).
  returned: always
  type: str
  sample: red
red:
  description: Names of the checks at V(red).
  returned: always
  type: list
  elements: str
  sample: [ipsec_ports]
yellow:
  description: Names of the checks at V(yellow).
  returned: always
  type: list
  elements: str
  sample: [iptables_rules, ipv6_global]
summary:
  description: "One line per check, worst first - C(name: level - message) - then the skipped ones."
  returned: always
  type: list
  elements: str
  sample:
    - "ipsec_ports: red - UDP 500/4500 in use by other services (udp 500 on 0.0.0.0 by charon (pid 812)); do not
      enable SecureConnect for this workload"
    - "tracefs: green - tracefs on /sys/kernel/tracing"
    - "pce_reachable: skipped - no management_server given"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.ven.compat import (
    CHECK_NAMES,
    DEFAULT_REQUIRED_COMMANDS,
    LEVELS,
    Probe,
    run_checks,
    selected_checks,
    summary_lines,
)


def argument_spec():
    return dict(
        checks=dict(type="list", elements="str", choices=["all", *CHECK_NAMES], default=["all"]),
        skip_checks=dict(type="list", elements="str", choices=list(CHECK_NAMES), default=[]),
        management_server=dict(type="str"),
        pce_extra_ports=dict(type="list", elements="int", default=[]),
        ca_file=dict(type="path"),
        ca_content=dict(type="str"),
        timeout=dict(type="int", default=10),
        cert_expiry_warn_days=dict(type="int", default=30),
        install_dir=dict(type="path", default="/opt/illumio_ven"),
        data_dir=dict(type="path", default="/opt/illumio_ven_data"),
        disk_min_mb=dict(type="int", default=500),
        disk_recommended_mb=dict(type="int", default=1536),
        required_commands=dict(type="list", elements="str", default=list(DEFAULT_REQUIRED_COMMANDS)),
        ipsec_routing_table=dict(type="int", default=220),
        warn_level=dict(type="str", choices=["none", "yellow", "red"], default="none"),
    )


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(), mutually_exclusive=[("ca_file", "ca_content")], supports_check_mode=True
    )
    params = module.params
    if params["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds")
    probe = Probe(
        run_command=lambda argv: module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C"}),
        which=module.get_bin_path,
    )
    names = selected_checks(params["checks"], params["skip_checks"])
    report = run_checks(probe, names, params)
    if params["warn_level"] != "none":
        floor = LEVELS.index(params["warn_level"])
        for name, result in report["checks"].items():
            if LEVELS.index(result["level"]) >= floor:
                module.warn("VEN compatibility {} ({}): {}".format(name, result["level"], result["message"]))
    facts = {key: report[key] for key in ("overall", "checks", "skipped")}
    module.exit_json(
        changed=False,
        ansible_facts={"ven_compat": facts},
        overall=report["overall"],
        red=report["red"],
        yellow=report["yellow"],
        summary=summary_lines(report),
    )


if __name__ == "__main__":
    main()
