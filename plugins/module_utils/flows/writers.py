# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write flow sums: CSV in the PCE's bulk upload format, JSON lines, and a bounded spool directory.

Upload format (`POST /api/v2/orgs/{org}/agents/bulk_traffic_flows`, text/csv), one flow per line, no header::

    src_ip,dst_ip,dst_port,proto[,num_connections[,first_detected,last_detected]]

with times as epoch seconds (first rounded down, last rounded up, so the span covers what was seen). The format
has no decision column: pass rows of one decision (FlowAggregate.rows("allowed")) when that matters.

Every file is written atomically (a temporary file in the same folder, flushed to disk, then renamed) with mode
0600. Spool files are named `flows-<UTC yyyymmddThhmmssZ>-<sequence>.csv` (`.jsonl` for JSON lines), the names
that the flow_upload module reads, in order of time stamp, then sequence number; a name is never reused while a
file of that name is in the spool or in its `done/` folder (or staged).

A writer that must record elsewhere that it wrote a file (flow_collect's state file) stages the files first:
`stage()` writes them as `.staged-<name>`, which nothing uploads; once the writer's own record names them,
`publish()` renames them into place, and `discard_staged()` removes what a writer staged but never recorded.

Python 3.6+ standard library only: this runs on managed hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import collections
import json
import math
import os
import re
import tempfile
import time

DEFAULT_MAX_LINES = 1000  # the PCE takes bulk uploads in batches of 1000 lines
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
SPOOL_NAME = re.compile(r"^flows-(\d{8}T\d{6}Z)-(\d+)\.(csv|jsonl)$")
STAGED_PREFIX = ".staged-"
STALE_TEMPORARY_SECONDS = 3600

SpoolResult = collections.namedtuple("SpoolResult", "files flows dropped_files dropped_flows")
SpoolResult.__doc__ = """files: names written; flows: lines written; dropped_*: oldest files removed over budget."""
SpoolFile = collections.namedtuple("SpoolFile", "name path size")


def csv_line(row):
    """One upload line (without newline) of an AggregateRow or SummaryRow."""
    fields = [row.src, row.dst, str(row.dst_port), str(row.proto), str(row.count)]
    if row.first is not None or row.last is not None:
        first = row.first if row.first is not None else row.last
        last = row.last if row.last is not None else row.first
        fields.append(str(math.floor(first)))
        fields.append(str(math.ceil(last)))
    return ",".join(fields)


def json_line(row):
    """One JSON object (without newline) of an AggregateRow or SummaryRow; keys sorted."""
    return json.dumps(dict(row._asdict()), sort_keys=True, separators=(",", ":"))


def csv_text(rows):
    return "".join(csv_line(row) + "\n" for row in rows)


def jsonl_text(rows):
    return "".join(json_line(row) + "\n" for row in rows)


def write_atomic(path, text, mode=0o600):
    """Write text to path through a temporary file in the same folder and a rename; the file gets `mode`."""
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.rename(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    sync_dir(folder)


def sync_dir(folder):
    """Make renames in `folder` durable (best effort: not every file system lets a folder be synced)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_csv(path, rows):
    """Write rows to path in the upload format (atomic, 0600). Returns the number of lines."""
    rows = list(rows)
    write_atomic(path, csv_text(rows))
    return len(rows)


def write_jsonl(path, rows):
    """Write rows to path as JSON lines (atomic, 0600). Returns the number of lines."""
    rows = list(rows)
    write_atomic(path, jsonl_text(rows))
    return len(rows)


def _count_lines(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")
    except OSError:
        return 0


class Spool:
    """A folder of spool files, each at most max_lines flows, all of them together at most max_bytes.

    write() adds files; when the folder is over budget afterwards the oldest files are removed and counted in the
    result so that the caller can warn. files() lists what waits for upload, oldest first; remove() deletes one
    file once the PCE accepted it.
    """

    def __init__(self, directory, max_lines=DEFAULT_MAX_LINES, max_bytes=DEFAULT_MAX_BYTES, kind="csv"):
        if max_lines < 1 or max_bytes < 1:
            raise ValueError("max_lines and max_bytes must be positive")
        if kind not in ("csv", "jsonl"):
            raise ValueError("kind must be csv or jsonl")
        self.directory = directory
        self.max_lines = int(max_lines)
        self.max_bytes = int(max_bytes)
        self.kind = kind

    def _ensure_dir(self):
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, 0o700)

    def files(self):
        """SpoolFiles of this spool, oldest first (files that are not spool files are left alone)."""
        found = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return found
        for name in names:
            match = SPOOL_NAME.match(name)
            if not match:
                continue
            path = os.path.join(self.directory, name)
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            found.append((match.group(1), int(match.group(2)), SpoolFile(name, path, size)))
        found.sort(key=lambda item: (item[0], item[1], item[2].name))
        return [item[2] for item in found]

    def total_bytes(self):
        return sum(spool_file.size for spool_file in self.files())

    def remove(self, name):
        """Delete one spool file by name; True when it was there."""
        if not SPOOL_NAME.match(name):
            raise ValueError("not a spool file name: %r" % name)
        try:
            os.unlink(os.path.join(self.directory, name))
        except OSError:
            return False
        return True

    def write(self, rows, now=None):
        """Spool rows (AggregateRow or SummaryRow) in files of at most max_lines. Returns a SpoolResult."""
        written, lines = self._write(rows, now, "")
        dropped_files, dropped_flows = self.enforce_budget()
        kept = [name for name in written if name not in dropped_files]
        return SpoolResult(kept, lines, dropped_files, dropped_flows)

    def stage(self, rows, now=None):
        """Write rows like write(), but as staged files that nothing reads yet. Returns their final names."""
        return self._write(rows, now, STAGED_PREFIX)[0]

    def publish(self, names):
        """Rename the staged files of these final names into place; names already in place stay. Returns a
        SpoolResult of the names now in the spool (the budget enforced afterwards, as by write())."""
        published, lines = [], 0
        for name in names:
            if not SPOOL_NAME.match(name):
                raise ValueError("not a spool file name: %r" % name)
            final = os.path.join(self.directory, name)
            staged = os.path.join(self.directory, STAGED_PREFIX + name)
            if os.path.exists(staged):
                os.rename(staged, final)
            elif not os.path.exists(final):
                continue  # published by an earlier run, then uploaded and removed
            published.append(name)
            lines += _count_lines(final)
        if published:
            sync_dir(self.directory)
        dropped_files, dropped_flows = self.enforce_budget()
        kept = [name for name in published if name not in dropped_files]
        return SpoolResult(kept, lines, dropped_files, dropped_flows)

    def discard_staged(self):
        """Remove staged files (a writer that stopped before recording them). Returns their final names."""
        removed = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return removed
        for name in sorted(names):
            if name.startswith(STAGED_PREFIX) and SPOOL_NAME.match(name[len(STAGED_PREFIX) :]):
                try:
                    os.unlink(os.path.join(self.directory, name))
                except OSError:
                    continue
                removed.append(name[len(STAGED_PREFIX) :])
        return removed

    def _write(self, rows, now, prefix):
        self._ensure_dir()
        self._remove_stale_temporaries(now)
        line_of = csv_line if self.kind == "csv" else json_line
        lines = [line_of(row) + "\n" for row in rows]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
        sequence = self._last_sequence(stamp)
        written = []
        for start in range(0, len(lines), self.max_lines):
            chunk = lines[start : start + self.max_lines]
            sequence += 1
            name = "flows-%s-%d.%s" % (stamp, sequence, self.kind)
            write_atomic(os.path.join(self.directory, prefix + name), "".join(chunk))
            written.append(name)
        return written, len(lines)

    def enforce_budget(self):
        """Remove the oldest files until the spool is within max_bytes. Returns (names removed, flows in them)."""
        files = self.files()
        total = sum(spool_file.size for spool_file in files)
        dropped, flows = [], 0
        for spool_file in files:
            if total <= self.max_bytes:
                break
            lines = _count_lines(spool_file.path)
            try:
                os.unlink(spool_file.path)
            except OSError:
                continue
            total -= spool_file.size
            dropped.append(spool_file.name)
            flows += lines
        return dropped, flows

    def _last_sequence(self, stamp):
        """The highest sequence number of a spool file (here, staged, or in done/) with this time stamp, else 0."""
        last = 0
        for folder in (self.directory, os.path.join(self.directory, "done")):
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                match = SPOOL_NAME.match(name[len(STAGED_PREFIX) :] if name.startswith(STAGED_PREFIX) else name)
                if match and match.group(1) == stamp:
                    last = max(last, int(match.group(2)))
        return last

    def _remove_stale_temporaries(self, now):
        """Temporary files left by a write that was killed (older than an hour) are removed."""
        limit = (time.time() if now is None else now) - STALE_TEMPORARY_SECONDS
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if not name.startswith(".tmp-"):
                continue
            path = os.path.join(self.directory, name)
            try:
                if os.stat(path).st_mtime < limit:
                    os.unlink(path)
            except OSError:
                pass
