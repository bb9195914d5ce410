# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shared base of object modules: find, plan, then create / update / delete with check mode and diff.

An object type only declares what differs (see PceObjectType); everything else happens here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import json

from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import UncertainOutcome
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.labels import LabelResolver

# The fields by which many PCE objects point back at the system they come from (a CMDB, an IPAM...). Like every
# optional field, they are only compared and sent when the user gives them.
EXTERNAL_DATA = ("external_data_set", "external_data_reference")
# Statuses of a create the PCE refused because the object exists (label key+value and policy object names are
# unique: 406 label_key_value_not_unique, name_must_be_unique): made by another run in the meantime, perhaps.
CONFLICT_STATUSES = frozenset([406, 409])
CONFLICT_WORDS = ("unique", "duplicate", "already_exists", "exists")
# Statuses of a DELETE of something another run deleted in the meantime: not found, or already deleted (a draft).
GONE_STATUSES = frozenset([404, 406])
# How many times a create whose answer was lost, and which a look-up then did not find, is sent again.
CREATE_RESENDS = 2


class ChangedThenFailed(PceError):
    """A failure after this run had changed something on the PCE. `result` holds the module result fields
    that say what (changed: true, the hrefs in `changed_hrefs`); modules pass them to fail_json."""

    def __init__(self, message, result, status=None, token=None, details=None):
        super(ChangedThenFailed, self).__init__(message, status=status, token=token, details=details)
        self.result = dict(result, changed=True)


def failure_result(error):
    """The result fields a module's fail_json gets besides msg: what was changed before the failure."""
    return dict(getattr(error, "result", None) or {})


def changed_then_failed(error, hrefs, what, result=None):
    """`error`, re-raised as ChangedThenFailed naming the objects (hrefs) this run created or changed before."""
    if not hrefs:
        return error
    message = "%s. Before that, this run changed %s on the PCE: %s" % (
        str(error).rstrip("."),
        what,
        ", ".join(hrefs),
    )
    fields = dict(result or {}, changed_hrefs=list(hrefs))
    return ChangedThenFailed(message, fields, status=error.status, token=error.token, details=error.details)


def create_once(client, path, payload, lookup, what):
    """POST `payload` to `path` so that it makes at most one object: returns (object, made by this request).

    A create is never resent blindly (see client.UncertainOutcome). When its answer is lost, or a gateway
    answers 502 / 504, `lookup()` (which reads the PCE) says whether the object exists now: if so, that is the
    one this request made; if not, it is sent again (at most CREATE_RESENDS times). When the PCE refuses it
    because the object exists (a uniqueness conflict, e.g. another run made it a moment ago), the object found
    by `lookup()` is returned with False, for the caller to bring to the wanted state.
    """
    resends = 0
    while True:
        try:
            return client.post(path, payload), True
        except UncertainOutcome as error:
            found = _look_up_after(lookup, error, what)
            if found is not None:
                return found, True
            if resends >= CREATE_RESENDS:
                raise PceError(
                    "%s; %s was not on the PCE afterwards, and %d more attempts got no answer either"
                    % (str(error).rstrip("."), what, resends)
                ) from None
            resends += 1
        except PceError as error:
            if not is_conflict(error):
                raise
            found = _look_up_after(lookup, error, what)
            if found is None:
                raise
            return found, False


def is_conflict(error):
    """Whether the PCE refused a create because such an object exists (its token says so)."""
    token = (error.token or "").lower()
    return error.status in CONFLICT_STATUSES and any(word in token for word in CONFLICT_WORDS)


def _look_up_after(lookup, error, what):
    try:
        return lookup()
    except PceError as failure:
        raise UncertainOutcome(
            "%s. Looking up whether %s exists failed too: %s. Run the task again once the PCE answers: it looks "
            "the object up before it creates anything." % (str(error).rstrip("."), what, failure),
            status=error.status,
            token=error.token,
        ) from None


