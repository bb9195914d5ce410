"""The official Illumio Python SDK (illumio 1.1.3, unchanged) against a running lab, TLS verified with the lab CA.

The SDK is an independent client: what it sends and expects is what a real PCE takes and answers. Shapes are
compared with the real payloads in pce_samples/ (the SDK's own recorded test data) by one helper,
`shapes.shape_gaps`. What the SDK still cannot do against the lab is marked `xfail(strict=True)` with the gap
named, so that closing a gap turns the test into an unexpected pass that must be unmarked.
"""

from __future__ import annotations

import uuid

import pytest
from conftest import connect_sdk
from pcelab.contract import contract
from shapes import sample, shape_gaps
from ven_helpers import pair_ven

illumio = pytest.importorskip("illumio", reason="the official SDK (requirements/dev.in) is not installed")

from illumio import (  # noqa: E402 - after the import check
    AMS,
    ApplyTo,
    EnforcementBoundary,
    IllumioApiException,
    IPList,
    IPRange,
    Label,
    LabelGroup,
    LabelSet,
    PairingProfile,
    PortOverride,
    Rule,
    RuleSet,
    Service,
    ServiceBinding,
    ServicePort,
    TrafficQuery,
    VirtualService,
    Workload,
)
from illumio.util import convert_draft_href_to_active  # noqa: E402 - after the import check


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_check_connection(lab, pce):
    assert pce.check_connection() is True
    pce.must_connect()
    assert connect_sdk(lab, org_id=2).check_connection() is False  # the lab serves org 1 only


def test_tls_is_verified(lab, pce):
    untrusting = connect_sdk(lab)
    untrusting.set_tls_settings(verify=True)  # the system CAs do not know the lab CA
    assert untrusting.check_connection() is False


def test_labels_create_get_update_delete(pce):
    value = unique("R-Web")
    label = pce.labels.create(Label(key="role", value=value, external_data_set="sdk", external_data_reference=value))
    assert label.href.startswith("/orgs/1/labels/") and label.value == value
    assert pce.labels.get_by_reference(label.href).value == value
    assert [found.href for found in pce.labels.get(params={"key": "role", "value": value})] == [label.href]
    assert label.href in {found.href for found in pce.labels.get_all()}  # max_results=0, then the total
    assert label.href in {found.href for found in pce.labels.get_async(params={"value": value})}
    pce.labels.update(label.href, {"value": f"{value}-new"})
    assert pce.labels.get_by_reference(label).value == f"{value}-new"
    pce.labels.delete(label)
    assert pce.labels.get_by_reference(label).deleted is True
    assert label.href not in {found.href for found in pce.labels.get_all()}


def test_label_usage_decodes(pce):
    used = pce.labels.create({"key": "role", "value": unique("R-Used")})
    pce.workloads.create(Workload(name=unique("wl"), labels=[used]))
    found = pce.labels.get(params={"usage": True, "value": used.value})
    assert found[0].usage.workload is True and found[0].usage.label_group is False
    assert pce.labels.get(params={"value": used.value})[0].usage is None


def test_label_groups_create_get_update_delete(pce):
    web = pce.labels.create({"key": "role", "value": unique("R-Web")})
    db = pce.labels.create({"key": "role", "value": unique("R-DB")})
    group = pce.label_groups.create(LabelGroup(name=unique("LG"), key="role", labels=[web]))
    assert [ref.href for ref in group.labels] == [web.href]
    pce.label_groups.update(group.href, LabelGroup(labels=[web, db]))
    assert {ref.href for ref in pce.label_groups.get_by_reference(group.href).labels} == {web.href, db.href}
    assert pce.label_groups.get_by_name(group.name).href == group.href
    pce.label_groups.delete(group.href)
    assert group.href not in {found.href for found in pce.label_groups.get_all()}


