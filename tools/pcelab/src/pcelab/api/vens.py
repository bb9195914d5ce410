"""VENs of the lab PCE: list, read, rename, upgrade, unpair, compatibility report.

A VEN row holds what belongs to the agent (version, status, heartbeat, token hash, pending actions,
compatibility report); labels, interfaces and enforcement settings belong to its workload, which has
the same UUID and lives in the core's workload store.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import weakref

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pcelab.api.pairing import iso_timestamp
from pcelab.api.settings import Timers, timers
from pcelab.api.software import SoftwareLibrary, release_sort_key
from pcelab.api.ven_core import LabError, ensure_schema, json_body, lab, not_found, org_of, refusals_as_responses

SCHEMA = """
CREATE TABLE IF NOT EXISTS ven_agents (
    agent_id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    org_id INTEGER NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    profile_id INTEGER,
    name TEXT,
    description TEXT,
    hostname TEXT NOT NULL,
    os_id TEXT,
    os_detail TEXT,
    os_platform TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    log_traffic INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    last_heartbeat_at TEXT,
    last_goodbye_at TEXT,
    uptime_seconds INTEGER,
    pending_upgrade TEXT,
    unpair_requested TEXT,
    compatibility_report TEXT,
    policy_synced TEXT,
    policy_synced_at TEXT
);
"""
# Columns added after the first release: data folders made before get them at start-up (ALTER TABLE).
ADDED_COLUMNS = {"policy_synced": "TEXT", "policy_synced_at": "TEXT"}
FIREWALL_RESTORE = ("saved", "default", "disable")
VEN_STATUSES = ("active", "suspended", "stopped", "uninstalled")


class VenStore:
    def __init__(self, db: sqlite3.Connection):
        self.db = db  # tables: created by setup() at start-up

    def add(self, ven: dict) -> int:
        columns = ", ".join(ven)
        marks = ", ".join("?" for _ in ven)
        return self.db.execute(f"INSERT INTO ven_agents ({columns}) VALUES ({marks})", list(ven.values())).lastrowid  # noqa: S608 - column names are ours

    def by_token(self, token_hash: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM ven_agents WHERE token_hash = ?", (token_hash,)).fetchone()

    def by_agent_id(self, org_id: int, agent_id: int) -> sqlite3.Row | None:
        """A VEN the REST API shows, by its agent id (/orgs/1/agents/<id>)."""
        return self.db.execute(
            "SELECT * FROM ven_agents WHERE org_id = ? AND agent_id = ? AND unpair_requested IS NULL",
            (org_id, agent_id),
        ).fetchone()

    def visible(self, org_id: int, uuid: str) -> sqlite3.Row | None:
        """A VEN the REST API shows: not being unpaired."""
        return self.db.execute(
            "SELECT * FROM ven_agents WHERE org_id = ? AND uuid = ? AND unpair_requested IS NULL", (org_id, uuid)
        ).fetchone()

    def all_visible(self, org_id: int) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM ven_agents WHERE org_id = ? AND unpair_requested IS NULL ORDER BY agent_id", (org_id,)
        ).fetchall()

    def update(self, agent_id: int, **changes) -> None:
        assignments = ", ".join(f"{column} = ?" for column in changes)
        self.db.execute(f"UPDATE ven_agents SET {assignments} WHERE agent_id = ?", [*changes.values(), agent_id])  # noqa: S608 - column names are ours

    def remove(self, agent_id: int) -> None:
        self.db.execute("DELETE FROM ven_agents WHERE agent_id = ?", (agent_id,))


def ven_href(org_id: int, uuid: str) -> str:
    return f"/orgs/{org_id}/vens/{uuid}"


def workload_href(org_id: int, uuid: str) -> str:
    return f"/orgs/{org_id}/workloads/{uuid}"


def agent_href(org_id: int, agent_id: int) -> str:
    return f"/orgs/{org_id}/agents/{agent_id}"


INTERFACE_DEFAULTS = {
    "cidr_block": None,
    "link_state": None,
    "network_detection_mode": "single_private_brn",
    "friendly_name": None,
    "network": None,
    "loopback": False,
    "default_gateway_address": None,
}


def ven_interface(wl_href: str, interface: dict) -> dict:
    """An interface as vens.json shows it: the workload's, with an href and every field present."""
    shown = {"href": f"{wl_href}/interfaces/{interface['name']}", "name": interface["name"]}
    for key, default in INTERFACE_DEFAULTS.items():
        shown[key] = interface.get(key, default)
    shown["address"] = interface.get("address")
    return shown


