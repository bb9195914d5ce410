"""VENs over HTTPS: list and filters, read, rename, upgrade, unpair, compatibility report endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pcelab.api.software import SoftwareLibrary
from ven_helpers import (
    Prefixed,
    agent_session,
    build_bundle,
    new_label,
    pair_ven,
    pair_with,
    recorded_events,
    resource_hrefs,
)

SAMPLE_VEN = json.loads(Path(__file__).resolve().parent.joinpath("pce_samples", "vens.json").read_text())[0]
SAMPLE_VEN_KEYS = set(SAMPLE_VEN)
NEWER, OLDER = "21.5.30-8527", "21.2.5-8017"


@pytest.fixture(scope="module")
def releases(lab, tmp_path_factory):
    """Two releases in the running lab's library (it reads the library from its data folder)."""
    library = SoftwareLibrary(lab.data_dir)
    folder = tmp_path_factory.mktemp("bundles")
    for release in (NEWER, OLDER):
        version, build = release.split("-")
        library.install(build_bundle(folder / f"{release}.tgz", {f"ven-{release}.deb": b"p"}, version, build))
    return library


@pytest.fixture
def agent(lab):
    with agent_session(lab) as session:
        yield session


def test_list_has_the_pce_shape_and_filters(lab, api):
    role = new_label(api, "role")
    cache = pair_ven(lab, "cache-01.lab", profile={"labels": [{"href": role["href"]}]}, os_id="ubuntu-x86_64-jammy")
    pair_ven(lab, "other-01.lab")
    listed = api.get("/orgs/1/vens")
    assert listed.status_code == 200
    assert all(set(ven) == SAMPLE_VEN_KEYS for ven in listed.json())
    by_host = api.get("/orgs/1/vens", params={"hostname": "CACHE-01"}).json()
    assert [v["href"] for v in by_host] == [cache["ven_href"]]
    by_label = api.get("/orgs/1/vens", params={"labels": json.dumps([[role["href"]]])}).json()
    assert [v["href"] for v in by_label] == [cache["ven_href"]]
    assert api.get("/orgs/1/vens", params={"status": "suspended", "hostname": "cache-01"}).json() == []
    assert len(api.get("/orgs/1/vens", params={"version": "21.5.20-8451", "hostname": ".lab"}).json()) == 2
    assert api.get("/orgs/1/vens", params={"labels": "[not json"}).status_code == 406
    limited = api.get("/orgs/1/vens", params={"max_results": 1})
    assert len(limited.json()) == 1 and int(limited.headers["X-Total-Count"]) >= 2


def test_get_and_rename_a_ven(lab, api):
    activation = pair_ven(lab, "rename-me", interfaces=[{"name": "eth0", "address": "10.2.0.9", "cidr_block": 16}])
    path = activation["ven_href"]
    shown = api.get(path).json()
    assert shown["hostname"] == "rename-me" and shown["status"] == "active"
    assert shown["workloads"] == [{"href": activation["workload_href"]}]
    assert shown["interfaces"][0]["href"] == f"{activation['workload_href']}/interfaces/eth0"
    assert set(shown["interfaces"][0]) == set(SAMPLE_VEN["interfaces"][0])
    assert shown["interfaces"][0]["address"] == "10.2.0.9" and shown["interfaces"][0]["cidr_block"] == 16
    assert api.put(path, json={"name": "Cache 1", "description": "lab"}).status_code == 204
    renamed = api.get(path).json()
    assert (renamed["name"], renamed["description"]) == ("Cache 1", "lab")
    assert api.put(path, json={"hostname": "x"}).status_code == 406
    workload = api.get(activation["workload_href"]).json()
    assert workload["ven"] == {"href": activation["ven_href"]} and workload["name"] == "Cache 1"
    assert workload["agent"]["href"] == activation["agent_href"]
    assert workload["agent"]["status"]["status"] == "active"
    assert api.get("/orgs/1/vens/00000000-0000-0000-0000-000000000000").status_code == 404


def test_upgrade_reports_per_ven_errors_and_sets_pending_actions(lab, releases, api, agent):
    current = pair_ven(lab, "up-1")
    newer = pair_ven(lab, "up-2", agent_version="22.1.0-1")
    ghost = "/orgs/1/vens/00000000-0000-0000-0000-000000000001"
    vens = [{"href": current["ven_href"]}, {"href": newer["ven_href"]}, {"href": ghost}]
    dry = api.put("/orgs/1/vens/upgrade", json={"vens": vens, "release": NEWER, "dry_run": True})
    assert dry.status_code == 200
    tokens = {e["token"]: e["hrefs"] for e in dry.json()["errors"]}
    assert tokens == {"ven_not_found": [ghost], "downgrade_not_supported": [newer["ven_href"]]}
    headers = {"X-Lab-Agent-Token": current["agent_token"]}
    assert agent.get("/status", headers=headers).json()["pending_actions"] == []
    api.put("/orgs/1/vens/upgrade", json={"vens": vens, "release": NEWER})
    assert agent.get("/status", headers=headers).json()["pending_actions"] == [{"type": "upgrade", "release": NEWER}]
    done = agent.post("/heartbeat", json={"agent_version": NEWER}, headers=headers).json()
    assert done["pending_actions"] == [] and done["agent_version"] == NEWER
    assert api.get(current["ven_href"]).json()["version"] == NEWER


