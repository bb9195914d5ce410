# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Traffic flows: upload host spools to the PCE exactly once, and run async traffic (Explorer) queries.

Upload: `POST /orgs/{org}/agents/bulk_traffic_flows` takes CSV lines `src_ip,dst_ip,dst_port,proto,
num_connections,first_detected,last_detected` and answers `{num_flows_received, num_flows_failed,
failed_flows, errors}`. It has no idempotency key and the PCE sums the connections of flows it is sent
twice, so a batch whose answer was lost (the PCE committed it, then the connection died) must not simply be
sent again. How that is handled:

* Before a batch goes out, `<file>.progress` records it as *in flight*: its line range, a sha256 of its
  lines and its *probes*. The record is written atomically (temporary file, fsync, rename).
* Probes are up to PROBES_PER_BATCH valid lines of the batch whose `last_detected` is moved *earlier*, to
  a second inside the flow's own observed window (first_detected <= marker < last_detected), chosen from a
  hash of the file and the batch so that it differs from batch to batch. Nothing false is reported: the
  connection was seen at that second, the PCE only learns a slightly shorter window for these few lines.
  Lines seen during a single second (first == last) keep their timestamps and are probes as they are.
* To find out whether an in-flight batch was stored, each probe's flow (src, dst, port, proto) is queried
  twice: over [marker, far future] and over [marker + 1 s, far future]. The difference in connections is
  exactly what the PCE holds for that flow with last_detected == marker, which is the probe itself
  (whatever else the PCE holds for the same flow cancels out). Every probe equal to its connections: the
  batch is there and is not sent again. Every probe zero: it is not there and is sent again. Anything
  else is reported and nothing more is sent for that file unless the task says how to decide (in_doubt).
* After an answer, rejected lines are appended to `<file>.rejected` (JSON lines), then the progress record
  moves on. A file goes to `done/` once every line is accepted or rejected.

Queries: `POST /orgs/{org}/traffic_flows/async_queries` -> poll its href until `completed` -> GET
`<href>/download` (rows shaped like the PCE's traffic_query_response).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import datetime
import gzip
import hashlib
import ipaddress
import json
import os
import time

from ansible_collections.microseg.illumio.plugins.module_utils.flows import writers
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError

UPLOAD_PATH = "agents/bulk_traffic_flows"
QUERY_PATH = "traffic_flows/async_queries"
CSV_VERSION_HEADER = "X-Bulk-Traffic-Load-CSV-Version"
# Biggest batch the module sends; the lab PCE also caps a request at 32 MiB of CSV, kept below by MAX_BODY_BYTES.
MAX_BATCH_SIZE = 100000
MAX_BODY_BYTES = 30 * 1024 * 1024
DEFAULT_BATCH_SIZE = 1000
PROBES_PER_BATCH = 3
# A batch that keeps getting no answer although the PCE does not have it is sent at most this often per run.
MAX_SENDS_PER_BATCH = 3
DONE_DIR = "done"
PROGRESS_VERSION = 1
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "ipv6-icmp": 58}
PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}
POLICY_DECISIONS = ("allowed", "potentially_blocked", "blocked", "unknown")
QUERY_DONE = "completed"
QUERY_PENDING = frozenset(["queued", "working", "pending", "running", "in_progress"])
IN_DOUBT_CHOICES = ("fail", "resend", "skip")


class UploadFailed(PceError):
    """An upload that stopped; `result` holds the counts so far."""

    def __init__(self, message, result):
        super(UploadFailed, self).__init__(message)
        self.result = result


# --- CSV lines ----------------------------------------------------------------------------------------------
def parse_line(line):
    """A 7-field spool line as (src, dst, port, proto, connections, first, last), or ValueError."""
    fields = [part.strip() for part in line.split(",")]
    if len(fields) != 7:
        raise ValueError("expected 7 comma-separated fields, found %d" % len(fields))
    src, dst = ipaddress.ip_address(fields[0]), ipaddress.ip_address(fields[1])
    if src.version != dst.version:
        raise ValueError("src_ip and dst_ip are of different IP versions")
    port = _whole(fields[2], "dst_port", 0, 65535)
    proto = PROTOCOLS[fields[3].lower()] if fields[3].lower() in PROTOCOLS else _whole(fields[3], "proto", 0, 255)
    connections = _whole(fields[4], "num_connections", 1, 2**31 - 1)
    first, last = _whole(fields[5], "first_detected", 0, 2**40), _whole(fields[6], "last_detected", 0, 2**40)
    if first > last:
        raise ValueError("first_detected is after last_detected")
    return str(src), str(dst), port, proto, connections, first, last


