"""Pairing profiles and pairing keys (activation codes) of the lab PCE.

Activation codes are shown once, when generated; the store keeps only their SHA-256. They are long
random values, so a plain hash is enough to make a leaked database useless for pairing.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pcelab.api.software import SoftwareLibrary
from pcelab.api.ven_core import LabError, ensure_schema, json_body, lab, not_found, org_of, refusals_as_responses

ENFORCEMENT_MODES = ("idle", "visibility_only", "selective", "full")
VISIBILITY_LEVELS = ("flow_summary", "flow_drops", "flow_off", "enhanced_data_collection")
# The legacy `mode` field and its mapping to enforcement_mode, both ways.
LEGACY_MODES = {"idle": "idle", "illuminated": "visibility_only", "enforced": "full"}
MODE_OF_ENFORCEMENT = {"idle": "idle", "visibility_only": "illuminated", "selective": "illuminated", "full": "enforced"}
LOCK_FIELDS = (
    "env_label_lock",
    "loc_label_lock",
    "role_label_lock",
    "app_label_lock",
    "mode_lock",
    "enforcement_mode_lock",
    "log_traffic_lock",
    "visibility_level_lock",
)
READ_ONLY_FIELDS = (
    "href",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "total_use_count",
    "last_pairing_at",
    "is_default",
    "caps",
)
WRITABLE_FIELDS = (
    "name",
    "description",
    "enabled",
    "enforcement_mode",
    "mode",
    "visibility_level",
    "log_traffic",
    "labels",
    "allowed_uses_per_key",
    "key_lifespan",
    "agent_software_release",
    # Strings or null, stored and answered as sent: the SDK's PairingProfile (an IllumioObject) carries them,
    # as do the PCE's other policy objects (REST guide: "external_data_set", "external_data_reference").
    "external_data_set",
    "external_data_reference",
    *LOCK_FIELDS,
)
NEW_PROFILE_DEFAULTS = {
    "description": "",
    "enabled": True,
    "enforcement_mode": "visibility_only",
    "visibility_level": "flow_summary",
    "log_traffic": False,
    "labels": [],
    "allowed_uses_per_key": "unlimited",
    "key_lifespan": "unlimited",
    "agent_software_release": None,  # None: the library's default release at pairing time
    "external_data_set": None,
    "external_data_reference": None,
    # Locked unless asked otherwise: the pairing script may not override what the profile says.
    **dict.fromkeys(LOCK_FIELDS, True),
}
EXTERNAL_FIELDS = ("external_data_set", "external_data_reference")
DEFAULT_RELEASE_WORD = "Default"
ACTIVATION_CODE_BYTES = 41  # 82 hex digits, as long as the PCE's own codes
MAX_NAME_LENGTH = 255


def hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()


def new_activation_code() -> str:
    return secrets.token_hex(ACTIVATION_CODE_BYTES)


# --- profile validation -------------------------------------------------------------------------------
def check_profile_body(body: object, creating: bool) -> dict:
    """The writable fields of a POST/PUT body, checked for type and range (references are checked later)."""
    if not isinstance(body, dict):
        raise LabError("input_validation_error", "the request body must be a JSON object")
    unknown = sorted(set(body) - set(WRITABLE_FIELDS) - set(READ_ONLY_FIELDS))
    if unknown:
        raise LabError("input_validation_error", f"unknown pairing profile field: {unknown[0]}")
    read_only = sorted(set(body) & set(READ_ONLY_FIELDS))
    if read_only:
        raise LabError("input_validation_error", f"{read_only[0]} is read-only")
    if creating and "name" not in body:
        raise LabError("input_validation_error", "name is required")
    fields = {key: CHECKS[key](key, value) for key, value in body.items()}
    return _reconcile_modes(fields)


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise LabError("input_validation_error", f"{key} must be a string")
    if key == "name" and not value.strip():
        raise LabError("input_validation_error", "name must not be empty")
    if len(value) > MAX_NAME_LENGTH and key == "name":
        raise LabError("input_validation_error", f"name is longer than {MAX_NAME_LENGTH} characters")
    return value


def _description(key: str, value: object) -> str:
    return "" if value is None else _text(key, value)


def _boolean(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise LabError("input_validation_error", f"{key} must be true or false")
    return value


def _choice(choices: tuple[str, ...]):
    def check(key: str, value: object) -> str:
        if value not in choices:
            raise LabError("input_validation_error", f"{key} must be one of: {', '.join(choices)}")
        return value

    return check


# The largest key lifespan (seconds, ~68 years) or number of uses: the PCE's 32-bit integer fields.
MAX_KEY_LIMIT = 2**31 - 1


def _limit(unit: str):
    """'unlimited' or a whole number from 1 to MAX_KEY_LIMIT (given as number or digit string); stored as a
    string."""

    def check(key: str, value: object) -> str:
        if value == "unlimited":
            return value
        number = 0
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and 0 < len(value) <= 10 and value.isascii() and value.isdigit():
            number = int(value)
        if not 1 <= number <= MAX_KEY_LIMIT:
            message = f"{key} must be 'unlimited' or a number of {unit} from 1 to {MAX_KEY_LIMIT}"
            raise LabError("input_validation_error", message)
        return str(number)

    return check


def _labels(key: str, value: object) -> list[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) and isinstance(v.get("href"), str) for v in value):
        raise LabError("input_validation_error", 'labels must be a list of {"href": ...}')
    hrefs = [label["href"] for label in value]
    if len(set(hrefs)) != len(hrefs):
        raise LabError("input_validation_error", "a label is listed twice")
    return [{"href": href} for href in hrefs]


def _external(key: str, value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME_LENGTH):
        raise LabError(
            "input_validation_error", f"{key} must be a string of at most {MAX_NAME_LENGTH} characters or null"
        )
    return value


def _release(key: str, value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.split(" (")[0] == DEFAULT_RELEASE_WORD):
        return None
    if not isinstance(value, str) or not value:
        raise LabError("input_validation_error", f"{key} must be a VEN release such as 21.5.20-8451 or 'Default'")
    return value


CHECKS = {
    "name": _text,
    "description": _description,
    "enabled": _boolean,
    "enforcement_mode": _choice(ENFORCEMENT_MODES),
    "mode": _choice(tuple(LEGACY_MODES)),
    "visibility_level": _choice(VISIBILITY_LEVELS),
    "log_traffic": _boolean,
    "labels": _labels,
    "allowed_uses_per_key": _limit("uses"),
    "key_lifespan": _limit("seconds"),
    "agent_software_release": _release,
    "external_data_set": _external,
    "external_data_reference": _external,
    **dict.fromkeys(LOCK_FIELDS, _boolean),
}


def _reconcile_modes(fields: dict) -> dict:
    # `mode` is the pre-20.2 spelling of enforcement_mode; both may come, but must agree.
    legacy = fields.pop("mode", None)
    if legacy is None:
        return fields
    mapped = LEGACY_MODES[legacy]
    if fields.setdefault("enforcement_mode", mapped) != mapped:
        raise LabError("input_validation_error", f"mode {legacy} contradicts enforcement_mode")
    return fields


def check_visibility_combination(profile: dict) -> None:
    if profile["visibility_level"] == "flow_off" and profile["log_traffic"]:
        raise LabError("input_validation_error", "visibility_level flow_off cannot be combined with log_traffic")


# --- keys ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyState:
    """What decides whether an activation code still pairs."""

    created_at: float
    use_count: int
    allowed_uses: str  # profile's allowed_uses_per_key when the key was made
    lifespan: str  # profile's key_lifespan when the key was made


def key_refusal(key: KeyState, profile_enabled: bool, now: float) -> LabError | None:
    """Why the key may not pair another VEN now, or None when it may."""
    if not profile_enabled:
        return LabError("pairing_profile_disabled", "the pairing profile of this activation code is disabled", 403)
    if key.lifespan != "unlimited" and now > key.created_at + int(key.lifespan):
        return LabError("activation_code_expired", "the activation code has expired", 403)
    if key.allowed_uses != "unlimited" and key.use_count >= int(key.allowed_uses):
        return LabError("activation_code_used_up", "the activation code has no uses left", 403)
    return None


# --- storage ------------------------------------------------------------------------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS ven_pairing_profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    total_use_count INTEGER NOT NULL DEFAULT 0,
    last_pairing_at TEXT
);
CREATE TABLE IF NOT EXISTS ven_pairing_keys (
    code_hash TEXT PRIMARY KEY,
    profile_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    use_count INTEGER NOT NULL DEFAULT 0,
    allowed_uses TEXT NOT NULL,
    lifespan TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ven_pairing_keys_profile ON ven_pairing_keys (profile_id);
"""


