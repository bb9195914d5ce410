# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rule sets, their rules and deny rules, and enforcement boundaries: plan, then apply.

Everything here is draft policy (`sec_policy/draft/...`): it takes effect once provisioned
(microseg.illumio.policy_provision). Every reference is resolved and every rule checked before the first
change, so a typo fails the task without touching the PCE.

Rules have no name on the PCE, so a rule is identified by its content: providers, consumers, ingress
services, resolve_labels_as and unscoped_consumers (as sets: order does not matter). What else a rule
carries (enabled, description, network_type; override for deny rules) is updated in place with a PUT.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import functools

from ansible_collections.microseg.illumio.plugins.module_utils.pce.actors import (
    BOUNDARY_ACTORS,
    RULE_ACTORS,
    PolicyTranslator,
    actors_key,
    scopes_key,
    services_key,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import (
    EXTERNAL_DATA,
    GONE_STATUSES,
    changed_then_failed,
    create_once,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.references import is_pending_deletion, the_live_one

RESOLVE_AS = ("workloads", "virtual_services")
DEFAULT_RESOLVE_LABELS_AS = {"providers": ["workloads"], "consumers": ["workloads"]}
NETWORK_TYPES = ("brn", "non_brn", "all")
DEFAULT_NETWORK_TYPE = "brn"


class RuleKind(object):
    """Allow rules (`sec_rules`, listed as `rules`) or deny rules (`deny_rules`) inside a rule set."""

    def __init__(self, name, endpoint, field, word, resolves_labels, settable):
        self.name = name  # result key of the module that manages one rule
        self.endpoint = endpoint  # sub-collection of the rule set
        self.field = field  # list of these rules inside a rule set
        self.word = word
        self.resolves_labels = resolves_labels
        self.settable = settable  # updated in place; not part of the identity


ALLOW = RuleKind("security_rule", "sec_rules", "rules", "rule", True, ("enabled", "description", "network_type"))
DENY = RuleKind(
    "deny_rule", "deny_rules", "deny_rules", "deny rule", False, ("override", "enabled", "description", "network_type")
)


# --- rules: user form -> PCE form ---------------------------------------------------------------------------
def resolve_labels_as(value, what="resolve_labels_as"):
    """`{providers: [...], consumers: [...]}` with workloads as the default of each side."""
    value = value or {}
    if not isinstance(value, dict):
        raise PceError("%s must be a mapping with providers and consumers" % what)
    unknown = sorted(set(value) - {"providers", "consumers"})
    if unknown:
        raise PceError("%s: unknown key(s) %s; use providers and consumers" % (what, ", ".join(unknown)))
    result = {}
    for side in ("providers", "consumers"):
        items = value.get(side)
        if items is None:
            items = list(DEFAULT_RESOLVE_LABELS_AS[side])
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not items:
            raise PceError("%s.%s must be a non-empty list of %s" % (what, side, " / ".join(RESOLVE_AS)))
        for item in items:
            if item not in RESOLVE_AS:
                raise PceError("%s.%s: %r is not one of %s" % (what, side, item, ", ".join(RESOLVE_AS)))
        result[side] = sorted(set(items), key=RESOLVE_AS.index)
    return result


def rule_payload(translator, kind, rule, what="", partial=False, actor_kinds=RULE_ACTORS):
    """A rule in user form (module options or one item of `rules`) -> the PCE's rule fields.

    With `partial`, only what the user gave is returned (for updating a rule found otherwise, e.g. by its
    description); without it, providers, consumers and services are required and the identity fields get
    their defaults.
    """
    prefix = what + "." if what else ""
    payload = {}
    for side in ("providers", "consumers"):
        if rule.get(side) is not None:
            actors = translator.actors_to_pce(rule[side], prefix + side, actor_kinds)
            if not actors:
                raise PceError("%s%s must name at least one actor" % (prefix, side))
            payload[side] = actors
        elif not partial:
            raise PceError("%s%s is required" % (prefix, side))
    if kind.resolves_labels and (rule.get("resolve_labels_as") is not None or not partial):
        payload["resolve_labels_as"] = resolve_labels_as(rule.get("resolve_labels_as"), prefix + "resolve_labels_as")
    if rule.get("services") is not None:
        services = translator.services_to_pce(rule["services"], prefix + "services")
        virtual_only = (payload.get("resolve_labels_as") or {}).get("providers") == ["virtual_services"]
        if not services and not virtual_only:
            raise PceError(
                "%sservices must name at least one service (the service 'All Services' allows every port)" % prefix
            )
        payload["ingress_services"] = services
    elif not partial:
        raise PceError("%sservices is required" % prefix)
    if rule.get("unscoped_consumers") is not None or not partial:
        payload["unscoped_consumers"] = bool(rule.get("unscoped_consumers"))
    for field in kind.settable:
        if rule.get(field) is not None:
            payload[field] = rule[field]
    if payload.get("network_type") is not None and payload["network_type"] not in NETWORK_TYPES:
        raise PceError("%snetwork_type must be one of %s" % (prefix, ", ".join(NETWORK_TYPES)))
    return payload


def rule_key(kind, rule):
    """The identity of a rule: its content, with defaults for what the PCE may leave out."""
    key = (
        actors_key(rule.get("providers")),
        actors_key(rule.get("consumers")),
        services_key(rule.get("ingress_services")),
        bool(rule.get("unscoped_consumers")),
    )
    if kind.resolves_labels:
        resolve = rule.get("resolve_labels_as") or DEFAULT_RESOLVE_LABELS_AS
        key += (
            frozenset(resolve.get("providers") or DEFAULT_RESOLVE_LABELS_AS["providers"]),
            frozenset(resolve.get("consumers") or DEFAULT_RESOLVE_LABELS_AS["consumers"]),
        )
    return key


def same_value(field, current, wanted):
    """Whether a PCE field's current value already is the wanted one (references by href, lists as sets)."""
    if field in ("providers", "consumers"):
        return actors_key(current) == actors_key(wanted)
    if field == "ingress_services":
        return services_key(current) == services_key(wanted)
    if field == "scopes":
        return scopes_key(current) == scopes_key(wanted)
    if field == "resolve_labels_as":
        current = current or DEFAULT_RESOLVE_LABELS_AS
        return all(
            frozenset(current.get(side) or DEFAULT_RESOLVE_LABELS_AS[side]) == frozenset(wanted.get(side) or [])
            for side in ("providers", "consumers")
        )
    if field in ("unscoped_consumers", "override"):
        return bool(current) == bool(wanted)
    if field == "enabled":
        return (current is not False) == bool(wanted)
    if field == "network_type":
        return (current or DEFAULT_NETWORK_TYPE) == wanted
    if field == "description":
        return (current or "") == (wanted or "")
    return current == wanted


def changes_between(current, wanted):
    """The wanted fields whose values differ from the current object's, in the order they were given."""
    return dict((field, value) for field, value in wanted.items() if not same_value(field, current.get(field), value))


class RulePlan(object):
    """What to do with the rules of one kind in one rule set."""

    def __init__(self, create=(), update=(), delete=(), keep=()):
        self.create = list(create)  # PCE payloads
        self.update = list(update)  # (current rule, changes)
        self.delete = list(delete)  # current rules
        self.keep = list(keep)  # current rules left as they are

    def __bool__(self):
        return bool(self.create or self.update or self.delete)

    __nonzero__ = __bool__


def check_unique(kind, payloads, what="rules"):
    """Fail when two wanted rules have the same identity: they would be one rule on the PCE."""
    seen = {}
    for index, payload in enumerate(payloads):
        key = rule_key(kind, payload)
        if key in seen:
            raise PceError(
                "%s[%d] and %s[%d] have the same providers, consumers, services%s and unscoped_consumers: "
                "they are the same %s; merge them"
                % (what, seen[key], what, index, ", resolve_labels_as" if kind.resolves_labels else "", kind.word)
            )
        seen[key] = index


def plan_rules(kind, current_rules, wanted, purge):
    """Match wanted rules to current ones by content; the rest is created, and (with purge) deleted."""
    plan = RulePlan()
    unmatched = list(current_rules)
    for payload in wanted:
        key = rule_key(kind, payload)
        match = next((rule for rule in unmatched if rule_key(kind, rule) == key), None)
        if match is None:
            plan.create.append(payload)
            continue
        unmatched.remove(match)
        settable = dict((field, payload[field]) for field in kind.settable if field in payload)
        changes = changes_between(match, settable)
        if changes:
            plan.update.append((match, changes))
        else:
            plan.keep.append(match)
    if purge:
        plan.delete = unmatched
    else:
        plan.keep.extend(unmatched)
    return plan


def rules_after(current_rules, plan, created):
    """The rules as they are once the plan is applied, in the PCE's order, new ones last."""
    deleted = set(id(rule) for rule in plan.delete)
    updates = dict((id(rule), changes) for rule, changes in plan.update)
    result = [dict(rule, **updates.get(id(rule), {})) for rule in current_rules if id(rule) not in deleted]
    return result + list(created)


def apply_rules(client, rule_set_href, kind, plan, changed=None):
    """Delete, update, then create; returns the created rules as the PCE answered them.

    `changed` (a list) collects the hrefs of what was changed, so that a failure half way can say what it did.
    A rule whose create answer is lost is looked up in the rule set (by its content) before it is sent again.
    """
    changed = [] if changed is None else changed
    for rule in plan.delete:
        client.delete(rule["href"])
        changed.append(rule["href"])
    for rule, changes in plan.update:
        client.put(rule["href"], changes)
        changed.append(rule["href"])
    created = []
    path = "%s/%s" % (rule_set_href, kind.endpoint)
    known = set(rule.get("href") for rule in plan.keep + plan.delete + [rule for rule, _changes in plan.update])
    for payload in plan.create:
        answer, _ours = create_once(
            client,
            path,
            payload,
            functools.partial(_new_rule_like, client, path, kind, payload, known),
            "the %s" % kind.word,
        )
        rule = answer if isinstance(answer, dict) and answer else payload
        created.append(rule)
        if rule.get("href"):
            known.add(rule["href"])
            changed.append(rule["href"])
    return created


def _new_rule_like(client, path, kind, payload, known):
    """A rule of the rule set with the identity of `payload` that is none of the `known` ones, or None."""
    key = rule_key(kind, payload)
    try:
        rules = client.get_collection(path)
    except PceError as error:
        if error.status != 404:
            raise
        return None
    return next((rule for rule in rules if rule.get("href") not in known and rule_key(kind, rule) == key), None)


# --- presenting -------------------------------------------------------------------------------------------
def rule_view(translator, kind, rule):
    """A rule in user form: names and key: value labels, with its href."""
    view = {
        "href": rule.get("href"),
        "providers": translator.actors_to_user(rule.get("providers")),
        "consumers": translator.actors_to_user(rule.get("consumers")),
        "services": translator.services_to_user(rule.get("ingress_services")),
    }
    if kind.resolves_labels:
        resolve = rule.get("resolve_labels_as") or DEFAULT_RESOLVE_LABELS_AS
        view["resolve_labels_as"] = {
            "providers": list(resolve.get("providers") or DEFAULT_RESOLVE_LABELS_AS["providers"]),
            "consumers": list(resolve.get("consumers") or DEFAULT_RESOLVE_LABELS_AS["consumers"]),
        }
    view["unscoped_consumers"] = bool(rule.get("unscoped_consumers"))
    if kind is DENY:
        view["override"] = bool(rule.get("override"))
    view["enabled"] = rule.get("enabled") is not False
    view["description"] = rule.get("description") or ""
    view["network_type"] = rule.get("network_type") or DEFAULT_NETWORK_TYPE
    return view


def without_hrefs(view):
    """A view for diffs: what users write, no hrefs (of the object itself or of its rules)."""
    if not view:
        return {}
    shown = dict((key, value) for key, value in view.items() if key != "href")
    for field in ("rules", "deny_rules"):
        if isinstance(shown.get(field), list):
            shown[field] = [without_hrefs(rule) for rule in shown[field]]
    return shown


def diff(before, after):
    return {"before": without_hrefs(before), "after": without_hrefs(after)}


def _text_option(params, option):
    value = params.get(option)
    if value is None or not str(value).strip():
        raise PceError("%s must not be empty" % option)
    return value


def _find_live(client, path, name, word):
    """The one live (not pending deletion) draft object named exactly `name`, or None."""
    return the_live_one(client.get_collection(path, {"name": name}), name, word)[0]


def _delete(client, current, lookup):
    """Delete `current`; False when another run deleted it in the meantime (the PCE says not found, or already
    deleted, and it is not there any more)."""
    try:
        client.delete(current["href"])
    except PceError as error:
        if error.status not in GONE_STATUSES or lookup() is not None:
            raise
        return False
    return True


def _find_renamed(find, name, new_name, word):
    """(object to manage, its wanted name) with rename semantics like microseg.illumio.label's new_value."""
    current = find(name)
    if new_name is None or new_name == name:
        return current, name
    renamed = find(new_name)
    if current is not None and renamed is not None:
        raise PceError(
            "cannot rename %s %r to %r: both exist (%s, %s)" % (word, name, new_name, current["href"], renamed["href"])
        )
    return (renamed if renamed is not None else current), new_name


# --- rule sets --------------------------------------------------------------------------------------------
class RuleSets(object):
    """Rule sets with their allow rules, managed as one declarative unit."""

    name = "rule_set"
    fields = ("description", "enabled", *EXTERNAL_DATA)

    def __init__(self, client, check_mode=False, translator=None, policy_version="draft"):
        self.client = client
        self.check_mode = check_mode
        self.policy_version = policy_version
        self.translator = translator or PolicyTranslator(client, policy_version)

    def collection_path(self):
        return self.client.org_path("sec_policy/%s/rule_sets" % self.policy_version)

    # --- reading ----------------------------------------------------------------------------------------
    def find(self, name):
        found = _find_live(self.client, self.collection_path(), name, "rule set")
        return self.complete(found) if found else None

    def read(self, name=None, name_match="exact"):
        """Every live rule set, or those whose name matches (exactly, or partially ignoring case)."""
        query = {"name": name} if name else None
        found = []
        for rule_set in self.client.get_collection(self.collection_path(), query):
            if is_pending_deletion(rule_set):
                continue
            if name and name_match == "exact" and rule_set.get("name") != name:
                continue
            if name and name_match == "partial" and name.lower() not in (rule_set.get("name") or "").lower():
                continue
            found.append(self.complete(rule_set))
        return sorted(found, key=lambda rule_set: rule_set.get("name") or "")

    def complete(self, rule_set):
        """A rule set with its rules and deny rules (read from their sub-collections if not listed inline)."""
        for kind in (ALLOW, DENY):
            if rule_set.get(kind.field) is None:
                try:
                    rules = self.client.get_collection("%s/%s" % (rule_set["href"], kind.endpoint))
                except PceError as error:
                    if error.status != 404:
                        raise
                    rules = []
                rule_set = dict(rule_set, **{kind.field: rules})
        return rule_set

    # --- presenting -------------------------------------------------------------------------------------
    def view(self, rule_set):
        if not rule_set:
            return {}
        return {
            "href": rule_set.get("href"),
            "name": rule_set.get("name"),
            "description": rule_set.get("description") or "",
            "enabled": rule_set.get("enabled") is not False,
            "scopes": self.translator.scopes_to_user(rule_set.get("scopes")),
            "rules": [rule_view(self.translator, ALLOW, rule) for rule in rule_set.get("rules") or []],
            "deny_rules": [rule_view(self.translator, DENY, rule) for rule in rule_set.get("deny_rules") or []],
            "external_data_set": rule_set.get("external_data_set"),
            "external_data_reference": rule_set.get("external_data_reference"),
        }

    def info_view(self, rule_set):
        view = self.view(rule_set)
        view["provision_pending"] = bool(rule_set.get("update_type"))
        return view

    def result(self, changed, before, after, pending):
        after_view = self.view(after)
        return {
            "changed": changed,
            self.name: after_view,
            "provision_pending": pending,
            "diff": diff(self.view(before), after_view),
        }

    # --- plan, then apply -------------------------------------------------------------------------------
    def ensure(self, params):
        name = _text_option(params, "name")
        if params.get("state") == "absent":
            return self.ensure_absent(name)
        return self.ensure_present(name, params)

    def ensure_absent(self, name):
        current = self.find(name)
        if current is None:
            return self.result(False, None, None, False)
        if not self.check_mode and not _delete(self.client, current, lambda: self.find(name)):
            return self.result(False, None, None, True)
        # A rule set that was never provisioned is simply gone; a provisioned one is pending deletion.
        return self.result(True, current, None, current.get("update_type") != "create")

    def wanted(self, params):
        """(rule set fields, wanted rules or None): every reference resolved, every rule checked."""
        fields = dict((field, params[field]) for field in self.fields if params.get(field) is not None)
        if params.get("scopes") is not None:
            fields["scopes"] = self.translator.scopes_to_pce(params["scopes"])
        rules = None
        if params.get("rules") is not None:
            rules = [
                rule_payload(self.translator, ALLOW, rule, "rules[%d]" % index)
                for index, rule in enumerate(params["rules"])
            ]
            check_unique(ALLOW, rules)
        return fields, rules

    def ensure_present(self, name, params):
        new_name = params.get("new_name")
        if new_name is not None and not new_name.strip():
            raise PceError("new_name must not be empty")
        fields, rules = self.wanted(params)
        current, name = _find_renamed(self.find, name, new_name, "rule set")
        if current is None:
            payload = dict({"name": name, "scopes": [[]]}, **fields)
            if self.check_mode:
                return self.result(True, None, dict(payload, rules=rules or [], deny_rules=[]), True)
            created, ours = create_once(
                self.client, self.collection_path(), payload, lambda: self.find(name), "rule set %r" % name
            )
            if ours:
                return self.fill(payload, created, rules or [])
            current = self.complete(created)  # made by another run in the meantime: bring it to the wanted state
        changes = changes_between(current, dict(fields, name=name))
        plan = (
            plan_rules(ALLOW, current.get("rules") or [], rules, params.get("purge_rules", True))
            if rules is not None
            else RulePlan()
        )
        if not changes and not plan:
            return self.result(False, current, current, bool(current.get("update_type")))
        created = plan.create
        if not self.check_mode:
            done = []
            try:
                if changes:
                    self.client.put(current["href"], changes)
                    done.append(current["href"])
                created = apply_rules(self.client, current["href"], ALLOW, plan, done)
            except PceError as error:
                raise changed_then_failed(
                    error, done, "rule set %r and its rules" % name, {"provision_pending": True}
                ) from None
        after = dict(current, **changes)
        after["rules"] = rules_after(current.get("rules") or [], plan, created)
        return self.result(True, current, after, True)

    def fill(self, payload, created, rules):
        """The rules of a rule set this run has just made, added one by one through its sec_rules, as on an
        existing rule set: the same calls on every PCE version, and each rule answered with its href."""
        created = created or {}
        if not created.get("href"):
            raise PceError("the PCE created rule set %r but did not answer with its href" % payload["name"])
        after = dict(payload, **created)
        done = [created["href"]]
        try:
            after["rules"] = (
                apply_rules(self.client, after["href"], ALLOW, RulePlan(create=rules), done) if rules else []
            )
        except PceError as error:
            partial = {self.name: self.view(dict(after, rules=[], deny_rules=[])), "provision_pending": True}
            raise changed_then_failed(
                error, done, "rule set %r (created) and rules" % payload["name"], partial
            ) from None
        after.setdefault("deny_rules", [])
        return self.result(True, None, after, True)


# --- one rule in a rule set -------------------------------------------------------------------------------
class RulesInRuleSet(object):
    """One allow rule (security_rule) or deny rule (deny_rule) inside a named rule set.

    match_by content: the rule is the one with these providers, consumers, services (and resolve_labels_as,
    unscoped_consumers); match_by description: the one rule with this description, whose content is then
    brought to what was given.
    """

    def __init__(self, client, kind, check_mode=False, translator=None):
        self.client = client
        self.kind = kind
        self.check_mode = check_mode
        self.translator = translator or PolicyTranslator(client)
        self.rule_sets = RuleSets(client, check_mode, self.translator)

    def view(self, rule, rule_set_name):
        if not rule:
            return {}
        view = rule_view(self.translator, self.kind, rule)
        view["rule_set"] = rule_set_name
        return view

    def result(self, changed, before, after, rule_set_name, pending):
        after_view = self.view(after, rule_set_name)
        return {
            "changed": changed,
            self.kind.name: after_view,
            "provision_pending": pending,
            "diff": diff(self.view(before, rule_set_name), after_view),
        }

    def ensure(self, params):
        rule_set_name = _text_option(params, "rule_set")
        by_description = params.get("match_by") == "description"
        if by_description:
            description = _text_option(params, "description")
        # Everything is resolved before the PCE is asked anything else: bad input changes nothing.
        wanted = rule_payload(self.translator, self.kind, params, partial=by_description)
        rule_set = self.rule_sets.find(rule_set_name)
        absent = params.get("state") == "absent"
        if rule_set is None:
            if absent:
                return self.result(False, None, None, rule_set_name, False)
            raise PceError(
                "rule set %r does not exist on the PCE (create it with microseg.illumio.rule_set first)" % rule_set_name
            )
        rules = rule_set.get(self.kind.field) or []
        if by_description:
            matches = [rule for rule in rules if (rule.get("description") or "") == description]
            if len(matches) > 1:
                raise PceError(
                    "%d %ss in rule set %r have the description %r; with match_by=description it must be unique: %s"
                    % (len(matches), self.kind.word, rule_set_name, description, ", ".join(r["href"] for r in matches))
                )
        else:
            key = rule_key(self.kind, wanted)
            matches = [rule for rule in rules if rule_key(self.kind, rule) == key]
        pending = bool(rule_set.get("update_type"))
        if absent:
            return self.ensure_absent(matches, rule_set_name, pending)
        if not matches:
            if by_description:
                missing = [option for option in ("providers", "consumers", "services") if params.get(option) is None]
                if missing:
                    raise PceError(
                        "no %s in rule set %r has the description %r; to create it, give %s"
                        % (self.kind.word, rule_set_name, description, ", ".join(missing))
                    )
                wanted = rule_payload(self.translator, self.kind, params)
            return self.create(rule_set, wanted)
        current = matches[0]
        changes = changes_between(current, wanted)
        if not changes:
            return self.result(False, current, current, rule_set_name, pending)
        if not self.check_mode:
            self.client.put(current["href"], changes)
        return self.result(True, current, dict(current, **changes), rule_set_name, True)

    def ensure_absent(self, matches, rule_set_name, pending):
        if not matches:
            return self.result(False, None, None, rule_set_name, pending)
        if not self.check_mode:
            # Identical copies of a rule are all removed: none of them is wanted.
            for rule in matches:
                self.client.delete(rule["href"])
        return self.result(True, matches[0], None, rule_set_name, True)

    def create(self, rule_set, payload):
        if self.check_mode:
            return self.result(True, None, payload, rule_set["name"], True)
        path = "%s/%s" % (rule_set["href"], self.kind.endpoint)
        known = set(rule.get("href") for rule in rule_set.get(self.kind.field) or [])
        created, _ours = create_once(
            self.client,
            path,
            payload,
            lambda: _new_rule_like(self.client, path, self.kind, payload, known),
            "the %s in rule set %r" % (self.kind.word, rule_set["name"]),
        )
        return self.result(True, None, dict(payload, **(created or {})), rule_set["name"], True)


# --- enforcement boundaries -------------------------------------------------------------------------------
class EnforcementBoundaries(object):
    """Enforcement boundaries (deny rules outside rule sets), identified by name."""

    name = "deny_rule"
    endpoint = "enforcement_boundaries"

    def __init__(self, client, check_mode=False, translator=None):
        self.client = client
        self.check_mode = check_mode
        self.translator = translator or PolicyTranslator(client)

    def collection_path(self):
        return self.client.org_path("sec_policy/draft/" + self.endpoint)

    def find(self, name):
        return _find_live(self.client, self.collection_path(), name, "enforcement boundary")

    def view(self, boundary):
        if not boundary:
            return {}
        return {
            "href": boundary.get("href"),
            "name": boundary.get("name"),
            "description": boundary.get("description") or "",
            "providers": self.translator.actors_to_user(boundary.get("providers")),
            "consumers": self.translator.actors_to_user(boundary.get("consumers")),
            "services": self.translator.services_to_user(boundary.get("ingress_services")),
            "network_type": boundary.get("network_type") or DEFAULT_NETWORK_TYPE,
        }

    def result(self, changed, before, after, pending):
        after_view = self.view(after)
        return {
            "changed": changed,
            self.name: after_view,
            "provision_pending": pending,
            "diff": diff(self.view(before), after_view),
        }

    def wanted(self, params):
        wanted = {}
        if params.get("description") is not None:
            wanted["description"] = params["description"]
        for side in ("providers", "consumers"):
            if params.get(side) is not None:
                actors = self.translator.actors_to_pce(params[side], side, BOUNDARY_ACTORS)
                if not actors:
                    raise PceError("%s must name at least one actor" % side)
                wanted[side] = actors
        if params.get("services") is not None:
            services = self.translator.services_to_pce(params["services"], "services")
            if not services:
                raise PceError("services must name at least one service (the service 'All Services' is every port)")
            wanted["ingress_services"] = services
        if params.get("network_type") is not None:
            if params["network_type"] not in NETWORK_TYPES:
                raise PceError("network_type must be one of %s" % ", ".join(NETWORK_TYPES))
            wanted["network_type"] = params["network_type"]
        return wanted

    def ensure(self, params):
        name = _text_option(params, "name")
        if params.get("state") == "absent":
            current = self.find(name)
            if current is None:
                return self.result(False, None, None, False)
            if not self.check_mode and not _delete(self.client, current, lambda: self.find(name)):
                return self.result(False, None, None, True)
            return self.result(True, current, None, current.get("update_type") != "create")
        new_name = params.get("new_name")
        if new_name is not None and not new_name.strip():
            raise PceError("new_name must not be empty")
        wanted = self.wanted(params)
        current, name = _find_renamed(self.find, name, new_name, "enforcement boundary")
        if current is None:
            missing = [
                option
                for option, field in (
                    ("providers", "providers"),
                    ("consumers", "consumers"),
                    ("services", "ingress_services"),
                )
                if field not in wanted
            ]
            if missing:
                raise PceError(
                    "enforcement boundary %r does not exist; to create it, give %s" % (name, ", ".join(missing))
                )
            payload = dict({"name": name}, **wanted)
            if self.check_mode:
                return self.result(True, None, payload, True)
            created, ours = create_once(
                self.client, self.collection_path(), payload, lambda: self.find(name), "enforcement boundary %r" % name
            )
            if ours:
                return self.result(True, None, dict(payload, **(created or {})), True)
            current = created  # made by another run in the meantime: bring it to the wanted state
        changes = changes_between(current, dict(wanted, name=name))
        if not changes:
            return self.result(False, current, current, bool(current.get("update_type")))
        if not self.check_mode:
            self.client.put(current["href"], changes)
        return self.result(True, current, dict(current, **changes), True)
