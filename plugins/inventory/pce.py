# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
name: pce
short_description: Hosts, groups and variables from the workloads of an Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Reads the workloads of an Illumio Core PCE (Policy Compute Engine) and makes one host of each.
  - Every label becomes a group, V(role_web), V(env_prod) and so on, custom label keys included; hosts are also
    grouped as V(managed) or V(unmanaged), V(online) or V(offline), and by enforcement mode
    (V(enforcement_mode_full), V(enforcement_mode_visibility_only)...).
  - Host variables, prefixed with O(vars_prefix) (V(illumio_) by default), are C(href), C(hostname), C(name),
    C(labels) (a dict key to value), C(enforcement_mode), C(visibility_level), C(online), C(managed),
    C(interfaces) (each with C(name), C(address), C(cidr_block), C(default_gateway_address) and C(loopback)),
    C(ignored_interface_names), C(os_id), C(os_detail), C(agent) (C(version), C(status) and C(health), which is
    V(ok), V(warning) or V(error); all null for unmanaged workloads), C(public_ip), C(data_center) and C(deleted)
    (V(true) only for the deleted workloads that O(include_deleted) adds).
    C(ansible_host) is set from an interface address, see O(ansible_host_interfaces).
  - Filters in O(filters) are evaluated by the PCE, so only matching workloads are transferred;
    O(include) and O(exclude) are evaluated here, on the controller.
  - Large organizations are read with the PCE's asynchronous collection requests, and label hrefs are resolved
    with at most one read of the labels, never one request per workload.
  - Configure it with a YAML file whose name ends in C(.pce.yml) or C(.pce.yaml) (or is C(pce.yml)) and that
    sets O(plugin) to V(microseg.illumio.pce).
  - Strings from the PCE are never templated.
  - A key of the configuration file that is not one of the options below fails the inventory with the list of
    valid options, so that a misspelt option (V(filtres)) cannot silently widen it to every workload.
extends_documentation_fragment:
  - constructed
  - inventory_cache
  - microseg.illumio.pce.plugins
