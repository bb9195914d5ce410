"""The microseg.illumio.pce inventory plugin (and playbooks/sync_labels.yml) against the lab PCE.

The demo org (`pcelab demo-org`, tools/pcelab/src/pcelab/demo_org.py: unmanaged workloads with IPv6, link-local,
loopback and ignored interfaces, a custom label key, a workload without a host name, and one managed workload
activated through the lab's agent API) is seeded once; ansible-inventory runs with the collection from this checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "playbooks" / "inventory" / "demo.pce.yml"
SYNC_PLAYBOOK = REPO / "playbooks" / "sync_labels.yml"
BIN = Path(sys.executable).parent
TIMEOUT_SECONDS = 300


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(scope="module")
def demo_org(lab):
    from pcelab.demo_org import Client as SeedingClient
    from pcelab.demo_org import seed

    client = SeedingClient(lab.environment())
    seed(client)
    return client


@pytest.fixture(scope="module")
def ansible(lab, collections_path, tmp_path_factory):
    """Run an Ansible command-line tool with the lab's connection variables and this checkout's collection."""
    home = tmp_path_factory.mktemp("ansible-home")

    def run(tool: str, *args: str, env: dict[str, str | None] | None = None) -> Run:
        environment = {**os.environ, **lab.environment(), **(env or {})}
        environment = {name: value for name, value in environment.items() if value is not None}
        environment.update(
            ANSIBLE_COLLECTIONS_PATH=str(collections_path),
            ANSIBLE_HOME=str(home),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_RETRY_FILES_ENABLED="0",
        )
        done = subprocess.run(
            [str(BIN / tool), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    return run


@pytest.fixture
def config(tmp_path):
    """Write an inventory configuration (the demo one plus changes) and return its path."""

    def write(name: str = "test.pce.yml", **changes) -> Path:
        settings = yaml.safe_load(DEMO_CONFIG.read_text())
        settings.update(changes)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(settings))
        return path

    return write


def plain(value):
    """--list output with ansible-core's unsafe-string markers ({"__ansible_unsafe": text}) removed."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def parsed(run: Run) -> None:
    """The source was parsed. (Other warnings may come from workloads other tests of the session made.)"""
    assert run.returncode == 0, run.output
    assert "Failed to parse" not in run.stderr, run.stderr
    assert "Unable to parse" not in run.stderr, run.stderr


def listing(run: Run) -> dict:
    parsed(run)
    return plain(json.loads(run.stdout))


def group_hosts(data: dict, group: str) -> set[str]:
    return set(data.get(group, {}).get("hosts", []))


def graph_groups(text: str) -> dict[str, set[str]]:
    """`ansible-inventory --graph` output as group -> hosts (direct members)."""
    groups: dict[str, set[str]] = {}
    stack: list[str] = []
    for line in text.splitlines():
        depth = line.count("|")
        name = line.split("--", 1)[-1] if "--" in line else line
        if name.startswith("@"):
            group = name[1:].rstrip(":")
            stack[depth:] = [group]
            groups.setdefault(group, set())
        elif stack:
            groups[stack[depth - 1]].add(name)
    return groups


# --- --graph and --list of the demo org ----------------------------------------------------------------------------
def test_graph_of_the_demo_org(demo_org, ansible):
    run = ansible("ansible-inventory", "-i", str(DEMO_CONFIG), "--graph")
    parsed(run)
    groups = graph_groups(run.stdout)
    assert {"web1.demo.example", "web2.demo.example", "v6only.demo.example"} <= groups["role_web"]
    prod = {"web1.demo.example", "db1.demo.example", "v6only.demo.example", "crm-app.demo.example"}
    assert prod <= groups["env_prod"]
    assert groups["bu_retail"] >= {"crm-app.demo.example"}  # a custom label key
    assert groups["loc_dc_2__Paris_"] >= {"v6only.demo.example"}  # sanitised
    assert "web1.demo.example" in groups["managed"]
    assert {"web2.demo.example", "printer-gateway"} <= groups["unmanaged"]
    assert {"web1.demo.example", "db1.demo.example"} <= groups["online"]
    assert "printer-gateway" in groups["offline"]
    assert "db1.demo.example" in groups["enforcement_mode_full"]
    assert "v6only.demo.example" in groups["enforcement_mode_selective"]
    assert "crm-app.demo.example" in groups["enforcement_mode_idle"]
    # the demo configuration's own groups and keyed groups
    assert groups["prod_web"] >= {"web1.demo.example", "v6only.demo.example"}
    assert "web2.demo.example" not in groups["prod_web"]
    assert groups["ven_21_5_20_8451"] >= {"web1.demo.example"}


