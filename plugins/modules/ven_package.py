#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_package
short_description: Install or upgrade the Illumio VEN from a package file on the host
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host. Installs, upgrades or (when allowed) downgrades the VEN from a C(.deb) or C(.rpm)
    package file that is already on the host; copying or downloading it there is left to other tasks (the
    VEN roles of the collection do it).
  - B(Checks first.) Before anything else it checks the file's O(sha256), its detached OpenPGP O(signature)
    against O(keyring), and for an C(.rpm) with O(rpm_checksig) the signature against the keys imported into
    the host's rpm database (C(rpm -K)). A failed check leaves the host untouched.
  - B(Versions.) It reads the package's name (it must be C(illumio-ven)) and version (C(dpkg-deb -f),
    C(rpm -qp)), and the installed version (C(dpkg-query -W) or C(rpm -q), else C(illumio-ven-ctl version)
    under O(install_dir)). Versions compare number by number, so C(23.2.10-100) < C(23.2.20-200) <
    C(23.10.0-1). The same version changes nothing; a newer one is installed with C(dpkg -i) or C(rpm -Uvh);
    an older one is refused unless O(allow_downgrade=true).
  - B(Install variables.) O(environment) holds the documented install variables of the VEN Installation and
    Upgrade Guide ("Linux Installation with Environment Variables"), passed to the installer in its
    environment, never on its command line. Unknown names are refused.
  - B(Install record.) After a successful install or upgrade the module writes the collection's install
    record C(/var/lib/microseg-illumio/ven/install.json) (mode 0600) - the method, the version, the package file
    and the remembered install variables (C(VEN_DATA_DIR), C(VEN_NONPRIV_USER), C(VEN_NONPRIV_UID),
    C(VEN_NONPRIV_GID), C(VEN_DISABLE_MONITOR_RESTART), C(VEN_PROXY_SERVER), C(VEN_MANAGEMENT_SERVER)). The
    activation code is never written there.
  - B(Upgrades keep the first install's variables.) The guide requires an upgrade to pass the same
    C(VEN_DATA_DIR) and C(VEN_NONPRIV_USER) as the first install. With O(remember_environment=true), an
    upgrade or downgrade passes the recorded variables again, the ones in O(environment) taking precedence,
    and a C(VEN_DATA_DIR) or C(VEN_NONPRIV_USER) different from the recorded one (an unrecorded one counts as
    the default C(/opt/illumio_ven_data) or C(ilo-ven)) fails unless O(force=true). C(VEN_INSTALL_ACTION)
    and C(VEN_ACTIVATION_CODE) are only passed on a first install (an activated VEN stays activated through
    an upgrade, and C(prepare) would stop it); the module warns when it leaves them out.
  - Needs root, C(dpkg)/C(dpkg-deb)/C(dpkg-query) for a C(.deb) or C(rpm) for an C(.rpm), and C(gpg) for
    O(signature). Python 3.6 or later, standard library only.
options:
  path:
    description:
      - Path on the managed host of the VEN package, a file whose name ends in C(.deb) or C(.rpm).
    type: path
    required: true
  sha256:
    description:
      - The expected SHA-256 of the package file, 64 hexadecimal digits (a C(sha256:) prefix is allowed).
        Checked before anything else; a mismatch fails and changes nothing.
    type: str
  signature:
    description:
      - Path on the host of a detached OpenPGP signature of the package file, checked with C(gpg --verify)
        against O(keyring) alone (a throw-away gpg home directory; the host's own keyrings and trust database
        are not used).
      - A bad signature, a key missing from the keyring, an expired or revoked key fail before anything
        changes.
    type: path
  keyring:
    description:
      - Path on the host of the public key file to check O(signature) with - an exported key, binary or
        ASCII-armored (C(gpg --export [--armor])), or a gpg keyring file. Required with O(signature).
    type: path
  rpm_checksig:
    description:
      - For an C(.rpm), run C(rpm -K) first, which checks the package's digests and its embedded signature
        against the keys imported into the host's rpm database (C(rpm --import)). A package without a
        signature fails.
    type: bool
    default: false
  rpm_nodeps:
    description:
      - Pass C(--nodeps) to C(rpm -Uvh). Only for test hosts whose rpm database does not know the packages the
        VEN needs (an C(.rpm) tried on a Debian host).
    type: bool
    default: false
  environment:
    description:
      - Install variables for the installer, by name. Known names - C(VEN_ACTIVATION_CODE), C(VEN_DATA_DIR),
        C(VEN_DISABLE_MONITOR_RESTART) (V(true)/V(false)), C(VEN_INSTALL_ACTION) (V(activate) or
        V(prepare)), C(VEN_KERBEROS_WORKLOAD_SPN), C(VEN_KERBEROS_MANAGEMENT_SERVER_SPN),
        C(VEN_KERBEROS_LIBRARY_PATH), C(VEN_MANAGEMENT_SERVER) (C(HOST:PORT)), C(VEN_NONPRIV_UID),
        C(VEN_NONPRIV_GID), C(VEN_NONPRIV_USER), C(VEN_PROXY_SERVER) (C([http://]SERVER[:PORT])),
        C(ILLUMIO_RUNTIME_ENV). Any other name fails.
      - C(VEN_INSTALL_ACTION=activate) needs C(VEN_ACTIVATION_CODE) and C(VEN_MANAGEMENT_SERVER).
      - The value of C(VEN_ACTIVATION_CODE) is treated as a secret - masked in the task's output, scrubbed
        from the installer's output, never written to the install record or returned. It is still in the
        installer's environment while it runs, as the installation guide's install-time activation requires.
      - Null or empty values count as not set.
    type: dict
    default: {}
  remember_environment:
    description:
      - Use the install record - pass the recorded variables again on an upgrade or downgrade, and refuse a
        C(VEN_DATA_DIR) or C(VEN_NONPRIV_USER) different from the recorded one (see O(force)).
      - With V(false) the installer gets exactly O(environment). The record is written after an install
        either way.
      - A first install (no VEN installed) never uses the record.
    type: bool
    default: true
  force:
    description:
      - Install even when O(environment) sets C(VEN_DATA_DIR) or C(VEN_NONPRIV_USER) to another value than the
        first install did (the module warns). The guide warns that the VEN then does not upgrade into its
        custom directories.
    type: bool
    default: false
  allow_downgrade:
    description:
      - Install a package older than the installed VEN (C(dpkg -i), C(rpm -Uvh --oldpackage)). Refused by
        default.
    type: bool
    default: false
  install_dir:
    description:
      - The VEN's installation directory, where C(illumio-ven-ctl) tells the installed version when the
        package database does not know the VEN.
    type: path
    default: /opt/illumio_ven
notes:
  - The module talks to the host's package tools only; it needs no connection to the PCE.
  - The VEN Installation Guide documents package signatures for RPM packages; for other packages use
    O(sha256) or a detached O(signature).
  - When the installed version already is the package's version nothing runs, even when O(environment)
    differs from what the VEN was installed with (a changed C(VEN_DATA_DIR) or C(VEN_NONPRIV_USER) is warned
    about).
attributes:
  check_mode:
    description: Checks the checksum and the signatures, reads both versions and reports the action it would
      take (RV(action)), without running the installer or writing the record.
    support: full
  diff_mode:
    description: Shows the installed version before and after (as it would be in check mode).
    support: full
"""

EXAMPLES = r"""
- name: Install the VEN, remembering the data directory and the user for upgrades
  microseg.illumio.ven_package:
    path: /var/tmp/illumio-ven-23.2.10-100.deb12.amd64.deb
    sha256: "{{ ven_package_sha256 }}"
    environment:
      VEN_DATA_DIR: /srv/illumio_ven_data
      VEN_NONPRIV_USER: venuser
      VEN_DISABLE_MONITOR_RESTART: true

- name: Install and activate in one go (the code stays out of the record and the output)
  microseg.illumio.ven_package:
    path: /var/tmp/illumio-ven-23.2.10-100.c8.x86_64.rpm
    rpm_checksig: true
    environment:
      VEN_INSTALL_ACTION: activate
      VEN_MANAGEMENT_SERVER: pce.example.com:8443
      VEN_ACTIVATION_CODE: "{{ vault_ven_activation_code }}"

- name: Upgrade; VEN_DATA_DIR and VEN_NONPRIV_USER of the first install are passed again
  microseg.illumio.ven_package:
    path: /var/tmp/illumio-ven-23.2.20-200.deb12.amd64.deb
    signature: /var/tmp/illumio-ven-23.2.20-200.deb12.amd64.deb.sig
    keyring: /etc/microseg-illumio/illumio-ven-signing-key.asc
  register: ven_upgrade

- name: Say what changed
  ansible.builtin.debug:
    msg: "{{ ven_upgrade.action }}: {{ ven_upgrade.version_before }} -> {{ ven_upgrade.version }}"

- name: What would happen (checks checksum and signature, changes nothing)
  microseg.illumio.ven_package:
    path: /var/tmp/illumio-ven-23.2.20-200.deb12.amd64.deb
    sha256: "{{ ven_package_sha256 }}"
  check_mode: true
  diff: true

- name: Go back to the older release
  microseg.illumio.ven_package:
    path: /var/tmp/illumio-ven-23.2.10-100.deb12.amd64.deb
    allow_downgrade: true
"""

RETURN = r"""
action:
  description: What the task did, or would do in check mode - V(installed) (no VEN before), V(upgraded),
    V(downgraded) or V(none) (the package's version is installed already).
  returned: success
  type: str
  sample: upgraded
version_before:
  description: The VEN version installed before the task; V(null) when there was none.
  returned: always
  type: str
  sample: 23.2.10-100
version:
  description: The VEN version installed after the task (in check mode, the one that would be).
  returned: success
  type: str
  sample: 23.2.20-200
package:
  description: The package file.
  returned: success
  type: dict
  contains:
    name:
      description: The package name (always C(illumio-ven)).
      type: str
      sample: illumio-ven
    version:
      description: The package version.
      type: str
      sample: 23.2.20-200
    type:
      description: V(deb) or V(rpm).
      type: str
      sample: deb
    file:
      description: The file's name.
      type: str
      sample: illumio-ven-23.2.20-200.deb12.amd64.deb
    sha256:
      description: The file's SHA-256.
      type: str
      sample: 5f2b0a3c9e51d6d8ce4c1b2e4f3a1d0c7b9e8a6f5d4c3b2a1908f7e6d5c4b3a2
environment:
  description: The remembered install variables - what was passed to the installer (or would be) and is kept
    in the install record. Never the activation code.
  returned: success
  type: dict
  sample: {"VEN_DATA_DIR": "/srv/illumio_ven_data", "VEN_NONPRIV_USER": "venuser"}
passed_again:
  description: Names of the variables taken from the install record for this upgrade or downgrade.
  returned: success
  type: list
  elements: str
  sample: [VEN_DATA_DIR, VEN_NONPRIV_USER]
verified:
  description: The checks the package passed.
  returned: success
  type: dict
  contains:
    sha256:
      description: Whether O(sha256) was given and matched.
      type: bool
    signature:
      description: The fingerprint of the key that made O(signature); V(null) without O(signature).
      type: str
      sample: 0123456789ABCDEF0123456789ABCDEF01234567
    rpm_checksig:
      description: Whether C(rpm -K) checked the package's signature.
      type: bool
installer:
  description: The installer's output lines (with the activation code scrubbed); empty when nothing ran.
  returned: success
  type: list
  elements: str
  sample: ["Selecting previously unselected package illumio-ven.", "Illumio VEN installed: 23.2.10-100"]
record:
  description: Path of the install record (written when the task installed something).
  returned: success
  type: str
  sample: /var/lib/microseg-illumio/ven/install.json
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.options import url_credentials
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import DEFAULT_INSTALL_DIR
from ansible_collections.microseg.illumio.plugins.module_utils.ven.facts import (
    INSTALL_RECORD,
    read_install_record,
    remembered_environment,
    write_install_record,
)
from ansible_collections.microseg.illumio.plugins.module_utils.ven.package import (
    PACKAGE_NAME,
    SECRET_VARIABLES,
    PackageError,
    PackageTools,
    check_sha256,
    normalize_environment,
    normalize_sha256,
    package_type,
    plan_environment,
    planned_action,
    scrub,
    sha256_of,
)

# Where the install record lives; a module-level name so that tests can point it elsewhere.
RECORD_PATH = INSTALL_RECORD


def version_text(version):
    return "%s %s\n" % (PACKAGE_NAME, version) if version else ""


class VenPackage:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.result = {"changed": False, "version_before": None}
        self.secrets = []

    def validate(self):
        environment, problems = normalize_environment(self.params["environment"])
        for key in SECRET_VARIABLES:
            if environment.get(key):
                self.secrets.append(environment[key])
                self.module.no_log_values.add(environment[key])
        # check_proxy refuses a proxy with a user name or password; the results must not show them either.
        self.module.no_log_values.update(url_credentials(environment.get("VEN_PROXY_SERVER")))
        if problems:
            raise PackageError("; ".join(problems))
        if self.params["sha256"] is not None:
            normalize_sha256(self.params["sha256"])
        return environment

    def verify(self, tools, path, kind):
        verified = {"sha256": False, "signature": None, "rpm_checksig": False}
        if self.params["sha256"] is not None:
            check_sha256(path, self.params["sha256"])
            verified["sha256"] = True
        if self.params["signature"]:
            verified["signature"] = tools.gpg_verify(path, self.params["signature"], self.params["keyring"])
        if self.params["rpm_checksig"]:
            if kind != "rpm":
                raise PackageError("rpm_checksig applies to .rpm packages only; %s is a .%s" % (path, kind))
            tools.rpm_checksig(path)
            verified["rpm_checksig"] = True
        return verified

    def run(self):
        path = self.params["path"]
        given = self.validate()
        if not os.path.isfile(path):
            raise PackageError("package file %s does not exist on the host (copy or download it first)" % path)
        kind = package_type(path)
        tools = PackageTools(self.module, self.secrets)
        verified = self.verify(tools, path, kind)
        package = tools.read_package(path, kind)
        if package["name"] != PACKAGE_NAME:
            raise PackageError(
                "%s holds package %s %s, not %s" % (path, package["name"], package["version"], PACKAGE_NAME)
            )
        package["file"] = os.path.basename(path)
        package["sha256"] = sha256_of(path)
        before, _source = tools.installed_version(kind, self.params["install_dir"])
        self.result["version_before"] = before
        action = planned_action(before, package["version"], self.params["allow_downgrade"])
        record = read_install_record(RECORD_PATH)
        plan = plan_environment(
            given, record, action, remember=self.params["remember_environment"], force=self.params["force"]
        )
        for warning in plan["warnings"]:
            self.module.warn(warning)
        environment = plan["environment"]
        after = before if action == "none" else package["version"]
        self.result.update(
            action=action,
            version=after,
            package=package,
            environment=remembered_environment(environment),
            passed_again=plan["passed_again"],
            verified=verified,
            installer=[],
            record=RECORD_PATH,
            changed=action != "none",
        )
        if self.module._diff:
            self.result["diff"] = {
                "before": version_text(before),
                "after": version_text(after),
                "before_header": "installed VEN",
                "after_header": "installed VEN",
            }
        if action == "none" or self.module.check_mode:
            return self.result
        lines = tools.install(path, kind, environment, action, nodeps=self.params["rpm_nodeps"])
        self.result["installer"] = lines
        for line in lines:
            if "WARNING" in line.upper():
                self.module.warn("installer: " + line.strip())
        installed, _source = tools.installed_version(kind, self.params["install_dir"])
        if installed != package["version"]:
            raise PackageError(
                "the installer reported success, but the installed version is %s, not %s"
                % (installed or "none", package["version"])
            )
        self.write_record(record, package, environment)
        return self.result

    def write_record(self, record, package, environment):
        record = dict(record) if self.result["version_before"] else {}
        record.update(
            method="package",
            version=package["version"],
            package=package["file"],
            package_type=package["type"],
            install_dir=self.params["install_dir"],
            environment=remembered_environment(environment),
        )
        write_install_record(record, RECORD_PATH)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            sha256=dict(type="str"),
            signature=dict(type="path"),
            keyring=dict(type="path", no_log=False),
            rpm_checksig=dict(type="bool", default=False),
            rpm_nodeps=dict(type="bool", default=False),
            environment=dict(type="dict", default={}),
            remember_environment=dict(type="bool", default=True),
            force=dict(type="bool", default=False),
            allow_downgrade=dict(type="bool", default=False),
            install_dir=dict(type="path", default=DEFAULT_INSTALL_DIR),
        ),
        required_together=[("signature", "keyring")],
        supports_check_mode=True,
    )
    worker = VenPackage(module)
    try:
        result = worker.run()
    except PackageError as exc:
        module.fail_json(msg=scrub(str(exc), worker.secrets), version_before=worker.result["version_before"])
    except OSError as exc:
        module.fail_json(
            msg=scrub("file or process error: %s" % exc, worker.secrets), version_before=worker.result["version_before"]
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
