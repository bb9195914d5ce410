# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""VENs as the PCE sees them: select them (by href, host name, workload or filters), show them, upgrade them.

Selection works in two steps. VENs named explicitly (hrefs, host names, workload hrefs) are looked up one by
one and must exist; filters (labels, status, version, health, condition) narrow that set, or, when nothing is
named, select from every VEN of the org with the PCE's own query parameters. The PCE matches host names
partially, so every filter is checked here again, exactly.

Upgrades go through `PUT /orgs/{org}/vens/upgrade` (`{"vens": [{"href"}], "release": ..., "dry_run": ...}`), which
answers `{"errors": [{"token", "message", "hrefs"}]}` for the VENs it refused. VENs already at the release are
never sent; VENs whose upgrade to the release is already pending are not sent again unless forced.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import json
import re
import time

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.labels import LabelResolver

VEN_STATUSES = ("active", "suspended", "stopped", "uninstalled")
HEALTH_STATES = ("healthy", "warning", "error")
HEALTH_FILTERS = ("healthy", "warning", "error", "unhealthy")
# Condition severities (syslog names as the PCE reports them) that make a VEN's health "error".
ERROR_SEVERITIES = frozenset(["emerg", "emergency", "alert", "crit", "critical", "err", "error"])
# Conditions that mean the PCE does not hear from the VEN.
OFFLINE_CONDITIONS = frozenset(["agent.missed_heartbeats", "agent.missing_heartbeats_after_upgrade", "agent.offline"])
UPGRADE_TIMEOUT_CONDITIONS = frozenset(["agent.upgrade_time_out"])
# Events in which the PCE records an upgrade request; their resource_changes name the VEN and the release.
UPGRADE_REQUEST_EVENTS = ("agent.upgrade_requested",)
EVENT_WINDOW = 1000  # newest upgrade-request events read to find pending upgrades
# Above this many named host names, one listing of every VEN is cheaper than one query per host name.
HOSTNAME_QUERY_LIMIT = 20
RELEASE_PATTERN = re.compile(r"^\d+(\.\d+)+(-\d+)?$")


# --- versions -----------------------------------------------------------------------------------------------
def version_key(version):
    """`21.5.30-8527` -> (21, 5, 30, 8527), for ordering releases; non-numbers are ignored."""
    return tuple(int(part) for part in re.split(r"[.\-+_]", str(version or "")) if part.isdigit())


def check_release(release):
    text = str(release or "").strip()
    if not RELEASE_PATTERN.match(text):
        raise PceError(
            "release must be a VEN release such as 21.5.30-8527 (version-build, as the PCE's VEN library names it), "
            "got %r" % (release,)
        )
    return text


# --- what a VEN looks like to users -------------------------------------------------------------------------
def ven_conditions(doc):
    """The VEN's conditions as {type, severity, first_reported_at, latest_at, info}."""
    shown = []
    for condition in doc.get("conditions") or []:
        if not isinstance(condition, dict):
            continue
        event = condition.get("latest_event") or {}
        shown.append(
            {
                "type": event.get("notification_type"),
                "severity": event.get("severity"),
                "first_reported_at": condition.get("first_reported_timestamp"),
                "latest_at": event.get("timestamp"),
                "info": event.get("info"),
            }
        )
    return shown


def ven_health(doc):
    """healthy (no conditions), error (a condition of error severity or worse) or warning (other conditions)."""
    conditions = ven_conditions(doc)
    if not conditions:
        return "healthy"
    if any(str(condition["severity"] or "").lower() in ERROR_SEVERITIES for condition in conditions):
        return "error"
    return "warning"


def ven_online(doc):
    """Active, and no condition saying the PCE misses its heartbeats."""
    if doc.get("status") != "active":
        return False
    return not any(condition["type"] in OFFLINE_CONDITIONS for condition in ven_conditions(doc))


def workload_hrefs(doc):
    return [ref.get("href") for ref in doc.get("workloads") or [] if isinstance(ref, dict) and ref.get("href")]


def matches_health(doc, wanted):
    health = ven_health(doc)
    if wanted == "unhealthy":
        return health != "healthy"
    return health == wanted


