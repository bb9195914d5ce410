"""The microseg.illumio.pce inventory plugin against a local HTTPS PCE answering in the shapes of the real one.

Workloads start from fixtures/workloads.json, a verbatim copy of the PCE's GET /workloads answer published with
the test data of the Illumio Python SDK (illumio/illumio-py, Apache License 2.0): managed, IPv6 before IPv4 on
one interface, empty labels. Variants change only what a test is about (link-local addresses, null interface
names, labels given by href only...).
"""

from __future__ import annotations

import copy
import json
import re
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from pce_test_server import Reply, Request

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = json.loads((FIXTURES / "workloads.json").read_text())[0]
USERNAME = "api_1f00dcafe1234"
SECRET = "9c3e7f1d0b8a4e6f2a5c7d9e1b3f5a7c-inventory-unit-test-secret"
ORG = "/api/v2/orgs/1"


# --- loading the plugin the way ansible-core does --------------------------------------------------------------
@pytest.fixture(scope="module")
def inventory_loader():
    """Ansible's inventory plugin loader, with this checkout installed as the collection microseg.illumio."""
    root = next(Path(path) for path in sys.path if (Path(path) / "ansible_collections/microseg/illumio").is_dir())
    # The unit conftest imported the collection as a plain package; the collection loader wants to make the
    # package modules itself (with their metadata). Submodules already imported stay the same objects.
    for name in ("ansible_collections", "ansible_collections.microseg", "ansible_collections.microseg.illumio"):
        sys.modules.pop(name, None)
    from ansible.plugins.loader import init_plugin_loader
    from ansible.plugins.loader import inventory_loader as loader

    init_plugin_loader([str(root)])
    return loader


# --- a PCE with workloads, labels and async collections ----------------------------------------------------------
class WorkloadPce:
    """GET labels and workloads with the PCE's filters, X-Total-Count, and async jobs with datafiles."""

    def __init__(self):
        self.labels: list[dict] = []
        self.workloads: list[dict] = []
        self.jobs: dict[str, list] = {}
        # Whether deleted workloads are listed even when the query does not ask for them with include_deleted.
        self.lists_deleted = False
        self.server = None
        self.server_ca = None

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def requests_to(self, suffix: str) -> list[Request]:
        return [request for request in self.requests if request.path == ORG + suffix]

    def label(self, key: str, value: str) -> dict:
        for label in self.labels:
            if (label["key"], label["value"]) == (key, value):
                return label
        label = {
            "href": f"/orgs/1/labels/{len(self.labels) + 1}",
            "key": key,
            "value": value,
            "external_data_set": None,
            "external_data_reference": None,
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
            "created_by": {"href": "/users/1"},
            "updated_by": {"href": "/users/1"},
        }
        self.labels.append(label)
        return label

    def add(self, *workloads: dict) -> None:
        self.workloads.extend(workloads)

    def connection(self) -> dict:
        return {
            "pce_host": "127.0.0.1",
            "pce_port": self.server.port,
            "pce_org_id": 1,
            "api_key_username": USERNAME,
            "api_key_secret": SECRET,
            "ca_path": str(self.server_ca),
            "max_retries": 0,
        }

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != _basic(USERNAME, SECRET):
            return Reply(401, [{"token": "authentication_required", "message": "Authentication required"}])
        if request.path == ORG + "/labels":
            return self._collection(request, self.labels)
        if request.path == ORG + "/workloads":
            return self._collection(request, [w for w in self.workloads if self._matches(w, request.query)])
        job = re.match(ORG + r"/jobs/(\w+)$", request.path)
        if job:
            body = {"href": f"/orgs/1/jobs/{job.group(1)}", "status": "done"}
            body["result"] = {"href": f"/orgs/1/datafiles/{job.group(1)}"}
            return Reply(200, body)
        datafile = re.match(ORG + r"/datafiles/(\w+)$", request.path)
        if datafile:
            return Reply(200, self.jobs[datafile.group(1)])
        return Reply(404, [{"token": "not_found", "message": "Not Found"}])

    def _collection(self, request: Request, items: list) -> Reply:
        if "respond-async" in request.headers.get("prefer", ""):
            job = uuid.uuid4().hex
            self.jobs[job] = items
            return Reply(202, None, {"Location": f"/orgs/1/jobs/{job}", "Retry-After": "0"})
        limit = int(request.query.get("max_results", 500))
        return Reply(200, items[:limit], {"X-Total-Count": str(len(items))})

    def _matches(self, workload: dict, query: dict) -> bool:
        if "labels" in query:
            hrefs = {label["href"] for label in workload.get("labels") or []}
            if not any(set(group) <= hrefs for group in json.loads(query["labels"])):
                return False
        if "managed" in query and bool(workload.get("ven")) != (query["managed"] == "true"):
            return False
        if "online" in query and bool(workload.get("online")) != (query["online"] == "true"):
            return False
        if "enforcement_mode" in query and workload.get("enforcement_mode") != query["enforcement_mode"]:
            return False
        if workload.get("deleted") and not self.lists_deleted and query.get("include_deleted") != "true":
            return False  # the PCE lists deleted workloads only when asked to
        return "hostname" not in query or query["hostname"].lower() in (workload.get("hostname") or "").lower()


