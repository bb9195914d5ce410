# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install or upgrade the VEN from a package file on the host (VEN Installation and Upgrade Guide).

Reads the package's name and version (dpkg-deb / rpm -qp), the installed version (dpkg-query / rpm -q, else
`illumio-ven-ctl version`), compares them numerically, checks sha256 and signatures, validates the documented
install variables and merges them with the collection's install record, then runs `dpkg -i` or `rpm -Uvh`.
The activation code only ever travels in the installer's environment: never on a command line, never in the
record, and it is scrubbed from any output this code hands back.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import hashlib
import os
import re
import shutil
import tempfile

from ansible_collections.microseg.illumio.plugins.module_utils.ven.activation import (
    check_activation_code,
    check_management_server,
    check_proxy,
)
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import (
    DEFAULT_DATA_DIR,
    VenCtl,
    VenCtlError,
)
from ansible_collections.microseg.illumio.plugins.module_utils.ven.facts import remembered_environment

PACKAGE_NAME = "illumio-ven"
PACKAGE_TYPES = ("deb", "rpm")
DEFAULT_USER = "ilo-ven"
# The install variables of "Linux Installation with Environment Variables", plus VEN_PROXY_SERVER ("VEN Proxy
# Support": exported before the package command).
INSTALL_VARIABLES = (
    "VEN_ACTIVATION_CODE",
    "VEN_DATA_DIR",
    "VEN_DISABLE_MONITOR_RESTART",
    "VEN_INSTALL_ACTION",
    "VEN_KERBEROS_WORKLOAD_SPN",
    "VEN_KERBEROS_MANAGEMENT_SERVER_SPN",
    "VEN_KERBEROS_LIBRARY_PATH",
    "VEN_MANAGEMENT_SERVER",
    "VEN_NONPRIV_UID",
    "VEN_NONPRIV_GID",
    "VEN_NONPRIV_USER",
    "VEN_PROXY_SERVER",
    "ILLUMIO_RUNTIME_ENV",
)
SECRET_VARIABLES = ("VEN_ACTIVATION_CODE",)
# An upgrade must use the values of the first install ("Upgrade Linux VEN Using CLI"); a change is refused.
PINNED_VARIABLES = ("VEN_DATA_DIR", "VEN_NONPRIV_USER")
PINNED_DEFAULTS = {"VEN_DATA_DIR": DEFAULT_DATA_DIR, "VEN_NONPRIV_USER": DEFAULT_USER}
# What only a first install does: an activated VEN needs no activation after an upgrade, and `prepare` would stop it.
FIRST_INSTALL_ONLY = ("VEN_INSTALL_ACTION", "VEN_ACTIVATION_CODE")
INSTALL_ACTIONS = ("activate", "prepare")
ABSOLUTE_PATHS = ("VEN_DATA_DIR", "VEN_KERBEROS_LIBRARY_PATH", "ILLUMIO_RUNTIME_ENV")
SCRUBBED = "********"
OUTPUT_LINES = 12
# gpg --status-fd keywords that mean the signature must not be trusted, and why.
GPG_REFUSALS = (
    ("BADSIG", "the signature does not match the package (BADSIG)"),
    ("ERRSIG", "the signature could not be checked (ERRSIG: unknown key or algorithm)"),
    ("NO_PUBKEY", "the signing key is not in the keyring (NO_PUBKEY)"),
    ("EXPKEYSIG", "the signing key has expired (EXPKEYSIG)"),
    ("REVKEYSIG", "the signing key was revoked (REVKEYSIG)"),
    ("EXPSIG", "the signature has expired (EXPSIG)"),
)
_SHA256 = re.compile(r"^(?:sha256:)?([0-9A-Fa-f]{64})$")
_EPOCH = re.compile(r"^(\d+):(.+)$")
_TOKEN = re.compile(r"\d+|[A-Za-z]+")


class PackageError(Exception):
    """Installing the package is not possible or failed; the message says why (with no secret in it)."""


# --- versions -----------------------------------------------------------------------------------------------


def _tokens(text):
    # Numbers compare as numbers and sort after letters (as dpkg and rpm do: 1.0 > 1.0rc).
    return tuple((1, int(token), "") if token.isdigit() else (0, 0, token) for token in _TOKEN.findall(text))


def version_key(version):
    """A sort key: (epoch, release numbers, build numbers); 23.2.10-100 < 23.2.20-200 < 23.10.0-1."""
    text = str(version or "").strip()
    if not text:
        raise PackageError("empty version")
    epoch = 0
    match = _EPOCH.match(text)
    if match:
        epoch, text = int(match.group(1)), match.group(2)
    upstream, sep, build = text.rpartition("-")
    if not sep:
        upstream, build = text, ""
    return (epoch, _tokens(upstream), _tokens(build))


