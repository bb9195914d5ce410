"""ReferenceResolver: names of policy objects, workloads and pairing profiles <-> hrefs, matched exactly."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import PceClient
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.references import KINDS, ReferenceResolver
from pce_test_server import Reply

COLLECTIONS = {
    "/api/v2/orgs/1/sec_policy/draft/ip_lists": [
        {"href": "/orgs/1/sec_policy/draft/ip_lists/1", "name": "Any (0.0.0.0/0 and ::/0)"},
        {"href": "/orgs/1/sec_policy/draft/ip_lists/2", "name": "IPL-Partner"},
        {"href": "/orgs/1/sec_policy/draft/ip_lists/3", "name": "IPL-Partner-EU"},
        {"href": "/orgs/1/sec_policy/draft/ip_lists/4", "name": "ipl-partner"},
    ],
    "/api/v2/orgs/1/sec_policy/active/ip_lists": [
        {"href": "/orgs/1/sec_policy/active/ip_lists/2", "name": "IPL-Partner"},
    ],
    "/api/v2/orgs/1/sec_policy/draft/services": [
        {"href": "/orgs/1/sec_policy/draft/services/5", "name": "S-Twin"},
        {"href": "/orgs/1/sec_policy/draft/services/6", "name": "S-Twin"},
    ],
    "/api/v2/orgs/1/workloads": [
        {"href": "/orgs/1/workloads/aaa", "hostname": "web1", "name": "Web 1"},
        {"href": "/orgs/1/workloads/bbb", "hostname": "db1", "deleted": True},
        {"href": "/orgs/1/workloads/ccc", "hostname": "db1"},
    ],
    "/api/v2/orgs/1/pairing_profiles": [{"href": "/orgs/1/pairing_profiles/7", "name": "Default"}],
}


class Collections:
    def __init__(self):
        self.served = []

    def handle(self, request):
        self.served.append(request.path)
        items = COLLECTIONS.get(request.path)
        if items is None:
            return Reply(404, [{"token": "not_found", "message": "Not Found"}])
        return Reply(200, items, {"X-Total-Count": str(len(items))})


@pytest.fixture
def pce(serve):
    collections = Collections()
    collections.server = serve(collections.handle)
    return collections


@pytest.fixture
def client(pce, tls_files):
    return PceClient(
        "127.0.0.1",
        port=pce.server.port,
        api_key_username="api_x",
        api_key_secret="secret-xyz-123",
        ca_path=str(tls_files.ca_cert),
    )


def test_collection_paths_by_kind_and_policy_version(client):
    draft = ReferenceResolver(client)
    active = ReferenceResolver(client, policy_version="active")
    assert draft.collection_path("ip_list") == "/orgs/1/sec_policy/draft/ip_lists"
    assert active.collection_path("label_group") == "/orgs/1/sec_policy/active/label_groups"
    assert active.collection_path("workload") == "/orgs/1/workloads"  # not policy: no version
    assert draft.collection_path("enforcement_boundary") == "/orgs/1/sec_policy/draft/enforcement_boundaries"


def test_names_match_exactly_not_partially_nor_ignoring_case(client):
    refs = ReferenceResolver(client)
    assert refs.href("ip_list", "IPL-Partner") == "/orgs/1/sec_policy/draft/ip_lists/2"
    assert refs.href("ip_list", "ipl-partner") == "/orgs/1/sec_policy/draft/ip_lists/4"
    assert refs.find("ip_list", "IPL-Part") is None


def test_each_collection_is_read_once_until_forgotten(pce, client):
    refs = ReferenceResolver(client)
    refs.href("ip_list", "IPL-Partner")
    refs.href("ip_list", "IPL-Partner-EU")
    refs.name("ip_list", "/orgs/1/sec_policy/draft/ip_lists/3")
    assert pce.served == ["/api/v2/orgs/1/sec_policy/draft/ip_lists"]
    refs.forget("service")
    refs.href("ip_list", "IPL-Partner")
    assert len(pce.served) == 1
    refs.forget("ip_list")
    refs.href("ip_list", "IPL-Partner")
    refs.forget()
    refs.href("ip_list", "IPL-Partner")
    assert len(pce.served) == 3


def test_a_missing_name_says_how_to_create_it(client):
    refs = ReferenceResolver(client)
    with pytest.raises(PceError) as missing:
        refs.href("ip_list", "IPL-Nope")
    assert str(missing.value) == (
        "ip list 'IPL-Nope' does not exist on the PCE (create it with microseg.illumio.ip_list first)"
    )


def test_two_objects_with_one_name_are_an_error_not_a_guess(client):
    with pytest.raises(PceError) as twins:
        ReferenceResolver(client).href("service", "S-Twin")
    message = str(twins.value)
    assert message.startswith("2 services are named 'S-Twin'")
    assert "/orgs/1/sec_policy/draft/services/5" in message and "/services/6" in message


def test_workloads_by_hostname_without_deleted_ones(client):
    refs = ReferenceResolver(client)
    assert refs.href("workload", "db1") == "/orgs/1/workloads/ccc"
    assert refs.find("workload", "Web 1") is None  # hostname, not name
    assert refs.name("workload", "/orgs/1/workloads/aaa") == "web1"
    assert refs.href("pairing_profile", "Default") == "/orgs/1/pairing_profiles/7"


def test_names_of_hrefs_from_either_policy_version(client):
    draft = ReferenceResolver(client)
    active = ReferenceResolver(client, policy_version="active")
    # A rule in active policy names the draft object's active twin, and the other way round.
    assert draft.name("ip_list", "/orgs/1/sec_policy/active/ip_lists/3") == "IPL-Partner-EU"
    assert active.name("ip_list", "/orgs/1/sec_policy/draft/ip_lists/2") == "IPL-Partner"
    assert draft.name("ip_list", "/orgs/1/sec_policy/draft/ip_lists/99") == "/orgs/1/sec_policy/draft/ip_lists/99"
    assert draft.name("workload", "/orgs/1/workloads/zzz") == "/orgs/1/workloads/zzz"


def test_unknown_kinds_are_refused(client):
    with pytest.raises(PceError, match="unknown kind of PCE object 'vm'"):
        ReferenceResolver(client).href("vm", "x")


def test_every_kind_names_its_collection_and_field():
    for kind, (endpoint, field, is_policy) in KINDS.items():
        assert endpoint.endswith("s")
        assert field in ("name", "hostname")
        assert is_policy == (kind not in ("workload", "pairing_profile"))


def test_read_errors_pass_through(client):
    with pytest.raises(PceError) as failed:
        ReferenceResolver(client).href("rule_set", "RS")
    assert failed.value.status == 404
