"""The label_info module against the fake PCE: filters select what they say, and nothing found is no error."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import label_info
from module_runner import run_module


@pytest.fixture
def labelled(fake_pce):
    for key, value in [("env", "prod"), ("env", "prod-eu"), ("env", "Preprod"), ("env", "dev"), ("role", "prod")]:
        fake_pce.add_label(key, value, external_data_set="cmdb" if value == "prod" else None)
    return fake_pce


def values(result):
    return [(label["key"], label["value"]) for label in result["labels"]]


def run(fake_pce, **args):
    return run_module(label_info.main, fake_pce.connection(**args))


def test_exact_value_is_the_default(labelled):
    result = run(labelled, key="env", value="prod")
    assert result["changed"] is False
    assert result["labels"] == [
        {
            "href": "/orgs/1/labels/1",
            "key": "env",
            "value": "prod",
            "external_data_set": "cmdb",
            "external_data_reference": None,
        }
    ]
    assert labelled.requests[0].query == {"key": "env", "value": "prod", "max_results": "500"}


def test_partial_value_matches_like_the_pce(labelled):
    result = run(labelled, key="env", value="prod", value_match="partial")
    assert values(result) == [("env", "Preprod"), ("env", "prod"), ("env", "prod-eu")]


def test_value_without_key_spans_keys(labelled):
    assert values(run(labelled, value="prod")) == [("env", "prod"), ("role", "prod")]


def test_by_key_and_everything(labelled):
    assert [pair[1] for pair in values(run(labelled, key="env"))] == ["Preprod", "dev", "prod", "prod-eu"]
    assert len(run(labelled)["labels"]) == 5


def test_by_hrefs_skips_unknown_ones(labelled):
    result = run(labelled, hrefs=["/orgs/1/labels/2", "/orgs/1/labels/99", "/orgs/1/labels/5"])
    assert values(result) == [("env", "prod-eu"), ("role", "prod")]
    assert run(labelled, hrefs=["/orgs/1/labels/2", "/orgs/1/labels/5"], key="role")["labels"][0]["value"] == "prod"


def test_href_of_something_else_is_refused(labelled):
    result = run(labelled, hrefs=["/orgs/1/workloads/1"])
    assert result["failed"] is True
    assert "not a label href" in result["msg"]


def test_nothing_found_is_an_empty_list(labelled):
    assert run(labelled, key="env", value="does-not-exist") == {"changed": False, "labels": []}


def test_pce_errors_fail_without_traceback(labelled):
    result = run(labelled, api_key_username="api_nobody")
    assert result["failed"] is True
    assert "authentication failed" in result["msg"]
