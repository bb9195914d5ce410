# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sum flows per (src, dst, dst_port, proto, decision): count, first and last seen, bytes in and out.

One table, whatever the source: vtapflow/vtapdrop lines (add_vtap_lines, the fast path), Flow records from any
parser (add_flow), flowsum.db rows that are sums already (add_summary), and other aggregates (merge).

The fast path does per line only what it must: one split of the first eleven columns (the rest stays one
string), two rfind() and int() for the byte counts, a tuple key of the raw words, one dict lookup and a few
additions; no regular expression and no object per flow. Lines that do not end in `TBI=<n> TB0=<n>` after at
least eleven other words (no byte counts, other words last) go through the full parser. Addresses, ports,
protocol and times are checked and normalized once per distinct raw key when the call ends; a key whose values
are not valid counts all its lines as malformed, and spellings of one key (`2001:db8:0::1`, `2001:db8::1`)
are merged.
Lines of the VEN's logs are in time order, so a raw key's first and last times are those of its first and last
lines (compared as times, not as text, when they are merged). What the full per-line parser would catch that
the fast path does not: a bad time or source port on a line that is neither the first nor the last of its key.

Python 3.6+ standard library only: this runs on managed hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import collections

from ansible_collections.microseg.illumio.plugins.module_utils.flows.parsers import (
    ALLOWED,
    normalize_address,
    parse_port,
    parse_proto,
    parse_time,
    parse_vtap_line,
)

AggregateRow = collections.namedtuple(
    "AggregateRow", "src dst dst_port proto decision count first last bytes_in bytes_out"
)
AggregateRow.__doc__ = """One sum: first/last are epoch seconds (float) or None; bytes_in/out are None when unknown."""

_MISSING = object()


def _add_known(total, value):
    if value is None:
        return total
    return value if total is None else total + value


def _earliest(a, b):
    if a is None:
        return b
    return a if b is None or a <= b else b


def _latest(a, b):
    if a is None:
        return b
    return a if b is None or a >= b else b


def _vtap_time(text, minutes):
    """parse_time for vtapflow times (2020-02-03T16:47:15.104-08:00), the minute's epoch cached in `minutes`."""
    if len(text) == 29 and text[10] == "T" and text[16] == ":" and text[19] == "." and text[26] == ":":
        minute = text[:16] + text[23:]
        base = minutes.get(minute, _MISSING)
        if base is _MISSING:
            base = minutes[minute] = parse_time(text[:16] + ":00" + text[23:])
        seconds = text[17:23]
        if base is not None and seconds[:2].isdigit() and seconds[3:].isdigit():
            value = float(seconds)
            if value < 61:
                return base + value
    return parse_time(text)


def _scan_with_bytes(lines, decision, add_flow):
    """The fast path: ({raw key: [count, first time, last time, bytes in, bytes out]}, malformed, other lines).

    Lines of another layout are parsed in full and given to add_flow.
    """
    raw = {}
    get = raw.get
    malformed = 0
    slow = 0
    for line in lines:
        words = line.split(None, 10)  # the eleven columns needed, then the rest in one string
        if len(words) == 11:
            rest = words[10]  # "12286 C 0 U SWID=... TBI=0 TB0=116"
            equals = rest.rfind("=")  # of TB0= (or TBO=), the last word
            start = rest.rfind(" TBI=")  # when TBI= is the last word, the int() below fails: full parser
            if start > 0:
                try:
                    bytes_in = int(rest[start + 5 : equals - 3])  # int() ignores the space before TB0
                    bytes_out = int(rest[equals + 1 :])
                except ValueError:
                    bytes_in = None
                if bytes_in is not None:
                    key = (words[5], words[6], words[9], words[7])
                    entry = get(key)
                    if entry is None:
                        raw[key] = [1, words[0], words[0], bytes_in, bytes_out]
                    else:
                        entry[0] += 1
                        entry[2] = words[0]
                        entry[3] += bytes_in
                        entry[4] += bytes_out
                    continue
        elif not words:
            continue  # blank
        flow = parse_vtap_line(line, decision)  # any other layout: parsed and checked in full
        if flow is None:
            malformed += 1
        else:
            slow += 1
            add_flow(flow)
    return raw, malformed, slow


def _scan_without_bytes(lines, decision, add_flow):
    """_scan_with_bytes without the byte counts."""
    raw = {}
    get = raw.get
    malformed = 0
    slow = 0
    for line in lines:
        words = line.split(None, 10)
        if len(words) == 11:
            key = (words[5], words[6], words[9], words[7])
            entry = get(key)
            if entry is None:
                raw[key] = [1, words[0], words[0], None, None]
            else:
                entry[0] += 1
                entry[2] = words[0]
            continue
        if not words:
            continue  # blank
        flow = parse_vtap_line(line, decision)
        if flow is None:
            malformed += 1
        else:
            slow += 1
            add_flow(flow._replace(bytes_in=None, bytes_out=None))
    return raw, malformed, slow


