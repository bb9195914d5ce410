"""ven_upgrade against the fake PCE: planning, check and diff mode, idempotence, PCE refusals and waiting."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import ven_upgrade
from fake_pce_vens import start_ven_pce
from module_runner import run_module

RELEASE = "23.2.20-200"


@pytest.fixture
def pce(serve, tls_files):
    pce = start_ven_pce(serve, tls_files)
    pce.add_ven("web1.example.com", labels={"role": "web"})
    pce.add_ven("web2.example.com", labels={"role": "web"})
    pce.add_ven("web3.example.com", version=RELEASE, labels={"role": "web"})
    pce.add_ven("db1.example.com", labels={"role": "db"})
    return pce


def upgrade(pce, check_mode=False, diff=False, **args):
    args.setdefault("release", RELEASE)
    return run_module(ven_upgrade.main, pce.connection(**args), check_mode=check_mode, diff=diff)


WEB = ["web1.example.com", "web2.example.com", "web3.example.com"]


def test_check_mode_reports_without_upgrading_and_validates_with_a_dry_run(pce):
    result = upgrade(pce, check_mode=True, diff=True, hostnames=WEB)
    assert result["changed"] is True
    assert [entry["hostname"] for entry in result["upgraded"]] == ["web1.example.com", "web2.example.com"]
    assert result["already_at_release"] == ["web3.example.com"]
    assert result["diff"] == {
        "before": {"web1.example.com": "23.2.10-100", "web2.example.com": "23.2.10-100"},
        "after": {"web1.example.com": RELEASE, "web2.example.com": RELEASE},
    }
    [dry_run] = pce.upgrade_requests()
    assert dry_run.body["dry_run"] is True
    assert pce.pending == {}


def test_upgrade_then_rerun_is_unchanged_while_pending_and_after(pce):
    first = upgrade(pce, hostnames=WEB)
    assert first["changed"] is True
    [sent] = pce.upgrade_requests(dry_run=False)
    web1, web2 = pce.ven("web1.example.com"), pce.ven("web2.example.com")
    assert sent.body == {"vens": [{"href": web1["href"]}, {"href": web2["href"]}], "release": RELEASE}
    assert set(pce.pending) == {web1["href"], web2["href"]}
    assert first["upgraded"][0] == {
        "hostname": "web1.example.com",
        "href": web1["href"],
        "version_before": "23.2.10-100",
    }

    pending = upgrade(pce, hostnames=WEB)
    assert pending["changed"] is False
    assert pending["already_pending"] == ["web1.example.com", "web2.example.com"]
    assert upgrade(pce, check_mode=True, hostnames=WEB)["changed"] is False

    pce.heartbeat("web1.example.com", RELEASE)
    pce.heartbeat("web2.example.com", RELEASE)
    done = upgrade(pce, hostnames=WEB)
    assert done["changed"] is False
    assert done["already_at_release"] == WEB
    assert len(pce.upgrade_requests(dry_run=False)) == 1


def test_force_sends_pending_upgrades_again(pce):
    upgrade(pce, hostnames=["web1.example.com"])
    again = upgrade(pce, hostnames=["web1.example.com"], force=True)
    assert again["changed"] is True
    assert len(pce.upgrade_requests(dry_run=False)) == 2


def test_without_readable_events_every_ven_below_the_release_is_sent(pce):
    pce.events_status = 403
    upgrade(pce, hostnames=["web1.example.com"])
    assert upgrade(pce, hostnames=["web1.example.com"])["changed"] is True


def test_labels_select_and_narrow(pce):
    by_label = upgrade(pce, check_mode=True, labels={"role": "db"})
    assert [entry["hostname"] for entry in by_label["upgraded"]] == ["db1.example.com"]
    narrowed = upgrade(pce, check_mode=True, hostnames=["web1.example.com", "db1.example.com"], labels={"role": "web"})
    assert [entry["hostname"] for entry in narrowed["upgraded"]] == ["web1.example.com"]


def test_by_href_and_by_workload(pce):
    web1, db1 = pce.ven("web1.example.com"), pce.ven("db1.example.com")
    result = upgrade(pce, hrefs=[web1["href"]], workload_hrefs=[db1["workloads"][0]["href"]])
    assert sorted(entry["hostname"] for entry in result["upgraded"]) == ["db1.example.com", "web1.example.com"]


def test_unknown_hostnames_fail_before_anything_is_sent(pce):
    result = upgrade(pce, hostnames=["web1.example.com", "nope.example.com", "gone.example.com"])
    assert result["failed"] is True
    assert result["msg"] == "nothing was upgraded: no VEN has host name gone.example.com, nope.example.com"
    assert pce.upgrade_requests() == []


def test_shared_hostname_fails(pce):
    pce.add_ven("web1.example.com")
    result = upgrade(pce, hostnames=["web1.example.com"])
    assert result["failed"] is True
    assert "2 VENs have host name web1.example.com" in result["msg"]
    assert pce.upgrade_requests() == []


def test_unknown_release_fails_with_the_pces_reason(pce):
    result = upgrade(pce, release="23.9.99-1", hostnames=["web1.example.com", "web2.example.com"])
    assert result["failed"] is True
    assert result["changed"] is False
    assert "the PCE refused to upgrade 2 of 2 VEN(s) to 23.9.99-1" in result["msg"]
    assert (
        "release 23.9.99-1 is not in the VEN library (invalid_release): web1.example.com, web2.example.com"
        in (result["msg"])
    )
    assert result["pce_errors"][0]["token"] == "invalid_release"
    assert "Traceback" not in result["msg"]


def test_unknown_release_fails_in_check_mode_too(pce):
    result = upgrade(pce, check_mode=True, release="23.9.99-1", hostnames=["web1.example.com"])
    assert result["failed"] is True
    assert "check mode" in result["msg"]
    assert pce.pending == {}


def test_malformed_release_fails_before_any_request(pce):
    result = upgrade(pce, release="latest", hostnames=["web1.example.com"])
    assert result["failed"] is True
    assert "release must be a VEN release" in result["msg"]
    assert pce.requests == []


def test_newer_vens_are_refused_before_sending(pce):
    pce.add_ven("new.example.com", version="23.2.30-300")
    result = upgrade(pce, hostnames=["web1.example.com", "new.example.com"])
    assert result["failed"] is True
    assert "new.example.com: runs 23.2.30-300, newer than 23.2.20-200" in result["msg"]
    assert result["refused"][0]["hostname"] == "new.example.com"
    assert pce.upgrade_requests() == []


def test_a_selector_is_required(pce):
    result = upgrade(pce)
    assert result["failed"] is True
    assert "one of the following is required" in result["msg"]


def test_wait_until_the_vens_report_the_release(pce):
    pce.upgrade_after_reads = 1  # each VEN reports the release on its second read after the request
    result = upgrade(pce, hostnames=WEB, wait=True, timeout=30, poll_interval=0.05)
    assert result["changed"] is True
    assert "failed" not in result
    assert [ven["version"] for ven in result["vens"]] == [RELEASE] * 3
    assert result["summary"]["by_version"] == {RELEASE: 3}
    assert pce.pending == {}


def test_wait_times_out_with_the_laggards(pce):
    result = upgrade(pce, hostnames=WEB, wait=True, timeout=0, poll_interval=0.05)
    assert result["failed"] is True
    assert result["changed"] is True
    assert result["laggards"] == ["web1.example.com", "web2.example.com"]
    assert "2 of 3 VEN(s) did not report release 23.2.20-200" in result["msg"]
    assert "web1.example.com (/orgs/1/vens/" in result["msg"]
    assert "version 23.2.10-100" in result["msg"]


def test_wait_is_skipped_in_check_mode(pce):
    result = upgrade(pce, check_mode=True, hostnames=WEB, wait=True, timeout=0)
    assert result["changed"] is True
    assert "failed" not in result


def test_secret_never_in_results(pce):
    result = upgrade(pce, release="23.9.99-1", hostnames=["web1.example.com"])
    assert pce.secret not in repr(result)


def test_an_empty_list_of_names_upgrades_nothing(pce):
    result = upgrade(pce, workload_hrefs=[], hostnames=[])
    assert result["changed"] is False
    assert result["vens"] == []
    assert pce.upgrade_requests() == []


def test_empty_labels_alone_are_refused(pce):
    result = upgrade(pce, labels={})
    assert result["failed"] is True
    assert "labels is empty" in result["msg"]
    assert pce.upgrade_requests() == []