class VenReader(object):
    """Reads VENs from the PCE and shows them with labels as `key: value`; reads the labels at most once."""

    def __init__(self, client):
        self.client = client
        self.labels = LabelResolver(client)

    # --- reading --------------------------------------------------------------------------------------------
    def collection_path(self):
        return self.client.org_path("vens")

    def list(self, query=None):
        return [doc for doc in self.client.get_collection(self.collection_path(), query) or [] if doc.get("href")]

    def by_href(self, href):
        """The VEN at href, or None when the PCE has no such VEN."""
        if not re.match(r"^(/api/v2)?/orgs/\d+/vens/[^/]+$", str(href or "")):
            raise PceError("not a VEN href: %r (expected something like /orgs/1/vens/<uuid>)" % (href,))
        try:
            return self.client.get(href)
        except PceError as error:
            if error.status == 404:
                return None
            raise

    def by_hostnames(self, hostnames):
        """{hostname: [VENs with exactly that host name]} (an empty list for host names no VEN has)."""
        found = dict((name, []) for name in hostnames)
        if not hostnames:
            return found
        if len(hostnames) > HOSTNAME_QUERY_LIMIT:
            candidates = self.list()
        else:
            candidates = []
            for name in hostnames:
                candidates.extend(self.list({"hostname": name}))
        seen = set()
        for doc in candidates:
            if doc["href"] in seen:
                continue
            seen.add(doc["href"])
            if doc.get("hostname") in found:
                found[doc["hostname"]].append(doc)
        return found

    def by_workload(self, href):
        """The VEN of the workload at href; None when there is no such workload; PceError when it has no VEN."""
        if not re.match(r"^(/api/v2)?/orgs/\d+/workloads/[^/]+$", str(href or "")):
            raise PceError("not a workload href: %r (expected something like /orgs/1/workloads/<uuid>)" % (href,))
        try:
            workload = self.client.get(href)
        except PceError as error:
            if error.status == 404:
                return None
            raise
        if not workload or workload.get("deleted"):
            return None
        ven_href = (workload.get("ven") or {}).get("href")
        if not ven_href:
            raise PceError(
                "workload %s (%s) is unmanaged: it has no VEN"
                % (href, workload.get("hostname") or workload.get("name") or "no host name")
            )
        return self.by_href(ven_href)

    def label_hrefs(self, labels):
        """Hrefs of labels given as {key: value}; None when one of them does not exist (nothing can match)."""
        hrefs = []
        for key, value in sorted((labels or {}).items()):
            if not isinstance(key, str) or not key or value is None or isinstance(value, (dict, list)):
                raise PceError("labels must be a dict of label key: value, got %r" % (labels,))
            self.labels.describe("")  # reads the labels once; a failure to read them is raised, not hidden
            try:
                hrefs.append(self.labels.href(key, str(value)))
            except PceError:
                return None
        return hrefs

    # --- showing --------------------------------------------------------------------------------------------
    def label_pairs(self, doc):
        pairs = {}
        for ref in doc.get("labels") or []:
            if ref.get("key") is not None and ref.get("value") is not None:
                pairs[ref["key"]] = ref["value"]
                continue
            described = self.labels.describe(ref.get("href"))
            pairs[described.get("key", ref.get("href"))] = described.get("value", ref.get("href"))
        return pairs

    def view(self, doc):
        """A VEN as modules return it."""
        workloads = workload_hrefs(doc)
        return {
            "href": doc.get("href"),
            "name": doc.get("name"),
            "hostname": doc.get("hostname"),
            "description": doc.get("description"),
            "version": doc.get("version"),
            "status": doc.get("status"),
            "online": ven_online(doc),
            "health": ven_health(doc),
            "conditions": ven_conditions(doc),
            "workload_href": workloads[0] if workloads else None,
            "workload_hrefs": workloads,
            "last_heartbeat_at": doc.get("last_heartbeat_at"),
            "last_goodbye_at": doc.get("last_goodbye_at"),
            "os_id": doc.get("os_id"),
            "os_platform": doc.get("os_platform"),
            "os_detail": doc.get("os_detail"),
            "labels": self.label_pairs(doc),
            "can_upgrade": "upgrade" in (doc.get("caps") or []),
        }


def summary(views):
    """Counts of VENs by version, status and health."""
    counts = {"total": len(views), "by_version": {}, "by_status": {}, "by_health": {}}
    for view in views:
        for field, bucket in (("version", "by_version"), ("status", "by_status"), ("health", "by_health")):
            key = view.get(field) or "unknown"
            counts[bucket][key] = counts[bucket].get(key, 0) + 1
    return counts


# --- selection ----------------------------------------------------------------------------------------------
class Selection(object):
    """The VENs a task selected (PCE documents, sorted) and the names it gave that matched no VEN."""

    def __init__(self):
        self.vens = []
        self.missing = {"hostnames": [], "hrefs": [], "workload_hrefs": []}
        self.ambiguous = {}  # hostname -> hrefs of the VENs that share it

    def missing_names(self):
        return [name for field in ("hostnames", "hrefs", "workload_hrefs") for name in self.missing[field]]


def _names(params, field):
    values = params.get(field) or []
    if isinstance(values, str):
        values = [values]
    names = []
    for value in values:
        text = str(value).strip() if value is not None else ""
        if not text:
            raise PceError("%s must not contain empty entries" % field)
        if text not in names:
            names.append(text)
    return names


