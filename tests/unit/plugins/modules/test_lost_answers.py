"""Issue 17: creates whose answer is lost (the PCE stored them, then the connection dropped, or a gateway answered
502 / 504) are looked up, never resent blindly; objects another run made first are converged, not duplicated;
and a failure says what was changed before it.

The fake PCEs store the request, then lose its answer (TestServer.fault). Every create path is covered.
"""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import (
    deny_rule,
    ip_list,
    label,
    label_group,
    pairing_profile,
    rule_set,
    security_rule,
    service,
    workload,
    workload_bulk,
)
from fake_pce_workloads import start_workload_pce
from fake_policy_pce import FakePolicyPce
from module_runner import run_module
from policy_pce import running_policy_pce

LOSSES = ["drop", 502, 504]


@pytest.fixture
def workload_pce(serve, tls_files):
    pce = start_workload_pce(serve, tls_files)
    for key, value in (("role", "web"), ("env", "prod")):
        pce.add_label(key, value)
    return pce


@pytest.fixture
def draft_pce(serve, tls_files):
    pce = FakePolicyPce()
    pce.server = serve(pce.handle)
    pce.server_ca = tls_files.ca_cert
    pce.add_label("loc", "fra")
    return pce


@pytest.fixture
def rules_pce(serve, tls_files):
    pce = running_policy_pce(serve, tls_files)
    for key, value in (("role", "web"), ("role", "db"), ("app", "crm")):
        pce.add_label(key, value)
    return pce


def run(main, pce, **args):
    return run_module(main.main, pce.connection(max_retries=2, **args))


def live_workloads(pce, hostname):
    return [w for w in pce.workloads.values() if w["hostname"] == hostname and not w["deleted"]]


# --- labels ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSSES)
def test_label_create_whose_answer_is_lost_is_found_not_made_twice(fake_pce, loss):
    fault = fake_pce.server.fault("POST", r"/labels$", loss)
    result = run(label, fake_pce, key="role", value="web")
    assert fault.hits, "the fault never fired"
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    made = [lbl for lbl in fake_pce.labels.values() if (lbl["key"], lbl["value"]) == ("role", "web")]
    assert len(made) == 1
    assert result["label"]["href"] == made[0]["href"]
    assert len([r for r in fake_pce.requests if r.method == "POST"]) == 1


def test_label_made_by_another_run_meanwhile_converges(fake_pce):
    fake_pce.server.fault("POST", r"/labels$", lambda request: fake_pce.add_label("role", "web"))
    result = run(label, fake_pce, key="role", value="web", external_data_set="cmdb")
    assert result.get("failed") is not True, result
    made = [lbl for lbl in fake_pce.labels.values() if (lbl["key"], lbl["value"]) == ("role", "web")]
    assert len(made) == 1
    assert made[0]["external_data_set"] == "cmdb"  # then brought to the wanted state
    assert result["changed"] is True


def test_label_delete_whose_answer_is_lost_is_done(fake_pce):
    fake_pce.add_label("role", "old")
    fake_pce.server.fault("DELETE", r"/labels/\d+$", "drop")
    result = run(label, fake_pce, key="role", value="old", state="absent")
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert fake_pce.find("role", "old") is None


# --- workloads -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSSES)
def test_workload_create_whose_answer_is_lost_is_found_not_made_twice(workload_pce, loss):
    fault = workload_pce.server.fault("POST", r"/workloads$", loss)
    result = run(workload, workload_pce, hostname="web1.example", labels={"role": "web"})
    assert fault.hits
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    made = live_workloads(workload_pce, "web1.example")
    assert len(made) == 1
    assert result["workload"]["href"] == made[0]["href"]