def _basic(username: str, secret: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


@pytest.fixture
def pce(serve, tls_files):
    fake = WorkloadPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    return fake


def workload(pce: WorkloadPce | None = None, labels: dict | None = None, by_href: bool = False, **changes) -> dict:
    """The sample workload with a new UUID; labels as {key: value} become the PCE's references."""
    doc = copy.deepcopy(SAMPLE)
    uid = str(uuid.uuid4())
    doc["href"] = f"/orgs/1/workloads/{uid}"
    doc["ven"] = {"href": f"/orgs/1/vens/{uid}"}
    if labels:
        refs = []
        for key, value in labels.items():
            label = pce.label(key, value)
            refs.append({"href": label["href"]} if by_href else {k: label[k] for k in ("href", "key", "value")})
        doc["labels"] = refs
    doc.update(changes)
    return doc


def unmanaged(pce: WorkloadPce | None = None, labels: dict | None = None, **changes) -> dict:
    """An API-made workload as the PCE shows it: no VEN, an agent object with null href and status."""
    doc = workload(pce, labels, **changes)
    doc["ven"] = None
    doc["agent"] = {
        "config": {"log_traffic": False, "visibility_level": None, "mode": None, "security_policy_update_mode": None},
        "secure_connect": {"matching_issuer_name": None},
        "href": None,
        "status": None,
        "active_pce_fqdn": None,
        "target_pce_fqdn": None,
        "type": None,
        "unpair_allowed": False,
    }
    doc.update(changes)
    return doc


def interface(name, address, cidr_block=24, **extra) -> dict:
    """An interface shaped like those of workloads.json."""
    entry = {
        "name": name,
        "cidr_block": cidr_block,
        "link_state": None,
        "network_detection_mode": "single_private_brn",
        "friendly_name": None,
        "network": {"href": "/orgs/1/networks/04ac9819-d438-42b6-b892-2968e32ca255"},
        "loopback": False,
        "address": address,
        "default_gateway_address": None,
    }
    entry.update(extra)
    return entry


# --- running the plugin -----------------------------------------------------------------------------------------
class Built:
    """What one parse produced: the inventory, the plugin and the warnings it gave."""

    def __init__(self, inventory, plugin, warnings):
        self.inventory = inventory
        self.plugin = plugin
        self.warnings = warnings

    @property
    def hosts(self) -> list[str]:
        return list(self.inventory.hosts)

    def vars(self, host: str) -> dict:
        return self.inventory.get_host(host).vars

    def group(self, name: str) -> list[str]:
        return [host.name for host in self.inventory.groups[name].hosts] if name in self.inventory.groups else []

    def groups_of(self, host: str) -> set[str]:
        return {group.name for group in self.inventory.get_host(host).get_groups()} - {"all", "ungrouped"}


@pytest.fixture
def build(pce, tmp_path, inventory_loader, monkeypatch):
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader

    def run(flush_cache: bool = False, connection: dict | None = None, **config) -> Built:
        path = tmp_path / "test.pce.yml"
        settings = {"plugin": "microseg.illumio.pce", **(pce.connection() if connection is None else connection)}
        path.write_text(yaml.safe_dump({**settings, **config}))
        plugin = inventory_loader.get("microseg.illumio.pce")
        warnings = []
        monkeypatch.setattr(plugin.display, "warning", lambda message, *args, **kwargs: warnings.append(message))
        inventory = InventoryData()
        inventory.current_source = str(path)
        plugin.parse(inventory, DataLoader(), str(path), cache=not flush_cache)
        if plugin.get_option("cache"):
            plugin.update_cache_if_changed()
        inventory.reconcile_inventory()
        return Built(inventory, plugin, warnings)

    return run


def plain(value):
    """A value with any Ansible string wrappers removed (ansible-core < 2.19 marks strings unsafe)."""
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return str(value) if isinstance(value, str) else value


# --- the file name ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("demo.pce.yml", True),
        ("demo.pce.yaml", True),
        ("pce.yml", True),
        ("pce.yaml", True),
        ("demo.yml", False),
        ("mypce.yml", False),
        ("demo.pce.json", False),
    ],
)
def test_verify_file(inventory_loader, tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text("plugin: microseg.illumio.pce\n")
    assert inventory_loader.get("microseg.illumio.pce").verify_file(str(path)) is accepted


def test_verify_file_needs_a_readable_file(inventory_loader, tmp_path):
    assert inventory_loader.get("microseg.illumio.pce").verify_file(str(tmp_path / "missing.pce.yml")) is False


# --- hosts and host variables ------------------------------------------------------------------------------------
def test_sample_workload_as_the_pce_sends_it(pce, build):
    pce.add(copy.deepcopy(SAMPLE))
    built = build()
    assert built.hosts == ["ubuntu-db"]
    hostvars = plain(built.vars("ubuntu-db"))
    assert {key: value for key, value in hostvars.items() if key.startswith(("illumio_", "ansible_"))} == {
        "ansible_host": "10.0.186.116",  # IPv4 preferred although the IPv6 address is listed first
        "illumio_href": "/orgs/1/workloads/ef7f0f53-2295-4416-aaaf-965146934c53",
        "illumio_hostname": "ubuntu-db",
        "illumio_name": None,
        "illumio_labels": {},
        "illumio_enforcement_mode": "visibility_only",
        "illumio_visibility_level": "flow_summary",
        "illumio_online": False,
        "illumio_managed": True,
        "illumio_interfaces": [
            {
                "name": "eth0",
                "address": "fd00::200:a:0:ba74",
                "cidr_block": 64,
                "default_gateway_address": None,
                "loopback": False,
            },
            {
                "name": "eth0",
                "address": "10.0.186.116",
                "cidr_block": 8,
                "default_gateway_address": "10.0.0.1",
                "loopback": False,
            },
        ],
        "illumio_ignored_interface_names": [],
        "illumio_os_id": "ubuntu-x86_64-xenial",
        "illumio_os_detail": "4.4.0-97-generic #120-Ubuntu SMP Tue Sep 19 17:28:18 UTC 2017 (Ubuntu 16.04.1 LTS)",
        "illumio_agent": {"version": "20.2.0", "status": "active", "health": "ok"},
        "illumio_public_ip": "66.151.147.220",
        "illumio_data_center": None,
        "illumio_deleted": False,
    }
    assert built.groups_of("ubuntu-db") == {"managed", "offline", "enforcement_mode_visibility_only"}


def test_unmanaged_workload_has_null_agent_fields(pce, build):
    pce.add(unmanaged(hostname="appliance", online=True, enforcement_mode="idle"))
    built = build()
    hostvars = built.vars("appliance")
    assert hostvars["illumio_managed"] is False
    assert hostvars["illumio_agent"] == {"version": None, "status": None, "health": None}
    assert built.groups_of("appliance") == {"unmanaged", "online", "enforcement_mode_idle"}


@pytest.mark.parametrize(
    ("agent_health", "health_errors", "expected"),
    [
        ([], {"errors": [], "warnings": []}, "ok"),
        ([{"type": "policy.sync", "severity": "warning", "audit_event": "/orgs/1/events/1"}], {}, "warning"),
        ([{"type": "x", "severity": "err"}], {}, "error"),
        ([], {"errors": ["VEN tampering"], "warnings": []}, "error"),
        ([], {"errors": [], "warnings": ["clock skew"]}, "warning"),
    ],
)
def test_agent_health(pce, build, agent_health, health_errors, expected):
    doc = workload(hostname="ven1")
    doc["agent"]["status"]["agent_health"] = agent_health
    doc["agent"]["status"]["agent_health_errors"] = health_errors
    pce.add(doc)
    assert build().vars("ven1")["illumio_agent"]["health"] == expected


def test_deleted_workloads_are_left_out(pce, build):
    pce.lists_deleted = True  # even if the PCE lists them unasked
    pce.add(workload(hostname="gone", deleted=True), workload(hostname="here"))
    built = build()
    assert built.hosts == ["here"]
    assert built.vars("here")["illumio_deleted"] is False
    assert all("include_deleted" not in request.query for request in pce.requests_to("/workloads"))


def test_include_deleted_asks_the_pce_and_marks_the_deleted_hosts(pce, build):
    pce.add(workload(hostname="gone", deleted=True), workload(hostname="here"))
    built = build(include_deleted=True, filters={"managed": True})
    assert sorted(built.hosts) == ["gone", "here"]
    assert built.vars("gone")["illumio_deleted"] is True
    assert built.vars("here")["illumio_deleted"] is False
    [request] = pce.requests_to("/workloads")
    # A boolean query parameter of the PCE, sent along with the filters.
    assert request.query["include_deleted"] == "true"
    assert request.query["managed"] == "true"


def test_include_deleted_with_a_vars_prefix_and_in_conditionals(pce, build):
    pce.add(workload(hostname="gone", deleted=True), workload(hostname="here"))
    built = build(include_deleted=True, vars_prefix="pce_", groups={"gone_from_pce": "pce_deleted"})
    assert built.vars("gone")["pce_deleted"] is True
    assert built.group("gone_from_pce") == ["gone"]


def test_vars_prefix(pce, build):
    pce.add(workload(hostname="web1"))
    hostvars = build(vars_prefix="pce_").vars("web1")
    assert hostvars["pce_href"].startswith("/orgs/1/workloads/")
    assert not any(key.startswith("illumio_") for key in hostvars)


def test_vars_prefix_must_be_a_variable_name(pce, build):
    from ansible.errors import AnsibleParserError

    with pytest.raises(AnsibleParserError, match="vars_prefix"):
        build(vars_prefix="1-bad")


# --- groups ----------------------------------------------------------------------------------------------------
def test_label_groups_with_custom_keys_and_sanitised_names(pce, build):
    labels = {"role": "web server", "env": "prod", "loc": "dc-2 (Paris)", "bu": "Retail.EU"}
    pce.add(workload(pce, labels=labels, hostname="web1"))
    built = build()
    assert built.vars("web1")["illumio_labels"] == labels
    assert built.groups_of("web1") == {
        "role_web_server",
        "env_prod",
        "loc_dc_2__Paris_",
        "bu_Retail_EU",
        "managed",
        "offline",
        "enforcement_mode_visibility_only",
    }


def test_group_prefix_and_selected_keys(pce, build):
    pce.add(workload(pce, labels={"role": "web", "env": "prod"}, hostname="web1", online=True))
    built = build(group_prefix="pce_", label_group_keys=["role"])
    assert built.groups_of("web1") == {
        "pce_role_web",
        "pce_managed",
        "pce_online",
        "pce_enforcement_mode_visibility_only",
    }


def test_groups_can_be_turned_off(pce, build):
    pce.add(workload(pce, labels={"role": "web"}, hostname="web1"))
    assert build(label_groups=False, state_groups=False).groups_of("web1") == set()


def test_every_enforcement_mode_has_its_group(pce, build):
    for mode in ("idle", "visibility_only", "selective", "full"):
        pce.add(workload(hostname=f"h-{mode}", enforcement_mode=mode))
    built = build()
    for mode in ("idle", "visibility_only", "selective", "full"):
        assert built.group(f"enforcement_mode_{mode}") == [f"h-{mode}"]


def test_labels_given_by_href_are_resolved_with_one_labels_read(pce, build):
    for index in range(30):
        pce.add(workload(pce, labels={"role": f"r{index % 3}", "env": "prod"}, by_href=True, hostname=f"h{index}"))
    built = build()
    assert len(pce.requests_to("/labels")) == 1
    assert built.vars("h4")["illumio_labels"] == {"role": "r1", "env": "prod"}
    assert len(built.group("role_r1")) == 10


def test_labels_are_not_read_when_workloads_carry_key_and_value(pce, build):
    pce.add(workload(pce, labels={"role": "web"}, hostname="web1"))
    build()
    assert pce.requests_to("/labels") == []


def test_label_href_the_pce_does_not_know_is_skipped(pce, build):
    doc = workload(hostname="web1")
    doc["labels"] = [{"href": "/orgs/1/labels/404"}]
    pce.add(doc)
    assert build().vars("web1")["illumio_labels"] == {}


# --- host names ----------------------------------------------------------------------------------------------------
def test_hostname_fallbacks(pce, build):
    pce.add(
        workload(hostname="web1.example.com", name="Web 1"),
        workload(hostname=None, name="Printer gateway"),
        workload(hostname="", name=None, interfaces=[interface(None, "fe80::1", 64), interface("eth0", "10.9.9.9")]),
        workload(hostname=None, name=None, interfaces=[interface("lo", "127.0.0.1", 8, loopback=True)]),
    )
    built = build()
    assert built.hosts == ["web1.example.com", "Printer gateway", "10.9.9.9", pce.workloads[3]["href"]]
    assert built.warnings == []


def test_hostnames_order_is_the_users(pce, build):
    pce.add(workload(hostname="web1.example.com", name="Web 1"), workload(hostname="db1.example.com", name=None))
    built = build(hostnames=["name", "href"])
    assert built.hosts[0] == "Web 1"
    assert built.hosts[1] == pce.workloads[1]["href"]


def test_hostname_ipv4_skips_ignored_and_ipv6(pce, build):
    interfaces = [
        interface("docker0", "172.17.0.1", 16),
        interface("eth0", "2001:db8::5", 64),
        interface("eth1", "10.1.1.5"),
    ]
    pce.add(workload(interfaces=interfaces, ignored_interface_names=["docker0"]))
    assert build(hostnames=["ipv4"]).hosts == ["10.1.1.5"]


def test_public_ip_as_host_name(pce, build):
    pce.add(copy.deepcopy(SAMPLE))
    assert build(hostnames=["public_ip"]).hosts == ["66.151.147.220"]


def test_duplicate_names_get_the_next_choice_and_a_warning(pce, build):
    first, second, third = (workload(hostname="web1", name=name) for name in ("A", "B", "B"))
    pce.add(first, second, third)
    built = build(hostnames=["hostname", "name"])
    assert built.hosts == ["web1", "B", third["href"]]
    assert built.vars("B")["illumio_href"] == second["href"]
    assert len(built.warnings) == 1
    assert "2 workload(s)" in built.warnings[0]


def test_host_known_from_another_source_gets_the_variables_merged(pce, build, tmp_path, inventory_loader):
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader

    pce.add(workload(pce, labels={"role": "web"}, hostname="web1"))
    path = tmp_path / "merge.pce.yml"
    path.write_text(yaml.safe_dump({"plugin": "microseg.illumio.pce", **pce.connection()}))
    inventory = InventoryData()
    inventory.add_group("static")
    inventory.add_host("web1", group="static")
    inventory.set_variable("web1", "ansible_user", "deploy")
    inventory_loader.get("microseg.illumio.pce").parse(inventory, DataLoader(), str(path), cache=False)
    host = inventory.get_host("web1")
    assert host.vars["ansible_user"] == "deploy"
    assert host.vars["illumio_labels"] == {"role": "web"}
    assert {group.name for group in host.get_groups()} >= {"static", "role_web"}


# --- ansible_host ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("interfaces", "ignored", "options", "expected"),
    [
        # the sample: IPv6 listed first on eth0, IPv4 preferred
        (SAMPLE["interfaces"], [], {}, "10.0.186.116"),
        (SAMPLE["interfaces"], [], {"ansible_host_prefer": "ipv6"}, "fd00::200:a:0:ba74"),
        # link-local IPv6 (as VENs report them, network_detection_mode link_local) and loopback are skipped
        (
            [
                interface("lo", "::1", 128, loopback=True),
                interface("eth0", "fe80::39f6:3e9e:3cab:c31e", 64, network_detection_mode="link_local"),
                interface("eth0", "2001:db8::10", 64),
            ],
            [],
            {},
            "2001:db8::10",
        ),
        ([interface("eth0", "FE80::1", 64), interface("eth0", "169.254.10.1", 16)], [], {}, None),
        ([interface("lo", "127.0.0.1", 8, loopback=True), interface("eth0", "10.0.0.7")], [], {}, "10.0.0.7"),
        # null interface names: any interface (*) may be used, a name pattern never matches them
        ([interface(None, "10.0.0.8"), interface("eth0", "10.0.0.9")], [], {}, "10.0.0.8"),
        (
            [interface(None, "10.0.0.8"), interface("eth0", "10.0.0.9")],
            [],
            {"ansible_host_interfaces": ["eth*"]},
            "10.0.0.9",
        ),
        # the workload's ignored interfaces, and the plugin's own patterns
        ([interface("docker0", "172.17.0.1", 16), interface("eth0", "10.0.0.10")], ["docker0"], {}, "10.0.0.10"),
        (
            [interface("veth12ab", "10.200.0.1"), interface("eth0", "10.0.0.11")],
            [],
            {"ignored_interfaces": ["veth*"]},
            "10.0.0.11",
        ),
        # interfaces chosen by name, in order of preference, with * as the fallback
        (
            [interface("eth0", "10.0.0.12"), interface("mgmt0", "192.168.0.12")],
            [],
            {"ansible_host_interfaces": ["mgmt*", "*"]},
            "192.168.0.12",
        ),
        ([interface("eth0", "10.0.0.13")], [], {"ansible_host_interfaces": ["mgmt*"]}, None),
        ([interface("eth0", "10.0.0.14")], ["eth0"], {}, None),
        ([], [], {}, None),
    ],
)
def test_ansible_host(pce, build, interfaces, ignored, options, expected):
    pce.add(workload(hostname="host1", interfaces=copy.deepcopy(interfaces), ignored_interface_names=ignored))
    assert build(**options).vars("host1").get("ansible_host") == expected


