"""Pairing profiles, pairing keys and the pairing scripts, as functions and over HTTPS."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
from pcelab.api.pairing import KeyState, check_profile_body, hash_code, key_refusal, new_activation_code
from pcelab.api.software import SoftwareLibrary
from pcelab.api.ven_core import LabError
from ven_helpers import (
    ConnectProxy,
    Prefixed,
    agent_session,
    build_bundle,
    dummy_package,
    host_of,
    move_clock,
    new_label,
    recorded_events,
    resource_hrefs,
    scratch_host,
)

SAMPLES = Path(__file__).resolve().parent / "pce_samples"


# --- field checks ---------------------------------------------------------------------------------------
def test_profile_body_normalizes_limits_and_legacy_mode():
    fields = check_profile_body(
        {"name": "P", "allowed_uses_per_key": 5, "key_lifespan": "3600", "mode": "illuminated"}, creating=True
    )
    assert fields == {
        "name": "P",
        "allowed_uses_per_key": "5",
        "key_lifespan": "3600",
        "enforcement_mode": "visibility_only",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "name is required"),
        ({"name": " "}, "name must not be empty"),
        ({"name": "P", "colour": "red"}, "unknown pairing profile field: colour"),
        ({"name": "P", "total_use_count": 3}, "total_use_count is read-only"),
        ({"name": "P", "enabled": "yes"}, "enabled must be true or false"),
        ({"name": "P", "enforcement_mode": "strict"}, "enforcement_mode must be one of"),
        ({"name": "P", "visibility_level": "all"}, "visibility_level must be one of"),
        ({"name": "P", "allowed_uses_per_key": 0}, "allowed_uses_per_key must be 'unlimited'"),
        ({"name": "P", "allowed_uses_per_key": True}, "allowed_uses_per_key must be 'unlimited'"),
        ({"name": "P", "key_lifespan": "-5"}, "key_lifespan must be 'unlimited'"),
        ({"name": "P", "labels": ["/orgs/1/labels/1"]}, "labels must be a list"),
        ({"name": "P", "labels": [{"href": "/orgs/1/labels/1"}, {"href": "/orgs/1/labels/1"}]}, "listed twice"),
        ({"name": "P", "mode": "enforced", "enforcement_mode": "idle"}, "contradicts"),
        ({"name": "P", "role_label_lock": 1}, "role_label_lock must be true or false"),
    ],
)
def test_profile_body_errors_name_the_field(body, message):
    with pytest.raises(LabError, match=message) as raised:
        check_profile_body(body, creating=True)
    assert raised.value.status == 406


def test_update_body_may_leave_the_name_out():
    assert check_profile_body({"enabled": False}, creating=False) == {"enabled": False}


def test_default_release_spellings_mean_the_library_default():
    for spelling in ("Default", "Default (21.5.20-8451)", None):
        assert check_profile_body({"agent_software_release": spelling}, creating=False) == {
            "agent_software_release": None
        }


# --- key rules -------------------------------------------------------------------------------------------
def test_key_refusals_in_order_of_the_reference():
    fresh = KeyState(created_at=1000.0, use_count=0, allowed_uses="1", lifespan="60")
    assert key_refusal(fresh, True, now=1059.0) is None
    assert key_refusal(fresh, False, now=1001.0).token == "pairing_profile_disabled"
    assert key_refusal(fresh, True, now=1061.0).token == "activation_code_expired"
    spent = KeyState(created_at=1000.0, use_count=1, allowed_uses="1", lifespan="unlimited")
    assert key_refusal(spent, True, now=10**9).token == "activation_code_used_up"
    unlimited = KeyState(created_at=0.0, use_count=10**6, allowed_uses="unlimited", lifespan="unlimited")
    assert key_refusal(unlimited, True, now=10**9) is None


def test_activation_codes_are_long_hex_and_hashed_case_insensitively():
    code = new_activation_code()
    assert len(code) == 82 and int(code, 16) >= 0
    assert hash_code(code) == hash_code(code.upper()) != code


# --- over HTTPS (conftest: `lab` is a real `pcelab serve`, `api` a TLS-verified session with an API key) -------
SAMPLE_KEYS = set(json.loads((SAMPLES / "pairing_profiles.json").read_text())[0])


@pytest.fixture
def agent_api(lab):
    with agent_session(lab) as session:
        yield session


def new_profile(api, **fields) -> dict:
    answer = api.post("/orgs/1/pairing_profiles", json={"name": f"pp-{uuid.uuid4().hex[:8]}", **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def new_key(api, profile: dict) -> str:
    answer = api.post(f"{profile['href']}/pairing_key", json={})
    assert answer.status_code == 201, answer.text
    return answer.json()["activation_code"]


def profile_number(profile: dict) -> str:
    return profile["href"].rsplit("/", 1)[1]


def activate(agent_api, code: str, **extra):
    return agent_api.post(
        "/activate", json={"activation_code": code, "hostname": "h1", "agent_version": "21.5.20-8451", **extra}
    )


def test_profile_crud_has_the_pce_shape(api):
    role = new_label(api, "role")
    created = new_profile(api, labels=[{"href": role["href"]}], allowed_uses_per_key=3, key_lifespan=600)
    assert set(created) == SAMPLE_KEYS
    assert created["allowed_uses_per_key"] == "3" and created["key_lifespan"] == "600"
    assert created["agent_software_release"] == "Default"
    path = created["href"]
    assert api.get(path).json() == created
    assert api.put(path, json={"enabled": False, "description": "off"}).status_code == 204
    assert api.get(path).json()["enabled"] is False
    listed = api.get("/orgs/1/pairing_profiles", params={"name": created["name"][3:]})
    assert [p["href"] for p in listed.json()] == [created["href"]]
    assert listed.headers["X-Total-Count"] == "1"
    assert api.delete(path).status_code == 204
    assert api.get(path).status_code == 404


def test_profile_events(client):
    created = client.post("/orgs/1/pairing_profiles", json={"name": "evented"}).json()
    path = created["href"]
    client.put(path, json={"description": "x"})
    client.post(f"{path}/pairing_key", json={})
    client.delete(path)
    for event_type in ("create", "update", "create_pairing_key", "delete"):
        events = recorded_events(client.lab, f"pairing_profile.{event_type}")
        assert resource_hrefs(events, "pairing_profile") == [created["href"]]
        assert events[0]["created_by"]["user"]["href"].startswith("/users/")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"labels": [{"href": "/orgs/1/labels/999"}]}, "does not exist"),
        ({"agent_software_release": "1.2.3-4"}, "not in the VEN library"),
        ({"key_lifespan": "soon"}, "key_lifespan"),
        ({"visibility_level": "flow_off", "log_traffic": True}, "flow_off"),
        ({"caps": []}, "read-only"),
    ],
)
def test_profile_errors_are_406_with_token_and_message(api, fields, message):
    answer = api.post("/orgs/1/pairing_profiles", json={"name": "bad", **fields})
    assert answer.status_code == 406
    [error] = answer.json()
    assert error["token"] and message in error["message"]


def test_two_labels_of_one_key_and_duplicate_names_are_refused(api):
    first, second = new_label(api, "env"), new_label(api, "env")
    labels = [{"href": first["href"]}, {"href": second["href"]}]
    assert api.post("/orgs/1/pairing_profiles", json={"name": "x", "labels": labels}).status_code == 406
    profile = new_profile(api)
    assert api.post("/orgs/1/pairing_profiles", json={"name": profile["name"]}).status_code == 406


def test_a_label_used_by_a_profile_cannot_be_deleted(api):
    label = new_label(api, "loc")
    profile = new_profile(api, labels=[{"href": label["href"]}])
    refused = api.delete(label["href"])
    assert refused.status_code == 406 and profile["name"] in refused.json()[0]["message"]


def test_pairing_key_needs_an_enabled_profile(api):
    profile = new_profile(api)
    code = new_key(api, profile)
    assert len(code) == 82 and int(code, 16)
    api.put(profile["href"], json={"enabled": False})
    refused = api.post(f"{profile['href']}/pairing_key", json={})
    assert refused.status_code == 406
    assert api.post("/orgs/1/pairing_profiles/999999/pairing_key", json={}).status_code == 404


def test_one_use_key_pairs_once_and_counts_the_use(api, agent_api):
    profile = new_profile(api, allowed_uses_per_key=1)
    code = new_key(api, profile)
    assert activate(agent_api, code).status_code == 201
    second = activate(agent_api, code)
    assert second.status_code == 403
    assert second.json()[0]["token"] == "activation_code_used_up"
    shown = api.get(profile["href"]).json()
    assert shown["total_use_count"] == 1 and shown["last_pairing_at"]


def test_key_with_n_uses_fails_on_the_n_plus_first(api, agent_api):
    code = new_key(api, new_profile(api, allowed_uses_per_key=3))
    assert [activate(agent_api, code).status_code for _ in range(4)] == [201, 201, 201, 403]


def test_key_expires_after_its_lifespan(api, agent_api, lab):
    code = new_key(api, new_profile(api, key_lifespan=60))
    move_clock(lab, 61)
    answer = activate(agent_api, code)
    assert answer.status_code == 403
    assert answer.json()[0]["token"] == "activation_code_expired"


def test_disabled_profile_and_unknown_code_do_not_pair(api, agent_api):
    profile = new_profile(api)
    code = new_key(api, profile)
    api.put(profile["href"], json={"enabled": False})
    assert activate(agent_api, code).json()[0]["token"] == "pairing_profile_disabled"
    unknown = activate(agent_api, "ab" * 41)
    assert unknown.status_code == 401
    assert "ab" * 41 not in unknown.text


# --- pairing scripts ---------------------------------------------------------------------------------------
PACKAGE = "illumio-ven-21.5.20-8451.deb12.amd64.deb"


@pytest.fixture
def release_installed(lab, tmp_path):
    library = SoftwareLibrary(lab.data_dir)
    if library.release("21.5.20-8451") is None:
        library.install(build_bundle(tmp_path / "bundle.tgz", {PACKAGE: dummy_package()}))
        library.set_default("21.5.20-8451")
    return "21.5.20-8451"


def fetch_script(lab, script: str, profile_id):
    with lab.session(prefix="", auth=None) as anonymous:
        return anonymous.get("/api/v18/software/ven/image", params={"pair_script": script, "profile_id": profile_id})


def run_script(
    lab, tmp_path, script: str, *arguments: str, env: dict | None = None
) -> tuple[subprocess.CompletedProcess, Path]:
    root = tmp_path / "host"
    bin_dir = scratch_host(root)
    text = fetch_script(lab, script, arguments[0])
    assert text.status_code == 200, text.text
    path = tmp_path / script
    path.write_text(text.text)
    # The session's NO_PROXY (loopback) would make curl skip --proxy-server for the lab; the proxy test needs it.
    environment = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    environment.update(PCELAB_PAIR_ROOT=str(root), PATH=f"{bin_dir}:{os.environ['PATH']}", **(env or {}))
    done = subprocess.run(
        ["bash", str(path), "--management-server", host_of(lab), *arguments[1:]],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done, root


def test_pair_sh_installs_the_package_and_activates_for_real(api, lab, tmp_path, release_installed):
    role = new_label(api, "role")
    profile = new_profile(api, role_label_lock=False, enforcement_mode="idle")
    code = new_key(api, profile)
    arguments = ("--activation-code", code, "--role", role["value"])
    done, root = run_script(lab, tmp_path, "pair.sh", profile_number(profile), *arguments)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Workload has been SUCCESSFULLY paired with Illumio" in done.stdout
    assert code not in done.stdout + done.stderr
    assert code not in (root / "var/log/illumio_install.log").read_text()
    assert f"VEN_MANAGEMENT_SERVER={host_of(lab)}" in (root / "dpkg-env.txt").read_text()
    assert (root / "dpkg-args.txt").read_text().startswith("-i\n")
    activation = json.loads((root / "activation.json").read_text())
    ven = api.get(activation["ven_href"]).json()
    assert ven["hostname"] == "e2e-host" and ven["labels"] == [{"href": role["href"]}]
    assert not (root / "opt/illumio_ven_data/tmp/.activation_code_header").exists()
    assert code not in (root / "ctl-args.txt").read_text(), "the VEN reads the code from agent_activation.cfg"
    assert not (root / "opt/illumio_ven_data/etc/agent_activation.cfg").exists()


def test_pair_sh_takes_the_code_from_ven_activation_code_so_no_command_line_shows_it(
    api, lab, tmp_path, release_installed
):
    profile = new_profile(api, enforcement_mode="idle")
    code = new_key(api, profile)
    done, root = run_script(lab, tmp_path, "pair.sh", profile_number(profile), env={"VEN_ACTIVATION_CODE": code})
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((root / "activation.json").read_text())["ven_href"]
    assert code not in (root / "ctl-args.txt").read_text()
    assert not (root / "opt/illumio_ven_data/etc/agent_activation.cfg").exists()


def test_pair_sh_refuses_a_package_with_a_wrong_checksum(api, lab, tmp_path, release_installed):
    code = new_key(api, profile := new_profile(api))
    library = SoftwareLibrary(lab.data_dir)
    package = library.package_file(library.release(release_installed), PACKAGE)
    original = package.read_bytes()
    package.write_bytes(original + b"tampered")
    try:
        done, root = run_script(lab, tmp_path, "pair.sh", profile_number(profile), "--activation-code", code)
    finally:
        package.write_bytes(original)
    assert done.returncode == 1
    assert "sha256" in done.stderr
    assert not (root / "dpkg-args.txt").exists()


def test_pair_sh_with_a_spent_key_stops_before_downloading(api, agent_api, lab, tmp_path, release_installed):
    code = new_key(api, profile := new_profile(api, allowed_uses_per_key=1))
    activate(agent_api, code)
    done, root = run_script(lab, tmp_path, "pair.sh", profile_number(profile), "--activation-code", code)
    assert done.returncode == 1
    assert "no VEN package" in done.stderr
    assert not (root / "dpkg-args.txt").exists()


def test_pair_sh_downloads_through_the_proxy_and_hands_it_to_the_install(api, lab, tmp_path, release_installed):
    proxy = ConnectProxy()
    try:
        code = new_key(api, profile := new_profile(api))
        arguments = ("--activation-code", code, "--proxy-server", proxy.address)
        done, root = run_script(lab, tmp_path, "pair.sh", profile_number(profile), *arguments)
    finally:
        proxy.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert proxy.targets.count(host_of(lab)) >= 2  # package choice and download
    assert f"VEN_PROXY_SERVER={proxy.address}" in (root / "dpkg-env.txt").read_text()


def test_prepare_sh_leaves_an_activation_file_instead_of_pairing(api, lab, tmp_path, release_installed):
    code = new_key(api, profile := new_profile(api))
    done, root = run_script(lab, tmp_path, "prepare.sh", profile_number(profile), "--activation-code", code)
    assert done.returncode == 0, done.stdout + done.stderr
    config = root / "opt/illumio_ven_data/etc/agent_activation.cfg"
    assert config.read_text() == f"activation_code: {code}\nmasterconfig_server: {host_of(lab)}\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert "VEN_INSTALL_ACTION=prepare" in (root / "dpkg-env.txt").read_text()
    assert api.get("/orgs/1/pairing_profiles/" + profile_number(profile)).json()["total_use_count"] == 0


def test_script_endpoint_errors_are_scripts_that_fail(lab):
    missing = fetch_script(lab, "pair.sh", "424242")
    assert missing.status_code == 404 and missing.text.startswith("#!/bin/sh")
    assert fetch_script(lab, "evil.sh", "1").status_code == 406
    windows = fetch_script(lab, "pair.ps1", "424242")
    assert windows.status_code == 404 and "Write-Error" in windows.text


def test_agent_api_works_in_process_too(client):
    agent = Prefixed(client, "/lab/agent/v1")
    code = new_key(client, new_profile(client))
    assert (
        agent.post("/activate", json={"activation_code": code, "hostname": "x", "agent_version": "1.0.0-1"}).status_code
        == 201
    )
