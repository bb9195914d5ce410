"""Interval arithmetic of address sets: parse, merge, subtract, write as CIDRs."""

from __future__ import annotations

import ipaddress
import random

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.policy import addresses as a


def ip(text):
    return int(ipaddress.ip_address(text))


def test_parse_single_cidr_and_range():
    assert a.parse_range("10.0.0.1") == (4, ip("10.0.0.1"), ip("10.0.0.1"))
    assert a.parse_range("10.0.0.77/24") == (4, ip("10.0.0.0"), ip("10.0.0.255"))  # host bits ignored
    assert a.parse_range("10.0.0.1", "10.0.0.9") == (4, ip("10.0.0.1"), ip("10.0.0.9"))
    assert a.parse_range("::/0") == (6, 0, (1 << 128) - 1)
    for bad in (("10.0.0.9", "10.0.0.1"), ("10.0.0.1", "::1"), ("10.0.0.0/8", "10.0.0.1"), ("nope", None)):
        with pytest.raises(ValueError):
            a.parse_range(*bad)


def test_merge_joins_overlapping_and_adjacent():
    assert a.merge([(5, 9), (1, 3), (4, 4), (12, 20), (15, 16)]) == [(1, 9), (12, 20)]
    assert a.merge_points([7, 3, 4, 5, 9, 9]) == [(3, 5), (7, 7), (9, 9)]
    assert a.merge([]) == [] and a.merge_points([]) == []
    assert a.union([[(1, 2)], [(3, 5)], []]) == [(1, 5)]


def test_subtract():
    assert a.subtract([(0, 100)], [(10, 20), (50, 50), (90, 200)]) == [(0, 9), (21, 49), (51, 89)]
    assert a.subtract([(0, 10), (20, 30)], [(5, 25)]) == [(0, 4), (26, 30)]
    assert a.subtract([(0, 10)], [(0, 10)]) == []
    assert a.subtract([(0, 10)], []) == [(0, 10)]


def test_subtract_matches_a_brute_force_model():
    rng = random.Random(7)
    for _round in range(200):
        first = a.merge((lo, lo + rng.randrange(8)) for lo in rng.sample(range(200), 10))
        second = a.merge((lo, lo + rng.randrange(8)) for lo in rng.sample(range(200), 10))
        model = {value for lo, hi in first for value in range(lo, hi + 1)} - {
            value for lo, hi in second for value in range(lo, hi + 1)
        }
        assert a.subtract(first, second) == a.merge_points(sorted(model))


def test_range_to_cidrs_is_exact_and_minimal():
    low, high = ip("10.0.0.1"), ip("10.0.0.9")
    assert a.to_elements([(low, high)], 4) == ["10.0.0.1", "10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/31"]
    assert a.to_elements([(0, (1 << 32) - 1)], 4) == ["0.0.0.0/0"]
    assert a.to_elements([(ip("2001:db8::"), ip("2001:db8::ffff"))], 6) == ["2001:db8::/112"]
    rng = random.Random(3)
    for _round in range(300):
        lo = rng.randrange(1 << 32)
        hi = min((1 << 32) - 1, lo + rng.randrange(1 << rng.randrange(1, 20)))
        networks = [ipaddress.ip_network(text) for text in a.to_elements([(lo, hi)], 4)]
        assert list(ipaddress.collapse_addresses(networks)) == list(
            ipaddress.summarize_address_range(ipaddress.IPv4Address(lo), ipaddress.IPv4Address(hi))
        )


def test_parse_cidrs_for_user_input():
    found = a.parse_cidrs(["192.0.2.10", "2001:db8::/64", "10.0.0.1-10.0.0.3", "192.0.2.11"])
    assert a.to_elements(found[4], 4) == ["10.0.0.1", "10.0.0.2/31", "192.0.2.10/31"]
    assert a.to_elements(found[6], 6) == ["2001:db8::/64"]
    with pytest.raises(ValueError, match="'bogus' is not an IP address"):
        a.parse_cidrs(["bogus"])


def test_contains():
    intervals = [(1, 3), (10, 10), (20, 30)]
    assert [a.contains(intervals, value) for value in (0, 1, 3, 4, 10, 11, 25, 31)] == [
        False,
        True,
        True,
        False,
        True,
        False,
        True,
        False,
    ]