# --- filters the PCE evaluates -----------------------------------------------------------------------------------
def test_filters_are_sent_to_the_pce(pce, build):
    pce.add(
        workload(pce, labels={"role": "web", "env": "prod"}, hostname="web-prod", online=True, enforcement_mode="full"),
        workload(
            pce, labels={"role": "db", "env": "prod"}, hostname="db-prod", online=True, enforcement_mode="selective"
        ),
        workload(pce, labels={"role": "web", "env": "dev"}, hostname="web-dev", online=True, enforcement_mode="full"),
        unmanaged(hostname="web-unmanaged", online=True, enforcement_mode="full"),
    )
    built = build(
        filters={
            "labels": [{"env": "prod", "role": ["web", "db"]}],
            "managed": True,
            "online": True,
            "enforcement_mode": ["selective", "full"],
            "hostname": "-prod",
        }
    )
    assert sorted(built.hosts) == ["db-prod", "web-prod"]
    reads = pce.requests_to("/workloads")
    assert [request.query.get("enforcement_mode") for request in reads] == ["selective", "full"]
    web, db, prod = (pce.label(k, v)["href"] for k, v in (("role", "web"), ("role", "db"), ("env", "prod")))
    for request in reads:
        assert request.query["managed"] == "true"
        assert request.query["online"] == "true"
        assert request.query["hostname"] == "-prod"
        assert json.loads(request.query["labels"]) == [[prod, web], [prod, db]]
    assert len(pce.requests_to("/labels")) == 1


