"""`pcelab demo-org`: the demo org seeded over the lab's HTTP API, TLS verified, idempotent."""

from __future__ import annotations

import os
import subprocess

from conftest import API_SECRET, API_USER, ORG, PCELAB
from pcelab import demo_org

DEMO_NAMES = {spec.get("hostname") or spec["name"] for spec in demo_org.DEMO_WORKLOADS}
DEMO_NAMES.add(demo_org.DEMO_MANAGED["hostname"])


def environment(lab, **changes: str | None) -> dict[str, str]:
    """The collection's variables for LAB (host localhost: the name the lab certificate has)."""
    variables = {
        "ILLUMIO_PCE_HOST": "localhost",
        "ILLUMIO_PCE_PORT": str(lab.info["port"]),
        "ILLUMIO_PCE_ORG_ID": "1",
        "ILLUMIO_API_KEY_USERNAME": API_USER,
        "ILLUMIO_API_KEY_SECRET": API_SECRET,
        "ILLUMIO_PCE_CA_PATH": lab.ca,
        **changes,
    }
    return {name: value for name, value in variables.items() if value is not None}


def test_demo_org_is_seeded_once(lab, api, capsys):
    base = {name: value for name, value in os.environ.items() if not name.startswith("ILLUMIO_")}
    first = subprocess.run(
        [*PCELAB, "demo-org"], env={**base, **environment(lab)}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"demo org: {len(DEMO_NAMES)} workload(s) created, {len(DEMO_NAMES)} in the demo set\n"

    workloads = api.get(f"{ORG}/workloads").json()
    by_name = {item.get("hostname") or item.get("name"): item for item in workloads}
    assert set(by_name) == DEMO_NAMES
    managed = by_name[demo_org.DEMO_MANAGED["hostname"]]
    assert managed["ven"] and managed["agent"]["status"]["agent_version"] == demo_org.DEMO_MANAGED["agent_version"]
    assert not by_name["db1.demo.example"]["ven"]
    labels = {(label["key"], label["value"]) for label in api.get(f"{ORG}/labels").json()}
    assert set(demo_org.DEMO_LABELS) <= labels

    assert demo_org.command(environ=environment(lab)) == 0
    assert capsys.readouterr().out == f"demo org: 0 workload(s) created, {len(DEMO_NAMES)} in the demo set\n"
    assert len(api.get(f"{ORG}/workloads").json()) == len(workloads)


def test_refusals_and_missing_settings_are_clear(lab, capsys):
    assert demo_org.command(environ=environment(lab, ILLUMIO_API_KEY_SECRET="0" * 64)) == 1
    error = capsys.readouterr().err
    assert "GET /api/v2/orgs/1/label_dimensions: 401" in error and "0" * 64 not in error

    assert demo_org.command(environ=environment(lab, ILLUMIO_PCE_CA_PATH=None)) == 1  # the system CAs
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err

    assert demo_org.command(environ=environment(lab, ILLUMIO_API_KEY_USERNAME=None)) == 2
    assert "set ILLUMIO_API_KEY_USERNAME first" in capsys.readouterr().err
