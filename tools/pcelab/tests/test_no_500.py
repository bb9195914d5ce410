"""Odd bodies and query strings on every writable endpoint get a 4xx answer, never a 500 (in-process)."""

from __future__ import annotations

import itertools

import pytest
from conftest import API_SECRET, API_USER, ORG
from pcelab.app import build_app
from pcelab.core import Lab
from starlette.testclient import TestClient

ODD_VALUES = [None, 0, 1.5, True, "", [], [None], ["x"], {}, {"href": 1}, {"href": "/orgs/1/x"}, [{}],
              [{"href": None}], [[{"label": None}]], [{"label": {"href": 3}}], "9" * 400]  # fmt: skip
ACTORS = {"providers": [{"actors": "ams"}], "consumers": [{"actors": "ams"}], "ingress_services": [{"proto": -1}]}
RULE_FIELDS = ["providers", "consumers", "ingress_services", "resolve_labels_as", "enabled", "override"]


@pytest.fixture(scope="module")
def quiet():
    core = Lab(":memory:")
    core.add_api_key(API_USER, API_SECRET)
    with TestClient(build_app(core), base_url="https://testserver/api/v2", raise_server_exceptions=False) as client:
        client.auth = (API_USER, API_SECRET)
        label = client.post(f"{ORG}/labels", json={"key": "role", "value": "R"}).json()
        rule_set = client.post(f"{ORG}/sec_policy/draft/rule_sets", json={"name": "RS", "scopes": [[]]}).json()
        workload = client.post(f"{ORG}/workloads", json={"hostname": "w"}).json()
        group = client.post(f"{ORG}/sec_policy/draft/label_groups", json={"name": "G", "key": "role"}).json()
        # (method, path, a valid body, the fields to spoil one at a time)
        client.targets = [
            ("POST", f"{ORG}/labels", {"key": "env", "value": "V"}, ["key", "value", "external_data_set"]),
            ("PUT", label["href"], {}, ["key", "value"]),
            ("POST", f"{ORG}/sec_policy/draft/ip_lists", {"name": "I"}, ["name", "ip_ranges", "fqdns"]),
            ("POST", f"{ORG}/sec_policy/draft/services", {"name": "S"}, ["service_ports", "windows_services"]),
            ("POST", f"{ORG}/sec_policy/draft/label_groups", {"name": "G2", "key": "role"},
             ["key", "labels", "sub_groups"]),
            ("PUT", group["href"], {}, ["labels", "sub_groups"]),
            ("POST", f"{ORG}/sec_policy/draft/rule_sets", {"name": "RS2", "scopes": [[]]},
             ["scopes", "rules", "enabled", "ip_tables_rules"]),
            ("PUT", rule_set["href"], {}, ["scopes", "rules"]),
            ("POST", f"{rule_set['href']}/sec_rules", ACTORS, RULE_FIELDS),
            ("POST", f"{rule_set['href']}/deny_rules", ACTORS, RULE_FIELDS),
            ("POST", f"{ORG}/sec_policy/draft/enforcement_boundaries", {"name": "E", **ACTORS},
             ["providers", "consumers", "ingress_services", "network_type"]),
            ("POST", f"{ORG}/sec_policy", {}, ["change_subset", "update_description"]),
            ("POST", f"{ORG}/workloads", {"hostname": "h"},
             ["labels", "interfaces", "hostname", "public_ip", "online", "enforcement_mode"]),
            ("PUT", workload["href"], {}, ["labels", "interfaces", "ignored_interface_names"]),
            ("PUT", f"{ORG}/workloads/bulk_update", {"href": workload["href"]}, ["href", "labels"]),
            ("PUT", f"{ORG}/workloads/bulk_delete", {"href": workload["href"]}, ["href"]),
            ("PUT", "https://testserver/lab/admin/faults", {}, ["rate", "status", "next"]),
            ("PUT", "https://testserver/lab/admin/clock", {}, ["offset_seconds"]),
        ]  # fmt: skip
        yield client
    core.close()


def _check(answer):
    assert answer.status_code < 500, answer.text
    assert isinstance(answer.json(), list | dict)


def test_whole_bodies_of_every_type(quiet):
    for (method, path, _body, _fields), body in itertools.product(quiet.targets, ODD_VALUES):
        answer = quiet.request(method, path, json=body)
        if answer.status_code >= 400:
            _check(answer)
        else:
            assert answer.status_code < 300


def test_odd_field_values(quiet):
    for method, path, valid, fields in quiet.targets:
        for name, value in itertools.product(fields, ODD_VALUES):
            body = {**valid, name: value}
            answer = quiet.request(method, path, json=[body] if "bulk" in path else body)
            if answer.status_code >= 400:
                _check(answer)


@pytest.mark.parametrize(
    "query",
    [
        {"labels": "[[1]]"},
        {"labels": "{}"},
        {"max_results": "-3"},
        {"online": "1"},
        {"hostname": ""},
        {"ip_address": "::g"},
        {"timestamp[gte]": "2024-13-45"},
        {"name": "%"},
    ],
)
def test_odd_query_strings(quiet, query):
    for path in (f"{ORG}/workloads", f"{ORG}/labels", f"{ORG}/events", f"{ORG}/sec_policy/draft/ip_lists"):
        answer = quiet.get(path, params=query)
        assert answer.status_code < 500, (path, query, answer.text)