def test_filter_with_an_unknown_label_matches_nothing_and_warns(pce, build):
    pce.add(workload(pce, labels={"env": "prod"}, hostname="web1"))
    built = build(filters={"labels": [{"env": "nope"}]})
    assert built.hosts == []
    assert pce.requests_to("/workloads") == []
    assert "env=nope" in built.warnings[0]


def test_filter_label_sets_with_one_unknown_set_keep_the_others(pce, build):
    pce.add(workload(pce, labels={"env": "prod"}, hostname="web1"))
    built = build(filters={"labels": [{"env": "nope"}, {"env": "prod"}]})
    assert built.hosts == ["web1"]
    assert len(built.warnings) == 1


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": "blue"}, "unknown filters colour"),
        ({"enforcement_mode": ["enforced"]}, "enforcement_mode enforced"),
        ({"managed": "maybe"}, "filters.managed must be true or false"),
        ({"labels": "env=prod"}, "filters.labels must be a list"),
        ({"labels": [{"env": 3}]}, "the value of env"),
    ],
)
def test_bad_filters_are_refused_before_any_request(pce, build, filters, message):
    from ansible.errors import AnsibleParserError

    with pytest.raises(AnsibleParserError, match=message):
        build(filters=filters)
    assert pce.requests == []


def test_large_collections_are_read_asynchronously(pce, build):
    pce.add(*(workload(pce, labels={"role": "web"}, hostname=f"host-{index:04d}") for index in range(1203)))
    built = build()
    assert len(built.hosts) == 1203
    assert len(built.group("role_web")) == 1203
    reads = pce.requests_to("/workloads")
    assert reads[-1].headers.get("prefer") == "respond-async"


