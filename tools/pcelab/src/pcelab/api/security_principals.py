"""Security principals: /orgs/{org}/security_principals. Active Directory groups (or users) named by their
Windows SID, which user-based rules name in `consuming_security_principals`; contract in
contract/security_principals.json.

- POST needs `name` and `sid` (REST guide); the SID must have the Windows string form (`S-1-5-21-...`) and be
  unique among live principals; it can't be changed afterwards (brian1917/illumioapi updates send only name and
  description).
- `used_by_ruleset` is true while a draft or active rule names the principal; such a principal can't be deleted
  (object_in_use).
- DELETE marks the principal deleted: it leaves the listing, GET on its href answers it with `deleted: true`.
- Hrefs end in a UUID (/orgs/1/security_principals/<uuid>). The REST guide calls the path parameter `sid`, but the
  href is what GET, PUT and DELETE take, as for the other objects; the lab does not look principals up by SID in
  the path (filter the listing with `sid=` instead).
"""

from __future__ import annotations

import uuid

from starlette.routing import Route

from pcelab.contract import contract
from pcelab.errors import LabError, invalid, not_found
from pcelab.http import Call, endpoint, require_body
from pcelab.store import dumps

ORG = "/api/v2/orgs/{org_id:id}"
KIND = "security_principals"
CONTRACT = contract(KIND)
RULE_KINDS = ("rule_sets",)  # rules live inside their rule set's document


def _used_by_ruleset(call: Call, href: str) -> bool:
    return any(call.lab.store.referencing(call.org_id, RULE_KINDS, state, href) for state in ("draft", "active"))


def _answer(call: Call, doc: dict) -> dict:
    return {**doc, "used_by_ruleset": _used_by_ruleset(call, doc["href"])}


def _principal_or_404(call: Call) -> dict:
    doc = call.lab.store.doc(call.org_id, KIND, call.param("principal_id"))
    if doc is None:
        raise not_found(f"security principal /orgs/{call.org_id}/{KIND}/{call.param('principal_id')}")
    return doc


def live_principal(lab, org_id: int, href: str) -> dict | None:
    """The live security principal an href names, or None (for references from rules)."""
    prefix = f"/orgs/{org_id}/{KIND}/"
    if not isinstance(href, str) or not href.startswith(prefix):
        return None
    doc = lab.store.doc(org_id, KIND, href[len(prefix) :])
    return None if doc is None or doc["deleted"] else doc


@endpoint
def list_principals(call: Call):
    query = CONTRACT.check_query(call.query)

    def keep(doc: dict) -> bool:
        if "name" in query and query["name"].lower() not in doc["name"].lower():
            return False
        return "sid" not in query or doc["sid"] == query["sid"]

    def fetch() -> list[str]:
        return [dumps(_answer(call, doc)) for doc in call.lab.store.docs(call.org_id, KIND) if keep(doc)]

    return call.collection(fetch)


@endpoint
def get_principal(call: Call):
    return _answer(call, _principal_or_404(call))


@endpoint
def create_principal(call: Call):
    fields = CONTRACT.check_create(require_body(call))
    stamp = call.lab.stamp()
    with call.lab.transaction():
        if call.lab.store.find(call.org_id, KIND, sid=fields["sid"]):
            raise invalid(f"a security principal with sid {fields['sid']!r} already exists")
        principal_id = str(uuid.uuid4())
        doc = CONTRACT.new_document(
            {
                **fields,
                "href": f"/orgs/{call.org_id}/{KIND}/{principal_id}",
                "created_at": stamp,
                "updated_at": stamp,
                "created_by": {"href": call.user},
                "updated_by": {"href": call.user},
            }
        )
        call.lab.store.put(call.org_id, KIND, principal_id, doc)
        call.event("security_principal.create", {"security_principal": _brief(doc)})
    return doc, 201


@endpoint
def update_principal(call: Call):
    body = require_body(call)
    if "sid" in body:
        raise invalid("security_principal update: the sid of a security principal can't be changed")
    fields = CONTRACT.check_update(body)
    with call.lab.transaction():
        doc = _principal_or_404(call)
        if doc["deleted"]:
            raise invalid(f"security principal {doc['href']} is deleted", "already_deleted")
        changes = {name: {"before": doc[name], "after": value} for name, value in fields.items() if doc[name] != value}
        doc.update(fields, updated_at=call.lab.stamp(), updated_by={"href": call.user})
        call.lab.store.put(call.org_id, KIND, call.param("principal_id"), doc)
        call.event("security_principal.update", {"security_principal": _brief(doc)}, changes)
    return None, 204


@endpoint
def delete_principal(call: Call):
    with call.lab.transaction():
        doc = _principal_or_404(call)
        if doc["deleted"]:
            raise invalid(f"security principal {doc['href']} is already deleted", "already_deleted")
        if _used_by_ruleset(call, doc["href"]):
            message = f"security principal {doc['href']} is used by a rule and can't be deleted"
            raise LabError("object_in_use", message)
        doc.update(deleted=True, updated_at=call.lab.stamp(), updated_by={"href": call.user})
        call.lab.store.put(call.org_id, KIND, call.param("principal_id"), doc, deleted=True)
        call.event("security_principal.delete", {"security_principal": _brief(doc)})
    return None, 204


def _brief(doc: dict) -> dict:
    return {"href": doc["href"], "name": doc["name"], "sid": doc["sid"]}


ROUTES = [
    Route(f"{ORG}/{KIND}", list_principals, methods=["GET"]),
    Route(f"{ORG}/{KIND}", create_principal, methods=["POST"]),
    Route(f"{ORG}/{KIND}/{{principal_id}}", get_principal, methods=["GET"]),
    Route(f"{ORG}/{KIND}/{{principal_id}}", update_principal, methods=["PUT"]),
    Route(f"{ORG}/{KIND}/{{principal_id}}", delete_principal, methods=["DELETE"]),
]
