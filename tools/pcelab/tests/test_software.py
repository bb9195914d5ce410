"""VEN software library: bundles, default release, package choice, pairing script rendering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pcelab.api.software import (
    SoftwareError,
    SoftwareLibrary,
    cli_install,
    cli_main,
    cli_software,
    host_os_candidates,
    parse_manifest,
    render_pairing_script,
    select_package,
)
from ven_helpers import build_bundle, sha256

DEB = "illumio-ven-21.5.20-8451.u22.amd64.deb"
RPM = "illumio-ven-21.5.20-8451.c8.x86_64.rpm"
FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def library(tmp_path):
    return SoftwareLibrary(tmp_path / "data")


def test_install_lists_release_with_its_packages(library, tmp_path):
    bundle = build_bundle(tmp_path / "b.tgz", {DEB: b"deb-bytes", RPM: b"rpm-bytes"})
    release = library.install(bundle)
    assert release.name == "21.5.20-8451"
    assert [r.name for r in library.releases()] == ["21.5.20-8451"]
    stored = library.package_file(release, DEB)
    assert stored.read_bytes() == b"deb-bytes"
    assert library.package_file(release, "../manifest.json") is None


def test_install_rejects_a_package_whose_sha256_differs(library, tmp_path):
    bundle = build_bundle(tmp_path / "b.tgz", {DEB: b"deb-bytes"}, corrupt=DEB)
    with pytest.raises(SoftwareError, match="sha256"):
        library.install(bundle)
    assert library.releases() == []
    assert not any(library.root.glob(".staging-*"))


def test_install_rejects_a_second_copy_of_a_release(library, tmp_path):
    library.install(build_bundle(tmp_path / "a.tgz", {DEB: b"x"}))
    with pytest.raises(SoftwareError, match="already installed"):
        library.install(build_bundle(tmp_path / "b.tgz", {DEB: b"x"}))


def test_install_reports_a_missing_package_file(library, tmp_path):
    bundle = build_bundle(tmp_path / "b.tgz", {DEB: b"x"})
    manifest_only = tmp_path / "m.tgz"
    import tarfile

    with tarfile.open(bundle) as source, tarfile.open(manifest_only, "w:gz") as target:
        member = source.getmember("manifest.json")
        target.addfile(member, source.extractfile(member))
    with pytest.raises(SoftwareError, match="lacks"):
        library.install(manifest_only)


def test_install_of_a_file_that_is_no_tarball_fails_clearly(library, tmp_path):
    junk = tmp_path / "junk.tgz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(SoftwareError, match="cannot read bundle"):
        library.install(junk)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"release": "latest"}, "'release'"),
        ({"build": "b1"}, "'build'"),
        ({"packages": []}, "'packages'"),
        ({"packages": [{"file": "../x.deb", "os": "debian", "arch": "x86_64", "pkg_type": "deb"}]}, "file"),
        ({"packages": [{"file": "x.deb", "os": "Debian 12", "arch": "x86_64", "pkg_type": "deb"}]}, "os"),
        ({"packages": [{"file": "x.deb", "os": "debian", "arch": "x86_64", "pkg_type": "zip"}]}, "pkg_type"),
        ({"packages": [{"file": "x.deb", "os": "debian", "arch": "x86_64", "pkg_type": "deb", "sha256": "ab"}]}, "sha"),
    ],
)
def test_manifest_errors_name_the_field(override, message):
    manifest = {"release": "21.5.20", "build": "8451", "packages": [], **override}
    if "packages" not in override:
        manifest["packages"] = [{"file": DEB, "os": "debian", "arch": "x86_64", "pkg_type": "deb", "sha256": "0" * 64}]
    with pytest.raises(SoftwareError, match=message):
        parse_manifest(manifest)


def test_default_release_and_delete_rules(library, tmp_path):
    library.install(build_bundle(tmp_path / "a.tgz", {DEB: b"1"}, release="21.5.20", build="8451"))
    library.install(build_bundle(tmp_path / "b.tgz", {DEB: b"2"}, release="21.5.30", build="8527"))
    assert library.default_name() is None
    library.set_default("21.5.30-8527")
    assert library.default_name() == "21.5.30-8527"
    with pytest.raises(SoftwareError, match="default release"):
        library.delete("21.5.30-8527")
    library.delete("21.5.20-8451")
    assert [r.name for r in library.releases()] == ["21.5.30-8527"]
    with pytest.raises(SoftwareError, match="not in the VEN software library"):
        library.set_default("21.5.20-8451")


def test_releases_sort_by_version_not_text(library, tmp_path):
    library.install(build_bundle(tmp_path / "a.tgz", {DEB: b"1"}, release="21.5.9", build="1"))
    library.install(build_bundle(tmp_path / "b.tgz", {DEB: b"2"}, release="21.5.10", build="1"))
    assert [r.name for r in library.releases()] == ["21.5.9-1", "21.5.10-1"]


def test_host_candidates_go_from_specific_to_any():
    assert host_os_candidates("rocky", "9.3", "rhel centos fedora") == [
        "rocky-9",
        "rocky",
        "rhel-9",
        "rhel",
        "centos-9",
        "centos",
        "fedora-9",
        "fedora",
        "any",
    ]


def test_select_package_prefers_the_most_specific_os_and_checks_arch_and_type():
    release = parse_manifest(
        {
            "release": "21.5.20",
            "build": "8451",
            "packages": [
                {"file": "generic.deb", "os": ["debian"], "arch": "amd64", "pkg_type": "deb", "sha256": "1" * 64},
                {"file": "bookworm.deb", "os": ["debian-12"], "arch": "x86_64", "pkg_type": "deb", "sha256": "2" * 64},
                {"file": "arm.deb", "os": ["debian-12"], "arch": "arm64", "pkg_type": "deb", "sha256": "3" * 64},
                {"file": "el.rpm", "os": ["rhel"], "arch": "noarch", "pkg_type": "rpm", "sha256": "4" * 64},
            ],
        }
    )
    assert select_package(release, "debian", "12", "", "x86_64", "deb").file == "bookworm.deb"
    assert select_package(release, "debian", "11", "", "amd64", "deb").file == "generic.deb"
    assert select_package(release, "debian", "12", "", "aarch64", "deb").file == "arm.deb"
    assert select_package(release, "almalinux", "9.2", "rhel centos fedora", "x86_64", "rpm").file == "el.rpm"
    with pytest.raises(SoftwareError, match="no rpm package for ubuntu"):
        select_package(release, "ubuntu", "22.04", "debian", "x86_64", "rpm")


@pytest.mark.parametrize("script", ["pair.sh", "prepare.sh"])
def test_linux_scripts_are_valid_bash_with_everything_filled_in(script, tmp_path):
    text = render_pairing_script(script, 7, FAKE_CA)
    assert "@@" not in text
    assert "PROFILE_ID='7'" in text
    assert FAKE_CA.strip() in text
    path = tmp_path / script
    path.write_text(text)
    subprocess.run(["bash", "-n", str(path)], check=True)
    usage = subprocess.run(["bash", str(path), "--help"], capture_output=True, text=True, check=True)
    assert f"usage: {script}" in usage.stdout


def test_linux_script_refuses_to_run_without_activation_code(tmp_path):
    path = tmp_path / "pair.sh"
    path.write_text(render_pairing_script("pair.sh", 1, FAKE_CA))
    done = subprocess.run(
        ["bash", str(path), "--management-server", "pce.example.com:8443"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "--activation-code (or VEN_ACTIVATION_CODE) is required" in done.stderr


def test_windows_scripts_carry_mode_profile_and_ca():
    pair = render_pairing_script("pair.ps1", 4, FAKE_CA)
    prepare = render_pairing_script("prepare.ps1", 4, FAKE_CA)
    assert "@@" not in pair and "@@" not in prepare
    assert "$Mode = 'pair'" in pair and "$Mode = 'prepare'" in prepare
    assert "$ProfileId = '4'" in pair
    assert "MIIB" in pair
    assert "illumio-ven-ctl.ps1" in pair
    assert "agent_activation.cfg" in prepare


def test_manifest_written_to_library_is_canonical(library, tmp_path):
    release = library.install(build_bundle(tmp_path / "a.tgz", {RPM: b"r"}))
    stored = json.loads((library.root / release.name / "manifest.json").read_text())
    assert stored["packages"][0]["sha256"] == sha256(b"r")
    assert stored["packages"][0]["os"] == ["rhel", "centos"]


def test_cli_functions_install_list_default_delete(tmp_path, capsys):
    data = str(tmp_path / "data")
    assert cli_install(data, str(build_bundle(tmp_path / "a.tgz", {DEB: b"1"}))) == 0
    assert cli_software(data, "default", "21.5.20-8451") == 0
    assert cli_software(data, "list") == 0
    listing = capsys.readouterr().out
    assert "21.5.20-8451 (default)" in listing and DEB in listing
    assert cli_software(data, "delete", "21.5.20-8451") == 1
    assert "is the default release" in capsys.readouterr().err
    assert cli_software(data, "delete", "9.9.9-1") == 1
    assert cli_install(data, str(tmp_path / "missing.tgz")) == 1
    assert "cannot read bundle" in capsys.readouterr().err


# --- over HTTPS ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab_library(lab, tmp_path_factory):
    """The running lab's library with one release (the server reads it from its data folder)."""
    installed = SoftwareLibrary(lab.data_dir)
    installed.install(build_bundle(tmp_path_factory.mktemp("b") / "b.tgz", {DEB: b"deb", RPM: b"rpm"}))
    installed.set_default("21.5.20-8451")
    return installed


