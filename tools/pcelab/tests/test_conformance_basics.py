"""Answers clients we did not write rely on (in-process): workload settings, product version, counting with
max_results=0, label usage, deleted workloads on request, references sent as whole objects, external data
fields, event change types. The public source of each behaviour is named where the lab implements it."""

from __future__ import annotations

import pytest
from conftest import ORG
from pcelab.label_usage import FIELDS as USAGE_FIELDS

DRAFT = f"{ORG}/sec_policy/draft"


def created(answer):
    assert answer.status_code == 201, answer.text
    return answer.json()


def refused(answer, token="input_validation_error", status=406):  # noqa: S107 - an error token, not a secret
    assert answer.status_code == status, answer.text
    assert answer.json()[0]["token"] == token, answer.text
    return answer.json()[0]["message"]


def label(client, key, value):
    return created(client.post(f"{ORG}/labels", json={"key": key, "value": value}))


def workload(client, name, **fields):
    return created(client.post(f"{ORG}/workloads", json={"name": name, "hostname": name, **fields}))


# --- settings/workloads ---------------------------------------------------------------------------------------
def test_workload_settings_have_the_pce_shape_with_defaults(client):
    settings = client.get(f"{ORG}/settings/workloads").json()
    assert settings["href"] == f"{ORG}/settings/workloads"
    assert settings["workload_disconnected_timeout_seconds"] == [{"scope": [], "value": 3600, "ven_type": "server"}]
    assert settings["workload_goodbye_timeout_seconds"] == [{"scope": [], "value": 900, "ven_type": "server"}]


def test_workload_settings_put_replaces_entries_by_ven_type_and_scope(client):
    web = label(client, "role", "Web")
    body = {
        "workload_disconnected_timeout_seconds": [
            {"scope": [], "value": 7200},  # ven_type defaults to server
            {"scope": [{"href": web["href"], "key": "role", "value": "Web"}], "value": -1},
            {"scope": [], "value": 86400, "ven_type": "endpoint"},
        ]
    }
    assert client.put(f"{ORG}/settings/workloads", json=body).status_code == 204
    settings = client.get(f"{ORG}/settings/workloads").json()
    assert settings["workload_disconnected_timeout_seconds"] == [
        {"scope": [], "value": 7200, "ven_type": "server"},
        {"scope": [{"href": web["href"]}], "value": -1, "ven_type": "server"},
        {"scope": [], "value": 86400, "ven_type": "endpoint"},
    ]
    assert settings["workload_goodbye_timeout_seconds"] == [{"scope": [], "value": 900, "ven_type": "server"}]
    # A later PUT of one entry leaves the others as they are (partial update).
    again = {"workload_goodbye_timeout_seconds": [{"scope": [], "value": 0}]}
    assert client.put(f"{ORG}/settings/workloads", json=again).status_code == 204
    settings = client.get(f"{ORG}/settings/workloads").json()
    assert len(settings["workload_disconnected_timeout_seconds"]) == 3
    assert settings["workload_goodbye_timeout_seconds"] == [{"scope": [], "value": 0, "ven_type": "server"}]
    notify = {"workload_disconnected_notification_seconds": [{"scope": [], "warning": {"duration_seconds": 600}}]}
    assert client.put(f"{ORG}/settings/workloads", json=notify).status_code == 204
    stored = client.get(f"{ORG}/settings/workloads").json()["workload_disconnected_notification_seconds"]
    assert stored == [{"scope": [], "warning": {"duration_seconds": 600}, "ven_type": "server"}]


@pytest.mark.parametrize(
    ("body", "token"),
    [
        ({"workload_disconnected_timeout_seconds": [{"scope": [], "value": 60}]}, "input_validation_error"),
        ({"workload_goodbye_timeout_seconds": [{"scope": [], "value": -5}]}, "input_validation_error"),
        ({"workload_goodbye_timeout_seconds": [{"scope": [], "value": "900"}]}, "input_validation_error"),
        ({"workload_goodbye_timeout_seconds": [{"scope": []}]}, "input_validation_error"),
        ({"workload_goodbye_timeout_seconds": [{"value": 900, "ven_type": "laptop"}]}, "input_validation_error"),
        (
            {"workload_goodbye_timeout_seconds": [{"scope": [{"href": "/orgs/1/labels/999"}], "value": 900}]},
            "invalid_uri",
        ),
        ({"workload_goodbye_timeout_seconds": [{"scope": [{"value": "Web"}], "value": 900}]}, "input_validation_error"),
        ({"workload_goodbye_timeout_seconds": [{"scope": [], "value": 9}, {"value": 8}]}, "input_validation_error"),
        ({"workload_offline_seconds": []}, "input_validation_error"),
        ({"workload_goodbye_timeout_seconds": {"value": 900}}, "input_validation_error"),
    ],
)
def test_bad_workload_settings_are_refused_and_change_nothing(client, body, token):
    before = client.get(f"{ORG}/settings/workloads").json()
    refused(client.put(f"{ORG}/settings/workloads", json=body), token)
    assert client.get(f"{ORG}/settings/workloads").json() == before