def test_list_hostvars_of_the_demo_org(demo_org, ansible):
    data = listing(ansible("ansible-inventory", "-i", str(DEMO_CONFIG), "--list"))
    hostvars = data["_meta"]["hostvars"]

    web1 = hostvars["web1.demo.example"]
    assert web1["ansible_host"] == "10.10.1.11"
    assert web1["illumio_href"].startswith("/orgs/1/workloads/")
    assert web1["illumio_labels"] == {"role": "web", "app": "shop", "env": "prod", "loc": "dc1"}
    assert web1["illumio_managed"] is True
    assert web1["illumio_online"] is True
    assert web1["illumio_enforcement_mode"] == "visibility_only"
    assert web1["illumio_visibility_level"] == "flow_summary"
    assert web1["illumio_agent"] == {"version": "21.5.20-8451", "status": "active", "health": "ok"}
    assert web1["illumio_os_id"] == "ubuntu-x86_64-jammy"
    assert web1["illumio_os_detail"] == "5.15.0-91-generic (Ubuntu 22.04.3 LTS)"
    assert web1["illumio_name"] == "Web 1"
    assert web1["illumio_label_list"] == ["app=shop", "env=prod", "loc=dc1", "role=web"]  # compose

    web2 = hostvars["web2.demo.example"]
    assert web2["ansible_host"] == "10.10.2.12"  # IPv4 preferred; the IPv6 and link-local ones are listed first
    assert web2["illumio_managed"] is False
    assert web2["illumio_agent"] == {"version": None, "status": None, "health": None}
    assert web2["illumio_data_center"] == "dc1"
    assert [entry["address"] for entry in web2["illumio_interfaces"]] == [
        "fd00::10:12",
        "fe80::250:56ff:fe00:12",
        "10.10.2.12",
    ]

    db1 = hostvars["db1.demo.example"]
    assert db1["ansible_host"] == "10.10.1.21"  # not lo, not the ignored docker0
    assert db1["illumio_ignored_interface_names"] == ["docker0"]
    assert db1["illumio_public_ip"] == "203.0.113.21"

    assert hostvars["v6only.demo.example"]["ansible_host"] == "2001:db8:20::31"  # link-local skipped
    assert hostvars["printer-gateway"]["illumio_hostname"] is None  # named by its PCE name
    assert "crm-app.demo.example" in group_hosts(data, "bu_retail")
    assert "web1.demo.example" in group_hosts(data, "managed")


def test_filters_are_evaluated_by_the_pce(demo_org, ansible, config):
    path = config(
        filters={
            "labels": [{"env": "prod", "role": ["web", "db"]}],
            "managed": False,
            "enforcement_mode": ["full", "selective"],
        },
    )
    data = listing(ansible("ansible-inventory", "-i", str(path), "--list"))
    assert set(data["_meta"]["hostvars"]) == {"db1.demo.example", "v6only.demo.example"}


def test_include_exclude_and_options(demo_org, ansible, config):
    path = config(
        filters={"hostname": "demo.example"},
        include=[{"env": "prod"}],
        exclude=[{"role": "db"}, "pce_managed"],
        hostnames=["ipv4", "href"],
        group_prefix="pce_",
        vars_prefix="pce_",
        ansible_host_prefer="ipv6",
        groups={},
        compose={},
        keyed_groups=[],
    )
    data = listing(ansible("ansible-inventory", "-i", str(path), "--list"))
    hostvars = data["_meta"]["hostvars"]
    crm_app = hostvars["10.10.3.41"]  # named by its first IPv4 address
    assert crm_app["pce_labels"]["bu"] == "retail"
    v6only = next(value for name, value in hostvars.items() if name.startswith("/orgs/1/workloads/"))  # no IPv4
    assert v6only["pce_hostname"] == "v6only.demo.example"
    assert v6only["ansible_host"] == "2001:db8:20::31"
    assert len(hostvars) == 2
    assert "10.10.3.41" in group_hosts(data, "pce_bu_retail")


