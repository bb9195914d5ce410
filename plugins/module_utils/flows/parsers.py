# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read flow sources on a managed host into Flow records.

Sources:
- `vtapflow.log` (accepted flows) and `vtapdrop.log` (dropped flows) of the VEN. A line, as in the VEN
  documentation's example (the stand-in in tests/vensim writes the same layout)::

      2020-02-03T16:47:15.104-08:00 docker0 0 0 4 192.168.125.208 172.17.0.2 6 64886 80 12286 C 0 U
      SWID=3c1b9f96-969a-472e-bbbc-9d1c93751ef9 TBI=0 TB0=116

  (one line in the file): time, interface, 0, 0, IP version, source, destination, protocol number, source port,
  destination port, duration (ms), state (C closed, A active), 0, direction (I in, O out, U as in the example),
  then `KEY=value` words: SWID (workload), TBI (bytes in), TB0 or TBO (bytes out).
  `vtapdrop.log` is read with the same layout. A line that does not parse is counted, never raised.
- The files are read incrementally (LogTail) across the VEN's rotation to `<name>.1`.
- `flow.db` (`flow_view`, `drop_flow_view`) and `flowsum.db` (`flow_view`): read-only, incrementally by rowid.
- The kernel's connection table: `conntrack -L -o extended` or `/proc/net/nf_conntrack` lines.

Python 3.6+ standard library only: this runs on managed hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import calendar
import collections
import hashlib
import ipaddress
import os
import re
import sqlite3
import time

try:  # Python 3
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported, the import only keeps sanity tests quiet
    from urllib import quote

ALLOWED = "allowed"
BLOCKED = "blocked"
DECISIONS = (ALLOWED, BLOCKED)

# Protocols whose flows have ports. Others (ICMP, ICMPv6, GRE...) are recorded with destination port 0.
PORT_PROTOCOLS = frozenset((6, 17, 33, 132, 136))
PROTOCOL_NUMBERS = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "icmpv6": 58, "sctp": 132}

Flow = collections.namedtuple(
    "Flow",
    "src dst dst_port proto decision time src_port direction bytes_in bytes_out packets_in packets_out state",
)
Flow.__doc__ = """One flow seen by one source.

src, dst: addresses in their compressed text form; dst_port: int (0 without ports); proto: IP protocol number;
decision: "allowed" or "blocked"; time: epoch seconds (float) or None when the source has no time;
src_port: int or None; direction: "I" (to this host), "O" (from it), another letter from the VEN, or None;
bytes_in / bytes_out / packets_in / packets_out: ints from this host's point of view (for conntrack without
local addresses: from the source's point of view) or None when the source does not count them;
state: the source's state word ("C"/"A" in vtapflow.log, the TCP state and "ASSURED" in conntrack) or None.
"""
Flow.__new__.__defaults__ = (None,) * 8  # time ... state are optional (namedtuple(defaults=) is 3.7+)


class FlowSourceError(Exception):
    """A flow source could not be read; the message says which and why."""


# --- small values -----------------------------------------------------------------------------------------------


def normalize_address(text):
    """(compressed address, version 4 or 6) of an IPv4/IPv6 address, or None when it is not one."""
    if not isinstance(text, str):
        return None
    parts = text.split(".")
    if len(parts) == 4:  # the common case, without ipaddress: canonical dotted quads only
        try:
            if all(str(int(part)) == part and 0 <= int(part) <= 255 for part in parts):
                return text, 4
        except ValueError:
            pass  # not digits: perhaps an IPv6 address with an IPv4 end (::ffff:10.0.0.1)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.compressed, address.version


def parse_port(text):
    """0..65535 as int, or None."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 65535 else None


def parse_proto(text):
    """An IP protocol number 0..255 (or a known name such as tcp) as int, or None."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = PROTOCOL_NUMBERS.get(str(text).lower())
        if value is None:
            return None
    return value if 0 <= value <= 255 else None


_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)