# --- product version ------------------------------------------------------------------------------------------
def test_product_version_has_the_pce_shape(client):
    version = client.get("/product_version").json()
    assert set(version) == {"version", "build", "long_display", "short_display"}
    assert isinstance(version["build"], int)
    assert version["long_display"] == f"{version['version']}-{version['build']}"
    assert version["short_display"] == version["version"]
    assert [part.isdigit() for part in version["version"].split(".")] == [True, True, True]


# --- max_results=0 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/labels",
        "/workloads",
        "/sec_policy/draft/ip_lists",
        "/sec_policy/active/services",
        "/events",
        "/pairing_profiles",
    ],
)
def test_max_results_zero_counts_without_listing(client, path):
    label(client, "role", "Web")
    workload(client, "web1")
    created(client.post(f"{ORG}/pairing_profiles", json={"name": "PP"}))
    everything = client.get(f"{ORG}{path}")
    counted = client.get(f"{ORG}{path}", params={"max_results": 0})
    assert counted.status_code == 200 and counted.json() == []
    assert counted.headers["X-Total-Count"] == everything.headers["X-Total-Count"] == str(len(everything.json()))
    assert int(counted.headers["X-Total-Count"]) >= 1
    refused(client.get(f"{ORG}{path}", params={"max_results": -1}))


# --- labels?usage=true ----------------------------------------------------------------------------------------
@pytest.fixture
def used_labels(client):
    """One label per use the lab has, plus an unused one."""
    names = ("workload", "group", "scope", "actor", "boundary", "profile", "unused", "deny")
    made = {name: label(client, "role" if name != "scope" else "app", name) for name in names}
    workload(client, "web1", labels=[{"href": made["workload"]["href"]}])
    created(client.post(f"{DRAFT}/label_groups", json={"name": "LG", "key": "role", "labels": [made["group"]]}))
    rule_set = created(
        client.post(f"{DRAFT}/rule_sets", json={"name": "RS", "scopes": [[{"label": {"href": made["scope"]["href"]}}]]})
    )
    rule = {
        "providers": [{"label": {"href": made["actor"]["href"]}}],
        "consumers": [{"actors": "ams"}],
        "ingress_services": [{"proto": 6, "port": 443}],
    }
    created(client.post(f"{rule_set['href']}/sec_rules", json=rule))
    deny = {**rule, "providers": [{"label": {"href": made["deny"]["href"]}}]}
    created(client.post(f"{rule_set['href']}/deny_rules", json=deny))
    boundary = {
        "name": "EB",
        "providers": [{"label": {"href": made["boundary"]["href"]}}],
        "consumers": [{"actors": "ams"}],
        "ingress_services": [{"proto": 6, "port": 22}],
    }
    created(client.post(f"{DRAFT}/enforcement_boundaries", json=boundary))
    created(client.post(f"{ORG}/pairing_profiles", json={"name": "PP", "labels": [{"href": made["profile"]["href"]}]}))
    return made


def test_label_usage_says_what_uses_each_label(client, used_labels):
    listed = client.get(f"{ORG}/labels", params={"usage": "true"}).json()
    usage = {item["value"]: item["usage"] for item in listed}
    assert all(set(found) == set(USAGE_FIELDS) for found in usage.values())
    assert all(isinstance(flag, bool) for found in usage.values() for flag in found.values())

    def used(value):
        return {field for field, flag in usage[value].items() if flag}

    assert used("workload") == {"workload"}
    assert used("group") == {"label_group"}
    assert used("scope") == {"ruleset"}
    assert used("actor") == used("deny") == {"ruleset", "rule"}
    assert used("boundary") == {"enforcement_boundary"}
    assert used("profile") == {"pairing_profile"}
    assert used("unused") == set()


def test_label_usage_only_when_asked(client, used_labels):
    assert all("usage" not in item for item in client.get(f"{ORG}/labels").json())
    assert all("usage" not in item for item in client.get(f"{ORG}/labels", params={"usage": "false"}).json())
    one = client.get(used_labels["workload"]["href"], params={"usage": "true"}).json()
    assert one["usage"]["workload"] is True and not one["usage"]["label_group"]
    assert "usage" not in client.get(used_labels["workload"]["href"]).json()
    filtered = client.get(f"{ORG}/labels", params={"usage": "True", "value": "group"}).json()
    assert [(item["value"], item["usage"]["label_group"]) for item in filtered] == [("group", True)]
    refused(client.get(f"{ORG}/labels", params={"usage": "maybe"}))