# --- filters evaluated here ---------------------------------------------------------------------------------------
@pytest.fixture
def estate(pce):
    pce.add(
        workload(pce, labels={"role": "web", "env": "prod", "app": "shop"}, hostname="web-prod"),
        workload(pce, labels={"role": "web", "env": "staging", "app": "shop"}, hostname="web-staging"),
        workload(pce, labels={"role": "db", "env": "prod", "app": "legacy-crm"}, hostname="db-prod"),
        workload(pce, labels={"env": "prod"}, hostname="no-role", enforcement_mode="full"),
    )
    return pce


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        ([{"env": "prod"}], [], ["web-prod", "db-prod", "no-role"]),
        ([{"env": "prod", "role": ["web", "db"]}], [], ["web-prod", "db-prod"]),
        ([{"role": "w*"}, {"app": "legacy-*"}], [], ["web-prod", "web-staging", "db-prod"]),
        ([{"role": None}], [], ["no-role"]),
        ([], [{"app": "legacy-*"}], ["web-prod", "web-staging", "no-role"]),
        ([{"env": "prod"}], [{"role": "db"}], ["web-prod", "no-role"]),
        (["illumio_enforcement_mode == 'full'"], [], ["no-role"]),
        (["illumio_labels.role | default('') == 'web'"], ["'staging' in illumio_labels.values()"], ["web-prod"]),
    ],
)
def test_include_and_exclude(estate, build, include, exclude, expected):
    assert build(include=include, exclude=exclude).hosts == expected


