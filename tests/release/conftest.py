"""Fixtures for the release checks: the collection built by ansible-galaxy from a clean copy of the checkout,
installed into a collections path of its own, and a lab PCE.

Everything that runs Ansible here sees ONLY that clean install (ANSIBLE_COLLECTIONS_PATH, no sys.path scan, a
private ANSIBLE_HOME, a working folder outside the checkout), so a file missing from the tarball fails a test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from with_lab import LabPce, running_lab  # noqa: E402

BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_SECONDS = 600


def galaxy_metadata() -> dict:
    return yaml.safe_load((REPO / "galaxy.yml").read_text())


def clean_environment(collections_path: Path, ansible_home: Path, extra: dict[str, str] | None = None) -> dict:
    """The environment of this process without any Ansible or PCE setting, pointed at the clean install only."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("ANSIBLE_", "ILLUMIO_"))}
    environment.update(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_HOME=str(ansible_home),
        ANSIBLE_LOCAL_TEMP=str(ansible_home / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    environment.update(extra or {})
    return environment


def run(command: list, cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def copy_source_tree(destination: Path) -> Path:
    """The files git knows (tracked, and new ones not ignored), as `make stage` takes them; links stay links."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in sorted({name for name in listed.split("\0") if name}):
        source = REPO / name
        if not os.path.lexists(source):  # deleted in the working tree, not yet in git
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> LabPce:
    data_dir = tmp_path_factory.mktemp("pcelab")
    with running_lab(str(data_dir)) as running:
        yield running


@pytest.fixture(scope="session")
def ansible_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("ansible-home")
    (home / "tmp").mkdir()
    return home


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """A folder outside the checkout to run commands in (no ansible.cfg, no adjacent collections)."""
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory, ansible_home, workdir) -> Path:
    """microseg-illumio-<version>.tar.gz, built by ansible-galaxy from a clean copy of the checkout."""
    source = copy_source_tree(tmp_path_factory.mktemp("source") / "illumio")
    output = tmp_path_factory.mktemp("dist")
    environment = clean_environment(tmp_path_factory.mktemp("no-collections"), ansible_home)
    run([BIN / "ansible-galaxy", "collection", "build", source, "--output-path", output], workdir, environment)
    version = galaxy_metadata()["version"]
    tarball = output / f"microseg-illumio-{version}.tar.gz"
    assert tarball.is_file(), sorted(output.iterdir())
    return tarball


@pytest.fixture(scope="session")
def installed_collections(tmp_path_factory, collection_tarball, ansible_home, workdir) -> Path:
    """A collections path holding only microseg.illumio, installed from the tarball without Galaxy."""
    root = tmp_path_factory.mktemp("clean-collections")
    environment = clean_environment(root, ansible_home)
    run(
        [BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", root, collection_tarball],
        workdir,
        environment,
    )
    assert (root / "ansible_collections" / "microseg" / "illumio" / "MANIFEST.json").is_file()
    return root


@pytest.fixture(scope="session")
def installed_collection(installed_collections) -> Path:
    return installed_collections / "ansible_collections" / "microseg" / "illumio"
