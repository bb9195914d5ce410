"""VEN software library of the lab PCE: bundles of VEN packages, the default release, package selection.

A bundle is a tarball (any compression tarfile reads) with a top-level ``manifest.json``::

    {"release": "21.5.20", "build": "8451",
     "packages": [{"file": "illumio-ven-21.5.20-8451.u22.amd64.deb", "os": ["ubuntu-22", "debian"],
                   "arch": "x86_64", "pkg_type": "deb", "sha256": "<hex>"}]}

and the package files next to it. A release is named ``<release>-<build>`` (``21.5.20-8451``), the way
the PCE names VEN versions. Installed releases live under ``DATA_DIR/ven_software/<name>/``; the
default release name is kept in ``DATA_DIR/ven_software/DEFAULT``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from pcelab.api.ven_core import AGENT_TOKEN_HEADER, LabError, hash_token, lab, not_found, refusals_as_responses
from pcelab.limits import parse_id

LIBRARY_FOLDER = "ven_software"
DEFAULT_FILE = "DEFAULT"
MANIFEST = "manifest.json"
PKG_TYPES = ("deb", "rpm", "msi", "exe")
# Host architectures as `uname -m` (or Windows) reports them, folded onto the names the manifest uses.
ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "i686": "x86", "i386": "x86"}
ANY_ARCH = ("noarch", "all")
RELEASE_PATTERN = re.compile(r"^\d+(\.\d+){1,3}$")
BUILD_PATTERN = re.compile(r"^\d+$")
FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
OS_PATTERN = re.compile(r"^[a-z0-9._]+(-[0-9]+)?$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
COPY_CHUNK = 1024 * 1024


class SoftwareError(Exception):
    """A library operation that cannot be done; the message says why, for users."""


@dataclass(frozen=True)
class Package:
    file: str
    os: tuple[str, ...]
    arch: str
    pkg_type: str
    sha256: str

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "os": list(self.os),
            "arch": self.arch,
            "pkg_type": self.pkg_type,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Release:
    release: str
    build: str
    packages: tuple[Package, ...]

    @property
    def name(self) -> str:
        return f"{self.release}-{self.build}"


def normalize_arch(arch: str) -> str:
    arch = arch.strip().lower()
    return ARCH_ALIASES.get(arch, arch)


def release_sort_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[.-]", name) if part.isdigit())


def parse_manifest(document: object) -> Release:
    """Check a manifest's content and turn it into a Release; every problem is reported by field."""
    if not isinstance(document, dict):
        raise SoftwareError("manifest.json must hold a JSON object")
    release = _required_text(document, "release", RELEASE_PATTERN, "a dotted version such as 21.5.20")
    build = _required_text(document, "build", BUILD_PATTERN, "digits such as 8451", allow_int=True)
    packages = document.get("packages")
    if not isinstance(packages, list) or not packages:
        raise SoftwareError("manifest.json: 'packages' must be a non-empty list")
    parsed = tuple(_parse_package(entry, index) for index, entry in enumerate(packages))
    names = [package.file for package in parsed]
    if len(set(names)) != len(names):
        raise SoftwareError("manifest.json: a package file is listed twice")
    return Release(release=release, build=build, packages=parsed)


def _required_text(document: dict, field: str, pattern: re.Pattern, expected: str, allow_int: bool = False) -> str:
    value = document.get(field)
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not pattern.match(value):
        raise SoftwareError(f"manifest.json: '{field}' must be {expected}")
    return value