def compare_versions(left, right):
    """-1, 0 or 1 as left is older than, the same as or newer than right."""
    left_key, right_key = version_key(left), version_key(right)
    return (left_key > right_key) - (left_key < right_key)


def planned_action(installed, candidate, allow_downgrade=False):
    """installed | upgraded | downgraded | none for putting version `candidate` on a host that has `installed`."""
    if not installed:
        return "installed"
    order = compare_versions(candidate, installed)
    if order == 0:
        return "none"
    if order > 0:
        return "upgraded"
    if not allow_downgrade:
        raise PackageError(
            "the package holds %s %s, older than the installed %s; set allow_downgrade=true to downgrade"
            % (PACKAGE_NAME, candidate, installed)
        )
    return "downgraded"


# --- files ----------------------------------------------------------------------------------------------------


def package_type(path):
    lower = path.lower()
    for kind in PACKAGE_TYPES:
        if lower.endswith("." + kind):
            return kind
    raise PackageError("%s is neither a .deb nor an .rpm package file" % path)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_sha256(value):
    match = _SHA256.match((value or "").strip())
    if not match:
        raise PackageError("sha256 must be 64 hexadecimal digits (optionally prefixed with sha256:), not %r" % value)
    return match.group(1).lower()


def check_sha256(path, expected):
    wanted = normalize_sha256(expected)
    actual = sha256_of(path)
    if actual != wanted:
        raise PackageError(
            "checksum mismatch for %s: sha256 is %s, expected %s; nothing was changed" % (path, actual, wanted)
        )
    return actual


# --- install variables ----------------------------------------------------------------------------------------


def _as_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def normalize_environment(environment):
    """(variables as strings, problems): unknown names, malformed values and incomplete activations are problems.

    Empty and null values mean "not set" and are left out.
    """
    variables, problems = {}, []
    for key in sorted(environment or {}):
        if key not in INSTALL_VARIABLES:
            problems.append(
                "environment: %s is not a VEN install variable; the installation guide documents %s"
                % (key, ", ".join(INSTALL_VARIABLES))
            )
            continue
        value = _as_text(environment[key])
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            problems.append("environment: %s must be a string, not %s" % (key, type(value).__name__))
            continue
        if "\0" in value or "\n" in value or "\r" in value:
            problems.append("environment: %s must be one line without NUL characters" % key)
            continue
        variables[key] = value.strip()
    problems.extend(_value_problems(variables))
    return variables, problems


def _value_problems(variables):
    found = []
    action = variables.get("VEN_INSTALL_ACTION")
    if action is not None and action not in INSTALL_ACTIONS:
        found.append("environment: VEN_INSTALL_ACTION must be activate or prepare, not %r" % action)
    if action == "activate" and not (variables.get("VEN_ACTIVATION_CODE") and variables.get("VEN_MANAGEMENT_SERVER")):
        found.append("environment: VEN_INSTALL_ACTION=activate needs VEN_ACTIVATION_CODE and VEN_MANAGEMENT_SERVER")
    for key in ("VEN_NONPRIV_UID", "VEN_NONPRIV_GID"):
        if key in variables and not variables[key].isdigit():
            found.append("environment: %s must be a number, not %r" % (key, variables[key]))
    for key in ABSOLUTE_PATHS:
        if key in variables and not os.path.isabs(variables[key]):
            found.append("environment: %s must be an absolute path, not %r" % (key, variables[key]))
    if "VEN_DISABLE_MONITOR_RESTART" in variables and variables["VEN_DISABLE_MONITOR_RESTART"] not in (
        "true",
        "false",
    ):
        found.append(
            "environment: VEN_DISABLE_MONITOR_RESTART must be true or false, not %r"
            % variables["VEN_DISABLE_MONITOR_RESTART"]
        )
    if "VEN_MANAGEMENT_SERVER" in variables:
        reason = check_management_server(variables["VEN_MANAGEMENT_SERVER"])
        if reason:
            found.append("environment: VEN_MANAGEMENT_SERVER: " + reason)
    if "VEN_PROXY_SERVER" in variables:
        reason = check_proxy(variables["VEN_PROXY_SERVER"])
        if reason:
            found.append("environment: VEN_PROXY_SERVER: " + reason)
    if "VEN_ACTIVATION_CODE" in variables and check_activation_code(variables["VEN_ACTIVATION_CODE"]):
        # The value itself is never repeated in a message.
        found.append("environment: VEN_ACTIVATION_CODE must be the hexadecimal code of a pairing key")
    return found