def render_ven(row: sqlite3.Row, workload: dict, status: str | None = None) -> dict:
    """A VEN shaped like vens.json; labels and interfaces come from its workload. `status` is the one in force
    now (see `connection`), else the stored one. vens.json, the SDK's VEN and the terraform VEN schema have no
    `online`: it shows on the workload only."""
    href = ven_href(row["org_id"], row["uuid"])
    wl_href = workload_href(row["org_id"], row["uuid"])
    return {
        "href": href,
        "name": row["name"],
        "description": row["description"],
        "hostname": row["hostname"],
        "uid": None,
        "os_id": row["os_id"],
        "os_detail": row["os_detail"],
        "os_platform": row["os_platform"],
        "version": row["version"],
        "status": status or row["status"],
        "activation_type": "pairing_key",
        "active_pce_fqdn": None,
        "target_pce_fqdn": None,
        "labels": [{"href": label["href"]} for label in workload.get("labels", [])],
        "interfaces": [ven_interface(wl_href, interface) for interface in workload.get("interfaces", [])],
        "workloads": [{"href": wl_href}],
        "container_cluster": None,
        "secure_connect": None,
        "unpair_allowed": True,
        "last_heartbeat_at": row["last_heartbeat_at"],
        "last_goodbye_at": row["last_goodbye_at"],
        "created_at": row["created_at"],
        "created_by": {"href": href},
        "updated_at": row["updated_at"],
        "updated_by": {"href": row["updated_by"]},
        "conditions": [],
        "caps": ["write", "generate_support_report", "upgrade", "unpair"],
    }


def agent_section(row: sqlite3.Row, workload: dict, log_traffic: bool) -> dict:
    """The `agent` object a managed workload carries (workloads.json)."""
    return {
        "config": {
            "log_traffic": log_traffic,
            "visibility_level": workload.get("visibility_level"),
            "mode": workload.get("enforcement_mode"),
            "security_policy_update_mode": "adaptive",
        },
        "secure_connect": {"matching_issuer_name": ""},
        "href": agent_href(row["org_id"], row["agent_id"]),
        "status": {
            "uid": None,
            "instance_id": None,
            "managed_since": row["created_at"],
            "fw_config_current": False,
            "firewall_rule_count": 0,
            "security_policy_refresh_at": None,
            "security_policy_applied_at": None,
            "security_policy_received_at": None,
            "status": row["status"],
            "agent_version": row["version"],
            "agent_health_errors": {"errors": [], "warnings": []},
            "agent_health": [],
            "last_heartbeat_on": row["last_heartbeat_at"],
            "uptime_seconds": row["uptime_seconds"],
            "security_policy_sync_state": "syncing",
        },
        "active_pce_fqdn": None,
        "target_pce_fqdn": None,
        "type": "Host",
        "unpair_allowed": True,
    }


# --- connection and policy sync, computed when read ---------------------------------------------------------
# Nothing is rewritten as time passes: `online`, the VEN's `status` and the policy sync state are worked out from
# the stored heartbeat, goodbye and policy pick-up times whenever a VEN or a managed workload is read.
def connection(row: sqlite3.Row, labels: frozenset[str], timers_now: Timers, now: float) -> tuple[bool, str]:
    """(online, VEN status) of an agent at `now`.

    - Heartbeats: a VEN whose last heartbeat is older than `workload_disconnected_timeout_seconds` (for its
      labels) is offline, its status unchanged ("active"): the PCE "stops receiving heartbeats ... After one hour
      [the default timer], the PCE marks the workload as offline" (VEN Operations guide, "Heartbeat mechanism").
      The real sample (pce_samples/workloads.json) is such a workload: `online: false`, agent status "active".
    - Goodbye: after a goodbye the workload stays in policy until `workload_goodbye_timeout_seconds` has passed,
      then it is offline and "the VEN's status transitions to Stopped" (Administration Guide 25.2, "VEN and
      Workload States"). A heartbeat after the goodbye brings it back.
    - Suspended VENs don't heartbeat ("heartbeats ... are not expected", VEN Operations guide, "VEN suspension")
      and stay as they are.
    """
    status, heartbeat, goodbye = row["status"], row["last_heartbeat_at"], row["last_goodbye_at"]
    if status == "suspended":
        return True, status
    if goodbye and (not heartbeat or goodbye >= heartbeat):
        wait = timers_now.seconds("workload_goodbye_timeout_seconds", labels)
        if wait is None or goodbye > iso_timestamp(now - wait):
            return True, status
        return False, "stopped"
    wait = timers_now.seconds("workload_disconnected_timeout_seconds", labels)
    # Timestamps share one fixed format (UTC, milliseconds, Z), so they compare as strings.
    return wait is None or (heartbeat or "") >= iso_timestamp(now - wait), status


