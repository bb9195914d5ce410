"""Traffic flows of the lab PCE: bulk CSV upload, async traffic queries and their results.

The first half is plain logic (CSV lines in, query matching, result shapes out), tested as functions;
the endpoints at the end only move data between HTTP, the store and that logic.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sqlite3
import zlib
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, field
from datetime import UTC, date, datetime, time
from uuid import uuid4

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pcelab.api.ven_core import LabError, ensure_schema, json_body, lab, not_found, org_of, refusals_as_responses
from pcelab.policy_eval import EMPTY, ActivePolicy, PolicyEvaluator

logger = logging.getLogger(__name__)

PROTOCOL_NAMES = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "ipv6-icmp": 58}
POLICY_DECISIONS = ("allowed", "potentially_blocked", "blocked", "unknown")
MAX_RESULTS_LIMIT = 200_000
DEFAULT_MAX_RESULTS = 100_000
# Column counts a CSV version 1 line may have: the 4-tuple, + num_connections, + first/last detected.
CSV_COLUMN_COUNTS = (4, 5, 7)
DAY_SECONDS = 86400
# Flow times the lab takes: what a datetime can show, years 1 to 9999 (UTC).
FIRST_EPOCH = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LAST_EPOCH = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


class QueryError(LabError):
    """A traffic query that cannot run (406); the message names the field."""

    def __init__(self, message: str):
        super().__init__("input_validation_error", message)


@dataclass(frozen=True)
class Flow:
    src_ip: str
    dst_ip: str
    dst_port: int
    proto: int
    num_connections: int
    first_detected: float
    last_detected: float


@dataclass(frozen=True)
class WorkloadView:
    """What traffic results show about a workload, and what matching needs."""

    href: str
    hostname: str | None
    name: str | None
    os_type: str | None
    enforcement_mode: str | None
    labels: tuple[dict, ...]  # [{href, key, value}]
    managed: bool

    @property
    def label_hrefs(self) -> frozenset[str]:
        return frozenset(label["href"] for label in self.labels)

    def as_result(self) -> dict:
        return {
            "hostname": self.hostname,
            "href": self.href,
            "labels": [dict(label) for label in self.labels],
            "name": self.name,
            "os_type": self.os_type,
        }


@dataclass
class Directory:
    """The org's objects a query refers to. Built once per query from the store."""

    workloads_by_ip: dict[str, WorkloadView] = field(default_factory=dict)
    # href -> list of (network, excluded) for IP lists
    ip_lists: dict[str, list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, bool]]] = field(default_factory=dict)
    # label group href -> every label href in it, sub-groups included
    label_groups: dict[str, frozenset[str]] = field(default_factory=dict)
    # the org's active policy, which decides `policy_decision` (none provisioned when left out)
    policy: ActivePolicy = EMPTY
    _evaluator: PolicyEvaluator | None = field(default=None, repr=False, compare=False)

    def workload(self, ip: str) -> WorkloadView | None:
        return self.workloads_by_ip.get(ip)

    @property
    def evaluator(self) -> PolicyEvaluator:
        if self._evaluator is None:
            self._evaluator = PolicyEvaluator(self.policy, self.workload)
        return self._evaluator


# --- CSV upload ------------------------------------------------------------------------------------
def parse_csv_line(line: str, now: float) -> Flow:
    """One line of `agents/bulk_traffic_flows` CSV version 1, or ValueError saying what is wrong with it."""
    fields = [part.strip() for part in line.split(",")]
    if len(fields) not in CSV_COLUMN_COUNTS:
        raise ValueError(f"expected 4, 5 or 7 comma-separated fields, found {len(fields)}")
    src, dst = _parse_ip(fields[0], "src_ip"), _parse_ip(fields[1], "dst_ip")
    if src.version != dst.version:
        raise ValueError("src_ip and dst_ip are of different IP versions")
    port = _parse_int(fields[2], "dst_port", 0, 65535)
    proto = _parse_protocol(fields[3])
    connections = _parse_int(fields[4], "num_connections", 1, 2**31 - 1) if len(fields) > 4 else 1
    first = last = now
    if len(fields) == 7:
        first, last = _parse_timestamp(fields[5], "first_detected"), _parse_timestamp(fields[6], "last_detected")
        if first > last:
            raise ValueError("first_detected is after last_detected")
    return Flow(str(src), str(dst), port, proto, connections, first, last)