def iso_timestamp(epoch: float) -> str:
    """Times the way the PCE writes them: UTC with milliseconds, e.g. 2022-05-25T18:41:49.242Z."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class ProfileStore:
    """Pairing profiles and their keys in the lab's SQLite database."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db  # tables: created by setup() at start-up

    def find(self, org_id: int, profile_id: int) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT * FROM ven_pairing_profiles WHERE org_id = ? AND id = ?", (org_id, profile_id)
        ).fetchone()

    def find_any_org(self, profile_id: int) -> sqlite3.Row | None:
        # The pairing-script URL carries a profile id but no org; ids are unique across orgs.
        return self.db.execute("SELECT * FROM ven_pairing_profiles WHERE id = ?", (profile_id,)).fetchone()

    def list(self, org_id: int, name: str | None) -> list[sqlite3.Row]:
        sql, args = "SELECT * FROM ven_pairing_profiles WHERE org_id = ?", [org_id]
        if name:
            sql += " AND instr(lower(name), lower(?)) > 0"
            args.append(name)
        return self.db.execute(sql + " ORDER BY id", args).fetchall()

    def name_taken(self, org_id: int, name: str, except_id: int | None = None) -> bool:
        row = self.db.execute(
            "SELECT id FROM ven_pairing_profiles WHERE org_id = ? AND lower(name) = lower(?) AND id IS NOT ?",
            (org_id, name, except_id),
        ).fetchone()
        return row is not None

    def create(self, org_id: int, settings: dict, user_href: str, now: float) -> int:
        stamp = iso_timestamp(now)
        cursor = self.db.execute(
            "INSERT INTO ven_pairing_profiles (org_id, name, settings, created_at, updated_at, created_by, updated_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (org_id, settings["name"], json.dumps(settings), stamp, stamp, user_href, user_href),
        )
        return cursor.lastrowid

    def update(self, row: sqlite3.Row, settings: dict, user_href: str, now: float) -> None:
        self.db.execute(
            "UPDATE ven_pairing_profiles SET name = ?, settings = ?, updated_at = ?, updated_by = ? WHERE id = ?",
            (settings["name"], json.dumps(settings), iso_timestamp(now), user_href, row["id"]),
        )

    def delete(self, row: sqlite3.Row) -> None:
        self.db.execute("DELETE FROM ven_pairing_keys WHERE profile_id = ?", (row["id"],))
        self.db.execute("DELETE FROM ven_pairing_profiles WHERE id = ?", (row["id"],))

    def add_key(self, row: sqlite3.Row, code: str, now: float) -> None:
        settings = json.loads(row["settings"])
        self.db.execute(
            "INSERT INTO ven_pairing_keys (code_hash, profile_id, created_at, allowed_uses, lifespan)"
            " VALUES (?, ?, ?, ?, ?)",
            (hash_code(code), row["id"], now, settings["allowed_uses_per_key"], settings["key_lifespan"]),
        )

    def key_and_profile(self, code: str) -> tuple[sqlite3.Row, sqlite3.Row] | None:
        key = self.db.execute("SELECT * FROM ven_pairing_keys WHERE code_hash = ?", (hash_code(code),)).fetchone()
        profile = key and self.find_any_org(key["profile_id"])
        return (key, profile) if profile else None

    def count_use(self, key: sqlite3.Row, now: float) -> None:
        self.db.execute(
            "UPDATE ven_pairing_keys SET use_count = use_count + 1 WHERE code_hash = ?", (key["code_hash"],)
        )
        self.db.execute(
            "UPDATE ven_pairing_profiles SET total_use_count = total_use_count + 1, last_pairing_at = ? WHERE id = ?",
            (iso_timestamp(now), key["profile_id"]),
        )


