"""meta/execution-environment.yml: `ansible-builder create` makes a complete build context from it (offline: the
collection comes from the built tarball), and ansible-builder's introspection of the collection installed in an EE
(what every EE build that includes microseg.illumio does) reads the same file and finds our dependencies."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import BIN, REPO, clean_environment, run

EE_FILE = REPO / "meta" / "execution-environment.yml"
BUILD = REPO / ".build"


def requirement_lines(path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def ee_context(collection_tarball, ansible_home, tmp_path_factory):
    """`ansible-builder create -f meta/execution-environment.yml --context .build/ee-context`, as `make ee-context`."""
    staged = BUILD / "ee" / "microseg-illumio.tar.gz"
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(collection_tarball, staged)
    context = BUILD / "ee-context"
    shutil.rmtree(context, ignore_errors=True)
    environment = clean_environment(tmp_path_factory.mktemp("no-collections"), ansible_home)
    done = run(
        [
            BIN / "ansible-builder",
            "create",
            "-f",
            EE_FILE.relative_to(REPO),
            "--context",
            context.relative_to(REPO),
            "--output-filename",
            "Containerfile",
        ],
        REPO,
        environment,
    )
    assert "Complete!" in done.stdout, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr, done.stdout + done.stderr
    return context


def test_definition_is_version_3_with_every_dependency_kind():
    definition = yaml.safe_load(EE_FILE.read_text())
    assert definition["version"] == 3
    assert definition["images"]["base_image"]["name"]
    assert {"ansible_core", "ansible_runner", "python", "system", "galaxy"} <= set(definition["dependencies"])


def test_create_makes_a_complete_build_context(ee_context):
    containerfile = (ee_context / "Containerfile").read_text()
    assert "FROM $EE_BASE_IMAGE AS base" in containerfile
    assert 'EE_BASE_IMAGE="registry.access.redhat.com/ubi9/ubi:latest"' in containerfile
    assert "ansible-core" in containerfile and "ansible-runner" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    build = ee_context / "_build"
    assert requirement_lines(build / "requirements.txt") == requirement_lines(REPO / "meta" / "ee-requirements.txt")
    assert requirement_lines(build / "bindep.txt") == requirement_lines(REPO / "meta" / "ee-bindep.txt")
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    [collection] = galaxy["collections"]
    # The galaxy stage installs from /build (the context's _build folder): the tarball must be there.
    assert (build / collection["name"]).is_file(), collection
    for script in ("assemble", "install-from-bindep", "introspect.py", "entrypoint"):
        assert (build / "scripts" / script).is_file()


def test_introspection_of_the_installed_collection(ee_context, ansible_home, tmp_path, workdir):
    """Do what the EE build's galaxy and builder stages do, offline: install the galaxy requirements from the build
    context, then introspect the collections path. Our meta/execution-environment.yml is read from the installed
    collection, whose python and system files are looked up from the collection root."""
    collections = tmp_path / "usr-share-ansible-collections"
    environment = clean_environment(collections, ansible_home)
    run(
        [BIN / "ansible-galaxy", "collection", "install", "--offline", "-r", "requirements.yml", "-p", collections],
        ee_context / "_build",
        environment,
    )
    installed = collections / "ansible_collections" / "microseg" / "illumio"
    assert (installed / "meta" / "execution-environment.yml").is_file()
    pip_out, bindep_out = tmp_path / "pip.txt", tmp_path / "bindep.txt"
    done = run(
        [
            BIN / "ansible-builder",
            "introspect",
            collections,
            "--write-pip",
            pip_out,
            "--write-bindep",
            bindep_out,
        ],
        workdir,
        environment,
    )
    assert "Expected requirements file not present" not in done.stdout + done.stderr
    report = yaml.safe_load(done.stdout.split("\n", 1)[1])  # after the "# Dependency data for ..." line
    ours = "# from collection microseg.illumio"
    assert [line.split("  #")[0] for line in report["python"]] == requirement_lines(
        REPO / "meta" / "ee-requirements.txt"
    )
    assert [line.split("  #")[0] for line in report["system"]] == requirement_lines(REPO / "meta" / "ee-bindep.txt")
    assert all(line.endswith(ours) for line in report["python"] + report["system"])
    assert "pywinrm" in pip_out.read_text()
    assert "openssh-client" in bindep_out.read_text()