def test_workload_made_by_a_concurrent_run_is_not_duplicated(workload_pce):
    """The other run's POST lands just before this one's: this run deletes the newer one it made."""
    other = {}
    workload_pce.server.fault(
        "POST", r"/workloads$", lambda request: other.setdefault("doc", workload_pce.add_workload("web1.example"))
    )
    result = run(workload, workload_pce, hostname="web1.example", labels={"role": "web"})
    assert result.get("failed") is not True, result
    made = live_workloads(workload_pce, "web1.example")
    assert [w["href"] for w in made] == [other["doc"]["href"]]  # the older one stays
    assert result["workload"]["href"] == other["doc"]["href"]
    assert result["workload"]["labels"] == {"role": "web"}  # and is brought to the wanted state
    assert "another run created a workload" in result["warnings"][0]


@pytest.mark.parametrize("loss", LOSSES)
def test_workload_bulk_create_whose_answer_is_lost_makes_each_workload_once(workload_pce, loss):
    fault = workload_pce.server.fault("PUT", r"/workloads/bulk_create$", loss)
    items = [{"hostname": "a.example", "labels": {"role": "web"}}, {"hostname": "b.example"}]
    result = run(workload_bulk, workload_pce, workloads=items)
    assert fault.hits
    assert result.get("failed") is not True, result
    assert result["summary"]["created"] == 2 and result["summary"]["failed"] == 0
    assert sorted(result["created"]) == ["a.example", "b.example"]
    assert len(live_workloads(workload_pce, "a.example")) == 1
    assert len(live_workloads(workload_pce, "b.example")) == 1
    again = run(workload_bulk, workload_pce, workloads=items)
    assert again["changed"] is False and again.get("failed") is not True, again


def test_workload_bulk_resends_only_what_the_lost_request_did_not_make(workload_pce):
    """The PCE stored a.example but not b.example before the answer was lost: only b.example is sent again."""
    workload_pce.server.fault("PUT", r"/workloads/bulk_create$", "drop", before=lambda request: request.body.pop())
    items = [{"hostname": "a.example"}, {"hostname": "b.example"}]
    result = run(workload_bulk, workload_pce, workloads=items)
    assert result.get("failed") is not True, result
    creates = [r.body for r in workload_pce.requests if r.path.endswith("bulk_create")]
    assert [[item["hostname"] for item in body] for body in creates] == [["a.example"], ["b.example"]]
    assert sorted(result["created"]) == ["a.example", "b.example"]
    assert all(len(live_workloads(workload_pce, h)) == 1 for h in ("a.example", "b.example"))


def test_workload_bulk_made_by_a_concurrent_run_is_not_duplicated(workload_pce):
    items = [{"hostname": f"h{n}.example", "labels": {"role": "web"}} for n in range(3)]
    theirs = {}

    def other_run(request):
        for item in items:
            theirs[item["hostname"]] = workload_pce.add_workload(item["hostname"], labels={"role": "web"})

    workload_pce.server.fault("PUT", r"/workloads/bulk_create$", other_run)
    result = run(workload_bulk, workload_pce, workloads=items)
    assert result.get("failed") is not True, result
    for item in items:
        assert [w["href"] for w in live_workloads(workload_pce, item["hostname"])] == [theirs[item["hostname"]]["href"]]
    assert result["created"] == []
    assert result["summary"]["unchanged"] == 3
    assert len(result["warnings"]) == 1
    assert "with 3 of these hostnames at the same time" in result["warnings"][0]


@pytest.mark.parametrize("loss", LOSSES)
def test_workload_bulk_delete_whose_answer_is_lost_reports_what_happened(workload_pce, loss):
    for hostname in ("a.example", "b.example"):
        workload_pce.add_workload(hostname)
    workload_pce.server.fault("PUT", r"/workloads/bulk_delete$", loss)
    items = [{"hostname": "a.example"}, {"hostname": "b.example"}]
    result = run(workload_bulk, workload_pce, workloads=items, state="absent")
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert sorted(result["deleted"]) == ["a.example", "b.example"]
    assert result["summary"]["failed"] == 0
    assert not live_workloads(workload_pce, "a.example") and not live_workloads(workload_pce, "b.example")