def selector_argument_spec():
    """The options that name VENs, shared by ven_info and ven_upgrade (a fresh dict every call)."""
    return dict(
        hostnames=dict(type="list", elements="str", aliases=["hostname"]),
        hrefs=dict(type="list", elements="str", aliases=["href"]),
        workload_hrefs=dict(type="list", elements="str", aliases=["workload_href", "workloads"]),
        labels=dict(type="dict"),
    )


def named(params):
    """Whether a task names VENs explicitly (hrefs, host names or workloads); a list given empty names none."""
    return any(params.get(field) is not None for field in ("hostnames", "hrefs", "workload_hrefs"))


def select_vens(reader, params):
    """The VENs that params (hostnames, hrefs, workload_hrefs, labels, status, version, health, condition) select."""
    selection = Selection()
    label_hrefs = reader.label_hrefs(params.get("labels")) if params.get("labels") else []
    if label_hrefs is None:
        # A label that does not exist: no VEN carries it, so none is selected (named VENs are still checked).
        if named(params):
            _named_vens(reader, params, selection)
        return selection
    named_ones = named(params)
    candidates = _named_vens(reader, params, selection) if named_ones else reader.list(_query(params, label_hrefs))
    chosen = []
    seen = set()
    for doc in candidates:
        if doc["href"] in seen or not _passes_filters(doc, params, label_hrefs):
            continue
        seen.add(doc["href"])
        chosen.append(doc)
    chosen.sort(key=lambda doc: (doc.get("hostname") or "", doc.get("name") or "", doc["href"]))
    selection.vens = chosen
    return selection


def _query(params, label_hrefs):
    query = {}
    for field in ("status", "version", "health", "condition"):
        if params.get(field):
            query[field] = params[field]
    if label_hrefs:
        # The PCE's labels filter: a list of label sets, any of which a VEN must carry whole.
        query["labels"] = json.dumps([label_hrefs], separators=(",", ":"))
    return query or None


def _passes_filters(doc, params, label_hrefs):
    for field in ("status", "version"):
        if params.get(field) and doc.get(field) != params[field]:
            return False
    if params.get("health") and not matches_health(doc, params["health"]):
        return False
    if params.get("condition") and params["condition"] not in [c["type"] for c in ven_conditions(doc)]:
        return False
    carried = set(ref.get("href") for ref in doc.get("labels") or [])
    return set(label_hrefs) <= carried


def _named_vens(reader, params, selection):
    found = []
    for href in _names(params, "hrefs"):
        doc = reader.by_href(href)
        if doc is None:
            selection.missing["hrefs"].append(href)
        else:
            found.append(doc)
    for name, docs in sorted(reader.by_hostnames(_names(params, "hostnames")).items()):
        if not docs:
            selection.missing["hostnames"].append(name)
        if len(docs) > 1:
            selection.ambiguous[name] = sorted(doc["href"] for doc in docs)
        found.extend(docs)
    for href in _names(params, "workload_hrefs"):
        doc = reader.by_workload(href)
        if doc is None:
            selection.missing["workload_hrefs"].append(href)
        else:
            found.append(doc)
    return found


def _described(doc):
    return "%s (%s)" % (doc.get("hostname") or doc.get("name") or "?", doc.get("href"))


# --- upgrades -----------------------------------------------------------------------------------------------
def pending_upgrades(client, hrefs):
    """{VEN href: release} of the newest upgrade request the PCE's event log shows for each of hrefs.

    Best effort: a PCE that does not record such events, or an API key that may not read events, gives {}.
    """
    wanted = set(hrefs)
    pending = {}
    if not wanted:
        return pending
    for event_type in UPGRADE_REQUEST_EVENTS:
        try:
            events = client.get(
                client.org_path("events"), params={"event_type": event_type, "max_results": EVENT_WINDOW}
            )
        except PceError as error:
            if error.status in (400, 403, 404, 406):
                return {}
            raise
        for event in sorted(events or [], key=lambda e: e.get("timestamp") or "", reverse=True):
            if not isinstance(event, dict) or event.get("status") not in (None, "success"):
                continue
            for change in event.get("resource_changes") or []:
                href = ((change.get("resource") or {}).get("ven") or {}).get("href")
                release = (change.get("changes") or {}).get("release")
                if href in wanted and href not in pending and release:
                    pending[href] = release
    return pending


def _timed_out_for(doc, release):
    """Whether the PCE reports that the VEN's upgrade to release timed out (it is no longer pending then)."""
    for condition in ven_conditions(doc):
        if condition["type"] in UPGRADE_TIMEOUT_CONDITIONS:
            info = condition.get("info") or {}
            if info.get("desired_version") in (None, release):
                return True
    return False