def parse_time(text):
    """Epoch seconds (float) of an ISO 8601 time such as 2020-02-03T16:47:15.104-08:00, or None.

    A time without an offset is taken as the host's local time. Not on any per-line hot path: callers convert
    each distinct value once.
    """
    if isinstance(text, (int, float)):
        return float(text)
    match = _ISO.match(str(text).strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    fraction = float(match.group(7)) if match.group(7) else 0.0
    zone = match.group(8)
    try:
        fields = (year, month, day, hour, minute, second, 0, 0, -1)
        if zone is None:
            return time.mktime(fields) + fraction
        seconds = calendar.timegm(fields)
    except (OverflowError, ValueError):
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 60):
        return None
    if zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0)
        seconds -= sign * offset
    return seconds + fraction


# --- vtapflow.log / vtapdrop.log --------------------------------------------------------------------------------

VTAP_FIELDS = 14  # fixed columns before the KEY=value words


def decision_of_log(path):
    """'blocked' for vtapdrop.log (and its rotated copies), else 'allowed'."""
    return BLOCKED if "vtapdrop" in os.path.basename(path) else ALLOWED


def parse_vtap_fields(fields, decision=ALLOWED):
    """A Flow from the words of one vtapflow/vtapdrop line, or None when they are not such a line."""
    if len(fields) < VTAP_FIELDS:
        return None
    src = normalize_address(fields[5])
    dst = normalize_address(fields[6])
    proto = parse_proto(fields[7])
    src_port = parse_port(fields[8])
    dst_port = parse_port(fields[9])
    stamp = parse_time(fields[0])
    if None in (src, dst, proto, src_port, dst_port, stamp) or src[1] != dst[1]:
        return None
    extra = {}
    for word in fields[VTAP_FIELDS:]:
        key, sep, value = word.partition("=")
        if not sep:
            return None
        extra[key.upper()] = value
    try:
        bytes_in = int(extra["TBI"]) if "TBI" in extra else None
        bytes_out = extra.get("TB0", extra.get("TBO"))
        bytes_out = int(bytes_out) if bytes_out is not None else None
    except ValueError:
        return None
    return Flow(
        src[0],
        dst[0],
        dst_port,
        proto,
        decision,
        stamp,
        src_port,
        fields[13],
        bytes_in,
        bytes_out,
        None,
        None,
        fields[11],
    )


def parse_vtap_line(line, decision=ALLOWED):
    """A Flow from one vtapflow.log (decision 'allowed') or vtapdrop.log ('blocked') line, or None."""
    return parse_vtap_fields(line.split(), decision)


def parse_vtap_lines(lines, decision=ALLOWED):
    """(flows, malformed count) of vtapflow/vtapdrop lines; blank lines are neither."""
    flows = []
    malformed = 0
    for line in lines:
        fields = line.split()
        if not fields:
            continue
        flow = parse_vtap_fields(fields, decision)
        if flow is None:
            malformed += 1
        else:
            flows.append(flow)
    return flows, malformed


# --- reading log files incrementally ---------------------------------------------------------------------------

BLOCK_SIZE = 1 << 20
MAX_LINE = 1 << 20  # a "line" longer than this without a newline is skipped (and counted by the parser)