def key_state(key: sqlite3.Row) -> KeyState:
    return KeyState(key["created_at"], key["use_count"], key["allowed_uses"], key["lifespan"])


def usable_key(store: ProfileStore, code: str, now: float) -> tuple[sqlite3.Row, sqlite3.Row]:
    """The key and profile of an activation code that may pair now, or the LabError saying why not."""
    found = store.key_and_profile(code)
    if found is None:
        raise LabError("invalid_activation_code", "the activation code is not valid", 401)
    key, profile = found
    refusal = key_refusal(key_state(key), json.loads(profile["settings"])["enabled"], now)
    if refusal:
        raise refusal
    return key, profile


def profile_settings(row: sqlite3.Row) -> dict:
    return json.loads(row["settings"])


def render_profile(row: sqlite3.Row, default_release: str | None) -> dict:
    """A pairing profile shaped like pairing_profiles.json."""
    settings = profile_settings(row)
    release = settings["agent_software_release"]
    shown_release = release or (f"{DEFAULT_RELEASE_WORD} ({default_release})" if default_release else "Default")
    return {
        "href": f"/orgs/{row['org_id']}/pairing_profiles/{row['id']}",
        "name": settings["name"],
        "description": settings["description"],
        "total_use_count": row["total_use_count"],
        "enabled": settings["enabled"],
        "is_default": False,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "created_by": {"href": row["created_by"]},
        "updated_by": {"href": row["updated_by"]},
        "mode": MODE_OF_ENFORCEMENT[settings["enforcement_mode"]],
        "enforcement_mode": settings["enforcement_mode"],
        "key_lifespan": settings["key_lifespan"],
        "allowed_uses_per_key": settings["allowed_uses_per_key"],
        "last_pairing_at": row["last_pairing_at"],
        "labels": [dict(label) for label in settings["labels"]],
        **{lock: settings[lock] for lock in LOCK_FIELDS if not lock.startswith(("log_", "visibility_"))},
        "log_traffic": settings["log_traffic"],
        "log_traffic_lock": settings["log_traffic_lock"],
        "visibility_level": settings["visibility_level"],
        "visibility_level_lock": settings["visibility_level_lock"],
        "agent_software_release": shown_release,
        # Only once set: pairing_profiles.json (a real PCE's answer) has no such keys on profiles without them,
        # the PCE leaves unset external data out (ip_lists.json does the same).
        **{name: settings[name] for name in EXTERNAL_FIELDS if settings.get(name) is not None},
        "caps": ["write", "generate_pairing_key"],
    }