POLICY_HREF = re.compile(r"/orgs/\d+/sec_policy/(?:draft|active)/(ip_lists|services|label_groups)/(\d+)")


class ActivePolicy:
    """The active (provisioned) policy of an org, indexed to find what applies to one workload."""

    def __init__(self, core, org_id: int):
        store = core.store
        self.rule_sets = store.texts(org_id, "rule_sets", "active")
        self.scopes = [json.loads(text).get("scopes", []) for text in self.rule_sets]
        self.boundaries = "".join(store.texts(org_id, "enforcement_boundaries", "active"))
        self.groups: dict[str, set[str]] = {}  # label href -> active label groups that contain it
        for doc in store.docs(org_id, "label_groups", "active"):
            for label in core.label_group_members(org_id, doc["href"]):
                self.groups.setdefault(label, set()).add(doc["href"])
        self._store, self._org_id, self._objects = store, org_id, {}

    def _object(self, kind: str, obj_id: str) -> str:
        if (kind, obj_id) not in self._objects:
            row = self._store.row(self._org_id, kind, obj_id, "active")
            self._objects[kind, obj_id] = row["doc"] if row is not None and not row["deleted"] else ""
        return self._objects[kind, obj_id]

    def applying_to(self, workload: dict) -> list[str]:
        """JSON texts of the active policy that can change this workload's rules: rule sets whose scope holds it
        or whose rules name its labels, label groups, itself or all workloads, every enforcement boundary, and the
        IP lists, services and label groups those use. Generous on purpose: a false "syncing" costs a heartbeat."""
        labels = {ref["href"] for ref in workload.get("labels", [])}
        names = labels | {group for label in labels for group in self.groups.get(label, ())}
        needles = [f'"{href}"' for href in names | {workload["href"]}] + ['"actors":"ams"']
        texts = [self.boundaries]
        for text, scopes in zip(self.rule_sets, self.scopes, strict=True):
            if self._in_scope(scopes, names) or any(needle in text for needle in needles):
                texts.append(text)
        used = sorted({match.groups() for text in texts for match in POLICY_HREF.finditer(text)})
        return texts + [self._object(kind, obj_id) for kind, obj_id in used]

    @staticmethod
    def _in_scope(scopes: list, names: set[str]) -> bool:
        def holds(entry: dict) -> bool:
            ref = entry.get("label") or entry.get("label_group") or {}
            return (ref.get("href") in names) != bool(entry.get("exclusion"))

        return not scopes or any(all(holds(entry) for entry in scope) for scope in scopes)


# lab -> {org_id: (policy version, ActivePolicy)}; weak, so a closed lab's entry goes with it (an id() key could be
# reused by the next lab and hand it a stale index).
_policy_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_policy_lock = threading.Lock()


def active_policy(core, org_id: int) -> ActivePolicy:
    """The org's active policy, rebuilt only when a provisioning made a new version (its counter moved)."""
    with core.transaction() as db:
        row = db.execute(
            "SELECT value FROM counters WHERE org_id = ? AND name = 'sec_policy_version'", (org_id,)
        ).fetchone()
    version = row[0] if row else 0
    with _policy_lock:
        cached = _policy_cache.get(core, {}).get(org_id)
    if cached and cached[0] == version:
        return cached[1]
    policy = ActivePolicy(core, org_id)
    with _policy_lock:
        _policy_cache.setdefault(core, {})[org_id] = (version, policy)
    return policy


