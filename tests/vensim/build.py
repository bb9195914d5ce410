"""Build the VEN stand-in packages and the VEN software bundles the lab PCE installs.

    python3 tests/vensim/build.py [--out .build/vensim] [--version 23.2.10-100 --version 23.2.20-200]

For each version: `illumio-ven-<version>.deb12.<arch>.deb` (dpkg-deb) and, when rpmbuild is installed,
`illumio-ven-<version>.c8.<arch>.rpm`, then `illumio-ven-bundle-<version>.tar.gz` with manifest.json for
`pcelab ven-software-install`. Prints one JSON object describing what it built. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_OUT = REPO / ".build" / "vensim"
DEFAULT_VERSIONS = ("23.2.10-100", "23.2.20-200")
VERSION_PATTERN = re.compile(r"^(\d+\.\d+\.\d+)-(\d+)$")
DEB_OS = ["debian", "ubuntu"]
RPM_OS = ["rhel", "centos", "rocky", "almalinux", "ol", "fedora"]
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
DESCRIPTION = """Illumio VEN stand-in for tests (NOT the Illumio VEN)
 Test scaffolding of the microseg.illumio Ansible collection (tests/vensim). It installs
 where the VEN installs, answers illumio-ven-ctl like the VEN, pairs with the lab PCE
 (pcelab) and records flow logs from conntrack. It enforces no policy."""


@dataclass
class Release:
    version: str
    packages: list[dict] = field(default_factory=list)
    bundle: str = ""

    @property
    def release(self) -> str:
        return self.version.split("-")[0]

    @property
    def build(self) -> str:
        return self.version.split("-")[1]


def machine_arch() -> str:
    return platform.machine() or "x86_64"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stage_files(root: Path, version: str) -> None:
    """The installed tree: /opt/illumio_ven/{illumio-ven-ctl, lib/vensim.py, etc/ven_version}."""
    ven = root / "opt" / "illumio_ven"
    (ven / "lib").mkdir(parents=True)
    (ven / "etc").mkdir()
    shutil.copyfile(HERE / "illumio-ven-ctl", ven / "illumio-ven-ctl")
    (ven / "illumio-ven-ctl").chmod(0o750)
    shutil.copyfile(HERE / "vensim.py", ven / "lib" / "vensim.py")
    (ven / "lib" / "vensim.py").chmod(0o640)
    (ven / "etc" / "ven_version").write_text(version + "\n", encoding="utf-8")
    (ven / "etc" / "ven_version").chmod(0o640)
    for folder in (ven, ven / "lib", ven / "etc"):
        folder.chmod(0o750)


def build_deb(version: str, out: Path, work: Path) -> dict:
    arch = DEB_ARCH.get(machine_arch(), machine_arch())
    root = work / f"deb-{version}"
    stage_files(root, version)
    control = root / "DEBIAN"
    control.mkdir()
    (control / "control").write_text(
        f"Package: illumio-ven\nVersion: {version}\nArchitecture: {arch}\n"
        "Maintainer: microseg.illumio tests <noreply@example.invalid>\n"
        "Depends: python3 (>= 3.6), iproute2\nRecommends: nftables, conntrack\n"
        f"Section: admin\nPriority: optional\nDescription: {DESCRIPTION}\n",
        encoding="utf-8",
    )
    for script in ("postinst", "prerm", "postrm"):
        shutil.copyfile(HERE / "package" / script, control / script)
        (control / script).chmod(0o755)
    target = out / f"illumio-ven-{version}.deb12.{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(target)],
        check=True,
        capture_output=True,
    )
    return {"file": target.name, "os": DEB_OS, "arch": machine_arch(), "pkg_type": "deb", "sha256": sha256(target)}


RPM_SPEC = """Name: illumio-ven
Version: {release}
Release: {build}
Summary: Illumio VEN stand-in for tests (NOT the Illumio VEN)
License: GPL-3.0-or-later
Requires: python3, iproute
AutoReqProv: no

%description
{description}

%install
cp -a {root}/. %{{buildroot}}/

