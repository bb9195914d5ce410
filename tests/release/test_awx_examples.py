"""The AWX / AAP examples in docs/awx agree with the playbooks they run and with the play in docs/awx/README.md that
applies them (every option they set is one that play passes on)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

AWX = REPO / "docs" / "awx"
README = (AWX / "README.md").read_text()
JOB_TEMPLATES = yaml.safe_load((AWX / "job_templates.yml").read_text())["illumio_job_templates"]
INVENTORY = yaml.safe_load((AWX / "inventory_source.yml").read_text())
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
# Where a variable a template sets may be read: the playbook, or the roles it runs.
ROLE_FILES = [*REPO.glob("roles/*/defaults/*.yml"), *REPO.glob("roles/*/meta/argument_specs.yml")]


def template_variables(template: dict) -> set[str]:
    survey = {question["variable"] for question in template.get("survey_spec", {}).get("spec", [])}
    return survey | set(template.get("extra_vars") or {})


def test_every_playbook_has_a_job_template():
    playbooks = {template["playbook"] for template in JOB_TEMPLATES}
    assert playbooks >= {"playbooks/pair.yml", "playbooks/upgrade.yml", "playbooks/enforce.yml", "playbooks/flows.yml"}
    assert len({template["name"] for template in JOB_TEMPLATES}) == len(JOB_TEMPLATES)


@pytest.mark.parametrize("template", JOB_TEMPLATES, ids=lambda template: template["playbook"])
def test_job_template_matches_its_playbook(template):
    playbook = REPO / template["playbook"]
    if not playbook.exists():
        pytest.fail(f"{template['playbook']} does not exist")
    readable = playbook.read_text() + "".join(path.read_text() for path in ROLE_FILES)
    unknown = sorted(name for name in template_variables(template) if not re.search(rf"\b{name}\b", readable))
    assert not unknown, f"{template['name']}: the playbook and its roles never read {unknown}"
    # Nothing secret is asked or passed: the PCE connection comes from the credential.
    assert not [name for name in template_variables(template) if re.search("secret|password|key$", name)]
    assert "Illumio PCE - production" in template["credentials"]


@pytest.mark.parametrize("template", JOB_TEMPLATES, ids=lambda template: template["playbook"])
def test_job_template_options_are_the_ones_the_readme_play_passes(template):
    missing = sorted(option for option in template if f"item.{option}" not in README)
    assert not missing, f"{template['name']}: docs/awx/README.md's play drops {missing}"


@pytest.mark.parametrize("template", JOB_TEMPLATES, ids=lambda template: template["playbook"])
def test_survey_is_well_formed(template):
    survey = template["survey_spec"]
    assert survey["name"] and survey["description"]
    for question in survey["spec"]:
        assert {"question_name", "variable", "type", "required"} <= set(question), question
        assert question["type"] in SURVEY_TYPES, question
        if question["type"] == "multiplechoice":
            choices = question["choices"].split("\n")
            assert "default" not in question or question["default"] in choices, question


def test_inventory_source_example():
    source = INVENTORY["illumio_inventory_source"]
    assert source["inventory"] == INVENTORY["illumio_inventory"]["name"]
    path = REPO / source["source_path"]
    assert path.name.endswith((".pce.yml", ".pce.yaml")), "the pce plugin only takes *.pce.yml files"
    assert yaml.safe_load(path.read_text())["plugin"] == "microseg.illumio.pce"
    for name, options in INVENTORY.items():
        missing = sorted(option for option in options if f"{name}.{option}" not in README)
        assert not missing, f"docs/awx/README.md's play drops {name} options {missing}"


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if target.startswith("http"):
            continue
        assert (AWX / target).resolve().exists(), target
    assert Path(REPO / "meta" / "execution-environment.yml").is_file()