def test_cache_serves_the_second_run(demo_org, ansible, config, tmp_path):
    path = config(cache=True, cache_plugin="ansible.builtin.jsonfile", cache_connection=str(tmp_path / "cache"))
    first = listing(ansible("ansible-inventory", "-i", str(path), "--list"))
    extra = demo_org.bulk_create([{"hostname": "cache-probe.demo.example", "labels": []}])
    try:
        cached = listing(ansible("ansible-inventory", "-i", str(path), "--list"))
        assert "cache-probe.demo.example" not in cached["_meta"]["hostvars"]
        assert cached["_meta"]["hostvars"]["web1.demo.example"] == first["_meta"]["hostvars"]["web1.demo.example"]
        if "--flush-cache" in ansible("ansible-inventory", "--help").stdout:
            flushed = listing(ansible("ansible-inventory", "-i", str(path), "--list", "--flush-cache"))
        else:  # ansible-inventory of older ansible-core versions cannot flush: empty the cache instead
            for cached in (tmp_path / "cache").iterdir():
                cached.unlink()
            flushed = listing(ansible("ansible-inventory", "-i", str(path), "--list"))
        assert "cache-probe.demo.example" in flushed["_meta"]["hostvars"]
    finally:
        demo_org.call("DELETE", f"{demo_org.base}/api/v2{extra[0]}")


def test_deleted_workloads_become_hosts_only_with_include_deleted(demo_org, ansible, config):
    created = demo_org.bulk_create([{"hostname": "deleted-probe.demo.example", "labels": []}])
    demo_org.call("DELETE", f"{demo_org.base}/api/v2{created[0]}")
    settings = {"filters": {"hostname": "probe.demo.example"}, "groups": {"gone": "illumio_deleted"}}
    default = listing(ansible("ansible-inventory", "-i", str(config("default.pce.yml", **settings)), "--list"))
    assert "deleted-probe.demo.example" not in default["_meta"]["hostvars"]

    path = config("deleted.pce.yml", include_deleted=True, **settings)
    data = listing(ansible("ansible-inventory", "-i", str(path), "--list"))
    hostvars = data["_meta"]["hostvars"]["deleted-probe.demo.example"]
    assert hostvars["illumio_deleted"] is True
    assert hostvars["illumio_href"] == created[0]
    assert "deleted-probe.demo.example" in group_hosts(data, "gone")
    # Workloads that exist are listed as well, not deleted.
    web1 = listing(ansible("ansible-inventory", "-i", str(config("all.pce.yml", include_deleted=True)), "--list"))
    assert web1["_meta"]["hostvars"]["web1.demo.example"]["illumio_deleted"] is False


# --- secrets and TLS --------------------------------------------------------------------------------------------
def test_secret_never_in_verbose_output(demo_org, ansible, lab):
    run = ansible("ansible-inventory", "-i", str(DEMO_CONFIG), "--list", "-vvv")
    assert run.returncode == 0, run.output
    assert "web1.demo.example" in run.stdout
    assert lab.api_key_secret not in run.output


def test_secret_in_the_configuration_file_stays_out_of_output(demo_org, ansible, config, lab):
    path = config(api_key_secret=lab.api_key_secret, api_key_username=lab.api_key_username)
    run = ansible(
        "ansible-inventory",
        "-i",
        str(path),
        "--graph",
        "-vvv",
        env={"ILLUMIO_API_KEY_SECRET": None, "ILLUMIO_API_KEY_USERNAME": None},
    )
    assert run.returncode == 0, run.output
    assert "web1.demo.example" in run.stdout
    assert lab.api_key_secret not in run.output


