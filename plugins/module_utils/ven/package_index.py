# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the host's package manager knows of a package, and whether its index must be refreshed first.

A package index that is "fresh" by age alone misses a repository added a minute ago (apt's cache_valid_time
keeps the old index). So the index is refreshed when the wanted version is unknown to it, when a source list
changed after it was last refreshed, or when it is older than the allowed age. Runs on managed hosts: Python
3.6+, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import glob
import os

APT_LISTS = "/var/lib/apt/lists"
APT_UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"
APT_SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")
DNF_CACHE = "/var/cache/dnf"
DNF_SOURCES = ("/etc/yum.repos.d",)


def parse_apt_madison(text, name):
    """Versions from `apt-cache madison NAME` (`NAME | VERSION | SOURCE` lines; installed-only versions are absent)."""
    versions = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) >= 3 and fields[0] == name and fields[1] not in versions:
            versions.append(fields[1])
    return versions


def parse_dnf_list(text, name):
    """Versions from `dnf --cacheonly list --showduplicates NAME` (`NAME.ARCH  [EPOCH:]VERSION-RELEASE  REPO`)."""
    versions = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0].rpartition(".")[0] != name:
            continue
        version = fields[1].split(":", 1)[1] if ":" in fields[1] else fields[1]
        if version not in versions:
            versions.append(version)
    return versions


def _newest_mtime(paths):
    """The newest modification time among paths (folders count with their entries); 0 when none exists."""
    newest = 0
    for path in paths:
        candidates = [path] + (glob.glob(os.path.join(path, "*")) if os.path.isdir(path) else [])
        for candidate in candidates:
            try:
                newest = max(newest, os.stat(candidate).st_mtime)
            except OSError:
                continue
    return newest


def apt_index_time():
    """When apt's index was last refreshed (as the apt module reads it); 0 when it holds no package lists."""
    if not glob.glob(os.path.join(APT_LISTS, "*_Packages*")):
        return 0
    for path in (APT_UPDATE_STAMP, APT_LISTS):
        if os.path.exists(path):
            return os.stat(path).st_mtime
    return 0


def dnf_index_time():
    """When dnf last stored repository metadata; 0 when it has none."""
    found = glob.glob(os.path.join(DNF_CACHE, "*", "repodata", "repomd.xml"))
    return max([os.stat(path).st_mtime for path in found] or [0])


def sources_time(manager):
    return _newest_mtime(APT_SOURCES if manager == "apt" else DNF_SOURCES)


def refresh_reason(known_versions, version, index_time, sources_changed, now, valid_time):
    """Why the index must be refreshed before installing `version` (any when empty), or None when it need not."""
    if version and version not in known_versions:
        return "version %s is not in the package index" % version
    if not version and not known_versions:
        return "the package is not in the package index"
    if sources_changed > index_time:
        return "a package source changed after the index was refreshed"
    if now - index_time > valid_time:
        return "the package index is older than %d seconds" % valid_time
    return None
