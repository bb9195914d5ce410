"""Virtual services: draft/active policy objects with labels, a service or their own ports, service addresses
(in-process TestClient), and the official SDK against a running lab."""

from __future__ import annotations

import json

import pytest
from conftest import ORG
from pcelab.contract import contract
from shapes import sample, shape_gaps

DRAFT = f"{ORG}/sec_policy/draft"
ACTIVE = f"{ORG}/sec_policy/active"
VS = f"{DRAFT}/virtual_services"
CONTRACT = contract("virtual_services")


def created(answer):
    assert answer.status_code == 201, answer.text
    return answer.json()


def refused(answer, token=None, status=406):
    assert answer.status_code == status, answer.text
    if token:
        assert answer.json()[0]["token"] == token, answer.text
    return answer.json()[0]["message"]


@pytest.fixture
def labels(client):
    def make(key, value):
        return created(client.post(f"{ORG}/labels", json={"key": key, "value": value}))

    return {"web": make("role", "R-WEB"), "db": make("role", "R-DB"), "hrm": make("app", "A-HRM")}


@pytest.fixture
def service(client):
    body = {
        "name": "S-HTTPS",
        "service_ports": [{"port": 443, "proto": 6}, {"port": 8000, "to_port": 8100, "proto": 6}],
    }
    return created(client.post(f"{DRAFT}/services", json=body))


def make_vs(client, name="VS-INTERNAL", **fields):
    body = {"name": name, "apply_to": "host_only", **fields}
    if "service" not in body and "service_ports" not in body:
        body["service_ports"] = [{"port": 1234, "proto": 6}]
    return created(client.post(VS, json=body))


def provision(client, *hrefs):
    body = {"update_description": "test"}
    if hrefs:
        subset: dict = {}
        for href in hrefs:
            subset.setdefault(href.split("/")[5], []).append({"href": href})
        body["change_subset"] = subset
    return client.post(f"{ORG}/sec_policy", json=body)


def test_a_virtual_service_has_the_shape_of_the_real_sample(client, labels):
    body = {
        "description": None,
        "service_ports": [{"port": 1234, "proto": 6}, {"port": 80, "proto": 17, "to_port": 443}],
        "service_addresses": [
            {"ip": "1.1.1.1", "port": 101},
            {"description": "test description", "fqdn": "*.illumio.com"},
        ],
        "labels": [labels["web"], {"href": labels["hrm"]["href"]}],  # whole objects or bare references
        "ip_overrides": ["1.2.3.4"],
    }
    vs = make_vs(client, **body)
    assert CONTRACT.answer_gaps(vs) == []
    assert shape_gaps(sample("virtual_services")[0], vs) == []
    assert vs["href"].startswith(f"{VS}/") and len(vs["href"].rsplit("/", 1)[1]) == 36  # a UUID, like the sample
    assert vs["update_type"] == "create" and vs["caps"] == ["write", "provision", "delete"]
    assert vs["pce_fqdn"] is None and vs["deleted_at"] is None and "service" not in vs
    assert vs["labels"] == [
        {"href": labels["web"]["href"], "key": "role", "value": "R-WEB"},
        {"href": labels["hrm"]["href"], "key": "app", "value": "A-HRM"},
    ]
    assert vs["service_addresses"] == body["service_addresses"] and vs["ip_overrides"] == ["1.2.3.4"]
    assert client.get(vs["href"]).json() == vs
    assert client.get(VS).json() == [vs]


def test_update_switches_between_service_and_ports_and_delete_of_a_new_draft_removes_it(client, labels, service):
    vs = make_vs(client, labels=[labels["web"]])
    assert client.put(vs["href"], json={"service": service, "apply_to": "internal_bridge_network"}).status_code == 204
    changed = client.get(vs["href"]).json()
    assert changed["service"] == {"href": service["href"]} and "service_ports" not in changed
    assert changed["apply_to"] == "internal_bridge_network" and changed["update_type"] == "create"
    assert CONTRACT.answer_gaps(changed) == []
    client.put(f"{ORG}/labels/{labels['web']['href'].rsplit('/', 1)[1]}", json={"value": "R-WEB2"})
    assert client.get(vs["href"]).json()["labels"][0]["value"] == "R-WEB2"  # labels are expanded when read
    assert client.put(vs["href"], json={"service_ports": [{"proto": 17, "port": 53}]}).status_code == 204
    changed = client.get(vs["href"]).json()
    assert changed["service_ports"] == [{"port": 53, "proto": 17}] and "service" not in changed
    events = [event["event_type"] for event in client.get(f"{ORG}/events").json()]
    assert {"virtual_service.create", "virtual_service.update"} <= set(events)
    assert client.delete(vs["href"]).status_code == 204
    refused(client.get(vs["href"]), "not_found", 404)
    assert client.get(VS).json() == []


