"""The label_group module against the fake policy PCE: members, purge, sub-groups, rename, deletion, failures."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import label_group
from fake_policy_pce import FakePolicyPce
from module_runner import run_module


@pytest.fixture
def pce(serve, tls_files):
    fake = FakePolicyPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    for key, value in [("loc", "dc1"), ("loc", "dc2"), ("loc", "dc10"), ("env", "prod")]:
        fake.add_label(key, value)
    return fake


def run(pce, check_mode=False, diff=False, **args):
    return run_module(label_group.main, pce.connection(**args), check_mode=check_mode, diff=diff)


def href(pce, key, value):
    return next(label["href"] for label in pce.labels if (label["key"], label["value"]) == (key, value))


def test_check_mode_predicts_creation_without_posting(pce):
    result = run(pce, check_mode=True, diff=True, name="LG-DCs", key="loc", labels=["dc1", {"loc": "dc2"}])
    assert result["changed"] is True
    assert result["provision_pending"] is True
    assert result["label_group"]["href"] is None
    assert result["diff"] == {
        "before": {},
        "after": {
            "name": "LG-DCs",
            "key": "loc",
            "description": None,
            "labels": [{"key": "loc", "value": "dc1"}, {"key": "loc", "value": "dc2"}],
            "sub_groups": [],
            "external_data_set": None,
            "external_data_reference": None,
        },
    }
    assert pce.changes() == []


def test_creates_with_label_hrefs_then_is_idempotent(pce):
    args = {"name": "LG-DCs", "key": "loc", "labels": ["dc1", {"key": "loc", "value": "dc2"}], "description": "d"}
    created = run(pce, **args)
    assert created["changed"] is True
    [post] = pce.changes()
    assert (post.method, post.path) == ("POST", "/api/v2/orgs/1/sec_policy/draft/label_groups")
    assert post.body == {
        "name": "LG-DCs",
        "key": "loc",
        "description": "d",
        "labels": [{"href": href(pce, "loc", "dc1")}, {"href": href(pce, "loc", "dc2")}],
    }
    assert created["label_group"]["href"].startswith("/orgs/1/sec_policy/draft/label_groups/")
    # Members given in another order and form are the same set.
    again = run(pce, diff=True, **{**args, "labels": [{"loc": "dc2"}, "dc1"]})
    assert again["changed"] is False
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["provision_pending"] is True  # created, not provisioned yet
    assert len(pce.changes()) == 1


def test_listed_labels_replace_the_members(pce):
    pce.add("label_groups", name="LG", key="loc", labels=[{"href": href(pce, "loc", "dc1")}])
    result = run(pce, diff=True, name="LG", labels=["dc2", "dc10"])
    assert result["changed"] is True
    assert result["diff"]["before"]["labels"] == [{"key": "loc", "value": "dc1"}]
    assert result["diff"]["after"]["labels"] == [{"key": "loc", "value": "dc2"}, {"key": "loc", "value": "dc10"}]
    [put] = pce.changes()
    assert put.body == {"labels": [{"href": href(pce, "loc", "dc2")}, {"href": href(pce, "loc", "dc10")}]}
    emptied = run(pce, name="LG", labels=[])
    assert emptied["changed"] is True
    assert emptied["label_group"]["labels"] == []


def test_members_are_left_alone_when_not_given(pce):
    pce.add("label_groups", name="LG", key="loc", labels=[{"href": href(pce, "loc", "dc1")}], description="old")
    result = run(pce, name="LG", description="new")
    assert result["changed"] is True
    assert pce.changes()[0].body == {"description": "new"}
    assert result["label_group"]["labels"] == [{"key": "loc", "value": "dc1"}]


def test_sub_groups_by_name(pce):
    us = pce.add("label_groups", name="LG-US", key="loc", labels=[{"href": href(pce, "loc", "dc1")}])
    result = run(pce, diff=True, name="LG-All", key="loc", sub_groups=["LG-US"])
    assert result["changed"] is True
    assert pce.changes()[0].body["sub_groups"] == [{"href": us["href"]}]
    assert result["diff"]["after"]["sub_groups"] == ["LG-US"]
    assert "href" not in str(result["diff"])
    assert run(pce, name="LG-All", key="loc", sub_groups=["LG-US"])["changed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"labels": ["dc3"]}, "label loc=dc3 does not exist"),
        ({"labels": [{"env": "prod"}]}, "every member must have the group's key 'loc'"),
        ({"sub_groups": ["nope"]}, "label group 'nope' (named in sub_groups) does not exist"),
        ({"sub_groups": ["LG-Env"]}, "has key 'env' and cannot be a sub-group"),
        ({"sub_groups": ["LG-New"]}, "cannot contain itself"),
    ],
)
def test_bad_members_are_named_before_any_change(pce, args, message):
    pce.add("label_groups", name="LG-Env", key="env")
    result = run(pce, name="LG-New", key="loc", **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert pce.changes() == []


def test_a_cycle_through_sub_groups_is_refused(pce):
    outer = pce.add("label_groups", name="LG-Outer", key="loc")
    pce.add("label_groups", name="LG-Inner", key="loc", sub_groups=[{"href": outer["href"]}])
    result = run(pce, name="LG-Outer", sub_groups=["LG-Inner"])
    assert result["failed"] is True
    assert "already contains label group 'LG-Outer'" in result["msg"]
    assert pce.changes() == []


def test_key_is_required_to_create_and_cannot_change(pce):
    missing = run(pce, name="LG", labels=["dc1"])
    assert missing["failed"] is True
    assert "key is required to create label group 'LG'" in missing["msg"]
    pce.add("label_groups", name="LG", key="loc")
    changed = run(pce, name="LG", key="env")
    assert changed["failed"] is True
    assert "cannot be changed" in changed["msg"]
    assert pce.changes() == []


def test_plain_values_use_the_key_of_the_existing_group(pce):
    pce.add("label_groups", name="LG", key="loc")
    result = run(pce, name="LG", labels=["dc1"])
    assert result["changed"] is True
    assert result["label_group"]["labels"] == [{"key": "loc", "value": "dc1"}]


def test_rename_keeps_the_href(pce):
    group = pce.add("label_groups", name="LG-Old", key="loc", provisioned=True)
    renamed = run(pce, diff=True, name="LG-Old", new_name="LG-New")
    assert renamed["changed"] is True
    assert renamed["label_group"]["href"] == group["href"]
    assert (renamed["diff"]["before"]["name"], renamed["diff"]["after"]["name"]) == ("LG-Old", "LG-New")
    assert pce.changes()[0].body == {"name": "LG-New"}
    again = run(pce, name="LG-Old", new_name="LG-New")
    assert again["changed"] is False
    assert again["provision_pending"] is True


def test_rename_when_both_exist_fails(pce):
    pce.add("label_groups", name="A", key="loc")
    pce.add("label_groups", name="B", key="loc")
    result = run(pce, name="A", new_name="B")
    assert result["failed"] is True
    assert "both exist" in result["msg"]


def test_absent_deletes_a_never_provisioned_group_for_good(pce):
    pce.add("label_groups", name="LG", key="loc")
    preview = run(pce, check_mode=True, diff=True, name="LG", state="absent")
    assert preview["changed"] is True
    assert preview["diff"]["after"] == {}
    assert pce.changes() == []
    removed = run(pce, name="LG", state="absent")
    assert removed == {
        "changed": True,
        "label_group": {},
        "provision_pending": False,
        "diff": removed["diff"],
    }
    assert pce.get("label_groups", "LG") is None
    assert run(pce, name="LG", state="absent")["changed"] is False


def test_deleting_a_provisioned_group_leaves_a_pending_deletion(pce):
    pce.add("label_groups", name="LG", key="loc", provisioned=True)
    removed = run(pce, name="LG", state="absent")
    assert removed["changed"] is True
    assert removed["provision_pending"] is True
    assert pce.get("label_groups", "LG")["update_type"] == "delete"
    # Listed by the PCE, but gone: deleting again changes nothing and does not send DELETE twice.
    again = run(pce, name="LG", state="absent")
    assert again["changed"] is False
    assert again["provision_pending"] is True
    assert [request.method for request in pce.changes()] == ["DELETE"]
    # And a new group of the same name can be created while the deletion is pending.
    recreated = run(pce, name="LG", key="loc")
    assert recreated["changed"] is True
    assert recreated["label_group"]["href"] != removed["diff"]["before"].get("href")


def test_group_in_use_fails_with_the_pce_reason(pce):
    inner = pce.add("label_groups", name="LG-Inner", key="loc")
    pce.add("label_groups", name="LG-Outer", key="loc", sub_groups=[{"href": inner["href"]}])
    result = run(pce, name="LG-Inner", state="absent")
    assert result["failed"] is True
    assert "LG-Outer" in result["msg"]
    assert "(object_in_use)" in result["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": ""}, "name must not be empty"),
        ({"name": "LG", "new_name": " "}, "new_name must not be empty"),
        ({"name": "LG", "new_name": "x", "state": "absent"}, "only goes with state=present"),
        ({"name": "LG", "key": ""}, "key must not be empty"),
        ({"name": "LG", "key": "loc", "labels": [{"loc": "a", "env": "b"}]}, "a label must be written as"),
        ({"name": "LG", "key": "loc", "labels": [["dc1"]]}, "must be a string"),
        ({"name": "LG", "key": "loc", "sub_groups": [""]}, "must be names"),
        ({"name": "LG", "state": "gone"}, "state must be one of"),
    ],
)
def test_bad_input_fails_before_any_request(pce, args, message):
    result = run(pce, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert pce.requests == []