def quick_fields(line):
    """(src, dst, port, proto, connections, first, last) of a 7-field line without checking the addresses, or None.

    Cheap enough for every line of a spool; probes, which must be valid, go through parse_line() as well.
    """
    fields = line.split(",")
    if len(fields) != 7:
        return None
    try:
        proto = fields[3].strip().lower()
        proto = PROTOCOLS[proto] if proto in PROTOCOLS else int(proto)
        numbers = [int(fields[index]) for index in (2, 4, 5, 6)]
    except ValueError:
        return None
    src, dst = fields[0].strip(), fields[1].strip()
    if ":" in src or ":" in dst:  # IPv6 has several spellings; the PCE shows the compressed one
        try:
            src, dst = str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst))
        except ValueError:
            return None
    return src, dst, numbers[0], proto, numbers[1], numbers[2], numbers[3]


def _whole(text, name, low, high):
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError("%s %r is not a whole number from %d to %d" % (name, text, low, high))
    return int(text)


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- files --------------------------------------------------------------------------------------------------
def upload_file_key(name):
    """(time stamp, sequence) of a spool file in the upload format (writers.Spool's CSV files), else None."""
    match = writers.SPOOL_NAME.match(name)
    return (match.group(1), int(match.group(2))) if match and match.group(3) == "csv" else None


def spool_files(spool_dir):
    """Complete spool files (final names only; writers rename tmp files into place), in name order."""
    names = [name for name in os.listdir(spool_dir) if upload_file_key(name)]
    return sorted(names, key=lambda name: (upload_file_key(name), name))


def _digest(data):
    return hashlib.sha256(data).hexdigest()


def batch_digest(lines):
    return _digest(("\n".join(lines) + "\n").encode("utf-8"))