def test_include_expression_errors_skip_unless_strict(estate, build):
    from ansible.errors import AnsibleParserError

    assert build(include=["illumio_labels.role == 'web'"]).hosts == ["web-prod", "web-staging"]
    with pytest.raises(AnsibleParserError, match="could not evaluate"):
        build(include=["illumio_labels.role == 'web'"], strict=True)


def test_bad_include_entries_are_refused(pce, build):
    from ansible.errors import AnsibleParserError

    with pytest.raises(AnsibleParserError, match="include"):
        build(include=[42])
    with pytest.raises(AnsibleParserError, match="the value of label role"):
        build(exclude=[{"role": 3}])


# --- Constructable -----------------------------------------------------------------------------------------------
def test_compose_groups_and_keyed_groups(estate, build):
    built = build(
        compose={"ansible_user": "'dba' if illumio_labels.get('role') == 'db' else 'deploy'"},
        groups={"prod_web": "illumio_labels.get('role') == 'web' and illumio_labels.get('env') == 'prod'"},
        keyed_groups=[
            {"key": "illumio_labels.app", "prefix": "application"},
            {"key": "illumio_agent.version", "prefix": "ven"},
        ],
    )
    assert built.vars("db-prod")["ansible_user"] == "dba"
    assert built.vars("web-prod")["ansible_user"] == "deploy"
    assert built.group("prod_web") == ["web-prod"]
    assert sorted(built.group("application_shop")) == ["web-prod", "web-staging"]
    assert built.group("application_legacy_crm") == ["db-prod"]
    assert len(built.group("ven_20_2_0")) == 4


def test_compose_can_override_ansible_host(pce, build):
    pce.add(copy.deepcopy(SAMPLE))
    assert build(compose={"ansible_host": "illumio_public_ip"}).vars("ubuntu-db")["ansible_host"] == "66.151.147.220"


def test_strict_keyed_groups_fail_on_missing_keys(estate, build):
    from ansible.errors import AnsibleError

    keyed = [{"key": "illumio_labels.role", "prefix": "r"}]
    assert sorted(build(keyed_groups=keyed).group("r_web")) == ["web-prod", "web-staging"]
    with pytest.raises(AnsibleError):
        build(keyed_groups=keyed, strict=True)


# --- cache -------------------------------------------------------------------------------------------------------
def cache_options(tmp_path, **extra) -> dict:
    return {
        "cache": True,
        "cache_plugin": "ansible.builtin.jsonfile",
        "cache_connection": str(tmp_path / "cache"),
        **extra,
    }


def test_cache_hit_reads_nothing_from_the_pce(estate, build, tmp_path):
    first = build(**cache_options(tmp_path))
    requests_after_first = len(estate.requests)
    assert requests_after_first > 0
    estate.workloads.clear()  # the PCE changed, but the cache is still fresh
    second = build(**cache_options(tmp_path))
    assert len(estate.requests) == requests_after_first
    assert second.hosts == first.hosts
    assert plain(second.vars("web-prod")["illumio_labels"]) == {"role": "web", "env": "prod", "app": "shop"}
    assert second.groups_of("db-prod") == first.groups_of("db-prod")
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1
    assert SECRET not in files[0].read_text()


def test_cache_hit_does_not_need_credentials(estate, build, tmp_path):
    build(**cache_options(tmp_path))
    connection = {key: value for key, value in estate.connection().items() if key != "api_key_secret"}
    assert len(build(connection=connection, **cache_options(tmp_path)).hosts) == 4


