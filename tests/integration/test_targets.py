"""Run every integration target against the lab PCE, and check what the playbook output reveals."""

from __future__ import annotations

from pathlib import Path

import pytest

PLAYBOOKS = Path(__file__).parent / "playbooks"
TARGETS = Path(__file__).parent / "targets"
TARGET_NAMES = sorted(path.name for path in TARGETS.iterdir() if (path / "tasks" / "main.yml").exists())


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_target(target, run_playbook, target_playbook):
    run = run_playbook(target_playbook(target))
    assert run.returncode == 0, run.output


def test_secret_never_in_verbose_output(lab, run_playbook, target_playbook):
    run = run_playbook(target_playbook("label"), "-vvv")
    assert run.returncode == 0, run.output
    assert lab.api_key_secret not in run.output


def test_secret_given_as_module_option_is_masked(lab, run_playbook):
    """module_defaults for the action group carry the connection; the secret stays out of -vvv output."""
    no_env = {name: None for name in lab.environment()}
    extra_vars = [
        f"pce_host={lab.host}",
        f"pce_port={lab.port}",
        f"ca_path={lab.ca_path}",
        f"api_key_username={lab.api_key_username}",
    ]
    run = run_playbook(
        PLAYBOOKS / "module_defaults.yml",
        "-vvv",
        *[arg for var in extra_vars for arg in ("-e", var)],
        env={**no_env, "TEST_API_KEY_SECRET": lab.api_key_secret},
    )
    assert run.returncode == 0, run.output
    assert lab.api_key_secret not in run.output


def test_wrong_secret_fails_clearly_without_echoing_it(run_playbook, target_playbook):
    wrong_secret = "0123456789abcdef-not-the-secret-fedcba9876543210"
    run = run_playbook(target_playbook("label"), "-vvv", env={"ILLUMIO_API_KEY_SECRET": wrong_secret})
    assert run.returncode != 0
    assert "authentication failed" in run.output.lower()
    assert wrong_secret not in run.output
    assert "Traceback" not in run.output


def test_untrusted_certificate_is_refused(run_playbook, target_playbook, tmp_path):
    """Without the lab's CA the PCE's certificate must not be accepted: TLS is verified by default."""
    run = run_playbook(target_playbook("label"), env={"ILLUMIO_PCE_CA_PATH": None})
    assert run.returncode != 0
    assert "certificate" in run.output.lower()
    assert "Traceback" not in run.output
