"""The demo playbooks run the way AWX / AAP runs a job: ansible-runner on a private data folder, the collection from
the execution environment (here: the clean install of the built tarball), the PCE connection injected by a credential
of the custom type docs/awx/credential_type_illumio_pce.yml (environment variables and a CA file, nothing secret on
the command line or in extra vars). Then the artifacts AWX keeps must not hold the API key secret; a playbook that
prints the secret on purpose shows that the check finds it."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import ansible_runner
import pytest
import yaml
from awx_like import HIDDEN_PASSWORD, build_safe_env, find_secret, inject_credential
from conftest import BIN, REPO

CREDENTIAL_TYPE = REPO / "docs" / "awx" / "credential_type_illumio_pce.yml"
LEAKY_PLAYBOOK = """---
- name: Print the PCE API key secret (a test of the secret check; never do this)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Print it
      ansible.builtin.debug:
        msg: "{{ lookup('ansible.builtin.env', 'ILLUMIO_API_KEY_SECRET') }}"
"""


@pytest.fixture(scope="module")
def credential_type() -> dict:
    return yaml.safe_load(CREDENTIAL_TYPE.read_text())


@pytest.fixture(scope="module")
def credential_inputs(lab) -> dict:
    """A credential of type "Illumio PCE" for the lab, as a user would fill it in."""
    return {
        "pce_host": lab.host,
        "pce_port": str(lab.port),
        "pce_org_id": str(lab.org_id),
        "api_key_username": lab.api_key_username,
        "api_key_secret": lab.api_key_secret,
        "ca_certificate": Path(lab.ca_path).read_text(),
    }


@pytest.fixture
def run_job(tmp_path, installed_collection, installed_collections, ansible_home, credential_type, credential_inputs):
    """Run one playbook of the project as an AWX job; returns (runner result, private data folder)."""

    def run(playbook: str, extravars: dict | None = None, project_files: dict[str, str] | None = None):
        private_data_dir = tmp_path / f"job-{playbook.replace('/', '_')}"
        project = private_data_dir / "project"
        # The project: the collection's playbooks, as a project checked out from git would hold them.
        shutil.copytree(installed_collection / "playbooks", project / "playbooks")
        for name, text in (project_files or {}).items():
            (project / name).write_text(text)
        (private_data_dir / "inventory").mkdir()
        (private_data_dir / "inventory" / "hosts").write_text(
            f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        )
        envvars = inject_credential(credential_type, credential_inputs, private_data_dir)
        envvars.update(
            # What the execution environment provides: the collection baked in, Ansible on PATH.
            ANSIBLE_COLLECTIONS_PATH=str(installed_collections),
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
            ANSIBLE_HOME=str(ansible_home),
            ANSIBLE_LOCAL_TEMP=str(ansible_home / "tmp"),
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            PATH=f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        )
        (private_data_dir / "env" / "envvars").write_text(json.dumps(envvars))
        # Extra vars carry only what is not secret, as AWX's job template survey or extra_vars would.
        (private_data_dir / "env" / "extravars").write_text(
            json.dumps({"awx_job_template_name": f"Illumio - {playbook}", **(extravars or {})})
        )
        result = ansible_runner.run(
            private_data_dir=str(private_data_dir),
            playbook=playbook,
            ident="job",
            quiet=True,
            timeout=600,
        )
        return result, private_data_dir

    return run


def assert_no_secret_on_command_line(result, secret: str) -> None:
    command = json.loads(Path(result.config.artifact_dir, "command").read_text())
    assert secret not in json.dumps(command["command"])
    assert not [arg for arg in command["command"] if "ILLUMIO" in arg]


@pytest.mark.parametrize("playbook", ["playbooks/demo.yml", "playbooks/policy_as_code.yml"])
def test_demo_playbook_as_an_awx_job(run_job, lab, playbook):
    result, private_data_dir = run_job(playbook)
    artifacts = Path(result.config.artifact_dir)
    stdout = (artifacts / "stdout").read_text()
    assert result.status == "successful", stdout[-4000:]
    assert result.rc == 0
    assert (artifacts / "status").read_text().strip() == "successful"
    events = sorted((artifacts / "job_events").glob("*.json"))
    assert events, "no job events"
    assert any(json.loads(event.read_text())["event"] == "playbook_on_stats" for event in events)
    assert result.stats["failures"] == {} and result.stats["dark"] == {}
    # The CA really came from the credential's file injector (TLS verified with it), not from the lab's folder.
    env = json.loads((private_data_dir / "env" / "envvars").read_text())
    assert Path(env["ILLUMIO_PCE_CA_PATH"]).parent == private_data_dir / "env"
    assert env["ILLUMIO_PCE_CA_PATH"] != lab.ca_path

    assert_no_secret_on_command_line(result, lab.api_key_secret)
    assert find_secret(artifacts, lab.api_key_secret, lab.api_key_username) == []


def test_the_secret_check_finds_a_leak(run_job, lab):
    """The check can fail: a playbook that prints the secret, run the same way, is caught."""
    result = run_job("leak.yml", project_files={"leak.yml": LEAKY_PLAYBOOK})[0]
    assert result.status == "successful"
    leaks = find_secret(Path(result.config.artifact_dir), lab.api_key_secret, lab.api_key_username)
    assert any(leak.startswith("stdout:") for leak in leaks), leaks
    assert any(leak.startswith("job_events/") for leak in leaks), leaks


def test_the_secret_check_reads_the_job_environment_as_awx_keeps_it(tmp_path):
    """AWX hides ILLUMIO_API_KEY_SECRET (its name looks secret) in the job environment it stores; the same secret in
    any other variable would be kept, and is found."""
    secret = "0123456789abcdef0123456789abcdef"
    assert build_safe_env({"ILLUMIO_API_KEY_SECRET": secret})["ILLUMIO_API_KEY_SECRET"] == HIDDEN_PASSWORD
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = {"command": ["ansible-playbook", "demo.yml"], "cwd": "/runner/project"}
    (artifacts / "command").write_text(json.dumps({**command, "env": {"ILLUMIO_API_KEY_SECRET": secret}}))
    assert find_secret(artifacts, secret) == []
    (artifacts / "command").write_text(json.dumps({**command, "env": {"ILLUMIO_NOTES": secret}}))
    assert find_secret(artifacts, secret) == ["command: secret", "command: secret (JSON-escaped)"]
    (artifacts / "command").write_text(json.dumps({**command, "command": ["ansible-playbook", "-e", f"s={secret}"]}))
    assert "command: secret" in find_secret(artifacts, secret)


def test_credential_type_injects_every_connection_variable(credential_type):
    """Every ILLUMIO_* variable the collection reads has an injector."""
    fragment = (REPO / "plugins" / "doc_fragments" / "pce.py").read_text()
    read = set(re.findall(r"ILLUMIO_[A-Z_]*[A-Z]", fragment))
    assert read, "no ILLUMIO_ variables found in the doc fragment"
    assert read <= set(credential_type["injectors"]["env"]), sorted(read - set(credential_type["injectors"]["env"]))
    secret_fields = {field["id"] for field in credential_type["inputs"]["fields"] if field.get("secret")}
    assert {"api_key_secret", "client_key"} <= secret_fields


def test_tls_is_verified_unless_skipping_is_ticked(credential_type, tmp_path):
    """A credential made without the TLS field (AWX fills a missing boolean with false) still verifies."""
    base = {"pce_host": "pce.example.com", "api_key_username": "api_1", "api_key_secret": "s"}
    untouched = inject_credential(credential_type, base, tmp_path / "a")
    assert untouched["ILLUMIO_PCE_VALIDATE_CERTS"] == "true"
    ticked = inject_credential(credential_type, {**base, "skip_tls_verification": True}, tmp_path / "b")
    assert ticked["ILLUMIO_PCE_VALIDATE_CERTS"] == "false"
    absent_field = inject_credential(
        {
            **credential_type,
            "inputs": {
                "fields": [f for f in credential_type["inputs"]["fields"] if f["id"] != "skip_tls_verification"]
            },
        },
        base,
        tmp_path / "c",
    )
    assert absent_field["ILLUMIO_PCE_VALIDATE_CERTS"] == "true"