def test_label_usage_follows_provisioning_and_deletion(client, used_labels):
    assert client.post(f"{ORG}/sec_policy", json={"update_description": "all"}).status_code == 201
    group = client.get(f"{DRAFT}/label_groups").json()[0]
    assert client.delete(group["href"]).status_code == 204
    listed = {item["value"]: item["usage"] for item in client.get(f"{ORG}/labels", params={"usage": 1}).json()}
    assert listed["group"]["label_group"] is True  # still in the active group until provisioned
    assert client.post(f"{ORG}/sec_policy", json={}).status_code == 201
    listed = {item["value"]: item["usage"] for item in client.get(f"{ORG}/labels", params={"usage": 1}).json()}
    assert listed["group"]["label_group"] is False


def test_labels_include_deleted(client):
    gone = label(client, "role", "Gone")
    label(client, "role", "Kept")
    assert client.delete(gone["href"]).status_code == 204
    assert [item["value"] for item in client.get(f"{ORG}/labels").json()] == ["Kept"]
    listed = client.get(f"{ORG}/labels", params={"include_deleted": "true"}).json()
    assert [(item["value"], item["deleted"]) for item in listed] == [("Gone", True), ("Kept", False)]


# --- workloads?include_deleted --------------------------------------------------------------------------------
def test_deleted_workloads_are_listed_only_when_asked(client):
    gone, kept, bulk_gone = workload(client, "gone1"), workload(client, "kept1"), workload(client, "gone2")
    assert client.delete(gone["href"]).status_code == 204
    assert client.put(f"{ORG}/workloads/bulk_delete", json=[{"href": bulk_gone["href"]}]).status_code == 200
    plain = client.get(f"{ORG}/workloads")
    assert [item["href"] for item in plain.json()] == [kept["href"]] and plain.headers["X-Total-Count"] == "1"
    for spelling in ("yes", "true", "True", "1"):
        listed = client.get(f"{ORG}/workloads", params={"include_deleted": spelling})
        assert {(item["name"], item["deleted"]) for item in listed.json()} == {
            ("gone1", True),
            ("kept1", False),
            ("gone2", True),
        }
        assert listed.headers["X-Total-Count"] == "3"
    assert client.get(f"{ORG}/workloads", params={"include_deleted": "no"}).json() == plain.json()
    filtered = client.get(f"{ORG}/workloads", params={"include_deleted": "yes", "name": "gone"}).json()
    assert sorted(item["name"] for item in filtered) == ["gone1", "gone2"]
    assert client.get(gone["href"]).json()["deleted"] is True  # other answers unchanged
    refused(client.delete(gone["href"]), "already_deleted")
    refused(client.get(f"{ORG}/workloads", params={"include_deleted": "sometimes"}))


def test_workload_boolean_filters_take_either_case(client):
    workload(client, "web1")
    assert client.get(f"{ORG}/workloads", params={"managed": "False"}).headers["X-Total-Count"] == "1"
    assert client.get(f"{ORG}/workloads", params={"managed": "TRUE"}).json() == []


# --- references sent as whole objects -------------------------------------------------------------------------
def test_whole_objects_are_accepted_as_references(client):
    web = label(client, "role", "Web")
    shop = label(client, "app", "Shop")
    service = created(
        client.post(f"{DRAFT}/services", json={"name": "S-HTTPS", "service_ports": [{"port": 443, "proto": 6}]})
    )
    ip_list = created(client.post(f"{DRAFT}/ip_lists", json={"name": "Corp", "ip_ranges": [{"from_ip": "10.0.0.0/8"}]}))
    group = created(client.post(f"{DRAFT}/label_groups", json={"name": "LG-Web", "key": "role", "labels": [web]}))
    assert group["labels"] == [{"href": web["href"], "key": "role", "value": "Web"}]
    outer = created(client.post(f"{DRAFT}/label_groups", json={"name": "LG-All", "key": "role", "sub_groups": [group]}))
    assert outer["sub_groups"][0]["href"] == group["href"]
    rule_set = created(client.post(f"{DRAFT}/rule_sets", json={"name": "RS", "scopes": [[{"label": shop}]]}))
    assert rule_set["scopes"] == [[{"label": {"href": shop["href"]}}]]
    rule = created(
        client.post(
            f"{rule_set['href']}/sec_rules",
            json={
                "providers": [{"label": web}, {"label_group": group}],
                "consumers": [{"ip_list": ip_list}],
                "ingress_services": [service],  # the whole service object, as the SDK's Rule.build sends it
            },
        )
    )
    assert rule["ingress_services"] == [{"href": service["href"]}]
    assert rule["providers"] == [{"label": {"href": web["href"]}}, {"label_group": {"href": group["href"]}}]
    assert rule["consumers"] == [{"ip_list": {"href": ip_list["href"]}}]
    host = workload(client, "web1", labels=[web, shop])
    assert [item["href"] for item in host["labels"]] == [web["href"], shop["href"]]
    profile = created(client.post(f"{ORG}/pairing_profiles", json={"name": "PP", "labels": [web]}))
    assert profile["labels"] == [{"href": web["href"]}]
    change = {"change_subset": {"services": [service], "ip_lists": [ip_list]}}
    assert client.post(f"{ORG}/sec_policy", json=change).status_code == 201


