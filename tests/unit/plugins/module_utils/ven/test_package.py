"""module_utils/ven/package.py: versions, install variables and the record merge, checksums, tool output."""

from __future__ import annotations

import hashlib

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.ven import package as pkg

# --- versions -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("23.2.10-100", "23.2.20-200"),
        ("23.2.20-200", "23.10.0-1"),
        ("23.2.10-100", "23.10.0-1"),
        ("23.2.9-999", "23.2.10-1"),
        ("23.2.10-99", "23.2.10-100"),
        ("23.2.10-100", "23.2.10.1-1"),
        ("23.2.10", "23.2.10-1"),
        ("23.2.10-1", "23.2.10rc1-1"),  # more parts is newer (dpkg and rpm need ~ for pre-releases)
        ("23.2.10a-1", "23.2.10.1-1"),  # letters sort before numbers, as in dpkg and rpm
        ("99.0.0-1", "1:1.0.0-1"),  # an epoch wins over everything else
        ("22.5.30-1.el8", "22.5.30-2.el8"),
    ],
)
def test_versions_compare_number_by_number(older, newer):
    assert pkg.compare_versions(older, newer) == -1
    assert pkg.compare_versions(newer, older) == 1
    assert pkg.compare_versions(newer, newer) == 0
    assert sorted([newer, older], key=pkg.version_key) == [older, newer]


def test_an_empty_version_is_an_error():
    with pytest.raises(pkg.PackageError, match="empty version"):
        pkg.version_key("  ")


@pytest.mark.parametrize(
    ("installed", "candidate", "allowed", "action"),
    [
        (None, "23.2.10-100", False, "installed"),
        ("23.2.10-100", "23.2.10-100", False, "none"),
        ("23.2.10-100", "23.2.20-200", False, "upgraded"),
        ("23.2.20-200", "23.2.10-100", True, "downgraded"),
    ],
)
def test_planned_action(installed, candidate, allowed, action):
    assert pkg.planned_action(installed, candidate, allowed) == action


def test_a_downgrade_needs_allow_downgrade():
    with pytest.raises(pkg.PackageError, match=r"older than the installed 23\.10\.0-1; set allow_downgrade=true"):
        pkg.planned_action("23.10.0-1", "23.2.20-200")


# --- files ----------------------------------------------------------------------------------------------------


def test_package_type_comes_from_the_file_name():
    assert pkg.package_type("/tmp/illumio-ven-23.2.10-100.deb12.amd64.deb") == "deb"
    assert pkg.package_type("/tmp/ILLUMIO-VEN.C8.X86_64.RPM") == "rpm"
    with pytest.raises(pkg.PackageError, match=r"neither a \.deb nor an \.rpm"):
        pkg.package_type("/tmp/illumio-ven.tar.gz")


def test_sha256_is_checked_in_any_spelling(tmp_path):
    path = tmp_path / "p.deb"
    path.write_bytes(b"package bytes")
    digest = hashlib.sha256(b"package bytes").hexdigest()
    assert pkg.check_sha256(str(path), digest.upper()) == digest
    assert pkg.check_sha256(str(path), "sha256:" + digest) == digest
    with pytest.raises(pkg.PackageError, match=r"checksum mismatch .* expected 0{64}; nothing was changed"):
        pkg.check_sha256(str(path), "0" * 64)
    with pytest.raises(pkg.PackageError, match="64 hexadecimal digits"):
        pkg.normalize_sha256("abc")


# --- install variables ----------------------------------------------------------------------------------------

CODE = "0123456789abcdef0123456789abcdef"


def test_values_become_strings_and_empty_ones_are_left_out():
    variables, problems = pkg.normalize_environment(
        {
            "VEN_DATA_DIR": "/srv/ven_data",
            "VEN_NONPRIV_UID": 2001,
            "VEN_DISABLE_MONITOR_RESTART": True,
            "VEN_PROXY_SERVER": "",
            "VEN_NONPRIV_USER": None,
        }
    )
    assert problems == []
    assert variables == {
        "VEN_DATA_DIR": "/srv/ven_data",
        "VEN_NONPRIV_UID": "2001",
        "VEN_DISABLE_MONITOR_RESTART": "true",
    }


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"VEN_DATADIR": "/x"}, "VEN_DATADIR is not a VEN install variable; the installation guide documents"),
        ({"PATH": "/x"}, "PATH is not a VEN install variable"),
        ({"VEN_INSTALL_ACTION": "pair"}, "VEN_INSTALL_ACTION must be activate or prepare, not 'pair'"),
        ({"VEN_INSTALL_ACTION": "activate"}, "activate needs VEN_ACTIVATION_CODE and VEN_MANAGEMENT_SERVER"),
        ({"VEN_NONPRIV_UID": "ilo"}, "VEN_NONPRIV_UID must be a number"),
        ({"VEN_DATA_DIR": "data"}, "VEN_DATA_DIR must be an absolute path"),
        ({"VEN_DISABLE_MONITOR_RESTART": "yes"}, "must be true or false"),
        ({"VEN_MANAGEMENT_SERVER": "pce.example.com"}, "management_server must be HOST:PORT"),
        ({"VEN_PROXY_SERVER": "https://proxy:3128"}, "http proxies only"),
        ({"VEN_DATA_DIR": "/x\n/y"}, "must be one line"),
        ({"VEN_DATA_DIR": ["/x"]}, "must be a string, not list"),
    ],
)
def test_bad_install_variables_are_named(environment, message):
    _variables, problems = pkg.normalize_environment(environment)
    assert any(message in problem for problem in problems), problems