def test_flush_cache_reads_the_pce_again(estate, build, tmp_path):
    build(**cache_options(tmp_path))
    estate.workloads.pop()
    assert "no-role" not in build(flush_cache=True, **cache_options(tmp_path)).hosts  # ansible-inventory --flush-cache
    assert "no-role" not in build(**cache_options(tmp_path)).hosts  # and the cache holds the new answer


def test_changed_filters_miss_the_cache(estate, build, tmp_path):
    build(**cache_options(tmp_path))
    reads = len(estate.requests_to("/workloads"))
    built = build(filters={"enforcement_mode": ["full"]}, **cache_options(tmp_path))
    assert built.hosts == ["no-role"]
    assert len(estate.requests_to("/workloads")) == reads + 1


def test_local_options_apply_to_cached_data(estate, build, tmp_path):
    build(**cache_options(tmp_path))
    built = build(exclude=[{"role": "db"}], group_prefix="x_", **cache_options(tmp_path))
    assert "db-prod" not in built.hosts
    assert "x_role_web" in built.groups_of("web-prod")
    assert len(estate.requests_to("/workloads")) == 1


def test_include_deleted_misses_the_cache(pce, build, tmp_path):
    pce.add(workload(hostname="gone", deleted=True), workload(hostname="here"))
    assert build(**cache_options(tmp_path)).hosts == ["here"]
    assert sorted(build(include_deleted=True, **cache_options(tmp_path)).hosts) == ["gone", "here"]
    assert build(**cache_options(tmp_path)).hosts == ["here"]
    # Each run asked the PCE for something else than the cache held, so each read it.
    assert len(pce.requests_to("/workloads")) == 3


def test_expired_cache_is_refreshed(estate, build, tmp_path):
    build(**cache_options(tmp_path, cache_timeout=1))
    cache_file = next((tmp_path / "cache").iterdir())
    import os

    os.utime(cache_file, (0, 0))
    build(**cache_options(tmp_path, cache_timeout=1))
    assert len(estate.requests_to("/workloads")) == 2


# --- safety ------------------------------------------------------------------------------------------------------
def test_strings_from_the_pce_are_never_templated(pce, build):
    from ansible.template import Templar

    doc = workload(hostname="evil", name="{{ 6 * 7 }}", os_detail="{{ lookup('pipe', 'id') }}")
    pce.add(doc)
    try:  # ansible-core >= 2.19 templates only strings marked as trusted, like those of playbooks
        from ansible.template import trust_as_template
    except ImportError:
        trust_as_template = str

    hostvars = build().vars("evil")
    templar = Templar(loader=None, variables=hostvars)
    assert str(templar.template(trust_as_template("{{ 6 * 7 }}"))) == "42"  # the check itself templates
    assert templar.template(trust_as_template("{{ illumio_name }}")) == "{{ 6 * 7 }}"
    assert templar.template(trust_as_template("{{ illumio_os_detail }}")) == "{{ lookup('pipe', 'id') }}"
    assert templar.template(hostvars["illumio_name"]) == "{{ 6 * 7 }}"


def test_untrusted_ca_fails_clearly(pce, build, tls_files):
    from ansible.errors import AnsibleParserError

    pce.add(workload(hostname="web1"))
    with pytest.raises(AnsibleParserError, match="certificate verification failed") as failure:
        build(connection={**pce.connection(), "ca_path": str(tls_files.other_ca_cert)})
    assert "ca_path" in str(failure.value)


def test_wrong_secret_is_not_echoed(pce, build):
    from ansible.errors import AnsibleParserError

    wrong = "0123456789abcdef-wrong-secret-fedcba9876543210"
    with pytest.raises(AnsibleParserError, match="authentication failed") as failure:
        build(connection={**pce.connection(), "api_key_secret": wrong})
    assert wrong not in str(failure.value)


def test_missing_connection_names_the_environment_variable(pce, build):
    from ansible.errors import AnsibleParserError

    connection = {key: value for key, value in pce.connection().items() if key != "api_key_secret"}
    with pytest.raises(AnsibleParserError, match="ILLUMIO_API_KEY_SECRET"):
        build(connection=connection)


def test_connection_from_the_environment(pce, build, monkeypatch):
    pce.add(workload(hostname="web1"))
    for name, value in (
        ("ILLUMIO_PCE_HOST", "127.0.0.1"),
        ("ILLUMIO_PCE_PORT", str(pce.server.port)),
        ("ILLUMIO_PCE_ORG_ID", "1"),
        ("ILLUMIO_API_KEY_USERNAME", USERNAME),
        ("ILLUMIO_API_KEY_SECRET", SECRET),
        ("ILLUMIO_PCE_CA_PATH", str(pce.server_ca)),
    ):
        monkeypatch.setenv(name, value)
    assert build(connection={}).hosts == ["web1"]


# --- the whole pipeline, as ansible-inventory runs it ----------------------------------------------------------------
def test_through_the_inventory_manager(estate, tmp_path, inventory_loader):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    path = tmp_path / "estate.pce.yml"
    path.write_text(yaml.safe_dump({"plugin": "microseg.illumio.pce", **estate.connection()}))
    inventory = InventoryManager(loader=DataLoader(), sources=[str(path)])
    assert sorted(host.name for host in inventory.get_hosts("env_prod")) == ["db-prod", "no-role", "web-prod"]
    assert [host.name for host in inventory.get_hosts("role_web:&env_staging")] == ["web-staging"]
    variables = VariableManager(loader=DataLoader(), inventory=inventory).get_vars(host=inventory.get_host("db-prod"))
    assert plain(variables["illumio_labels"]) == {"role": "db", "env": "prod", "app": "legacy-crm"}
    assert "env_prod" in variables["group_names"]