@pytest.mark.parametrize(
    ("path_and_body"),
    [
        ("rule", {"ingress_services": [{"name": "S-HTTPS", "service_ports": [{"port": 443, "proto": 6}]}]}),
        ("rule", {"providers": [{"label": {"key": "role", "value": "Web"}}]}),
        ("rule", {"providers": [{"label": {"href": ""}}]}),
        ("rule", {"providers": [{"label": "/orgs/1/labels/1"}]}),
        ("rule_set", {"scopes": [[{"label": {"value": "Web"}}]]}),
        ("label_group", {"labels": [{"key": "role", "value": "Web"}]}),
        ("workload", {"labels": [{"value": "Web"}]}),
    ],
)
def test_references_without_an_href_are_still_refused(client, path_and_body):
    kind, change = path_and_body
    label(client, "role", "Web")
    if kind == "rule":
        rule_set = created(client.post(f"{DRAFT}/rule_sets", json={"name": "RS", "scopes": [[]]}))
        body = {"providers": [{"actors": "ams"}], "consumers": [{"actors": "ams"}], "ingress_services": [{"proto": -1}]}
        answer = client.post(f"{rule_set['href']}/sec_rules", json={**body, **change})
    elif kind == "rule_set":
        answer = client.post(f"{DRAFT}/rule_sets", json={"name": "RS", **change})
    elif kind == "label_group":
        answer = client.post(f"{DRAFT}/label_groups", json={"name": "LG", "key": "role", **change})
    else:
        answer = client.post(f"{ORG}/workloads", json={"name": "w", **change})
    refused(answer)  # a service object without an href is taken as an inline port, and refused as one


# --- external_data_set / external_data_reference --------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/pairing_profiles", {"name": "PP"}),
        ("/labels", {"key": "role", "value": "Ext"}),
        ("/workloads", {"name": "ext1"}),
        ("/sec_policy/draft/rule_sets", {"name": "RS", "scopes": [[]]}),
        ("/sec_policy/draft/services", {"name": "S", "service_ports": [{"proto": 6, "port": 1}]}),
        ("/sec_policy/draft/ip_lists", {"name": "IPL"}),
        ("/sec_policy/draft/label_groups", {"name": "LG", "key": "role"}),
    ],
)
def test_external_data_fields_are_stored_and_answered(client, path, body):
    made = created(
        client.post(f"{ORG}{path}", json={**body, "external_data_set": "cmdb", "external_data_reference": "ci-42"})
    )
    assert (made["external_data_set"], made["external_data_reference"]) == ("cmdb", "ci-42")
    assert client.put(made["href"], json={"external_data_reference": None}).status_code == 204
    shown = client.get(made["href"]).json()
    assert (shown["external_data_set"], shown.get("external_data_reference")) == ("cmdb", None)
    refused(client.put(made["href"], json={"external_data_set": 42}))


def test_pairing_profiles_show_external_data_only_once_set(client):
    # pairing_profiles.json (a real PCE's answer) has no external data keys on profiles without them.
    profile = created(client.post(f"{ORG}/pairing_profiles", json={"name": "PP", "external_data_set": None}))
    assert "external_data_set" not in profile and "external_data_reference" not in profile
    assert client.put(profile["href"], json={"external_data_set": "cmdb"}).status_code == 204
    assert client.get(profile["href"]).json()["external_data_set"] == "cmdb"


# --- events ---------------------------------------------------------------------------------------------------
def test_event_change_types_are_the_pces(client):
    host = workload(client, "web1")
    client.put(f"{ORG}/workloads/bulk_create", json=[{"name": "web2"}])
    client.put(host["href"], json={"description": "x"})
    client.delete(host["href"])
    events = client.get(f"{ORG}/events").json()
    types = {event["event_type"]: event["resource_changes"][0]["change_type"] for event in events}
    assert types == {
        "workload.create": "create",
        "workloads.bulk_create": "create",
        "workload.update": "update",
        "workload.delete": "delete",
    }
