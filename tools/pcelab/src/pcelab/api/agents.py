"""Agent side of the lab PCE: what a VEN (or the collection's VEN stand-in) calls. Lab-only, see AGENT_API.md.

A VEN activates with an activation code and gets an agent token; every later call carries that token in
the X-Lab-Agent-Token header. Only the token's SHA-256 is stored.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from uuid import uuid4

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pcelab.api.pairing import (
    ENFORCEMENT_MODES,
    LEGACY_MODES,
    MODE_OF_ENFORCEMENT,
    VISIBILITY_LEVELS,
    ProfileStore,
    iso_timestamp,
    profile_settings,
    usable_key,
)
from pcelab.api.ven_core import AGENT_TOKEN_HEADER, LabError, hash_token, json_body, lab, refusals_as_responses
from pcelab.api.vens import (
    FIREWALL_RESTORE,
    VenStore,
    active_policy,
    agent_href,
    agent_section,
    policy_fingerprint,
    ven_href,
    workload_href,
)

AGENT_TOKEN_BYTES = 32
LABEL_KEYS = ("role", "app", "env", "loc")
QUALIFY_STATUSES = ("green", "yellow", "red")  # best to worst
TEST_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MAX_TESTS = 100
MAX_TEXT = 1024
MAX_INTERFACES = 64


def new_agent_token() -> str:
    return secrets.token_urlsafe(AGENT_TOKEN_BYTES)


def _invalid(message: str) -> LabError:
    return LabError("input_validation_error", message)


# --- activation ---------------------------------------------------------------------------------------
def check_activation_body(body: object) -> dict:
    """The host facts and command-line overrides a VEN sends with `activate`, checked."""
    if not isinstance(body, dict):
        raise _invalid("the request body must be a JSON object")
    code = body.get("activation_code")
    if not isinstance(code, str) or not re.fullmatch(r"[0-9a-fA-F]{16,256}", code):
        raise LabError("invalid_activation_code", "activation_code is missing or malformed", 401)
    facts = {
        "activation_code": code,
        "hostname": _short_text(body, "hostname", required=True),
        "name": _short_text(body, "name"),
        "os_id": _short_text(body, "os_id") or "linux-unknown",
        "os_detail": _short_text(body, "os_detail"),
        "os_platform": _choice(body, "os_platform", ("linux", "windows", "aix", "solaris"), "linux"),
        "agent_version": _short_text(body, "agent_version", required=True),
        "interfaces": check_interfaces(body.get("interfaces", [])),
        "labels": _label_overrides(body.get("labels", {})),
    }
    facts["overrides"] = _policy_overrides(body)
    return facts


def _short_text(body: dict, key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise _invalid(f"{key} must be a non-empty string" + ("" if required else " when given"))
    return value


def _choice(body: dict, key: str, choices: tuple[str, ...], default: str) -> str:
    value = body.get(key, default)
    if value not in choices:
        raise _invalid(f"{key} must be one of: {', '.join(choices)}")
    return value


def _label_overrides(labels: object) -> dict[str, str]:
    if not isinstance(labels, dict) or not all(k in LABEL_KEYS and isinstance(v, str) for k, v in labels.items()):
        raise _invalid("labels must map role/app/env/loc to a label value, as --role/--app/--env/--loc do")
    return dict(labels)


def _policy_overrides(body: dict) -> dict:
    overrides = {}
    if "mode" in body and "enforcement_mode" in body:
        raise _invalid("give mode or enforcement_mode, not both")
    if "mode" in body:
        if body["mode"] not in LEGACY_MODES:
            raise _invalid(f"mode must be one of: {', '.join(LEGACY_MODES)}")
        overrides["enforcement_mode"] = LEGACY_MODES[body["mode"]]
    elif "enforcement_mode" in body:
        overrides["enforcement_mode"] = _choice(body, "enforcement_mode", ENFORCEMENT_MODES, "")
    if "visibility_level" in body:
        overrides["visibility_level"] = _choice(body, "visibility_level", VISIBILITY_LEVELS, "")
    if "log_traffic" in body:
        if not isinstance(body["log_traffic"], bool):
            raise _invalid("log_traffic must be true or false")
        overrides["log_traffic"] = body["log_traffic"]
    return overrides


def check_interfaces(interfaces: object) -> list[dict]:
    """Interfaces as the VEN reports them: name, address, optional cidr_block and default_gateway_address."""
    if not isinstance(interfaces, list) or len(interfaces) > MAX_INTERFACES:
        raise _invalid(f"interfaces must be a list of at most {MAX_INTERFACES} entries")
    return [_check_interface(entry) for entry in interfaces]


def _check_interface(entry: object) -> dict:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
        raise _invalid("each interface needs a name and an address")
    try:
        address = ipaddress.ip_address(entry.get("address"))
        gateway = entry.get("default_gateway_address")
        gateway = str(ipaddress.ip_address(gateway)) if gateway else None
    except (TypeError, ValueError):
        raise _invalid(f"interface {entry['name']}: address and default_gateway_address must be IP addresses") from None
    cidr = entry.get("cidr_block")
    valid_prefix = isinstance(cidr, int) and not isinstance(cidr, bool) and 0 <= cidr <= address.max_prefixlen
    if cidr is not None and not valid_prefix:
        raise _invalid(f"interface {entry['name']}: cidr_block must be a prefix length")
    return {"name": entry["name"], "address": str(address), "cidr_block": cidr, "default_gateway_address": gateway}


def locked_override(profile: dict, facts: dict) -> LabError | None:
    """Activation fails when the command line sets what the pairing profile locks (reference: VEN activate)."""
    for key in facts["labels"]:
        if profile.get(f"{key}_label_lock", True):
            return LabError("label_assignment_locked", f"the pairing profile locks the {key} label", 403)
    overrides = facts["overrides"]
    if "enforcement_mode" in overrides and (profile.get("enforcement_mode_lock") or profile.get("mode_lock")):
        return LabError("enforcement_mode_locked", "the pairing profile locks the enforcement mode", 403)
    for key in ("visibility_level", "log_traffic"):
        if key in overrides and profile.get(f"{key}_lock", True):
            return LabError(f"{key}_locked", f"the pairing profile locks {key}", 403)
    return None


def effective_policy(profile: dict, facts: dict) -> dict:
    """Enforcement settings of the new workload: the profile's, with allowed overrides applied."""
    policy = {key: profile[key] for key in ("enforcement_mode", "visibility_level", "log_traffic")}
    policy.update(facts["overrides"])
    if policy["visibility_level"] == "flow_off" and policy["log_traffic"]:
        raise LabError("input_validation_error", "visibility_level flow_off cannot be combined with log_traffic")
    return policy


