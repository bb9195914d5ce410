"""Container clusters and their container workload profiles; contracts in contract/container_clusters.json and
contract/container_workload_profiles.json (their `sources` say where each behaviour comes from).

- `/orgs/{org}/container_clusters`: GET (filter `name`, partial), POST (`name`, `description`; 201 with the
  cluster's `container_cluster_token`, shown this once: only its SHA-256 is kept), GET/PUT/DELETE one. The lab has
  no Kubelink, so a cluster stays as a real one before pairing: offline, no nodes, no manager, no versions.
- `/orgs/{org}/container_clusters/{uuid}/container_workload_profiles`: GET (filters per the Terraform provider),
  POST, GET/PUT/DELETE one. Every cluster gets its "Default Profile" (namespace null) when it is created; it can't
  be deleted. Deleting a cluster deletes its profiles.
- Profile labels come as `labels` (`[{key, assignment: {href}}]` or `[{key, restriction: [{href}, ...]}]`, 22.x+)
  or as the deprecated `assign_labels` (`[{href}]`), not both in one request; answers carry both, mirrored.
  Labels must be live labels of the item's key (406 `invalid_uri` for an href that names none); label assignments
  need a managed profile. Labels a profile uses can't be deleted and show as `usage.container_workload_profile`
  (`label_reference_check`, `label_usage`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid

from starlette.routing import Route

from pcelab import validate as v
from pcelab.contract import contract
from pcelab.errors import invalid, not_found
from pcelab.http import Call, endpoint, require_body
from pcelab.store import dumps

ORG = "/api/v2/orgs/{org_id:id}"
CLUSTERS = "container_clusters"
PROFILES = "container_workload_profiles"
# Per cluster, what the lab keeps besides the answer: {"token_sha256", "default_profile"} (never the token itself).
PRIVATE = "container_cluster_private"
CLUSTER = contract(CLUSTERS)
PROFILE = contract(PROFILES)
DEFAULT_PROFILE_NAME = "Default Profile"


# --- clusters ---------------------------------------------------------------------------------------------------
def _cluster_href(org_id: int, cluster_id: str) -> str:
    return f"/orgs/{org_id}/{CLUSTERS}/{cluster_id}"


def _cluster_or_404(call: Call) -> dict:
    doc = call.lab.store.doc(call.org_id, CLUSTERS, call.param("cluster_id"))
    if doc is None:
        raise not_found(f"container cluster {_cluster_href(call.org_id, call.param('cluster_id'))}")
    return doc


def _brief_cluster(doc: dict) -> dict:
    return {"href": doc["href"], "name": doc["name"]}


@endpoint
def list_clusters(call: Call):
    query = CLUSTER.check_query(call.query)
    name = query.get("name", "").lower()

    def fetch() -> list[str]:
        docs = call.lab.store.docs(call.org_id, CLUSTERS)
        return [dumps(doc) for doc in docs if name in (doc.get("name") or "").lower()]

    return call.collection(fetch)


@endpoint
def get_cluster(call: Call):
    return _cluster_or_404(call)


@endpoint
def create_cluster(call: Call):
    fields = CLUSTER.check_create(require_body(call))
    cluster_id = str(uuid.uuid4())
    token = f"{call.org_id}_{secrets.token_hex(32)}"
    doc = CLUSTER.new_document({**fields, "href": _cluster_href(call.org_id, cluster_id), "caps": ["write"]})
    with call.lab.transaction():
        call.lab.store.put(call.org_id, CLUSTERS, cluster_id, doc)
        default = _default_profile(call, doc["href"])
        _put_profile(call, default)
        private = {"token_sha256": hashlib.sha256(token.encode()).hexdigest(), "default_profile": default["href"]}
        call.lab.store.put(call.org_id, PRIVATE, cluster_id, private)
        call.event("container_cluster.create", {"container_cluster": _brief_cluster(doc)})
    return {**doc, "container_cluster_token": token}, 201


@endpoint
def update_cluster(call: Call):
    fields = CLUSTER.check_update(require_body(call))
    with call.lab.transaction():
        doc = _cluster_or_404(call)
        changes = {name: {"before": doc[name], "after": value} for name, value in fields.items() if doc[name] != value}
        doc.update(fields)
        call.lab.store.put(call.org_id, CLUSTERS, call.param("cluster_id"), doc)
        call.event("container_cluster.update", {"container_cluster": _brief_cluster(doc)}, changes)
    return None, 204


@endpoint
def delete_cluster(call: Call):
    with call.lab.transaction():
        doc = _cluster_or_404(call)
        for profile in _profiles_of(call, doc["href"]):
            call.lab.store.remove(call.org_id, PROFILES, _last(profile["href"]))
        call.lab.store.remove(call.org_id, PRIVATE, call.param("cluster_id"))
        call.lab.store.remove(call.org_id, CLUSTERS, call.param("cluster_id"))
        call.event("container_cluster.delete", {"container_cluster": _brief_cluster(doc)})
    return None, 204


# --- container workload profiles ----------------------------------------------------------------------------------
def _last(href: str) -> str:
    return href.rsplit("/", 1)[1]


def _profiles_of(call: Call, cluster_href: str) -> list[dict]:
    prefix = f"{cluster_href}/{PROFILES}/"
    return [doc for doc in call.lab.store.docs(call.org_id, PROFILES) if doc["href"].startswith(prefix)]


def _profile_or_404(call: Call) -> dict:
    cluster = _cluster_or_404(call)
    href = f"{cluster['href']}/{PROFILES}/{call.param('profile_id')}"
    doc = call.lab.store.doc(call.org_id, PROFILES, call.param("profile_id"))
    if doc is None or doc["href"] != href:
        raise not_found(f"container workload profile {href}")
    return doc


def _profile_document(fields: dict) -> dict:
    """Every field in contract order; name and description only while set (the PCE leaves them out otherwise)."""
    base = PROFILE.new_document(fields)
    return {
        name: base[name] if name in base else fields[name]
        for name in PROFILE.properties
        if name in base or fields.get(name) is not None
    }


def _default_profile(call: Call, cluster_href: str) -> dict:
    stamp = call.lab.stamp()
    return _profile_document(
        {
            "href": f"{cluster_href}/{PROFILES}/{uuid.uuid4()}",
            "name": DEFAULT_PROFILE_NAME,
            "namespace": None,
            "linked": False,
            "created_at": stamp,
            "created_by": {"href": call.user},
            "updated_at": stamp,
            "updated_by": {"href": call.user},
        }
    )


def _put_profile(call: Call, doc: dict) -> None:
    call.lab.store.put(call.org_id, PROFILES, _last(doc["href"]), doc)


def _brief_profile(doc: dict) -> dict:
    return {"href": doc["href"], "name": doc.get("name"), "namespace": doc["namespace"]}


def _is_default(call: Call, doc: dict) -> bool:
    private = call.lab.store.doc(call.org_id, PRIVATE, call.param("cluster_id")) or {}
    return private.get("default_profile") == doc["href"]


def _live_label(call: Call, href: str, where: str) -> dict:
    label = call.lab.label(call.org_id, href)
    if label is None:
        raise invalid(f"{where}: {href} is not an existing label", "invalid_uri")
    return label


def _label_settings(call: Call, body: dict) -> tuple[list, list] | None:
    """(assign_labels, labels) as answered, from a body's `assign_labels` or `labels`; None when it has neither."""
    if "assign_labels" in body and "labels" in body:
        raise invalid("give either labels or assign_labels (deprecated), not both")
    if "assign_labels" in body:
        items = []
        for index, ref in enumerate(body["assign_labels"]):
            label = _live_label(call, v.href_ref(f"assign_labels[{index}]", ref), f"assign_labels[{index}]")
            items.append({"key": label["key"], "assignment": {"href": label["href"], "value": label["value"]}})
        labels = _unique_keys(items, "assign_labels")
    elif "labels" in body:
        labels = _unique_keys([_label_item(call, index, item) for index, item in enumerate(body["labels"])], "labels")
    else:
        return None
    assigned = [{"href": item["assignment"]["href"]} for item in labels if "assignment" in item]
    return assigned, labels


