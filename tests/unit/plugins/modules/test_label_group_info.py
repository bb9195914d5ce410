"""The label_group_info module: draft or active policy, name and key filters, pending deletions left out."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import label_group_info
from fake_policy_pce import FakePolicyPce
from module_runner import run_module


@pytest.fixture
def pce(serve, tls_files):
    fake = FakePolicyPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    dc1 = fake.add_label("loc", "dc1")
    prod = fake.add_label("env", "prod")
    us = fake.add("label_groups", provisioned=True, name="LG-US", key="loc", labels=[{"href": dc1["href"]}])
    fake.add("label_groups", name="LG-All", key="loc", sub_groups=[{"href": us["href"]}])
    fake.add("label_groups", provisioned=True, name="LG-Prod", key="env", labels=[{"href": prod["href"]}])
    return fake


def run(pce, **args):
    return run_module(label_group_info.main, pce.connection(**args))


def names(result):
    return [group["name"] for group in result["label_groups"]]


def test_everything_in_draft_sorted_by_name(pce):
    result = run(pce)
    assert result["changed"] is False
    assert names(result) == ["LG-All", "LG-Prod", "LG-US"]
    all_group = result["label_groups"][0]
    assert all_group["sub_groups"] == ["LG-US"]
    assert all_group["update_type"] == "create"
    assert result["label_groups"][2]["labels"] == [{"key": "loc", "value": "dc1"}]


def test_active_policy_has_only_what_was_provisioned(pce):
    result = run(pce, policy_version="active")
    assert names(result) == ["LG-Prod", "LG-US"]
    assert all(group["href"].startswith("/orgs/1/sec_policy/active/") for group in result["label_groups"])
    assert all(group["update_type"] is None for group in result["label_groups"])
    assert pce.requests[0].path == "/api/v2/orgs/1/sec_policy/active/label_groups"


def test_filters(pce):
    assert names(run(pce, name="LG-US")) == ["LG-US"]
    assert names(run(pce, name="lg-", name_match="partial", key="loc")) == ["LG-All", "LG-US"]
    assert names(run(pce, key="env")) == ["LG-Prod"]
    assert run(pce, name="LG") == {"changed": False, "label_groups": []}


def test_pending_deletions_are_left_out_of_draft(pce):
    pce.draft[next(key for key, doc in pce.draft.items() if doc["name"] == "LG-Prod")].update(
        update_type="delete", deleted_at="2026-01-02T00:00:00.000Z"
    )
    assert names(run(pce)) == ["LG-All", "LG-US"]
    assert names(run(pce, policy_version="active")) == ["LG-Prod", "LG-US"]


def test_bad_policy_version_is_refused(pce):
    result = run(pce, policy_version="latest")
    assert result["failed"] is True
    assert "policy_version must be one of" in result["msg"]