class PceObjectType(object):
    """One kind of PCE object, managed declaratively. Subclasses set the class attributes below."""

    # Result key and the word used in messages: "label".
    name = None
    # Collection under the organization: "labels", "label_groups".
    endpoint = None
    # Draft policy objects live under sec_policy/draft/ and only take effect once provisioned.
    draft = False
    # Fields that pick out one object, e.g. ("key", "value"); the PCE's filters on them match partially,
    # so they are sent as query filters and the answer is then checked for an exact match.
    identity = ()
    # Further fields the user may set; only those the user gave are compared and sent.
    fields = ()
    # Rename options: option name -> identity field it renames, e.g. {"new_value": "value"}.
    renames = {}
    # Fields whose values are references written in user form, resolved to hrefs: field -> kind.
    # Kinds: "labels" (a list of {key: value} -> [{"href": ...}]).
    references = {}

    def __init__(self, client, check_mode=False):
        self.client = client
        self.check_mode = check_mode
        self.labels = LabelResolver(client)

    # --- reading ----------------------------------------------------------------------------------------
    def collection_path(self):
        return self.client.org_path(("sec_policy/draft/" if self.draft else "") + self.endpoint)

    def read_collection(self, query=None):
        return self.client.get_collection(self.collection_path(), query)

    def find(self, identity):
        """The one object whose identity fields equal `identity` exactly, or None."""
        candidates = self.read_collection(identity)
        matches = [obj for obj in candidates if all(obj.get(field) == value for field, value in identity.items())]
        if len(matches) > 1:
            raise PceError(
                "%d %ss match %s exactly; expected at most one: %s"
                % (len(matches), self.name, _describe(identity), ", ".join(m["href"] for m in matches))
            )
        return matches[0] if matches else None

    # --- presenting -------------------------------------------------------------------------------------
    def view(self, obj):
        """The object as modules return it: href, identity and settable fields, references in user form."""
        if not obj:
            return {}
        shown = {"href": obj.get("href")}
        for field in self.identity + self.fields:
            value = obj.get(field)
            shown[field] = self.present_reference(field, value) if field in self.references else value
        return shown

    def present_reference(self, field, value):
        if self.references[field] == "labels":
            return [self.labels.describe(ref["href"]) for ref in value or []]
        return value

    # --- wanted state -----------------------------------------------------------------------------------
    def wanted_identity(self, params):
        identity = dict((field, params.get(field)) for field in self.identity)
        empty = [field for field, value in identity.items() if value is None or str(value).strip() == ""]
        if empty:
            raise PceError("%s must not be empty" % " and ".join(empty))
        return identity

    def wanted_fields(self, params):
        wanted = dict((field, params[field]) for field in self.fields if params.get(field) is not None)
        for field, kind in self.references.items():
            if field in wanted:
                wanted[field] = self.resolve_reference(kind, wanted[field])
        return wanted

    def resolve_reference(self, kind, value):
        if kind == "labels":
            return self.labels.refs(value)
        raise PceError("unknown reference kind %r" % kind)

    def wanted_renames(self, params):
        renames = dict((field, params.get(option)) for option, field in self.renames.items())
        return dict((field, value) for field, value in renames.items() if value is not None)

    # --- plan, then apply -------------------------------------------------------------------------------
    def ensure(self, params):
        """Bring the PCE to params["state"] (present by default); return the module result."""
        identity = self.wanted_identity(params)
        if params.get("state") == "absent":
            return self.ensure_absent(identity)
        return self.ensure_present(identity, self.wanted_fields(params), self.wanted_renames(params))

    def ensure_present(self, identity, wanted, renames=None):
        current = self.find(identity)
        if renames:
            target = dict(identity, **renames)
            renamed = self.find(target) if target != identity else current
            if current is not None and renamed is not None and renamed is not current:
                raise PceError(
                    "cannot rename %s %s to %s: both exist (%s, %s)"
                    % (self.name, _describe(identity), _describe(target), current["href"], renamed["href"])
                )
            # Already renamed (or never existed): the object to keep up to date is the renamed one.
            current = current if renamed is None else renamed
            identity = target
            wanted = dict(wanted, **renames)
        if current is None:
            return self.create(dict(identity, **wanted))
        changes = self.changes(current, wanted)
        if not changes:
            return self.result(False, current, current)
        return self.update(current, changes)

    def ensure_absent(self, identity):
        current = self.find(identity)
        if current is None:
            return self.result(False, None, None)
        if not self.check_mode and not self.delete(current, lambda: self.find(identity)):
            return self.result(False, None, None)
        return self.result(True, current, None)

    def delete(self, current, lookup):
        """Delete `current`; False when it was gone already (deleted by another run in the meantime)."""
        try:
            self.client.delete(current["href"])
        except PceError as error:
            if error.status not in GONE_STATUSES or lookup() is not None:
                raise
            return False
        return True

    def changes(self, current, wanted):
        """The wanted fields whose values differ from the current object's."""
        return dict(
            (field, value) for field, value in wanted.items() if comparable(current.get(field)) != comparable(value)
        )

    def create(self, payload):
        if self.check_mode:
            return self.result(True, None, payload)
        identity = dict((field, payload[field]) for field in self.identity)
        created, ours = create_once(
            self.client,
            self.collection_path(),
            payload,
            lambda: self.find(identity),
            "%s %s" % (self.name.replace("_", " "), _describe(identity)),
        )
        self.labels.forget()
        if ours:
            return self.result(True, None, created or payload)
        # Made by another run in the meantime: now it only has to be brought to the wanted state.
        changes = self.changes(created, dict((k, v) for k, v in payload.items() if k not in self.identity))
        if not changes:
            return self.result(False, created, created)
        return self.update(created, changes)

    def update(self, current, changes):
        if not self.check_mode:
            self.client.put(current["href"], changes)
        # The PCE answers a PUT with 204 No Content, so the new state is the old one plus the changes.
        return self.result(True, current, dict(current, **changes))

    def result(self, changed, before, after):
        after_view = self.view(after)
        return {
            "changed": changed,
            self.name: after_view,
            "diff": {"before": self.view(before), "after": after_view},
        }


def comparable(value):
    """A form of value in which equal PCE values compare equal.

    References compare by href only (the PCE expands them with names and keys), and lists compare as
    sets, since the PCE does not keep the order in which members were given.
    """
    if isinstance(value, dict):
        if "href" in value:
            return value["href"]
        return tuple(sorted((key, comparable(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(sorted((comparable(item) for item in value), key=lambda item: json.dumps(item, default=str)))
    return value


def _describe(identity):
    return ", ".join("%s=%s" % (field, value) for field, value in sorted(identity.items()))