# --- compatibility report -------------------------------------------------------------------------------
def check_compatibility_report(body: object) -> list[dict]:
    """The qualify tests a VEN uploads: [{"status": green|yellow|red, "<test_name>": details}, ...].

    `{"qualify_tests": [...]}` and `{"results": {"qualify_tests": [...]}}` are both accepted.
    """
    if isinstance(body, dict) and isinstance(body.get("results"), dict):
        body = body["results"]
    tests = body.get("qualify_tests") if isinstance(body, dict) else None
    if not isinstance(tests, list) or len(tests) > MAX_TESTS:
        raise _invalid(f"the report needs qualify_tests: a list of at most {MAX_TESTS} tests")
    return [_check_qualify_test(test) for test in tests]


def _check_qualify_test(test: object) -> dict:
    if not isinstance(test, dict) or test.get("status") not in QUALIFY_STATUSES:
        raise _invalid("each qualify test needs status green, yellow or red")
    names = [key for key in test if key != "status"]
    if len(names) != 1 or not TEST_NAME_PATTERN.match(names[0]):
        raise _invalid('each qualify test names exactly one check: {"status": "yellow", "iptables_rule_cnt": 3}')
    return {"status": test["status"], names[0]: test[names[0]]}


def qualify_status(tests: list[dict]) -> str:
    """The worst status of all tests; green when there are none."""
    return max((test["status"] for test in tests), key=QUALIFY_STATUSES.index, default="green")