def test_ip_lists_create_get_update_delete(pce):
    ip_list = pce.ip_lists.create(IPList(name=unique("IPL"), ip_ranges=[IPRange(from_ip="10.0.0.0/8")]))
    assert ip_list.ip_ranges[0].from_ip == "10.0.0.0/8"
    pce.ip_lists.update(ip_list.href, {"ip_ranges": [{"from_ip": "192.168.0.0/16", "exclusion": False}]})
    assert pce.ip_lists.get_by_reference(ip_list.href).ip_ranges[0].from_ip == "192.168.0.0/16"
    assert pce.get_default_ip_list().name == "Any (0.0.0.0/0 and ::/0)"
    pce.ip_lists.delete(ip_list.href)
    assert ip_list.href not in {found.href for found in pce.ip_lists.get()}


def test_services_create_get_update_delete(pce):
    service = pce.services.create(Service(name=unique("S-HTTP"), service_ports=[ServicePort(port=80, proto="tcp")]))
    assert (service.service_ports[0].port, service.service_ports[0].proto) == (80, 6)
    pce.services.update(service.href, Service(service_ports=[ServicePort(port=8080, to_port=8090, proto="tcp")]))
    changed = pce.services.get_by_reference(service.href).service_ports[0]
    assert (changed.port, changed.to_port) == (8080, 8090)
    assert pce.get_default_service().name == "All Services"
    pce.services.delete(service)
    assert service.href not in {found.href for found in pce.services.get()}


@pytest.fixture
def ring_fence(pce):
    """A rule set scoped to an app label, with one rule whose ingress service is a whole Service object."""
    role = pce.labels.create({"key": "role", "value": unique("R-Web")})
    app = pce.labels.create({"key": "app", "value": unique("A-Shop")})
    service = pce.services.create(Service(name=unique("S-HTTPS"), service_ports=[ServicePort(port=443, proto=6)]))
    rule_set = pce.rule_sets.create(RuleSet(name=unique("RS"), scopes=[LabelSet(labels=[app])]))
    rule = pce.rules.create(
        Rule.build(providers=[role], consumers=[AMS], ingress_services=[service], unscoped_consumers=False),
        parent=rule_set,
    )
    return {"role": role, "app": app, "service": service, "rule_set": rule_set, "rule": rule}


def test_rule_with_a_whole_service_object_and_provisioning(pce, ring_fence):
    rule, service, rule_set = ring_fence["rule"], ring_fence["service"], ring_fence["rule_set"]
    assert [found.href for found in rule.ingress_services] == [service.href]
    assert rule.providers[0].label.href == ring_fence["role"].href and rule.consumers[0].actors == "ams"
    assert [found.href for found in pce.rules.get(parent=rule_set)] == [rule.href]
    services = [*rule.ingress_services, {"port": 80, "proto": 6}]  # as the SDK's own integration test updates
    pce.rules.update(rule, {"ingress_services": services})
    assert len(pce.rules.get_by_reference(rule).ingress_services) == 2
    version = pce.provision_policy_changes("SDK conformance", [service.href, rule_set.href])
    assert version.version >= 1 and version.object_counts.rule_sets >= 1
    active = pce.rule_sets.get_by_reference(rule_set.href.replace("/draft/", "/active/"))
    assert active.update_type is None and len(active.rules) == 1
    assert active.rules[0].ingress_services[0].href == service.href.replace("/draft/", "/active/")
    assert rule_set.href.replace("/draft/", "/active/") in {found.href for found in pce.rule_sets.get("active")}


def test_rule_naming_the_default_ip_list_as_the_sdk_documents(pce, ring_fence):
    any_ip_list = pce.get_default_ip_list()
    rule = pce.rules.create(
        Rule.build(
            providers=[ring_fence["role"]], consumers=[any_ip_list], ingress_services=[{"port": 80, "proto": 6}]
        ),
        parent=ring_fence["rule_set"],
    )
    # The active href the SDK sent names the draft object in a draft rule (see policy_model.live_draft).
    assert rule.consumers[0].ip_list.href == "/orgs/1/sec_policy/draft/ip_lists/1"