def _parse_ip(text: str, name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an IP address") from None


def _parse_int(text: str, name: str, low: int, high: int) -> int:
    if not (0 < len(text) <= len(str(high)) and text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ValueError(f"{name} {text[:40]!r} is not a whole number from {low} to {high}")
    return int(text)


def _parse_protocol(text: str) -> int:
    if text.lower() in PROTOCOL_NAMES:
        return PROTOCOL_NAMES[text.lower()]
    return _parse_int(text, "proto", 0, 255)


def _parse_timestamp(text: str, name: str) -> float:
    """Epoch seconds or an ISO 8601 time, from year 1 to 9999 (what a flow time can be shown as)."""
    try:
        if text.isascii() and text.isdigit():
            epoch = float(text)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            epoch = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):
        raise ValueError(f"{name} {text[:40]!r} is neither epoch seconds nor an ISO 8601 time") from None
    if not FIRST_EPOCH <= epoch <= LAST_EPOCH:
        raise ValueError(f"{name} {text[:40]!r} is not a time from year 1 to 9999")
    return epoch


def parse_csv(body: str, now: float) -> tuple[list[Flow], list[dict]]:
    """Good flows and, for each bad line, {line, flow, message}. Blank lines are skipped."""
    flows, failures = [], []
    for number, raw in enumerate(body.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            flows.append(parse_csv_line(line, now))
        except ValueError as error:
            failures.append({"line": number, "flow": line, "message": str(error)})
    return flows, failures


# --- queries -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceFilter:
    port: int | None
    to_port: int | None
    proto: int | None
    process_only: bool  # an entry naming only a process or Windows service: flows here carry none

    def matches(self, flow: Flow) -> bool:
        if self.process_only:
            return False
        if self.proto is not None and self.proto != flow.proto:
            return False
        if self.port is None:
            return True
        return self.port <= flow.dst_port <= (self.to_port if self.to_port is not None else self.port)


@dataclass(frozen=True)
class Query:
    start: float
    end: float
    sources_include: tuple[tuple[dict, ...], ...]
    sources_exclude: tuple[dict, ...]
    destinations_include: tuple[tuple[dict, ...], ...]
    destinations_exclude: tuple[dict, ...]
    services_include: tuple[ServiceFilter, ...]
    services_exclude: tuple[ServiceFilter, ...]
    policy_decisions: frozenset[str]
    max_results: int
    query_op: str
    exclude_workloads_from_ip_list_query: bool


def parse_query(body: object) -> Query:
    """Check a traffic_flows/async_queries body (shape of traffic_query.json) and compile it."""
    if not isinstance(body, dict):
        raise QueryError("the query must be a JSON object")
    start = _parse_query_time(body.get("start_date"), "start_date", end_of_day=False)
    end = _parse_query_time(body.get("end_date"), "end_date", end_of_day=True)
    if start > end:
        raise QueryError("start_date is after end_date")
    sources_include, sources_exclude = _parse_actor_side(body.get("sources"), "sources")
    destinations_include, destinations_exclude = _parse_actor_side(body.get("destinations"), "destinations")
    services_include, services_exclude = _parse_services(body.get("services"))
    return Query(
        start=start,
        end=end,
        sources_include=sources_include,
        sources_exclude=sources_exclude,
        destinations_include=destinations_include,
        destinations_exclude=destinations_exclude,
        services_include=services_include,
        services_exclude=services_exclude,
        policy_decisions=_parse_decisions(body.get("policy_decisions", [])),
        max_results=_parse_max_results(body.get("max_results")),
        query_op=_parse_query_op(body.get("sources_destinations_query_op", "and")),
        exclude_workloads_from_ip_list_query=bool(body.get("exclude_workloads_from_ip_list_query", True)),
    )


def _parse_query_time(value: object, name: str, end_of_day: bool) -> float:
    if not isinstance(value, str) or not value:
        raise QueryError(f"{name} is required: a date (2024-01-31) or an ISO 8601 time")
    try:
        if len(value) == 10:
            midnight = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC).timestamp()
            # A bare end date includes that whole day (9999-12-31 too: no date after it is needed).
            return midnight + (DAY_SECONDS - 0.001 if end_of_day else 0)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError):  # OverflowError: an offset moving the time out of years 1-9999
        raise QueryError(f"{name} {value[:40]!r} is not a date or ISO 8601 time from year 1 to 9999") from None