def _label_item(call: Call, index: int, item: dict) -> dict:
    where, key = f"labels[{index}]", item["key"]
    restriction = item.get("restriction") or []
    if ("assignment" in item) == bool(restriction):
        raise invalid(f"{where}: give exactly one of assignment (a label) or restriction (a list of labels)")

    def checked(ref: dict, at: str) -> dict:
        label = _live_label(call, v.href_ref(at, ref), at)
        if label["key"] != key:
            raise invalid(f"{at}: label {label['href']} has key {label['key']!r}, not {key!r}")
        return {"href": label["href"], "value": label["value"]}

    if "assignment" in item:
        return {"key": key, "assignment": checked(item["assignment"], f"{where}.assignment")}
    allowed = [checked(ref, f"{where}.restriction[{n}]") for n, ref in enumerate(restriction)]
    if len({label["href"] for label in allowed}) != len(allowed):
        raise invalid(f"{where}.restriction lists the same label twice")
    return {"key": key, "restriction": allowed}


def _unique_keys(items: list[dict], where: str) -> list[dict]:
    keys = [item["key"] for item in items]
    for key in keys:
        if keys.count(key) > 1:
            raise invalid(f"{where}: more than one entry for label key {key!r}", "multiple_labels_with_same_key")
    return items


def _check_managed(doc: dict) -> None:
    if not doc["managed"] and doc["assign_labels"]:
        raise invalid("label assignments need a managed profile (managed: true); restrictions do not")


