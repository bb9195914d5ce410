"""playbooks/policy_as_code.yml builds the example three-tier policy, provisions it, and is idempotent."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "policy_as_code.yml"


def recap(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.startswith("localhost") and "ok=" in line)
    return {name: int(count) for name, count in re.findall(r"(\w+)=(\d+)", line)}


def active(lab, kind: str) -> set[str]:
    return {obj["name"] for obj in lab.api("GET", f"sec_policy/active/{kind}")}


def test_policy_as_code_builds_provisions_and_removes_the_example_policy(lab, run_playbook):
    built = run_playbook(PLAYBOOK)
    assert built.returncode == 0, built.output
    assert "provisioned policy version" in built.output
    assert {"RS-shop-prod", "RS-shop-staging"} <= active(lab, "rule_sets")
    assert {"IPL-admin-networks", "IPL-blocked-scanners"} <= active(lab, "ip_lists")
    assert "DENY-scanners-to-shop" in active(lab, "enforcement_boundaries")
    prod = next(rs for rs in lab.api("GET", "sec_policy/active/rule_sets") if rs["name"] == "RS-shop-prod")
    assert len(prod["rules"]) == 4

    again = run_playbook(PLAYBOOK)
    assert again.returncode == 0, again.output
    assert recap(again.output)["changed"] == 0, again.output
    assert "nothing to provision" in again.output

    review = run_playbook(PLAYBOOK, "--check", "--diff")
    assert review.returncode == 0, review.output
    assert recap(review.output)["changed"] == 0, review.output

    removed = run_playbook(PLAYBOOK, "-e", "policy_state=absent")
    assert removed.returncode == 0, removed.output
    assert not {"RS-shop-prod", "RS-shop-staging"} & active(lab, "rule_sets")
    assert not {"IPL-admin-networks", "IPL-blocked-scanners", "S-shop-web"} & (
        active(lab, "ip_lists") | active(lab, "services")
    )

    removed_again = run_playbook(PLAYBOOK, "-e", "policy_state=absent")
    assert removed_again.returncode == 0, removed_again.output
    assert recap(removed_again.output)["changed"] == 0, removed_again.output
