"""The README's endpoint table names every route the lab serves (a new endpoint without a row fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pcelab.app import endpoint_modules

README = Path(__file__).resolve().parents[1] / "README.md"
NAMED = {"{org_id:id}": "{org}", "{kind:policy_kind}": "{kind}", "{api_version}": "{version}"}


def documented_path(path: str) -> str:
    """A route's path as the README writes it: without /api/v2, parameters as {org}, {kind}, {version}, {id}."""
    path = path.removeprefix("/api/v2")
    for raw, shown in NAMED.items():
        path = path.replace(raw, shown)
    return re.sub(r"\{(?!org}|kind}|version})[^}]+\}", "{id}", path)


def routes() -> list[tuple[str, str]]:
    found = []
    for module in endpoint_modules():
        for route in getattr(module, "ROUTES", []):
            for method in sorted(set(route.methods or ()) - {"HEAD"}):
                found.append((method, documented_path(route.path)))
    return sorted(set(found))


def table_rows() -> list[tuple[set[str], list[str]]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## What it answers", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[1].startswith("`"):
            rows.append(({method.strip() for method in cells[0].split(",")}, re.findall(r"`([^`]+)`", cells[1])))
    return rows


@pytest.mark.parametrize(("method", "path"), routes())
def test_every_route_has_a_row(method, path):
    for methods, paths in table_rows():
        if method in methods and any(path == p or (p.endswith("/...") and path.startswith(p[:-3])) for p in paths):
            return
    pytest.fail(f"tools/pcelab/README.md has no row for {method} {path}")
