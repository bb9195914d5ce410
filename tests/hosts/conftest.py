"""Host tests: roles and modules run by ansible-playbook against real hosts from tests/hostlab.

Needs root (network namespaces, sshd); every test here is skipped, with the reason, otherwise. Each suite brings up
its own lab (own state dir, bridge and subnet), so it never meets a developer's lab or another suite's hosts:

    from hostlab_support import HostLab, write_playbook

    lab = HostLab("/var/tmp/hostlab-pytest-NAME", "hlNAME0", "10.213.240.0/24", ("h1", "h2"))
    with lab.running():
        lab.ssh("h1", "nft list ruleset")
        run = ansible_playbook(lab, write_playbook(tmp_path / "play.yml", plays))   # fixture below
        assert run.recap("h1")["changed"] == 0

The collection under test is this checkout, exposed as microseg.illumio through a symlink (like tests/integration).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostlab_support import PLAYBOOK_TIMEOUT_SECONDS, REPO, HostLab, PlaybookRun, skip_reason


def pytest_collection_modifyitems(config, items):
    reason = skip_reason()
    if not reason:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> Path:
    """A collections path in which this checkout is microseg.illumio, whatever folder it was cloned to."""
    root = tmp_path_factory.mktemp("collections")
    namespace = root / "ansible_collections" / "microseg"
    namespace.mkdir(parents=True)
    (namespace / "illumio").symlink_to(REPO, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def ansible_playbook(collections_path, tmp_path_factory):
    """ansible_playbook(lab, playbook, *args) -> PlaybookRun, against the lab's inventory."""
    home = tmp_path_factory.mktemp("ansible")

    def run(lab: HostLab, playbook: Path, *args: str) -> PlaybookRun:
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
            "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
        }
        command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(lab.inventory), str(playbook)]
        command += args
        started = time.monotonic()
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=PLAYBOOK_TIMEOUT_SECONDS, check=False
        )
        return PlaybookRun(done.returncode, done.stdout + done.stderr, time.monotonic() - started)

    return run