# --- endpoints ------------------------------------------------------------------------------------------------
def _resolve_labels(core, org_id: int, profile_labels: list[dict], overrides: dict[str, str]) -> list[dict]:
    """The profile's labels, with a command-line label replacing the profile's label of the same key."""
    chosen = {}
    for ref in profile_labels:
        label = core.label(org_id, ref["href"])
        if label is not None:
            chosen[label["key"]] = {"href": label["href"]}
    for key, value in overrides.items():
        label = core.label_by_value(org_id, key, value)
        if label is None:
            raise LabError("input_validation_error", f"there is no {key} label {value!r}")
        chosen[key] = {"href": label["href"]}
    return list(chosen.values())


def _policy_version(core, workload: dict | None) -> str:
    """Opaque; changes whenever what decides the workload's policy changes: its mode, visibility and labels, and
    the active policy that applies to it (a provisioning)."""
    if workload is None:
        return ""
    org_id = int(workload["href"].split("/")[2])
    return policy_fingerprint(active_policy(core, org_id), workload)


def pending_actions(row) -> list[dict]:
    actions = []
    if row["pending_upgrade"]:
        actions.append({"type": "upgrade", "release": row["pending_upgrade"]})
    if row["unpair_requested"]:
        actions.append({"type": "unpair", "firewall_restore": row["unpair_requested"]})
    return actions


def agent_status(core, row, workload: dict | None) -> dict:
    org_id, uuid = row["org_id"], row["uuid"]
    enforcement = (workload or {}).get("enforcement_mode")
    return {
        "ven_href": ven_href(org_id, uuid),
        "workload_href": workload_href(org_id, uuid),
        "agent_href": agent_href(org_id, row["agent_id"]),
        "hostname": row["hostname"],
        "status": row["status"],
        "suspended": row["status"] == "suspended",
        "unpaired": bool(row["unpair_requested"]),
        "enforcement_mode": enforcement,
        "mode": MODE_OF_ENFORCEMENT.get(enforcement),
        "visibility_level": (workload or {}).get("visibility_level"),
        "log_traffic": bool(row["log_traffic"]),
        "policy_version": _policy_version(core, workload),
        "agent_version": row["version"],
        "last_heartbeat_at": row["last_heartbeat_at"],
        "last_goodbye_at": row["last_goodbye_at"],
        "pending_actions": pending_actions(row),
    }


def _agent_row(request: Request, store: VenStore):
    token = request.headers.get(AGENT_TOKEN_HEADER, "")
    row = store.by_token(hash_token(token)) if token else None
    if row is None:
        raise LabError("invalid_agent_token", f"missing or unknown {AGENT_TOKEN_HEADER} header", 401)
    return row


def _agent_actor(row) -> dict:
    return {"agent": {"href": agent_href(row["org_id"], row["agent_id"]), "hostname": row["hostname"]}}


def _sync_workload(core, row) -> dict | None:
    """Show the agent's current state on its workload (the `agent` object); None once the workload is gone."""
    workload = core.workload(row["org_id"], row["uuid"])
    if workload is not None and not row["unpair_requested"]:
        core.update_workload(
            row["org_id"],
            row["uuid"],
            {"agent": agent_section(row, workload, bool(row["log_traffic"])), "online": True},
        )
        workload = core.workload(row["org_id"], row["uuid"])
    return workload