def test_enforcement_boundary_as_the_sdk_documents(pce, ring_fence):
    boundary = pce.enforcement_boundaries.create(
        EnforcementBoundary.build(
            name=unique("EB"),
            providers=[ring_fence["role"]],
            consumers=[pce.get_default_ip_list()],
            ingress_services=[ring_fence["service"], {"port": 22, "proto": 6}],
        )
    )
    assert boundary.href.startswith("/orgs/1/sec_policy/draft/enforcement_boundaries/")
    assert pce.enforcement_boundaries.get_by_reference(boundary.href).name == boundary.name
    assert boundary.href in {found.href for found in pce.enforcement_boundaries.get(params={"name": boundary.name})}
    pce.enforcement_boundaries.update(boundary.href, {"name": f"{boundary.name}-new"})
    pce.provision_policy_changes("SDK boundary", [boundary.href, ring_fence["service"].href])
    active = pce.enforcement_boundaries.get_by_reference(boundary.href.replace("/draft/", "/active/"))
    assert active.name == f"{boundary.name}-new"
    pce.enforcement_boundaries.delete(boundary.href)


def test_virtual_service_provisioned_and_bound_as_the_sdk_documents(pce):
    workload = pce.workloads.create(
        Workload(name=unique("haproxy"), hostname=unique("haproxy"), public_ip="10.0.14.201")
    )
    virtual_service = pce.virtual_services.create(
        VirtualService(name=unique("VS-HAProxy"), apply_to=ApplyTo.HOST_ONLY, service_ports=[{"port": 443, "proto": 6}])
    )
    pce.provision_policy_changes("Create HAProxy virtual service", [virtual_service.href])
    virtual_service.href = convert_draft_href_to_active(virtual_service.href)
    binding = ServiceBinding(
        virtual_service=virtual_service,
        workload=workload,
        port_overrides=[PortOverride(port=443, new_port=8443, proto=6)],
    )
    made = pce.service_bindings.create([binding])
    assert made["errors"] == [] and len(made["service_bindings"]) == 1
    found = pce.service_bindings.get_by_reference(made["service_bindings"][0].href)
    assert found.workload.href == workload.href and found.port_overrides[0].new_port == 8443
    again = pce.service_bindings.create([binding])  # the same workload twice: refused in place, nothing made
    assert again["service_bindings"] == [] and again["errors"][0]["token"] == "service_binding_not_unique"
    pce.service_bindings.delete(found.href)


def test_workloads_in_bulk_and_async(pce):
    tag = unique("sdk-bulk")
    wanted = [
        Workload(name=f"{tag}-1", hostname=f"{tag}-1", external_data_set=tag, external_data_reference="1"),
        {"name": f"{tag}-2", "hostname": f"{tag}-2", "external_data_set": tag, "external_data_reference": "2"},
    ]
    results = pce.workloads.bulk_create(wanted)
    assert [result["errors"] for result in results] == [[], []]
    hrefs = [result["href"] for result in results]
    assert {found.href for found in pce.workloads.get(params={"external_data_set": tag})} == set(hrefs)
    updates = [{"href": href, "enforcement_mode": "selective"} for href in hrefs]
    assert all(not result["errors"] for result in pce.workloads.bulk_update(updates))
    found = pce.workloads.get_async(params={"external_data_set": tag})
    assert {(item.href, item.enforcement_mode) for item in found} == {(href, "selective") for href in hrefs}
    assert set(hrefs) <= {item.href for item in pce.workloads.get_all()}
    assert all(not result["errors"] for result in pce.workloads.bulk_delete(hrefs))
    assert pce.workloads.get(params={"external_data_set": tag}) == []
    deleted = pce.workloads.get(params={"external_data_set": tag, "include_deleted": True})
    assert {(item.href, item.deleted) for item in deleted} == {(href, True) for href in hrefs}


def test_events_decode(pce):
    pce.labels.create({"key": "loc", "value": unique("L-Event")})
    events = pce.events.get(params={"max_results": 20})
    assert events and all(event.href.startswith("/orgs/1/events/") for event in events)
    assert "label.create" in {event.event_type for event in events}
    assert {change.change_type for event in events for change in event.resource_changes} <= {
        "create",
        "update",
        "delete",
    }