def test_empty_path_variables_mean_unset(pce, build, monkeypatch, tmp_path):
    """A credential field left blank sets ILLUMIO_PCE_CLIENT_CERT=''; that must not become the current folder."""
    pce.add(workload(hostname="web1"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ILLUMIO_PCE_CLIENT_CERT", "")
    monkeypatch.setenv("ILLUMIO_PCE_CLIENT_KEY", "")
    assert build().hosts == ["web1"]


# --- golden file: ansible-inventory --list of a fixed estate ---------------------------------------------------------
GOLDEN = FIXTURES / "golden_list.json"


def golden_estate(pce: WorkloadPce) -> None:
    """Workloads with fixed hrefs, one per case worth pinning down in the --list output."""

    def fixed(doc: dict, number: int) -> dict:
        uid = f"00000000-0000-4000-8000-{number:012d}"
        doc["href"] = f"/orgs/1/workloads/{uid}"
        if doc.get("ven"):
            doc["ven"] = {"href": f"/orgs/1/vens/{uid}"}
        return doc

    pce.add(
        fixed(copy.deepcopy(SAMPLE), 1),
        fixed(
            unmanaged(
                hostname="db1.example.com",
                labels={"role": "db", "env": "prod", "bu": "Retail EU"},
                pce=pce,
                enforcement_mode="full",
                online=True,
                interfaces=[
                    interface("lo", "127.0.0.1", 8, loopback=True),
                    interface("docker0", "172.17.0.1", 16),
                    interface(None, "fe80::1", 64, network_detection_mode="link_local"),
                    interface("eth0", "10.1.0.5", default_gateway_address="10.1.0.1"),
                ],
                ignored_interface_names=["docker0"],
                data_center="dc1",
            ),
            2,
        ),
        fixed(workload(pce, labels={"role": "web", "env": "prod"}, by_href=True, hostname="web1.example.com"), 3),
        fixed(unmanaged(hostname=None, name="Printer gateway", interfaces=[interface("eth0", "2001:db8::9", 64)]), 4),
        fixed(unmanaged(hostname=None, name=None, interfaces=[]), 5),
        fixed(workload(hostname="gone.example.com", deleted=True), 6),
    )


def test_list_output_matches_the_golden_file(pce, tmp_path, inventory_loader, tls_files):
    import os
    import subprocess

    golden_estate(pce)
    root = next(Path(path) for path in sys.path if (Path(path) / "ansible_collections/microseg/illumio").is_dir())
    config = tmp_path / "golden.pce.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "plugin": "microseg.illumio.pce",
                **pce.connection(),
                "keyed_groups": [{"key": "illumio_os_id", "prefix": "os"}],
                "groups": {"prod_db": "illumio_labels.get('role') == 'db' and illumio_labels.get('env') == 'prod'"},
            }
        )
    )
    environment = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(root),
        "ANSIBLE_HOME": str(tmp_path / "home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(config), "--list"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "[WARNING]" not in done.stderr, done.stderr
    listing = json.loads(done.stdout)
    # Every string from the PCE is marked unsafe ({"__ansible_unsafe": ...}), with every ansible-core version.
    listing["_meta"].pop("profile", None)  # ansible-core >= 2.19 names its serialization profile
    if os.environ.get("MICROSEG_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(listing, indent=2, sort_keys=True) + "\n")
    assert listing == json.loads(GOLDEN.read_text())


# --- issue 17 finding 5: no silent surprises ------------------------------------------------------------------
def test_a_misspelt_option_is_refused_with_the_valid_ones(pce, build):
    from ansible.errors import AnsibleParserError

    pce.add(workload(pce, {"env": "prod"}), workload(pce, {"env": "dev"}))
    # `filtres` used to be ignored: the inventory then held every workload.
    with pytest.raises(AnsibleParserError) as raised:
        build(filtres={"labels": [{"env": "prod"}]})
    message = str(raised.value)
    assert "unknown option filtres in " in message
    assert "the valid options are " in message
    for valid in ("filters", "hostnames", "pce_host", "pce_hostname", "keyed_groups", "cache_plugin", "plugin"):
        assert valid in message.split("the valid options are ", 1)[1].split(", ")
    assert pce.requests == []


def test_every_option_and_alias_is_accepted(pce, build):
    pce.add(workload(pce))
    connection = pce.connection()
    connection["pce_hostname"] = connection.pop("pce_host")
    built = build(connection=connection, filters={}, strict=False, leading_separator=True, use_extra_vars=False)
    assert len(built.hosts) == 1


def test_validate_certs_false_warns(pce, build):
    pce.add(workload(pce))
    assert build().warnings == []
    built = build(flush_cache=True, validate_certs=False)
    assert len(built.hosts) == 1
    [warning] = built.warnings
    assert "validate_certs is false: the PCE's TLS certificate is not checked" in warning
