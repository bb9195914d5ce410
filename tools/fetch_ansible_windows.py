"""Put the ansible.windows collection in a collections folder, taken from the pinned `ansible` wheel on PyPI.

    python tools/fetch_ansible_windows.py --collections-path .build/collections

Ansible Galaxy may be out of reach (CI, offline mirrors) while the Python package index is not: the `ansible`
package on PyPI ships every collection it includes, ansible.windows among them. This downloads that one
wheel with pip (no dependencies, wheels only) and extracts only `ansible_collections/ansible/windows/` to
`<collections path>/ansible_collections/ansible/windows`. A copy already there from the same `ansible`
release is left alone; another one is replaced. The role microseg.illumio.ven needs it for Windows hosts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

# ansible 12.x requires ansible-core 2.19; 12.3.0 ships ansible.windows 3.3.0 (requires_ansible >= 2.16).
ANSIBLE_RELEASE = "12.3.0"
PREFIX = "ansible_collections/ansible/windows/"
# Written next to the extracted files: which `ansible` release they came from.
MARKER = ".fetched-from-ansible"


def collection_dir(collections_path: Path) -> Path:
    return collections_path / "ansible_collections" / "ansible" / "windows"


def installed_release(target: Path) -> str | None:
    """The `ansible` release the copy in target came from, or None when there is no complete copy."""
    try:
        release = (target / MARKER).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return release if (target / "MANIFEST.json").is_file() else None


def download_wheel(release: str, folder: Path) -> Path:
    """`pip download ansible==RELEASE --no-deps --only-binary=:all: -d FOLDER`; the wheel's path."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"ansible=={release}",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(folder),
    ]
    subprocess.run(command, check=True)
    wheels = sorted(folder.glob(f"ansible-{release}-*.whl"))
    if not wheels:
        raise SystemExit(f"fetch_ansible_windows: pip did not leave an ansible {release} wheel in {folder}")
    return wheels[0]


def extract_collection(wheel: Path, destination: Path) -> int:
    """Extract the members under PREFIX into destination (PREFIX removed); how many files were written."""
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if not member.filename.startswith(PREFIX) or member.is_dir():
                continue
            relative = PurePosixPath(member.filename[len(PREFIX) :])
            if relative.is_absolute() or ".." in relative.parts:
                raise SystemExit(f"fetch_ansible_windows: unsafe path in the wheel: {member.filename}")
            target = destination.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
            count += 1
    if not (destination / "MANIFEST.json").is_file():
        raise SystemExit(f"fetch_ansible_windows: {wheel.name} has no {PREFIX}MANIFEST.json")
    return count


def collection_version(target: Path) -> str:
    manifest = json.loads((target / "MANIFEST.json").read_text(encoding="utf-8"))
    return manifest["collection_info"]["version"]


def fetch(collections_path: Path, release: str, wheel_dir: Path | None = None) -> str:
    """Make sure the collections path holds ansible.windows from `ansible` release; a line saying what was done."""
    target = collection_dir(collections_path)
    if installed_release(target) == release:
        return f"ansible.windows {collection_version(target)} (ansible {release}) already in {target}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetch-ansible-windows-", dir=target.parent) as scratch:
        scratch_path = Path(scratch)
        wheel = download_wheel(release, wheel_dir or scratch_path / "wheel")
        staged = scratch_path / "windows"
        count = extract_collection(wheel, staged)
        (staged / MARKER).write_text(release + "\n", encoding="utf-8")
        # Swap in the complete copy only once it is complete.
        if target.exists() or target.is_symlink():
            old = scratch_path / "old"
            target.rename(old)
        staged.rename(target)
    return f"ansible.windows {collection_version(target)} (ansible {release}, {count} files) extracted to {target}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--collections-path",
        required=True,
        type=Path,
        help="the folder that holds (or will hold) ansible_collections/, such as .build/collections",
    )
    parser.add_argument("--release", default=ANSIBLE_RELEASE, help=f"the ansible release (default {ANSIBLE_RELEASE})")
    parser.add_argument("--wheel-dir", type=Path, help="keep the downloaded wheel here (default: a temporary folder)")
    args = parser.parse_args(argv)
    print(fetch(args.collections_path.resolve(), args.release, args.wheel_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
