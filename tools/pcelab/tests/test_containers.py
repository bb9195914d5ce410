"""Container clusters and container workload profiles: shapes, the one-time token, CRUD, label rules, usage, and the
official SDK against a running lab (in-process `client`, except the SDK tests which use the `lab` server)."""

from __future__ import annotations

import re
import uuid

import pytest
from conftest import ORG
from pcelab.contract import contract
from shapes import sample, shape_gaps

CLUSTERS = f"{ORG}/container_clusters"
CLUSTER = contract("container_clusters")
PROFILE = contract("container_workload_profiles")
TOKEN = re.compile(r"^1_[0-9a-f]{64}$")
# Two profiles from the official SDK's recorded PCE payload (illumio/illumio-py,
# tests/data/container_workload_profiles.json, Apache License 2.0): one Kubelink reported (no name, no description),
# and the cluster's Default Profile.
REAL_PROFILES = [
    {
        "href": "/orgs/1/container_clusters/f5bef182-8c55-4219-b35b-0a50b707e434/container_workload_profiles/"
        "d2d466b5-106d-48e9-ada9-68f6321d1da8",
        "namespace": "illumio-system",
        "description": "",
        "enforcement_mode": "idle",
        "visibility_level": "flow_summary",
        "managed": True,
        "assign_labels": [],
        "labels": [],
        "linked": True,
        "created_at": "2022-06-23T20:53:57.056Z",
        "created_by": {"href": "/orgs/1/container_clusters/f5bef182-8c55-4219-b35b-0a50b707e434"},
        "updated_at": "2022-06-23T21:10:58.331Z",
        "updated_by": {"href": "/users/1"},
    },
    {
        "href": "/orgs/1/container_clusters/f5bef182-8c55-4219-b35b-0a50b707e434/container_workload_profiles/"
        "1c617b3d-a5ff-44b2-97d6-5e815185063e",
        "name": "Default Profile",
        "namespace": None,
        "enforcement_mode": "idle",
        "visibility_level": "flow_summary",
        "managed": True,
        "assign_labels": [],
        "labels": [],
        "linked": False,
        "created_at": "2022-06-23T20:53:52.445Z",
        "created_by": {"href": "/users/1"},
        "updated_at": "2022-06-23T21:11:04.435Z",
        "updated_by": {"href": "/users/1"},
    },
]