def _unique_namespace(call: Call, cluster_href: str, namespace: str | None, own_href: str | None = None) -> None:
    if namespace is None:
        return
    for doc in _profiles_of(call, cluster_href):
        if doc["namespace"] == namespace and doc["href"] != own_href:
            raise invalid(f"namespace {namespace!r} already has a container workload profile in this cluster")


def _matches(doc: dict, query: dict) -> bool:
    for name in ("name", "namespace"):
        if name in query and query[name].lower() not in (doc.get(name) or "").lower():
            return False
    for name in ("enforcement_mode", "visibility_level"):
        if name in query and doc[name] != query[name]:
            return False
    for name in ("managed", "linked"):
        if name in query and doc[name] != v.query_flag(query, name):
            return False
    if "assign_labels" in query:
        wanted = _href_list(query["assign_labels"])
        assigned = {ref["href"] for ref in doc["assign_labels"]}
        if not wanted <= assigned:
            return False
    return True


def _href_list(text: str) -> set[str]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid('query parameter assign_labels: a JSON list of label hrefs, e.g. ["/orgs/1/labels/7"]')
    return set(value)


@endpoint
def list_profiles(call: Call):
    query = PROFILE.check_query(call.query)
    cluster = _cluster_or_404(call)
    if "assign_labels" in query:
        _href_list(query["assign_labels"])  # a malformed filter is refused before any async job starts

    def fetch() -> list[str]:
        return [dumps(doc) for doc in _profiles_of(call, cluster["href"]) if _matches(doc, query)]

    return call.collection(fetch)


@endpoint
def get_profile(call: Call):
    return _profile_or_404(call)


@endpoint
def create_profile(call: Call):
    fields = PROFILE.check_create(require_body(call))
    stamp = call.lab.stamp()
    with call.lab.transaction():
        cluster = _cluster_or_404(call)
        _unique_namespace(call, cluster["href"], fields.get("namespace"))
        assigned, labels = _label_settings(call, fields) or ([], [])
        settings = {name: value for name, value in fields.items() if name not in ("assign_labels", "labels")}
        doc = _profile_document(
            {
                **settings,
                "href": f"{cluster['href']}/{PROFILES}/{uuid.uuid4()}",
                "assign_labels": assigned,
                "labels": labels,
                "linked": False,
                "created_at": stamp,
                "created_by": {"href": call.user},
                "updated_at": stamp,
                "updated_by": {"href": call.user},
            }
        )
        _check_managed(doc)
        _put_profile(call, doc)
        call.event("container_workload_profile.create", {"container_workload_profile": _brief_profile(doc)})
    return doc, 201


