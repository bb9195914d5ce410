"""ven_repo_facts with fake package managers (no root): what it reads and what it reports."""

from __future__ import annotations

from ansible_collections.microseg.illumio.plugins.module_utils.ven import package_index
from ansible_collections.microseg.illumio.plugins.modules import ven_repo_facts
from module_runner import run_module

DNF_LIST = """\
Available Packages
illumio-ven.x86_64                 23.2.10-100.c8                     illumio
illumio-ven.x86_64                 23.2.20-200.c8                     illumio
"""


def fake_tool(folder, name, output, rc=0):
    script = folder / name
    script.write_text(f"#!/bin/sh\n/bin/cat <<'EOF'\n{output}EOF\nexit {rc}\n")
    script.chmod(0o755)


def test_module_on_a_dnf_host_reads_the_cache_only(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "dnf", DNF_LIST)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(package_index, "DNF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(package_index, "DNF_SOURCES", (str(tmp_path / "repos"),))
    result = run_module(ven_repo_facts.main, {"version": "23.2.20-200.c8"}, check_mode=True)
    facts = result["ansible_facts"]["ven_repo"]
    assert result["changed"] is False
    assert facts["manager"] == "dnf" and facts["versions"] == ["23.2.10-100.c8", "23.2.20-200.c8"]
    assert facts["index_age"] is None
    assert facts["refresh"] is True and facts["refresh_reason"] == "the package index is older than 3600 seconds"


def test_module_fails_clearly_without_a_package_manager(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run_module(ven_repo_facts.main, {})
    assert result["failed"] is True
    assert "neither apt nor dnf" in result["msg"]