def test_provisioning_copies_to_active_and_a_pending_delete_stays_listed(client, labels, service):
    vs = make_vs(client, service={"href": service["href"]}, labels=[labels["web"]])
    pending = client.get(f"{ORG}/sec_policy/pending").json()
    assert [item["href"] for item in pending["virtual_services"]] == [vs["href"]]
    message = refused(provision(client, vs["href"]), "provision_dependency_missing")
    assert service["href"] in message  # the service it names is not provisioned yet
    version = created(provision(client, vs["href"], service["href"]))
    assert version["object_counts"]["virtual_services"] == 1

    active_href = vs["href"].replace("/draft/", "/active/")
    active = client.get(active_href).json()
    assert active["service"] == {"href": service["href"].replace("/draft/", "/active/")}
    assert active["update_type"] is None and CONTRACT.answer_gaps(active) == []
    assert client.get(f"{ACTIVE}/virtual_services").json() == [active]
    assert client.get(vs["href"]).json()["update_type"] is None
    refused(client.put(active_href, json={"name": "x"}), status=405)
    refused(client.post(f"{ACTIVE}/virtual_services", json={"name": "x"}), status=405)

    assert client.put(vs["href"], json={"description": "changed"}).status_code == 204
    assert client.get(vs["href"]).json()["update_type"] == "update"
    assert client.get(active_href).json()["description"] is None  # active changes only when provisioned
    created(provision(client))
    assert client.get(active_href).json()["description"] == "changed"

    assert client.delete(vs["href"]).status_code == 204
    deleted = client.get(vs["href"]).json()
    assert deleted["update_type"] == "delete" and deleted["deleted_at"] and deleted["deleted_by"]
    refused(client.delete(vs["href"]), "already_deleted")
    refused(client.put(vs["href"], json={"name": "again"}), "already_deleted")
    created(provision(client, vs["href"]))
    refused(client.get(vs["href"]), status=404)
    refused(client.get(active_href), status=404)


def test_listing_filters(client, labels, service):
    one = make_vs(
        client,
        "VS-Web-One",
        labels=[labels["web"], labels["hrm"]],
        service_addresses=[{"fqdn": "web.example.com"}],
        external_data_set="cmdb",
        external_data_reference="1",
    )
    two = make_vs(client, "VS-DB-Two", labels=[labels["db"]], service={"href": service["href"]}, description="database")
    three = make_vs(
        client,
        "VS-Three",
        service_ports=[{"proto": 17, "port": 53}],
        service_addresses=[{"ip": "10.0.0.9", "port": 53}],
    )

    def names(**params):
        answer = client.get(VS, params=params)
        assert answer.status_code == 200, answer.text
        return sorted(item["name"] for item in answer.json())

    assert names(name="vs-") == ["VS-DB-Two", "VS-Three", "VS-Web-One"]
    assert names(name="web") == ["VS-Web-One"]
    assert names(description="DATA") == ["VS-DB-Two"]
    assert names(external_data_set="cmdb", external_data_reference="1") == ["VS-Web-One"]
    web, hrm, db = (labels[name]["href"] for name in ("web", "hrm", "db"))
    assert names(labels=json.dumps([[web, hrm]])) == ["VS-Web-One"]
    assert names(labels=json.dumps([[web, db]])) == []
    assert names(labels=json.dumps([[hrm], [db]])) == ["VS-DB-Two", "VS-Web-One"]
    assert names(service=service["href"]) == ["VS-DB-Two"]
    assert names(**{"service_address.fqdn": "example"}) == ["VS-Web-One"]
    assert names(**{"service_address.ip": "10.0.0"}) == ["VS-Three"]
    assert names(**{"service_ports.proto": "17"}) == ["VS-Three"]
    assert names(**{"service_ports.port": "8050"}) == ["VS-DB-Two"]  # inside the service's 8000-8100
    assert names(**{"service_ports.port": "1234"}) == ["VS-Web-One"]
    refused(client.get(VS, params={"service_ports.proto": "1"}))
    refused(client.get(VS, params={"labels": "role=web"}))
    assert {one["href"], two["href"], three["href"]} == {item["href"] for item in client.get(VS).json()}


