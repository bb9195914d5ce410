"""The shared object base and label references, on a draft-policy type with label references."""

from __future__ import annotations

import re
from typing import ClassVar

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import PceClient
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError, scrub, secret_forms
from ansible_collections.microseg.illumio.plugins.module_utils.pce.labels import LabelResolver, key_value_pairs
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import PceObjectType
from pce_test_server import Reply

GROUPS = re.compile(r"^/api/v2/orgs/1/sec_policy/draft/label_groups(?:/([\w-]+))?$")


class LabelGroup(PceObjectType):
    """Declared the way a later label_group module would: draft policy, name identity, label references."""

    name = "label_group"
    endpoint = "label_groups"
    draft = True
    identity = ("name",)
    fields = ("key", "description", "labels")
    renames: ClassVar[dict] = {"new_name": "name"}
    references: ClassVar[dict] = {"labels": "labels"}


class FakePolicyPce:
    """Labels plus draft label groups, as the PCE returns them (label references expanded)."""

    def __init__(self):
        self.labels = [
            {"href": "/orgs/1/labels/1", "key": "loc", "value": "dc1"},
            {"href": "/orgs/1/labels/2", "key": "loc", "value": "dc2"},
            {"href": "/orgs/1/labels/3", "key": "loc", "value": "dc10"},
        ]
        self.groups = {}

    def add_group(self, name, label_hrefs, description=""):
        href = f"/orgs/1/sec_policy/draft/label_groups/{len(self.groups) + 1:04d}"
        labels = [next(dict(label) for label in self.labels if label["href"] == h) for h in label_hrefs]
        self.groups[href] = {"href": href, "name": name, "key": "loc", "description": description, "labels": labels}
        return self.groups[href]

    def handle(self, request):
        if request.path == "/api/v2/orgs/1/labels":
            return Reply(200, self.labels, {"X-Total-Count": str(len(self.labels))})
        match = GROUPS.match(request.path)
        if match and request.method == "GET" and not match.group(1):
            wanted = request.query.get("name", "").lower()
            found = [group for group in self.groups.values() if wanted in group["name"].lower()]
            return Reply(200, found, {"X-Total-Count": str(len(found))})
        if match and request.method == "POST":
            group = self.add_group(request.body["name"], [ref["href"] for ref in request.body.get("labels", [])])
            return Reply(201, group)
        if match and request.method == "PUT":
            self.groups[request.path[len("/api/v2") :]].update(request.body)
            return Reply(204)
        return Reply(404)


@pytest.fixture
def policy_pce(serve):
    pce = FakePolicyPce()
    pce.server = serve(pce.handle)
    return pce


@pytest.fixture
def client(policy_pce, tls_files):
    return PceClient(
        "127.0.0.1",
        port=policy_pce.server.port,
        api_key_username="api_x",
        api_key_secret="secret-xyz-123",
        ca_path=str(tls_files.ca_cert),
    )


def test_draft_objects_live_under_sec_policy_draft(client):
    assert LabelGroup(client).collection_path() == "/orgs/1/sec_policy/draft/label_groups"


def test_references_are_resolved_sent_as_hrefs_and_shown_as_labels(policy_pce, client):
    params = {"name": "LG-DCs", "key": "loc", "labels": [{"loc": "dc1"}, {"key": "loc", "value": "dc2"}]}
    result = LabelGroup(client).ensure(params)
    assert result["changed"] is True
    post = next(r for r in policy_pce.server.requests if r.method == "POST")
    assert post.path == "/api/v2/orgs/1/sec_policy/draft/label_groups"
    assert post.body == {
        "name": "LG-DCs",
        "key": "loc",
        "labels": [{"href": "/orgs/1/labels/1"}, {"href": "/orgs/1/labels/2"}],
    }
    assert result["label_group"]["labels"] == [{"key": "loc", "value": "dc1"}, {"key": "loc", "value": "dc2"}]