%pre
if [ "$1" -ge 2 ] && [ -f /opt/illumio_ven/lib/vensim.py ]; then
    python3 /opt/illumio_ven/lib/vensim.py _package-hook pre "$1"
fi

%post
python3 /opt/illumio_ven/lib/vensim.py _package-hook post "$1"

%preun
python3 /opt/illumio_ven/lib/vensim.py _package-hook preun "$1"

%postun
if [ "$1" = 0 ]; then
    rm -rf /opt/illumio_ven /etc/cron.d/illumio-ven-monitor
fi

%files
%defattr(-,root,root,-)
%dir %attr(0750,root,root) /opt/illumio_ven
%dir %attr(0750,root,root) /opt/illumio_ven/lib
%dir %attr(0750,root,root) /opt/illumio_ven/etc
%attr(0750,root,root) /opt/illumio_ven/illumio-ven-ctl
%attr(0640,root,root) /opt/illumio_ven/lib/vensim.py
%attr(0640,root,root) /opt/illumio_ven/etc/ven_version
"""


def build_rpm(version: str, out: Path, work: Path) -> dict | None:
    if not shutil.which("rpmbuild"):
        return None
    release = Release(version)
    root = work / f"rpm-root-{version}"
    stage_files(root, version)
    top = work / f"rpmbuild-{version}"
    spec = work / f"illumio-ven-{version}.spec"
    description = "\n".join(line.strip() for line in DESCRIPTION.splitlines()[1:])
    spec.write_text(
        RPM_SPEC.format(release=release.release, build=release.build, description=description, root=root),
        encoding="utf-8",
    )
    arch = machine_arch()
    subprocess.run(
        [
            "rpmbuild",
            "-bb",
            "--quiet",
            "--target",
            f"{arch}-linux",
            "--define",
            f"_topdir {top}",
            "--define",
            "__os_install_post %{nil}",
            "--define",
            "debug_package %{nil}",
            str(spec),
        ],
        check=True,
        capture_output=True,
    )
    built = next((top / "RPMS").rglob("*.rpm"))
    target = out / f"illumio-ven-{version}.c8.{arch}.rpm"
    shutil.move(str(built), target)
    return {"file": target.name, "os": RPM_OS, "arch": arch, "pkg_type": "rpm", "sha256": sha256(target)}


def write_bundle(release: Release, out: Path) -> Path:
    manifest = {"release": release.release, "build": release.build, "packages": release.packages}
    target = out / f"illumio-ven-bundle-{release.version}.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        info.mode = 0o644
        archive.addfile(info, io.BytesIO(data))
        for package in release.packages:
            archive.add(out / package["file"], arcname=package["file"])
    return target


def build(out: Path = DEFAULT_OUT, versions: tuple[str, ...] = DEFAULT_VERSIONS) -> list[Release]:
    """Build the packages and one bundle per version into OUT; returns what was built."""
    for version in versions:
        if not VERSION_PATTERN.match(version):
            raise ValueError(f"version {version!r} must look like 23.2.10-100 (release-build)")
    out.mkdir(parents=True, exist_ok=True)
    releases = []
    with tempfile.TemporaryDirectory(prefix="vensim-build-") as scratch:
        work = Path(scratch)
        for version in versions:
            release = Release(version)
            for old in out.glob(f"illumio-ven-*{version}*"):
                old.unlink()
            release.packages.append(build_deb(version, out, work))
            rpm = build_rpm(version, out, work)
            if rpm:
                release.packages.append(rpm)
            release.bundle = str(write_bundle(release, out))
            releases.append(release)
    return releases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--version", action="append", dest="versions", help="release-build, repeatable")
    args = parser.parse_args(argv)
    if not shutil.which("dpkg-deb"):
        print("build.py: dpkg-deb is missing (Debian package dpkg)", file=sys.stderr)
        return 2
    releases = build(args.out, tuple(args.versions or DEFAULT_VERSIONS))
    summary = [
        {"version": r.version, "bundle": r.bundle, "packages": [p["file"] for p in r.packages]} for r in releases
    ]
    print(json.dumps({"out": str(args.out), "releases": summary, "rpm": bool(shutil.which("rpmbuild"))}, indent=2))
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
