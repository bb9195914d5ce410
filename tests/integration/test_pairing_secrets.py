"""Activation codes made by microseg.illumio.pairing_key stay out of -vvv output when tasks use no_log."""

from __future__ import annotations

import re

import pytest

# The PCE's activation codes are long hex strings (82 digits on the lab and in pce-samples/pairing_key.json).
ACTIVATION_CODE = re.compile(r"(?<![0-9a-f])[0-9a-f]{64,}(?![0-9a-f])")


@pytest.mark.parametrize("target", ["pairing_key", "workload"])
def test_activation_codes_never_in_verbose_output(target, lab, run_playbook, target_playbook):
    run = run_playbook(target_playbook(target), "-vvv")
    assert run.returncode == 0, run.output
    leaked = ACTIVATION_CODE.findall(run.output)
    assert leaked == [], "an activation code (or another long hex secret) shows in the -vvv output"
    assert lab.api_key_secret not in run.output
    # The tasks that handle codes ran, and Ansible hid their results.
    assert "the output has been hidden due to the fact that 'no_log: true' was specified" in run.output
