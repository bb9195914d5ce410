# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Label dimensions (label types): the keys a label may have, declared on the shared object base.

A PCE has the four built-in dimensions role, app, env and loc; any other label key must be created as a
dimension before labels of that key can be (the PCE answers 406 `label_key_not_supported` otherwise).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import (
    EXTERNAL_DATA,
    PceObjectType,
    comparable,
)

BUILTIN_DIMENSIONS = ("role", "app", "env", "loc")
DISPLAY_INFO_FIELDS = (
    "icon",
    "initial",
    "background_color",
    "foreground_color",
    "display_name_plural",
)
# The PCE's error token when a label is created with a key that is no label dimension.
KEY_NOT_SUPPORTED = "label_key_not_supported"


class LabelDimension(PceObjectType):
    name = "label_dimension"
    endpoint = "label_dimensions"
    identity = ("key",)
    fields = ("display_name", "display_info", *EXTERNAL_DATA)

    # --- reading ----------------------------------------------------------------------------------------
    def read_collection(self, query=None):
        # A deleted dimension may stay listed, marked deleted; it is gone for every purpose here.
        return [doc for doc in super(LabelDimension, self).read_collection(query) if not doc.get("deleted")]

    def search(self, key=None, usage=False):
        """Dimensions for the _info module: all, or the one with this key; with `usage`, whether labels use them."""
        query = {}
        if key is not None:
            query["key"] = key
        if usage:
            query["usage"] = "true"
        found = self.read_collection(query or None)
        if key is not None:
            found = [doc for doc in found if doc.get("key") == key]
        found.sort(key=lambda doc: doc.get("key") or "")
        views = []
        for doc in found:
            shown = self.view(doc)
            shown["builtin"] = doc.get("key") in BUILTIN_DIMENSIONS
            if usage:
                shown["usage"] = doc.get("usage")
            views.append(shown)
        return views

    # --- wanted state -----------------------------------------------------------------------------------
    def wanted_fields(self, params):
        values = dict(params)
        # Only the display_info suboptions given count; the others keep what the PCE has.
        given = dict((field, value) for field, value in (values.get("display_info") or {}).items() if value is not None)
        unknown = sorted(set(given) - set(DISPLAY_INFO_FIELDS))
        if unknown:
            raise PceError(
                "display_info: unknown field %s (allowed: %s)" % (unknown[0], ", ".join(DISPLAY_INFO_FIELDS))
            )
        values["display_info"] = given or None
        display_name = values.get("display_name")
        if display_name is not None and not str(display_name).strip():
            raise PceError("display_name must not be empty")
        return super(LabelDimension, self).wanted_fields(values)

    def changes(self, current, wanted):
        changed = {}
        for field, value in wanted.items():
            now = current.get(field)
            if field == "display_info":
                now = now or {}
                if any(comparable(now.get(name)) != comparable(given) for name, given in value.items()):
                    # The PCE replaces display_info whole: send what it has with the given fields changed.
                    changed[field] = dict(now, **value)
            elif comparable(now) != comparable(value):
                changed[field] = value
        return changed

    # --- plan, then apply -------------------------------------------------------------------------------
    def create(self, payload):
        if not payload.get("display_name"):
            raise PceError(
                "label dimension %s does not exist: give display_name to create it (the PCE requires one)"
                % payload["key"]
            )
        return super(LabelDimension, self).create(payload)

    def ensure_absent(self, identity):
        if identity["key"] in BUILTIN_DIMENSIONS:
            raise PceError(
                "label dimension %s is one of the PCE's built-in dimensions (%s), which cannot be deleted"
                % (identity["key"], ", ".join(BUILTIN_DIMENSIONS))
            )
        try:
            return super(LabelDimension, self).ensure_absent(identity)
        except PceError as error:
            if error.status != 406:
                raise
            raise PceError(
                "cannot delete label dimension %s: %s. A dimension can only be deleted once no label of its key "
                "exists (delete them with microseg.illumio.label, state: absent)" % (identity["key"], error),
                status=error.status,
                token=error.token,
                details=error.details,
            ) from None


def missing_dimension_error(key, error=None):
    """The PceError for a label whose key is not a label dimension, saying how to make one."""
    return PceError(
        "label key %r is not a label dimension on the PCE, so no label of that key can exist; create the dimension "
        "first, for example with microseg.illumio.label_dimension (key: %s, display_name: ...)" % (key, key),
        status=getattr(error, "status", None),
        token=KEY_NOT_SUPPORTED,
        details=getattr(error, "details", None),
    )


def dimension_exists(client, key):
    """Whether the PCE has a label dimension `key`. A PCE without the label dimension API (404) cannot say, so
    the answer is then True and the PCE decides when the label is created."""
    if key in BUILTIN_DIMENSIONS:
        return True
    try:
        return LabelDimension(client).find({"key": key}) is not None
    except PceError as error:
        if error.status == 404:
            return True
        raise