def _parse_package(entry: object, index: int) -> Package:
    where = f"manifest.json: packages[{index}]"
    if not isinstance(entry, dict):
        raise SoftwareError(f"{where} must be an object")
    file = entry.get("file")
    if not isinstance(file, str) or not FILE_PATTERN.match(file):
        raise SoftwareError(f"{where}.file must be a plain file name (letters, digits, . _ + -)")
    systems = entry.get("os")
    systems = [systems] if isinstance(systems, str) else systems
    if not isinstance(systems, list) or not systems or not all(isinstance(s, str) for s in systems):
        raise SoftwareError(f"{where}.os must be a name or a list of names such as 'ubuntu-22', 'rhel', 'any'")
    systems = [s.lower() for s in systems]
    bad = [s for s in systems if not OS_PATTERN.match(s)]
    if bad:
        raise SoftwareError(f"{where}.os: {bad[0]!r} is not an os-release ID with an optional -MAJOR version")
    arch = entry.get("arch")
    if not isinstance(arch, str) or not arch.strip():
        raise SoftwareError(f"{where}.arch must be a CPU architecture such as x86_64, aarch64 or noarch")
    pkg_type = entry.get("pkg_type")
    if pkg_type not in PKG_TYPES:
        raise SoftwareError(f"{where}.pkg_type must be one of {', '.join(PKG_TYPES)}")
    digest = entry.get("sha256")
    if not isinstance(digest, str) or not SHA256_PATTERN.match(digest.lower()):
        raise SoftwareError(f"{where}.sha256 must be 64 hexadecimal digits")
    return Package(file=file, os=tuple(systems), arch=normalize_arch(arch), pkg_type=pkg_type, sha256=digest.lower())