class FlowAggregate:
    """The table {(src, dst, dst_port, proto, decision): [count, first, last, bytes_in, bytes_out]}.

    Keys hold normalized values (compressed addresses, int port and protocol). `lines` counts the non-blank lines
    given to add_vtap_lines, `malformed` those of them that were skipped.
    """

    def __init__(self):
        self.table = {}
        self.lines = 0
        self.malformed = 0

    def __len__(self):
        return len(self.table)

    # --- adding ---------------------------------------------------------------------------------------------

    def add(self, src, dst, dst_port, proto, decision, count=1, first=None, last=None, bytes_in=None, bytes_out=None):
        """Add a sum of already normalized values (see parsers.normalize_address)."""
        key = (src, dst, dst_port, proto, decision)
        entry = self.table.get(key)
        if entry is None:
            self.table[key] = [count, first, last, bytes_in, bytes_out]
            return
        entry[0] += count
        entry[1] = _earliest(entry[1], first)
        entry[2] = _latest(entry[2], last)
        entry[3] = _add_known(entry[3], bytes_in)
        entry[4] = _add_known(entry[4], bytes_out)

    def add_flow(self, flow):
        """Add one parsers.Flow."""
        self.add(
            flow.src,
            flow.dst,
            flow.dst_port,
            flow.proto,
            flow.decision,
            1,
            flow.time,
            flow.time,
            flow.bytes_in,
            flow.bytes_out,
        )

    def add_flows(self, flows):
        for flow in flows:
            self.add_flow(flow)

    def add_summary(self, row):
        """Add a parsers.SummaryRow (flowsum.db) or an AggregateRow."""
        self.add(
            row.src,
            row.dst,
            row.dst_port,
            row.proto,
            row.decision,
            row.count,
            row.first,
            row.last,
            row.bytes_in,
            row.bytes_out,
        )

    def merge(self, other):
        """Add every sum of another FlowAggregate to this one (its line counters too). Returns self."""
        for (src, dst, dst_port, proto, decision), entry in other.table.items():
            self.add(src, dst, dst_port, proto, decision, *entry)
        self.lines += other.lines
        self.malformed += other.malformed
        return self

    def add_vtap_lines(self, lines, decision=ALLOWED, count_bytes=True):
        """Add vtapflow.log ('allowed') or vtapdrop.log ('blocked') lines. Returns (accepted, malformed).

        `lines` is any iterable of text lines (with or without their newline); for a LogTail use
        itertools.chain.from_iterable(tail.blocks()). Blank lines are skipped and not counted.
        count_bytes=False leaves the byte counts out (bytes_in/out stay None) and skips their two int() per
        line: the PCE's upload format has no bytes, so a collector that only uploads does not need them.
        """
        scan = _scan_with_bytes if count_bytes else _scan_without_bytes
        raw, malformed, slow = scan(lines, decision, self.add_flow)
        accepted, bad = self._add_raw(raw, decision)
        accepted += slow
        malformed += bad
        self.lines += accepted + malformed
        self.malformed += malformed
        return accepted, malformed

    def _add_raw(self, raw, decision):
        """Check and normalize each distinct raw key once, then add it. Returns (accepted, malformed) lines."""
        addresses = {}
        times = {}
        minutes = {}
        accepted = malformed = 0
        for key, entry in raw.items():
            src_text, dst_text, port_text, proto_text = key
            count, first_text, last_text, bytes_in, bytes_out = entry
            src = addresses.get(src_text, _MISSING)
            if src is _MISSING:
                src = addresses[src_text] = normalize_address(src_text)
            dst = addresses.get(dst_text, _MISSING)
            if dst is _MISSING:
                dst = addresses[dst_text] = normalize_address(dst_text)
            dst_port = parse_port(port_text)
            proto = parse_proto(proto_text)
            first = times.get(first_text, _MISSING)
            if first is _MISSING:
                first = times[first_text] = _vtap_time(first_text, minutes)
            last = times.get(last_text, _MISSING)
            if last is _MISSING:
                last = times[last_text] = _vtap_time(last_text, minutes)
            if first is None:
                first = last
            elif last is None:
                last = first
            if src is None or dst is None or src[1] != dst[1] or dst_port is None or proto is None or first is None:
                malformed += count
                continue
            if first > last:
                first, last = last, first
            accepted += count
            self.add(src[0], dst[0], dst_port, proto, decision, count, first, last, bytes_in, bytes_out)
        return accepted, malformed

    # --- reading ----------------------------------------------------------------------------------------------

    def rows(self, decision=None):
        """AggregateRows sorted by decision, src, dst, dst_port, proto; only one decision's when given."""
        result = []
        for key in sorted(self.table):
            if decision is not None and key[4] != decision:
                continue
            result.append(AggregateRow(*(key + tuple(self.table[key]))))
        return result

    def connections(self):
        """The sum of every count."""
        return sum(entry[0] for entry in self.table.values())

    def to_records(self):
        """The sums as a list of dicts (JSON-friendly), in rows() order."""
        return [row._asdict() for row in self.rows()]

    @classmethod
    def from_records(cls, records):
        """A FlowAggregate from to_records() output; records that do not fit are skipped."""
        aggregate = cls()
        for record in records:
            try:
                row = AggregateRow(**{field: record.get(field) for field in AggregateRow._fields})
            except (AttributeError, TypeError):
                continue
            if None in (row.src, row.dst, row.dst_port, row.proto, row.decision, row.count):
                continue
            aggregate.add_summary(row)
        return aggregate
