# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address sets as sorted, merged lists of integer intervals: parse, merge, subtract, write as CIDRs.

An interval list is a list of (low, high) integer pairs, sorted, non-overlapping and non-adjacent (adjacent
ones are merged), one list per IP version. Everything here is pure standard library and linear after a sort.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import ipaddress
import operator
import socket
from itertools import islice

BITS = {4: 32, 6: 128}
FAMILIES = ((4, "ipv4"), (6, "ipv6"))


def parse_range(from_ip, to_ip=None):
    """(version, low, high) of `10.0.0.1`, `10.0.0.0/24` (host bits ignored) or `from_ip`..`to_ip`.

    ValueError when the text is not an address or network, or the range is reversed / mixes versions.
    """
    text = str(from_ip).strip()
    if "/" in text:
        if to_ip:
            raise ValueError("to_ip can't be combined with a CIDR from_ip (%s)" % text)
        network = ipaddress.ip_network(text, strict=False)
        return network.version, int(network.network_address), int(network.broadcast_address)
    low = ipaddress.ip_address(text)
    if not to_ip:
        return low.version, int(low), int(low)
    high = ipaddress.ip_address(str(to_ip).strip())
    if high.version != low.version or int(high) < int(low):
        raise ValueError("%s-%s is not a range of one IP version from low to high" % (text, to_ip))
    return low.version, int(low), int(high)


def merge(intervals):
    """Sorted, merged list of (low, high) pairs from any iterable of them."""
    ordered = sorted(intervals)
    if not ordered:
        return []
    merged = []
    low, high = ordered[0]
    for next_low, next_high in ordered:
        if next_low <= high + 1:
            if next_high > high:
                high = next_high
        else:
            merged.append((low, high))
            low, high = next_low, next_high
    merged.append((low, high))
    return merged


def merge_points(points):
    """Merged intervals of a list of single addresses (integers)."""
    if not points:
        return []
    ordered = sorted(points)
    merged = []
    low = high = ordered[0]
    for point in ordered:
        if point <= high + 1:
            if point > high:
                high = point
        else:
            merged.append((low, high))
            low = high = point
    merged.append((low, high))
    return merged


def union(lists):
    """One merged interval list from several (each may be unmerged)."""
    lists = [items for items in lists if items]
    if not lists:
        return []
    if len(lists) == 1:
        return list(lists[0])
    return merge(pair for items in lists for pair in items)


def subtract(minuend, subtrahend):
    """minuend minus subtrahend; both merged interval lists."""
    if not minuend or not subtrahend:
        return list(minuend)
    result = []
    index, count = 0, len(subtrahend)
    for low, high in minuend:
        while index < count and subtrahend[index][1] < low:
            index += 1
        cursor, probe = low, index
        while probe < count and subtrahend[probe][0] <= high:
            cut_low, cut_high = subtrahend[probe]
            if cut_low > cursor:
                result.append((cursor, cut_low - 1))
            cursor = max(cursor, cut_high + 1)
            if cursor > high:
                break
            probe += 1
        if cursor <= high:
            result.append((cursor, high))
    return result


def contains(intervals, value):
    """Whether a merged interval list holds an integer address (binary search)."""
    low, high = 0, len(intervals)
    while low < high:
        middle = (low + high) // 2
        if intervals[middle][1] < value:
            low = middle + 1
        else:
            high = middle
    return low < len(intervals) and intervals[low][0] <= value


def range_to_cidrs(low, high, bits):
    """The fewest (network, prefix length) blocks that cover low..high exactly."""
    blocks = []
    while low <= high:
        size = (low & -low).bit_length() - 1 if low else bits
        span = (high - low + 1).bit_length() - 1
        if span < size:
            size = span
        blocks.append((low, bits - size))
        low += 1 << size
    return blocks


def format_address(value, version):
    if version == 4:
        return "%d.%d.%d.%d" % (value >> 24, (value >> 16) & 255, (value >> 8) & 255, value & 255)
    return ipaddress.IPv6Address(value).compressed


def to_elements(intervals, version, names=None):
    """Interval list -> CIDR strings (`10.0.0.1`, `10.0.0.0/24`), the form both nftables and ipset accept.

    `names` is an optional {integer: text} cache of single addresses already written.
    """
    bits = BITS[version]
    elements = []
    append = elements.append
    lookup = names.get if names is not None else None
    for low, high in intervals:
        if low == high:
            text = lookup(low) if lookup is not None else None
            append(text if text is not None else format_address(low, version))
            continue
        for network, prefix in range_to_cidrs(low, high, bits):
            text = format_address(network, version)
            append(text if prefix == bits else "%s/%d" % (text, prefix))
    return elements


def points_to_parts(addresses, texts, version):
    """(intervals, elements) of a sorted list of single addresses (duplicates allowed) and their texts.

    Most addresses have no neighbour: they are copied in bulk, and only runs of adjacent (or equal) addresses
    are merged one by one.
    """
    count = len(addresses)
    if not count:
        return [], []
    close = [index for index, gap in enumerate(map(operator.sub, islice(addresses, 1, None), addresses)) if gap <= 1]
    if not close:
        return list(zip(addresses, addresses)), list(texts)
    intervals, elements, bits = [], [], BITS[version]
    written, position, closes = 0, 0, len(close)
    while position < closes:
        start = close[position]
        end = start + 1
        position += 1
        while position < closes and close[position] == end:
            end += 1
            position += 1
        singles = addresses[written:start]
        intervals.extend(zip(singles, singles))
        elements.extend(texts[written:start])
        low, high = addresses[start], addresses[end]
        intervals.append((low, high))
        if low == high:
            elements.append(texts[start])
        else:
            for network, prefix in range_to_cidrs(low, high, bits):
                text = format_address(network, version)
                elements.append(text if prefix == bits else "%s/%d" % (text, prefix))
        written = end + 1
    singles = addresses[written:]
    intervals.extend(zip(singles, singles))
    elements.extend(texts[written:])
    return intervals, elements


def parse_address(text):
    """(version, integer, canonical text) of one address; ValueError when it is none. Fast for IPv4."""
    if ":" not in text:
        try:
            packed = socket.inet_pton(socket.AF_INET, text)
        except (OSError, ValueError):
            pass  # not a strict dotted quad: let ipaddress decide (and word the error)
        else:
            return 4, int.from_bytes(packed, "big"), socket.inet_ntop(socket.AF_INET, packed)
    address = ipaddress.ip_address(text)
    return address.version, int(address), address.compressed


def parse_cidrs(values, what="address"):
    """{4: intervals, 6: intervals} of a list of addresses / CIDRs / `a-b` ranges given by a user.

    ValueError naming the bad entry otherwise.
    """
    found = {4: [], 6: []}
    for value in values or []:
        text = str(value).strip()
        try:
            if "-" in text and "/" not in text:
                low_text, high_text = text.split("-", 1)
                version, low, high = parse_range(low_text, high_text)
            else:
                version, low, high = parse_range(text)
        except ValueError as error:
            raise ValueError("%s %r is not an IP address, network or range: %s" % (what, value, error)) from None
        found[version].append((low, high))
    return {4: merge(found[4]), 6: merge(found[6])}


def count_addresses(intervals):
    return sum(high - low + 1 for low, high in intervals)
