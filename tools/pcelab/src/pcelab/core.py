"""The lab PCE's core: storage, clock, API keys, events, async collections, and the seam endpoint modules use.

`Lab` implements `pcelab.api.ven_core.LabCore` (the VEN side's view of the core) and the helpers the core's
own endpoint modules share. One `Lab` serves one org (`org_id`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import shutil
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from pcelab import enforcement_scope, workload_model
from pcelab.clock import iso
from pcelab.collections import collection_response
from pcelab.errors import LabError, invalid, not_found
from pcelab.store import Store, dumps

log = logging.getLogger("pcelab")

SYSTEM_USER = "/users/0"
DATAFILE_TTL_SECONDS = 3600  # async results are fetched right away; older ones only fill the disk
SYSTEM_ACTOR = {"system": {}}
# Policy object kinds that can name labels, IP lists, services or label groups.
POLICY_REFERRERS = ("label_groups", "rule_sets", "enforcement_boundaries")

# (org_id, href) -> reason text or None; endpoint modules add checks for objects they own.
LabelReferenceCheck = Callable[["Lab", int, str], "str | None"]


@dataclass
class Faults:
    """Fault injection: answer a fraction of API requests (or the next N) with 429/503 and Retry-After."""

    rate: float = 0.0
    status: int = 503
    next_count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def configure(self, rate: float, status: int, next_count: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise invalid("fault rate must be between 0 and 1")
        if status not in (429, 503):
            raise invalid("fault status must be 429 or 503")
        if next_count < 0:
            raise invalid("next must not be negative")
        with self._lock:
            self.rate, self.status, self.next_count = rate, status, next_count

    def should_fail(self) -> bool:
        with self._lock:
            if self.next_count > 0:
                self.next_count -= 1
                return True
        return self.rate > 0 and secrets.randbelow(1_000_000) < self.rate * 1_000_000

    def describe(self) -> dict:
        return {"rate": self.rate, "status": self.status, "next": self.next_count}


class Lab:
    def __init__(self, data_dir: str, org_id: int = 1, ca_pem: str = "", pce_fqdn: str = "pcelab.local"):
        self.org_id = org_id
        self.pce_fqdn = pce_fqdn
        self.ca_pem = ca_pem
        self.in_memory = data_dir == ":memory:"
        self._scratch = Path(tempfile.mkdtemp(prefix="pcelab-")) if self.in_memory else None
        self.data_dir = str(self._scratch if self.in_memory else Path(data_dir))
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self.store = Store(":memory:" if self.in_memory else str(Path(self.data_dir) / "pce.sqlite3"))
        self.datafiles = Path(self.data_dir) / "datafiles"
        self.datafiles.mkdir(exist_ok=True)
        self.clock_offset = 0.0
        self.faults = Faults()
        self.label_reference_checks: list[LabelReferenceCheck] = []
        # (lab, org_id) -> {usage field: label hrefs}; endpoint modules add theirs (see pcelab.label_usage).
        self.label_usage_sources: list[Callable[[Lab, int], dict[str, set[str]]]] = []
        # (lab, org_id) -> a function bringing a *managed* workload document up to date when it is read (online,
        # agent status: things that follow the clock and the VEN side). Endpoint modules add theirs in setup().
        self.managed_workload_views: list[Callable[[Lab, int], Callable[[dict], dict]]] = []
        # (lab, org_id) -> a function bringing *any* workload document up to date when read, or None when it
        # has nothing to do (then unmanaged workloads are answered as stored, unparsed).
        self.workload_views: list[Callable[[Lab, int], Callable[[dict], dict] | None]] = [
            enforcement_scope.workload_view
        ]
        self._key_cache: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        self.store.close()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # --- the LabCore seam ---------------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager:
        return self.store.transaction()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def stamp(self) -> str:
        return iso(self.now())

    def user_href(self, request: Request) -> str:
        return request.scope.get("pcelab_user", SYSTEM_USER)

    # --- API keys -----------------------------------------------------------------------------------------
    def create_api_key(self) -> tuple[str, str]:
        """A new key in the real PCE's format: username api_ + 15 hex, secret 64 hex. Only a hash is stored."""
        username, secret = "api_" + secrets.token_hex(8)[:15], secrets.token_hex(32)
        self.add_api_key(username, secret)
        return username, secret

    def add_api_key(self, username: str, secret: str) -> None:
        if not username or not secret or ":" in username:
            raise ValueError("an API key needs a username without ':' and a secret")
        digest = hashlib.sha256(secret.encode()).hexdigest()
        self._key_cache.clear()  # a replaced secret must stop working at once
        with self.transaction() as db:
            db.execute(
                "INSERT INTO api_keys (username, secret_sha256, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (username) DO UPDATE SET secret_sha256=excluded.secret_sha256",
                (username, digest, self.stamp()),
            )

    def authenticate(self, username: str, secret: str) -> str | None:
        """The user href of a valid key, else None. Compared as hashes, in constant time."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        cached = self._key_cache.get((username, digest))
        if cached:
            return f"/users/{cached}"
        with self.transaction() as db:
            row = db.execute("SELECT id, secret_sha256 FROM api_keys WHERE username=?", (username,)).fetchone()
        if row is None or not secrets.compare_digest(row["secret_sha256"], digest):
            return None
        self._key_cache[(username, digest)] = row["id"]
        return f"/users/{row['id']}"

    def username_of(self, user_href: str) -> str | None:
        user_id = user_href.rsplit("/", 1)[-1]
        with self.transaction() as db:
            row = db.execute("SELECT username FROM api_keys WHERE id=?", (user_id,)).fetchone()
        return row["username"] if row else None

    # --- events -------------------------------------------------------------------------------------------
    def record_event(
        self,
        org_id: int,
        event_type: str,
        created_by: dict | str,
        resource: dict | None = None,
        changes: dict | None = None,
        action: dict | None = None,
    ) -> dict:
        """Append an event shaped like the PCE's (events.json). `created_by` may be a user href."""
        if isinstance(created_by, str):
            created_by = {"user": {"href": created_by, "username": self.username_of(created_by)}}
        change_type = _change_type(event_type)
        resource_changes = []
        if resource is not None:
            change = {"uuid": str(uuidlib.uuid4()), "resource": resource, "changes": changes or {}}
            resource_changes.append({**change, "change_type": change_type})
        now = self.now()
        event = {
            "href": f"/orgs/{org_id}/events/{uuidlib.uuid4()}",
            "timestamp": iso(now),
            "pce_fqdn": self.pce_fqdn,
            "created_by": created_by,
            "event_type": event_type,
            "status": "success",
            "severity": "info",
            "action": {
                "uuid": str(uuidlib.uuid4()),
                "api_endpoint": None,
                "api_method": None,
                "http_status_code": None,
                "src_ip": None,
                **(action or {}),
            },
            "resource_changes": resource_changes,
            "notifications": [],
        }
        with self.transaction() as db:
            db.execute(
                "INSERT INTO events (org_id, timestamp, event_type, doc) VALUES (?, ?, ?, ?)",
                (org_id, now, event_type, dumps(event)),
            )
        return event

    # --- labels and policy lookups ------------------------------------------------------------------------
    def label(self, org_id: int, href: str) -> dict | None:
        """{href, key, value} of a live label, or None."""
        label_id = _last_segment(href, f"/orgs/{org_id}/labels/")
        row = self.store.row(org_id, "labels", label_id) if label_id else None
        if row is None or row["deleted"]:
            return None
        doc = json.loads(row["doc"])
        return {"href": doc["href"], "key": doc["key"], "value": doc["value"]}

    def label_by_value(self, org_id: int, key: str, value: str) -> dict | None:
        for doc in self.store.find(org_id, "labels", key=key, value=value):
            return {"href": doc["href"], "key": key, "value": value}
        return None

    def policy_doc(self, org_id: int, href: str) -> tuple[str, str, dict] | None:
        """(kind, state, doc) of a live draft/active policy object named by its href."""
        parts = href.split("/")
        if len(parts) != 7 or parts[1:3] != ["orgs", str(org_id)] or parts[3] != "sec_policy":
            return None
        state, kind, obj_id = parts[4], parts[5], parts[6]
        row = self.store.row(org_id, kind, obj_id, state) if state in ("draft", "active") else None
        if row is None or row["deleted"]:
            return None
        return kind, state, json.loads(row["doc"])

    def label_group_members(self, org_id: int, href: str) -> frozenset[str]:
        """Every label href in a label group, sub-groups included (empty when unknown)."""
        members: set[str] = set()
        pending, seen = [href], set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            found = self.policy_doc(org_id, current)
            if found and found[0] == "label_groups":
                members.update(ref["href"] for ref in found[2].get("labels", []))
                pending.extend(ref["href"] for ref in found[2].get("sub_groups", []))
        return frozenset(members)

    def ip_list_ranges(self, org_id: int, href: str) -> list[dict]:
        found = self.policy_doc(org_id, href)
        return list(found[2].get("ip_ranges", [])) if found and found[0] == "ip_lists" else []

    def label_in_use(self, org_id: int, href: str) -> str | None:
        """Why a label can't be deleted (what uses it), or None. Endpoint modules add their own checks."""
        if self.store.referencing(org_id, ["workloads"], "", href):
            return "workloads"
        for state in ("draft", "active"):
            users = self.store.referencing(org_id, POLICY_REFERRERS, state, href)
            if users:
                return f"{state} {users[0]['kind'].replace('_', ' ')}"
        for check in self.label_reference_checks:
            reason = check(self, org_id, href)
            if reason:
                return reason
        return None

    # --- workloads (VEN side creates managed ones) --------------------------------------------------------
    def create_managed_workload(self, org_id: int, uuid: str, fields: dict) -> dict:
        """A managed workload (with `agent` and `ven`) made by activation; see HACKING.md for the fields."""
        doc = workload_model.managed(org_id, uuid, fields, self.stamp(), self)
        actor = {"agent": {"href": doc["created_by"]["href"], "hostname": doc.get("hostname")}}
        with self.transaction():
            self.store.put(org_id, "workloads", uuid, doc)
            self.record_event(org_id, "workload.create", actor, {"workload": _brief_workload(doc)})
        return doc

    def workload(self, org_id: int, uuid: str) -> dict | None:
        row = self.store.row(org_id, "workloads", uuid)
        return None if row is None or row["deleted"] else json.loads(row["doc"])

    def workloads(self, org_id: int) -> Iterator[dict]:
        yield from self.store.docs(org_id, "workloads")

    def live_workload_texts(self, org_id: int, texts: list[str]) -> list[str]:
        """Stored workload texts as the API answers them, through `workload_views` and, for managed ones,
        `managed_workload_views`. When no view has work, unmanaged workloads (most of a large listing) are
        passed through untouched, without parsing."""
        every = [view for view in (make(self, org_id) for make in self.workload_views) if view is not None]
        managed = None
        shown = []
        for text in texts:
            unmanaged = '"ven":null' in text
            if unmanaged and not every:
                shown.append(text)
                continue
            doc = json.loads(text)
            if not unmanaged:
                managed = (
                    managed if managed is not None else [make(self, org_id) for make in self.managed_workload_views]
                )
                every_view = [*every, *managed]
            else:
                every_view = every
            for view in every_view:
                doc = view(doc)
            shown.append(dumps(doc))
        return shown

    def live_workload(self, org_id: int, doc: dict) -> dict:
        views = [view for view in (make(self, org_id) for make in self.workload_views) if view is not None]
        if workload_model.is_managed(doc):
            views += [make(self, org_id) for make in self.managed_workload_views]
        for view in views:
            doc = view(doc)
        return doc

    def update_workload(self, org_id: int, uuid: str, changes: dict) -> None:
        """Apply trusted changes from the VEN side (agent status, interfaces, online, labels as [{href}])."""
        with self.transaction():
            doc = self.workload(org_id, uuid)
            if doc is None:
                raise not_found(f"workload {uuid}")
            updated = workload_model.apply_system_changes(doc, changes, self, org_id, self.stamp())
            self.store.put(org_id, "workloads", uuid, updated)

    def delete_workload(self, org_id: int, uuid: str) -> None:
        """Remove a workload whatever its kind (unpair); unknown or already deleted ones are left alone."""
        with self.transaction():
            doc = self.workload(org_id, uuid)
            if doc is None:
                return
            doc = {**doc, "deleted": True, "updated_at": self.stamp()}
            self.store.put(org_id, "workloads", uuid, doc, deleted=True)
            self.record_event(org_id, "workload.delete", SYSTEM_ACTOR, {"workload": _brief_workload(doc)})

    def collection(self, request: Request, items: list[dict]) -> Response:
        """A GET collection answer from ready objects: max_results, X-Total-Count, async as the core does."""
        return collection_response(self, request, lambda: [dumps(item) for item in items])

    # --- async jobs ---------------------------------------------------------------------------------------
    def start_job(self, org_id: int, user: str, description: str, produce: Callable[[], str]) -> dict:
        """Run `produce` (returns a JSON document as text) in the background; the job points at its datafile."""
        job_id = str(uuidlib.uuid4())
        job = {
            "href": f"/orgs/{org_id}/jobs/{job_id}",
            "job_type": "async_collection_request",
            "description": description,
            "status": "running",
            "result": None,
            "requested_at": self.stamp(),
            "requested_by": {"href": user},
            "terminated_at": None,
            "created_by": {"href": user},
        }
        self._save_job(org_id, job_id, job)
        self._prune_datafiles()
        threading.Thread(target=self._run_job, args=(org_id, job_id, job, produce), daemon=True).start()
        return job

    def _run_job(self, org_id: int, job_id: str, job: dict, produce: Callable[[], str]) -> None:
        try:
            text = produce()
            datafile = str(uuidlib.uuid4())
            (self.datafiles / f"{datafile}.json").write_text(text, encoding="utf-8")
            job.update(status="done", result={"href": f"/orgs/{org_id}/datafiles/{datafile}"})
        except LabError as error:
            job.update(status="failed", result={"token": error.token, "message": error.message})
        except Exception:
            log.exception("async job %s failed", job_id)
            job.update(status="failed", result={"token": "internal_error", "message": "the job failed"})
        job["terminated_at"] = self.stamp()
        self._save_job(org_id, job_id, job)

    def _save_job(self, org_id: int, job_id: str, job: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO jobs (uuid, org_id, doc) VALUES (?, ?, ?)"
                " ON CONFLICT (uuid) DO UPDATE SET doc=excluded.doc",
                (job_id, org_id, dumps(job)),
            )

    def _prune_datafiles(self) -> None:
        oldest = time.time() - DATAFILE_TTL_SECONDS
        for path in self.datafiles.glob("*.json"):
            try:
                if path.stat().st_mtime < oldest:
                    path.unlink()
            except FileNotFoundError:
                pass  # pruned by a concurrent job

    def job(self, org_id: int, job_id: str) -> dict | None:
        with self.transaction() as db:
            row = db.execute("SELECT doc FROM jobs WHERE uuid=? AND org_id=?", (job_id, org_id)).fetchone()
        return json.loads(row["doc"]) if row else None

    def datafile_path(self, datafile_id: str) -> Path | None:
        if not _is_uuid(datafile_id):
            return None
        path = self.datafiles / f"{datafile_id}.json"
        return path if path.exists() else None


def _change_type(event_type: str) -> str:
    """`resource_changes[].change_type` is one of create, update, delete on the PCE (the SDK's ChangeType enum,
    illumio 1.1.3, refuses anything else; events.json shows user.sign_in as an "update"). The event type's
    verb decides: creations (also bulk ones, an activation, a new pairing key), deletions (also an unpair),
    and everything else changes an existing resource."""
    verb = event_type.rsplit(".", 1)[-1]
    if "create" in verb or verb == "activate":
        return "create"
    if "delete" in verb or verb == "unpair":
        return "delete"
    return "update"


def _last_segment(href: str, prefix: str) -> str | None:
    if not isinstance(href, str) or not href.startswith(prefix):
        return None
    rest = href[len(prefix) :]
    return rest if rest and "/" not in rest else None


def _is_uuid(text: str) -> bool:
    try:
        return str(uuidlib.UUID(text)) == text
    except ValueError:
        return False


def _brief_workload(doc: dict) -> dict:
    return {"href": doc["href"], "hostname": doc.get("hostname"), "name": doc.get("name")}