def policy_fingerprint(policy: ActivePolicy, workload: dict) -> str:
    """What the VEN must have to be in sync: the workload's mode, visibility and labels and the active policy
    that applies to it. Opaque; the agent API shows it as `policy_version`."""
    own = {key: workload.get(key) for key in ("enforcement_mode", "visibility_level", "labels")}
    digest = hashlib.sha256(json.dumps(own, sort_keys=True).encode())
    for text in policy.applying_to(workload):
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:16]


def sync_fields(row: sqlite3.Row, fingerprint: str) -> dict:
    """The `agent.status` fields of the policy sync (workloads.json): `syncing` from activation, and again after
    a provisioning or a workload change that alters the VEN's policy, until the VEN picks the policy up (in the
    lab: its next heartbeat); then `active`, with the time it got and applied the policy. Source for the states:
    Administration Guide 25.2, "VEN and Workload States" (Workload Policy Sync: Active, Syncing); the real sample
    of a workload that had not synced yet shows "syncing" with the policy times null."""
    synced = row["policy_synced"] == fingerprint
    return {
        "security_policy_sync_state": "active" if synced else "syncing",
        "security_policy_received_at": row["policy_synced_at"],
        "security_policy_applied_at": row["policy_synced_at"],
        "fw_config_current": synced,
    }


def workload_view(core, org_id: int):
    """For `Lab.managed_workload_views`: a managed workload's `online` and agent status as of now."""
    now, timers_now, cache = core.now(), timers(core, org_id), {}

    def rows() -> dict[str, sqlite3.Row]:
        if "rows" not in cache:
            with core.transaction() as db:
                cache["rows"] = {row["uuid"]: row for row in VenStore(db).all_visible(org_id)}
        return cache["rows"]

    def view(doc: dict) -> dict:
        row = rows().get(doc["href"].rsplit("/", 1)[-1])
        if row is None or not isinstance(doc.get("agent"), dict) or not isinstance(doc["agent"].get("status"), dict):
            return doc
        labels = frozenset(ref["href"] for ref in doc.get("labels", []))
        online, status = connection(row, labels, timers_now, now)
        if "policy" not in cache:
            cache["policy"] = active_policy(core, org_id)
        agent_status = {**doc["agent"]["status"], "status": status}
        agent_status.update(sync_fields(row, policy_fingerprint(cache["policy"], doc)))
        return {**doc, "online": bool(doc.get("online")) and online, "agent": {**doc["agent"], "status": agent_status}}

    return view


# --- filters ----------------------------------------------------------------------------------------------
def parse_label_filter(text: str | None) -> list[set[str]] | None:
    """`labels=[["/orgs/1/labels/1","/orgs/1/labels/2"],[...]]`: a VEN matches when it has all of any inner list."""
    if text is None:
        return None
    try:
        groups = json.loads(text)
    except ValueError:
        groups = None
    if not isinstance(groups, list) or not all(
        isinstance(g, list) and all(isinstance(h, str) for h in g) for g in groups
    ):
        raise LabError("input_validation_error", "labels must be a JSON list of lists of label hrefs")
    return [set(group) for group in groups]


def ven_matches(ven: dict, filters: dict) -> bool:
    if filters.get("hostname") and filters["hostname"].lower() not in (ven["hostname"] or "").lower():
        return False
    if filters.get("name") and filters["name"].lower() not in (ven["name"] or "").lower():
        return False
    for exact in ("status", "version", "os_id"):
        if filters.get(exact) and ven[exact] != filters[exact]:
            return False
    groups = filters.get("labels")
    if groups is not None:
        have = {label["href"] for label in ven["labels"]}
        return any(group <= have for group in groups)
    return True


# --- bulk operations ---------------------------------------------------------------------------------------
def ven_refs(body: object, org_id: int) -> dict[str, str]:
    """href -> UUID for `{"vens": [{"href": "/orgs/1/vens/<uuid>"}]}`; hrefs of other shapes are refused."""
    vens = body.get("vens") if isinstance(body, dict) else None
    if not isinstance(vens, list) or not vens or not all(isinstance(v, dict) and "href" in v for v in vens):
        raise LabError("input_validation_error", 'vens must be a non-empty list of {"href": ...}')
    prefix = f"/orgs/{org_id}/vens/"
    hrefs = [v["href"] for v in vens]
    bad = [h for h in hrefs if not isinstance(h, str) or not h.startswith(prefix) or "/" in h[len(prefix) :]]
    if bad:
        raise LabError("input_validation_error", f"{bad[0]!r} is not a VEN href of org {org_id}")
    return {h: h[len(prefix) :] for h in hrefs}


