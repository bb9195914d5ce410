#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: flow_collect
short_description: Collect the traffic flows a host saw since the last run into a spool for upload to the PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host. Reads the flow sources chosen in O(sources) since the last run, sums the flows per
    source, destination, destination port and protocol, and writes the sums into O(spool_dir) as files
    C(flows-<UTC yyyymmddThhmmssZ>-<seq>.csv) in the PCE's bulk upload format
    (C(src_ip,dst_ip,dst_port,proto,num_connections,first_detected,last_detected)), the files that
    M(microseg.illumio.flow_upload) uploads once they are fetched to the controller.
  - B(Sources.) V(vtapflow) and V(vtapdrop) are the VEN's C(vtapflow.log) (accepted flows) and C(vtapdrop.log)
    (dropped flows), read from where the last run stopped, across the VEN's rotation to C(<name>.1). V(flow_db)
    is the VEN's C(flow.db) (views C(flow_view) and C(drop_flow_view)), read read-only by row id. V(flowsum_db) is
    the VEN's C(flowsum.db), whose rows are running sums updated in place; it is read whole and only the growth of
    each row since the last run is spooled (the state file remembers each row's count). V(conntrack) is
    the kernel's connection table (O(conntrack_command), else C(/proc/net/nf_conntrack)); it has no history, so
    each run sums the connections that are in it at that moment. V(nft_sets) is for agentless hosts enforced by
    the role C(microseg.illumio.firewall) with flow recording on (M(microseg.illumio.policy_compile) option
    C(record_flows)) - the flow sets of the table C(inet illumio), which count the new TCP and UDP connections the
    policy accepted and the connection attempts it dropped (retries included) per source, destination, protocol
    and destination port.
  - B(Reading the flow sets without losing updates.) The table has two generations of flow sets. The module
    switches recording to the other generation in one nft transaction, reads the generation that was filling,
    and empties it only after its flows are in the spool and recorded in the state file. Every run first reads
    the idle generation when it still holds flows (a run that stopped after switching, for example because the
    spool was read-only), spools and empties it, then collects the filling one; so every run collects both
    generations, as the role C(microseg.illumio.firewall) needs before it replaces or removes the table.
  - B(Exactly once.) The spool files are first written under a staged name that nothing uploads. Then the state
    file is saved (atomically, mode 0600) with where each source stopped and a record of the staged files and
    of the flow set generation to empty; only then are the files renamed into place, the generation emptied
    and the record removed. A run that stops before that save leaves nothing but staged files, which the next
    run removes before it reads the same flows again; a run that stops after it leaves the record, and the next
    run renames the files and empties the generation (unless the table was replaced since, which emptied it)
    without reading or spooling those flows again. So a flow is spooled once, wherever a run is killed.
  - B(State.) Where each source stopped (file inode, offset and first bytes, database row ids; the flow table's
    handle and when each generation started filling) is kept in O(state_file). One run at a time - a run locks
    the state file's folder (C(flock)) and waits up to 300 seconds for another one to finish.
  - B(Bounded spool.) When the spool is over O(spool_max_bytes) after writing, its oldest files are removed; the
    task warns with the number of flows lost and returns it as RV(dropped_flows).
  - A source whose file does not exist is not an error; the task warns (unless O(warn_missing=false)) and counts
    nothing for it.
  - The upload format has no policy decision, so a flow seen both accepted and dropped is one line.
  - Python 3.6 or later, standard library only. Needs read access to the VEN's logs (usually root).
options:
  sources:
    description:
      - The flow sources to read.
      - V(auto) picks what the host has - the VEN's logs V(vtapflow) and V(vtapdrop) that exist, else
        V(nft_sets) when the table C(inet illumio) records flows, else V(conntrack). RV(sources) names what was read.
    type: list
    elements: str
    choices: [auto, vtapflow, vtapdrop, flow_db, flowsum_db, conntrack, nft_sets]
    default: [auto]
  ven_data_dir:
    description:
      - The VEN's data directory; the logs are in its C(log) folder.
    type: path
    default: /opt/illumio_ven_data
  vtapflow_path:
    description:
      - The VEN's accepted flow log. Default C(<ven_data_dir>/log/vtapflow.log).
    type: path
  vtapdrop_path:
    description:
      - The VEN's dropped flow log. Default C(<ven_data_dir>/log/vtapdrop.log).
    type: path
  flow_db_path:
    description:
      - The VEN's flow database. Default C(<ven_data_dir>/log/flow.db).
    type: path
  flowsum_db_path:
    description:
      - The VEN's aggregated flow database. Default C(<ven_data_dir>/log/flowsum.db).
    type: path
  spool_dir:
    description:
      - Directory for the spool files (created with mode 0700).
    type: path
    default: /var/lib/microseg-illumio/flows/spool
  state_file:
    description:
      - Where the module remembers how far each source was read (created with mode 0600; its directory with 0700).
      - Remove it to read every source from the start again.
    type: path
    default: /var/lib/microseg-illumio/flows/state.json
  spool_max_bytes:
    description:
      - The most bytes all spool files together may take; the oldest files are removed beyond that.
    type: int
    default: 52428800
  spool_file_lines:
    description:
      - The most flows (lines) per spool file.
    type: int
    default: 10000
  count_bytes:
    description:
      - Also sum the byte counts of C(vtapflow.log) and C(vtapdrop.log) lines. The upload format has no bytes, so
        this only costs time; it is there for the sums' own sake.
    type: bool
    default: false
  warn_missing:
    description:
      - Warn when a chosen source is not on the host (a VEN log or database that does not exist, a table
        C(inet illumio) that records no flows). The role C(microseg.illumio.firewall) turns this off when it
        collects the flow sets before replacing or removing the table, which may not record flows.
    type: bool
    default: true
  conntrack_command:
    description:
      - The command that lists the kernel's connection table for the V(conntrack) source. When its program is not
        installed, C(/proc/net/nf_conntrack) is read instead.
    type: str
    default: conntrack -L -o extended
seealso:
  - module: microseg.illumio.flow_upload
    description: Upload the spool files (fetched to the controller) to the PCE.
attributes:
  check_mode:
    description: Reads and sums the sources and reports what would be spooled (RV(flows), RV(connections)) without
      writing spool files or the state file, so the next real run reads the same lines.
    support: full
  diff_mode:
    description: There is no diff.
    support: none
"""

EXAMPLES = r"""
- name: Collect the VEN's flows into the spool
  microseg.illumio.flow_collect:
  become: true
  register: collected

- name: Collect the flows of flow.db and the connection table into a custom spool
  microseg.illumio.flow_collect:
    sources: [flow_db, conntrack]
    spool_dir: /srv/flows/spool
    state_file: /srv/flows/state.json
    spool_max_bytes: 10485760
  become: true

- name: Collect what the agentless firewall recorded (policy_compile with record_flows), plus the connection table
  microseg.illumio.flow_collect:
    sources: [nft_sets, conntrack]
  become: true

- name: Fetch the new spool files to the controller for microseg.illumio.flow_upload
  ansible.builtin.fetch:
    src: "/var/lib/microseg-illumio/flows/spool/{{ item }}"
    dest: "spool/{{ inventory_hostname }}/"
    flat: true
  loop: "{{ collected.spool_files }}"
"""

RETURN = r"""
sources:
  description: What was read of each chosen source, by source name (V(vtapflow), V(vtapdrop), V(flow_db),
    V(flowsum_db), V(conntrack), V(nft_sets)), each with the keys below.
  returned: success
  type: dict
  sample:
    vtapflow: {path: /opt/illumio_ven_data/log/vtapflow.log, lines: 1200, malformed: 1, rotations: 1, lost: []}
  contains:
    path:
      description: The file read.
      type: str
    lines:
      description: Lines (database rows, connection table entries) read, malformed ones included.
      type: int
    malformed:
      description: Lines or rows that were not flows and were skipped.
      type: int
    rotations:
      description: V(1) when the log had been rotated (or rewritten) since the last run, else V(0).
      type: int
    lost:
      description: Notes on what could not be followed - a log rotated twice between runs (its lines in between
        are lost), a log rewritten in place, a database that could not be read, a flow set that was full.
      type: list
      elements: str
flows:
  description: Distinct flows (src, dst, dst_port, proto) written to the spool (in check mode, that would be).
  returned: success
  type: int
  sample: 42
connections:
  description: The connections summed in those flows.
  returned: success
  type: int
  sample: 1200
spool_files:
  description: Names of the spool files written by this run and still in the spool (none in check mode).
  returned: success
  type: list
  elements: str
  sample: [flows-20261123T140000Z-1.csv]
pending_files:
  description: Names of every upload file in the spool after this run - this run's and those of earlier runs
    not yet uploaded and removed -, oldest first. Role C(microseg.illumio.flowlogs) fetches these.
  returned: success
  type: list
  elements: str
  sample: [flows-20261122T140000Z-1.csv, flows-20261123T140000Z-1.csv]
dropped_flows:
  description: Flows in the oldest spool files that were removed to keep the spool within O(spool_max_bytes).
  returned: success
  type: int
  sample: 0
resumed:
  description: What this run finished or redid for an earlier run that was interrupted (not in check mode).
  returned: success
  type: dict
  sample: {spool_files: [flows-20261123T140000Z-1.csv], flushed: a, discarded_files: [], unread_flows: 0}
  contains:
    spool_files:
      description: Spool files the interrupted run had written and recorded, renamed into place now.
      type: list
      elements: str
    flushed:
      description: The flow set generation (V(a) or V(b)) whose flows the interrupted run had spooled, emptied
        now; null when none.
      type: str
    discarded_files:
      description: Spool files the interrupted run had staged but not recorded, removed; their flows are read
        again by this run.
      type: list
      elements: str
    unread_flows:
      description: Flows of a flow set generation an interrupted run had switched away from but not spooled,
        spooled now (counted in RV(flows)).
      type: int
"""

import errno
import fcntl
import json
import os
import shlex
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.flows import nft_sets, parsers, writers
from ansible_collections.microseg.illumio.plugins.module_utils.flows.aggregate import FlowAggregate

SOURCES = ("vtapflow", "vtapdrop", "flow_db", "flowsum_db", "conntrack", "nft_sets")
NFT_TABLE = "%s %s" % (nft_sets.FAMILY, nft_sets.TABLE)
STATE_VERSION = 1
FLOW_DB_VIEWS = (("flow_view", parsers.ALLOWED), ("drop_flow_view", parsers.BLOCKED))
CONNTRACK_TABLE = "/proc/net/nf_conntrack"
LOCK_WAIT_SECONDS = 300


class CollectError(Exception):
    """An expected failure; main() turns it into fail_json."""


def source_paths(params):
    log_dir = os.path.join(params["ven_data_dir"], "log")
    return {
        "vtapflow": params["vtapflow_path"] or os.path.join(log_dir, "vtapflow.log"),
        "vtapdrop": params["vtapdrop_path"] or os.path.join(log_dir, "vtapdrop.log"),
        "flow_db": params["flow_db_path"] or os.path.join(log_dir, "flow.db"),
        "flowsum_db": params["flowsum_db_path"] or os.path.join(log_dir, "flowsum.db"),
        "conntrack": None,
        "nft_sets": None,
    }


def resolve_sources(module, wanted, paths):
    """The sources to read: `wanted` with auto replaced by what this host has (see the sources option)."""
    chosen = [name for name in wanted if name != "auto"]
    if len(chosen) == len(wanted):
        return chosen
    found = [name for name in ("vtapflow", "vtapdrop") if os.path.exists(paths[name])]
    if not found:
        records = module.get_bin_path("nft") and NftSetsReader(module, {}).records_flows()
        found = ["nft_sets"] if records else ["conntrack"]
    return chosen + [name for name in found if name not in chosen]


def load_state(path):
    """(the sources' state, the record of an interrupted run's unfinished writes or None) of the state file."""
    try:
        with open(path) as handle:
            state = json.load(handle)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return {}, None
        raise CollectError("cannot read state_file %s: %s" % (path, exc)) from exc
    except ValueError as exc:
        raise CollectError(
            "state_file %s is not JSON (%s); remove it to read every source again" % (path, exc)
        ) from exc
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        return {}, None
    pending = state.get("pending")
    if not isinstance(pending, dict):
        pending = None
    return state.get("sources") or {}, pending


def save_state(path, sources_state, pending=None):
    """Write the state file atomically. `pending` records writes that a run has committed to and not finished
    (spool files staged, a flow set generation to empty); the next run finishes them when this one cannot."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o700)
    document = {"version": STATE_VERSION, "sources": sources_state}
    if pending:
        document["pending"] = pending
    text = json.dumps(document, indent=1, sort_keys=True) + "\n"
    writers.write_atomic(path, text, 0o600)


class StateLock:
    """An exclusive lock (flock) on the state file's folder, so that one collector at a time reads, spools and
    empties flow sets: the flowlogs role and the firewall role's pre-apply spool may run at the same time."""

    def __init__(self, path):
        self.path = path
        self.folder = os.path.dirname(os.path.abspath(path))
        self.descriptor = None

    def acquire(self, create=False):
        """Lock the folder; when it does not exist, only with `create` (made then, mode 0700). True when held."""
        if self.descriptor is not None:
            return True
        if not os.path.isdir(self.folder):
            if not create:
                return False
            os.makedirs(self.folder, 0o700)
        descriptor = os.open(self.folder, os.O_RDONLY)
        deadline = time.time() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.time() > deadline:
                    os.close(descriptor)
                    raise CollectError(
                        "another flow_collect has held the lock on %s for over %d seconds (or it cannot be "
                        "locked: %s); nothing was read" % (self.folder, LOCK_WAIT_SECONDS, exc)
                    ) from None
                time.sleep(0.2)
        self.descriptor = descriptor
        return True

    def release(self):
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None


def new_report(path):
    return {"path": path, "lines": 0, "malformed": 0, "rotations": 0, "lost": []}


def read_log(module, name, path, previous, aggregate, count_bytes, warn_missing=True):
    """Read one vtap log since `previous` ({"path", "tail"}) into aggregate. Returns (report, new state)."""
    report = new_report(path)
    tail_state = previous.get("tail") if previous.get("path") == path else None
    if not tail_state and not os.path.exists(path):
        if warn_missing:
            module.warn("%s: %s does not exist; nothing read" % (name, path))
        return report, {"path": path, "tail": {}}
    tail = parsers.LogTail(path, tail_state)
    decision = parsers.ALLOWED if name == "vtapflow" else parsers.BLOCKED
    lines = 0
    malformed = 0
    for block in tail.blocks():
        accepted, bad = aggregate.add_vtap_lines(block, decision, count_bytes=count_bytes)
        lines += accepted + bad
        malformed += bad
    report["lines"] = lines
    report["malformed"] = malformed
    inode = (tail_state or {}).get("inode")
    if inode is not None and (tail.state.get("inode") != inode or tail.notes or tail.lost):
        report["rotations"] = 1
    report["lost"] = list(tail.notes)
    for note in tail.notes:
        module.warn("%s: %s" % (name, note))
    return report, {"path": path, "tail": tail.state}


def readable_views(module, name, path, report, rowids=None):
    """(view, decision, rows) of flow_view and drop_flow_view, after `rowids` when given; errors go to the report."""
    for view, decision in FLOW_DB_VIEWS:
        result = parsers.read_view(path, view, (rowids or {}).get(view, 0))
        if result.error:
            report["lost"].append(result.error)
            module.warn("%s: %s" % (name, result.error))
            continue
        report["lines"] += len(result.rows)
        yield view, decision, result


def read_flow_db(module, path, previous, aggregate, warn_missing=True):
    report = new_report(path)
    rowids = previous.get("rowids") if previous.get("path") == path else None
    rowids = dict(rowids or {})
    if not os.path.exists(path):
        if warn_missing:
            module.warn("flow_db: %s does not exist; nothing read" % path)
        return report, {"path": path, "rowids": rowids}
    for view, decision, result in readable_views(module, "flow_db", path, report, rowids):
        for row in result.rows:
            flow = parsers.flow_from_row(row, decision)
            if flow is None:
                report["malformed"] += 1
            else:
                aggregate.add_flow(flow._replace(bytes_in=None, bytes_out=None))
        rowids[view] = result.last_rowid
    return report, {"path": path, "rowids": rowids}


def read_flowsum_db(module, path, previous, aggregate, warn_missing=True):
    """flowsum.db: running sums per (src, dst, dst_port, proto), updated in place; spool what each grew by."""
    report = new_report(path)
    counts = previous.get("counts") if previous.get("path") == path else None
    counts = dict(counts or {})
    if not os.path.exists(path):
        if warn_missing:
            module.warn("flowsum_db: %s does not exist; nothing read" % path)
        return report, {"path": path, "counts": counts}
    # A view that cannot be read now keeps what was remembered of it.
    seen = dict(counts)
    for _view, decision, result in readable_views(module, "flowsum_db", path, report):
        for key in [key for key in seen if key.endswith("|" + decision)]:
            del seen[key]
        for row in result.rows:
            summary = parsers.summary_from_row(row, decision)
            if summary is None:
                report["malformed"] += 1
                continue
            key = "%s|%s|%d|%d|%s" % (summary.src, summary.dst, summary.dst_port, summary.proto, decision)
            grown, first = summary_growth(summary, counts.get(key))
            if grown > 0:
                aggregate.add(
                    summary.src, summary.dst, summary.dst_port, summary.proto, decision, grown, first, summary.last
                )
            seen[key] = [summary.count, summary.last]
    return report, {"path": path, "counts": seen}


def summary_growth(summary, before):
    """(connections added since `before` = [count, last seen], first seen of those) of a flowsum.db row."""
    if not before or summary.count < before[0]:
        return summary.count, summary.first  # new, or removed and made again: all of it is new
    grown = summary.count - before[0]
    return grown, min(max(summary.first, before[1]), summary.last)


def conntrack_lines(module, command):
    """(lines, where they came from) of the connection table."""
    argv = shlex.split(command)
    if argv and module.get_bin_path(argv[0]) is not None:
        argv[0] = module.get_bin_path(argv[0])
        rc, out, err = module.run_command(argv)
        if rc != 0:
            raise CollectError("%s failed (exit %d): %s" % (command, rc, err.strip()))
        return out.splitlines(), command
    if not os.path.exists(CONNTRACK_TABLE):
        return None, CONNTRACK_TABLE
    return parsers.read_conntrack_table(CONNTRACK_TABLE), CONNTRACK_TABLE


def read_conntrack(module, command, aggregate):
    lines, where = conntrack_lines(module, command)
    report = new_report(where)
    if lines is None:
        module.warn("conntrack: the command %r is not installed and %s does not exist; nothing read" % (command, where))
        return report
    flows, malformed = parsers.parse_conntrack(lines, now=time.time())
    for flow in flows:
        aggregate.add_flow(flow._replace(bytes_in=None, bytes_out=None))
    report["lines"] = len(flows) + malformed
    report["malformed"] = malformed
    return report


class NftSetsReader:
    """The source nft_sets: read the generation an interrupted run left (unread_generation), switch the
    recording generation and read the one that was filling (read), later flush what was read (flush).

    The state kept: {"table": the table's handle, "since": {generation: when it started filling}}."""

    def __init__(self, module, previous, warn_missing=True):
        self.module = module
        self.previous = previous
        self.warn_missing = warn_missing
        self.report = new_report("nft %s" % NFT_TABLE)
        self.state = dict(previous)
        self.target = None  # {"table", "generation"} read and to be flushed once spooled

    def run(self, argv, data=None):
        argv = [self.module.get_bin_path(argv[0], required=True), *argv[1:]]
        return self.module.run_command(argv, data=data, binary_data=True)

    def records_flows(self):
        try:
            return nft_sets.filling_generation(self.run) is not None
        except nft_sets.NftSetError:
            return False

    def _since(self, table):
        """When each generation of this table started filling, as far as the state knows."""
        if self.previous.get("table") not in (None, table):
            return {}  # the table was made again since
        since = self.previous.get("since")
        return since if isinstance(since, dict) else {}

    def _filling(self):
        filling = nft_sets.filling_generation(self.run)
        if filling is None and self.warn_missing:
            why = "records no flows (compile with record_flows)"
            if not nft_sets.table_exists(self.run):
                why = "does not exist (yet)"
            self.module.warn("nft_sets: the table %s %s; nothing read" % (NFT_TABLE, why))
        return filling

    def unread_generation(self, aggregate):
        """Read the idle generation when it holds flows: a run stopped between switching and emptying it (or
        an earlier version of this module left them). Sets self.target; nothing is switched."""
        try:
            filling = nft_sets.filling_generation(self.run)
            if filling is None:
                return
            table = nft_sets.table_handle(self.run)
            idle = nft_sets.other_generation(filling)
            flows, notes = nft_sets.read_generation(self.run, idle, self._since(table).get(idle))
        except nft_sets.NftSetError as exc:
            raise CollectError("nft_sets: %s" % exc) from None
        if flows:
            self.add(aggregate, (flows, notes))
            self.target = {"table": table, "generation": idle}
            self.state = {"table": table, "since": {filling: self._since(table).get(filling)}}

    def read(self, aggregate):
        try:
            filling = self._filling()
            if filling is None:
                return
            table = nft_sets.table_handle(self.run)
            since = self._since(table)
            if self.module.check_mode:
                for generation in nft_sets.FLOW_GENERATIONS:
                    self.add(aggregate, nft_sets.read_generation(self.run, generation, since.get(generation)))
                return
            # Switch only when there is something to read: a run over idle sets changes nothing.
            if not nft_sets.read_generation(self.run, filling)[0]:
                return
            idle = nft_sets.other_generation(filling)
            if nft_sets.read_generation(self.run, idle)[0]:
                raise nft_sets.NftSetError(
                    "the idle generation %s still holds flows that were not spooled; nothing switched" % idle
                )
            started = time.time()
            nft_sets.switch(self.run, idle)
            self.state = {"table": table, "since": {idle: started}}
            self.target = {"table": table, "generation": filling}
            self.add(aggregate, nft_sets.read_generation(self.run, filling, since.get(filling)))
        except nft_sets.NftSetError as exc:
            raise CollectError("nft_sets: %s" % exc) from None

    def add(self, aggregate, read):
        flows, notes = read
        for flow in flows:
            aggregate.add(*flow)
        self.report["lines"] += len(flows)
        self.report["lost"].extend(notes)
        for note in notes:
            self.module.warn("nft_sets: %s" % note)

    def flush(self, target):
        """Empty the generation `target` names once its flows are spooled and recorded as spooled - unless the
        table was made again since (its sets went with it) or that generation is filling again. True when
        emptied."""
        try:
            if nft_sets.table_handle(self.run) != target.get("table"):
                return False
            filling = nft_sets.filling_generation(self.run)
            if target.get("generation") not in nft_sets.FLOW_GENERATIONS or filling in (None, target["generation"]):
                return False
            nft_sets.flush(self.run, target["generation"])
        except nft_sets.NftSetError as exc:
            raise CollectError(
                "nft_sets: the flows are spooled, but emptying their sets failed (the next run empties them "
                "without spooling them again): %s" % exc
            ) from None
        return True


def upload_rows(aggregate):
    """The sums per (src, dst, dst_port, proto): the upload format has no decision, so decisions are merged."""
    merged = FlowAggregate()
    for row in aggregate.rows():
        merged.add(
            row.src, row.dst, row.dst_port, row.proto, "", row.count, row.first, row.last, row.bytes_in, row.bytes_out
        )
    return merged


class Writes:
    """A run's writes, made so that each flow is spooled exactly once whenever the run stops:

    1. stage the spool files (invisible to the upload);
    2. commit: save the sources' new state with a record of the staged names and of the flow set generation
       to empty (the one write that decides whether the flows are spooled);
    3. publish the staged files; 4. empty that generation; 5. save the state without the record.

    A run that stops before 2 leaves staged files that the next run discards, and reads the same flows again;
    one that stops after 2 leaves the record, and the next run finishes 3 to 5 (resume) before reading anything.
    """

    def __init__(self, module, lock, sources_state):
        params = module.params
        self.module = module
        self.lock = lock
        self.state_file = params["state_file"]
        self.saved = sources_state  # the sources' state as the state file has it now
        self.state_existed = os.path.exists(self.state_file)
        self.spool = writers.Spool(
            params["spool_dir"], max_lines=params["spool_file_lines"], max_bytes=params["spool_max_bytes"]
        )
        self.files = []
        self.flows = 0
        self.dropped_files = []
        self.dropped_flows = 0
        self.resumed = {"spool_files": [], "flushed": None, "discarded_files": [], "unread_flows": 0}

    def resume(self, pending):
        """Finish what an interrupted run committed to; discard what it staged without committing."""
        if pending:
            names = [name for name in pending.get("spool_files") or [] if writers.SPOOL_NAME.match(str(name))]
            self._publish(names, self.resumed["spool_files"])
            target = pending.get("flush")
            if isinstance(target, dict) and NftSetsReader(self.module, {}).flush(target):
                self.resumed["flushed"] = target.get("generation")
            self._save(None)
        self.resumed["discarded_files"] = self.spool.discard_staged()

    def commit(self, sources_state, rows, nft_reader=None):
        """Spool rows, record the sources' new state, and empty the flow sets nft_reader read."""
        target = nft_reader.target if nft_reader is not None else None
        staged = self.spool.stage(rows) if rows else []
        if not staged and target is None:
            # Only the sources' state to save (a log read to its end): nothing to record, no file when empty.
            if (sources_state != self.saved or not self.state_existed) and (sources_state or self.state_existed):
                self._lock()
                self.saved = sources_state
                self._save(None)
            return
        self._lock()
        self.saved = sources_state
        self._save({"spool_files": staged, "flush": target})
        self._publish(staged, self.files)
        if target is not None:
            nft_reader.flush(target)
            nft_reader.target = None
        self._save(None)

    def _lock(self):
        if self.lock.descriptor is None:
            self.lock.acquire(create=True)
            if not self.state_existed and os.path.exists(self.state_file):
                self.spool.discard_staged()
                raise CollectError(
                    "another flow_collect wrote %s while this one read the sources; nothing was spooled, run "
                    "again" % self.state_file
                )

    def _save(self, pending):
        save_state(self.state_file, self.saved, pending)
        self.state_existed = True

    def _publish(self, names, into):
        written = self.spool.publish(names)
        into.extend(written.files)
        self.flows += written.flows
        self.dropped_files.extend(written.dropped_files)
        self.dropped_flows += written.dropped_flows


def run(module):
    params = module.params
    lock = StateLock(params["state_file"])
    try:
        if not module.check_mode:
            lock.acquire()
        return collect(module, lock)
    finally:
        lock.release()


def collect(module, lock):
    params = module.params
    paths = source_paths(params)
    warn_missing = params["warn_missing"]
    previous, pending = load_state(params["state_file"])
    writes = Writes(module, lock, previous)
    if not module.check_mode:
        writes.resume(pending)
    sources = resolve_sources(module, params["sources"], paths)
    connections = 0
    nft_reader = None
    if "nft_sets" in sources:
        nft_reader = NftSetsReader(module, previous.get("nft_sets") or {}, warn_missing)
        if not module.check_mode:
            unread = FlowAggregate()
            nft_reader.unread_generation(unread)
            if nft_reader.target is not None:
                rows = upload_rows(unread)
                connections += rows.connections()
                writes.resumed["unread_flows"] = len(rows.rows())
                previous = dict(previous, nft_sets=nft_reader.state)
                writes.commit(previous, rows.rows(), nft_reader)
                nft_reader.previous = previous["nft_sets"]
    new_state = dict(previous)
    aggregate = FlowAggregate()
    reports = {}
    for name in sources:
        if name in reports:
            continue
        before = previous.get(name) or {}
        if name in ("vtapflow", "vtapdrop"):
            reports[name], new_state[name] = read_log(
                module, name, paths[name], before, aggregate, params["count_bytes"], warn_missing
            )
        elif name == "flow_db":
            reports[name], new_state[name] = read_flow_db(module, paths[name], before, aggregate, warn_missing)
        elif name == "flowsum_db":
            reports[name], new_state[name] = read_flowsum_db(module, paths[name], before, aggregate, warn_missing)
        elif name == "nft_sets":
            nft_reader.read(aggregate)
            reports[name] = nft_reader.report
            if nft_reader.state or name in previous:
                new_state[name] = nft_reader.state
        else:
            reports[name] = read_conntrack(module, params["conntrack_command"], aggregate)
    merged = upload_rows(aggregate)
    rows = merged.rows()
    connections += merged.connections()
    result = {
        "changed": False,
        "sources": reports,
        "flows": len(rows),
        "connections": connections,
        "spool_files": [],
        "dropped_flows": 0,
    }
    if module.check_mode:
        result["changed"] = bool(rows)
        result["msg"] = "would spool %d flows (%d connections) to %s" % (
            len(rows),
            result["connections"],
            params["spool_dir"],
        )
        result["pending_files"] = pending_upload_files(params["spool_dir"])
        return result
    writes.commit(new_state, rows, nft_reader)
    resumed = writes.resumed
    result["flows"] += resumed["unread_flows"]
    result["spool_files"] = [name for name in writes.files if name not in writes.dropped_files]
    result["dropped_flows"] = writes.dropped_flows
    result["resumed"] = resumed
    result["changed"] = bool(writes.files or writes.dropped_files or resumed["spool_files"] or resumed["flushed"])
    if writes.dropped_files:
        module.warn(
            "the spool %s was over spool_max_bytes (%d): the %d oldest files with %d flows were removed"
            % (params["spool_dir"], params["spool_max_bytes"], len(writes.dropped_files), writes.dropped_flows)
        )
    result["pending_files"] = pending_upload_files(params["spool_dir"])
    return result


def pending_upload_files(spool_dir):
    """The spool's CSV files (what flow_upload sends), oldest first; none when the spool does not exist yet."""
    return [spool_file.name for spool_file in writers.Spool(spool_dir).files() if spool_file.name.endswith(".csv")]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sources=dict(type="list", elements="str", choices=["auto", *SOURCES], default=["auto"]),
            ven_data_dir=dict(type="path", default="/opt/illumio_ven_data"),
            vtapflow_path=dict(type="path"),
            vtapdrop_path=dict(type="path"),
            flow_db_path=dict(type="path"),
            flowsum_db_path=dict(type="path"),
            spool_dir=dict(type="path", default="/var/lib/microseg-illumio/flows/spool"),
            state_file=dict(type="path", default="/var/lib/microseg-illumio/flows/state.json"),
            spool_max_bytes=dict(type="int", default=50 * 1024 * 1024),
            spool_file_lines=dict(type="int", default=10000),
            count_bytes=dict(type="bool", default=False),
            conntrack_command=dict(type="str", default="conntrack -L -o extended"),
            warn_missing=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["spool_max_bytes"] < 1 or params["spool_file_lines"] < 1:
        module.fail_json(msg="spool_max_bytes and spool_file_lines must be positive")
    if not params["sources"]:
        module.fail_json(msg="sources needs at least one source")
    try:
        result = run(module)
    except CollectError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="file or process error: %s" % exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
