# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pairing profiles (declared on the shared object base) and pairing keys.

Users write labels as `{key: value}`, key limits as `unlimited` / numbers / durations, and the legacy
`mode` next to `enforcement_mode`; this module turns that into the PCE's fields, checks the combinations
the VEN reference forbids, and only then lets the base create or update anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import re

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.labels import key_value_pairs
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import (
    EXTERNAL_DATA,
    PceObjectType,
    comparable,
)

ENFORCEMENT_MODES = ("idle", "visibility_only", "selective", "full")
VISIBILITY_LEVELS = ("flow_summary", "flow_drops", "flow_off", "enhanced_data_collection")
# The pre-20.2 `mode` and the enforcement_mode it stands for (VEN reference, "VEN Modes in 20.2.0 and later").
LEGACY_MODES = {"idle": "idle", "illuminated": "visibility_only", "enforced": "full"}
LOCK_FIELDS = (
    "role_label_lock",
    "app_label_lock",
    "env_label_lock",
    "loc_label_lock",
    "mode_lock",
    "enforcement_mode_lock",
    "visibility_level_lock",
    "log_traffic_lock",
)
PROFILE_FIELDS = (
    "description",
    "enabled",
    "enforcement_mode",
    "visibility_level",
    "log_traffic",
    "labels",
    "allowed_uses_per_key",
    "key_lifespan",
    "agent_software_release",
    *LOCK_FIELDS,
    *EXTERNAL_DATA,
)
READ_ONLY_FIELDS = ("total_use_count", "last_pairing_at", "is_default", "created_at", "updated_at")
# What the PCE gives a new profile for fields the request leaves out; needed to check a new profile's
# combination of fields before it exists.
NEW_PROFILE_DEFAULTS = {"enforcement_mode": "visibility_only", "visibility_level": "flow_summary", "log_traffic": False}
DEFAULT_RELEASE = "Default"
UNLIMITED = "unlimited"
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")


# --- option values -----------------------------------------------------------------------------------------
def uses_limit(value, option="allowed_uses_per_key"):
    """`unlimited` or a positive whole number of uses -> what the PCE takes: "unlimited" or an int."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == UNLIMITED:
        return UNLIMITED
    number = _positive_int(value)
    if number is None:
        raise PceError("%s must be 'unlimited' or a positive whole number, got %r" % (option, value))
    return number


def lifespan_seconds(value, option="key_lifespan"):
    """`unlimited`, seconds (`3600`), or a duration (`90m`, `12h`, `2d`, `1w`, `1d12h`) -> "unlimited" or seconds."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == UNLIMITED:
        return UNLIMITED
    number = _positive_int(value)
    if number is None and isinstance(value, str) and _DURATION.match(value.lower()):
        number = sum(int(count) * DURATION_UNITS[unit] for count, unit in _DURATION_PART.findall(value.lower()))
        number = number or None
    if number is None:
        raise PceError(
            "%s must be 'unlimited', a positive number of seconds, or a duration such as 30m, 12h, 2d or 1w; "
            "got %r" % (option, value)
        )
    return number


