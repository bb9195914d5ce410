#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_repo_facts
short_description: Tell whether the package index knows the VEN package, and whether it must be refreshed
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host (apt or dnf). Reads, without changing anything, which versions of the VEN
    package the package manager's index holds (C(apt-cache madison), C(dnf --cacheonly list --showduplicates)),
    when the index was last refreshed and when a package source last changed.
  - Says the index must be refreshed when the wanted version (or, with no O(version), any version) is not in
    it, when a source list changed after the last refresh (a repository you added a minute ago), or when the
    index is older than O(cache_valid_time). An index that is merely young is not enough, so a repository added
    within the hour is found.
  - Role C(microseg.illumio.ven) uses it for C(ven_install_method=repo) and refreshes the index only then, so a
    re-run with nothing to install never refreshes it.
options:
  name:
    description: The package name in the repository.
    type: str
    default: illumio-ven
  version:
    description:
      - The version to install, as the package manager writes it (V(23.2.10-100)). Empty for any version.
    type: str
    default: ""
  cache_valid_time:
    description: Seconds the index stays fresh when the package is in it and no source changed since.
    type: int
    default: 3600
attributes:
  check_mode:
    description: Reads only; runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no difference to show.
    support: none
  facts:
    description: Sets C(ansible_facts.ven_repo).
    support: full
seealso:
  - module: microseg.illumio.ven_package
    description: Install the VEN from a package file instead of a repository.
"""

EXAMPLES = r"""
- name: Install the VEN from the repository added a minute ago
  hosts: linux
  become: true
  tasks:
    - name: Ask the package manager what it knows of the VEN
      microseg.illumio.ven_repo_facts:
        version: 23.2.20-200

    - name: Install, refreshing the index only when it must be
      ansible.builtin.apt:
        name: illumio-ven=23.2.20-200
        update_cache: "{{ ansible_facts.ven_repo.refresh }}"
      when: ansible_facts.ven_repo.manager == 'apt'
"""

RETURN = r"""
ansible_facts:
  description: What the package manager knows.
  returned: always
  type: dict
  contains:
    ven_repo:
      description: The package index as seen for O(name).
      type: dict
      returned: always
      contains:
        manager:
          description: V(apt) or V(dnf).
          type: str
          sample: apt
        versions:
          description: Versions of O(name) the index holds (installed-only versions are not listed).
          type: list
          elements: str
          sample: [23.2.20-200, 23.2.10-100]
        index_age:
          description: Seconds since the index was last refreshed; V(null) when it holds no package lists.
          type: int
          sample: 120
        refresh:
          description: Whether the index must be refreshed before installing.
          type: bool
          sample: true
        refresh_reason:
          description: Why it must be refreshed; V(null) when it need not.
          type: str
          sample: a package source changed after the index was refreshed
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.ven import package_index

# Machine-readable output whatever the host's language.
C_LOCALE = {"LC_ALL": "C", "LANG": "C"}


def read_versions(module, manager, name):
    if manager == "apt":
        command = [module.get_bin_path("apt-cache", required=True), "madison", name]
        parse = package_index.parse_apt_madison
    else:
        command = [module.get_bin_path("dnf", required=True), "--cacheonly", "-q", "list", "--showduplicates", name]
        parse = package_index.parse_dnf_list
    rc, out, err = module.run_command(command, environ_update=C_LOCALE)
    # dnf exits 1 for "no matching packages"; anything else it printed on stderr is a real failure.
    if rc != 0 and not (manager == "dnf" and rc == 1 and not out.strip()):
        module.fail_json(msg="%s failed (%d): %s" % (" ".join(command), rc, (err or out).strip()))
    return parse(out, name)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", default="illumio-ven"),
            version=dict(type="str", default=""),
            cache_valid_time=dict(type="int", default=3600),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if module.get_bin_path("apt-cache"):
        manager, index_time = "apt", package_index.apt_index_time()
    elif module.get_bin_path("dnf"):
        manager, index_time = "dnf", package_index.dnf_index_time()
    else:
        module.fail_json(msg="neither apt nor dnf is on this host; install the VEN with a package file instead")
    versions = read_versions(module, manager, params["name"])
    now = time.time()
    reason = package_index.refresh_reason(
        versions,
        (params["version"] or "").strip(),
        index_time,
        package_index.sources_time(manager),
        now,
        params["cache_valid_time"],
    )
    facts = {
        "manager": manager,
        "versions": versions,
        "index_age": int(now - index_time) if index_time else None,
        "refresh": reason is not None,
        "refresh_reason": reason,
    }
    module.exit_json(changed=False, ansible_facts={"ven_repo": facts})


if __name__ == "__main__":
    main()
