"""`ansible-galaxy collection build` from a clean copy of the checkout, installed offline into a collections path of
its own, then used from there: every plugin's documentation, every Python plugin imported, the roles' argument
specs, a smoke playbook against a lab PCE and the pce inventory plugin. Catches files missing from the build
(galaxy.yml build_ignore, files git does not know) and files that should not be in it."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import BIN, REPO, clean_environment, run

SMOKE_PLAYBOOK = Path(__file__).with_name("smoke.yml")
# Development-only content that must never ship in the tarball.
NOT_SHIPPED = (
    ".venv/",
    ".build/",
    ".git/",
    ".cache/",
    "tools/pcelab/tests/",
    "requirements/",
    "tests/unit/",
    "tests/integration/",
    "tests/hosts/",
    "tests/hostlab/",
    "tests/vensim/",
    "tests/bench/",
    "tests/release/",
    "extensions/molecule/",
    "Makefile",
    "ruff.toml",
    "pytest.ini",
)
LAB_SHIPPED = (
    "tools/pcelab/pyproject.toml",
    "tools/pcelab/README.md",
    "tools/pcelab/AGENT_API.md",
    "tools/pcelab/src/",
)
PLUGIN_FOLDERS = {"module": "modules", "inventory": "inventory", "filter": "filter"}


def checkout_plugins(plugin_type: str) -> set[str]:
    """The plugins of one type this checkout has (what the build should carry). A filter plugin file may hold
    several filters, each documented by a .yml file of its own name."""
    folder = REPO / "plugins" / PLUGIN_FOLDERS[plugin_type]
    pattern = "*.yml" if plugin_type == "filter" else "*.py"
    return {f"microseg.illumio.{path.stem}" for path in folder.glob(pattern) if not path.name.startswith("_")}


@pytest.fixture(scope="module")
def env(installed_collections, ansible_home, lab):
    return clean_environment(installed_collections, ansible_home, lab.environment())


def test_tarball_ships_the_collection_and_nothing_of_the_development_tree(collection_tarball):
    with tarfile.open(collection_tarball) as tar:
        names = tar.getnames()
        links = {member.name: member.linkname for member in tar.getmembers() if member.issym()}
        files = {member.name for member in tar.getmembers() if member.isfile()}
    leaked = sorted(
        name for name in names for prefix in NOT_SHIPPED if name == prefix.rstrip("/") or name.startswith(prefix)
    )
    assert not leaked, f"development files in the tarball: {leaked[:20]}"
    # Of tools/, only the lab PCE ships (installable with pip from an installed collection).
    tools = sorted(name for name in files if name.startswith("tools/"))
    assert tools and all(name.startswith(LAB_SHIPPED) for name in tools), tools
    assert "tools/pcelab/pyproject.toml" in names and "tools/pcelab/src/pcelab/cli.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert not [name for name in names if name.endswith(".tar.gz")]
    for needed in (
        "MANIFEST.json",
        "FILES.json",
        "meta/runtime.yml",
        "meta/execution-environment.yml",
        "meta/ee-requirements.txt",
        "meta/ee-bindep.txt",
        "plugins/module_utils/pce/client.py",
        "plugins/doc_fragments/pce.py",
        "playbooks/demo.yml",
        "playbooks/policy/three_tier.yml",
        "roles/ven/meta/argument_specs.yml",
        "docs/awx/credential_type_illumio_pce.yml",
    ):
        assert needed in names, f"{needed} is missing from {collection_tarball.name}"
    # ansible-builder introspects meta/execution-environment.yml relative to the collection root: the links carry.
    assert links.get("ee-requirements.txt") == "meta/ee-requirements.txt"
    assert links.get("ee-bindep.txt") == "meta/ee-bindep.txt"


def test_only_the_clean_install_is_seen(env, workdir, installed_collections):
    listed = json.loads(run([BIN / "ansible-galaxy", "collection", "list", "--format", "json"], workdir, env).stdout)
    holding = sorted(path for path, collections in listed.items() if "microseg.illumio" in collections)
    assert holding == [str(installed_collections / "ansible_collections")], listed


@pytest.mark.parametrize("plugin_type", sorted(PLUGIN_FOLDERS))
def test_every_plugin_is_installed_and_documented(env, workdir, plugin_type):
    listed = json.loads(
        run([BIN / "ansible-doc", "-t", plugin_type, "-l", "microseg.illumio", "--json"], workdir, env).stdout
    )
    expected = checkout_plugins(plugin_type)
    assert expected <= set(listed), f"not in the installed collection: {sorted(expected - set(listed))}"
    docs = json.loads(run([BIN / "ansible-doc", "-t", plugin_type, "--json", *sorted(listed)], workdir, env).stdout)
    undocumented = sorted(name for name in listed if not (docs.get(name) or {}).get("doc"))
    assert not undocumented, f"no documentation from the installed collection: {undocumented}"


def test_every_python_plugin_imports_from_the_install(env, workdir, installed_collection):
    """ansible-doc reads module docs without importing them: import every plugin and module_utils file, so that
    a module_utils file left out of the build is found."""
    modules = sorted(
        ".".join(
            (
                "ansible_collections",
                "microseg",
                "illumio",
                *path.relative_to(installed_collection).with_suffix("").parts,
            )
        )
        for path in (installed_collection / "plugins").rglob("*.py")
        if path.name != "__init__.py"
    )
    assert len(modules) > 30
    script = (
        "import importlib, json, sys\n"
        "root = sys.argv[1]\n"
        "sys.path.insert(0, root)\n"
        "bad = {}\n"
        "for name in sys.argv[2:]:\n"
        "    try:\n"
        "        module = importlib.import_module(name)\n"
        "        if not module.__file__.startswith(root):\n"
        "            bad[name] = 'imported from ' + module.__file__\n"
        "    except Exception as error:\n"
        "        bad[name] = repr(error)\n"
        "print(json.dumps(bad))\n"
    )
    done = run([sys.executable, "-I", "-c", script, env["ANSIBLE_COLLECTIONS_PATH"], *modules], workdir, env)
    assert json.loads(done.stdout) == {}


def test_roles_and_their_argument_specs(env, workdir):
    listed = json.loads(
        run([BIN / "ansible-doc", "-t", "role", "-l", "microseg.illumio", "--json"], workdir, env).stdout
    )
    expected = {f"microseg.illumio.{path.name}" for path in (REPO / "roles").iterdir() if path.is_dir()}
    assert expected <= set(listed), sorted(expected - set(listed))
    docs = json.loads(run([BIN / "ansible-doc", "-t", "role", "--json", *sorted(expected)], workdir, env).stdout)
    for role in expected:
        entry_points = docs[role]["entry_points"]
        assert entry_points["main"]["options"], f"{role}: no options in its argument spec"


def test_smoke_playbook_and_inventory_from_the_install(env, workdir, tmp_path, installed_collection):
    played = run(
        [BIN / "ansible-playbook", "-i", "localhost,", "-c", "local", SMOKE_PLAYBOOK], workdir, env, check=False
    )
    assert played.returncode == 0, played.stdout + played.stderr
    assert "failed=0" in played.stdout

    source = tmp_path / "smoke.pce.yml"
    source.write_text("plugin: microseg.illumio.pce\nhostnames: [hostname, name]\n")
    inventory = json.loads(run([BIN / "ansible-inventory", "-i", source, "--list"], workdir, env).stdout)
    assert "smoke1.example.com" in inventory["role_smoke_web"]["hosts"]
    assert "smoke1.example.com" in inventory["env_smoke_release"]["hosts"]
    host = inventory["_meta"]["hostvars"]["smoke1.example.com"]
    assert host["illumio_href"]
    assert "192.0.2.10" in json.dumps(host["ansible_host"])  # --list may mark it unsafe: {"__ansible_unsafe": ...}

    # The AWX inventory source example, as shipped: grouped by label and by VEN version.
    example = installed_collection / "docs" / "awx" / "illumio.pce.yml"
    inventory = json.loads(run([BIN / "ansible-inventory", "-i", example, "--list"], workdir, env).stdout)
    assert "smoke1.example.com" in inventory["role_smoke_web"]["hosts"]
    assert "illumio_label_list" in inventory["_meta"]["hostvars"]["smoke1.example.com"]

    # A playbook shipped in the collection, found by its FQCN in the install.
    shipped = run(
        [BIN / "ansible-playbook", "-i", "localhost,", "--syntax-check", "microseg.illumio.policy_as_code"],
        workdir,
        env,
        check=False,
    )
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