def test_labels_used_by_virtual_services_count_as_usage_and_cannot_be_deleted(client, labels):
    vs = make_vs(client, labels=[labels["web"]])
    usage = client.get(labels["web"]["href"], params={"usage": "true"}).json()["usage"]
    assert usage["virtual_service"] is True and usage["ruleset"] is False
    assert client.get(labels["db"]["href"], params={"usage": "true"}).json()["usage"]["virtual_service"] is False
    refused(client.delete(labels["web"]["href"]), "label_in_use")
    created(provision(client, vs["href"]))
    client.put(vs["href"], json={"labels": []})
    refused(client.delete(labels["web"]["href"]), "label_in_use")  # the active copy still uses it
    created(provision(client, vs["href"]))
    assert client.get(labels["web"]["href"], params={"usage": "1"}).json()["usage"]["virtual_service"] is False
    assert client.delete(labels["web"]["href"]).status_code == 204


def test_rules_take_virtual_services_as_actors(client, labels, service):
    vs = make_vs(client)
    rule_set = created(client.post(f"{DRAFT}/rule_sets", json={"name": "RS", "scopes": [[]]}))
    rule = created(
        client.post(
            f"{rule_set['href']}/sec_rules",
            json={
                "providers": [{"virtual_service": {"href": vs["href"]}}],
                "consumers": [{"actors": "ams"}],
                "ingress_services": [],
                "resolve_labels_as": {"providers": ["virtual_services"], "consumers": ["workloads"]},
            },
        )
    )
    assert rule["providers"] == [{"virtual_service": {"href": vs["href"]}}]
    refused(client.delete(vs["href"]), "object_in_use")
    refused(provision(client, rule_set["href"]), "provision_dependency_missing")
    created(provision(client, rule_set["href"], vs["href"]))
    bad = {"providers": [{"virtual_service": {"href": f"{VS}/nope"}}], "consumers": [{"actors": "ams"}]}
    refused(client.post(f"{rule_set['href']}/sec_rules", json={**bad, "ingress_services": []}), "invalid_uri")
    # A service a virtual service names can't be deleted either.
    make_vs(client, "VS-Svc", service=service)
    refused(client.delete(service["href"]), "object_in_use")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "service_ports": [{"port": 1, "proto": 6}]}, "apply_to is required"),
        ({"apply_to": "host_only", "service_ports": [{"port": 1, "proto": 6}]}, "name is required"),
        ({"name": "x", "apply_to": "host_only"}, "service or service_ports is required"),
        ({"name": "x", "apply_to": "everywhere", "service_ports": [{"port": 1, "proto": 6}]}, "apply_to"),
        ({"name": "", "apply_to": "host_only", "service_ports": [{"port": 1, "proto": 6}]}, "name"),
        ({"name": "x", "apply_to": "host_only", "service_ports": []}, "service_ports"),
        ({"name": "x", "apply_to": "host_only", "service_ports": [{"port": 1, "proto": 1}]}, "proto"),
        ({"name": "x", "apply_to": "host_only", "service_ports": [{"port": 9, "to_port": 8, "proto": 6}]}, "to_port"),
        ({"name": "x", "apply_to": "host_only", "service_ports": [{"to_port": 8, "proto": 6}]}, "to_port needs port"),
        ({"name": "x", "apply_to": "host_only", "service": {"href": "/orgs/1/sec_policy/draft/services/99"}}, "99"),
        ({"name": "x", "apply_to": "host_only", "service": {"name": "S"}}, "'href' is a required property"),
        ({"name": "x", "apply_to": "host_only", "service_ports": [{"proto": 6}], "ip_overrides": ["10.0.0.300"]}, "ip"),
        (
            {
                "name": "x",
                "apply_to": "host_only",
                "service_ports": [{"proto": 6}],
                "labels": [{"href": "/orgs/1/labels/99"}],
            },
            "label",
        ),
        ({"name": "x", "apply_to": "host_only", "service_ports": [{"proto": 6}], "href": "/x"}, "href"),
        ({"name": "x", "apply_to": "host_only", "service_ports": [{"proto": 6}], "pce_fqdn": "pce"}, "pce_fqdn"),
        ({"name": "x", "apply_to": "host_only", "service_ports": [{"proto": 6}], "caps": []}, "caps"),
        ({"name": "x", "apply_to": "host_only", "service_ports": [{"proto": 6}], "color": "red"}, "color"),
    ],
)
def test_invalid_virtual_services_are_406_naming_the_field(client, body, message):
    assert message in refused(client.post(VS, json=body))


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ({"ip": "1.1.1.1"}, "either a port or a network"),
        ({"ip": "1.1.1.1", "port": 1, "network": {"href": "/orgs/1/networks/x"}}, "either a port or a network"),
        ({"ip": "1.1.1.1", "fqdn": "a.example.com", "port": 1}, "exactly one of fqdn and ip"),
        ({"port": 80}, "exactly one of fqdn and ip"),
        ({"ip": "nope", "port": 1}, "not a valid IP address"),
        ({"ip": "1.1.1.1", "port": 1, "description": "d"}, "description goes with an fqdn"),
        ({"ip": "1.1.1.1", "network": {"href": "/orgs/1/labels/1"}}, "not a network href"),
        ({"fqdn": "has space.example.com"}, "does not match"),
        ({"fqdn": "a.example.com", "port": 70000}, "70000"),
    ],
)
def test_invalid_service_addresses_are_406(client, address, message):
    body = {"name": "x", "apply_to": "host_only", "service_ports": [{"proto": 6}], "service_addresses": [address]}
    assert message in refused(client.post(VS, json=body))