# --- endpoints ----------------------------------------------------------------------------------------------
def _default_release(core) -> str | None:
    return SoftwareLibrary(core.data_dir).default_name()


def _check_references(core, org_id: int, settings: dict) -> None:
    """Labels must exist (one per key) and a named release must be in the library."""
    keys = []
    for label in settings["labels"]:
        found = core.label(org_id, label["href"])
        if found is None:
            raise LabError("input_validation_error", f"label {label['href']} does not exist")
        keys.append(found["key"])
    if len(set(keys)) != len(keys):
        raise LabError("input_validation_error", "a pairing profile takes at most one label per key")
    release = settings["agent_software_release"]
    if release and SoftwareLibrary(core.data_dir).release(release) is None:
        raise LabError("input_validation_error", f"agent_software_release {release} is not in the VEN library")
    check_visibility_combination(settings)


def _event_resource(shown: dict) -> dict:
    return {"pairing_profile": {"href": shown["href"], "name": shown["name"]}}


def _profile_or_404(store: ProfileStore, request: Request):
    return store.find(org_of(request), int(request.path_params["profile_id"]))


@refusals_as_responses
async def list_profiles(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        rows = ProfileStore(db).list(org_of(request), request.query_params.get("name"))
    default = _default_release(core)
    return core.collection(request, [render_profile(row, default) for row in rows])


@refusals_as_responses
async def create_profile(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    settings = {**NEW_PROFILE_DEFAULTS, **check_profile_body(await json_body(request), creating=True)}
    _check_references(core, org_id, settings)
    user = core.user_href(request)
    with core.transaction() as db:
        store = ProfileStore(db)
        if store.name_taken(org_id, settings["name"]):
            raise LabError("name_must_be_unique", f"a pairing profile named {settings['name']!r} exists")
        row = store.find(org_id, store.create(org_id, settings, user, core.now()))
    shown = render_profile(row, _default_release(core))
    core.record_event(org_id, "pairing_profile.create", user, _event_resource(shown))
    return JSONResponse(shown, status_code=201)


@refusals_as_responses
async def get_profile(request: Request) -> Response:
    core = lab(request)
    with core.transaction() as db:
        row = _profile_or_404(ProfileStore(db), request)
    if row is None:
        return not_found("pairing profile")
    return JSONResponse(render_profile(row, _default_release(core)))


@refusals_as_responses
async def update_profile(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    changes = check_profile_body(await json_body(request), creating=False)
    user = core.user_href(request)
    with core.transaction() as db:
        row = _profile_or_404(ProfileStore(db), request)
    if row is None:
        return not_found("pairing profile")
    settings = {**profile_settings(row), **changes}
    # Checked outside our transaction: label lookups are the core's and may use its own.
    _check_references(core, org_id, settings)
    with core.transaction() as db:
        store = ProfileStore(db)
        if store.name_taken(org_id, settings["name"], except_id=row["id"]):
            raise LabError("name_must_be_unique", f"a pairing profile named {settings['name']!r} exists")
        store.update(row, settings, user, core.now())
        row = store.find(org_id, row["id"])
    shown = render_profile(row, _default_release(core))
    core.record_event(org_id, "pairing_profile.update", user, _event_resource(shown))
    return Response(status_code=204)


@refusals_as_responses
async def delete_profile(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    with core.transaction() as db:
        store = ProfileStore(db)
        row = _profile_or_404(store, request)
        if row is None:
            return not_found("pairing profile")
        shown = render_profile(row, _default_release(core))
        store.delete(row)
    user = core.user_href(request)
    core.record_event(org_id, "pairing_profile.delete", user, _event_resource(shown))
    return Response(status_code=204)


@refusals_as_responses
async def create_pairing_key(request: Request) -> Response:
    core, org_id = lab(request), org_of(request)
    body = await json_body(request) if await request.body() else {}
    if body != {}:
        raise LabError("input_validation_error", "the pairing_key request takes an empty object: {}")
    code = new_activation_code()
    with core.transaction() as db:
        store = ProfileStore(db)
        row = _profile_or_404(store, request)
        if row is None:
            return not_found("pairing profile")
        if not profile_settings(row)["enabled"]:
            raise LabError("pairing_profile_disabled", "the pairing profile is disabled; enable it to make keys")
        store.add_key(row, code, core.now())
    href = f"/orgs/{org_id}/pairing_profiles/{row['id']}"
    user = core.user_href(request)
    core.record_event(org_id, "pairing_profile.create_pairing_key", user, {"pairing_profile": {"href": href}})
    return JSONResponse({"activation_code": code}, status_code=201)


def setup(core) -> None:
    """Create the tables at start-up (the core calls this once per app)."""
    with core.transaction() as db:
        ensure_schema(db, SCHEMA)


def label_reference_check(core, org_id: int, href: str) -> str | None:
    """A label a pairing profile gives new workloads may not be deleted."""
    with core.transaction() as db:
        for row in ProfileStore(db).list(org_id, None):
            if any(label["href"] == href for label in profile_settings(row)["labels"]):
                return f"pairing profile {row['name']}"
    return None


def label_usage(core, org_id: int) -> dict[str, set[str]]:
    """`usage.pairing_profile` of GET labels?usage=true: the labels pairing profiles give new workloads."""
    with core.transaction() as db:
        rows = ProfileStore(db).list(org_id, None)
    return {"pairing_profile": {label["href"] for row in rows for label in profile_settings(row)["labels"]}}


ORG = "/api/v2/orgs/{org_id:id}"
ROUTES = [
    Route(f"{ORG}/pairing_profiles", list_profiles, methods=["GET"]),
    Route(f"{ORG}/pairing_profiles", create_profile, methods=["POST"]),
    Route(f"{ORG}/pairing_profiles/{{profile_id:id}}", get_profile, methods=["GET"]),
    Route(f"{ORG}/pairing_profiles/{{profile_id:id}}", update_profile, methods=["PUT"]),
    Route(f"{ORG}/pairing_profiles/{{profile_id:id}}", delete_profile, methods=["DELETE"]),
    Route(f"{ORG}/pairing_profiles/{{profile_id:id}}/pairing_key", create_pairing_key, methods=["POST"]),
]