def test_references_compare_by_href_in_any_order(policy_pce, client):
    policy_pce.add_group("LG-DCs", ["/orgs/1/labels/2", "/orgs/1/labels/1"], description="both")
    same = LabelGroup(client).ensure({"name": "LG-DCs", "labels": [{"loc": "dc1"}, {"loc": "dc2"}]})
    assert same["changed"] is False
    fewer = LabelGroup(client).ensure({"name": "LG-DCs", "labels": {"loc": "dc1"}, "description": "both"})
    assert fewer["changed"] is True
    assert fewer["diff"]["after"]["labels"] == [{"key": "loc", "value": "dc1"}]
    assert [r.body for r in policy_pce.server.requests if r.method == "PUT"] == [
        {"labels": [{"href": "/orgs/1/labels/1"}]}
    ]


def test_only_given_fields_are_compared_and_sent(policy_pce, client):
    group = policy_pce.add_group("LG-DCs", ["/orgs/1/labels/1"], description="old")
    result = LabelGroup(client).ensure({"name": "LG-DCs", "description": "new"})
    assert result["changed"] is True
    assert result["diff"]["before"]["description"] == "old"
    assert result["diff"]["after"]["labels"] == [{"key": "loc", "value": "dc1"}]
    put = next(r for r in policy_pce.server.requests if r.method == "PUT")
    assert (put.path, put.body) == ("/api/v2" + group["href"], {"description": "new"})


def test_unknown_label_reference_is_named(client):
    with pytest.raises(PceError, match="label loc=dc3 does not exist"):
        LabelGroup(client).ensure({"name": "LG", "labels": [{"loc": "dc3"}]})


def test_find_needs_an_exact_match(policy_pce, client):
    policy_pce.add_group("LG-DCs-old", ["/orgs/1/labels/1"])
    assert LabelGroup(client).find({"name": "LG-DCs"}) is None
    assert LabelGroup(client).find({"name": "LG-DCs-old"})["name"] == "LG-DCs-old"


def test_two_exact_matches_are_an_error_not_a_guess(policy_pce, client):
    policy_pce.add_group("twin", [])
    policy_pce.add_group("twin", [])
    with pytest.raises(PceError, match="2 label_groups match name=twin exactly"):
        LabelGroup(client).find({"name": "twin"})


def test_label_resolver_reads_labels_once(policy_pce, client):
    resolver = LabelResolver(client)
    assert resolver.hrefs({"loc": "dc1"}) == ["/orgs/1/labels/1"]
    assert resolver.hrefs([{"loc": "dc10"}, {"key": "loc", "value": "dc2"}]) == ["/orgs/1/labels/3", "/orgs/1/labels/2"]
    assert resolver.describe("/orgs/1/labels/3") == {"key": "loc", "value": "dc10"}
    assert resolver.describe("/orgs/1/labels/404") == {"href": "/orgs/1/labels/404"}
    assert len(policy_pce.server.requests) == 1
    resolver.forget()
    resolver.href("loc", "dc1")
    assert len(policy_pce.server.requests) == 2


@pytest.mark.parametrize(
    ("written", "pairs"),
    [
        ({"role": "web", "env": "prod"}, [("role", "web"), ("env", "prod")]),
        ({"key": "role", "value": "web"}, [("role", "web")]),
        ([{"key": "role", "value": "web"}, {"env": "prod"}], [("role", "web"), ("env", "prod")]),
        (None, []),
    ],
)
def test_ways_to_write_labels(written, pairs):
    assert key_value_pairs(written) == pairs


def test_a_label_written_wrongly_is_explained():
    with pytest.raises(PceError, match="a label must be written as"):
        key_value_pairs([{"role": "web", "env": "prod"}])


def test_scrub_masks_secrets_basic_tokens_and_url_credentials():
    secrets = secret_forms("api_u", "topsecret")
    text = {
        "a": "secret topsecret here",
        "b": ["Authorization: Basic " + secrets[1], "authorization': 'Bearer abc.def'"],
        "c": "proxy http://bob:hunter2@proxy:3128 failed",
    }
    cleaned = str(scrub(text, secrets))
    for leaked in ("topsecret", secrets[1], "abc.def", "hunter2"):
        assert leaked not in cleaned
    assert "proxy:3128" in cleaned