class UpgradePlan(object):
    """Which selected VENs to upgrade, which to leave, and which cannot be upgraded."""

    def __init__(self, release):
        self.release = release
        self.upgrade = []  # VEN documents to send
        self.current = []  # already at the release
        self.pending = []  # upgrade to the release already requested
        self.refused = []  # {"hostname", "href", "version", "reason"}


def plan_upgrade(client, vens, release, force=False):
    plan = UpgradePlan(release)
    candidates = []
    for doc in vens:
        version = doc.get("version")
        if version == release:
            plan.current.append(doc)
        elif version and version_key(version) > version_key(release):
            plan.refused.append(
                _refusal(doc, "runs %s, newer than %s: the PCE does not downgrade VENs" % (version, release))
            )
        elif "upgrade" not in (doc.get("caps") or ["upgrade"]):
            plan.refused.append(_refusal(doc, "the PCE does not allow upgrading it (no upgrade capability)"))
        else:
            candidates.append(doc)
    requested = {} if force else pending_upgrades(client, [doc["href"] for doc in candidates])
    for doc in candidates:
        if requested.get(doc["href"]) == release and not _timed_out_for(doc, release):
            plan.pending.append(doc)
        else:
            plan.upgrade.append(doc)
    return plan


def _refusal(doc, reason):
    return {"hostname": doc.get("hostname"), "href": doc.get("href"), "version": doc.get("version"), "reason": reason}


def request_upgrade(client, vens, release, dry_run=False):
    """PUT vens/upgrade; returns the PCE's per-VEN errors as [{"token", "message", "hrefs"}]."""
    if not vens:
        return []
    body = {"vens": [{"href": doc["href"]} for doc in vens], "release": release}
    if dry_run:
        body["dry_run"] = True
    try:
        answer = client.put(client.org_path("vens/upgrade"), body)
    except PceError as error:
        raise PceError(
            "the PCE refused to upgrade %d VEN(s) to %s: %s" % (len(vens), release, error),
            status=error.status,
            token=error.token,
            details=error.details,
        ) from None
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return [error for error in errors or [] if isinstance(error, dict)]


def describe_errors(errors, by_href):
    """PCE upgrade errors as one readable line each, with host names instead of bare hrefs."""
    lines = []
    for error in errors:
        hrefs = error.get("hrefs") or []
        names = [(by_href.get(href) or {}).get("hostname") or href for href in hrefs]
        text = error.get("message") or error.get("token") or json.dumps(error, sort_keys=True)
        if error.get("token"):
            text = "%s (%s)" % (text, error["token"])
        lines.append("%s%s" % (text, ": " + ", ".join(names) if names else ""))
    return lines


def refused_hrefs(errors):
    hrefs = set()
    for error in errors:
        hrefs.update(error.get("hrefs") or [])
    return hrefs


def is_ready(doc, release):
    """Upgraded and well: at the release, active, heard from and without conditions."""
    return doc.get("version") == release and ven_online(doc) and ven_health(doc) == "healthy"


def laggard_line(doc, release):
    reasons = []
    if doc is None:
        return "a VEN that disappeared from the PCE"
    if doc.get("version") != release:
        reasons.append("version %s" % doc.get("version"))
    if doc.get("status") != "active":
        reasons.append("status %s" % doc.get("status"))
    elif not ven_online(doc):
        reasons.append("offline")
    conditions = [c["type"] for c in ven_conditions(doc) if c["type"]]
    if conditions:
        reasons.append("conditions %s" % ", ".join(conditions))
    reasons.append("last heartbeat %s" % (doc.get("last_heartbeat_at") or "never"))
    return "%s: %s" % (_described(doc), "; ".join(reasons))


def wait_for_release(reader, hrefs, release, timeout, poll_interval, sleep=time.sleep, clock=time.monotonic):
    """Poll until every VEN in hrefs is ready at release; return their last documents (href -> doc or None).

    Raises PceError naming the laggards when timeout seconds pass first.
    """
    deadline = clock() + timeout
    latest = {}
    waiting = list(hrefs)
    while True:
        still = []
        for href in waiting:
            doc = reader.by_href(href)
            latest[href] = doc
            if doc is None or not is_ready(doc, release):
                still.append(href)
        waiting = still
        if not waiting:
            return latest
        if clock() >= deadline:
            lines = [laggard_line(latest[href], release) for href in waiting]
            error = PceError(
                "%d of %d VEN(s) did not report release %s online and healthy within %s seconds: %s"
                % (len(waiting), len(hrefs), release, timeout, "; ".join(lines)),
                token="ven_upgrade_timeout",  # noqa: S106 - an error token, not a secret
            )
            error.latest = latest
            error.laggards = waiting
            raise error
        sleep(max(0.0, min(poll_interval, deadline - clock())))
