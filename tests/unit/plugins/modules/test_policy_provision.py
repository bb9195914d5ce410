"""The policy_provision module: everything or a named subset, check mode, nothing pending, dependencies."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import policy_provision
from fake_policy_pce import FakePolicyPce, refused
from module_runner import run_module


@pytest.fixture
def pce(serve, tls_files):
    fake = FakePolicyPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    return fake


def run(pce, check_mode=False, diff=False, **args):
    args.setdefault("update_description", "unit test")
    return run_module(policy_provision.main, pce.connection(**args), check_mode=check_mode, diff=diff)


def names(by_kind, kind):
    return [item["name"] for item in by_kind[kind]]


def posts(pce):
    return [request for request in pce.changes() if request.path == "/api/v2/orgs/1/sec_policy"]


@pytest.fixture
def pending(pce):
    """An IP list and a service waiting to be created, a label group with an update, one pending deletion."""
    pce.add("ip_lists", name="IPL-New", ip_ranges=[{"from_ip": "1.1.1.1", "exclusion": False}])
    pce.add("services", name="S-New", service_ports=[{"proto": 6, "port": 80}])
    group = pce.add("label_groups", provisioned=True, name="LG-Changed", key="loc")
    pce.draft[next(k for k, d in pce.draft.items() if d["href"] == group["href"])]["update_type"] = "update"
    old = pce.add("ip_lists", provisioned=True, name="IPL-Old")
    pce.draft[next(k for k, d in pce.draft.items() if d["href"] == old["href"])].update(
        update_type="delete", deleted_at="2026-01-02T00:00:00.000Z"
    )
    pce.add("services", provisioned=True, name="S-Settled")
    return pce


def test_nothing_pending_changes_nothing(pce):
    result = run(pce)
    assert result["changed"] is False
    assert result["policy_version"] is None
    assert result["provisioned"] == {
        "label_groups": [],
        "ip_lists": [],
        "services": [],
        "rule_sets": [],
        "enforcement_boundaries": [],
    }
    assert posts(pce) == []


def test_check_mode_lists_what_is_pending_and_provisions_nothing(pending):
    result = run(pending, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["policy_version"] is None
    assert result["pending"]["ip_lists"] == [
        {"name": "IPL-New", "update_type": "create"},
        {"name": "IPL-Old", "update_type": "delete"},
    ]
    assert result["pending"]["label_groups"] == [{"name": "LG-Changed", "update_type": "update"}]
    assert result["provisioned"] == result["pending"]
    assert result["diff"]["after"]["pending"]["ip_lists"] == []
    assert "href" not in str(result["diff"])
    assert pending.changes() == []


def test_provisions_everything_then_nothing_is_left(pending):
    result = run(pending, update_description="CHG-1: all")
    assert result["changed"] is True
    assert result["policy_version"] == 1
    assert result["workloads_affected"] == 3
    assert names(result["provisioned"], "services") == ["S-New"]
    [post] = posts(pending)
    assert post.body == {"update_description": "CHG-1: all"}
    assert pending.get("ip_lists", "IPL-New", state="active") is not None
    assert pending.get("ip_lists", "IPL-Old", state="active") is None
    again = run(pending)
    assert again["changed"] is False
    assert len(posts(pending)) == 1


def test_provisions_only_the_objects_named(pending):
    hrefs = sorted(pending.get("ip_lists", name)["href"] for name in ("IPL-New", "IPL-Old"))
    result = run(pending, diff=True, ip_lists=["IPL-New", "IPL-Old"], services=["S-Settled"])
    assert result["changed"] is True
    assert names(result["provisioned"], "ip_lists") == ["IPL-New", "IPL-Old"]
    assert result["provisioned"]["services"] == []
    assert result["not_pending"] == {"services": ["S-Settled"]}
    assert names(result["diff"]["after"]["pending"], "services") == ["S-New"]
    [post] = posts(pending)
    assert post.body["update_description"] == "unit test"
    assert list(post.body["change_subset"]) == ["ip_lists"]
    assert sorted(ref["href"] for ref in post.body["change_subset"]["ip_lists"]) == hrefs
    # The rest is still pending; naming the same objects again changes nothing (IPL-Old is gone for good now).
    again = run(pending, ip_lists=["IPL-New", "IPL-Old"], missing="warn")
    assert again["changed"] is False
    assert again["missing"] == {"ip_lists": ["IPL-Old"]}
    assert names(run(pending, check_mode=True)["pending"], "services") == ["S-New"]


def test_an_empty_list_of_names_provisions_nothing(pending):
    result = run(pending, ip_lists=[])
    assert result["changed"] is False
    assert posts(pending) == []


def test_names_of_objects_that_do_not_exist_fail_before_anything_is_provisioned(pending):
    # issue 17 finding 5c: a misspelt name used to be skipped, and the task reported ok.
    for check_mode in (True, False):
        result = run(pending, check_mode=check_mode, ip_lists=["IPL-New", "IPL-Typo"], rule_sets=["RS-Wbe"])
        assert result["failed"] is True
        assert "has no objects named ip_lists: 'IPL-Typo'; rule_sets: 'RS-Wbe'" in result["msg"]
        assert "missing=warn" in result["msg"]
    assert posts(pending) == []


def test_names_that_exist_without_pending_changes_are_not_missing(pending):
    result = run(pending, services=["S-Settled"])
    assert result["changed"] is False
    assert result["missing"] == {}
    assert result["not_pending"] == {"services": ["S-Settled"]}


def test_missing_warn_provisions_the_others_and_warns(pending, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule

    warnings = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning: warnings.append(warning))
    # An object whose deletion was provisioned is gone: a play that runs again says missing=warn.
    result = run(pending, ip_lists=["IPL-New", "IPL-Typo"], deny_rules=["EB-Nope"], missing="warn")
    assert result["changed"] is True
    assert names(result["provisioned"], "ip_lists") == ["IPL-New"]
    assert result["not_pending"] == {"ip_lists": ["IPL-Typo"], "enforcement_boundaries": ["EB-Nope"]}
    assert result["missing"] == {"ip_lists": ["IPL-Typo"], "enforcement_boundaries": ["EB-Nope"]}
    assert warnings == [
        "the PCE's draft policy has no objects named enforcement_boundaries: 'EB-Nope'; ip_lists: 'IPL-Typo'; they"
        " were skipped"
    ]


def test_a_subset_missing_a_new_dependency_is_explained_before_posting(pce):
    new_list = pce.add("ip_lists", name="IPL-Partner")
    pce.add("rule_sets", name="RS-Partner", rules=[{"consumers": [{"ip_list": {"href": new_list["href"]}}]}])
    for check_mode in (True, False):
        result = run(pce, check_mode=check_mode, rule_sets=["RS-Partner"])
        assert result["failed"] is True
        assert (
            "IP list 'IPL-Partner' has pending changes (create) and is used by rule set 'RS-Partner'" in result["msg"]
        )
        assert "add ip_lists: 'IPL-Partner'" in result["msg"]
    assert posts(pce) == []
    together = run(pce, rule_sets=["RS-Partner"], ip_lists=["IPL-Partner"])
    assert together["changed"] is True


def test_deleting_something_active_policy_still_uses_is_explained(pce):
    used = pce.add("ip_lists", provisioned=True, name="IPL-Used")
    rule_set = pce.add(
        "rule_sets", provisioned=True, name="RS-User", rules=[{"consumers": [{"ip_list": {"href": used["href"]}}]}]
    )
    for href in (rule_set["href"], used["href"]):
        pce.draft[next(k for k, d in pce.draft.items() if d["href"] == href)].update(
            update_type="delete", deleted_at="2026-01-02T00:00:00.000Z"
        )
    result = run(pce, ip_lists=["IPL-Used"])
    assert result["failed"] is True
    assert "IP list 'IPL-Used' is to be deleted but rule set 'RS-User' still uses it" in result["msg"]
    assert "add rule_sets: 'RS-User'" in result["msg"]
    assert run(pce, ip_lists=["IPL-Used"], rule_sets=["RS-User"])["changed"] is True


def test_a_pce_without_enforcement_boundaries_is_fine(pending):
    missing = refused("not_found", "Not Found", 404)
    pending.intercept = lambda request: missing if request.path.endswith("/active/enforcement_boundaries") else None
    result = run(pending, services=["S-New"])
    assert result["changed"] is True
    assert names(result["provisioned"], "services") == ["S-New"]


def test_the_pce_dependency_refusal_is_explained_with_names(pending):
    new_list = pending.get("ip_lists", "IPL-New")
    message = f"include them in the change subset: {new_list['href']}."
    pending.intercept = lambda request: (
        refused("provision_dependency_missing", message) if request.method == "POST" else None
    )
    result = run(pending)
    assert result["failed"] is True
    assert "IP list 'IPL-New'" in result["msg"]
    assert new_list["href"] not in result["msg"]


def test_nothing_to_provision_from_the_pce_is_no_change(pending):
    pending.intercept = lambda request: (
        refused("nothing_to_provision", "there are no pending changes") if request.method == "POST" else None
    )
    result = run(pending)
    assert result["changed"] is False
    assert "failed" not in result
    assert result["provisioned"]["ip_lists"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"update_description": "  "}, "update_description must say why"),
        ({"ip_lists": [""]}, "ip_lists must list names"),
        ({"update_description": None}, "update_description must say why"),
    ],
)
def test_bad_input(pce, args, message):
    result = run(pce, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert pce.requests == []