class LogTail:
    """Read the lines appended to a log since last time, across the VEN's rotation to `<name>.1`.

    state (a dict that the caller keeps, e.g. as JSON): {"inode", "offset", "size", "head"} of the file at the
    last read, or None/{} for a first read (from the start of the file). "head" is [length, sha1] of the file's
    first 256 bytes: a new file that gets the old inode number again (tmpfs, ext4 reuse freed inodes at once)
    is told apart by its first line, and so is a file truncated and refilled past the old size between reads.

    Usage::

        tail = LogTail(path, state)
        for block in tail.blocks():   # lists of lines without their newline
            ...
        state = tail.state            # new state, only once every block was consumed

    When the file's inode changed, it shrank, or it starts differently, the rotated file (`<name>.1` with the
    remembered inode, or a copy of the old file: same head, long enough) is read from the remembered offset to
    its end first, then the new file from 0. When the rotated file is not there
    (rotated twice between reads, removed) `lost` is True and `notes` says so. A last line without its newline is
    left for next time (in the rotated file it is final and is returned).
    """

    def __init__(self, path, state=None, block_size=BLOCK_SIZE):
        self.path = path
        self.previous = dict(state or {})
        self.block_size = block_size
        self.state = dict(self.previous)
        self.notes = []
        self.lost = False
        self.bytes_read = 0

    def lines(self):
        """Every new line, one at a time (blocks() is faster for large reads)."""
        for block in self.blocks():
            yield from block

    def blocks(self):
        previous = self.previous
        inode, offset, size = previous.get("inode"), previous.get("offset", 0), previous.get("size", 0)
        head = previous.get("head") or [0, ""]
        current, current_stat = _open_with_stat(self.path)
        try:
            start = 0
            if inode is None:
                pass  # first read: the whole current file
            elif (
                current is not None
                and current_stat.st_ino == inode
                and current_stat.st_size >= max(offset, size)
                and _head_matches(current, head)
            ):
                start = offset
            else:
                if current is not None and current_stat.st_ino == inode:
                    self.notes.append(
                        "%s shrank or was rewritten (now %d bytes, %d before): read again from the start"
                        % (self.path, current_stat.st_size, max(offset, size))
                    )
                yield from self._finish_old(inode, offset, head)
            if current is None:
                self.state = {}
                return
            reached = start
            for block, reached in _read_blocks(current, start, self.block_size, final=False):
                self.bytes_read += reached - start
                start = reached
                yield block
            self.state = {
                "inode": current_stat.st_ino,
                "offset": reached,
                "size": os.fstat(current.fileno()).st_size,
                "head": _head_of(current),
            }
        finally:
            if current is not None:
                current.close()

    def _finish_old(self, inode, offset, head):
        """The rest of the file read last time, now `<name>.1`: renamed (same inode) or copied (same head)."""
        rotated_path = self.path + ".1"
        rotated, rotated_stat = _open_with_stat(rotated_path)
        if rotated is None:
            self.lost = True
            self.notes.append("%s was rotated but %s is missing: its last lines are lost" % (self.path, rotated_path))
            return
        try:
            renamed = rotated_stat.st_ino == inode and _head_matches(rotated, head)
            copied = head[0] > 0 and rotated_stat.st_size >= offset and _head_matches(rotated, head)
            if not (renamed or copied):
                self.lost = True
                self.notes.append(
                    "%s was rotated more than once since the last read: lines in between are lost" % self.path
                )
                return
            start = offset
            for block, reached in _read_blocks(rotated, offset, self.block_size, final=True):
                self.bytes_read += reached - start
                start = reached
                yield block
        finally:
            rotated.close()


HEAD_BYTES = 256  # the start of a log (its first line) tells it apart from a new file that reuses the inode


def _head_of(handle):
    """[length, sha1 hex] of the first HEAD_BYTES (or fewer) bytes of an open file."""
    handle.seek(0)
    data = handle.read(HEAD_BYTES)
    return [len(data), hashlib.sha1(data).hexdigest()]  # noqa: S324 - a fingerprint, not security


def _head_matches(handle, head):
    """Whether the file starts with the bytes remembered in head (always true when none were)."""
    length, digest = head
    if not length:
        return True
    handle.seek(0)
    data = handle.read(length)
    return len(data) == length and hashlib.sha1(data).hexdigest() == digest  # noqa: S324 - a fingerprint


def _open_with_stat(path):
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except OSError:
        return None, None
    return handle, os.fstat(handle.fileno())


def _read_blocks(handle, offset, block_size, final):
    """(list of lines, offset after them) per block read from offset; a partial last line is kept unless final."""
    handle.seek(offset)
    pending = b""
    while True:
        data = handle.read(block_size)
        if not data:
            break
        data = pending + data if pending else data
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) < MAX_LINE:
                pending = data
                continue
            cut = len(data) - 1  # an endless "line": give it out as one (malformed) line
        complete = data[: cut + 1]
        pending = data[cut + 1 :]
        offset += len(complete)
        yield complete.decode("utf-8", "replace").split("\n")[:-1], offset
    if pending and final:
        offset += len(pending)
        yield [pending.decode("utf-8", "replace")], offset


# --- flow.db / flowsum.db ---------------------------------------------------------------------------------------

