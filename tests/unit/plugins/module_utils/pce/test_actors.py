"""Actors, scopes and services: user form <-> PCE form, and the messages for what does not translate."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.actors import (
    BOUNDARY_ACTORS,
    SCOPE_ENTRIES,
    PolicyTranslator,
    actors_key,
    scopes_key,
    service_key,
    services_key,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_params
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.references import (
    is_pending_deletion,
)
from policy_pce import running_policy_pce


@pytest.fixture
def pce(serve, tls_files):
    policy_pce = running_policy_pce(serve, tls_files)
    policy_pce.web = policy_pce.add_label("role", "web")
    policy_pce.db = policy_pce.add_label("role", "db")
    policy_pce.prod = policy_pce.add_label("env", "prod")
    policy_pce.year = policy_pce.add_label("env", "2024")
    policy_pce.odd = policy_pce.add_label("ip_list", "weird-key")
    policy_pce.lg = policy_pce.add("label_groups", name="LG-web", key="role", labels=[{"href": policy_pce.web["href"]}])
    policy_pce.corp = policy_pce.add("ip_lists", name="Corporate", ip_ranges=[{"from_ip": "10.0.0.0/8"}])
    policy_pce.ssh = policy_pce.add("services", name="SSH", service_ports=[{"port": 22, "proto": 6}])
    policy_pce.host = policy_pce.add_workload("web01.example.com")
    return policy_pce


@pytest.fixture
def translator(pce):
    return PolicyTranslator(client_from_params(pce.connection()))


def label_ref(label):
    return {"label": {"href": label["href"]}}


# --- actors: user -> PCE ----------------------------------------------------------------------------------
@pytest.mark.parametrize("written", ["ams", "AMS", " ams ", {"actors": "ams"}])
def test_all_managed_workloads(translator, written):
    assert translator.actors_to_pce([written], "providers") == [{"actors": "ams"}]


def test_labels_in_every_form(translator, pce):
    written = [{"role": "web"}, {"label": {"role": "db"}}, {"label": {"key": "env", "value": "prod"}}]
    assert translator.actors_to_pce(written, "providers") == [
        label_ref(pce.web),
        label_ref(pce.db),
        label_ref(pce.prod),
    ]
    assert translator.actors_to_pce([{"key": "role", "value": "web"}], "providers") == [label_ref(pce.web)]


def test_a_mapping_of_several_labels_names_each(translator, pce):
    assert translator.actors_to_pce([{"role": "web", "env": "prod"}], "consumers") == [
        label_ref(pce.web),
        label_ref(pce.prod),
    ]


def test_label_values_that_yaml_reads_as_numbers(translator, pce):
    assert translator.actors_to_pce([{"env": 2024}], "consumers") == [label_ref(pce.year)]


def test_named_objects(translator, pce):
    written = [{"label_group": "LG-web"}, {"ip_list": "Corporate"}, {"workload": "web01.example.com"}]
    assert translator.actors_to_pce(written, "consumers") == [
        {"label_group": {"href": pce.lg["href"]}},
        {"ip_list": {"href": pce.corp["href"]}},
        {"workload": {"href": pce.host["href"]}},
    ]


def test_the_same_actor_twice_is_sent_once(translator, pce):
    assert translator.actors_to_pce([{"role": "web"}, {"label": {"role": "web"}}], "providers") == [label_ref(pce.web)]


def test_virtual_services_resolve_by_name(translator):
    class Refs:
        def href(self, kind, name):
            assert (kind, name) == ("virtual_service", "VS-api")
            return "/orgs/1/sec_policy/draft/virtual_services/abc"

    translator.refs = Refs()
    assert translator.actors_to_pce([{"virtual_service": "VS-api"}], "providers") == [
        {"virtual_service": {"href": "/orgs/1/sec_policy/draft/virtual_services/abc"}}
    ]


def test_unknown_label_says_where_and_how_to_fix(translator):
    with pytest.raises(PceError) as raised:
        translator.actors_to_pce([{"role": "web"}, {"role": "nope"}], "rules[2].providers")
    assert str(raised.value).startswith("rules[2].providers[1]: label role=nope does not exist")
    assert "microseg.illumio.label" in str(raised.value)


def test_unknown_actor_kind_is_named(translator):
    with pytest.raises(PceError, match=r"consumers\[0\]: unknown actor kind 'ip_lsit'.*ip_list: NAME"):
        translator.actors_to_pce([{"ip_lsit": "Corporate"}], "consumers")


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("everyone", "unknown actor 'everyone'"),
        ({"actors": "all"}, 'the only value of actors is "ams"'),
        ({"ip_list": "Corporate", "role": "web"}, "an actor names one thing"),
        ({"name": "Corporate"}, "unknown actor"),
        ({"label": "role=web"}, "a label must be written as"),
        ({"ip_list": ""}, "ip list needs a name"),
        (42, "an actor must be ams or a mapping"),
        ({}, "an actor must be ams or a mapping"),
    ],
)
def test_bad_actors(translator, written, message):
    with pytest.raises(PceError, match=message):
        translator.actors_to_pce([written], "providers")


def test_unknown_names_of_objects(translator):
    with pytest.raises(PceError, match=r"providers\[0\]: ip list 'Nowhere' does not exist.*microseg.illumio.ip_list"):
        translator.actors_to_pce([{"ip_list": "Nowhere"}], "providers")
    with pytest.raises(PceError, match=r"providers\[0\]: workload 'db9' does not exist"):
        translator.actors_to_pce([{"workload": "db9"}], "providers")


def test_actors_must_be_a_list(translator):
    with pytest.raises(PceError, match="providers must be a list of actors"):
        translator.actors_to_pce("ams", "providers")


def test_boundaries_take_fewer_kinds(translator):
    with pytest.raises(PceError, match=r"consumers\[0\]: workload can't be used here; allowed: ams, label"):
        translator.actors_to_pce([{"workload": "web01.example.com"}], "consumers", BOUNDARY_ACTORS)


def test_name_exactness_despite_similar_names(translator, pce):
    pce.add("ip_lists", name="Corporate-2", ip_ranges=[])
    pce.add("ip_lists", name="corporate", ip_ranges=[])
    assert translator.actors_to_pce([{"ip_list": "Corporate"}], "c") == [{"ip_list": {"href": pce.corp["href"]}}]


def test_objects_pending_deletion_are_not_found(translator, pce):
    gone = pce.add("ip_lists", name="Old", ip_ranges=[])
    gone.update(update_type="delete", deleted_at="2026-01-01T00:00:00Z")
    new = pce.add("ip_lists", name="Old", ip_ranges=[])
    assert translator.actors_to_pce([{"ip_list": "Old"}], "c") == [{"ip_list": {"href": new["href"]}}]
    assert is_pending_deletion(gone) and not is_pending_deletion(new)


# --- actors: PCE -> user ----------------------------------------------------------------------------------
def test_actors_back_to_user_form(translator, pce):
    pce_actors = [
        {"actors": "ams"},
        label_ref(pce.web),
        label_ref(pce.odd),
        {"label_group": {"href": pce.lg["href"]}},
        {"ip_list": {"href": pce.corp["href"].replace("/draft/", "/active/")}},
        {"workload": {"href": pce.host["href"]}},
        {"label": {"href": "/orgs/1/labels/999"}},
    ]
    assert translator.actors_to_user(pce_actors) == [
        "ams",
        {"role": "web"},
        {"label": {"ip_list": "weird-key"}},  # a label key that is also an actor kind keeps the long form
        {"label_group": "LG-web"},
        {"ip_list": "Corporate"},
        {"workload": "web01.example.com"},
        {"label": {"href": "/orgs/1/labels/999"}},
    ]


def test_user_form_round_trips(translator):
    written = ["ams", {"role": "web"}, {"label_group": "LG-web"}, {"ip_list": "Corporate"}]
    assert translator.actors_to_user(translator.actors_to_pce(written, "p")) == written


# --- scopes -----------------------------------------------------------------------------------------------
def test_scopes(translator, pce):
    assert translator.scopes_to_pce([[{"role": "web"}, {"env": "prod"}]]) == [[label_ref(pce.web), label_ref(pce.prod)]]
    assert translator.scopes_to_pce([{"role": "web", "env": "prod"}]) == [[label_ref(pce.web), label_ref(pce.prod)]]
    assert translator.scopes_to_pce([[{"label_group": "LG-web"}]]) == [[{"label_group": {"href": pce.lg["href"]}}]]


@pytest.mark.parametrize("everything", [[], [[]], [{}]])
def test_no_scope_is_every_workload(translator, everything):
    assert translator.scopes_to_pce(everything) == [[]]


def test_scope_with_two_labels_of_one_key_is_refused(translator):
    with pytest.raises(PceError, match=r"scopes\[0\]: a scope can hold only one label or label group per key; 'role'"):
        translator.scopes_to_pce([[{"role": "web"}, {"label_group": "LG-web"}]])


def test_scope_takes_only_labels_and_label_groups(translator):
    with pytest.raises(PceError, match=r"scopes\[1\]\[0\]: ip list can't be used here"):
        translator.scopes_to_pce([[{"role": "web"}], [{"ip_list": "Corporate"}]])
    with pytest.raises(PceError, match=r"scopes\[0\]: a scope is a list"):
        translator.scopes_to_pce(["role=web"])
    assert set(SCOPE_ENTRIES) == {"label", "label_group"}


def test_scopes_back_to_user_form(translator, pce):
    assert translator.scopes_to_user([[label_ref(pce.web), {"label_group": {"href": pce.lg["href"]}}]]) == [
        [{"role": "web"}, {"label_group": "LG-web"}]
    ]
    assert translator.scopes_to_user([]) == [[]]
    assert translator.scopes_to_user([[]]) == [[]]


# --- services ---------------------------------------------------------------------------------------------
def test_services_in_every_form(translator, pce):
    written = [
        "SSH",
        {"name": "All Services"},
        {"port": 443, "proto": "tcp"},
        {"port": "8080", "to_port": 8090, "proto": "TCP"},
        {"port": 53, "to_port": 53, "proto": 17},
        {"proto": "icmp", "icmp_type": 8, "icmp_code": 0},
        {"proto": "all"},
        {"proto": "gre"},
    ]
    assert translator.services_to_pce(written, "services") == [
        {"href": pce.ssh["href"]},
        {"href": pce.find("services", "All Services")["href"]},
        {"proto": 6, "port": 443},
        {"proto": 6, "port": 8080, "to_port": 8090},
        {"proto": 17, "port": 53},
        {"proto": 1, "icmp_type": 8, "icmp_code": 0},
        {"proto": -1},
        {"proto": 47},
    ]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ({"port": 22, "proto": "tcpp"}, r"services\[0\]: unknown protocol 'tcpp': use one of .*tcp"),
        ({"port": 22}, "proto is required"),
        ({"port": 22, "proto": "icmp"}, "port goes only with tcp, udp or sctp"),
        ({"to_port": 22, "proto": "tcp"}, "to_port needs port"),
        ({"port": 90, "to_port": 80, "proto": "tcp"}, "to_port 80 is below port 90"),
        ({"port": 70000, "proto": "tcp"}, "port must be a whole number from 0 to 65535"),
        ({"proto": "tcp", "icmp_type": 8}, "icmp_type goes only with icmp or icmpv6"),
        ({"port": 22, "proto": "tcp", "protocol": "tcp"}, "unknown service field"),
        ({"name": "SSH", "port": 22}, "either {name: NAME} or a port"),
        ("Telnet", r"service 'Telnet' does not exist on the PCE.*microseg.illumio.service"),
        ("", "a service name must not be empty"),
        (22, "is not a service"),
    ],
)
def test_bad_services(translator, written, message):
    with pytest.raises(PceError, match=message):
        translator.services_to_pce([written], "services")


def test_services_back_to_user_form(translator, pce):
    pce_services = [
        {"href": pce.ssh["href"]},
        {"proto": 6, "port": 443},
        {"proto": 6, "port": 8080, "to_port": 8090},
        {"proto": 17, "port": 53, "to_port": 53},
        {"proto": 1, "icmp_type": 8},
        {"proto": -1},
        {"proto": 99},
    ]
    assert translator.services_to_user(pce_services) == [
        "SSH",
        {"port": 443, "proto": "tcp"},
        {"port": 8080, "to_port": 8090, "proto": "tcp"},
        {"port": 53, "proto": "udp"},
        {"proto": "icmp", "icmp_type": 8},
        {"proto": "all"},
        {"proto": 99},
    ]


# --- comparing --------------------------------------------------------------------------------------------
def test_keys_ignore_order_and_expansion():
    one = [{"label": {"href": "/orgs/1/labels/1", "key": "role", "value": "web"}}, {"actors": "ams"}]
    other = [{"actors": "ams"}, {"label": {"href": "/orgs/1/labels/1"}}]
    assert actors_key(one) == actors_key(other)
    assert service_key({"proto": 6, "port": 22, "to_port": 22}) == service_key({"port": 22, "proto": 6})
    assert services_key([{"href": "/a"}, {"proto": 6, "port": 1}]) == services_key(
        [{"port": 1, "proto": 6}, {"href": "/a"}]
    )
    assert scopes_key([]) == scopes_key([[]]) == scopes_key(None)
    assert scopes_key([[{"label": {"href": "/l/1"}}]]) != scopes_key([[]])