def test_a_malformed_activation_code_is_refused_without_repeating_it():
    _variables, problems = pkg.normalize_environment({"VEN_ACTIVATION_CODE": "not-hex-secret"})
    assert problems == ["environment: VEN_ACTIVATION_CODE must be the hexadecimal code of a pairing key"]


RECORD = {"method": "package", "environment": {"VEN_DATA_DIR": "/srv/ven_data", "VEN_NONPRIV_USER": "venuser"}}


def test_an_upgrade_passes_the_recorded_variables_again():
    plan = pkg.plan_environment({"VEN_PROXY_SERVER": "proxy:3128"}, RECORD, "upgraded")
    assert plan["environment"] == {
        "VEN_DATA_DIR": "/srv/ven_data",
        "VEN_NONPRIV_USER": "venuser",
        "VEN_PROXY_SERVER": "proxy:3128",
    }
    assert plan["passed_again"] == ["VEN_DATA_DIR", "VEN_NONPRIV_USER"]
    assert plan["warnings"] == []


def test_a_first_install_and_remember_false_ignore_the_record():
    given = {"VEN_DATA_DIR": "/elsewhere"}
    assert pkg.plan_environment(given, RECORD, "installed")["environment"] == given
    assert pkg.plan_environment(given, RECORD, "upgraded", remember=False)["environment"] == given


def test_secrets_in_a_record_are_never_passed_again():
    record = {"environment": {"VEN_DATA_DIR": "/d", "VEN_ACTIVATION_CODE": CODE, "VEN_INSTALL_ACTION": "prepare"}}
    assert pkg.plan_environment({}, record, "upgraded")["environment"] == {"VEN_DATA_DIR": "/d"}


@pytest.mark.parametrize(
    ("given", "recorded_as"),
    [
        ({"VEN_DATA_DIR": "/other"}, "VEN_DATA_DIR=/srv/ven_data"),
        ({"VEN_NONPRIV_USER": "ilo-ven"}, "VEN_NONPRIV_USER=venuser"),
    ],
)
def test_another_data_dir_or_user_than_recorded_is_refused_unless_forced(given, recorded_as):
    with pytest.raises(pkg.PackageError) as raised:
        pkg.plan_environment(given, RECORD, "upgraded")
    assert f"differs from {recorded_as} of the first install" in str(raised.value)
    assert "set force=true" in str(raised.value)
    forced = pkg.plan_environment(given, RECORD, "upgraded", force=True)
    assert forced["environment"][next(iter(given))] == next(iter(given.values()))
    assert "because force=true" in forced["warnings"][0]
    # Nothing to install: a warning only.
    assert "nothing was run" in pkg.plan_environment(given, RECORD, "none")["warnings"][0]


def test_an_unrecorded_variable_counts_as_the_default():
    record = {"environment": {}}
    assert pkg.plan_environment({"VEN_DATA_DIR": "/opt/illumio_ven_data/"}, record, "upgraded")["warnings"] == []
    assert pkg.plan_environment({"VEN_NONPRIV_USER": "ilo-ven"}, record, "upgraded")["warnings"] == []
    with pytest.raises(pkg.PackageError, match="VEN_DATA_DIR=/srv differs from VEN_DATA_DIR=/opt/illumio_ven_data"):
        pkg.plan_environment({"VEN_DATA_DIR": "/srv"}, record, "upgraded")
    # Without any record (a VEN installed some other way) there is nothing to compare with.
    assert pkg.plan_environment({"VEN_DATA_DIR": "/srv"}, {}, "upgraded")["environment"] == {"VEN_DATA_DIR": "/srv"}


def test_first_install_variables_are_left_out_of_an_upgrade():
    given = {"VEN_INSTALL_ACTION": "prepare", "VEN_ACTIVATION_CODE": CODE, "VEN_MANAGEMENT_SERVER": "pce:8443"}
    plan = pkg.plan_environment(given, RECORD, "upgraded")
    assert "VEN_INSTALL_ACTION" not in plan["environment"] and "VEN_ACTIVATION_CODE" not in plan["environment"]
    assert plan["environment"]["VEN_MANAGEMENT_SERVER"] == "pce:8443"
    assert "VEN_ACTIVATION_CODE, VEN_INSTALL_ACTION left out" in plan["warnings"][0]


def test_output_is_scrubbed_of_secrets():
    out = f"line 1\nactivating with code {CODE}\n"
    assert pkg.last_lines(out, "boom\n", [CODE]) == "line 1 / activating with code ******** / boom"
    assert pkg.last_lines("", "", [CODE]) == "no output"
    assert pkg.last_lines("\n".join(str(n) for n in range(40)), "", [], count=3) == "37 / 38 / 39"