options:
  plugin:
    description:
      - Marks the file as a configuration of this plugin.
    type: str
    required: true
    choices: [microseg.illumio.pce]
  hostnames:
    description:
      - How to name the host of a workload, as a list of preferences; the first that gives a name wins.
      - V(hostname) is the workload's host name, V(name) its name in the PCE, V(ipv4) its first usable IPv4
        address (no loopback or link-local address, no ignored interface), V(public_ip) its public address and
        V(href) its PCE href, such as V(/orgs/1/workloads/ef7f0f53-2295-4416-aaaf-965146934c53).
      - When no preference gives a name, or the name is already taken by another workload, the href is used, so
        every workload gets its own host.
    type: list
    elements: str
    choices: [hostname, name, ipv4, public_ip, href]
    default: [hostname, name, ipv4, href]
  vars_prefix:
    description:
      - Prefix of the host variables this plugin sets (other than C(ansible_host)).
    type: str
    default: illumio_
  label_groups:
    description:
      - Whether to make a group C(<group_prefix><key>_<value>) for every label of a workload, for example
        V(role_web). Characters that cannot be in a group name become V(_).
    type: bool
    default: true
  label_group_keys:
    description:
      - Label keys to make groups for; empty means every key, custom keys included.
    type: list
    elements: str
    default: []
  state_groups:
    description:
      - Whether to make the groups C(managed) / C(unmanaged), C(online) / C(offline) and
        C(enforcement_mode_<mode>) (all with O(group_prefix) in front).
    type: bool
    default: true
  group_prefix:
    description:
      - Prefix of the names of the label and state groups, for example V(illumio_) for V(illumio_role_web).
    type: str
    default: ""
  ansible_host_interfaces:
    description:
      - Which interface C(ansible_host) is taken from, as a list of interface name patterns (shell-style
        wildcards such as V(eth*)) in order of preference; V(*) matches any interface, also one without a name.
      - Interfaces named in the workload's C(ignored_interface_names) or in O(ignored_interfaces), loopback
        interfaces and link-local addresses are never used.
      - When no interface matches, C(ansible_host) is not set and Ansible connects to the host's name. Use
        O(compose) to set it from something else, such as C(illumio_public_ip).
    type: list
    elements: str
    default: ["*"]
  ansible_host_prefer:
    description:
      - Which address family to prefer when the chosen interfaces have both.
    type: str
    choices: [ipv4, ipv6]
    default: ipv4
  ignored_interfaces:
    description:
      - Interface name patterns (shell-style wildcards) never used for C(ansible_host) or the V(ipv4) host name,
        in addition to each workload's own C(ignored_interface_names).
    type: list
    elements: str
    default: []
  filters:
    description:
      - Which workloads to read, evaluated by the PCE.
      - A workload must match every filter given here.
    type: dict
    default: {}
    suboptions:
      labels:
        description:
          - Label sets; a workload matches when it has every label of at least one set.
          - Each set is a dict of label key to value, or to a list of values (any of them).
          - A set that names a label the PCE does not have matches nothing (with a warning).
        type: list
        elements: dict
      managed:
        description:
          - V(true) for workloads with a VEN, V(false) for unmanaged ones.
        type: bool
      online:
        description:
          - Only workloads that are online (V(true)) or offline (V(false)).
        type: bool
      enforcement_mode:
        description:
          - Only workloads in one of these enforcement modes.
        type: list
        elements: str
        choices: [idle, visibility_only, selective, full]
      hostname:
        description:
          - Only workloads whose host name contains this text (the PCE's partial match).
        type: str
  include_deleted:
    description:
      - Whether deleted workloads (which the PCE keeps for a while after they were deleted or their VEN unpaired)
        become hosts too. Their C(deleted) host variable (C(illumio_deleted) with the default O(vars_prefix)) is
        V(true); that of every other host is V(false).
      - By default only workloads that exist become hosts.
    type: bool
    default: false
  include:
    description:
      - Keep only workloads that match at least one of these expressions; evaluated on the controller.
      - An expression is either a dict of label key to value pattern (shell-style wildcards, or a list of patterns
        of which any may match; V(null) means "has no label of this key"), which matches when every key does,
        or a string, a Jinja2 conditional over the host's variables evaluated like those of O(groups), such as
        V(illumio_labels.env | default('') is match('prod')).
      - With O(strict=false) a conditional that fails to evaluate does not match; with O(strict=true) it fails the
        inventory.
    type: list
    elements: raw
    default: []
  exclude:
    description:
      - Drop workloads that match any of these expressions, written as in O(include).
    type: list
    elements: raw
    default: []
notes:
  - The whole result of the PCE (after O(filters)) is cached per configuration file when O(cache) is on;
    changing O(filters), O(pce_host), O(pce_port) or O(pce_org_id) makes the next run read the PCE again.
  - In AWX / Ansible Automation Platform, use an inventory source "Sourced from a Project" that points at the
    C(.pce.yml) file, and a credential that sets the E(ILLUMIO_*) environment variables (see the collection's
    C(docs/inventory.md)).
"""

EXAMPLES = r"""
---
# demo.pce.yml - every workload of the PCE named in the ILLUMIO_* environment variables.
plugin: microseg.illumio.pce

---
# prod.pce.yml - production web and database servers that have a VEN, named by host name, reached on eth0.
plugin: microseg.illumio.pce
pce_host: pce.example.com
pce_port: 8443
pce_org_id: 1
# api_key_username and api_key_secret come from ILLUMIO_API_KEY_USERNAME / ILLUMIO_API_KEY_SECRET.
ca_path: /etc/pki/illumio/pce-ca.pem
filters:
  managed: true
  labels:
    - env: prod
      role: [web, db]
exclude:
  - app: legacy-*
hostnames: [hostname, ipv4]
ansible_host_interfaces: [eth0, "*"]
ignored_interfaces: ["docker*", "veth*"]
group_prefix: pce_
keyed_groups:
  - key: illumio_agent.version
    prefix: ven
  - key: illumio_os_id
    prefix: os
groups:
  needs_ven_upgrade: illumio_managed and illumio_agent.version is version('21.5', '<')
compose:
  ansible_user: "'ec2-user' if (illumio_os_id or '').startswith('amzn') else 'ansible'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-inventory
cache_timeout: 900
"""

import fnmatch
import json
import os
import re
import time

from ansible import constants as C
from ansible import template as _ansible_template
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import combine_vars

if hasattr(_ansible_template, "trust_as_template"):
    # ansible-core >= 2.19 templates only strings marked as trusted, and nothing from the PCE is.

    def _untrusted(value):
        return value

else:  # ansible-core < 2.19: mark every string from the PCE as unsafe to template
    from ansible.utils.unsafe_proxy import wrap_var as _untrusted

from ansible_collections.microseg.illumio.plugins.module_utils.options import INSECURE_WARNING
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import USER_AGENT, client_from_params
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError

CONNECTION_OPTIONS = (
    "pce_host",
    "pce_port",
    "pce_org_id",
    "api_key_username",
    "api_key_secret",
    "validate_certs",
    "ca_path",
    "client_cert",
    "client_key",
    "proxy_url",
    "request_timeout",
    "max_retries",
)
# Path options and their environment variables.
PATH_OPTIONS = {
    "ca_path": "ILLUMIO_PCE_CA_PATH",
    "client_cert": "ILLUMIO_PCE_CLIENT_CERT",
    "client_key": "ILLUMIO_PCE_CLIENT_KEY",
}
TEXT_OPTIONS = frozenset(["pce_host", "api_key_username", "api_key_secret", "proxy_url"])
ENFORCEMENT_MODES = ("idle", "visibility_only", "selective", "full")
FILTER_KEYS = ("labels", "managed", "online", "enforcement_mode", "hostname")
# What the cache holds; a cache written in another format is read as a miss.
CACHE_FORMAT = 2
HEALTH_ERROR_SEVERITIES = frozenset(["error", "err", "critical", "crit", "alert", "emergency", "fatal"])
HEALTH_WARNING_SEVERITIES = frozenset(["warning", "warn"])
# Kept small on purpose: every string here is printed (as unsafe) for every host by ansible-inventory --list.
INTERFACE_FIELDS = ("name", "address", "cidr_block", "default_gateway_address")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "microseg.illumio.pce"

    def verify_file(self, path):
        if not super(InventoryModule, self).verify_file(path):
            return False
        name = path.rsplit("/", 1)[-1]
        if name in ("pce.yml", "pce.yaml") or name.endswith((".pce.yml", ".pce.yaml")):
            return True
        self.display.vvv("microseg.illumio.pce: skipping %s, its name does not end in .pce.yml or .pce.yaml" % path)
        return False

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._config = self._read_config_data(path)
        self._refuse_unknown_options(path)
        settings = self._settings()
        source = self._source_fingerprint(settings["filters"], settings["include_deleted"])

        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        payload = None
        if use_cache:
            payload = self._from_cache(cache_key, source)
            update_cache = payload is None
        if payload is None:
            workloads = self._read_pce(settings["filters"], settings["include_deleted"])
            payload = {"format": CACHE_FORMAT, "source": source, "workloads": workloads}
        if update_cache:
            # One string, not a tree of objects: the cache layer deep-copies and compares what it stores.
            self._cache[cache_key] = json.dumps(payload, separators=(",", ":"))

        started = time.monotonic()
        count = self._populate(payload["workloads"], settings)
        self.display.vv("microseg.illumio.pce: %d hosts built in %.2f s" % (count, time.monotonic() - started))

    # --- options ----------------------------------------------------------------------------------------------
    def _refuse_unknown_options(self, path):
        """Ansible ignores keys of the configuration file that are no option (a typo such as `filtres:` would
        silently read every workload), so they are refused here, with the valid names."""
        definitions = C.config.get_configuration_definitions(plugin_type=self.plugin_type, name=self._load_name)
        if not definitions:  # the documentation was not loaded: nothing to check against
            return
        valid = set(definitions)
        for definition in definitions.values():
            valid.update((definition or {}).get("aliases") or [])
        unknown = sorted(to_native(key) for key in self._config if key not in valid)
        if unknown:
            raise AnsibleParserError(
                "microseg.illumio.pce: unknown option%s %s in %s; the valid options are %s"
                % ("s" if len(unknown) > 1 else "", ", ".join(unknown), to_native(path), ", ".join(sorted(valid)))
            )

    def _settings(self):
        prefix = self.get_option("vars_prefix") or ""
        if prefix and not IDENTIFIER.match(prefix):
            raise AnsibleParserError("microseg.illumio.pce: vars_prefix %r cannot start a variable name" % prefix)
        settings = {
            "vars_prefix": prefix,
            "hostnames": list(self.get_option("hostnames") or ["hostname", "name", "ipv4", "href"]),
            "label_groups": self.get_option("label_groups"),
            "label_group_keys": frozenset(self.get_option("label_group_keys") or []),
            "state_groups": self.get_option("state_groups"),
            "group_prefix": self.get_option("group_prefix") or "",
            "host_patterns": list(self.get_option("ansible_host_interfaces") or []),
            "prefer_ipv6": self.get_option("ansible_host_prefer") == "ipv6",
            "ignored_interfaces": list(self.get_option("ignored_interfaces") or []),
            "filters": _check_filters(self.get_option("filters")),
            "include_deleted": self.get_option("include_deleted"),
            "include": _check_expressions("include", self.get_option("include")),
            "exclude": _check_expressions("exclude", self.get_option("exclude")),
            "strict": self.get_option("strict"),
            "compose": self.get_option("compose"),
            "groups": self.get_option("groups"),
            "keyed_groups": self.get_option("keyed_groups"),
        }
        return settings

    def _connection(self):
        params = {}
        for name in CONNECTION_OPTIONS:
            value = self.get_option(name)
            if name in PATH_OPTIONS and name not in self._config and os.environ.get(PATH_OPTIONS[name]) == "":
                # An empty variable (e.g. from a credential field left blank) means unset; Ansible would have made
                # the current directory of an empty path.
                value = None
            # Vault-encrypted values from the configuration file decrypt to text here.
            params[name] = to_native(value) if value is not None and name in TEXT_OPTIONS else value
        return params

    def _source_fingerprint(self, filters, include_deleted):
        """What the cached data depends on: the PCE, the org and what the PCE was asked for."""
        return {
            "pce_host": self.get_option("pce_host"),
            "pce_port": self.get_option("pce_port"),
            "pce_org_id": self.get_option("pce_org_id"),
            "filters": filters,
            "include_deleted": bool(include_deleted),
        }

    # --- cache ------------------------------------------------------------------------------------------------
    def _from_cache(self, cache_key, source):
        started = time.monotonic()
        try:
            cached = self._cache[cache_key]
        except KeyError:
            return None
        try:
            payload = json.loads(cached) if isinstance(cached, (str, bytes)) else cached
        except ValueError:
            return None
        if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT or payload.get("source") != source:
            self.display.vv("microseg.illumio.pce: cached data was made with other settings, reading the PCE")
            return None
        self.display.vv(
            "microseg.illumio.pce: %d workloads read from the cache in %.2f s"
            % (len(payload.get("workloads") or []), time.monotonic() - started)
        )
        return payload

    # --- reading the PCE --------------------------------------------------------------------------------------
    def _read_pce(self, filters, include_deleted=False):
        started = time.monotonic()
        connection = self._connection()
        if connection.get("validate_certs") is False:
            self.display.warning("microseg.illumio.pce: %s" % INSECURE_WARNING)
        try:
            client = client_from_params(connection, user_agent=USER_AGENT + " inventory")
            labels = _LabelIndex(client)
            queries = self._queries(filters, labels)
            raw = []
            for query in queries:
                if include_deleted:
                    # A boolean query parameter of the PCE's workloads GET; deleted ones come marked deleted: true.
                    query = dict(query, include_deleted="true")
                raw.extend(client.get_collection("workloads", params=query))
            read = time.monotonic()
            workloads = _shape_all(raw, labels, seen=set(), include_deleted=include_deleted)
        except PceError as error:
            raise AnsibleParserError("microseg.illumio.pce: %s" % to_native(error)) from None
        self.display.vv(
            "microseg.illumio.pce: %d workloads read from the PCE in %.2f s (%d request set(s), labels read: %s),"
            " shaped in %.2f s" % (len(workloads), read - started, len(queries), labels.loaded, time.monotonic() - read)
        )
        return workloads

    def _queries(self, filters, labels):
        """The query parameters of the workload reads: one set per enforcement mode, else one."""
        base = {}
        for name in ("managed", "online"):
            if filters.get(name) is not None:
                base[name] = "true" if filters[name] else "false"
        if filters.get("hostname"):
            base["hostname"] = filters["hostname"]
        if filters.get("labels") is not None:
            groups = []
            for label_set in filters["labels"]:
                for combination in _combinations(label_set):
                    hrefs = [labels.href(key, value) for key, value in combination]
                    if None in hrefs:
                        missing = ", ".join("%s=%s" % pair for pair, href in zip(combination, hrefs) if href is None)
                        self.display.warning(
                            "microseg.illumio.pce: the PCE has no label %s; that label set of filters.labels matches"
                            " no workload" % missing
                        )
                        continue
                    groups.append(hrefs)
            if not groups:
                return []
            base["labels"] = json.dumps(groups, separators=(",", ":"))
        modes = filters.get("enforcement_mode")
        if not modes:
            return [base]
        return [dict(base, enforcement_mode=mode) for mode in modes]

    # --- building the inventory -------------------------------------------------------------------------------
    def _populate(self, workloads, settings):
        inventory = self.inventory
        hosts = inventory.hosts
        prefix = settings["vars_prefix"]
        include, exclude = settings["include"], settings["exclude"]
        needs_vars_for_filter = any(isinstance(item, str) for item in include + exclude)
        constructed = settings["compose"] or settings["groups"] or settings["keyed_groups"]
        strict = settings["strict"]
        groups = _Groups(self.inventory, self._sanitize_group_name, settings)
        taken = {}
        clashes = 0
        count = 0
        for workload in workloads:
            hostvars = None
            if needs_vars_for_filter:
                hostvars = self._hostvars(workload, prefix, settings)
            if include and not self._matches_any(include, workload, hostvars, strict):
                continue
            if exclude and self._matches_any(exclude, workload, hostvars, strict):
                continue
            if hostvars is None:
                hostvars = self._hostvars(workload, prefix, settings)

            name, clashed = _host_name(workload, settings["hostnames"], settings, taken)
            if clashed:
                clashes += 1
            taken[name] = workload["href"]
            is_new = name not in hosts
            inventory.add_host(name)
            if is_new:
                # A host this plugin just made has only inventory_file/dir: set every variable at once instead of
                # one set_variable call each (the names are checked once, via vars_prefix).
                hosts[name].vars.update(hostvars)
            else:
                for key, value in hostvars.items():
                    inventory.set_variable(name, key, value)
            host = hosts[name]
            for group in groups.of(workload):
                # Group.add_host directly: InventoryData.add_child only looks both up by name first (its groups
                # cache is rebuilt when the inventory is reconciled after parsing).
                group.add_host(host)
            if constructed:
                self._set_composite_vars(settings["compose"], hostvars, name, strict=strict)
                self._add_host_to_composed_groups(settings["groups"], hostvars, name, strict=strict)
                self._add_host_to_keyed_groups(settings["keyed_groups"], hostvars, name, strict=strict)
            count += 1
        if clashes:
            self.display.warning(
                "microseg.illumio.pce: %d workload(s) had a name already used by another workload and were named by"
                " the next choice of hostnames, or by their href" % clashes
            )
        return count

    def _hostvars(self, workload, prefix, settings):
        hostvars = _untrusted(dict((prefix + key, value) for key, value in workload.items()))
        address = _ansible_host(workload, settings)
        if address:
            hostvars["ansible_host"] = _untrusted(address)
        return hostvars

    def _matches_any(self, expressions, workload, hostvars, strict):
        for expression in expressions:
            if isinstance(expression, dict):
                if _labels_match(expression, workload["labels"]):
                    return True
                continue
            try:
                if self._conditional(expression, hostvars):
                    return True
            except Exception as error:
                if strict:
                    raise AnsibleParserError(
                        "microseg.illumio.pce: could not evaluate %r for workload %s: %s"
                        % (expression, workload["href"], to_native(error))
                    ) from None
        return False

    def _conditional(self, expression, variables):
        """A Jinja2 conditional over a host's variables, evaluated as the `groups` option evaluates them."""
        if self.get_option("use_extra_vars"):
            variables = combine_vars(variables, self._vars)
        self.templar.available_variables = variables
        if hasattr(self.templar, "evaluate_conditional"):  # ansible-core >= 2.19
            return self.templar.evaluate_conditional(expression)
        return boolean(self.templar.template("{%% if %s %%} True {%% else %%} False {%% endif %%}" % expression))


# --- option checks ---------------------------------------------------------------------------------------------
def _check_filters(filters):
    filters = dict(filters or {})
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise AnsibleParserError(
            "microseg.illumio.pce: unknown filters %s; the PCE filters workloads by %s"
            % (", ".join(unknown), ", ".join(FILTER_KEYS))
        )
    checked = {}
    for name in ("managed", "online"):
        if filters.get(name) is not None:
            try:
                checked[name] = boolean(filters[name], strict=True)
            except TypeError:
                raise AnsibleParserError("microseg.illumio.pce: filters.%s must be true or false" % name) from None
    if filters.get("hostname") is not None:
        checked["hostname"] = to_native(filters["hostname"])
    modes = filters.get("enforcement_mode")
    if modes is not None:
        modes = [modes] if isinstance(modes, str) else list(modes)
        bad = [mode for mode in modes if mode not in ENFORCEMENT_MODES]
        if bad:
            raise AnsibleParserError(
                "microseg.illumio.pce: filters.enforcement_mode %s is not one of %s"
                % (", ".join(map(str, bad)), ", ".join(ENFORCEMENT_MODES))
            )
        checked["enforcement_mode"] = sorted(set(modes), key=ENFORCEMENT_MODES.index)
    label_sets = filters.get("labels")
    if label_sets is not None:
        label_sets = [label_sets] if isinstance(label_sets, dict) else label_sets
        if not isinstance(label_sets, list) or not all(isinstance(item, dict) and item for item in label_sets):
            raise AnsibleParserError(
                "microseg.illumio.pce: filters.labels must be a list of label sets such as {env: prod, role: web}"
            )
        normalised = []
        for label_set in label_sets:
            entry = {}
            for key, value in label_set.items():
                values = value if isinstance(value, list) else [value]
                if not values or not all(isinstance(item, str) and item for item in values):
                    raise AnsibleParserError(
                        "microseg.illumio.pce: filters.labels: the value of %s must be a label value or a list of"
                        " them" % key
                    )
                entry[to_native(key)] = [to_native(item) for item in values]
            normalised.append(entry)
        checked["labels"] = normalised
    return checked


def _check_expressions(option, expressions):
    checked = []
    for expression in expressions or []:
        if isinstance(expression, dict) and expression:
            entry = {}
            for key, value in expression.items():
                if value is None:
                    entry[to_native(key)] = None
                elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
                    entry[to_native(key)] = [to_native(item) for item in value]
                elif isinstance(value, str):
                    entry[to_native(key)] = [to_native(value)]
                else:
                    raise AnsibleParserError(
                        "microseg.illumio.pce: %s: the value of label %s must be a pattern, a list of patterns"
                        " or null" % (option, key)
                    )
            checked.append(entry)
        elif isinstance(expression, str) and expression.strip():
            checked.append(expression)
        else:
            raise AnsibleParserError(
                "microseg.illumio.pce: each %s entry is a dict of label key to pattern or a Jinja2 conditional,"
                " got %r" % (option, expression)
            )
    return checked


def _combinations(label_set):
    """{env: [prod], role: [web, db]} -> [[(env, prod), (role, web)], [(env, prod), (role, db)]]."""
    combinations = [[]]
    for key, values in label_set.items():
        combinations = [[*done, (key, value)] for done in combinations for value in values]
    return combinations


# --- labels ------------------------------------------------------------------------------------------------------
class _LabelIndex(object):
    """The org's labels, read at most once and only when something needs them."""

    def __init__(self, client):
        self.client = client
        self._by_href = None
        self._by_key_value = None

    @property
    def loaded(self):
        return self._by_href is not None

    def _load(self):
        if self._by_href is None:
            labels = self.client.get_collection("labels")
            self._by_href = dict((label.get("href"), label) for label in labels)
            self._by_key_value = dict(((label.get("key"), label.get("value")), label.get("href")) for label in labels)

    def href(self, key, value):
        self._load()
        return self._by_key_value.get((key, value))

    def key_value(self, href):
        self._load()
        label = self._by_href.get(href)
        return (label.get("key"), label.get("value")) if label else (None, None)


# --- shaping workloads -------------------------------------------------------------------------------------------
def _shape_all(raw_workloads, labels, seen, include_deleted=False):
    shaped = []
    for workload in raw_workloads:
        if not isinstance(workload, dict) or not workload.get("href"):
            continue
        if workload.get("deleted") and not include_deleted:
            continue
        if workload["href"] in seen:  # the same workload from two enforcement-mode reads
            continue
        seen.add(workload["href"])
        shaped.append(_shape(workload, labels))
    return shaped


def _shape(workload, labels):
    """The host variables of one workload (without prefix), in plain JSON types."""
    agent = workload.get("agent") or {}
    status = agent.get("status") or {}
    managed = bool(workload.get("ven") or agent.get("href"))
    return {
        "href": workload["href"],
        "hostname": workload.get("hostname"),
        "name": workload.get("name"),
        "labels": _label_dict(workload.get("labels"), labels),
        "enforcement_mode": workload.get("enforcement_mode"),
        "visibility_level": workload.get("visibility_level"),
        "online": bool(workload.get("online")),
        "managed": managed,
        "interfaces": [_interface(item) for item in workload.get("interfaces") or [] if isinstance(item, dict)],
        "ignored_interface_names": list(workload.get("ignored_interface_names") or []),
        "os_id": workload.get("os_id"),
        "os_detail": workload.get("os_detail"),
        "agent": {
            "version": status.get("agent_version"),
            "status": status.get("status"),
            "health": _health(status) if managed and status else None,
        },
        "public_ip": workload.get("public_ip"),
        "data_center": workload.get("data_center"),
        "deleted": bool(workload.get("deleted")),
    }


def _label_dict(refs, labels):
    result = {}
    for ref in refs or []:
        if not isinstance(ref, dict):
            continue
        key, value = ref.get("key"), ref.get("value")
        if key is None or value is None:
            key, value = labels.key_value(ref.get("href"))
        if key is not None:
            result[key] = value
    return result


def _interface(interface):
    shaped = dict((field, interface.get(field)) for field in INTERFACE_FIELDS)
    shaped["loopback"] = bool(interface.get("loopback"))
    return shaped


def _health(status):
    severities = set(str(item.get("severity", "")).lower() for item in status.get("agent_health") or [] if item)
    errors = status.get("agent_health_errors") or {}
    if severities & HEALTH_ERROR_SEVERITIES or errors.get("errors"):
        return "error"
    if severities & HEALTH_WARNING_SEVERITIES or errors.get("warnings"):
        return "warning"
    return "ok"


# --- names and addresses -----------------------------------------------------------------------------------------
def _usable_address(interface, ignored_names, ignored_patterns):
    """The interface's address if Ansible could connect to it: not loopback, not link-local, not ignored."""
    address = interface.get("address")
    if not address or interface.get("loopback"):
        return None
    name = interface.get("name")
    if name is not None and (name in ignored_names or any(fnmatch.fnmatchcase(name, p) for p in ignored_patterns)):
        return None
    lowered = address.lower()
    if ":" in lowered:
        head = lowered.split(":", 1)[0]
        if lowered in ("::1", "::") or (len(head) == 4 and head[:3] in ("fe8", "fe9", "fea", "feb")):
            return None
    elif lowered.startswith(("127.", "169.254.")) or lowered == "0.0.0.0":  # noqa: S104 - not a bind address
        return None
    return address


def _ansible_host(workload, settings):
    interfaces = workload["interfaces"]
    if not interfaces:
        return None
    ignored_names = workload["ignored_interface_names"]
    ignored_patterns = settings["ignored_interfaces"]
    prefer_ipv6 = settings["prefer_ipv6"]
    for pattern in settings["host_patterns"]:
        fallback = None
        for interface in interfaces:
            name = interface["name"]
            if pattern != "*" and (name is None or not fnmatch.fnmatchcase(name, pattern)):
                continue
            address = _usable_address(interface, ignored_names, ignored_patterns)
            if address is None:
                continue
            if (":" in address) == prefer_ipv6:
                return address
            if fallback is None:
                fallback = address
        if fallback is not None:
            return fallback
    return None


def _first_ipv4(workload, settings):
    for interface in workload["interfaces"]:
        address = _usable_address(interface, workload["ignored_interface_names"], settings["ignored_interfaces"])
        if address and ":" not in address:
            return address
    return None


def _name_by(choice, workload, settings):
    if choice == "ipv4":
        return _first_ipv4(workload, settings)
    return workload.get(choice)


def _host_name(workload, choices, settings, taken):
    """(name, clashed): the first free name of the preferences, else the href; clashed when a name was taken."""
    clashed = False
    for choice in choices:
        name = _name_by(choice, workload, settings)
        if name:
            if name not in taken:
                return name, clashed
            clashed = True
    return workload["href"], clashed


def _labels_match(expression, labels):
    for key, patterns in expression.items():
        value = labels.get(key)
        if patterns is None:
            if value is not None:
                return False
        elif value is None or not any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns):
            return False
    return True