class SpoolFile(object):
    """One spool file with its progress record (`<name>.progress`) and rejected lines (`<name>.rejected`)."""

    def __init__(self, spool_dir, name):
        self.spool_dir = spool_dir
        self.name = name
        self.path = os.path.join(spool_dir, name)
        self.progress_path = self.path + ".progress"
        self.rejected_path = self.path + ".rejected"
        with open(self.path, "rb") as stream:
            data = stream.read()
        self.sha256 = _digest(data)
        self.lines = data.decode("utf-8", "replace").splitlines()
        self.progress = self._load_progress()

    def _load_progress(self):
        if not os.path.exists(self.progress_path):
            return {
                "version": PROGRESS_VERSION,
                "file": self.name,
                "sha256": self.sha256,
                "lines": len(self.lines),
                "next_line": 0,
                "rejected_bytes": 0,
                "batches": [],
                "in_flight": None,
            }
        try:
            with open(self.progress_path) as stream:
                progress = json.load(stream)
        except (OSError, ValueError) as error:
            raise PceError("cannot read %s: %s" % (self.progress_path, error)) from None
        if progress.get("sha256") != self.sha256:
            raise PceError(
                "%s changed since its upload began (its sha256 no longer matches %s): spool files must not be "
                "modified once they have their final name" % (self.path, self.progress_path)
            )
        return progress

    @property
    def started(self):
        return os.path.exists(self.progress_path)

    def save(self):
        writers.write_atomic(self.progress_path, json.dumps(self.progress, sort_keys=True, indent=1) + "\n")

    def pending_line_count(self):
        start = self.progress["next_line"]
        return sum(1 for line in self.lines[start:] if line.strip())

    def append_rejected(self, entries):
        """Add rejected lines after what the progress record accounts for (a crash leaves no double)."""
        if not entries:
            return
        keep = self.progress.get("rejected_bytes", 0)
        descriptor = os.open(self.rejected_path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "r+b") as stream:
            stream.truncate(keep)
            stream.seek(keep)
            for entry in entries:
                stream.write((json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
            self.progress["rejected_bytes"] = stream.tell()

    def finish(self):
        """Move the file, then its records, to done/ (the file first: its presence is what is uploaded)."""
        done = os.path.join(self.spool_dir, DONE_DIR)
        if not os.path.isdir(done):
            os.mkdir(done, 0o700)
        os.replace(self.path, os.path.join(done, self.name))
        for path in (self.progress_path, self.rejected_path):
            if os.path.exists(path):
                os.replace(path, os.path.join(done, os.path.basename(path)))
        writers.sync_dir(done)
        writers.sync_dir(self.spool_dir)
        return os.path.join(done, self.name)


def tidy_spool(spool_dir):
    """Records left behind by a run that stopped between moving a file to done/ and moving its records."""
    done = os.path.join(spool_dir, DONE_DIR)
    for name in os.listdir(spool_dir):
        for suffix in (".progress", ".rejected"):
            if not name.endswith(suffix):
                continue
            spool_name = name[: -len(suffix)]
            if (
                upload_file_key(spool_name)
                and not os.path.exists(os.path.join(spool_dir, spool_name))
                and os.path.exists(os.path.join(done, spool_name))
            ):
                os.replace(os.path.join(spool_dir, name), os.path.join(done, name))


# --- batches and probes -------------------------------------------------------------------------------------
def choose_probes(spool, start, end, taken):
    """Up to PROBES_PER_BATCH probes of lines [start, end): {line, src, dst, port, proto, connections, marker}.

    `taken` counts the (src, dst, port, proto, last) of the file's lines and of markers already given out. A
    probe's marker is none of them, so the flows of that 5-tuple that end at the marker second are the probe
    alone, as far as this spool knows.
    """
    seed = int(_digest(("%s:%d" % (spool.sha256, start)).encode("ascii"))[:12], 16)
    candidates = []
    for index in range(start, end):
        fields = quick_fields(spool.lines[index])
        if fields is None or fields[5] > fields[6]:
            continue
        candidates.append((fields[6] - fields[5], index))
    # Lines with the longest windows first: they leave room for a marker other than their own end.
    candidates.sort(key=lambda item: (-item[0], item[1]))
    probes, flows = [], set()
    for span, index in candidates:
        try:
            src, dst, port, proto, connections, first, last = parse_line(spool.lines[index])
        except ValueError:
            continue
        flow = (src, dst, port, proto)
        if flow in flows:
            continue
        marker = None
        if span:
            for step in range(min(span, 64)):
                second = first + (seed + step) % span  # first <= second < last
                if not taken.get((*flow, second)):
                    marker = second
                    break
        elif taken.get((*flow, last)) == 1:
            marker = last  # seen during one second: the line as it is, if no other line of the file ends there
        if marker is None:
            continue
        taken[(*flow, marker)] = taken.get((*flow, marker), 0) + 2
        flows.add(flow)
        probes.append(
            {
                "line": index,
                "src": flow[0],
                "dst": flow[1],
                "port": flow[2],
                "proto": flow[3],
                "connections": connections,
                "marker": marker,
            }
        )
        if len(probes) >= PROBES_PER_BATCH:
            break
    return probes


def batch_lines(spool, start, end, probes):
    """The CSV lines sent for lines [start, end): blank lines left out, probes carrying their marker."""
    markers = dict((probe["line"], probe["marker"]) for probe in probes)
    lines, numbers = [], []
    for index in range(start, end):
        line = spool.lines[index].strip()
        if not line:
            continue
        if index in markers:
            fields = [part.strip() for part in line.split(",")]
            fields[6] = str(markers[index])
            line = ",".join(fields)
        lines.append(line)
        numbers.append(index)
    return lines, numbers


def next_batch_end(spool, start, batch_size):
    """End (exclusive) of the batch starting at `start`: batch_size non-blank lines, under MAX_BODY_BYTES."""
    count, size, index = 0, 0, start
    while index < len(spool.lines) and count < batch_size:
        line = spool.lines[index]
        if line.strip():
            if count and size + len(line) + 1 > MAX_BODY_BYTES:
                break
            count += 1
            size += len(line) + 1
        index += 1
    # Trailing blank lines belong to this batch, so a file does not end in an empty one.
    while index < len(spool.lines) and not spool.lines[index].strip():
        index += 1
    return index


def known_flow_ends(spool):
    """How many lines of the file end at each (src, dst, port, proto, last), plus the markers given out."""
    taken = {}
    for line in spool.lines:
        fields = quick_fields(line)
        if fields is None:
            continue
        key = fields[:4] + fields[6:]
        taken[key] = taken.get(key, 0) + 1
    for batch in spool.progress.get("batches", []):
        for marker in batch.get("markers", []):
            key = tuple(marker)
            taken[key] = taken.get(key, 0) + 2
    return taken


# --- the upload request -------------------------------------------------------------------------------------
def post_flows(client, lines, compress):
    """Send CSV lines; the PCE's answer as a dict. PceError with status None: no answer came."""
    body = ("\n".join(lines) + "\n").encode("utf-8")
    headers = {"Content-Type": "text/csv", CSV_VERSION_HEADER: "1"}
    if compress:
        body = gzip.compress(body, compresslevel=6)
        headers["Content-Encoding"] = "gzip"
    path = client.org_path(UPLOAD_PATH)
    # PceClient.request() sends JSON bodies only; this is its own retry path (429/503 and connection
    # failures before the request left whole are retried, like every POST) with a raw body.
    request_headers = dict(client._headers)
    request_headers.update(headers)
    try:
        response = client._request_with_retries("POST", client._target(path, None), body, request_headers, path)
    except PceError as error:
        raise error.scrubbed(client._secrets) from None
    try:
        answer = response.json()
    except ValueError:
        raise PceError(
            "PCE answered the flow upload with something that is not JSON: %s" % response.text[:300]
        ) from None
    if not isinstance(answer, dict):
        raise PceError("PCE answered the flow upload with %r, not an object" % (answer,))
    return answer


def rejected_entries(answer, lines, numbers, spool):
    """{line (1-based in the file), flow, message} for each line the PCE refused."""
    entries, seen = [], set()
    for error in answer.get("errors") or []:
        if not isinstance(error, dict):
            continue
        position = error.get("line")
        index = None
        if isinstance(position, int) and 1 <= position <= len(lines):
            index = position - 1
        elif error.get("flow") in lines:
            index = lines.index(error["flow"])
        if index is None or index in seen:
            continue
        seen.add(index)
        entries.append(
            {"line": numbers[index] + 1, "flow": spool.lines[numbers[index]].strip(), "message": error.get("message")}
        )
    for flow in answer.get("failed_flows") or []:
        matches = [index for index, line in enumerate(lines) if line == flow and index not in seen]
        if matches:
            seen.add(matches[0])
            entries.append(
                {
                    "line": numbers[matches[0]] + 1,
                    "flow": spool.lines[numbers[matches[0]]].strip(),
                    "message": "rejected by the PCE (no reason given)",
                }
            )
    entries.sort(key=lambda entry: entry["line"])
    return entries


def locally_rejected(lines, numbers, spool):
    """For a batch stored while its answer was lost: the lines a PCE would refuse, by the CSV rules."""
    entries = []
    for index, line in enumerate(lines):
        try:
            parse_line(line)
        except (ValueError, KeyError) as error:
            entries.append(
                {
                    "line": numbers[index] + 1,
                    "flow": spool.lines[numbers[index]].strip(),
                    "message": "%s (checked locally: the PCE's answer to this batch was lost)" % error,
                }
            )
    return entries


# --- async traffic queries ----------------------------------------------------------------------------------
def run_query(client, body, timeout=300, poll_interval=1.0):
    """Run one async traffic query; (rows, the query as the PCE shows it when completed)."""
    created = client.post(client.org_path(QUERY_PATH), body) or {}
    href = created.get("href")
    if not href:
        raise PceError("PCE accepted the traffic query but gave no href: %r" % (created,))
    deadline = client.clock() + timeout
    delay = min(0.2, poll_interval)
    job = created
    while job.get("status") != QUERY_DONE:
        status = job.get("status")
        if status is not None and status not in QUERY_PENDING:
            raise PceError("traffic query %s ended with status %r" % (href, status), details=job)
        if client.clock() >= deadline:
            raise PceError("traffic query %s did not complete within %s seconds (status %r)" % (href, timeout, status))
        client.sleep(delay)
        delay = min(poll_interval, delay * 2)
        job = client.get(href) or {}
    result = job.get("result")
    download = result if isinstance(result, str) and result else href.rstrip("/") + "/download"
    rows = client.get(download) or []
    if not isinstance(rows, list):
        raise PceError("traffic query %s gave %r instead of a list of flows" % (href, type(rows).__name__))
    return rows, job


def flow_query_body(
    start,
    end,
    sources=None,
    destinations=None,
    services=None,
    policy_decisions=None,
    max_results=None,
    query_op="and",
    exclude_workloads_from_ip_list_query=True,
):
    """A traffic query body shaped like the PCE's traffic_query.json."""
    return {
        "start_date": start,
        "end_date": end,
        "sources_destinations_query_op": query_op,
        "sources": sources or {"include": [], "exclude": []},
        "destinations": destinations or {"include": [], "exclude": []},
        "services": services or {"include": [], "exclude": []},
        "policy_decisions": list(policy_decisions or []),
        "max_results": max_results or 100000,
        "exclude_workloads_from_ip_list_query": exclude_workloads_from_ip_list_query,
    }


def connections_of(rows, src, dst, port, proto):
    return sum(
        int(row.get("num_connections") or 0)
        for row in rows
        if (row.get("src") or {}).get("ip") == src
        and (row.get("dst") or {}).get("ip") == dst
        and (row.get("service") or {}).get("port") == port
        and (row.get("service") or {}).get("proto") == proto
    )


def probe_count(client, probe, timeout, now):
    """Connections the PCE holds for the probe's flow with last_detected exactly at its marker second."""
    far = iso(max(now, probe["marker"]) + 2 * 86400)
    counts = []
    for start in (probe["marker"], probe["marker"] + 1):
        body = flow_query_body(
            iso(start),
            far,
            sources={"include": [[{"ip_address": probe["src"]}]], "exclude": []},
            destinations={"include": [[{"ip_address": probe["dst"]}]], "exclude": []},
            services={"include": [{"port": probe["port"], "proto": probe["proto"]}], "exclude": []},
            max_results=1000,
            exclude_workloads_from_ip_list_query=False,
        )
        rows, _job = run_query(client, body, timeout=timeout)
        counts.append(connections_of(rows, probe["src"], probe["dst"], probe["port"], probe["proto"]))
    return counts[0] - counts[1]


def batch_presence(client, in_flight, timeout):
    """'present', 'absent' or 'unclear' for an in-flight batch, with what each probe showed."""
    probes = in_flight.get("probes") or []
    if not probes:
        # No valid line: the PCE stored nothing from this batch either way, so sending it again is harmless.
        return "absent", []
    now = int(time.time())
    seen = []
    for probe in probes:
        found = probe_count(client, probe, timeout, now)
        seen.append({"line": probe["line"] + 1, "expected": probe["connections"], "found": found})
    if all(entry["found"] == entry["expected"] for entry in seen):
        return "present", seen
    if all(entry["found"] == 0 for entry in seen):
        return "absent", seen
    return "unclear", seen


# --- the upload ---------------------------------------------------------------------------------------------
class Uploader(object):
    def __init__(
        self,
        client,
        spool_dir,
        batch_size=DEFAULT_BATCH_SIZE,
        compress=False,
        in_doubt="fail",
        query_timeout=300,
        check_mode=False,
    ):
        self.client = client
        self.spool_dir = spool_dir
        self.batch_size = batch_size
        self.compress = compress
        self.in_doubt = in_doubt
        self.query_timeout = query_timeout
        self.check_mode = check_mode
        self._attempts = {}  # (file, first line) -> sends of that batch in this run
        self.result = {
            "changed": False,
            "spool_dir": spool_dir,
            "files": 0,
            "files_done": 0,
            "flows_sent": 0,
            "flows_accepted": 0,
            "flows_rejected": 0,
            "batches_sent": 0,
            "batches_in_doubt": 0,
            "resumed_batches": 0,
            "skipped_present_batches": 0,
            "resent_batches": 0,
            "file_status": [],
        }

    def run(self):
        if not os.path.isdir(self.spool_dir):
            raise PceError("spool_dir %s is not a directory" % self.spool_dir)
        if not self.check_mode:
            tidy_spool(self.spool_dir)
        names = spool_files(self.spool_dir)
        self.result["files"] = len(names)
        for name in names:
            status = {
                "file": name,
                "status": "pending",
                "lines": 0,
                "sent": 0,
                "accepted": 0,
                "rejected": 0,
                "batches": 0,
                "resumed": False,
            }
            self.result["file_status"].append(status)
            try:
                spool = SpoolFile(self.spool_dir, name)
                status["lines"] = sum(1 for line in spool.lines if line.strip())
                status["resumed"] = spool.started
                if self.check_mode:
                    self._plan(spool, status)
                else:
                    self._upload(spool, status)
            except UploadFailed:
                raise
            except PceError as error:
                status["status"] = "failed"
                status["error"] = str(error)
                raise UploadFailed("%s: %s" % (name, error), self.result) from None
        return self.result

    def _plan(self, spool, status):
        pending = spool.pending_line_count()
        in_flight = spool.progress.get("in_flight")
        status["would_send"] = pending
        status["in_doubt_batch"] = bool(in_flight)
        status["status"] = "would_upload" if pending or in_flight else "would_finish"
        self.result["flows_sent"] += pending
        if pending or in_flight:
            self.result["changed"] = True
        if in_flight:
            self.result["resumed_batches"] += 1
        if not pending and not in_flight:
            self.result["changed"] = True  # it would be moved to done/

    def _upload(self, spool, status):
        progress = spool.progress
        taken = known_flow_ends(spool)
        if progress.get("in_flight"):
            self.result["resumed_batches"] += 1
            self._settle(spool, status, resumed=True)
        while progress["next_line"] < len(spool.lines):
            start = progress["next_line"]
            end = next_batch_end(spool, start, self.batch_size)
            probes = choose_probes(spool, start, end, taken)
            lines, _numbers = batch_lines(spool, start, end, probes)
            progress["in_flight"] = {
                "start": start,
                "end": end,
                "sha256": batch_digest(lines),
                "probes": probes,
                "compress": self.compress,
            }
            spool.save()
            self._send(spool, status)
        status["path"] = spool.finish()
        status["status"] = "done"
        self.result["files_done"] += 1
        self.result["changed"] = True

    def _send(self, spool, status):
        """Send the in-flight batch and record the answer; settle it against the PCE if the answer is lost."""
        in_flight = spool.progress["in_flight"]
        lines, numbers = batch_lines(spool, in_flight["start"], in_flight["end"], in_flight["probes"])
        if batch_digest(lines) != in_flight["sha256"]:
            raise PceError("the in-flight batch of %s no longer matches its record" % spool.name)
        if not lines:
            self._record(spool, status, 0, [], "empty")
            return
        key = (spool.name, in_flight["start"])
        attempts = self._attempts.get(key, 0) + 1
        if attempts > MAX_SENDS_PER_BATCH:
            raise PceError(
                "lines %d-%d of %s were sent %d times in this run without an answer and are not on the PCE; "
                "giving up for now (run the task again later)"
                % (in_flight["start"] + 1, in_flight["end"], spool.name, MAX_SENDS_PER_BATCH)
            )
        self._attempts[key] = attempts
        try:
            answer = post_flows(self.client, lines, self.compress)
        except PceError as error:
            if error.status is not None:
                self._reached(status, lines)  # the PCE (or its gateway) answered
            if error.status is not None and error.status < 500:
                # The PCE answered and refused the whole request: nothing was stored.
                spool.progress["in_flight"] = None
                spool.save()
                raise
            # No answer (or a server error): the PCE may or may not have stored the batch.
            try:
                self._settle(spool, status, resumed=False, unanswered=error.status is None)
            except PceError as check_error:
                raise PceError(
                    "lines %d-%d: the upload got no answer (%s), and whether the PCE stored them cannot be checked "
                    "now (%s). Run the task again: the batch is checked against the PCE before anything is resent."
                    % (in_flight["start"] + 1, in_flight["end"], error, check_error)
                ) from None
            return
        self._reached(status, lines)
        self.result["changed"] = True
        rejected = rejected_entries(answer, lines, numbers, spool)
        failed = answer.get("num_flows_failed")
        failed = len(rejected) if not isinstance(failed, int) else max(failed, len(rejected))
        accepted = len(lines) - failed
        self._record(spool, status, accepted, rejected, "answered")

    def _reached(self, status, lines):
        """Count a batch that reached the PCE: answered, or found stored after its answer was lost. A batch that
        never got through (a failed TLS handshake, a refused connection) is not counted as sent."""
        status["sent"] += len(lines)
        status["batches"] += 1
        self.result["flows_sent"] += len(lines)
        self.result["batches_sent"] += 1

    def _record(self, spool, status, accepted, rejected, how):
        progress, in_flight = spool.progress, spool.progress["in_flight"]
        spool.append_rejected(rejected)
        progress["batches"].append(
            {
                "start": in_flight["start"],
                "end": in_flight["end"],
                "accepted": accepted,
                "rejected": len(rejected),
                "how": how,
                "markers": [
                    [probe["src"], probe["dst"], probe["port"], probe["proto"], probe["marker"]]
                    for probe in in_flight["probes"]
                ],
            }
        )
        progress["next_line"] = in_flight["end"]
        progress["in_flight"] = None
        spool.save()
        status["accepted"] += accepted
        status["rejected"] += len(rejected)
        self.result["flows_accepted"] += accepted
        self.result["flows_rejected"] += len(rejected)

    def _settle(self, spool, status, resumed, unanswered=False):
        """Decide an in-flight batch: skip it when the PCE has it, send it again when it does not. `unanswered`:
        this run sent it and got no answer at all (so it was not counted as sent yet)."""
        in_flight = spool.progress["in_flight"]
        lines, numbers = batch_lines(spool, in_flight["start"], in_flight["end"], in_flight["probes"])
        if batch_digest(lines) != in_flight["sha256"]:
            raise PceError("the in-flight batch of %s no longer matches its record" % spool.name)
        self.result["batches_in_doubt"] += 1  # until the PCE's traffic tells
        presence, seen = batch_presence(self.client, in_flight, self.query_timeout)
        status.setdefault("checks", []).append(
            {"lines": [in_flight["start"] + 1, in_flight["end"]], "presence": presence, "probes": seen}
        )
        if presence == "unclear":
            if self.in_doubt == "fail":
                raise PceError(
                    "lines %d-%d of %s were sent but their answer was lost, and the PCE's traffic does not tell "
                    "whether it stored them (probe lines: %s). Nothing more is sent for this file; set "
                    "in_doubt=resend or in_doubt=skip to decide."
                    % (
                        in_flight["start"] + 1,
                        in_flight["end"],
                        spool.name,
                        ", ".join("line %(line)d expected %(expected)d found %(found)d" % entry for entry in seen),
                    )
                )
            presence = "absent" if self.in_doubt == "resend" else "present"
        self.result["batches_in_doubt"] -= 1
        if presence == "present":
            if unanswered:
                self._reached(status, lines)
            self.result["skipped_present_batches"] += 1
            rejected = locally_rejected(lines, numbers, spool)
            self._record(spool, status, len(lines) - len(rejected), rejected, "found_on_pce")
            self.result["changed"] = True
            return
        if self._attempts.get((spool.name, in_flight["start"]), 0) < MAX_SENDS_PER_BATCH:
            self.result["resent_batches"] += 1
        self._send(spool, status)


# --- flow_query: from task options to a query, and from rows to flows -------------------------------------------
def query_window(start_date=None, end_date=None, since=None, now=None):
    """(start, end) of a query: explicit dates, or the last `since` seconds (default one day) up to now."""
    now = time.time() if now is None else now
    end = end_date or iso(now + 60)
    if start_date:
        return start_date, end
    return iso(now - (since if since is not None else 86400)), end


def actor(entry, labels):
    """A task's actor as the PCE writes it. Strings: an href, an IP address or CIDR, `ams`, or `key:value`."""
    if isinstance(entry, str):
        text = entry.strip()
        if text == "ams":
            return {"actors": "ams"}
        if text.startswith("/orgs/"):
            kind = text.split("/")[3] if len(text.split("/")) > 3 else ""
            kinds = {"workloads": "workload", "labels": "label", "label_groups": "label_group"}
            if kind in kinds:
                return {kinds[kind]: {"href": text}}
            if "ip_lists" in text:
                return {"ip_list": {"href": text}}
            raise PceError("%r is not the href of a workload, label, label group or IP list" % text)
        try:
            ipaddress.ip_network(text, strict=False)
            return {"ip_address": text}
        except ValueError:
            pass
        key, sep, value = text.partition(":")
        if not sep or not key or not value:
            raise PceError("cannot read actor %r: use key:value, an IP address or CIDR, an href or ams" % text)
        return {"label": {"href": labels.href(key.strip(), value.strip())}}
    if isinstance(entry, dict) and len(entry) == 1:
        kind, value = next(iter(entry.items()))
        if kind in ("ip", "ip_address"):
            return {"ip_address": str(value)}
        if kind == "label":
            if isinstance(value, dict) and "href" in value:
                return {"label": {"href": value["href"]}}
            if isinstance(value, dict):
                pairs = [(value.get("key"), value.get("value"))] if "key" in value else list(value.items())
                if len(pairs) != 1:
                    raise PceError("a label actor names one label, got %r" % (value,))
                return {"label": {"href": labels.href(*pairs[0])}}
            return actor(str(value), labels)
        if kind in ("workload", "label_group", "ip_list"):
            href = value.get("href") if isinstance(value, dict) else value
            return {kind: {"href": href}}
        if kind == "actors":
            return {"actors": value}
    raise PceError(
        "cannot read actor %r: use {label: key:value}, {ip: address or CIDR}, {workload: href}, "
        "{label_group: href}, {ip_list: href}, or one of these as a string" % (entry,)
    )


def actor_side(side, labels):
    """{include: [actor or [actors ANDed]], exclude: [actor]} -> the PCE's {include: [[...]], exclude: [...]}."""
    side = side or {}
    include = [
        [actor(item, labels) for item in (group if isinstance(group, list) else [group])]
        for group in side.get("include") or []
    ]
    exclude = [actor(item, labels) for item in side.get("exclude") or []]
    return {"include": include, "exclude": exclude}


def service_entry(entry):
    if not isinstance(entry, dict):
        raise PceError("a service is {port, to_port, proto}, got %r" % (entry,))
    service = {}
    for key in ("port", "to_port"):
        if entry.get(key) is not None:
            service[key] = int(entry[key])
    proto = entry.get("proto")
    if proto is not None:
        text = str(proto).lower()
        service["proto"] = PROTOCOLS[text] if text in PROTOCOLS else int(text)
    return service


def flow_view(row):
    """A result row as playbooks want it: flat, with host names when the PCE knows the workloads."""
    src, dst = row.get("src") or {}, row.get("dst") or {}
    service = row.get("service") or {}
    times = row.get("timestamp_range") or {}
    src_workload, dst_workload = src.get("workload") or {}, dst.get("workload") or {}
    proto = service.get("proto")
    return {
        "src_ip": src.get("ip"),
        "src_hostname": src_workload.get("hostname"),
        "src_workload": src_workload.get("href"),
        "src_labels": _label_map(src_workload),
        "dst_ip": dst.get("ip"),
        "dst_hostname": dst_workload.get("hostname"),
        "dst_workload": dst_workload.get("href"),
        "dst_labels": _label_map(dst_workload),
        "port": service.get("port"),
        "proto": proto,
        "proto_name": PROTOCOL_NAMES.get(proto),
        "num_connections": row.get("num_connections"),
        "policy_decision": row.get("policy_decision"),
        "flow_direction": row.get("flow_direction"),
        "first_detected": times.get("first_detected"),
        "last_detected": times.get("last_detected"),
    }


def _label_map(workload):
    """{key: value} of a workload's labels; empty for an address the PCE knows no workload for."""
    return dict((label.get("key"), label.get("value")) for label in workload.get("labels") or [] if label.get("key"))


def flow_summary(flows, max_results):
    by_decision = dict((decision, 0) for decision in POLICY_DECISIONS)
    for flow in flows:
        decision = flow.get("policy_decision") or "unknown"
        by_decision[decision] = by_decision.get(decision, 0) + 1
    return {
        "flows": len(flows),
        "connections": sum(int(flow.get("num_connections") or 0) for flow in flows),
        "by_policy_decision": by_decision,
        "sources": len(set(flow["src_ip"] for flow in flows)),
        "destinations": len(set(flow["dst_ip"] for flow in flows)),
        "truncated": len(flows) >= max_results,
    }