def _pinned_value(key, value):
    value = value or PINNED_DEFAULTS[key]
    return os.path.normpath(value) if key == "VEN_DATA_DIR" else value


def plan_environment(given, record, action, remember=True, force=False):
    """The variables the installer gets, and what to tell the user: {'environment', 'passed_again', 'warnings'}.

    On an upgrade or downgrade with `remember`, the variables of the install record are passed again; a
    VEN_DATA_DIR or VEN_NONPRIV_USER that differs from the recorded one raises PackageError unless `force`.
    A first install ignores the record (it describes a VEN that is gone). On an upgrade or downgrade the
    first-install-only variables (VEN_INSTALL_ACTION, VEN_ACTIVATION_CODE) are left out.
    """
    plan = {"environment": dict(given), "passed_again": [], "warnings": []}
    has_record = isinstance(record.get("environment"), dict)
    recorded = remembered_environment(record["environment"]) if has_record else {}
    if not remember or action == "installed":
        return plan
    for key in PINNED_VARIABLES:
        if not has_record or key not in given:
            continue
        old, new = _pinned_value(key, recorded.get(key)), _pinned_value(key, given[key])
        if old == new:
            continue
        message = (
            "environment: %s=%s differs from %s=%s of the first install (install record); the installation guide "
            "requires the same value for upgrades" % (key, given[key], key, recorded.get(key) or old)
        )
        if action == "none":
            plan["warnings"].append(message + "; the package is installed already, nothing was run")
        elif not force:
            raise PackageError(message + "; set force=true to install with the new value anyway")
        else:
            plan["warnings"].append(message + "; installing with the new value because force=true")
    environment = dict(recorded)
    environment.update(given)
    plan["passed_again"] = sorted(key for key in recorded if key not in given)
    if action in ("upgraded", "downgraded"):
        dropped = sorted(key for key in FIRST_INSTALL_ONLY if key in environment)
        for key in dropped:
            del environment[key]
        if dropped:
            plan["warnings"].append(
                "environment: %s left out: they apply to a first install only (an activated VEN stays activated "
                "through an upgrade)" % ", ".join(dropped)
            )
    plan["environment"] = environment
    return plan


def scrub(text, secrets):
    for secret in secrets:
        if secret:
            text = text.replace(secret, SCRUBBED)
    return text


def last_lines(out, err, secrets, count=OUTPUT_LINES):
    lines = [line.rstrip() for line in ((out or "") + "\n" + (err or "")).splitlines() if line.strip()]
    return scrub(" / ".join(lines[-count:]) or "no output", secrets)


# --- the host's package tools ---------------------------------------------------------------------------------


