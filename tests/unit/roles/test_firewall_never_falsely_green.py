"""Role firewall: a run never ends green on a host it did not enforce (issue 17, finding 6).

The behaviour is tested on real hosts in tests/hosts/test_firewall.py (an SSH reset as the apply task starts fails
the host; the live firewall is verified on every run). These checks keep the tasks that make it so in place.
"""

from __future__ import annotations

from pathlib import Path

import yaml

APPLY = Path(__file__).resolve().parents[3] / "roles" / "firewall" / "tasks" / "apply.yml"


def steps():
    return yaml.safe_load(APPLY.read_text())


def named(start):
    found = [(index, step) for index, step in enumerate(steps()) if step["name"].startswith(start)]
    assert len(found) == 1, start
    return found[0]


def test_an_unreachable_apply_is_kept_for_the_confirm_step_then_fails_the_host_unless_confirmed():
    apply_at, apply = named("Apply the ruleset")
    assert apply["ignore_unreachable"] is True  # a lock-out must reach the confirm step, which reports it
    assert apply["register"] == "__firewall_applied"
    confirm_at, confirm = named("Confirm the ruleset")
    assert confirm["register"] == "__firewall_confirmed"
    fail_at, fail = named("Fail when the apply task lost its connection")
    assert apply_at < confirm_at < fail_at
    assert "ignore_errors" not in fail and "failed_when" not in fail
    assert "__firewall_applied.unreachable" in fail["when"]
    assert "not (__firewall_confirmed.confirmed | default(false))" in fail["when"]


def test_the_live_firewall_is_verified_on_every_run_and_a_difference_fails_the_host():
    confirm_at, _confirm = named("Confirm the ruleset")
    verify_at, verify = named("Verify that the live firewall is the ruleset")
    assert confirm_at < verify_at
    assert verify["check_mode"] is True and verify["register"] == "__firewall_verified"
    assert verify["when"] == "firewall_verify | bool and not ansible_check_mode"  # not only after a change
    differs_at, differs = named("Fail when the live firewall differs")
    assert verify_at < differs_at
    assert differs["ansible.builtin.assert"]["that"] == "not __firewall_verified.changed"