ACTOR_KINDS = ("label", "label_group", "workload", "ip_list", "ip_address", "actors")


def _check_actor(actor: object, where: str) -> dict:
    if not isinstance(actor, dict) or len(actor) != 1 or next(iter(actor)) not in ACTOR_KINDS:
        raise QueryError(f"{where}: each actor is one of {', '.join(ACTOR_KINDS)}, e.g. {{'label': {{'href': ...}}}}")
    kind, value = next(iter(actor.items()))
    if kind == "ip_address":
        try:
            ipaddress.ip_network(value, strict=False)
        except (TypeError, ValueError):
            raise QueryError(f"{where}: ip_address {value!r} is not an address or CIDR block") from None
    elif kind == "actors":
        if value != "ams":
            raise QueryError(f"{where}: the only 'actors' value is 'ams' (all managed workloads)")
    elif not isinstance(value, dict) or not isinstance(value.get("href"), str):
        raise QueryError(f"{where}: {kind} needs an href")
    return actor


def _parse_actor_side(side: object, name: str) -> tuple[tuple[tuple[dict, ...], ...], tuple[dict, ...]]:
    if side is None:
        return (), ()
    if not isinstance(side, dict):
        raise QueryError(f"{name} must be an object with 'include' and 'exclude'")
    include = side.get("include", [])
    exclude = side.get("exclude", [])
    if not isinstance(include, list) or not all(isinstance(group, list) for group in include):
        raise QueryError(f"{name}.include must be a list of lists of actors")
    if not isinstance(exclude, list):
        raise QueryError(f"{name}.exclude must be a list of actors")
    groups = tuple(tuple(_check_actor(a, f"{name}.include") for a in group) for group in include if group)
    return groups, tuple(_check_actor(a, f"{name}.exclude") for a in exclude)


def _parse_services(services: object) -> tuple[tuple[ServiceFilter, ...], tuple[ServiceFilter, ...]]:
    if services is None:
        return (), ()
    if not isinstance(services, dict):
        raise QueryError("services must be an object with 'include' and 'exclude'")
    parsed = []
    for part in ("include", "exclude"):
        entries = services.get(part, [])
        if not isinstance(entries, list):
            raise QueryError(f"services.{part} must be a list")
        parsed.append(tuple(_parse_service(entry, f"services.{part}") for entry in entries))
    return parsed[0], parsed[1]


def _parse_service(entry: object, where: str) -> ServiceFilter:
    if not isinstance(entry, dict):
        raise QueryError(f"{where}: each service is an object with port, to_port, proto")
    values = {}
    for key, high in (("port", 65535), ("to_port", 65535), ("proto", 255)):
        value = entry.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high):
            raise QueryError(f"{where}: {key} must be a whole number from 0 to {high}")
        values[key] = value
    named = any(entry.get(key) for key in ("process_name", "windows_service_name"))
    return ServiceFilter(
        port=values["port"],
        to_port=values["to_port"],
        proto=values["proto"],
        process_only=named and values["port"] is None and values["proto"] is None,
    )


def _parse_decisions(decisions: object) -> frozenset[str]:
    if not isinstance(decisions, list) or any(d not in POLICY_DECISIONS for d in decisions):
        raise QueryError(f"policy_decisions must be a list of {', '.join(POLICY_DECISIONS)}")
    return frozenset(decisions)


def _parse_max_results(value: object) -> int:
    if value in (None, 0):
        return DEFAULT_MAX_RESULTS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_RESULTS_LIMIT:
        raise QueryError(f"max_results must be a whole number from 1 to {MAX_RESULTS_LIMIT}")
    return value


def _parse_query_op(value: object) -> str:
    if value not in ("and", "or"):
        raise QueryError("sources_destinations_query_op must be 'and' or 'or'")
    return value