def test_pairing_profile_and_key(pce):
    role = pce.labels.create({"key": "role", "value": unique("R-Paired")})
    profile = pce.pairing_profiles.create(
        PairingProfile(
            name=unique("PP"),
            enabled=True,
            enforcement_mode="visibility_only",
            visibility_level="flow_summary",
            labels=[role],
            allowed_uses_per_key=5,
            external_data_set="sdk",
            external_data_reference="pp-1",
        )
    )
    assert (profile.external_data_set, profile.external_data_reference) == ("sdk", "pp-1")
    assert profile.allowed_uses_per_key == "5" and profile.labels[0].href == role.href
    key = pce.generate_pairing_key(profile.href)
    assert len(key) == 82 and int(key, 16) >= 0
    pce.pairing_profiles.update(profile.href, {"enabled": False})
    assert pce.pairing_profiles.get_by_reference(profile.href).enabled is False


def test_vens_and_managed_workloads_decode(lab, pce):
    pair_ven(lab, unique("sdk-ven"))
    vens = pce.vens.get()
    assert vens and all(ven.href.startswith("/orgs/1/vens/") for ven in vens)
    managed = pce.workloads.get(params={"managed": True})
    assert managed and all(item.ven is not None for item in managed)
    assert {item.href.rsplit("/", 1)[1] for item in managed} <= {ven.href.rsplit("/", 1)[1] for ven in vens}


def test_traffic_flows_async(lab, pce):
    with lab.session() as api:
        upload = api.post(
            "/orgs/1/agents/bulk_traffic_flows",
            data="10.9.0.1,10.9.0.2,5432,tcp,3\n",
            headers={"Content-Type": "text/csv", "X-Bulk-Traffic-Load-CSV-Version": "1"},
        )
    assert upload.status_code == 200, upload.text
    query = TrafficQuery.build(
        start_date="2000-01-01T00:00:00Z",
        end_date="2100-01-01T00:00:00Z",
        include_services=[{"port": 5432, "proto": "tcp"}],
        policy_decisions=["allowed", "potentially_blocked", "blocked", "unknown"],
    )
    flows = pce.get_traffic_flows_async(unique("sdk-query"), query)
    assert [(flow.src.ip, flow.dst.ip, flow.service.port, flow.num_connections) for flow in flows] == [
        ("10.9.0.1", "10.9.0.2", 5432, 3)
    ]


def test_the_sdk_reports_the_labs_refusals(pce):
    with pytest.raises(IllumioApiException, match="input_validation_error"):
        pce.labels.create({"key": "role"})