@endpoint
def update_profile(call: Call):
    body = dict(require_body(call))
    with call.lab.transaction():
        doc = _profile_or_404(call)
        # brian1917/illumioapi PUTs the profile it read, href included: the profile's own href is taken and ignored.
        if "href" in body and body.pop("href") != doc["href"]:
            raise invalid(f"href: a PUT on {doc['href']} can't name another object")
        if "namespace" in body:
            raise invalid("namespace: the namespace of a container workload profile can't be changed")
        fields = PROFILE.check_update(body)
        before = dict(doc)
        label_settings = _label_settings(call, fields)
        if label_settings is not None:
            doc["assign_labels"], doc["labels"] = label_settings
        settings = {name: value for name, value in fields.items() if name not in ("assign_labels", "labels")}
        doc = _profile_document({**doc, **settings, "updated_at": call.lab.stamp(), "updated_by": {"href": call.user}})
        _check_managed(doc)
        changes = {
            name: {"before": before.get(name), "after": doc.get(name)}
            for name in ("name", "description", "enforcement_mode", "visibility_level", "managed", "labels")
            if before.get(name) != doc.get(name)
        }
        _put_profile(call, doc)
        call.event("container_workload_profile.update", {"container_workload_profile": _brief_profile(doc)}, changes)
    return None, 204


@endpoint
def delete_profile(call: Call):
    with call.lab.transaction():
        doc = _profile_or_404(call)
        if _is_default(call, doc):
            raise invalid(
                f"the {DEFAULT_PROFILE_NAME} of a container cluster can't be deleted", "builtin_object_read_only"
            )
        call.lab.store.remove(call.org_id, PROFILES, call.param("profile_id"))
        call.event("container_workload_profile.delete", {"container_workload_profile": _brief_profile(doc)})
    return None, 204


# --- labels: what profiles use (app.build_app picks these up) --------------------------------------------------------
def _label_hrefs(doc: dict) -> set[str]:
    hrefs = {ref["href"] for ref in doc["assign_labels"]}
    for item in doc["labels"]:
        if "assignment" in item:
            hrefs.add(item["assignment"]["href"])
        hrefs.update(ref["href"] for ref in item.get("restriction", []))
    return hrefs


def label_reference_check(lab, org_id: int, href: str) -> str | None:
    """A label a container workload profile assigns or allows can't be deleted."""
    for doc in lab.store.docs(org_id, PROFILES):
        if href in _label_hrefs(doc):
            return f"container workload profile {doc.get('name') or doc['namespace'] or doc['href']}"
    return None


def label_usage(lab, org_id: int) -> dict[str, set[str]]:
    """`usage.container_workload_profile` of GET labels?usage=true."""
    return {"container_workload_profile": set().union(*map(_label_hrefs, lab.store.docs(org_id, PROFILES)))}


CLUSTER_PATH = f"{ORG}/{CLUSTERS}/{{cluster_id}}"
ROUTES = [
    Route(f"{ORG}/{CLUSTERS}", list_clusters, methods=["GET"]),
    Route(f"{ORG}/{CLUSTERS}", create_cluster, methods=["POST"]),
    Route(CLUSTER_PATH, get_cluster, methods=["GET"]),
    Route(CLUSTER_PATH, update_cluster, methods=["PUT"]),
    Route(CLUSTER_PATH, delete_cluster, methods=["DELETE"]),
    Route(f"{CLUSTER_PATH}/{PROFILES}", list_profiles, methods=["GET"]),
    Route(f"{CLUSTER_PATH}/{PROFILES}", create_profile, methods=["POST"]),
    Route(f"{CLUSTER_PATH}/{PROFILES}/{{profile_id}}", get_profile, methods=["GET"]),
    Route(f"{CLUSTER_PATH}/{PROFILES}/{{profile_id}}", update_profile, methods=["PUT"]),
    Route(f"{CLUSTER_PATH}/{PROFILES}/{{profile_id}}", delete_profile, methods=["DELETE"]),
]