def test_a_network_address_is_kept_and_labels_are_one_per_key(client, labels):
    network = {"ip": "192.168.1.10", "network": {"href": "/orgs/1/networks/5d5c06b6-0000-4000-8000-000000000001"}}
    vs = make_vs(client, service_addresses=[network])
    assert vs["service_addresses"] == [network]
    body = {"name": "two", "apply_to": "host_only", "service_ports": [{"proto": 6}]}
    refused(client.post(VS, json={**body, "labels": [labels["web"], labels["db"]]}), "multiple_labels_with_same_key")
    refused(client.post(VS, json={**body, "name": vs["name"]}), "name_must_be_unique")
    both = {**body, "service": {"href": f"{DRAFT}/services/1"}}
    assert "not both" in refused(client.post(VS, json=both))


def test_unknown_virtual_services_are_404(client):
    missing = f"{VS}/5d5c06b6-0000-4000-8000-00000000dead"
    refused(client.get(missing), "not_found", 404)
    refused(client.put(missing, json={"name": "x"}), "not_found", 404)
    refused(client.delete(missing), "not_found", 404)
    refused(client.get(missing.replace("/draft/", "/active/")), "not_found", 404)
    refused(client.get("/orgs/2/sec_policy/draft/virtual_services"), "not_found", 404)


# --- the official SDK (illumio 1.1.3) against a running lab -----------------------------------------------
def test_the_sdk_creates_provisions_and_reads_virtual_services(pce):
    import illumio

    role = pce.labels.create(illumio.Label(key="role", value="R-SDK-VS"))
    vs = pce.virtual_services.create(
        illumio.VirtualService(
            name="VS-SDK",
            apply_to=illumio.ApplyTo.HOST_ONLY,
            service_ports=[illumio.ServicePort(port=443, proto="tcp")],
            service_addresses=[illumio.ServiceAddress(fqdn="sdk.example.com", description="sdk")],
            labels=[role],
        )
    )
    assert isinstance(vs, illumio.VirtualService) and vs.href.startswith("/orgs/1/sec_policy/draft/virtual_services/")
    assert vs.apply_to == "host_only" and vs.service_ports[0].port == 443 and vs.labels[0].href == role.href
    assert pce.virtual_services.get_by_reference(vs.href).name == "VS-SDK"
    assert pce.virtual_services.get_by_name("VS-SDK").href == vs.href
    pce.virtual_services.update(vs.href, {"description": "from the SDK"})
    assert [found.description for found in pce.virtual_services.get(params={"name": "VS-SDK"})] == ["from the SDK"]

    version = pce.provision_policy_changes(change_description="VS from the SDK", hrefs=[vs.href])
    assert version.object_counts.virtual_services == 1
    active = pce.virtual_services.get(policy_version="active", params={"name": "VS-SDK"})
    assert [found.href for found in active] == [illumio.convert_draft_href_to_active(vs.href)]
    pce.virtual_services.delete(vs.href)
    assert pce.virtual_services.get_by_reference(vs.href).update_type == "delete"  # pending until provisioned
