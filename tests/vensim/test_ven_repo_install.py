"""Role microseg.illumio.ven installs from a package repository added a minute ago, whatever the index's age.

Each test host gets an apt repository with the VEN stand-in's packages, added after its package index was last
refreshed: one index a minute old (younger than ven_repo_cache_valid_time, so apt's own cache_valid_time would
skip the refresh and miss the repository), one two hours old. Both must install. A re-run with nothing to install
must not refresh the index, and an upgrade to a version the index already holds installs without refreshing it.
An apt hook on each host counts the real refreshes. Needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import rolelab

REPO = Path(__file__).resolve().parent.parent.parent
PACKAGES = REPO / ".build" / "vensim"
OLD, NEW = "23.2.10-100", "23.2.20-200"
NEEDED_TOOLS = ("ip", "nsenter", "unshare", "sshd", "ssh", "dpkg-scanpackages", "apt-get")
MISSING_TOOLS = [tool for tool in NEEDED_TOOLS if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root: network namespaces, mounts, sshd"),
    pytest.mark.skipif(bool(MISSING_TOOLS), reason=f"missing tools: {' '.join(MISSING_TOOLS)}"),
]
# host -> how old its package index is when the repository is added
INDEX_AGE = {"vp1": 60, "vp2": 7200}
REFRESH_LOG = "/var/log/apt-refreshes"

PLAYBOOK = """\
- name: Install the VEN from the package repository
  hosts: all
  gather_facts: false
  roles:
    - role: microseg.illumio.ven
      vars:
        ven_state: present
        ven_install_method: repo
        ven_version: "{{ wanted_version }}"
"""

# The test hosts reach no mirror: the index is refreshed from a local repository, then the VEN's repository
# is added "a minute later" (its list file is newer than the index), as a user adds Illumio's.
SETUP = r"""
set -e
mkdir -p /srv/base-repo /srv/ven-repo
: > /srv/base-repo/Packages
cd /srv/ven-repo && dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null
rm -rf /etc/apt/sources.list /etc/apt/sources.list.d && mkdir /etc/apt/sources.list.d
echo 'deb [trusted=yes] file:/srv/base-repo ./' > /etc/apt/sources.list.d/base.list
echo 'APT::Update::Post-Invoke {{ "date +%s >> {log}"; }};' > /etc/apt/apt.conf.d/99count-refreshes
apt-get update -qq
touch -d @{index_time} /var/lib/apt/lists /var/lib/apt/lists/*
rm -f {log}
echo 'deb [trusted=yes] file:/srv/ven-repo ./' > /etc/apt/sources.list.d/illumio-ven.list
"""


@pytest.fixture(scope="module")
def lab():
    if not (PACKAGES / f"illumio-ven-{NEW}.deb12.amd64.deb").exists():
        pytest.skip(f"{PACKAGES} lacks the stand-in packages: run `make vensim`")
    with rolelab.RoleLab("pytest-ven-repo", tuple(INDEX_AGE), "10.213.247.0/24", "hlvrepo0") as running:
        for host, age in INDEX_AGE.items():
            for version in (OLD, NEW):
                name = f"illumio-ven-{version}.deb12.amd64.deb"
                put_file(running, host, PACKAGES / name, f"/srv/ven-repo/{name}")
            running.exec(host, "sh", "-c", SETUP.format(log=REFRESH_LOG, index_time=int(time.time()) - age))
        playbook = running.pce_dir / "repo-install.yml"
        playbook.write_text(PLAYBOOK, encoding="utf-8")
        running.repo_playbook = playbook
        yield running


def put_file(lab, host: str, source: Path, dest: str) -> None:
    """Copy a controller file to a host over ssh (a host never sees the controller's /tmp, where a checkout may be)."""
    with source.open("rb") as data:
        subprocess.run(
            ["ssh", "-F", str(lab.state_dir / "ssh_config"), host, f"mkdir -p {Path(dest).parent} && cat > {dest}"],
            stdin=data,
            check=True,
            timeout=60,
        )


def install(lab, version: str, *extra: str):
    return lab.playbook(str(lab.repo_playbook), "-e", json.dumps({"wanted_version": version}), *extra)


def refreshes(lab, host: str) -> int:
    return len(lab.exec(host, "sh", "-c", f"cat {REFRESH_LOG} 2>/dev/null || true").split())


def installed_version(lab, host: str) -> str:
    return lab.exec(host, "sh", "-c", "dpkg-query -W -f='${Version}' illumio-ven 2>/dev/null || true").strip()


@pytest.fixture(scope="module")
def first_install(lab):
    check = install(lab, OLD, "--check")
    after_check = {host: (refreshes(lab, host), installed_version(lab, host)) for host in INDEX_AGE}
    return check, install(lab, OLD), after_check


def test_check_mode_reports_the_install_and_changes_nothing(first_install):
    check, after_check = first_install[0], first_install[2]
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr[-2000:]
    assert "would refresh the package index (version 23.2.10-100 is not in the package index)" in check.stdout
    assert all(counters["changed"] > 0 for counters in rolelab.recap(check.stdout).values())
    assert after_check == {host: (0, "") for host in INDEX_AGE}


def test_a_repository_added_after_a_young_or_an_old_index_is_found(lab, first_install):
    run = first_install[1]
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    for host in INDEX_AGE:
        assert installed_version(lab, host) == OLD, host
        assert refreshes(lab, host) == 1, f"{host}: the index must be refreshed once before installing"


def test_a_rerun_with_nothing_to_install_does_not_refresh(lab, first_install):
    run = install(lab, OLD)
    assert run.returncode == 0, run.stdout[-4000:]
    assert all(counters["changed"] == 0 for counters in rolelab.recap(run.stdout).values()), run.stdout[-3000:]
    for host in INDEX_AGE:
        assert refreshes(lab, host) == 1, f"{host}: refreshed although nothing was to be installed"


def test_an_upgrade_the_index_already_knows_installs_without_refreshing(lab, first_install):
    run = install(lab, NEW, "--limit", "vp1")
    assert run.returncode == 0, run.stdout[-4000:]
    assert installed_version(lab, "vp1") == NEW
    assert refreshes(lab, "vp1") == 1, "the index was refreshed a moment ago and holds the version"
