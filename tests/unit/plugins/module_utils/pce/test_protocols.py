"""Protocol names <-> IANA numbers, as users write them and as the PCE stores them."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.protocols import (
    ICMP_PROTOCOLS,
    PORT_PROTOCOLS,
    PROTOCOL_NAMES,
    PROTOCOL_NUMBERS,
    protocol_name,
    protocol_number,
)


@pytest.mark.parametrize(
    ("written", "number"),
    [
        ("tcp", 6),
        ("TCP", 6),
        (" udp ", 17),
        ("icmp", 1),
        ("icmpv6", 58),
        ("ipv6-icmp", 58),
        ("sctp", 132),
        ("gre", 47),
        (6, 6),
        ("17", 17),
        (0, 0),
        (255, 255),
        ("255", 255),
    ],
)
def test_names_and_numbers(written, number):
    assert protocol_number(written) == number


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("tcpp", "unknown protocol 'tcpp': use one of ah, esp, gre"),
        ("", "unknown protocol ''"),
        ("-1", "unknown protocol '-1'"),
        (256, "protocol number 256 is out of range (0-255)"),
        (-1, "protocol number -1 is out of range"),
        ("300", "protocol number '300' is out of range"),
        (True, "proto must be a protocol name or number, got True"),
        (6.5, "unknown protocol 6.5"),
    ],
)
def test_what_is_refused_is_explained(written, message):
    with pytest.raises(PceError) as refused:
        protocol_number(written)
    assert message in str(refused.value)


def test_names_for_numbers_and_numbers_without_names():
    assert protocol_name(6) == "tcp"
    assert protocol_name(58) == "icmpv6"
    assert protocol_name(99) == 99
    assert protocol_name(-1) == -1


def test_tables_agree():
    for number, name in PROTOCOL_NAMES.items():
        assert PROTOCOL_NUMBERS[name] == number
        assert protocol_number(protocol_name(number)) == number
    assert sorted(PORT_PROTOCOLS) == [6, 17, 132]
    assert sorted(ICMP_PROTOCOLS) == [1, 58]