@refusals_as_responses
async def activate(request: Request) -> Response:
    core = lab(request)
    facts = check_activation_body(await json_body(request))
    with core.transaction() as db:
        _, profile_row = usable_key(ProfileStore(db), facts["activation_code"], core.now())
    org_id, profile = profile_row["org_id"], profile_settings(profile_row)
    refusal = locked_override(profile, facts)
    if refusal:
        raise refusal
    policy = effective_policy(profile, facts)
    labels = _resolve_labels(core, org_id, profile["labels"], facts["labels"])
    token, uuid, now = new_agent_token(), str(uuid4()), core.now()
    with core.transaction() as db:
        # Checked again where the use is counted, so two VENs racing for a key's last use cannot both get it.
        profiles = ProfileStore(db)
        key, profile_row = usable_key(profiles, facts["activation_code"], now)
        store = VenStore(db)
        agent_id = store.add(_new_ven(org_id, uuid, token, profile_row["id"], facts, policy, now))
        profiles.count_use(key, now)
        row = store.by_token(hash_token(token))
    workload = core.create_managed_workload(org_id, uuid, _new_workload(row, facts, policy, labels))
    core.record_event(org_id, "agent.activate", _agent_actor(row), {"ven": {"href": ven_href(org_id, uuid)}})
    answer = {
        "agent_token": token,
        "agent_href": agent_href(org_id, agent_id),
        "ven_href": ven_href(org_id, uuid),
        "workload_href": workload_href(org_id, uuid),
        "org_id": org_id,
        "status": agent_status(core, row, workload),
    }
    return JSONResponse(answer, status_code=201)


def _new_ven(org_id: int, uuid: str, token: str, profile_id: int, facts: dict, policy: dict, now: float) -> dict:
    stamp = iso_timestamp(now)
    return {
        "uuid": uuid,
        "org_id": org_id,
        "token_hash": hash_token(token),
        "profile_id": profile_id,
        "name": facts["name"],
        "hostname": facts["hostname"],
        "os_id": facts["os_id"],
        "os_detail": facts["os_detail"],
        "os_platform": facts["os_platform"],
        "version": facts["agent_version"],
        "status": "active",
        "log_traffic": int(policy["log_traffic"]),
        "created_at": stamp,
        "updated_at": stamp,
        "updated_by": ven_href(org_id, uuid),
        "last_heartbeat_at": stamp,
    }


def _new_workload(row, facts: dict, policy: dict, labels: list[dict]) -> dict:
    workload = {
        "hostname": facts["hostname"],
        "name": facts["name"],
        "os_id": facts["os_id"],
        "os_detail": facts["os_detail"],
        "interfaces": facts["interfaces"],
        "labels": labels,
        "enforcement_mode": policy["enforcement_mode"],
        "visibility_level": policy["visibility_level"],
        "online": True,
        "ven": {"href": ven_href(row["org_id"], row["uuid"])},
    }
    workload["agent"] = agent_section(row, workload, policy["log_traffic"])
    return workload