def error_entry(token: str, message: str, hrefs: list[str]) -> dict:
    return {"token": token, "message": message, "hrefs": hrefs}


def missing_vens(rows: dict[str, sqlite3.Row | None]) -> list[dict]:
    """The error entry for hrefs (keys of `rows`) that name no VEN, if any."""
    missing = [href for href, row in rows.items() if row is None]
    return [error_entry("ven_not_found", "no such VEN", missing)] if missing else []


def upgrade_plan(rows: dict[str, sqlite3.Row | None], release: str, known: bool) -> tuple[list[dict], list]:
    """Per-VEN errors and the VENs to upgrade, for `PUT vens/upgrade`; `rows` maps each href to its VEN."""
    present = [row for row in rows.values() if row is not None]
    errors = missing_vens(rows)
    if not known:
        hrefs = [ven_href(r["org_id"], r["uuid"]) for r in present]
        if hrefs:
            errors.append(error_entry("invalid_release", f"release {release} is not in the VEN library", hrefs))
        return errors, []
    downgrades = [r for r in present if release_sort_key(r["version"]) > release_sort_key(release)]
    if downgrades:
        hrefs = [ven_href(r["org_id"], r["uuid"]) for r in downgrades]
        errors.append(error_entry("downgrade_not_supported", f"the VEN runs a release newer than {release}", hrefs))
    todo = [r for r in present if r not in downgrades and r["version"] != release]
    return errors, todo


def compatibility_report(row: sqlite3.Row) -> dict | None:
    return json.loads(row["compatibility_report"]) if row["compatibility_report"] else None


# --- endpoints ------------------------------------------------------------------------------------------------
def _shown(core, row, timers_now: Timers | None = None) -> dict:
    workload = core.workload(row["org_id"], row["uuid"]) or {}
    labels = frozenset(ref["href"] for ref in workload.get("labels", []))
    timers_now = timers_now or timers(core, row["org_id"])
    return render_ven(row, workload, connection(row, labels, timers_now, core.now())[1])