def _positive_int(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    text = str(value).strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def label_dict(labels, option="labels"):
    """Labels written as `{key: value}` (or the other forms labels.key_value_pairs takes), at most one per key."""
    pairs = key_value_pairs(labels)
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise PceError("%s: at most one label per key, but %s is given twice" % (option, key))
        if value is None or str(value).strip() == "":
            raise PceError("%s: the label value for key %s must not be empty" % (option, key))
        seen[str(key)] = str(value)
    return seen


# --- the combinations the VEN reference forbids --------------------------------------------------------------
def check_profile_combination(settings, where="pairing profile"):
    """Fail on field combinations the PCE documents as invalid ("Allowable Combinations of log-traffic and
    visibility-level" in the VEN activate reference); `settings` is the profile as it would be."""
    visibility = settings.get("visibility_level")
    if visibility == "flow_off" and settings.get("log_traffic") is True:
        raise PceError(
            "%s: visibility_level flow_off and log_traffic true cannot be combined (the VEN collects no flows "
            "to log); set log_traffic: false or another visibility_level" % where
        )
    if visibility == "flow_drops" and settings.get("enforcement_mode") == "visibility_only":
        raise PceError(
            "%s: visibility_level flow_drops is not valid with enforcement_mode visibility_only (illuminated): "
            "nothing is blocked in that state, so there are no drops to record; use flow_summary, or "
            "enforcement_mode selective or full" % where
        )


def same_release(current, wanted):
    """`Default` matches how the PCE shows it, `Default (21.5.20-8451)`."""
    if current == wanted:
        return True
    if wanted is None or current is None:
        return False
    return wanted.split(" (")[0] == DEFAULT_RELEASE and current.split(" (")[0] == DEFAULT_RELEASE


# --- the object type ---------------------------------------------------------------------------------------
class PairingProfile(PceObjectType):
    name = "pairing_profile"
    endpoint = "pairing_profiles"
    identity = ("name",)
    fields = PROFILE_FIELDS
    renames = {"new_name": "name"}
    references = {"labels": "labels"}

    # --- presenting ------------------------------------------------------------------------------------
    def present_reference(self, field, value):
        """Labels as `{key: value}`, the way users write them."""
        shown = {}
        for ref in value or []:
            label = self.labels.describe(ref["href"])
            shown[label.get("key", ref["href"])] = label.get("value", ref["href"])
        return shown

    def view(self, obj, with_read_only=True):
        shown = super(PairingProfile, self).view(obj)
        if not shown:
            return shown
        for field in ("allowed_uses_per_key", "key_lifespan"):
            if shown.get(field) is not None:
                shown[field] = str(shown[field])
        if with_read_only:
            for field in READ_ONLY_FIELDS:
                shown[field] = obj.get(field)
        return shown

    def diff_view(self, obj):
        """What diff shows: the settable fields in user form, no hrefs."""
        shown = self.view(obj, with_read_only=False)
        shown.pop("href", None)
        return shown

    def result(self, changed, before, after):
        return {
            "changed": changed,
            self.name: self.view(after),
            "diff": {"before": self.diff_view(before), "after": self.diff_view(after)},
        }

    # --- wanted state ----------------------------------------------------------------------------------
    def wanted_fields(self, params):
        values = dict(params)
        if values.get("mode") is not None:
            if values.get("enforcement_mode") is not None:
                raise PceError("mode and enforcement_mode are mutually exclusive: give enforcement_mode only")
            values["enforcement_mode"] = LEGACY_MODES[values["mode"]]
        values["allowed_uses_per_key"] = uses_limit(values.get("allowed_uses_per_key"))
        values["key_lifespan"] = lifespan_seconds(values.get("key_lifespan"))
        if values.get("labels") is not None:
            values["labels"] = label_dict(values["labels"])
        return super(PairingProfile, self).wanted_fields(values)

    def changes(self, current, wanted):
        changed = {}
        for field, value in wanted.items():
            now = current.get(field)
            if field in ("allowed_uses_per_key", "key_lifespan"):
                differs = str(now) != str(value)
            elif field == "agent_software_release":
                differs = not same_release(now, value)
            elif field == "description":
                differs = (now or "") != (value or "")
            else:
                differs = comparable(now) != comparable(value)
            if differs:
                changed[field] = value
        return changed

    # --- validation before any write -------------------------------------------------------------------
    def create(self, payload):
        check_profile_combination(dict(NEW_PROFILE_DEFAULTS, **payload), "new pairing profile %r" % payload["name"])
        return super(PairingProfile, self).create(payload)

    def update(self, current, changes):
        check_profile_combination(dict(current, **changes), "pairing profile %r" % current.get("name"))
        return super(PairingProfile, self).update(current, changes)

    # --- reading ---------------------------------------------------------------------------------------
    def find_named(self, name):
        """The profile named `name` exactly; a PceError that says how to create it otherwise."""
        if name is None or not str(name).strip():
            raise PceError("the pairing profile name must not be empty")
        found = self.find({"name": name})
        if found is None:
            raise PceError(
                "pairing profile %r does not exist on the PCE (create it with microseg.illumio.pairing_profile first)"
                % (name,)
            )
        return found


# --- pairing keys ------------------------------------------------------------------------------------------
def key_settings(profile):
    """What a new key of `profile` inherits, in user form (never the key itself)."""
    return {
        "pairing_profile": profile.get("name"),
        "allowed_uses_per_key": None
        if profile.get("allowed_uses_per_key") is None
        else str(profile["allowed_uses_per_key"]),
        "key_lifespan": None if profile.get("key_lifespan") is None else str(profile["key_lifespan"]),
    }


def generate_pairing_key(client, profile_name, check_mode=False):
    """Make a new key (activation code) for the named, enabled profile.

    Returns the module result: `activation_code` (None in check mode), `pairing_key` (what the key inherits),
    the profile in user form and a diff that names the profile and the key's limits but never the code.
    """
    profiles = PairingProfile(client, check_mode=check_mode)
    profile = profiles.find_named(profile_name)
    if profile.get("enabled") is False:
        raise PceError(
            "pairing profile %r is disabled and makes no pairing keys; enable it first "
            "(microseg.illumio.pairing_profile with enabled: true)" % (profile_name,)
        )
    settings = key_settings(profile)
    result = {
        "changed": True,
        "activation_code": None,
        "pairing_key": settings,
        "pairing_profile": profiles.view(profile),
        "diff": {"before": {}, "after": {"pairing_key": dict(settings)}},
    }
    if check_mode:
        return result
    answer = client.post(profile["href"] + "/pairing_key", {}) or {}
    code = answer.get("activation_code")
    if not code:
        raise PceError("the PCE made a pairing key for %r but returned no activation_code" % (profile_name,))
    result["activation_code"] = code
    return result