def test_workload_bulk_delete_of_workloads_another_run_deleted_is_not_a_failure(workload_pce):
    docs = [workload_pce.add_workload(hostname) for hostname in ("a.example", "b.example")]
    workload_pce.server.fault("PUT", r"/workloads/bulk_delete$", lambda request: docs[0].update(deleted=True))
    items = [{"hostname": "a.example"}, {"hostname": "b.example"}]
    result = run(workload_bulk, workload_pce, workloads=items, state="absent")
    assert result.get("failed") is not True, result
    assert result["deleted"] == ["b.example"]
    assert result["summary"]["failed"] == 0


def test_workload_bulk_failure_after_creating_says_what_was_created(workload_pce):
    workload_pce.server.fault("PUT", r"/workloads/bulk_update$", 500, times=10)
    workload_pce.add_workload("old.example")
    items = [{"hostname": "new.example"}, {"hostname": "old.example", "description": "changed"}]
    result = run(workload_bulk, workload_pce, workloads=items)
    assert result["failed"] is True
    assert result["changed"] is True
    assert result["created"] == ["new.example"]
    assert "The others were changed: new.example" in result["msg"]


# --- pairing profiles ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", LOSSES)
def test_pairing_profile_create_whose_answer_is_lost_is_found(workload_pce, loss):
    workload_pce.server.fault("POST", r"/pairing_profiles$", loss)
    result = run(pairing_profile, workload_pce, name="Linux web", enforcement_mode="idle")
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert [p["name"] for p in workload_pce.profiles.values()] == ["Linux web"]
    assert result["pairing_profile"]["href"] == workload_pce.profile("Linux web")["href"]


def test_pairing_profile_made_by_another_run_meanwhile_converges(workload_pce):
    workload_pce.server.fault("POST", r"/pairing_profiles$", lambda request: workload_pce.add_profile("Linux web"))
    result = run(pairing_profile, workload_pce, name="Linux web", enforcement_mode="idle")
    assert result.get("failed") is not True, result
    assert [p["enforcement_mode"] for p in workload_pce.profiles.values()] == ["idle"]


# --- draft policy objects --------------------------------------------------------------------------------------
DRAFTS = [
    (ip_list, "ip_lists", {"ip_ranges": ["10.0.0.0/8"]}),
    (service, "services", {"service_ports": [{"port": 443, "proto": "tcp"}]}),
    (label_group, "label_groups", {"key": "loc", "labels": ["fra"]}),
]


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(("module", "kind", "options"), DRAFTS, ids=[kind for _m, kind, _o in DRAFTS])
def test_draft_create_whose_answer_is_lost_is_found_not_made_twice(draft_pce, module, kind, options, loss):
    fault = draft_pce.server.fault("POST", rf"/sec_policy/draft/{kind}$", loss)
    result = run(module, draft_pce, name="Made once", **options)
    assert fault.hits
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    named = [doc for (k, _id), doc in draft_pce.draft.items() if k == kind and doc["name"] == "Made once"]
    assert len(named) == 1
    assert result[module.__name__.rsplit(".", 1)[-1]]["href"] == named[0]["href"]


@pytest.mark.parametrize(("module", "kind", "options"), DRAFTS, ids=[kind for _m, kind, _o in DRAFTS])
def test_draft_made_by_another_run_meanwhile_converges(draft_pce, module, kind, options):
    fields = {"key": "loc"} if kind == "label_groups" else {}
    draft_pce.server.fault(
        "POST", rf"/sec_policy/draft/{kind}$", lambda request: draft_pce.add(kind, name="Made once", **fields)
    )
    result = run(module, draft_pce, name="Made once", description="wanted", **options)
    assert result.get("failed") is not True, result
    named = [doc for (k, _id), doc in draft_pce.draft.items() if k == kind and doc["name"] == "Made once"]
    assert len(named) == 1
    assert named[0]["description"] == "wanted"