def make_cluster(client, name="CC-KUBE", **extra) -> dict:
    answer = client.post(CLUSTERS, json={"name": name, **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def make_label(client, key="env", value=None) -> dict:
    answer = client.post(f"{ORG}/labels", json={"key": key, "value": value or f"{key}-{uuid.uuid4().hex[:6]}"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def profiles_of(cluster: dict) -> str:
    return f"{cluster['href']}/container_workload_profiles"


def make_profile(client, cluster, **body) -> dict:
    answer = client.post(profiles_of(cluster), json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def refused(answer, token="input_validation_error", status=406) -> str:  # noqa: S107 - an error token
    assert answer.status_code == status, answer.text
    assert answer.json()[0]["token"] == token, answer.text
    return answer.json()[0]["message"]


# --- clusters ---------------------------------------------------------------------------------------------------
def test_cluster_create_answers_the_token_once(client):
    created = make_cluster(client, description="Kubernetes Container Cluster")
    assert CLUSTER.answer_gaps(created) == []
    assert TOKEN.match(created["container_cluster_token"])
    cluster_id = created["href"].rsplit("/", 1)[1]
    assert created["href"] == f"{CLUSTERS}/{cluster_id}" and str(uuid.UUID(cluster_id)) == cluster_id
    # An unpaired cluster, as on a real PCE: offline, nothing reported by Kubelink.
    assert created["online"] is False and created["nodes"] == [] and created["errors"] == []
    assert created["last_connected"] is None and created["kubelink_version"] is None
    assert created["caps"] == ["write"]

    got = client.get(created["href"]).json()
    assert "container_cluster_token" not in got
    assert got == {name: value for name, value in created.items() if name != "container_cluster_token"}
    assert CLUSTER.answer_gaps(got) == []
    assert client.get(CLUSTERS).json() == [got]
    assert make_cluster(client, "CC-2")["container_cluster_token"] != created["container_cluster_token"]

    events = client.get(f"{ORG}/events", params={"event_type": "container_cluster.create"}).json()
    assert [event["resource_changes"][0]["resource"]["container_cluster"]["href"] for event in events][-1] == (
        created["href"]
    )
    assert events[0]["resource_changes"][0]["change_type"] == "create"
    all_events = client.get(f"{ORG}/events").text
    assert created["container_cluster_token"] not in all_events
    assert (
        created["container_cluster_token"].split("_", 1)[1]
        not in client.lab.store.texts(1, "container_cluster_private")[0]
    )


def test_cluster_shape_matches_the_real_sample(client):
    answer = client.get(make_cluster(client)["href"]).json()
    for real in sample("container_clusters"):
        assert CLUSTER.sample_gaps(real) == []
        assert shape_gaps(real, answer) == []


def test_cluster_update_list_and_delete(client):
    cluster = make_cluster(client, "CC-EKS-PROD", description="old")
    make_cluster(client, "CC-AKS-DEV")
    assert client.put(cluster["href"], json={"name": "CC-EKS-PRD", "description": "new"}).status_code == 204
    got = client.get(cluster["href"]).json()
    assert (got["name"], got["description"]) == ("CC-EKS-PRD", "new")
    assert [item["name"] for item in client.get(CLUSTERS, params={"name": "eks"}).json()] == ["CC-EKS-PRD"]
    assert len(client.get(CLUSTERS, params={"name": "CC-"}).json()) == 2
    assert client.get(CLUSTERS, params={"max_results": 0}).headers["X-Total-Count"] == "2"
    update = client.get(f"{ORG}/events", params={"event_type": "container_cluster.update"}).json()[0]
    assert update["resource_changes"][0]["changes"]["name"] == {"before": "CC-EKS-PROD", "after": "CC-EKS-PRD"}

    assert client.delete(cluster["href"]).status_code == 204
    refused(client.get(cluster["href"]), "not_found", 404)
    refused(client.get(profiles_of(cluster)), "not_found", 404)
    refused(client.put(cluster["href"], json={"name": "x"}), "not_found", 404)
    refused(client.delete(cluster["href"]), "not_found", 404)
    assert [item["name"] for item in client.get(CLUSTERS).json()] == ["CC-AKS-DEV"]
    assert client.get(f"{ORG}/events", params={"event_type": "container_cluster.delete"}).json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"description": "no name"}, "'name' is a required property"),
        ({"name": ""}, "should be non-empty"),
        ({"name": "n" * 256}, "is too long"),
        ({"name": 7}, "is not of type 'string'"),
        ({"name": "CC", "online": True}, "('online' was unexpected)"),
        ({"name": "CC", "container_cluster_token": "1_00"}, "('container_cluster_token' was unexpected)"),
    ],
)
def test_invalid_cluster_bodies_are_406(client, body, message):
    assert message in refused(client.post(CLUSTERS, json=body))


def test_cluster_put_takes_name_and_description_only(client):
    cluster = make_cluster(client)
    assert "('nodes' was unexpected)" in refused(client.put(cluster["href"], json={"nodes": []}))
    assert "should be non-empty" in refused(client.put(cluster["href"], json={"name": ""}))


# --- profiles ---------------------------------------------------------------------------------------------------
def test_a_new_cluster_has_its_default_profile(client):
    cluster = make_cluster(client)
    [default] = client.get(profiles_of(cluster)).json()
    assert PROFILE.answer_gaps(default) == []
    assert default["name"] == "Default Profile" and default["namespace"] is None
    assert (default["managed"], default["linked"], default["enforcement_mode"]) == (False, False, "idle")
    assert default["visibility_level"] == "flow_summary"
    assert default["created_by"] == {"href": "/users/1"}
    assert default["href"].startswith(f"{profiles_of(cluster)}/")
    assert client.get(default["href"]).json() == default
    refused(client.delete(default["href"]), "builtin_object_read_only")
    assert client.put(default["href"], json={"managed": True, "enforcement_mode": "visibility_only"}).status_code == 204
    assert client.get(default["href"]).json()["managed"] is True


def test_profile_shapes_keep_the_contract_and_the_real_payload(client):
    for real in REAL_PROFILES:
        assert PROFILE.sample_gaps(real) == []
        assert PROFILE.answer_gaps(real) == []
    cluster = make_cluster(client)
    bare = make_profile(client, cluster)
    assert "name" not in bare and "description" not in bare  # left out while unset, as the PCE does
    named = make_profile(client, cluster, name="CCWP", description="", namespace="kube-system", managed=True)
    for answer in (bare, named):
        assert PROFILE.answer_gaps(answer) == []
        assert shape_gaps(REAL_PROFILES[0] | {"name": "x"}, named) == []
    assert list(named) == [name for name in PROFILE.properties if name in named]  # the PCE's field order


def test_profile_crud_with_labels(client):
    cluster = make_cluster(client)
    env, loc, app1, app2 = make_label(client, "env"), make_label(client, "loc"), make_label(client, "app"), None
    app2 = make_label(client, "app")
    body = {
        "name": "CCWP-KUBE-CORE",
        "namespace": "core-services",
        "description": "core services pods",
        "managed": True,
        "enforcement_mode": "visibility_only",
        "labels": [
            {"key": "env", "assignment": {"href": env["href"]}},
            {"key": "app", "restriction": [{"href": app1["href"]}, app2]},  # a whole label object counts by href
        ],
    }
    profile = make_profile(client, cluster, **body)
    assert profile["href"].startswith(f"{profiles_of(cluster)}/")
    assert str(uuid.UUID(profile["href"].rsplit("/", 1)[1])) == profile["href"].rsplit("/", 1)[1]
    assert profile["labels"] == [
        {"key": "env", "assignment": {"href": env["href"], "value": env["value"]}},
        {
            "key": "app",
            "restriction": [
                {"href": app1["href"], "value": app1["value"]},
                {"href": app2["href"], "value": app2["value"]},
            ],
        },
    ]
    assert profile["assign_labels"] == [{"href": env["href"]}]  # the mirror of the assignments
    assert (profile["linked"], profile["visibility_level"]) == (False, "flow_summary")
    assert client.get(profile["href"]).json() == profile
    assert len(client.get(profiles_of(cluster)).json()) == 2

    # The deprecated assign_labels replace the labels and are mirrored back as assignments.
    assert client.put(profile["href"], json={"assign_labels": [env, {"href": loc["href"]}]}).status_code == 204
    got = client.get(profile["href"]).json()
    assert got["assign_labels"] == [{"href": env["href"]}, {"href": loc["href"]}]
    assert [item["key"] for item in got["labels"]] == ["env", "loc"]
    assert got["labels"][1] == {"key": "loc", "assignment": {"href": loc["href"], "value": loc["value"]}}

    update = {"name": None, "visibility_level": "flow_off", "labels": []}
    assert client.put(profile["href"], json=update).status_code == 204
    got = client.get(profile["href"]).json()
    assert "name" not in got and got["labels"] == [] and got["assign_labels"] == []
    assert got["visibility_level"] == "flow_off" and got["namespace"] == "core-services"
    assert PROFILE.answer_gaps(got) == []
    event = client.get(f"{ORG}/events", params={"event_type": "container_workload_profile.update"}).json()[0]
    assert event["resource_changes"][0]["changes"]["visibility_level"] == {
        "before": "flow_summary",
        "after": "flow_off",
    }

    assert client.delete(profile["href"]).status_code == 204
    refused(client.get(profile["href"]), "not_found", 404)
    refused(client.delete(profile["href"]), "not_found", 404)
    assert len(client.get(profiles_of(cluster)).json()) == 1
    kinds = {event["event_type"] for event in client.get(f"{ORG}/events").json()}
    assert {"container_workload_profile.create", "container_workload_profile.delete"} <= kinds


def test_profile_put_takes_the_object_it_read_as_illumioapi_sends_it(client):
    cluster = make_cluster(client)
    profile = make_profile(client, cluster, name="p", namespace="web", managed=True)
    # brian1917/illumioapi PUTs href, name, labels, enforcement_mode, visibility_level, managed (no namespace).
    body = {key: profile[key] for key in ("href", "name", "labels", "enforcement_mode", "visibility_level", "managed")}
    assert client.put(profile["href"], json={**body, "enforcement_mode": "full"}).status_code == 204
    assert client.get(profile["href"]).json()["enforcement_mode"] == "full"
    other = client.get(profiles_of(cluster)).json()[0]["href"]
    assert "can't name another object" in refused(client.put(profile["href"], json={"href": other}))
    assert "namespace" in refused(client.put(profile["href"], json={"namespace": "db"}))
    assert "('linked' was unexpected)" in refused(client.put(profile["href"], json={"linked": True}))


def test_profiles_404_outside_their_cluster(client):
    first, second = make_cluster(client, "A"), make_cluster(client, "B")
    profile = make_profile(client, first, name="p")
    elsewhere = f"{profiles_of(second)}/{profile['href'].rsplit('/', 1)[1]}"
    refused(client.get(elsewhere), "not_found", 404)
    refused(client.put(elsewhere, json={"name": "x"}), "not_found", 404)
    refused(client.get(f"{profiles_of(first)}/{uuid.uuid4()}"), "not_found", 404)
    refused(client.post(f"{CLUSTERS}/{uuid.uuid4()}/container_workload_profiles", json={}), "not_found", 404)


def test_deleting_a_cluster_deletes_its_profiles_and_frees_their_labels(client):
    cluster = make_cluster(client)
    env = make_label(client, "env")
    make_profile(client, cluster, name="p", managed=True, assign_labels=[{"href": env["href"]}])
    assert client.delete(cluster["href"]).status_code == 204
    assert client.lab.store.docs(1, "container_workload_profiles") == []
    assert client.delete(env["href"]).status_code == 204


@pytest.mark.parametrize(
    ("labels", "token", "message"),
    [
        ([{"key": "env", "assignment": {"href": "/orgs/1/labels/999"}}], "invalid_uri", "not an existing label"),
        ([{"key": "env", "restriction": [{"href": "/orgs/1/labels/999"}]}], "invalid_uri", "not an existing label"),
        ([{"key": "app", "assignment": "ENV"}], "input_validation_error", "has key 'env', not 'app'"),
        ([{"key": "env"}], "input_validation_error", "exactly one of assignment"),
        ([{"key": "env", "restriction": []}], "input_validation_error", "exactly one of assignment"),
        ([{"key": "env", "assignment": "ENV", "restriction": ["ENV"]}], "input_validation_error", "exactly one of"),
        ([{"key": "env", "restriction": ["ENV", "ENV"]}], "input_validation_error", "the same label twice"),
        ([{"key": "env", "assignment": {}}], "input_validation_error", "'href' is a required property"),
        ([{"key": "env", "assignment": "ENV", "value": "x"}], "input_validation_error", "('value' was unexpected)"),
        (
            [{"key": "env", "assignment": "ENV"}, {"key": "env", "restriction": ["ENV"]}],
            "multiple_labels_with_same_key",
            "more than one entry for label key 'env'",
        ),
    ],
)
def test_profile_labels_are_checked(client, labels, token, message):
    env = make_label(client, "env")

    def resolve(item):
        return {"href": env["href"]} if item == "ENV" else item

    body_labels = [
        {
            **item,
            **({"assignment": resolve(item["assignment"])} if "assignment" in item else {}),
            **({"restriction": [resolve(ref) for ref in item["restriction"]]} if "restriction" in item else {}),
        }
        for item in labels
    ]
    cluster = make_cluster(client)
    assert message in refused(client.post(profiles_of(cluster), json={"managed": True, "labels": body_labels}), token)


def test_profile_label_rules(client):
    cluster = make_cluster(client)
    env, env2 = make_label(client, "env"), make_label(client, "env")
    both = {"managed": True, "assign_labels": [{"href": env["href"]}], "labels": []}
    assert "not both" in refused(client.post(profiles_of(cluster), json=both))
    same_key = {"managed": True, "assign_labels": [{"href": env["href"]}, {"href": env2["href"]}]}
    refused(client.post(profiles_of(cluster), json=same_key), "multiple_labels_with_same_key")
    ghost = {"managed": True, "assign_labels": [{"href": "/orgs/1/labels/999"}]}
    refused(client.post(profiles_of(cluster), json=ghost), "invalid_uri")
    unmanaged = {"assign_labels": [{"href": env["href"]}]}
    assert "need a managed profile" in refused(client.post(profiles_of(cluster), json=unmanaged))
    # Restrictions (what Kubernetes annotations may choose) are fine on an unmanaged profile.
    restricted = make_profile(client, cluster, labels=[{"key": "env", "restriction": [{"href": env["href"]}]}])
    assert restricted["managed"] is False and restricted["assign_labels"] == []
    assigned = make_profile(client, cluster, managed=True, assign_labels=[{"href": env["href"]}])
    assert "need a managed profile" in refused(client.put(assigned["href"], json={"managed": False}))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"enforcement_mode": "enforced"}, "is not one of"),
        ({"visibility_level": "everything"}, "is not one of"),
        ({"managed": "yes"}, "is not of type 'boolean'"),
        ({"name": "n" * 256}, "is too long"),
        ({"namespace": ""}, "should be non-empty"),
        ({"linked": True}, "('linked' was unexpected)"),
        ({"href": "/orgs/1/x"}, "('href' was unexpected)"),
    ],
)
def test_invalid_profile_bodies_are_406(client, body, message):
    cluster = make_cluster(client)
    assert message in refused(client.post(profiles_of(cluster), json=body))


