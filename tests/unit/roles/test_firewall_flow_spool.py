"""Role firewall: before any apply (recording or not) and before removing the table, the flow sets are spooled.

Issue 17, finding 7: a ruleset without flow recording, `firewall_state: absent` and enforcement mode idle
replaced or removed the table without collecting what its flow sets held. The collection itself (both
generations, exactly once) is tested in tests/unit/plugins/modules/test_flow_collect_crashes.py and on test
hosts in tests/vensim/test_flows_role.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TASKS = Path(__file__).resolve().parents[3] / "roles" / "firewall" / "tasks"


def tasks(name):
    return yaml.safe_load((TASKS / name).read_text())


@pytest.mark.parametrize("name", ["apply.yml", "absent.yml"])
def test_the_flow_sets_are_spooled_before_the_table_is_replaced_or_removed(name):
    steps = tasks(name)
    modules = [next(key for key in step if key.startswith(("microseg.", "ansible."))) for step in steps]
    spool = modules.index("microseg.illumio.flow_collect")
    assert spool < modules.index("microseg.illumio.firewall_apply")
    task = steps[spool]
    options = task["microseg.illumio.flow_collect"]
    assert options["sources"] == ["nft_sets"] and options["warn_missing"] is False
    assert options["spool_dir"] == "{{ firewall_flows_spool_dir }}"
    assert options["state_file"] == "{{ firewall_flows_state_file }}"
    # Whatever the new ruleset is: the current table's recording is what counts, and the module finds it.
    assert task["when"] == "firewall_detected_backend == 'nftables' and not ansible_check_mode"