# --- shapes compared with pce_samples/ ------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded(lab):
    """One object of each sample type, made through the API like the samples' objects, as raw JSON."""
    with lab.session() as api:
        org, draft = "/orgs/1", "/orgs/1/sec_policy/draft"

        def made(path, body):
            answer = api.post(path, json=body)
            assert answer.status_code == 201, answer.text
            return answer.json()

        role = made(f"{org}/labels", {"key": "role", "value": unique("R-Shape")})
        app = made(f"{org}/labels", {"key": "app", "value": unique("A-Shape")})
        made(f"{draft}/label_groups", {"name": unique("LG-Shape"), "key": "role", "labels": [{"href": role["href"]}]})
        ip_list = made(f"{draft}/ip_lists", {"name": unique("IPL"), "ip_ranges": [{"from_ip": "10.0.0.0/8"}]})
        made(f"{draft}/services", {"name": unique("S"), "service_ports": [{"port": 443, "proto": 6}]})
        rule_set = made(f"{draft}/rule_sets", {"name": unique("RS"), "scopes": [[{"label": {"href": app["href"]}}]]})
        rule = made(
            f"{rule_set['href']}/sec_rules",
            {
                "providers": [{"label": {"href": role["href"]}}],
                "consumers": [{"actors": "ams"}],
                "ingress_services": [{"port": 1234, "proto": 6}],
            },
        )
        profile = made(f"{org}/pairing_profiles", {"name": unique("PP"), "labels": [{"href": role["href"]}]})
        key = made(f"{profile['href']}/pairing_key", {})
        nic = {"name": "eth0", "address": "10.6.0.9", "cidr_block": 24}
        ven = pair_ven(lab, unique("shape-ven"), interfaces=[nic])
        uuid_of_ven = ven["ven_href"].rsplit("/", 1)[1]
        for address in ("10.7.0.1", "10.7.0.2"):  # the samples' flows are between workloads
            host = {"name": unique("flow"), "hostname": unique("flow"), "labels": [{"href": role["href"]}]}
            made(f"{org}/workloads", {**host, "interfaces": [{"name": "eth0", "address": address}]})
        flows = "10.7.0.1,10.7.0.2,1234,6\n"
        api.post(f"{org}/agents/bulk_traffic_flows", data=flows, headers={"Content-Type": "text/csv"})
        traffic = _traffic_rows(api, org)
        cluster = made(f"{org}/container_clusters", {"name": unique("CC")})
        virtual_service = made(
            f"{draft}/virtual_services",
            {"name": unique("VS"), "apply_to": "host_only", "service_ports": [{"port": 443, "proto": 6}]},
        )
        return {
            "workloads": api.get(f"{org}/workloads/{uuid_of_ven}").json(),
            "vens": api.get(ven["ven_href"]).json(),
            "rule_sets": api.get(rule_set["href"]).json(),
            "rules": api.get(rule["href"]).json(),
            "label_groups": api.get(f"{draft}/label_groups").json()[0],
            "ip_lists": api.get(ip_list["href"]).json(),
            "services": api.get(f"{draft}/services", params={"name": "S-"}).json()[0],
            "pairing_profiles": api.get(profile["href"]).json(),
            "pairing_key": key,
            "events": next(e for e in api.get(f"{org}/events").json() if e["event_type"] == "sec_rule.create"),
            "traffic_query_response": traffic[0],
            "virtual_services": api.get(virtual_service["href"]).json(),
            "container_clusters": api.get(cluster["href"]).json(),
        }


def _traffic_rows(api, org: str) -> list[dict]:
    import time

    body = {
        "start_date": "2000-01-01T00:00:00Z",
        "end_date": "2100-01-01T00:00:00Z",
        "sources": {"include": [], "exclude": []},
        "destinations": {"include": [], "exclude": []},
        "services": {"include": [{"port": 1234, "proto": 6}], "exclude": []},
        "policy_decisions": [],
        "max_results": 10,
        "query_name": "shape",
    }
    query = api.post(f"{org}/traffic_flows/async_queries", json=body).json()
    for _ in range(200):
        status = api.get(query["href"]).json()
        if status["status"] == "completed":
            return api.get(f"{query['href']}/download").json()
        time.sleep(0.05)
    raise AssertionError("the traffic query did not complete")


def _sample_for(name: str, answer):
    """The sample object to compare with: the one of the same kind (events: same type) where the file has several."""
    found = sample(name)
    if name == "events":
        return next(event for event in found if event["event_type"] == answer["event_type"])
    return found[0] if isinstance(found, list) else found


SHAPES = [
    "vens",
    "rule_sets",
    "rules",
    "label_groups",
    "ip_lists",
    "services",
    "pairing_profiles",
    "pairing_key",
    "traffic_query_response",
    "workloads",
    "events",
    "virtual_services",
    "container_clusters",
]


@pytest.mark.parametrize("name", SHAPES)
def test_answers_have_the_shape_of_the_pce_samples(seeded, name):
    answer = seeded[name]
    assert isinstance(answer, dict), f"the lab answered {answer!r}"
    assert shape_gaps(_sample_for(name, answer), answer) == []


CONTRACTED = [
    "vens",
    "rule_sets",
    "rules",
    "label_groups",
    "ip_lists",
    "services",
    "pairing_profiles",
    "events",
    "workloads",
]


@pytest.mark.parametrize("name", CONTRACTED)
def test_answers_keep_the_labs_contract(seeded, name):
    """Every field the contract names and nothing else, each of its type (pcelab/contract/<name>.json)."""
    assert contract(name).answer_gaps(seeded[name]) == []
