"""policy_objects: how users write IP ranges, FQDNs and service ports, pending deletions, provisioning advice."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import PceClient
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.policy_objects import (
    IpList,
    LabelGroup,
    PolicyProvisioner,
    Service,
    fqdn_entry,
    ip_range,
    service_port,
    windows_service,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.references import (
    ReferenceResolver,
    is_pending_deletion,
)
from fake_policy_pce import FakePolicyPce
from pce_test_server import Reply


@pytest.fixture
def pce(serve, tls_files):
    fake = FakePolicyPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    return fake


@pytest.fixture
def client(pce):
    return PceClient(
        "127.0.0.1",
        port=pce.server.port,
        api_key_username=pce.username,
        api_key_secret=pce.secret,
        ca_path=str(pce.server_ca),
    )


# --- IP ranges ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "payload"),
    [
        ("10.0.0.0/8", {"from_ip": "10.0.0.0/8", "exclusion": False}),
        ("10.1.2.3", {"from_ip": "10.1.2.3", "exclusion": False}),
        ("!10.1.2.3", {"from_ip": "10.1.2.3", "exclusion": True}),
        ("! 10.1.0.0/16", {"from_ip": "10.1.0.0/16", "exclusion": True}),
        ("10.0.0.1-10.0.0.9", {"from_ip": "10.0.0.1", "to_ip": "10.0.0.9", "exclusion": False}),
        ("10.0.0.1 - 10.0.0.1", {"from_ip": "10.0.0.1", "exclusion": False}),
        ("!2001:db8::1-2001:db8::ff", {"from_ip": "2001:db8::1", "to_ip": "2001:db8::ff", "exclusion": True}),
        ("2001:DB8:0::/48", {"from_ip": "2001:db8::/48", "exclusion": False}),
        ("0.0.0.0/0", {"from_ip": "0.0.0.0/0", "exclusion": False}),
        (
            {"from_ip": "192.168.0.0/24", "description": "lab", "exclusion": True},
            {"from_ip": "192.168.0.0/24", "description": "lab", "exclusion": True},
        ),
        ({"from_ip": "1.1.1.1", "to_ip": "1.1.1.5"}, {"from_ip": "1.1.1.1", "to_ip": "1.1.1.5", "exclusion": False}),
        ({"from_ip": "1.1.1.1", "to_ip": "", "exclusion": "yes"}, {"from_ip": "1.1.1.1", "exclusion": True}),
    ],
)
def test_ip_range_forms(written, payload):
    assert ip_range(written) == payload


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("10.0.0.256", "ip_ranges[3]: '10.0.0.256' is not an IP address or CIDR block"),
        ("10.0.0.1/8", "10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"),
        ("10.0.0.0/33", "is not an IP address or CIDR block"),
        ("10.0.0.5-10.0.0.1", "the range 10.0.0.5-10.0.0.1 ends before it starts"),
        ("-10.0.0.1", "needs an address on both sides"),
        ("10.0.0.1-10.0.0.2/32", "'10.0.0.2/32' is not an IP address"),
        ("", "an IP address is missing"),
        ({"from_ip": None}, "from_ip is required"),
        ({"from_ip": "1.1.1.1", "to": "2.2.2.2"}, "unknown key 'to'"),
        (None, "must be a string"),
    ],
)
def test_ip_range_mistakes(written, message):
    with pytest.raises(PceError) as refused:
        ip_range(written, 3)
    assert message in str(refused.value)


def test_fqdns():
    assert fqdn_entry("app.example.com") == {"fqdn": "app.example.com"}
    assert fqdn_entry("*.example.com") == {"fqdn": "*.example.com"}
    assert fqdn_entry({"fqdn": "x.example.com", "description": "d"}) == {"fqdn": "x.example.com", "description": "d"}
    for bad in ("exa mple.com", "a..b", "*", "x" * 64 + ".com"):
        with pytest.raises(PceError, match="is not a valid domain name"):
            fqdn_entry(bad)


# --- service ports ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "payload"),
    [
        ({"proto": "tcp", "port": 443}, {"proto": 6, "port": 443}),
        ({"proto": "udp", "port": "53", "to_port": 53}, {"proto": 17, "port": 53}),
        ({"proto": 6, "port": 1, "to_port": 1023}, {"proto": 6, "port": 1, "to_port": 1023}),
        ({"proto": "icmp", "icmp_type": 3, "icmp_code": 4}, {"proto": 1, "icmp_type": 3}),
        ({"proto": "icmpv6"}, {"proto": 58}),
        ({"proto": "gre", "port": None}, {"proto": 47}),
    ],
)
def test_service_port_forms(written, payload):
    expected = dict(payload, icmp_code=4) if "icmp_code" in written else payload
    assert service_port(written) == expected


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ({"port": 80}, "proto is required"),
        ({"proto": "http", "port": 80}, "unknown protocol 'http'"),
        ({"proto": "tcp", "port": -1}, "port must be a whole number from 0 to 65535, got -1"),
        ({"proto": "tcp", "port": "eighty"}, "got 'eighty'"),
        ({"proto": "tcp", "port": True}, "got True"),
        ({"proto": "tcp", "to_port": 80}, "to_port needs port"),
        ({"proto": "gre", "port": 80}, "need a protocol with ports (tcp, udp), not gre"),
        ({"proto": "icmp", "icmp_code": 0}, "icmp_code needs icmp_type"),
        ({"proto": "udp", "icmp_type": 0}, "need proto icmp or icmpv6, not udp"),
        ({"proto": "tcp", "service": "x"}, "unknown key 'service'"),
        ("tcp/80", "must be a dict"),
    ],
)
def test_service_port_mistakes(written, message):
    with pytest.raises(PceError) as refused:
        service_port(written, "service_ports[0]")
    assert message in str(refused.value)
    assert str(refused.value).startswith("service_ports[0]")


def test_windows_services():
    assert windows_service({"service_name": "Dnscache"}) == {"service_name": "Dnscache"}
    assert windows_service({"process_name": "a.exe", "proto": "tcp", "port": 8080}) == {
        "process_name": "a.exe",
        "proto": 6,
        "port": 8080,
    }
    with pytest.raises(PceError, match="service_name or process_name is required"):
        windows_service({"service_name": " ", "proto": "tcp"})
    with pytest.raises(PceError, match="proto is required with port"):
        windows_service({"service_name": "x", "port": 80})
    with pytest.raises(PceError, match="unknown key 'display_name'"):
        windows_service({"display_name": "x"})


# --- object types -------------------------------------------------------------------------------------------
def test_draft_and_active_collections(client):
    assert IpList(client).collection_path() == "/orgs/1/sec_policy/draft/ip_lists"
    assert Service(client, policy_version="active").collection_path() == "/orgs/1/sec_policy/active/services"
    with pytest.raises(PceError, match="policy_version must be one of draft, active"):
        LabelGroup(client, policy_version="1")


def test_pending_deletions():
    assert is_pending_deletion({"update_type": "delete"})
    assert is_pending_deletion({"update_type": None, "deleted_at": "2026-01-01T00:00:00Z"})
    assert is_pending_deletion({"deleted": True})
    assert not is_pending_deletion({"update_type": "update", "deleted_at": None})


def test_references_do_not_see_pending_deletions(pce, client):
    gone = pce.add("label_groups", provisioned=True, name="LG", key="loc")
    pce.draft[next(k for k, d in pce.draft.items() if d["href"] == gone["href"])]["update_type"] = "delete"
    live = pce.add("label_groups", name="LG", key="loc")
    assert ReferenceResolver(client).href("label_group", "LG") == live["href"]


def test_locate_reports_a_pending_deletion_of_the_name(pce, client):
    gone = pce.add("ip_lists", provisioned=True, name="IPL")
    pce.draft[next(k for k, d in pce.draft.items() if d["href"] == gone["href"])]["update_type"] = "delete"
    assert IpList(client).locate("IPL") == (None, True)
    assert IpList(client).locate("IPL-2") == (None, False)


def test_views_never_show_hrefs_in_the_diff(pce, client):
    label = pce.add_label("loc", "dc1")
    sub = pce.add("label_groups", name="LG-Sub", key="loc")
    groups = LabelGroup(client)
    obj = {
        "href": "/orgs/1/sec_policy/draft/label_groups/x",
        "name": "LG",
        "key": "loc",
        "labels": [{"href": label["href"]}],
        "sub_groups": [{"href": sub["href"]}],
    }
    assert groups.diff_view(obj) == {
        "name": "LG",
        "key": "loc",
        "description": None,
        "labels": [{"key": "loc", "value": "dc1"}],
        "sub_groups": ["LG-Sub"],
        "external_data_set": None,
        "external_data_reference": None,
    }
    assert groups.view(obj)["href"] == obj["href"]
    assert groups.diff_view(None) == {}


def test_description_none_and_empty_are_the_same(client):
    assert IpList(client).changes({"description": None}, {"description": ""}) == {}
    assert IpList(client).changes({"description": ""}, {"description": "x"}) == {"description": "x"}


# --- provisioning advice ------------------------------------------------------------------------------------
def test_explain_names_what_to_provision_together(client):
    pending = {
        "ip_lists": [{"href": "/orgs/1/sec_policy/draft/ip_lists/5", "name": "IPL-New", "update_type": "create"}],
        "rule_sets": [
            {
                "href": "/orgs/1/sec_policy/draft/rule_sets/9",
                "name": "RS",
                "update_type": "create",
                "rules": [{"consumers": [{"ip_list": {"href": "/orgs/1/sec_policy/draft/ip_lists/5"}}]}],
            }
        ],
    }
    chosen = {"rule_sets": pending["rule_sets"]}
    message = PolicyProvisioner(client).explain({("ip_lists", "5"): pending["rule_sets"]}, pending, chosen)
    assert "IP list 'IPL-New' has pending changes (create) and is used by rule set 'RS'" in message
    assert "Provision them together: add ip_lists: 'IPL-New'." in message
    assert message.endswith("Or name no objects at all to provision every pending change.")


def test_shown_lists_every_kind_sorted_by_name():
    shown = PolicyProvisioner.shown(
        {"services": [{"name": "b", "update_type": "create"}, {"name": "a", "update_type": "delete"}]}
    )
    assert shown["services"] == [{"name": "a", "update_type": "delete"}, {"name": "b", "update_type": "create"}]
    assert shown["label_groups"] == [] and shown["enforcement_boundaries"] == []


def test_unexpected_pending_answer_is_an_error(pce, client):
    pce.intercept = lambda request: Reply(200, []) if request.path.endswith("/pending") else None
    with pytest.raises(PceError, match="answered sec_policy/pending with something unexpected"):
        PolicyProvisioner(client).pending()