def test_namespaces_are_unique_in_a_cluster(client):
    first, second = make_cluster(client, "A"), make_cluster(client, "B")
    make_profile(client, first, namespace="web")
    assert "already has a container workload profile" in refused(
        client.post(profiles_of(first), json={"namespace": "web"})
    )
    make_profile(client, second, namespace="web")


def test_profile_filters(client):
    cluster = make_cluster(client)
    env = make_label(client, "env")
    web = make_profile(client, cluster, name="Web tier", namespace="web-prod", managed=True, assign_labels=[env])
    db = make_profile(client, cluster, namespace="db-prod", enforcement_mode="full", visibility_level="flow_drops")

    def hrefs(**params):
        answer = client.get(profiles_of(cluster), params=params)
        assert answer.status_code == 200, answer.text
        return [item["href"] for item in answer.json()]

    assert hrefs(namespace="PROD") == [web["href"], db["href"]]
    assert hrefs(name="web") == [web["href"]]
    assert hrefs(managed="true") == [web["href"]]
    assert len(hrefs(managed="false")) == 2  # db and the Default Profile
    assert hrefs(linked="true") == []
    assert hrefs(enforcement_mode="full") == [db["href"]]
    assert hrefs(visibility_level="flow_drops") == [db["href"]]
    assert hrefs(assign_labels=f'["{env["href"]}"]') == [web["href"]]
    assert len(hrefs(max_results="1")) == 1
    refused(client.get(profiles_of(cluster), params={"enforcement_mode": "enforced"}))
    refused(client.get(profiles_of(cluster), params={"managed": "maybe"}))
    assert "JSON list" in refused(client.get(profiles_of(cluster), params={"assign_labels": "/orgs/1/labels/1"}))