# --- the tools, with a stand-in module ------------------------------------------------------------------------


class FakeModule:
    def __init__(self, answers=None, tools=("dpkg", "dpkg-deb", "dpkg-query", "rpm", "gpg")):
        self.answers = answers or {}
        self.tools = tools
        self.commands = []

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name if name in self.tools else None

    def run_command(self, args, **kwargs):
        self.commands.append((args, kwargs))
        for prefix, answer in self.answers.items():
            if " ".join(args).startswith(prefix):
                return answer
        return 1, "", f"not answered: {args}"


def test_a_missing_tool_is_named():
    tools = pkg.PackageTools(FakeModule(tools=()))
    with pytest.raises(pkg.PackageError, match="gpg is not installed on the host; a signature check needs gpg"):
        tools.gpg_verify("/p.deb", "/p.deb.sig", "/k.asc")
    with pytest.raises(pkg.PackageError, match="dpkg-deb is not installed on the host"):
        tools.read_package("/p.deb", "deb")
    with pytest.raises(pkg.PackageError, match="rpm is not installed on the host; rpm_checksig needs rpm"):
        tools.rpm_checksig("/p.rpm")


def test_the_package_and_the_installed_version_are_read(tmp_path):
    module = FakeModule(
        {
            "/usr/bin/dpkg-deb -f /p.deb": (0, "Package: illumio-ven\nVersion: 23.2.20-200\n", ""),
            "/usr/bin/dpkg-query -W": (0, "deinstall ok config-files\t23.2.10-100\n", ""),
            "/usr/bin/rpm -qp": (0, "illumio-ven\n23.2.20-200\n", ""),
            "/usr/bin/rpm -q ": (0, "23.2.10-100\n23.2.20-200\n", ""),
        }
    )
    tools = pkg.PackageTools(module)
    assert tools.read_package("/p.deb", "deb") == {"name": "illumio-ven", "version": "23.2.20-200", "type": "deb"}
    assert tools.read_package("/p.rpm", "rpm")["version"] == "23.2.20-200"
    # Only configuration files left is not installed; no illumio-ven-ctl either.
    assert tools.installed_version("deb", str(tmp_path)) == (None, None)
    assert tools.installed_version("rpm", str(tmp_path)) == ("23.2.20-200", "rpm")


def test_rpm_checksig_needs_a_signature():
    answers = {"/usr/bin/rpm -K": (0, "/p.rpm: digests OK\n", "")}
    with pytest.raises(pkg.PackageError, match=r"found no signature .* the package is not signed"):
        pkg.PackageTools(FakeModule(answers)).rpm_checksig("/p.rpm")
    answers = {"/usr/bin/rpm -K": (1, "/p.rpm: digests SIGNATURES NOT OK\n", "")}
    with pytest.raises(pkg.PackageError, match=r"rpm -K refused /p\.rpm: /p\.rpm: digests SIGNATURES NOT OK"):
        pkg.PackageTools(FakeModule(answers)).rpm_checksig("/p.rpm")
    answers = {"/usr/bin/rpm -K": (0, "/p.rpm: digests signatures OK\n", "")}
    assert "signatures OK" in pkg.PackageTools(FakeModule(answers)).rpm_checksig("/p.rpm")
    answers = {"/usr/bin/rpm -K": (0, "/p.rpm: rsa sha1 (md5) pgp md5 OK\n", "")}
    assert pkg.PackageTools(FakeModule(answers)).rpm_checksig("/p.rpm")


def test_the_installer_gets_the_variables_in_its_environment_only():
    module = FakeModule({"/usr/bin/dpkg -i": (0, "done\n", ""), "/usr/bin/rpm -Uvh": (0, "", "")})
    tools = pkg.PackageTools(module, [CODE])
    tools.install("/p.deb", "deb", {"VEN_ACTIVATION_CODE": CODE}, "installed")
    args, kwargs = module.commands[-1]
    assert args == ["/usr/bin/dpkg", "-i", "/p.deb"]
    assert kwargs["environ_update"] == {"VEN_ACTIVATION_CODE": CODE, "DEBIAN_FRONTEND": "noninteractive"}
    tools.install("/p.rpm", "rpm", {}, "downgraded", nodeps=True)
    assert module.commands[-1][0] == ["/usr/bin/rpm", "-Uvh", "--nodeps", "--oldpackage", "/p.rpm"]


def test_an_installer_failure_shows_its_last_lines_without_the_code():
    module = FakeModule({"/usr/bin/dpkg -i": (1, f"Unpacking illumio-ven\nactivation {CODE} refused\n", "E: x\n")})
    with pytest.raises(pkg.PackageError) as raised:
        pkg.PackageTools(module, [CODE]).install("/p.deb", "deb", {"VEN_ACTIVATION_CODE": CODE}, "installed")
    assert str(raised.value) == ("dpkg -i failed (exit 1): Unpacking illumio-ven / activation ******** refused / E: x")