class PackageTools:
    """dpkg, rpm and gpg on the host, run through an AnsibleModule (argument lists, no shell)."""

    def __init__(self, module, secrets=()):
        self.module = module
        self.secrets = [secret for secret in secrets if secret]

    def tool(self, name, purpose):
        path = self.module.get_bin_path(name)
        if not path:
            raise PackageError("%s is not installed on the host; %s" % (name, purpose))
        return path

    def run(self, arguments, **kwargs):
        return self.module.run_command(arguments, **kwargs)

    def read_package(self, path, kind):
        """{'name', 'version', 'type'} of the package file."""
        if kind == "deb":
            dpkg_deb = self.tool("dpkg-deb", "reading a .deb needs dpkg (Debian and Ubuntu hosts)")
            rc, out, err = self.run([dpkg_deb, "-f", path, "Package", "Version"])
            fields = {}
            for line in out.splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    fields[key.strip().lower()] = value.strip()
            name, version = fields.get("package"), fields.get("version")
        else:
            rpm = self.tool("rpm", "reading an .rpm needs rpm")
            rc, out, err = self.run([rpm, "-qp", "--qf", "%{NAME}\\n%{VERSION}-%{RELEASE}\\n", path])
            values = [line.strip() for line in out.splitlines() if line.strip()]
            name, version = [*values, None, None][:2]
        if rc != 0 or not name or not version:
            raise PackageError("%s is not a readable %s package: %s" % (path, kind, last_lines(out, err, self.secrets)))
        return {"name": name, "version": version, "type": kind}

    def installed_version(self, kind, install_dir):
        """(version, source) of the installed VEN; (None, None) when there is none."""
        if kind == "deb":
            dpkg_query = self.module.get_bin_path("dpkg-query")
            if dpkg_query:
                rc, out, _err = self.run([dpkg_query, "-W", "-f=${Status}\\t${Version}\\n", PACKAGE_NAME])
                if rc == 0:
                    for line in out.splitlines():
                        status, _sep, version = line.partition("\t")
                        if status.strip().endswith(" installed") and version.strip():
                            return version.strip(), "dpkg"
        else:
            rpm = self.module.get_bin_path("rpm")
            if rpm:
                rc, out, _err = self.run([rpm, "-q", "--qf", "%{VERSION}-%{RELEASE}\\n", PACKAGE_NAME])
                versions = [line.strip() for line in out.splitlines() if line.strip()] if rc == 0 else []
                if versions:
                    return max(versions, key=version_key), "rpm"
        ctl = VenCtl(self.module, install_dir)
        if ctl.installed:
            try:
                version = ctl.version()
            except VenCtlError:
                version = None
            if version:
                return version.splitlines()[0].strip(), "illumio-ven-ctl"
        return None, None

    def install(self, path, kind, environment, action, nodeps=False):
        """Run the installer; returns its scrubbed output lines. PackageError with its last lines on failure."""
        update = dict(environment)
        if kind == "deb":
            command = [self.tool("dpkg", "a .deb is installed with dpkg"), "-i", path]
            update["DEBIAN_FRONTEND"] = "noninteractive"
        else:
            command = [self.tool("rpm", "an .rpm is installed with rpm"), "-Uvh"]
            if nodeps:
                command.append("--nodeps")
            if action == "downgraded":
                command.append("--oldpackage")
            command.append(path)
        rc, out, err = self.run(command, environ_update=update)
        if rc != 0:
            raise PackageError(
                "%s failed (exit %d): %s"
                % (" ".join([os.path.basename(command[0]), *command[1:-1]]), rc, last_lines(out, err, self.secrets))
            )
        return [scrub(line, self.secrets) for line in ((out or "") + "\n" + (err or "")).splitlines() if line.strip()]

    def gpg_verify(self, path, signature, keyring):
        """Check a detached OpenPGP signature against a keyring file; returns the signing key's fingerprint.

        gpg runs with a throw-away home directory, so the host's own keyrings and trust database are neither
        used nor changed. An ASCII-armored key file is turned into a binary keyring first.
        """
        gpg = self.tool("gpg", "a signature check needs gpg (package gnupg on Debian/Ubuntu, gnupg2 on RHEL)")
        for what, name in ((signature, "signature"), (keyring, "keyring")):
            if not os.path.isfile(what):
                raise PackageError("%s file %s does not exist on the host" % (name, what))
        home = tempfile.mkdtemp(prefix="microseg-illumio-gpg-")
        try:
            os.chmod(home, 0o700)
            ring = os.path.abspath(keyring)
            with open(keyring, "rb") as handle:
                armored = handle.read(256).lstrip().startswith(b"-----BEGIN PGP")
            if armored:
                ring = os.path.join(home, "keyring.gpg")
                rc, out, err = self.run([gpg, "--batch", "--homedir", home, "--output", ring, "--dearmor", keyring])
                if rc != 0:
                    raise PackageError("keyring %s cannot be read by gpg: %s" % (keyring, last_lines(out, err, [])))
            command = [
                gpg,
                "--batch",
                "--homedir",
                home,
                "--no-default-keyring",
                "--keyring",
                ring,
                "--trust-model",
                "always",
                "--status-fd",
                "1",
                "--verify",
                signature,
                path,
            ]
            rc, out, err = self.run(command)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        status = {}
        for line in out.splitlines():
            if line.startswith("[GNUPG:] "):
                words = line[len("[GNUPG:] ") :].split()
                if words:
                    status.setdefault(words[0], words[1:])
        for keyword, reason in GPG_REFUSALS:
            if keyword in status:
                raise PackageError("signature check of %s with %s failed: %s" % (path, signature, reason))
        if rc != 0 or "GOODSIG" not in status or "VALIDSIG" not in status:
            raise PackageError(
                "signature check of %s with %s failed: %s" % (path, signature, last_lines("", err, self.secrets))
            )
        return (status["VALIDSIG"] or [None])[0]

    def rpm_checksig(self, path):
        """`rpm -K`: digests and signatures against the keys imported into the host's rpm database."""
        rpm = self.tool("rpm", "rpm_checksig needs rpm")
        rc, out, err = self.run([rpm, "-K", path])
        text = ((out or "") + "\n" + (err or "")).strip()
        if rc != 0 or "NOT OK" in text:
            raise PackageError("rpm -K refused %s: %s" % (path, last_lines(out, err, self.secrets)))
        if not re.search(r"\b(signatures|pgp|gpg)\b", text.lower()):
            raise PackageError("rpm -K found no signature in %s (%s): the package is not signed" % (path, text))
        return text