def test_labels_used_by_profiles_count_as_usage_and_stay(client):
    cluster = make_cluster(client)
    env, app, unused = make_label(client, "env"), make_label(client, "app"), make_label(client, "loc")
    labels = [
        {"key": "env", "assignment": {"href": env["href"]}},
        {"key": "app", "restriction": [{"href": app["href"]}]},
    ]
    profile = make_profile(client, cluster, name="CCWP-1", managed=True, labels=labels)
    for label in (env, app):
        usage = client.get(label["href"], params={"usage": "true"}).json()["usage"]
        assert usage["container_workload_profile"] is True
        message = refused(client.delete(label["href"]), "label_in_use")
        assert "container workload profile CCWP-1" in message
    assert client.get(unused["href"], params={"usage": "true"}).json()["usage"]["container_workload_profile"] is False
    assert client.put(profile["href"], json={"labels": []}).status_code == 204
    assert client.delete(env["href"]).status_code == 204
    assert client.delete(app["href"]).status_code == 204


# --- the official SDK against a running lab ---------------------------------------------------------------------------
def test_sdk_container_clusters(pce):
    from illumio import ContainerCluster

    name = f"CC-SDK-{uuid.uuid4().hex[:8]}"
    cluster = pce.container_clusters.create(ContainerCluster(name=name, description="made by the SDK"))
    assert TOKEN.match(cluster.container_cluster_token)
    got = pce.container_clusters.get_by_reference(cluster.href)
    assert got.container_cluster_token is None
    del cluster.container_cluster_token  # as the SDK's own integration test compares them
    assert got == cluster
    assert [found.href for found in pce.container_clusters.get(params={"name": name[3:]})] == [cluster.href]
    assert cluster.href in {found.href for found in pce.container_clusters.get_all()}
    pce.container_clusters.update(cluster.href, {"description": "Updated description"})
    assert pce.container_clusters.get_by_reference(cluster.href).description == "Updated description"
    pce.container_clusters.delete(cluster.href)
    assert cluster.href not in {found.href for found in pce.container_clusters.get()}


