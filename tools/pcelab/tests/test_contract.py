"""The contract folder itself: every schema is valid JSON Schema, names its public sources, and agrees with the
real PCE payloads in pce_samples/ (a field or type a real PCE answers that the contract does not know fails)."""

from __future__ import annotations

import pytest
from pcelab.contract import contract, names
from shapes import SAMPLES, sample


@pytest.mark.parametrize("name", names())
def test_contract_is_valid_and_sourced(name):
    rules = contract(name).rules
    assert rules.get("sources"), f"{name}.json names no public source"
    for field in (*rules.get("create_required", ()), *rules.get("create_only", ()), *rules.get("optional", ())):
        assert field in contract(name).properties, f"{name}.json: x-pcelab names unknown field {field}"


SAMPLED = [name for name in names() if contract(name).rules.get("sample")]


@pytest.mark.parametrize("name", SAMPLED)
def test_contract_knows_every_field_of_the_real_sample(name):
    payload = sample(contract(name).rules["sample"])
    items = payload if isinstance(payload, list) else [payload]
    assert items, f"{SAMPLES}/{contract(name).rules['sample']}.json is empty"
    for item in items:
        assert contract(name).sample_gaps(item) == []