def test_releases_are_listed_for_api_users(lab_library, api, lab):
    [release] = api.get("/orgs/1/lab/ven_software_releases").json()
    with lab.session(auth=None) as anonymous:
        assert anonymous.get("/orgs/1/lab/ven_software_releases").status_code == 401
    assert release["release"] == "21.5.20-8451" and release["default"] is True
    assert {p["file"] for p in release["packages"]} == {DEB, RPM}


def test_served_script_embeds_the_lab_ca_and_the_profile(lab_library, api, lab):
    profile = api.post("/orgs/1/pairing_profiles", json={"name": "script"}).json()
    profile_id = profile["href"].rsplit("/", 1)[1]
    with lab.session(prefix="", auth=None) as anonymous:
        params = {"pair_script": "pair.sh", "profile_id": profile_id}
        script = anonymous.get("/api/v18/software/ven/image", params=params)
    assert script.status_code == 200
    assert Path(lab.ca).read_text().strip() in script.text
    assert f"PROFILE_ID='{profile_id}'" in script.text


def test_select_and_download_need_a_usable_activation_code(lab_library, api, lab):
    profile = api.post("/orgs/1/pairing_profiles", json={"name": "dl"}).json()
    code = api.post(profile["href"] + "/pairing_key", json={}).json()["activation_code"]
    host = {"os_id": "rocky", "os_version": "8.9", "os_like": "rhel centos fedora", "arch": "x86_64", "pkg_type": "rpm"}
    with lab.session(prefix="/lab/ven-software", auth=None) as software:
        assert software.get("/select", params=host).status_code == 401
        assert software.get("/select", params=host, headers={"X-Lab-Activation-Code": "cd" * 41}).status_code == 401
        answer = software.get("/select", params=host, headers={"X-Lab-Activation-Code": code})
        assert answer.status_code == 200
        chosen = dict(line.split("=", 1) for line in answer.text.split())
        assert chosen == {
            "release": "21.5.20-8451",
            "file": RPM,
            "sha256": sha256(b"rpm"),
            "path": f"/lab/ven-software/releases/21.5.20-8451/{RPM}",
        }
        package = software.get(f"/releases/21.5.20-8451/{RPM}", headers={"X-Lab-Activation-Code": code})
        assert package.content == b"rpm"
        missing = software.get(f"/releases/21.5.20-8451/{RPM}.gone", headers={"X-Lab-Activation-Code": code})
        assert missing.status_code == 404
        windows = {**host, "os_id": "windows", "pkg_type": "msi"}
        refused = software.get("/select", params=windows, headers={"X-Lab-Activation-Code": code})
        assert refused.status_code == 404 and refused.json()[0]["token"] == "no_matching_package"


def test_command_line_entry_parses_both_commands(tmp_path, capsys):
    data = str(tmp_path / "data")
    bundle = str(build_bundle(tmp_path / "a.tgz", {DEB: b"1"}))
    assert cli_main(["ven-software-install", "--data-dir", data, bundle]) == 0
    assert cli_main(["ven-software", "default", "21.5.20-8451", "--data-dir", data]) == 0
    assert cli_main(["ven-software", "list", "--data-dir", data]) == 0
    assert "21.5.20-8451 (default)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["ven-software", "delete", "--data-dir", data])


def test_pcelab_command_has_the_library_commands(tmp_path):
    data = str(tmp_path / "data")
    bundle = str(build_bundle(tmp_path / "a.tgz", {DEB: b"1"}))
    pcelab = [sys.executable, "-m", "pcelab.cli"]
    subprocess.run([*pcelab, "ven-software-install", "--data-dir", data, bundle], check=True, capture_output=True)
    listing = subprocess.run([*pcelab, "ven-software", "list", "--data-dir", data], capture_output=True, text=True)
    assert listing.returncode == 0 and "21.5.20-8451" in listing.stdout