def test_sdk_container_workload_profiles(pce):
    from illumio import ContainerCluster, ContainerWorkloadProfile, EnforcementMode, LabelRestriction

    suffix = uuid.uuid4().hex[:8]
    cluster = pce.container_clusters.create(ContainerCluster(name=f"CC-SDK-{suffix}"))
    env = pce.labels.create({"key": "env", "value": f"E-{suffix}"})
    loc = pce.labels.create({"key": "loc", "value": f"L-{suffix}"})
    app = pce.labels.create({"key": "app", "value": f"A-{suffix}"})
    wanted = ContainerWorkloadProfile(
        name=f"CCWP-{suffix}",
        description="Created by the SDK",
        managed=True,
        assign_labels=[env, loc],
        enforcement_mode=EnforcementMode.VISIBILITY_ONLY,
    )
    profile = pce.container_workload_profiles.create(wanted, parent=cluster.href)
    assert profile.href.startswith(f"{cluster.href}/container_workload_profiles/")
    assert {ref.href for ref in profile.assign_labels} == {env.href, loc.href}
    assert {item.key for item in profile.labels} == {"env", "loc"}
    assert pce.container_workload_profiles.get_by_reference(profile) == profile
    listed = pce.container_workload_profiles.get(parent=cluster.href)
    assert len(listed) == 2  # every cluster has a Default profile
    assert "Default Profile" in {found.name for found in listed}
    restrictions = [
        LabelRestriction(key="app", restriction=[app]),
        LabelRestriction(key="env", assignment=env),
        LabelRestriction(key="loc", assignment=loc),
    ]
    pce.container_workload_profiles.update(profile, {"labels": restrictions})
    updated = pce.container_workload_profiles.get_by_reference(profile)
    assert len(updated.labels) == 3
    assert [ref.href for ref in updated.labels[0].restriction] == [app.href]
    pce.container_workload_profiles.delete(profile)
    assert len(pce.container_workload_profiles.get(parent=cluster.href)) == 1
    pce.container_clusters.delete(cluster)