@refusals_as_responses
async def status(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        row = _agent_row(request, VenStore(db))
    return JSONResponse(agent_status(core, row, core.workload(row["org_id"], row["uuid"])))


@refusals_as_responses
async def heartbeat(request: Request) -> Response:
    core = lab(request)
    body = await json_body(request) if await request.body() else {}
    if not isinstance(body, dict):
        raise LabError("input_validation_error", "the heartbeat body must be a JSON object")
    interfaces = check_interfaces(body["interfaces"]) if "interfaces" in body else None
    uptime = body.get("uptime_seconds")
    if uptime is not None and (not isinstance(uptime, int) or isinstance(uptime, bool) or uptime < 0):
        raise LabError("input_validation_error", "uptime_seconds must be a whole number")
    with core.transaction() as db:
        store = VenStore(db)
        row = _agent_row(request, store)
        version = _short_text(body, "agent_version") or row["version"]
        done_upgrade = row["pending_upgrade"] == version
        stamp = iso_timestamp(core.now())
        store.update(
            row["agent_id"],
            version=version,
            last_heartbeat_at=stamp,
            uptime_seconds=uptime if uptime is not None else row["uptime_seconds"],
            pending_upgrade=None if done_upgrade else row["pending_upgrade"],
        )
        row = store.by_token(row["token_hash"])
    if interfaces is not None and not row["unpair_requested"]:
        core.update_workload(row["org_id"], row["uuid"], {"interfaces": interfaces})
    workload = _sync_workload(core, row)
    if workload is not None and not row["unpair_requested"]:
        # The heartbeat answer carries policy_version; the lab takes a heartbeat as the VEN fetching and applying
        # the policy it names, so the workload's policy sync state turns "active" (see vens.sync_fields).
        with core.transaction() as db:
            store = VenStore(db)
            store.update(row["agent_id"], policy_synced=_policy_version(core, workload), policy_synced_at=stamp)
            row = store.by_token(row["token_hash"])
    return JSONResponse(agent_status(core, row, workload))


async def _set_suspended(request: Request, suspended: bool) -> Response:
    core = lab(request)
    wanted = "suspended" if suspended else "active"
    with core.transaction() as db:
        store = VenStore(db)
        row = _agent_row(request, store)
        changed = row["status"] != wanted
        if changed:
            store.update(row["agent_id"], status=wanted, updated_at=iso_timestamp(core.now()))
            row = store.by_token(row["token_hash"])
    if changed:
        event = "agent.suspend" if suspended else "agent.unsuspend"
        core.record_event(
            row["org_id"], event, _agent_actor(row), {"ven": {"href": ven_href(row["org_id"], row["uuid"])}}
        )
    return JSONResponse(agent_status(core, row, _sync_workload(core, row)))


@refusals_as_responses
async def suspend(request: Request) -> Response:
    return await _set_suspended(request, True)


@refusals_as_responses
async def unsuspend(request: Request) -> Response:
    return await _set_suspended(request, False)


@refusals_as_responses
async def goodbye(request: Request) -> Response:
    """What a VEN sends when it stops (service stop, shutdown) without unpairing: "At shutdown, the VEN sends a
    'goodbye' message to the PCE. The PCE marks the Workload as offline" (VEN Operations guide, "VEN shutdown"),
    once `workload_goodbye_timeout_seconds` has passed; the VEN's status then reads "stopped" (vens.connection).
    The next heartbeat brings it back."""
    core = lab(request)
    with core.transaction() as db:
        store = VenStore(db)
        row = _agent_row(request, store)
        store.update(row["agent_id"], last_goodbye_at=iso_timestamp(core.now()))
        row = store.by_token(row["token_hash"])
    return JSONResponse(agent_status(core, row, core.workload(row["org_id"], row["uuid"])))


@refusals_as_responses
async def deactivate(request: Request) -> Response:
    core = lab(request)
    body = await json_body(request) if await request.body() else {}
    restore = body.get("firewall_restore", "saved") if isinstance(body, dict) else None
    if restore not in FIREWALL_RESTORE:
        raise LabError("input_validation_error", f"firewall_restore must be one of: {', '.join(FIREWALL_RESTORE)}")
    with core.transaction() as db:
        store = VenStore(db)
        row = _agent_row(request, store)
        store.remove(row["agent_id"])
    if not row["unpair_requested"]:
        # An unpair the administrator asked for was recorded then; this one starts on the host.
        core.delete_workload(row["org_id"], row["uuid"])
        resource = {"ven": {"href": ven_href(row["org_id"], row["uuid"])}}
        core.record_event(row["org_id"], "agent.unpair", _agent_actor(row), resource, {"firewall_restore": restore})
    return JSONResponse({"unpaired": True})


@refusals_as_responses
async def upload_compatibility_report(request: Request) -> Response:
    core = lab(request)
    tests = check_compatibility_report(await json_body(request))
    report = {
        "last_updated_at": iso_timestamp(core.now()),
        "qualify_status": qualify_status(tests),
        "results": {"qualify_tests": tests},
    }
    with core.transaction() as db:
        store = VenStore(db)
        row = _agent_row(request, store)
        store.update(row["agent_id"], compatibility_report=json.dumps(report))
    return JSONResponse(report)


AGENT = "/lab/agent/v1"
ROUTES = [
    Route(f"{AGENT}/activate", activate, methods=["POST"]),
    Route(f"{AGENT}/status", status, methods=["GET"]),
    Route(f"{AGENT}/heartbeat", heartbeat, methods=["POST"]),
    Route(f"{AGENT}/suspend", suspend, methods=["POST"]),
    Route(f"{AGENT}/unsuspend", unsuspend, methods=["POST"]),
    Route(f"{AGENT}/goodbye", goodbye, methods=["POST"]),
    Route(f"{AGENT}/deactivate", deactivate, methods=["POST"]),
    Route(f"{AGENT}/compatibility_report", upload_compatibility_report, methods=["PUT"]),
]