_SIMPLE_VIEW = re.compile(
    r"^\s*CREATE\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"'`\[]?\w+[\"'`\]]?\s+AS\s+SELECT\s+\*\s+FROM\s+"
    r"[\"'`\[]?(\w+)[\"'`\]]?\s*;?\s*$",
    re.IGNORECASE,
)
ViewRead = collections.namedtuple("ViewRead", "rows last_rowid error")
ViewRead.__doc__ = """rows: list of dicts (column -> value) with '_rowid'; last_rowid: to remember; error: '' or why."""


def _connect_read_only(path, timeout):
    uri = "file:%s?mode=ro" % quote(os.path.abspath(path))
    return sqlite3.connect(uri, uri=True, timeout=timeout)


def read_view(path, view, last_rowid=0, retries=5, wait=0.2, limit=None):
    """Rows of `view` in SQLite database `path` added after `last_rowid`, read-only.

    The VEN's views are `SELECT * FROM <table>`; a view has no rowid of its own, so the rows are read from that
    table by its rowid (a view of another shape is read whole when it has an `id` column, by that column).
    While the database is locked (the VEN is writing) the read is retried `retries` times, `wait` seconds apart;
    after that, and on any other failure, the answer has no rows, the old last_rowid and an error.
    Note: rows updated in place (flowsum.db adds to num_connections of an existing row) keep their rowid and are
    not seen again.
    """
    last_rowid = int(last_rowid or 0)
    if not os.path.exists(path):
        return ViewRead([], last_rowid, "%s does not exist" % path)
    error = ""
    for attempt in range(retries + 1):
        try:
            db = _connect_read_only(path, timeout=wait)
            try:
                return _read_view(db, view, last_rowid, limit)
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            error = "%s: %s" % (path, exc)
            if "locked" not in str(exc) and "busy" not in str(exc):
                break
            if attempt < retries:
                time.sleep(wait)
        except (sqlite3.DatabaseError, FlowSourceError) as exc:
            error = "%s: %s" % (path, exc)
            break
    return ViewRead([], last_rowid, error)


def _read_view(db, view, last_rowid, limit):
    found = db.execute("SELECT type, sql FROM sqlite_master WHERE name = ?", (view,)).fetchone()
    if found is None:
        raise FlowSourceError("no table or view named %s" % view)
    kind, sql = found
    if kind == "table":
        source, order = view, "rowid"
    else:
        match = _SIMPLE_VIEW.match(sql or "")
        if match:
            source, order = match.group(1), "rowid"
        else:
            columns = [row[1] for row in db.execute("PRAGMA table_info(%s)" % _quote_name(view))]
            if "id" not in columns:
                raise FlowSourceError("view %s has no rowid to read it incrementally by" % view)
            source, order = view, "id"
    # Names come from the database itself and are quoted; values are parameters.
    query = "SELECT %s AS _rowid, * FROM %s WHERE %s > ? ORDER BY %s" % (  # noqa: S608
        order,
        _quote_name(source),
        order,
        order,
    )
    params = [last_rowid]
    if limit:
        query += " LIMIT ?"
        params.append(int(limit))
    cursor = db.execute(query, params)
    names = [column[0] for column in cursor.description]
    rows = [dict(zip(names, values)) for values in cursor]
    return ViewRead(rows, rows[-1]["_rowid"] if rows else last_rowid, "")


def _quote_name(name):
    return '"%s"' % name.replace('"', '""')


def flow_from_row(row, decision=ALLOWED):
    """A Flow from a flow.db flow_view / drop_flow_view row (dict), or None when it is not usable."""
    src = normalize_address(row.get("src_ip"))
    dst = normalize_address(row.get("dst_ip"))
    proto = parse_proto(row.get("proto"))
    dst_port = parse_port(row.get("dst_port"))
    stamp = parse_time(row.get("last_seen") or row.get("detected_at") or "")
    if None in (src, dst, proto, dst_port, stamp) or src[1] != dst[1]:
        return None
    return Flow(
        src[0],
        dst[0],
        dst_port,
        proto,
        decision,
        stamp,
        parse_port(row.get("src_port")),
        row.get("direction"),
        _int_or_none(row.get("bytes_in")),
        _int_or_none(row.get("bytes_out")),
        None,
        None,
        row.get("state"),
    )


SummaryRow = collections.namedtuple("SummaryRow", "src dst dst_port proto decision count first last bytes_in bytes_out")


def summary_from_row(row, decision=ALLOWED):
    """A SummaryRow from a flowsum.db flow_view / drop_flow_view row (dict), or None when it is not usable."""
    src = normalize_address(row.get("src_ip"))
    dst = normalize_address(row.get("dst_ip"))
    proto = parse_proto(row.get("proto"))
    dst_port = parse_port(row.get("dst_port"))
    count = _int_or_none(row.get("num_connections"))
    first = parse_time(row.get("first_seen") or "")
    last = parse_time(row.get("last_seen") or "")
    if None in (src, dst, proto, dst_port, count, first, last) or src[1] != dst[1] or count < 1:
        return None
    return SummaryRow(
        src[0],
        dst[0],
        dst_port,
        proto,
        decision,
        count,
        min(first, last),
        max(first, last),
        _int_or_none(row.get("bytes_in")),
        _int_or_none(row.get("bytes_out")),
    )


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- conntrack --------------------------------------------------------------------------------------------------


def parse_conntrack_line(line, now=None, local_addresses=None):
    """A Flow (decision 'allowed') from one `conntrack -L [-o extended]` or /proc/net/nf_conntrack line, or None.

    The original direction gives src, dst, src/dst port; ICMP type/code are not ports (dst_port 0). state is the
    TCP state word, with " ASSURED" added when the entry is assured. Bytes and packets are there only when the
    kernel counts them (nf_conntrack_acct=1). With local_addresses (a set of this host's addresses) direction is
    "I"/"O" and bytes/packets in/out are from this host's point of view; otherwise direction is None and in/out
    are from the source's point of view (out: what the source sent).
    """
    words = line.split()
    if len(words) < 4:
        return None
    if words[0] in ("ipv4", "ipv6"):
        words = words[2:]
    if len(words) < 4:
        return None
    proto = parse_proto(words[1])
    if proto is None:
        return None
    tuples = []
    state = None
    assured = False
    for word in words[3:]:
        key, sep, value = word.partition("=")
        if not sep:
            if word == "[ASSURED]":
                assured = True
            elif word.isupper() and not word.startswith("[") and not tuples:
                state = word
            continue
        if key == "src":
            if len(tuples) == 2:
                break
            tuples.append({})
        if tuples:
            tuples[-1].setdefault(key, value)
    if len(tuples) < 2:
        return None
    orig, reply = tuples
    src = normalize_address(orig.get("src"))
    dst = normalize_address(orig.get("dst"))
    if src is None or dst is None or src[1] != dst[1]:
        return None
    if proto in PORT_PROTOCOLS:
        src_port = parse_port(orig.get("sport"))
        dst_port = parse_port(orig.get("dport"))
        if src_port is None or dst_port is None:
            return None
    else:
        src_port, dst_port = None, 0
    sent, received = _int_or_none(orig.get("bytes")), _int_or_none(reply.get("bytes"))
    sent_packets, received_packets = _int_or_none(orig.get("packets")), _int_or_none(reply.get("packets"))
    direction = None
    if local_addresses:
        if dst[0] in local_addresses or orig.get("dst") in local_addresses:
            direction = "I"
        elif src[0] in local_addresses or orig.get("src") in local_addresses:
            direction = "O"
    if direction == "I":
        bytes_in, bytes_out, packets_in, packets_out = sent, received, sent_packets, received_packets
    else:
        bytes_in, bytes_out, packets_in, packets_out = received, sent, received_packets, sent_packets
    if assured:
        state = (state + " ASSURED") if state else "ASSURED"
    return Flow(
        src[0],
        dst[0],
        dst_port,
        proto,
        ALLOWED,
        now,
        src_port,
        direction,
        bytes_in,
        bytes_out,
        packets_in,
        packets_out,
        state,
    )


def parse_conntrack(lines, now=None, local_addresses=None):
    """(flows, malformed count) of conntrack lines; blank lines are neither."""
    flows = []
    malformed = 0
    for line in lines:
        if not line.strip():
            continue
        flow = parse_conntrack_line(line, now=now, local_addresses=local_addresses)
        if flow is None:
            malformed += 1
        else:
            flows.append(flow)
    return flows, malformed


def read_conntrack_table(path="/proc/net/nf_conntrack"):
    """Lines of the kernel's connection table file, or [] when there is none (run `conntrack -L -o extended`)."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
