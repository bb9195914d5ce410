"""The ip_list module against the fake policy PCE: address forms, validation, idempotence, built-in protection."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import ip_list
from fake_policy_pce import FakePolicyPce, refused
from module_runner import run_module

ANY = "Any (0.0.0.0/0 and ::/0)"


@pytest.fixture
def pce(serve, tls_files):
    fake = FakePolicyPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    return fake


def run(pce, check_mode=False, diff=False, **args):
    return run_module(ip_list.main, pce.connection(**args), check_mode=check_mode, diff=diff)


RANGES = [
    "10.0.0.0/8",
    "!10.99.0.0/16",
    "192.168.1.1 - 192.168.1.9",
    "2001:db8::/32",
    {"from_ip": "172.16.0.1", "to_ip": "172.16.0.20", "description": "lab", "exclusion": False},
    {"from_ip": "172.16.0.5", "exclusion": True},
]
PCE_RANGES = [
    {"from_ip": "10.0.0.0/8", "exclusion": False},
    {"from_ip": "10.99.0.0/16", "exclusion": True},
    {"from_ip": "192.168.1.1", "to_ip": "192.168.1.9", "exclusion": False},
    {"from_ip": "2001:db8::/32", "exclusion": False},
    {"from_ip": "172.16.0.1", "to_ip": "172.16.0.20", "description": "lab", "exclusion": False},
    {"from_ip": "172.16.0.5", "exclusion": True},
]


def test_every_address_form_becomes_the_pce_payload(pce):
    fqdns = ["app.example.com", {"fqdn": "*.example.org", "description": "partner"}]
    created = run(pce, name="IPL-Corp", description="corp", ip_ranges=RANGES, fqdns=fqdns)
    assert created["changed"] is True
    assert created["provision_pending"] is True
    [post] = pce.changes()
    assert (post.method, post.path) == ("POST", "/api/v2/orgs/1/sec_policy/draft/ip_lists")
    assert post.body == {
        "name": "IPL-Corp",
        "description": "corp",
        "ip_ranges": PCE_RANGES,
        "fqdns": [{"fqdn": "app.example.com"}, {"fqdn": "*.example.org", "description": "partner"}],
    }
    shown = created["ip_list"]["ip_ranges"][2]
    assert shown == {"from_ip": "192.168.1.1", "to_ip": "192.168.1.9", "description": None, "exclusion": False}
    assert created["ip_list"]["fqdns"][0] == {"fqdn": "app.example.com", "description": None}


def test_second_run_changes_nothing_whatever_the_order_and_spelling(pce):
    run(pce, name="IPL", ip_ranges=["10.0.0.0/8", "2001:db8:0:0::/32", "1.1.1.1-1.1.1.1"])
    again = run(pce, diff=True, name="IPL", ip_ranges=["2001:DB8::/32", "1.1.1.1", " 10.0.0.0/8 "])
    check = run(pce, check_mode=True, name="IPL", ip_ranges=["1.1.1.1", "2001:db8::/32", "10.0.0.0/8"])
    assert again["changed"] is False
    assert check["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert len(pce.changes()) == 1


def test_listed_ranges_replace_the_list_and_the_diff_shows_both(pce):
    pce.add("ip_lists", provisioned=True, name="IPL", ip_ranges=[{"from_ip": "1.1.1.1", "exclusion": False}])
    result = run(pce, diff=True, name="IPL", ip_ranges=["2.2.2.0/24"])
    assert result["changed"] is True
    assert result["diff"]["before"]["ip_ranges"] == [
        {"from_ip": "1.1.1.1", "to_ip": None, "description": None, "exclusion": False}
    ]
    assert result["diff"]["after"]["ip_ranges"] == [
        {"from_ip": "2.2.2.0/24", "to_ip": None, "description": None, "exclusion": False}
    ]
    assert "href" not in result["diff"]["before"]
    assert pce.changes()[0].body == {"ip_ranges": [{"from_ip": "2.2.2.0/24", "exclusion": False}]}
    assert pce.get("ip_lists", "IPL")["update_type"] == "update"


def test_fields_not_given_are_left_alone(pce):
    pce.add("ip_lists", name="IPL", ip_ranges=[{"from_ip": "1.1.1.1", "exclusion": False}], description="x")
    assert run(pce, name="IPL")["changed"] is False
    result = run(pce, name="IPL", external_data_set="ipam", external_data_reference="N-1")
    assert pce.changes()[0].body == {"external_data_set": "ipam", "external_data_reference": "N-1"}
    assert result["ip_list"]["ip_ranges"][0]["from_ip"] == "1.1.1.1"


def test_check_mode_update_changes_nothing(pce):
    pce.add("ip_lists", name="IPL", ip_ranges=[{"from_ip": "1.1.1.1", "exclusion": False}])
    result = run(pce, check_mode=True, diff=True, name="IPL", ip_ranges=["9.9.9.9"])
    assert result["changed"] is True
    assert result["ip_list"]["ip_ranges"][0]["from_ip"] == "9.9.9.9"
    assert pce.changes() == []
    assert pce.get("ip_lists", "IPL")["ip_ranges"] == [{"from_ip": "1.1.1.1", "exclusion": False}]


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (["10.0.0.300"], "ip_ranges[0]: '10.0.0.300' is not an IP address or CIDR block"),
        (["10.1.2.3/8"], "10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?"),
        (["10.0.0.9-10.0.0.1"], "ends before it starts"),
        (["10.0.0.1-2001:db8::1"], "are not the same IP version"),
        (["10.0.0.0/24-10.0.1.0"], "cannot start with a CIDR block"),
        (["10.0.0.1-"], "needs an address on both sides of '-'"),
        (["!"], "an IP address is missing"),
        ([{"to_ip": "10.0.0.1"}], "from_ip is required"),
        ([{"from_ip": "10.0.0.1", "exlcusion": True}], "unknown key 'exlcusion'"),
        ([{"from_ip": "10.0.0.1", "exclusion": "maybe"}], "exclusion must be true or false"),
        (["1.1.1.1", ["2.2.2.2"]], "ip_ranges[1] must be a string"),
    ],
)
def test_bad_addresses_fail_before_any_request(pce, ranges, message):
    result = run(pce, name="IPL", ip_ranges=ranges)
    assert result["failed"] is True
    assert message in result["msg"]
    assert pce.requests == []


@pytest.mark.parametrize(
    ("fqdns", "message"),
    [
        (["not a domain"], "is not a valid domain name"),
        ([{"fqdn": ""}], "fqdn is required"),
        ([{"fqdn": "a.example.com", "ttl": 5}], "unknown key 'ttl'"),
    ],
)
def test_bad_domain_names_fail_before_any_request(pce, fqdns, message):
    result = run(pce, name="IPL", fqdns=fqdns)
    assert result["failed"] is True
    assert message in result["msg"]
    assert pce.requests == []


@pytest.mark.parametrize(
    "args",
    [
        {"ip_ranges": ["10.0.0.0/8"]},
        {"description": "mine now"},
        {"new_name": "Everything"},
        {"state": "absent"},
    ],
)
def test_the_builtin_any_list_is_never_changed(pce, args):
    result = run(pce, name=ANY, **args)
    assert result["failed"] is True
    assert "is built into the PCE and cannot be" in result["msg"]
    assert "IP list 'Any (0.0.0.0/0 and ::/0)'" in result["msg"]
    assert pce.changes() == []


def test_the_builtin_any_list_can_be_asserted_unchanged(pce):
    result = run(pce, name=ANY, ip_ranges=["0.0.0.0/0", "::/0"])
    assert result["changed"] is False
    assert result["provision_pending"] is False


def test_rename_and_delete(pce):
    original = pce.add("ip_lists", provisioned=True, name="IPL-A", ip_ranges=[])
    renamed = run(pce, name="IPL-A", new_name="IPL-B")
    assert renamed["changed"] is True
    assert renamed["ip_list"]["href"] == original["href"]
    assert run(pce, name="IPL-A", new_name="IPL-B")["changed"] is False
    deleted = run(pce, diff=True, name="IPL-B", state="absent")
    assert deleted["changed"] is True
    assert deleted["provision_pending"] is True
    assert deleted["diff"]["before"]["name"] == "IPL-B"
    assert deleted["diff"]["after"] == {}
    assert run(pce, name="IPL-B", state="absent")["changed"] is False
    assert [request.method for request in pce.changes()] == ["PUT", "DELETE"]


def test_two_live_objects_with_one_name_are_an_error_not_a_guess(pce):
    pce.add("ip_lists", name="twin")
    pce.add("ip_lists", name="twin")
    result = run(pce, name="twin", description="x")
    assert result["failed"] is True
    assert "2 IP lists are named 'twin'" in result["msg"]


def test_the_pce_refusal_is_shown_without_traceback(pce):
    pce.add("ip_lists", name="IPL-Taken")
    pce.add("ip_lists", name="IPL-Mine")
    # The PCE refuses a duplicate name (this can only happen in a race; here forced through the fake).
    taken = refused("name_must_be_unique", "a draft named 'IPL-Taken' already exists")
    pce.intercept = lambda request: taken if request.method == "PUT" else None
    result = run(pce, name="IPL-Mine", description="changed")
    assert result["failed"] is True
    assert result["msg"] == "PCE rejected the request: a draft named 'IPL-Taken' already exists (name_must_be_unique)"