class SoftwareLibrary:
    """The installed VEN releases of one lab PCE data folder."""

    def __init__(self, data_dir: str | os.PathLike):
        self.root = Path(data_dir) / LIBRARY_FOLDER

    # --- reading ---------------------------------------------------------------------------------
    def releases(self) -> list[Release]:
        if not self.root.is_dir():
            return []
        found = [self._load(folder) for folder in self.root.iterdir() if (folder / MANIFEST).is_file()]
        return sorted(found, key=lambda release: release_sort_key(release.name))

    def release(self, name: str) -> Release | None:
        if not _is_release_name(name):
            return None
        folder = self.root / name
        return self._load(folder) if (folder / MANIFEST).is_file() else None

    def default_name(self) -> str | None:
        marker = self.root / DEFAULT_FILE
        if not marker.is_file():
            return None
        name = marker.read_text().strip()
        return name if self.release(name) else None

    def package_file(self, release: Release, file: str) -> Path | None:
        if file not in {package.file for package in release.packages}:
            return None
        return self.root / release.name / file

    def _load(self, folder: Path) -> Release:
        return parse_manifest(json.loads((folder / MANIFEST).read_text()))

    # --- changing --------------------------------------------------------------------------------
    def install(self, bundle: str | os.PathLike) -> Release:
        """Unpack a bundle into the library, checking every package against its manifest sha256."""
        try:
            with tarfile.open(bundle) as archive:
                return self._install_from(archive)
        except (tarfile.TarError, OSError) as error:
            raise SoftwareError(f"cannot read bundle {bundle}: {error}") from None

    def delete(self, name: str) -> None:
        if not self.release(name):
            raise SoftwareError(f"release {name} is not in the VEN software library")
        if self.default_name() == name:
            raise SoftwareError(f"release {name} is the default release; make another release the default first")
        shutil.rmtree(self.root / name)

    def set_default(self, name: str) -> None:
        if not self.release(name):
            raise SoftwareError(f"release {name} is not in the VEN software library")
        marker = self.root / DEFAULT_FILE
        staging = marker.with_name(f".{DEFAULT_FILE}.{secrets.token_hex(4)}")
        staging.write_text(name + "\n")
        staging.replace(marker)

    def _install_from(self, archive: tarfile.TarFile) -> Release:
        release = parse_manifest(_read_manifest(archive))
        if (self.root / release.name).exists():
            raise SoftwareError(f"release {release.name} is already installed; delete it first to replace it")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".staging-{secrets.token_hex(6)}"
        staging.mkdir()
        try:
            for package in release.packages:
                _extract_checked(archive, package, staging / package.file)
            manifest = {
                "release": release.release,
                "build": release.build,
                "packages": [p.as_dict() for p in release.packages],
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            staging.rename(self.root / release.name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return release


def _is_release_name(name: str) -> bool:
    release, _, build = name.rpartition("-")
    return bool(RELEASE_PATTERN.match(release) and BUILD_PATTERN.match(build))


def _top_level_member(archive: tarfile.TarFile, name: str) -> tarfile.TarInfo | None:
    # Bundles made with `tar -C dir .` carry a './' prefix; both spellings name the same top-level file.
    for member in archive.getmembers():
        if member.name in (name, f"./{name}"):
            return member
    return None


def _read_manifest(archive: tarfile.TarFile) -> object:
    member = _top_level_member(archive, MANIFEST)
    if member is None or not member.isfile():
        raise SoftwareError("the bundle has no top-level manifest.json")
    try:
        return json.loads(archive.extractfile(member).read())
    except ValueError as error:
        raise SoftwareError(f"manifest.json is not valid JSON: {error}") from None


def _extract_checked(archive: tarfile.TarFile, package: Package, target: Path) -> None:
    member = _top_level_member(archive, package.file)
    if member is None or not member.isfile():
        raise SoftwareError(f"the bundle lacks {package.file}, listed in manifest.json")
    digest = hashlib.sha256()
    with archive.extractfile(member) as source, open(target, "wb") as sink:
        while chunk := source.read(COPY_CHUNK):
            digest.update(chunk)
            sink.write(chunk)
    if digest.hexdigest() != package.sha256:
        raise SoftwareError(f"{package.file}: sha256 {digest.hexdigest()} does not match manifest.json")


# --- choosing a package for a host -----------------------------------------------------------------
def host_os_candidates(os_id: str, os_version: str, os_like: str) -> list[str]:
    """Manifest `os` names that fit a host, most specific first (os-release ID, VERSION_ID, ID_LIKE)."""
    major = os_version.strip().split(".")[0]
    names = [os_id.strip().lower(), *os_like.lower().split()]
    candidates = []
    for name in filter(None, names):
        if major.isdigit():
            candidates.append(f"{name}-{major}")
        candidates.append(name)
    candidates.append("any")
    return list(dict.fromkeys(candidates))


def select_package(release: Release, os_id: str, os_version: str, os_like: str, arch: str, pkg_type: str) -> Package:
    """The package of a release that installs on the host described, or SoftwareError saying why none does."""
    arch = normalize_arch(arch)
    usable = [p for p in release.packages if p.pkg_type == pkg_type and (p.arch == arch or p.arch in ANY_ARCH)]
    for candidate in host_os_candidates(os_id, os_version, os_like):
        for package in usable:
            if candidate in package.os:
                return package
    raise SoftwareError(
        f"release {release.name} has no {pkg_type} package for {os_id} {os_version} ({arch}); "
        f"it has: {', '.join(p.file for p in release.packages)}"
    )


# --- pairing scripts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScriptKind:
    template: str
    mode: str  # "pair" activates right away, "prepare" leaves agent_activation.cfg for the next boot
    final_step: str


PAIRING_SCRIPTS = {
    "pair.sh": ScriptKind("pair.sh", "pair", "activates the VEN with illumio-ven-ctl activate"),
    "prepare.sh": ScriptKind("prepare.sh", "prepare", "writes agent_activation.cfg for activation at next boot"),
    "pair.ps1": ScriptKind("pair.ps1", "pair", "activates the VEN with illumio-ven-ctl.ps1 activate"),
    "prepare.ps1": ScriptKind("pair.ps1", "prepare", "writes agent_activation.cfg for activation at next boot"),
}


def _template(name: str) -> str:
    return (resources.files("pcelab") / "scripts" / name).read_text(encoding="utf-8")


def render_pairing_script(script: str, profile_id: int, ca_pem: str) -> str:
    """The pairing script `script` (a key of PAIRING_SCRIPTS) for one pairing profile, lab CA embedded."""
    kind = PAIRING_SCRIPTS[script]
    text = _template(kind.template)
    if "@@COMMON@@" in text:
        text = text.replace("@@COMMON@@", _template("common.sh").rstrip("\n"), 1)
    replacements = {
        "@@SCRIPT_NAME@@": script,
        "@@PROFILE_ID@@": str(int(profile_id)),
        "@@MODE@@": kind.mode,
        "@@FINAL_STEP_SUMMARY@@": kind.final_step,
        "@@CA_PEM@@": ca_pem.strip(),
    }
    for marker, value in replacements.items():
        text = text.replace(marker, value)
    return text


# --- command line ------------------------------------------------------------------------------------------
def cli_install(data_dir: str, bundle: str) -> int:
    """`pcelab ven-software-install --data-dir DIR BUNDLE`."""
    try:
        release = SoftwareLibrary(data_dir).install(bundle)
    except SoftwareError as error:
        print(f"pcelab: {error}", file=sys.stderr)
        return 1
    print(f"installed VEN release {release.name} ({len(release.packages)} packages)")
    return 0


def cli_software(data_dir: str, action: str, release: str | None = None) -> int:
    """`pcelab ven-software list | delete RELEASE | default RELEASE --data-dir DIR`."""
    library = SoftwareLibrary(data_dir)
    try:
        if action == "list":
            _print_releases(library)
        elif action == "delete":
            library.delete(release or "")
            print(f"deleted VEN release {release}")
        elif action == "default":
            library.set_default(release or "")
            print(f"default VEN release is now {release}")
        else:
            raise SoftwareError(f"unknown action {action!r}: use list, delete RELEASE or default RELEASE")
    except SoftwareError as error:
        print(f"pcelab: {error}", file=sys.stderr)
        return 1
    return 0


def register_cli(subparsers) -> None:
    """Add `ven-software-install` and `ven-software` to an argparse sub-command set; each sets `func`."""
    install = subparsers.add_parser("ven-software-install", help="add a VEN software bundle to the library")
    install.add_argument("--data-dir", required=True, help="the lab PCE's data folder")
    install.add_argument("bundle", help="tarball with manifest.json and the VEN packages")
    install.set_defaults(func=lambda args: cli_install(args.data_dir, args.bundle))
    manage = subparsers.add_parser("ven-software", help="list the VEN library, delete a release, set the default")
    manage.add_argument("action", choices=("list", "delete", "default"))
    manage.add_argument("release", nargs="?", help="release name such as 21.5.20-8451 (delete, default)")
    manage.add_argument("--data-dir", required=True, help="the lab PCE's data folder")
    manage.set_defaults(func=lambda args: cli_software(args.data_dir, args.action, args.release))


def cli_main(argv: list[str] | None = None) -> int:
    """Run one of the two commands from its own argument list (for a CLI that dispatches by command name)."""
    parser = argparse.ArgumentParser(prog="pcelab")
    register_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    if args.command == "ven-software" and args.action != "list" and not args.release:
        parser.error(f"ven-software {args.action} needs a RELEASE")
    return args.func(args)


def _print_releases(library: SoftwareLibrary) -> None:
    default = library.default_name()
    releases = library.releases()
    if not releases:
        print("no VEN releases installed (add one with: pcelab ven-software-install --data-dir DIR BUNDLE)")
    for release in releases:
        marker = " (default)" if release.name == default else ""
        print(f"{release.name}{marker}")
        for package in release.packages:
            print(f"  {package.file}  {package.pkg_type} {package.arch} os={','.join(package.os)}")


# --- endpoints ---------------------------------------------------------------------------------------------
ACTIVATION_CODE_HEADER = "x-lab-activation-code"


def _failing_script(script: str, message: str, status: int) -> Response:
    """An error the documented one-liner shows: it runs whatever curl saved, so the body fails loudly."""
    if script.endswith(".ps1"):
        body = f"Write-Error 'pcelab: {message}'\nexit 1\n"
    else:
        body = f"#!/bin/sh\necho 'pcelab: {message}' >&2\nexit 1\n"
    return PlainTextResponse(body, status_code=status)


async def pairing_script(request: Request) -> Response:
    """GET /api/v18/software/ven/image?pair_script=pair.sh&profile_id=N, unauthenticated like the PCE's."""
    core = lab(request)
    script = request.query_params.get("pair_script", "")
    if script not in PAIRING_SCRIPTS:
        return _failing_script("pair.sh", f"pair_script must be one of {', '.join(PAIRING_SCRIPTS)}", 406)
    profile_id = request.query_params.get("profile_id", "")
    from pcelab.api.pairing import ProfileStore  # see _release_for_download

    with core.transaction() as db:
        number = parse_id(profile_id)
        profile = ProfileStore(db).find_any_org(number) if number is not None else None
    if profile is None:
        return _failing_script(script, f"no pairing profile {profile_id[:20]!r}", 404)
    media = "text/x-shellscript" if script.endswith(".sh") else "text/plain"
    return PlainTextResponse(render_pairing_script(script, profile["id"], core.ca_pem), media_type=media)


def _release_for_download(request: Request, core, db) -> str | None:
    """Check the caller's credential; return the release it should get unless it names one itself."""
    # Imported here: pairing and vens import this module for the library, so it cannot import them first.
    from pcelab.api.pairing import ProfileStore, profile_settings, usable_key
    from pcelab.api.vens import VenStore

    code = request.headers.get(ACTIVATION_CODE_HEADER)
    token = request.headers.get(AGENT_TOKEN_HEADER)
    library = SoftwareLibrary(core.data_dir)
    if code:
        _, profile = usable_key(ProfileStore(db), code, core.now())
        return profile_settings(profile)["agent_software_release"] or library.default_name()
    if token:
        ven = VenStore(db).by_token(hash_token(token))
        if ven is None:
            raise LabError("invalid_agent_token", f"unknown {AGENT_TOKEN_HEADER} header", 401)
        return ven["pending_upgrade"] or library.default_name()
    raise LabError("authentication_required", f"send {ACTIVATION_CODE_HEADER} or {AGENT_TOKEN_HEADER}", 401)


@refusals_as_responses
async def select(request: Request) -> Response:
    """Which package of the release fits the host described in the query; text/plain key=value lines."""
    core, params = lab(request), request.query_params
    with core.transaction() as db:
        granted = _release_for_download(request, core, db)
    wanted = params.get("release") if request.headers.get(AGENT_TOKEN_HEADER) else None
    name = wanted or granted
    release = SoftwareLibrary(core.data_dir).release(name) if name else None
    if release is None:
        raise LabError("release_not_found", f"VEN release {name or '(no default)'} is not in the library", 404)
    try:
        package = select_package(
            release,
            params.get("os_id", ""),
            params.get("os_version", ""),
            params.get("os_like", ""),
            params.get("arch", ""),
            params.get("pkg_type", ""),
        )
    except SoftwareError as error:
        raise LabError("no_matching_package", str(error), 404) from None
    lines = [
        f"release={release.name}",
        f"file={package.file}",
        f"sha256={package.sha256}",
        f"path=/lab/ven-software/releases/{release.name}/{package.file}",
    ]
    return PlainTextResponse("\n".join(lines) + "\n")


@refusals_as_responses
async def download(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        _release_for_download(request, core, db)
    library = SoftwareLibrary(core.data_dir)
    release = library.release(request.path_params["release"])
    path = release and library.package_file(release, request.path_params["file"])
    if not path or not path.is_file():
        return not_found("VEN package")
    return FileResponse(path, media_type="application/octet-stream", filename=path.name)


async def list_releases(request: Request) -> Response:
    core = lab(request)
    library = SoftwareLibrary(core.data_dir)
    default = library.default_name()
    shown = [
        {"release": r.name, "default": r.name == default, "packages": [p.as_dict() for p in r.packages]}
        for r in library.releases()
    ]
    return core.collection(request, shown)


ROUTES = [
    Route("/api/{api_version}/software/ven/image", pairing_script, methods=["GET"]),
    Route("/lab/ven-software/select", select, methods=["GET"]),
    Route("/lab/ven-software/releases/{release}/{file}", download, methods=["GET"]),
    Route("/api/v2/orgs/{org_id:id}/lab/ven_software_releases", list_releases, methods=["GET"]),
]