# --- groups ------------------------------------------------------------------------------------------------------
class _Groups(object):
    """The label and state groups of a workload; each distinct group is named and added to the inventory once."""

    def __init__(self, inventory, sanitize, settings):
        self.inventory = inventory
        self.sanitize = sanitize
        self.prefix = settings["group_prefix"]
        self.label_groups = settings["label_groups"]
        self.keys = settings["label_group_keys"]
        self.state_groups = settings["state_groups"]
        self._groups = {}

    def _group(self, raw):
        group = self._groups.get(raw)
        if group is None:
            try:
                name = self.inventory.add_group(self.sanitize(raw))
                group = self.inventory.groups[name]
                if not group.parent_groups:
                    # Under 'all' while still empty: done after parsing, it would walk every host of the group.
                    self.inventory.add_child("all", name)
            except AnsibleError as error:
                raise AnsibleParserError("microseg.illumio.pce: cannot make group %r: %s" % (raw, error)) from None
            self._groups[raw] = group
        return group

    def of(self, workload):
        prefix = self.prefix
        found = []
        if self.label_groups:
            for key, value in workload["labels"].items():
                if not self.keys or key in self.keys:
                    found.append(self._group("%s%s_%s" % (prefix, key, value)))
        if self.state_groups:
            found.append(self._group(prefix + ("managed" if workload["managed"] else "unmanaged")))
            found.append(self._group(prefix + ("online" if workload["online"] else "offline")))
            if workload["enforcement_mode"]:
                found.append(self._group("%senforcement_mode_%s" % (prefix, workload["enforcement_mode"])))
        return found