# --- rule sets, rules, deny rules, enforcement boundaries ------------------------------------------------------
WEB = {"providers": [{"role": "web"}], "consumers": ["ams"], "services": [{"port": 443, "proto": "tcp"}]}
DB = {"providers": [{"role": "db"}], "consumers": [{"role": "web"}], "services": [{"port": 5432, "proto": "tcp"}]}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("where", ["rule_sets$", "sec_rules$"])
def test_rule_set_and_rule_creates_whose_answer_is_lost_are_found(rules_pce, loss, where):
    rules_pce.server.fault("POST", where, loss)
    result = run(rule_set, rules_pce, name="RS", rules=[WEB, DB])
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    found = [doc for doc in rules_pce.draft["rule_sets"].values() if doc["name"] == "RS"]
    assert len(found) == 1
    assert len(found[0]["rules"]) == 2
    assert result["rule_set"]["href"] == found[0]["href"]
    assert sorted(rule["href"] for rule in result["rule_set"]["rules"]) == sorted(r["href"] for r in found[0]["rules"])


def test_rule_set_whose_rule_fails_says_what_it_created(rules_pce):
    rules_pce.server.fault("POST", r"/sec_rules$", 500, times=10)
    result = run(rule_set, rules_pce, name="RS", rules=[WEB])
    assert result["failed"] is True
    assert result["changed"] is True
    href = rules_pce.find("rule_sets", "RS")["href"]
    assert result["changed_hrefs"] == [href]
    assert href in result["msg"] and "500" in result["msg"]
    assert result["rule_set"]["href"] == href


def test_rule_set_whose_second_rule_fails_names_the_rule_set_and_first_rule(rules_pce):
    rules_pce.server.fault("POST", r"/sec_rules$", lambda request: None)  # the first goes through
    rules_pce.server.fault("POST", r"/sec_rules$", 500, times=10)
    result = run(rule_set, rules_pce, name="RS", rules=[WEB, DB])
    rs = rules_pce.find("rule_sets", "RS")
    assert result["failed"] is True and result["changed"] is True
    assert result["changed_hrefs"] == [rs["href"], rs["rules"][0]["href"]]


def test_rule_set_made_by_another_run_meanwhile_converges(rules_pce):
    rules_pce.server.fault("POST", r"/rule_sets$", lambda request: rules_pce.add("rule_sets", name="RS"))
    result = run(rule_set, rules_pce, name="RS", rules=[WEB])
    assert result.get("failed") is not True, result
    found = [doc for doc in rules_pce.draft["rule_sets"].values() if doc["name"] == "RS"]
    assert len(found) == 1 and len(found[0]["rules"]) == 1


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize(
    ("module", "endpoint", "field"), [(security_rule, "sec_rules", "rules"), (deny_rule, "deny_rules", "deny_rules")]
)
def test_rule_create_whose_answer_is_lost_is_found(rules_pce, loss, module, endpoint, field):
    rs = rules_pce.add("rule_sets", name="RS")
    rules_pce.server.fault("POST", endpoint + "$", loss)
    result = run(module, rules_pce, rule_set="RS", **WEB)
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert len(rs[field]) == 1
    assert result[module.__name__.rsplit(".", 1)[-1]]["href"] == rs[field][0]["href"]


@pytest.mark.parametrize("loss", LOSSES)
def test_enforcement_boundary_create_whose_answer_is_lost_is_found(rules_pce, loss):
    rules_pce.server.fault("POST", r"/enforcement_boundaries$", loss)
    result = run(
        deny_rule, rules_pce, name="EB", providers=["ams"], consumers=["ams"], services=[{"port": 22, "proto": "tcp"}]
    )
    assert result.get("failed") is not True, result
    assert result["changed"] is True
    assert [doc["name"] for doc in rules_pce.draft["enforcement_boundaries"].values()] == ["EB"]
