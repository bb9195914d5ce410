"""When the package index must be refreshed before installing the VEN from a repository (apt and dnf)."""

from __future__ import annotations

import os

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.ven import package_index

NOW = 1_800_000_000
HOUR = 3600

MADISON = """\
illumio-ven | 23.2.20-200 | file:/srv/ven-repo ./ Packages
illumio-ven | 23.2.10-100 | file:/srv/ven-repo ./ Packages
illumio-ven-ctl-tools | 1.0 | file:/srv/ven-repo ./ Packages
"""

DNF_LIST = """\
Available Packages
illumio-ven.x86_64                 23.2.10-100.c8                     illumio
illumio-ven.x86_64                 1:23.2.20-200.c8                   illumio
illumio-ven-debuginfo.x86_64       23.2.20-200.c8                     illumio
"""


def test_apt_versions_come_from_the_repository_lines_of_this_package_only():
    assert package_index.parse_apt_madison(MADISON, "illumio-ven") == ["23.2.20-200", "23.2.10-100"]
    assert package_index.parse_apt_madison("", "illumio-ven") == []


def test_dnf_versions_drop_the_arch_and_the_epoch():
    assert package_index.parse_dnf_list(DNF_LIST, "illumio-ven") == ["23.2.10-100.c8", "23.2.20-200.c8"]


@pytest.mark.parametrize(
    ("known", "version", "index_time", "sources_time", "reason"),
    [
        # The bug this guards against: a young index, a repository added after it.
        (["23.2.10-100"], "23.2.20-200", NOW - 60, NOW - 10, "version 23.2.20-200 is not in the package index"),
        ([], "", NOW - 60, NOW - 120, "the package is not in the package index"),
        (["23.2.10-100"], "", NOW - 60, NOW - 10, "a package source changed after the index was refreshed"),
        (
            ["23.2.10-100"],
            "23.2.10-100",
            NOW - 2 * HOUR,
            NOW - 3 * HOUR,
            "the package index is older than 3600 seconds",
        ),
        (["23.2.10-100"], "23.2.10-100", NOW - 60, NOW - 120, None),
        (["23.2.10-100"], "", NOW - 60, NOW - 120, None),
    ],
)
def test_refresh_only_when_the_index_cannot_be_trusted(known, version, index_time, sources_time, reason):
    assert package_index.refresh_reason(known, version, index_time, sources_time, NOW, HOUR) == reason


def test_an_index_without_package_lists_was_never_refreshed(tmp_path, monkeypatch):
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    monkeypatch.setattr(package_index, "APT_LISTS", str(lists))
    monkeypatch.setattr(package_index, "APT_UPDATE_STAMP", str(tmp_path / "no-stamp"))
    assert package_index.apt_index_time() == 0
    (lists / "_srv_ven-repo_._Packages.lz4").write_text("")
    os.utime(lists, (NOW - 60, NOW - 60))
    assert package_index.apt_index_time() == NOW - 60


def test_a_new_file_in_a_sources_folder_counts_as_a_change(tmp_path, monkeypatch):
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    os.utime(folder, (NOW - HOUR, NOW - HOUR))
    monkeypatch.setattr(package_index, "APT_SOURCES", (str(tmp_path / "sources.list"), str(folder)))
    assert package_index.sources_time("apt") == NOW - HOUR
    (folder / "illumio.list").write_text("deb https://repo.example/ven ./\n")
    os.utime(folder / "illumio.list", (NOW - 5, NOW - 5))
    assert package_index.sources_time("apt") == NOW - 5
