"""Fixtures for integration tests: a lab PCE for the whole session and a way to run playbooks on it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

from with_lab import LabPce, running_lab  # noqa: E402

TARGETS = REPO / "tests" / "integration" / "targets"
PLAYBOOK_TIMEOUT_SECONDS = 600


@dataclass
class PlaybookRun:
    returncode: int
    output: str


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> LabPce:
    data_dir = tmp_path_factory.mktemp("pcelab")
    with running_lab(str(data_dir)) as running:
        yield running


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> Path:
    """A collections path in which this checkout is microseg.illumio, whatever folder it was cloned to."""
    root = tmp_path_factory.mktemp("collections")
    namespace = root / "ansible_collections" / "microseg"
    namespace.mkdir(parents=True)
    (namespace / "illumio").symlink_to(REPO, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def run_playbook(lab, collections_path, tmp_path_factory):
    """Run a playbook on localhost against the lab; returns its exit status and combined output."""
    inventory = tmp_path_factory.mktemp("inventory") / "hosts.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")

    def run(playbook: Path, *args: str, env: dict[str, str | None] | None = None) -> PlaybookRun:
        environment = {**os.environ, **lab.environment(), **(env or {})}
        environment = {name: value for name, value in environment.items() if value is not None}
        environment.update(
            ANSIBLE_COLLECTIONS_PATH=str(collections_path),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="0",
        )
        command = [Path(sys.executable).with_name("ansible-playbook"), "-i", str(inventory), str(playbook), *args]
        done = subprocess.run(
            [str(part) for part in command],
            env=environment,
            capture_output=True,
            text=True,
            timeout=PLAYBOOK_TIMEOUT_SECONDS,
            check=False,
        )
        return PlaybookRun(done.returncode, done.stdout + done.stderr)

    return run


@pytest.fixture
def target_playbook(tmp_path):
    """Write a playbook that runs one target of tests/integration/targets as a role."""

    def write(target: str) -> Path:
        playbook = tmp_path / f"{target}.yml"
        playbook.write_text(
            f"- name: Integration target {target}\n"
            "  hosts: localhost\n"
            "  gather_facts: false\n"
            "  roles:\n"
            f"    - role: {TARGETS / target}\n"
        )
        return playbook

    return write
