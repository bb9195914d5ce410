"""Service bindings: /orgs/{org}/service_bindings; contract in contract/service_bindings.json.

A binding ties a workload to an ACTIVE virtual service (a draft one is refused, as the SDK documents). POST takes
a list and answers 201 with a list in the same order: `{"href": ...}` for each binding made, `{"token",
"message"}` for each refused one — one bad binding does not stop the others (the SDK and brian1917/illumioapi
both read the answer that way). Bindings can't be changed, only deleted. Error tokens for refused items are the
lab's own (no public source names them): invalid_uri for a reference to nothing, service_binding_not_unique
for a workload already bound to that virtual service.
"""

from __future__ import annotations

import uuid

from starlette.routing import Route

from pcelab.contract import contract
from pcelab.errors import LabError, invalid, not_found
from pcelab.http import Call, endpoint, require_body
from pcelab.store import dumps

ORG = "/api/v2/orgs/{org_id:id}"
KIND = "service_bindings"
CONTRACT = contract(KIND)
MAX_BINDINGS = 1000


def _binding_or_404(call: Call) -> dict:
    doc = call.lab.store.doc(call.org_id, KIND, call.param("binding_id"))
    if doc is None:
        raise not_found(f"service binding /orgs/{call.org_id}/{KIND}/{call.param('binding_id')}")
    return doc


@endpoint
def list_bindings(call: Call):
    query = CONTRACT.check_query(call.query)

    def matches(doc: dict) -> bool:
        for name in ("virtual_service", "workload"):
            if name in query and (doc[name] or {}).get("href") != query[name]:
                return False
        return all(
            doc[name] == query[name] for name in ("external_data_set", "external_data_reference") if name in query
        )

    return call.collection(lambda: [dumps(doc) for doc in call.lab.store.docs(call.org_id, KIND) if matches(doc)])


@endpoint
def get_binding(call: Call):
    return _binding_or_404(call)


def _refusal(call: Call, body: dict, bound: set[tuple[str, str]]) -> LabError | None:
    try:
        fields = CONTRACT.check_create(body)
    except LabError as error:
        return error
    service_href, workload_href = fields["virtual_service"]["href"], (fields.get("workload") or {}).get("href")
    found = call.lab.policy_doc(call.org_id, service_href)
    if found is None or found[:2] != ("virtual_services", "active"):
        return invalid(f"virtual_service: {service_href} is not an active virtual service", "invalid_uri")
    if workload_href is None:
        return invalid("a binding names a workload (container workloads are not modelled by the lab)")
    workload_id = workload_href.rsplit("/", 1)[-1]
    if (
        not workload_href.startswith(f"/orgs/{call.org_id}/workloads/")
        or call.lab.workload(call.org_id, workload_id) is None
    ):
        return invalid(f"workload: {workload_href} is not an existing workload", "invalid_uri")
    if (service_href, workload_href) in bound:
        return invalid(f"{workload_href} is already bound to {service_href}", "service_binding_not_unique")
    return None


@endpoint
def create_bindings(call: Call):
    items = require_body(call, list)
    if not items or len(items) > MAX_BINDINGS:
        raise invalid(f"service bindings: send 1 to {MAX_BINDINGS} bindings")
    results = []
    with call.lab.transaction():
        bound = {
            (doc["virtual_service"]["href"], (doc["workload"] or {}).get("href"))
            for doc in call.lab.store.docs(call.org_id, KIND)
        }
        for item in items:
            refusal = _refusal(call, item, bound) if isinstance(item, dict) else invalid("a binding must be an object")
            if refusal is not None:
                results.append(refusal.body()[0])
                continue
            binding_id = str(uuid.uuid4())
            doc = CONTRACT.new_document(
                {
                    **item,
                    "href": f"/orgs/{call.org_id}/{KIND}/{binding_id}",
                    "virtual_service": {"href": item["virtual_service"]["href"]},
                    "workload": {"href": item["workload"]["href"]},
                }
            )
            call.lab.store.put(call.org_id, KIND, binding_id, doc)
            bound.add((doc["virtual_service"]["href"], doc["workload"]["href"]))
            call.event("service_binding.create", {"service_binding": {"href": doc["href"]}})
            results.append({"href": doc["href"]})
    return results, 201


@endpoint
def delete_binding(call: Call):
    with call.lab.transaction():
        doc = _binding_or_404(call)
        call.lab.store.remove(call.org_id, KIND, call.param("binding_id"))
        call.event("service_binding.delete", {"service_binding": {"href": doc["href"]}})
    return None, 204


ROUTES = [
    Route(f"{ORG}/{KIND}", list_bindings, methods=["GET"]),
    Route(f"{ORG}/{KIND}", create_bindings, methods=["POST"]),
    Route(f"{ORG}/{KIND}/{{binding_id}}", get_binding, methods=["GET"]),
    Route(f"{ORG}/{KIND}/{{binding_id}}", delete_binding, methods=["DELETE"]),
]
