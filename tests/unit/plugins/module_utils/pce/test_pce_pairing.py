"""Pairing profile values and rules: key limits, lifespans, labels, the VEN reference's forbidden combinations."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.pairing import (
    check_profile_combination,
    key_settings,
    label_dict,
    lifespan_seconds,
    same_release,
    uses_limit,
)


@pytest.mark.parametrize(
    ("given", "sent"),
    [("unlimited", "unlimited"), ("Unlimited", "unlimited"), (1, 1), ("5", 5), (" 12 ", 12), (3.0, 3), (None, None)],
)
def test_uses_limit_is_unlimited_or_a_positive_int(given, sent):
    assert uses_limit(given) == sent


@pytest.mark.parametrize("given", [0, -1, "0", "ten", "1.5", True, 2.5, [], {}])
def test_bad_uses_limit_is_refused_with_the_option_name(given):
    with pytest.raises(PceError, match="allowed_uses_per_key must be 'unlimited' or a positive whole number"):
        uses_limit(given)


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("unlimited", "unlimited"),
        (60, 60),
        ("3600", 3600),
        ("45s", 45),
        ("30m", 1800),
        ("12h", 43200),
        ("2d", 172800),
        ("1w", 604800),
        ("1d12h", 129600),
        ("1D 12H", 129600),
        (None, None),
    ],
)
def test_lifespan_takes_seconds_and_durations(given, seconds):
    assert lifespan_seconds(given) == seconds


@pytest.mark.parametrize("given", [0, "0", "0h", "1y", "h", "12 hours", "-5", False, "1.5h"])
def test_bad_lifespan_is_refused_and_the_forms_are_named(given):
    with pytest.raises(PceError, match=r"key_lifespan must be 'unlimited', a positive number of seconds, or a dura"):
        lifespan_seconds(given)


def test_label_dict_takes_key_value_and_refuses_empty_values():
    assert label_dict({"role": "web", "env": 2024}) == {"role": "web", "env": "2024"}
    assert label_dict({}) == {}
    with pytest.raises(PceError, match="label value for key env must not be empty"):
        label_dict({"env": ""})
    with pytest.raises(PceError, match="at most one label per key, but role is given twice"):
        label_dict([{"role": "web"}, {"role": "db"}])


@pytest.mark.parametrize(
    "settings",
    [
        {"visibility_level": "flow_off", "log_traffic": False, "enforcement_mode": "full"},
        {"visibility_level": "flow_drops", "log_traffic": True, "enforcement_mode": "full"},
        {"visibility_level": "flow_drops", "enforcement_mode": "selective"},
        # A real PCE's sample profile (TEMP) is idle with flow_drops: only illuminated is ruled out.
        {"visibility_level": "flow_drops", "enforcement_mode": "idle"},
        {"visibility_level": "flow_summary", "log_traffic": True, "enforcement_mode": "visibility_only"},
    ],
)
def test_allowed_combinations(settings):
    check_profile_combination(settings)


def test_flow_off_with_log_traffic_is_invalid():
    with pytest.raises(PceError, match="flow_off and log_traffic true cannot be combined"):
        check_profile_combination({"visibility_level": "flow_off", "log_traffic": True})


def test_flow_drops_is_invalid_in_visibility_only():
    with pytest.raises(PceError, match="flow_drops is not valid with enforcement_mode visibility_only"):
        check_profile_combination({"visibility_level": "flow_drops", "enforcement_mode": "visibility_only"})


def test_default_release_matches_how_the_pce_shows_it():
    assert same_release("Default (21.5.20-8451)", "Default")
    assert same_release("21.5.20-8451", "21.5.20-8451")
    assert not same_release("Default (21.5.20-8451)", "21.5.20-8451")
    assert not same_release(None, "Default")


def test_key_settings_never_carry_a_code():
    profile = {"name": "p", "allowed_uses_per_key": "1", "key_lifespan": 60, "activation_code": "x" * 82}
    assert key_settings(profile) == {"pairing_profile": "p", "allowed_uses_per_key": "1", "key_lifespan": "60"}