# --- matching ----------------------------------------------------------------------------------------
def actor_matches(actor: dict, ip: str, directory: Directory, exclude_workloads_from_ip_lists: bool) -> bool:
    kind, value = next(iter(actor.items()))
    workload = directory.workload(ip)
    if kind == "ip_address":
        return ipaddress.ip_address(ip) in ipaddress.ip_network(value, strict=False)
    if kind == "actors":
        return workload is not None and workload.managed
    if kind == "ip_list":
        if exclude_workloads_from_ip_lists and workload is not None:
            return False
        return ip_in_ranges(ip, directory.ip_lists.get(value["href"], []))
    if workload is None:
        return False
    if kind == "workload":
        return workload.href == value["href"]
    if kind == "label":
        return value["href"] in workload.label_hrefs
    return bool(directory.label_groups.get(value["href"], frozenset()) & workload.label_hrefs)


def ip_in_ranges(ip: str, ranges: Iterable[tuple]) -> bool:
    address = ipaddress.ip_address(ip)
    inside = False
    for network, excluded in ranges:
        if address.version == network.version and address in network:
            if excluded:
                return False
            inside = True
    return inside


def _side_included(groups, ip, directory, exclude_wl) -> bool:
    # Include is a list of AND-groups joined by OR.
    return any(all(actor_matches(a, ip, directory, exclude_wl) for a in group) for group in groups)


def _side_excluded(actors, ip, directory, exclude_wl) -> bool:
    return any(actor_matches(a, ip, directory, exclude_wl) for a in actors)


def flow_matches(query: Query, flow: Flow, decision: str, directory: Directory) -> bool:
    if flow.last_detected < query.start or flow.first_detected > query.end:
        return False
    if query.policy_decisions and decision not in query.policy_decisions:
        return False
    if query.services_include and not any(s.matches(flow) for s in query.services_include):
        return False
    if any(s.matches(flow) for s in query.services_exclude):
        return False
    exclude_wl = query.exclude_workloads_from_ip_list_query
    if _side_excluded(query.sources_exclude, flow.src_ip, directory, exclude_wl):
        return False
    if _side_excluded(query.destinations_exclude, flow.dst_ip, directory, exclude_wl):
        return False
    return _includes_match(query, flow, directory)


def _includes_match(query: Query, flow: Flow, directory: Directory) -> bool:
    exclude_wl = query.exclude_workloads_from_ip_list_query
    checks: list[Callable[[], bool]] = []
    if query.sources_include:
        checks.append(lambda: _side_included(query.sources_include, flow.src_ip, directory, exclude_wl))
    if query.destinations_include:
        checks.append(lambda: _side_included(query.destinations_include, flow.dst_ip, directory, exclude_wl))
    if not checks:
        return True
    # With "or" a flow qualifies when either side that names actors matches; with "and" every such side must.
    return any(check() for check in checks) if query.query_op == "or" else all(check() for check in checks)


def policy_decision(flow: Flow, directory: Directory) -> str:
    """What the org's active policy says of the flow (pcelab.policy_eval), judged by the destination workload
    when there is one, else by the source workload; "unknown" when neither side is a workload."""
    return directory.evaluator.decision(flow.src_ip, flow.dst_ip, flow.dst_port, flow.proto)


def aggregate(flows: Iterable[Flow]) -> list[Flow]:
    """One flow per (src, dst, port, proto): connections summed, detection window widened."""
    merged: dict[tuple, Flow] = {}
    for flow in flows:
        key = (flow.src_ip, flow.dst_ip, flow.dst_port, flow.proto)
        seen = merged.get(key)
        if seen is None:
            merged[key] = flow
            continue
        merged[key] = Flow(
            *key,
            num_connections=seen.num_connections + flow.num_connections,
            first_detected=min(seen.first_detected, flow.first_detected),
            last_detected=max(seen.last_detected, flow.last_detected),
        )
    return list(merged.values())


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def flow_result(flow: Flow, decision: str, directory: Directory) -> dict:
    """A flow shaped like traffic_query_response.json."""
    src_workload, dst_workload = directory.workload(flow.src_ip), directory.workload(flow.dst_ip)
    return {
        "dst": _endpoint(flow.dst_ip, dst_workload),
        "dst_bi": 0,
        "dst_bo": 0,
        "flow_direction": "inbound" if dst_workload is not None and dst_workload.managed else "outbound",
        "num_connections": flow.num_connections,
        "policy_decision": decision,
        "service": {"port": flow.dst_port, "proto": flow.proto},
        "src": _endpoint(flow.src_ip, src_workload),
        "state": "closed",
        "timestamp_range": {
            "first_detected": iso_time(flow.first_detected),
            "last_detected": iso_time(flow.last_detected),
        },
    }