@refusals_as_responses
async def list_vens(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    params = request.query_params
    filters = {key: params.get(key) for key in ("hostname", "name", "status", "version", "os_id")}
    filters["labels"] = parse_label_filter(params.get("labels"))
    with core.transaction() as db:
        rows = VenStore(db).all_visible(org_id)
    timers_now = timers(core, org_id)
    vens = [ven for ven in (_shown(core, row, timers_now) for row in rows) if ven_matches(ven, filters)]
    return core.collection(request, vens)


@refusals_as_responses
async def get_ven(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        row = VenStore(db).visible(org_of(request), request.path_params["uuid"])
    return JSONResponse(_shown(core, row)) if row else not_found("VEN")


@refusals_as_responses
async def update_ven(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not body or set(body) - {"name", "description"}:
        raise LabError("input_validation_error", "a VEN update may change name and description only")
    for key, value in body.items():
        if value is not None and not isinstance(value, str):
            raise LabError("input_validation_error", f"{key} must be a string or null")
    user = core.user_href(request)
    with core.transaction() as db:
        store = VenStore(db)
        row = store.visible(org_id, request.path_params["uuid"])
        if row is None:
            return not_found("VEN")
        store.update(row["agent_id"], **body, updated_at=iso_timestamp(core.now()), updated_by=user)
    if "name" in body:
        core.update_workload(org_id, row["uuid"], {"name": body["name"]})
    return Response(status_code=204)


def _rows_for(store: VenStore, org_id: int, refs: dict[str, str]) -> dict:
    return {href: store.visible(org_id, uuid) for href, uuid in refs.items()}


@refusals_as_responses
async def upgrade_vens(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    body = await json_body(request)
    refs = ven_refs(body, org_id)
    release, dry_run = body.get("release"), body.get("dry_run", False)
    if not isinstance(release, str) or not release:
        raise LabError("input_validation_error", "release is required, e.g. 21.5.20-8451")
    if not isinstance(dry_run, bool):
        raise LabError("input_validation_error", "dry_run must be true or false")
    known = SoftwareLibrary(core.data_dir).release(release) is not None
    user = core.user_href(request)
    with core.transaction() as db:
        store = VenStore(db)
        errors, todo = upgrade_plan(_rows_for(store, org_id, refs), release, known)
        if not dry_run:
            for row in todo:
                store.update(row["agent_id"], pending_upgrade=release, updated_at=iso_timestamp(core.now()))
    if not dry_run:
        for row in todo:
            resource = {"ven": {"href": ven_href(org_id, row["uuid"])}}
            core.record_event(org_id, "agent.upgrade_requested", user, resource, {"release": release})
    return JSONResponse({"errors": errors})


@refusals_as_responses
async def unpair_vens(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    body = await json_body(request)
    refs = ven_refs(body, org_id)
    restore = body.get("firewall_restore", "saved")
    if restore not in FIREWALL_RESTORE:
        raise LabError("input_validation_error", f"firewall_restore must be one of: {', '.join(FIREWALL_RESTORE)}")
    user = core.user_href(request)
    with core.transaction() as db:
        store = VenStore(db)
        rows = _rows_for(store, org_id, refs)
        present = [row for row in rows.values() if row is not None]
        for row in present:
            # The VEN leaves the API now; its token lives on until the agent reads the action and says goodbye.
            store.update(row["agent_id"], unpair_requested=restore, updated_at=iso_timestamp(core.now()))
    for row in present:
        core.delete_workload(org_id, row["uuid"])
        resource = {"ven": {"href": ven_href(org_id, row["uuid"])}}
        core.record_event(org_id, "agent.unpair", user, resource, {"firewall_restore": restore})
    return JSONResponse({"errors": missing_vens(rows)})


# The compatibility report of a VEN, by its VEN href or its agent href: clients use both (brian1917/illumioapi
# compatibilityreport.go: `<ven or agent href>/compatibility_report`; pylo's agent_get_compatibility_report:
# `/agents/{id}/compatibility_report`). Shape {last_updated_at, qualify_status, results: {qualify_tests}} from
# compatibilityreport.go. A VEN that sent no report answers `{}`: pylo reads an empty object as "no report".
def _report_answer(row: sqlite3.Row | None, what: str) -> Response:
    if row is None:
        return not_found(what)
    return JSONResponse(compatibility_report(row) or {})


@refusals_as_responses
async def get_compatibility_report(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        row = VenStore(db).visible(org_of(request), request.path_params["uuid"])
    return _report_answer(row, "VEN")


@refusals_as_responses
async def get_agent_compatibility_report(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        row = VenStore(db).by_agent_id(org_of(request), request.path_params["agent_id"])
    return _report_answer(row, "agent")


def setup(core) -> None:
    """Create the tables at start-up (the core calls this once per app); show managed workloads as of now."""
    with core.transaction() as db:
        ensure_schema(db, SCHEMA)
        present = {row[1] for row in db.execute("PRAGMA table_info(ven_agents)")}
        for column, kind in ADDED_COLUMNS.items():
            if column not in present:
                db.execute(f"ALTER TABLE ven_agents ADD COLUMN {column} {kind}")
    views = getattr(core, "managed_workload_views", None)
    if views is not None and workload_view not in views:
        views.append(workload_view)


ORG = "/api/v2/orgs/{org_id:id}"
ROUTES = [
    Route(f"{ORG}/vens", list_vens, methods=["GET"]),
    # The bulk actions come before /vens/{uuid} so "upgrade" and "unpair" are never taken for UUIDs.
    Route(f"{ORG}/vens/upgrade", upgrade_vens, methods=["PUT"]),
    Route(f"{ORG}/vens/unpair", unpair_vens, methods=["PUT"]),
    Route(f"{ORG}/vens/{{uuid}}", get_ven, methods=["GET"]),
    Route(f"{ORG}/vens/{{uuid}}", update_ven, methods=["PUT"]),
    Route(f"{ORG}/vens/{{uuid}}/compatibility_report", get_compatibility_report, methods=["GET"]),
    Route(f"{ORG}/agents/{{agent_id:id}}/compatibility_report", get_agent_compatibility_report, methods=["GET"]),
]
