# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""IP protocols as users write them (`tcp`, `udp`, `icmp`, or a number) and as the PCE stores them (IANA numbers)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError

PROTOCOL_NUMBERS = {
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
}
PROTOCOL_NAMES = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 132: "sctp"}
# Protocols whose service ports carry port / to_port; ICMP ones carry icmp_type / icmp_code instead.
PORT_PROTOCOLS = frozenset([6, 17, 132])
ICMP_PROTOCOLS = frozenset([1, 58])


def protocol_number(proto):
    """The IANA number for `tcp`, `UDP`, `6`, 17 ...; PceError with the accepted names otherwise."""
    if isinstance(proto, bool):
        raise PceError("proto must be a protocol name or number, got %r" % (proto,))
    if isinstance(proto, int):
        number = proto
    else:
        text = str(proto).strip().lower()
        if text in PROTOCOL_NUMBERS:
            return PROTOCOL_NUMBERS[text]
        if not text.isdigit():
            raise PceError(
                "unknown protocol %r: use one of %s or an IP protocol number (0-255)"
                % (proto, ", ".join(sorted(PROTOCOL_NUMBERS)))
            )
        number = int(text)
    if not 0 <= number <= 255:
        raise PceError("protocol number %r is out of range (0-255)" % (proto,))
    return number


def protocol_name(number):
    """`tcp` for 6, and the number itself for protocols without a common name."""
    return PROTOCOL_NAMES.get(number, number)
