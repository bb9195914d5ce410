# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rule actors, scopes and services as users write them <-> as the PCE stores them.

Users write names and `key: value` labels; the PCE stores hrefs:

| user form                                   | PCE form                                         |
| ------------------------------------------- | ------------------------------------------------ |
| `ams` (or `{actors: ams}`)                  | `{"actors": "ams"}`                              |
| `{role: web}`, `{label: {role: web}}`       | `{"label": {"href": "/orgs/1/labels/7"}}`        |
| `{label_group: LG-web}`                     | `{"label_group": {"href": ".../label_groups/.."}}` |
| `{ip_list: Corporate}`                      | `{"ip_list": {"href": ".../ip_lists/3"}}`        |
| `{workload: web01.example.com}` (hostname)  | `{"workload": {"href": "/orgs/1/workloads/.."}}` |
| `{virtual_service: VS-api}`                 | `{"virtual_service": {"href": "..."}}`           |
| service `SSH` or `{name: SSH}`              | `{"href": ".../services/12"}`                    |
| service `{port: 8080, to_port: 8090, proto: tcp}` | `{"port": 8080, "to_port": 8090, "proto": 6}` |

Everything is resolved before anything is changed; a reference that does not resolve is a PceError that
says where it was written (`rules[1].consumers[0]`) and what is wrong.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import json

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.labels import LabelResolver, key_value_pairs
from ansible_collections.microseg.illumio.plugins.module_utils.pce.protocols import (
    ICMP_PROTOCOLS,
    PORT_PROTOCOLS,
    protocol_name,
    protocol_number,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.references import ReferenceResolver

AMS = "ams"
# Actor kinds that name an object by its name (a workload by its hostname).
NAMED_KINDS = ("label_group", "ip_list", "workload", "virtual_service")
ALL_KINDS = ("ams", "label", *NAMED_KINDS)
# What each place in a policy accepts.
RULE_ACTORS = ALL_KINDS
BOUNDARY_ACTORS = ("ams", "label", "label_group", "ip_list")
SCOPE_ENTRIES = ("label", "label_group")
# Words that can't be used as a label key in the `{KEY: VALUE}` shorthand, because they mean something else.
RESERVED_KEYS = frozenset((*ALL_KINDS, "actors", "key", "value", "name", "href"))
SERVICE_PORT_FIELDS = ("port", "to_port", "proto", "icmp_type", "icmp_code")
# proto -1 means every protocol (the "All Services" service is {"proto": -1}).
ALL_PROTOCOLS = -1
ALL_PROTOCOL_WORDS = ("all", "any")

ACTOR_HELP = (
    "write ams, {label: {KEY: VALUE}} or its shorthand {KEY: VALUE}, {label_group: NAME}, {ip_list: NAME}, "
    "{workload: HOSTNAME} or {virtual_service: NAME}"
)
SERVICE_HELP = "write a service name (SSH or {name: SSH}) or a port: {port: 22, proto: tcp} (to_port for a range)"


class PolicyLabels(LabelResolver):
    """LabelResolver that can also tell whether a label key is used at all (for clearer messages)."""

    def has_key(self, key):
        self._load()
        return any(label_key == key for label_key, _value in self._by_key_value)


class PolicyTranslator(object):
    """Translates actors, scopes and services between user form and PCE form, for one org and one run."""

    def __init__(self, client, policy_version="draft"):
        self.client = client
        self.labels = PolicyLabels(client)
        self.refs = ReferenceResolver(client, policy_version)

    # --- actors: user -> PCE ----------------------------------------------------------------------------
    def actors_to_pce(self, actors, what, allowed=RULE_ACTORS):
        """A list of actors in user form -> PCE actors; `what` names the option in messages."""
        if actors is None:
            return None
        if not isinstance(actors, list):
            raise PceError("%s must be a list of actors: %s" % (what, ACTOR_HELP))
        pce = []
        for index, actor in enumerate(actors):
            for entry in self.actor_to_pce(actor, "%s[%d]" % (what, index), allowed):
                if entry not in pce:
                    pce.append(entry)
        return pce

    def actor_to_pce(self, actor, what, allowed=RULE_ACTORS):
        """One actor in user form -> a list of PCE actors (a dict of several labels names several)."""
        if isinstance(actor, str):
            if actor.strip().lower() != AMS:
                raise PceError("%s: unknown actor %r: %s" % (what, actor, ACTOR_HELP))
            return [self._allowed("ams", what, allowed, {"actors": AMS})]
        if not isinstance(actor, dict) or not actor:
            raise PceError("%s: an actor must be ams or a mapping, got %r: %s" % (what, actor, ACTOR_HELP))
        if len(actor) == 1:
            kind, value = next(iter(actor.items()))
            if kind == "actors":
                if not isinstance(value, str) or value.strip().lower() != AMS:
                    raise PceError(
                        '%s: the only value of actors is "ams" (all managed workloads), got %r' % (what, value)
                    )
                return [self._allowed("ams", what, allowed, {"actors": AMS})]
            if kind == "label":
                return [self._allowed("label", what, allowed, entry) for entry in self._labels(value, what)]
            if kind in NAMED_KINDS:
                return [self._allowed(kind, what, allowed, {kind: {"href": self._named(kind, value, what)}})]
            if kind in RESERVED_KEYS:
                raise PceError("%s: unknown actor %r: %s" % (what, actor, ACTOR_HELP))
        kinds = [kind for kind in actor if kind in RESERVED_KEYS]
        if kinds and set(actor) != {"key", "value"}:
            raise PceError(
                "%s: an actor names one thing; %r mixes %s with other keys: %s"
                % (what, actor, ", ".join(sorted(kinds)), ACTOR_HELP)
            )
        # The shorthand: {role: web} (or {role: web, env: prod}, which names two label actors).
        return [self._allowed("label", what, allowed, entry) for entry in self._labels(actor, what, shorthand=True)]

    def _allowed(self, kind, what, allowed, entry):
        if kind not in allowed:
            raise PceError("%s: %s can't be used here; allowed: %s" % (what, _kind_word(kind), ", ".join(allowed)))
        return entry

    def _labels(self, value, what, shorthand=False):
        if not isinstance(value, dict) or not value:
            raise PceError("%s: a label must be written as {KEY: VALUE}, got %r" % (what, value))
        try:
            pairs = key_value_pairs(value)
        except PceError as error:
            raise PceError("%s: %s" % (what, error)) from None
        entries = []
        for key, label_value in pairs:
            label_value = _text(label_value)
            try:
                href = self.labels.href(key, label_value)
            except PceError as error:
                if shorthand and not self.labels.has_key(key):
                    raise PceError(
                        "%s: unknown actor kind %r, and no label has the key %r either: %s"
                        % (what, key, key, ACTOR_HELP)
                    ) from None
                raise PceError("%s: %s" % (what, error)) from None
            entries.append({"label": {"href": href}})
        return entries

    def _named(self, kind, name, what):
        if not isinstance(name, str) or not name.strip():
            raise PceError("%s: %s needs a name, got %r" % (what, _kind_word(kind), name))
        try:
            return self.refs.href(kind, name)
        except PceError as error:
            raise PceError("%s: %s" % (what, error)) from None

    # --- actors: PCE -> user ----------------------------------------------------------------------------
    def actors_to_user(self, actors):
        return [self.actor_to_user(actor) for actor in actors or []]

    def actor_to_user(self, actor):
        if not isinstance(actor, dict) or len(actor) != 1:
            return actor
        kind, ref = next(iter(actor.items()))
        if kind == "actors":
            return ref
        href = ref.get("href") if isinstance(ref, dict) else ref
        if kind == "label":
            label = self.labels.describe(href)
            if "key" not in label:
                return {"label": label}
            if label["key"] in RESERVED_KEYS:
                return {"label": {label["key"]: label["value"]}}
            return {label["key"]: label["value"]}
        if kind in NAMED_KINDS:
            return {kind: self.refs.name(kind, href) or href}
        return actor

    # --- scopes -----------------------------------------------------------------------------------------
    def scopes_to_pce(self, scopes, what="scopes"):
        """Scopes in user form -> PCE scopes; [] (or no scopes) means all workloads: [[]]."""
        if scopes is None:
            return None
        if not isinstance(scopes, list):
            raise PceError("%s must be a list of scopes, each a list of labels or label groups" % what)
        pce = []
        for index, scope in enumerate(scopes):
            where = "%s[%d]" % (what, index)
            if isinstance(scope, dict):
                scope = [{key: value} for key, value in scope.items()] if scope else []
            if not isinstance(scope, list):
                raise PceError(
                    "%s: a scope is a list of labels ({KEY: VALUE}) and label groups, got %r" % (where, scope)
                )
            entries = []
            for position, item in enumerate(scope):
                for entry in self.actor_to_pce(item, "%s[%d]" % (where, position), SCOPE_ENTRIES):
                    if entry not in entries:
                        entries.append(entry)
            self._one_per_key(entries, where)
            if entries not in pce:
                pce.append(entries)
        return pce or [[]]

    def _one_per_key(self, entries, where):
        seen = {}
        for entry in entries:
            kind, ref = next(iter(entry.items()))
            if kind == "label":
                key = self.labels.describe(ref["href"]).get("key")
            else:
                group = next((g for g in self.refs.objects("label_group") if g["href"] == ref["href"]), {})
                key = group.get("key")
            if key is not None and key in seen:
                raise PceError(
                    "%s: a scope can hold only one label or label group per key; %r appears twice" % (where, key)
                )
            seen[key] = True

    def scopes_to_user(self, scopes):
        shown = [[self.actor_to_user(entry) for entry in scope] for scope in scopes or []]
        return shown or [[]]

    # --- services ---------------------------------------------------------------------------------------
    def services_to_pce(self, services, what):
        if services is None:
            return None
        if not isinstance(services, list):
            raise PceError("%s must be a list of services: %s" % (what, SERVICE_HELP))
        pce = []
        for index, service in enumerate(services):
            entry = self.service_to_pce(service, "%s[%d]" % (what, index))
            if entry not in pce:
                pce.append(entry)
        return pce

    def service_to_pce(self, service, what):
        if isinstance(service, dict) and set(service) == {"name"}:
            service = service["name"]
        if isinstance(service, str):
            if not service.strip():
                raise PceError("%s: a service name must not be empty" % what)
            try:
                return {"href": self.refs.href("service", service)}
            except PceError as error:
                raise PceError("%s: %s" % (what, error)) from None
        if not isinstance(service, dict) or not service:
            raise PceError("%s: %r is not a service: %s" % (what, service, SERVICE_HELP))
        if "name" in service:
            raise PceError("%s: a service is either {name: NAME} or a port {port, to_port, proto}, not both" % what)
        unknown = sorted(set(service) - set(SERVICE_PORT_FIELDS))
        if unknown:
            raise PceError(
                "%s: unknown service field(s) %s; a port takes %s"
                % (what, ", ".join(unknown), ", ".join(SERVICE_PORT_FIELDS))
            )
        given = dict((field, value) for field, value in service.items() if value is not None)
        if "proto" not in given:
            raise PceError("%s: proto is required (tcp, udp, icmp, icmpv6, ... or an IP protocol number)" % what)
        return _service_port(given, what)

    def services_to_user(self, services):
        return [self.service_to_user(service) for service in services or []]

    def service_to_user(self, service):
        if not isinstance(service, dict):
            return service
        if "href" in service:
            return service.get("name") or self.refs.name("service", service["href"])
        shown = {}
        for field in SERVICE_PORT_FIELDS:
            if service.get(field) is None:
                continue
            if field == "proto":
                shown["proto"] = "all" if service["proto"] == ALL_PROTOCOLS else protocol_name(service["proto"])
            elif field == "to_port" and service["to_port"] == service.get("port"):
                continue
            else:
                shown[field] = service[field]
        return shown


def _service_port(given, what):
    proto = given["proto"]
    if (isinstance(proto, str) and proto.strip().lower() in (*ALL_PROTOCOL_WORDS, "-1")) or proto == ALL_PROTOCOLS:
        number = ALL_PROTOCOLS
    else:
        try:
            number = protocol_number(proto)
        except PceError as error:
            raise PceError("%s: %s" % (what, error)) from None
    port = _number(given, "port", what, 0, 65535)
    to_port = _number(given, "to_port", what, 0, 65535)
    icmp = dict((field, _number(given, field, what, 0, 255)) for field in ("icmp_type", "icmp_code"))
    if port is not None and number not in PORT_PROTOCOLS:
        raise PceError("%s: port goes only with tcp, udp or sctp, not with proto %s" % (what, proto))
    if to_port is not None:
        if port is None:
            raise PceError("%s: to_port needs port (the first port of the range)" % what)
        if to_port < port:
            raise PceError("%s: to_port %d is below port %d" % (what, to_port, port))
    for field, value in icmp.items():
        if value is not None and number not in ICMP_PROTOCOLS:
            raise PceError("%s: %s goes only with icmp or icmpv6, not with proto %s" % (what, field, proto))
    entry = {"proto": number}
    if port is not None:
        entry["port"] = port
    if to_port is not None and to_port != port:
        entry["to_port"] = to_port
    for field in ("icmp_type", "icmp_code"):
        if icmp[field] is not None:
            entry[field] = icmp[field]
    return entry


def _number(given, field, what, low, high):
    value = given.get(field)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PceError("%s: %s must be a whole number from %d to %d, got %r" % (what, field, low, high, value))
    return value


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _kind_word(kind):
    return "ams (all managed workloads)" if kind == "ams" else kind.replace("_", " ")


# --- comparing PCE forms ----------------------------------------------------------------------------------
def actor_key(actor):
    """A hashable form of one PCE actor: ("ams",) or (kind, href)."""
    kind, ref = next(iter(actor.items()))
    if kind == "actors":
        return ("actors", ref)
    return (kind, ref.get("href") if isinstance(ref, dict) else ref)


def actors_key(actors):
    return frozenset(actor_key(actor) for actor in actors or [])


def service_key(service):
    """A hashable form of one ingress service: ("href", href) or the port's fields (to_port = port dropped)."""
    if "href" in service:
        return ("href", service["href"])
    fields = dict((field, service.get(field)) for field in SERVICE_PORT_FIELDS if service.get(field) is not None)
    if fields.get("to_port") is not None and fields.get("to_port") == fields.get("port"):
        del fields["to_port"]
    return ("port", *sorted(fields.items()))


def services_key(services):
    return frozenset(service_key(service) for service in services or [])


def scopes_key(scopes):
    """Scopes as a set of sets; no scopes and one empty scope both mean all workloads."""
    key = frozenset(actors_key(scope) for scope in scopes or [])
    return key or frozenset([frozenset()])


def describe(value):
    """Compact JSON of a user-form value, for messages."""
    return json.dumps(value, sort_keys=True, default=str)