def test_wrong_secret_fails_clearly_without_echoing_it(demo_org, ansible):
    wrong = "0123456789abcdef-not-the-secret-fedcba9876543210"
    run = ansible(
        "ansible-inventory",
        "-i",
        str(DEMO_CONFIG),
        "--list",
        "-vvv",
        env={"ILLUMIO_API_KEY_SECRET": wrong, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"},
    )
    assert run.returncode != 0
    assert "authentication failed" in run.output.lower()
    assert wrong not in run.output


@pytest.mark.parametrize("ca", ["system", "other"])
def test_untrusted_certificate_fails_clearly(demo_org, ansible, tmp_path, ca):
    """Without the lab's CA (system trust store only, or another CA) the PCE is refused: TLS is verified."""
    env = {"ILLUMIO_PCE_CA_PATH": None, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true"}
    if ca == "other":
        other = tmp_path / "other-ca.pem"
        other.write_bytes(_other_ca())
        env["ILLUMIO_PCE_CA_PATH"] = str(other)
    run = ansible("ansible-inventory", "-i", str(DEMO_CONFIG), "--list", env=env)
    assert run.returncode != 0
    assert "certificate verification failed" in run.output
    assert "ILLUMIO_PCE_CA_PATH" in run.output
    assert "Traceback" not in run.output
    assert "web1.demo.example" not in run.stdout


def _other_ca() -> bytes:
    """A CA certificate (PEM) that signed nothing the lab serves."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the lab CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def test_strings_from_the_pce_are_not_templated_in_plays(demo_org, ansible, config, tmp_path):
    created = demo_org.bulk_create(
        [{"hostname": "templated.demo.example", "name": "{{ 6 * 7 }}", "os_detail": "{{ lookup('pipe', 'id') }}"}]
    )
    try:
        path = config(
            filters={"hostname": "templated.demo.example"},
            compose={"ansible_connection": "'local'", "ansible_python_interpreter": f"'{sys.executable}'"},
        )
        playbook = tmp_path / "show.yml"
        playbook.write_text(
            "- name: Show what the PCE said\n"
            "  hosts: all\n"
            "  gather_facts: false\n"
            "  tasks:\n"
            "    - name: Name and OS detail\n"
            "      ansible.builtin.debug:\n"
            "        msg: 'name={{ illumio_name }} os={{ illumio_os_detail }}'\n"
        )
        run = ansible("ansible-playbook", "-i", str(path), str(playbook))
        assert run.returncode == 0, run.output
        assert "name={{ 6 * 7 }} os={{ lookup('pipe', 'id') }}" in run.stdout
        assert "uid=" not in run.stdout
    finally:
        demo_org.call("DELETE", f"{demo_org.base}/api/v2{created[0]}")


# --- playbooks/sync_labels.yml --------------------------------------------------------------------------------------
@pytest.mark.skipif(
    not (REPO / "plugins" / "modules" / "workload.py").exists(),
    reason="playbooks/sync_labels.yml needs the microseg.illumio.workload module (objects issue), not in this tree yet",
)
def test_sync_labels_pushes_inventory_labels_to_the_pce(demo_org, ansible, config, tmp_path):
    # tier is no built-in label key: the PCE takes labels of it only once it is a label dimension.
    dimension = ansible(
        "ansible",
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        "-m",
        "microseg.illumio.label_dimension",
        "-a",
        "key=tier display_name=Tier",
    )
    assert dimension.returncode == 0, dimension.output
    hrefs = demo_org.ensure_labels([("role", "app"), ("env", "staging")])
    created = demo_org.bulk_create(
        [{"hostname": "sync-target.demo.example", "labels": [{"href": hrefs[("role", "app")]}]}]
    )
    inventory = tmp_path / "cmdb.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    },
                    "children": {
                        "cmdb": {
                            "hosts": {
                                "sync-target.demo.example": {
                                    "illumio_sync_labels": {"env": "staging", "tier": "sync-gold"},
                                },
                                "not-on-the-pce.demo.example": {"illumio_sync_labels": {"env": "prod"}},
                            }
                        }
                    },
                }
            }
        )
    )
    sync = ("ansible-playbook", "-i", str(inventory), str(SYNC_PLAYBOOK), "-e", "illumio_sync_hosts=cmdb")
    pce_view = config(filters={"hostname": "sync-target.demo.example"}, groups={}, keyed_groups=[], compose={})
    try:
        check = ansible(*sync, "--check", "--diff")
        assert check.returncode == 0, check.output
        assert "no workload with host name not-on-the-pce.demo.example" in check.stdout
        assert "the PCE lacks the labels tier=sync-gold" in check.stdout  # not created in check mode
        before = listing(ansible("ansible-inventory", "-i", str(pce_view), "--list"))
        assert before["_meta"]["hostvars"]["sync-target.demo.example"]["illumio_labels"] == {"role": "app"}

        real = ansible(*sync)
        assert real.returncode == 0, real.output
        after = listing(ansible("ansible-inventory", "-i", str(pce_view), "--list"))
        assert after["_meta"]["hostvars"]["sync-target.demo.example"]["illumio_labels"] == {
            "role": "app",  # purge_labels defaults to false: keys not named stay
            "env": "staging",
            "tier": "sync-gold",
        }
        assert "sync-target.demo.example" in group_hosts(after, "tier_sync_gold")

        again = ansible(*sync)
        assert again.returncode == 0, again.output
        assert "changed=0" in again.stdout

        purge = ansible(*sync, "-e", "illumio_sync_purge_labels=true")
        assert purge.returncode == 0, purge.output
        purged = listing(ansible("ansible-inventory", "-i", str(pce_view), "--list"))
        assert purged["_meta"]["hostvars"]["sync-target.demo.example"]["illumio_labels"] == {
            "env": "staging",
            "tier": "sync-gold",
        }
    finally:
        demo_org.call("DELETE", f"{demo_org.base}/api/v2{created[0]}")