def _endpoint(ip: str, workload: WorkloadView | None) -> dict:
    return {"ip": ip} if workload is None else {"ip": ip, "workload": workload.as_result()}


def run_query(query: Query, flows: Iterable[Flow], directory: Directory) -> list[dict]:
    """The query's result rows, newest first, at most max_results."""
    # Aggregate only what falls in the window, so other uploads cannot stretch a flow's detection times.
    in_window = (f for f in flows if f.last_detected >= query.start and f.first_detected <= query.end)
    rows = []
    for flow in sorted(aggregate(in_window), key=lambda f: f.last_detected, reverse=True):
        decision = policy_decision(flow, directory)
        if flow_matches(query, flow, decision, directory):
            rows.append(flow_result(flow, decision, directory))
            if len(rows) >= query.max_results:
                break
    return rows


# --- storage ------------------------------------------------------------------------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS ven_traffic_flows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL,
    src_ip TEXT NOT NULL,
    dst_ip TEXT NOT NULL,
    dst_port INTEGER NOT NULL,
    proto INTEGER NOT NULL,
    num_connections INTEGER NOT NULL,
    first_detected REAL NOT NULL,
    last_detected REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ven_traffic_flows_window ON ven_traffic_flows (org_id, last_detected);
CREATE TABLE IF NOT EXISTS ven_traffic_queries (
    uuid TEXT PRIMARY KEY,
    org_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    query TEXT NOT NULL,
    result TEXT,
    flows_count INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
"""


class TrafficStore:
    def __init__(self, db: sqlite3.Connection):
        self.db = db  # tables: created by setup() at start-up

    def add_flows(self, org_id: int, flows: list[Flow]) -> None:
        self.db.executemany(
            "INSERT INTO ven_traffic_flows (org_id, src_ip, dst_ip, dst_port, proto, num_connections,"
            " first_detected, last_detected) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(org_id, *astuple(flow)) for flow in flows],
        )

    def flows_in_window(self, org_id: int, start: float, end: float) -> list[Flow]:
        rows = self.db.execute(
            "SELECT src_ip, dst_ip, dst_port, proto, num_connections, first_detected, last_detected"
            " FROM ven_traffic_flows WHERE org_id = ? AND last_detected >= ? AND first_detected <= ?",
            (org_id, start, end),
        ).fetchall()
        return [Flow(*row) for row in rows]

    def add_query(self, uuid: str, org_id: int, body: dict, user_href: str, stamp: str) -> None:
        self.db.execute(
            "INSERT INTO ven_traffic_queries (uuid, org_id, status, query, created_at, updated_at, created_by)"
            " VALUES (?, ?, 'queued', ?, ?, ?, ?)",
            (uuid, org_id, json.dumps(body), stamp, stamp, user_href),
        )

    def set_query_status(self, uuid: str, status: str, stamp: str, rows: list[dict] | None = None) -> None:
        result = None if rows is None else json.dumps(rows)
        self.db.execute(
            "UPDATE ven_traffic_queries SET status = ?, updated_at = ?, result = ?, flows_count = ? WHERE uuid = ?",
            (status, stamp, result, None if rows is None else len(rows), uuid),
        )

    def query(self, org_id: int, uuid: str) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT * FROM ven_traffic_queries WHERE org_id = ? AND uuid = ?", (org_id, uuid)
        ).fetchone()

    def queries(self, org_id: int) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM ven_traffic_queries WHERE org_id = ? ORDER BY created_at", (org_id,)
        ).fetchall()


def render_async_query(row: sqlite3.Row) -> dict:
    """An async traffic query as the PCE shows it."""
    href = f"/orgs/{row['org_id']}/traffic_flows/async_queries/{row['uuid']}"
    shown = {
        "href": href,
        "query_parameters": json.loads(row["query"]),
        "status": row["status"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "created_by": {"href": row["created_by"]},
    }
    if row["status"] == "completed":
        shown.update(result=f"{href}/download", flows_count=row["flows_count"], matches_count=row["flows_count"])
    return shown


# --- endpoints ------------------------------------------------------------------------------------------------
CSV_VERSION_HEADER = "x-bulk-traffic-load-csv-version"
CSV_CONTENT_TYPES = ("", "text/csv", "text/plain", "application/octet-stream")
MAX_UPLOAD_BYTES = 32 * 1024 * 1024


def _inflate(raw: bytes, wbits: int) -> bytes:
    """Decompressed, but never more than one byte past MAX_UPLOAD_BYTES (a small bomb must not fill memory)."""
    inflater = zlib.decompressobj(wbits=wbits)
    data = inflater.decompress(raw, MAX_UPLOAD_BYTES + 1)
    if len(data) <= MAX_UPLOAD_BYTES:
        data += inflater.flush()
        if not inflater.eof:
            raise zlib.error("incomplete or truncated stream")
    return data


def _upload_text(raw: bytes, encoding: str) -> str:
    """The CSV text of an upload, decompressed when the client says so (real clients send deflate)."""
    try:
        if encoding == "gzip":
            raw = _inflate(raw, wbits=31)
        elif encoding == "deflate":
            # RFC 9110 deflate is zlib-wrapped; some clients send the raw stream, so accept both.
            raw = _inflate(raw, wbits=15 if raw[:1] == b"\x78" else -15)
        elif encoding not in ("", "identity"):
            raise LabError("input_validation_error", f"Content-Encoding {encoding} is not supported (gzip, deflate)")
    except zlib.error:
        raise LabError("input_validation_error", f"the body is not valid {encoding} data") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise LabError("input_validation_error", f"the upload is larger than {MAX_UPLOAD_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise LabError("input_validation_error", "the CSV must be UTF-8 text") from None


@refusals_as_responses
async def upload_flows(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    version = request.headers.get(CSV_VERSION_HEADER)
    if version is not None and version.strip() != "1":
        raise LabError("input_validation_error", f"{CSV_VERSION_HEADER} {version!r} is not supported: use 1")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in CSV_CONTENT_TYPES:
        raise LabError("input_validation_error", f"Content-Type must be text/csv, not {content_type}")
    encoding = request.headers.get("content-encoding", "").strip().lower()
    flows, failures = parse_csv(_upload_text(await request.body(), encoding), core.now())
    with core.transaction() as db:
        TrafficStore(db).add_flows(org_id, flows)
    return JSONResponse(
        {
            "num_flows_received": len(flows) + len(failures),
            "num_flows_failed": len(failures),
            "failed_flows": [failure["flow"] for failure in failures],
            "errors": failures,
        }
    )


def _ip_list_networks(ranges: list[dict]) -> list[tuple]:
    networks = []
    for entry in ranges:
        try:
            first = entry["from_ip"]
            if entry.get("to_ip"):
                low, high = ipaddress.ip_address(first), ipaddress.ip_address(entry["to_ip"])
                blocks = ipaddress.summarize_address_range(low, high)
            else:
                blocks = [ipaddress.ip_network(first, strict=False)]
        except (KeyError, TypeError, ValueError):
            continue  # an FQDN-only or malformed entry matches no address
        networks.extend((block, bool(entry.get("exclusion"))) for block in blocks)
    return networks


def _workload_view(core, org_id: int, workload: dict, labels_cache: dict) -> WorkloadView:
    labels = []
    for ref in workload.get("labels", []):
        if ref["href"] not in labels_cache:
            labels_cache[ref["href"]] = core.label(org_id, ref["href"])
        label = labels_cache[ref["href"]]
        if label is not None:
            labels.append({"href": label["href"], "key": label["key"], "value": label["value"]})
    os_id = workload.get("os_id") or ""
    return WorkloadView(
        href=workload["href"],
        hostname=workload.get("hostname"),
        name=workload.get("name"),
        os_type="windows" if os_id.startswith("win") else "linux",
        enforcement_mode=workload.get("enforcement_mode"),
        labels=tuple(labels),
        # Unmanaged workloads carry an empty `agent` object (href None): only a VEN makes one managed.
        managed=bool(workload.get("ven") or (workload.get("agent") or {}).get("href")),
    )


def _referenced(query: Query, kind: str) -> set[str]:
    actors = [
        *(a for group in query.sources_include for a in group),
        *(a for group in query.destinations_include for a in group),
        *query.sources_exclude,
        *query.destinations_exclude,
    ]
    return {actor[kind]["href"] for actor in actors if kind in actor}


def build_directory(core, org_id: int, query: Query) -> Directory:
    """Workloads by interface address, the IP lists and label groups the query names, the active policy."""
    directory, labels_cache = Directory(policy=ActivePolicy.load(core.store, org_id)), {}
    for workload in core.workloads(org_id):
        view = _workload_view(core, org_id, workload, labels_cache)
        for interface in workload.get("interfaces", []):
            if interface.get("address"):
                directory.workloads_by_ip.setdefault(interface["address"], view)
    for href in _referenced(query, "ip_list"):
        directory.ip_lists[href] = _ip_list_networks(core.ip_list_ranges(org_id, href))
    for href in _referenced(query, "label_group"):
        directory.label_groups[href] = core.label_group_members(org_id, href)
    return directory


def run_async_query(core, org_id: int, uuid: str, body: dict) -> None:
    """The background half of an async query: queued -> working -> completed (or failed)."""
    with core.transaction() as db:
        TrafficStore(db).set_query_status(uuid, "working", iso_time(core.now()))
    try:
        query = parse_query(body)
        with core.transaction() as db:
            flows = TrafficStore(db).flows_in_window(org_id, query.start, query.end)
        rows = run_query(query, flows, build_directory(core, org_id, query))
        status = "completed"
    except Exception:
        logger.exception("async traffic query %s failed", uuid)
        rows, status = None, "failed"
    with core.transaction() as db:
        TrafficStore(db).set_query_status(uuid, status, iso_time(core.now()), rows)


@refusals_as_responses
async def create_async_query(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    body = await json_body(request)
    parse_query(body)  # refuse a bad query now, with a 406, rather than as a failed job later
    uuid = str(uuid4())
    with core.transaction() as db:
        store = TrafficStore(db)
        store.add_query(uuid, org_id, body, core.user_href(request), iso_time(core.now()))
        shown = render_async_query(store.query(org_id, uuid))
    task = BackgroundTask(run_in_threadpool, run_async_query, core, org_id, uuid, body)
    return JSONResponse(shown, status_code=202, background=task)


@refusals_as_responses
async def list_async_queries(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        rows = TrafficStore(db).queries(org_of(request))
    return JSONResponse([render_async_query(row) for row in rows])


@refusals_as_responses
async def get_async_query(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        row = TrafficStore(db).query(org_of(request), request.path_params["uuid"])
    return JSONResponse(render_async_query(row)) if row else not_found("traffic query")


@refusals_as_responses
async def download_async_query(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        row = TrafficStore(db).query(org_of(request), request.path_params["uuid"])
    if row is None:
        return not_found("traffic query")
    if row["status"] != "completed":
        raise LabError("query_not_completed", f"the query is {row['status']}; download it once completed", 406)
    return Response(row["result"], media_type="application/json")


def setup(core) -> None:
    """Create the tables at start-up (the core calls this once per app)."""
    with core.transaction() as db:
        ensure_schema(db, SCHEMA)


ORG = "/api/v2/orgs/{org_id:id}"
ROUTES = [
    Route(f"{ORG}/agents/bulk_traffic_flows", upload_flows, methods=["POST"]),
    Route(f"{ORG}/traffic_flows/async_queries", create_async_query, methods=["POST"]),
    Route(f"{ORG}/traffic_flows/async_queries", list_async_queries, methods=["GET"]),
    Route(f"{ORG}/traffic_flows/async_queries/{{uuid}}", get_async_query, methods=["GET"]),
    Route(f"{ORG}/traffic_flows/async_queries/{{uuid}}/download", download_async_query, methods=["GET"]),
]