def test_upgrade_to_a_release_outside_the_library_changes_nothing(lab, releases, api, agent):
    activation = pair_ven(lab, "up-3")
    answer = api.put("/orgs/1/vens/upgrade", json={"vens": [{"href": activation["ven_href"]}], "release": "99.0.0-1"})
    assert answer.json()["errors"][0]["token"] == "invalid_release"
    status = agent.get("/status", headers={"X-Lab-Agent-Token": activation["agent_token"]}).json()
    assert status["pending_actions"] == []
    assert api.put("/orgs/1/vens/upgrade", json={"vens": [], "release": NEWER}).status_code == 406
    assert (
        api.put("/orgs/1/vens/upgrade", json={"vens": [{"href": "/orgs/2/vens/x"}], "release": NEWER}).status_code
        == 406
    )


def test_upgrading_agent_downloads_its_package_with_its_token(lab, releases, api):
    activation = pair_ven(lab, "up-4")
    api.put("/orgs/1/vens/upgrade", json={"vens": [{"href": activation["ven_href"]}], "release": NEWER})
    headers = {"X-Lab-Agent-Token": activation["agent_token"]}
    with lab.session(prefix="/lab/ven-software", auth=None) as software:
        params = {"os_id": "debian", "os_version": "12", "arch": "x86_64", "pkg_type": "deb"}
        chosen = dict(
            line.split("=", 1) for line in software.get("/select", params=params, headers=headers).text.split()
        )
        assert chosen["release"] == NEWER
        assert software.get(chosen["path"].replace("/lab/ven-software", ""), headers=headers).content == b"p"
        assert software.get(chosen["path"].replace("/lab/ven-software", "")).status_code == 401


def test_unpair_hides_the_ven_at_once_and_the_agent_says_goodbye(lab, api, agent):
    activation = pair_ven(lab, "unpair-1")
    ghost = "/orgs/1/vens/00000000-0000-0000-0000-000000000002"
    body = {"vens": [{"href": activation["ven_href"]}, {"href": ghost}], "firewall_restore": "disable"}
    answer = api.put("/orgs/1/vens/unpair", json=body)
    assert answer.status_code == 200
    assert answer.json() == {"errors": [{"token": "ven_not_found", "message": "no such VEN", "hrefs": [ghost]}]}
    assert api.get(activation["ven_href"]).status_code == 404
    assert activation["ven_href"] not in [v["href"] for v in api.get("/orgs/1/vens").json()]
    headers = {"X-Lab-Agent-Token": activation["agent_token"]}
    status = agent.get("/status", headers=headers).json()
    assert status["unpaired"] is True
    assert status["pending_actions"] == [{"type": "unpair", "firewall_restore": "disable"}]
    assert agent.post("/deactivate", headers=headers).status_code == 200
    assert agent.get("/status", headers=headers).status_code == 401
    assert api.put("/orgs/1/vens/unpair", json={**body, "firewall_restore": "burn"}).status_code == 406


def test_rename_upgrade_and_unpair_show_on_the_workload_and_in_events(client, tmp_path):
    SoftwareLibrary(client.lab.data_dir).install(build_bundle(tmp_path / "b.tgz", {"v.deb": b"p"}, "21.5.30", "8527"))
    agent = Prefixed(client, "/lab/agent/v1")
    activation = pair_with(client, agent, "evt-1")
    uuid = activation["ven_href"].rsplit("/", 1)[1]
    client.put(activation["ven_href"], json={"name": "Renamed"})
    assert client.lab.workload(1, uuid)["name"] == "Renamed"
    client.put("/orgs/1/vens/upgrade", json={"vens": [{"href": activation["ven_href"]}], "release": NEWER})
    [upgrade] = recorded_events(client.lab, "agent.upgrade_requested")
    assert upgrade["resource_changes"][0]["changes"] == {"release": NEWER}
    client.put("/orgs/1/vens/unpair", json={"vens": [{"href": activation["ven_href"]}], "firewall_restore": "saved"})
    assert client.lab.workload(1, uuid) is None
    assert resource_hrefs(recorded_events(client.lab, "agent.unpair"), "ven") == [activation["ven_href"]]
    agent.post("/deactivate", headers={"X-Lab-Agent-Token": activation["agent_token"]})
    assert len(recorded_events(client.lab, "agent.unpair")) == 1  # the goodbye of a requested unpair adds none
