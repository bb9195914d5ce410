"""The label module against the fake PCE: idempotence, check mode, diff, rename, removal and failures."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import label
from module_runner import run_module


def run(fake_pce, check_mode=False, diff=False, **args):
    return run_module(label.main, fake_pce.connection(**args), check_mode=check_mode, diff=diff)


def test_check_mode_predicts_creation_without_posting(fake_pce):
    result = run(fake_pce, check_mode=True, diff=True, key="role", value="web")
    assert result["changed"] is True
    assert result["diff"] == {
        "before": {},
        "after": {
            "href": None,
            "key": "role",
            "value": "web",
            "external_data_set": None,
            "external_data_reference": None,
        },
    }
    assert fake_pce.changes() == []
    assert fake_pce.labels == {}


def test_creates_with_the_pce_payload_then_is_idempotent(fake_pce):
    args = {"key": "env", "value": "prod", "external_data_set": "cmdb", "external_data_reference": "ENV-1"}
    created = run(fake_pce, **args)
    assert created["changed"] is True
    assert created["label"] == {"href": "/orgs/1/labels/1", **args}
    [post] = fake_pce.changes()
    assert (post.method, post.path, post.body) == ("POST", "/api/v2/orgs/1/labels", args)

    again = run(fake_pce, **args)
    again_check = run(fake_pce, check_mode=True, **args)
    assert again["changed"] is False
    assert again_check["changed"] is False
    assert again["label"] == created["label"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert len(fake_pce.changes()) == 1


def test_post_body_has_only_what_was_given(fake_pce):
    run(fake_pce, key="loc", value="dc1")
    assert fake_pce.changes()[0].body == {"key": "loc", "value": "dc1"}


def test_exact_match_despite_the_pce_partial_filter(fake_pce):
    web2 = fake_pce.add_label("role", "web2")
    fake_pce.add_label("role", "WEB")
    created = run(fake_pce, key="role", value="web")
    assert created["changed"] is True
    assert created["label"]["href"] not in (web2["href"],)
    web = fake_pce.find("role", "web")
    # Now the PCE's filter value=web returns web, web2 and WEB: still exactly one is ours.
    assert run(fake_pce, key="role", value="web")["label"]["href"] == web["href"]
    assert run(fake_pce, key="role", value="web2")["changed"] is False
    assert [r.method for r in fake_pce.changes()] == ["POST"]


def test_same_value_under_another_key_is_another_label(fake_pce):
    fake_pce.add_label("app", "web")
    assert run(fake_pce, key="role", value="web")["changed"] is True


def test_updates_only_the_fields_given_and_shows_the_difference(fake_pce):
    existing = fake_pce.add_label("env", "prod", external_data_set="cmdb", external_data_reference="ENV-1")
    result = run(fake_pce, diff=True, key="env", value="prod", external_data_reference="ENV-2")
    assert result["changed"] is True
    assert result["diff"]["before"]["external_data_reference"] == "ENV-1"
    assert result["diff"]["after"]["external_data_reference"] == "ENV-2"
    assert result["label"]["external_data_set"] == "cmdb"
    [put] = fake_pce.changes()
    assert (put.method, put.path, put.body) == (
        "PUT",
        "/api/v2" + existing["href"],
        {"external_data_reference": "ENV-2"},
    )
    assert run(fake_pce, key="env", value="prod", external_data_reference="ENV-2")["changed"] is False


def test_update_in_check_mode_changes_nothing(fake_pce):
    fake_pce.add_label("env", "prod", external_data_set="cmdb")
    result = run(fake_pce, check_mode=True, key="env", value="prod", external_data_set="ipam")
    assert result["changed"] is True
    assert result["label"]["external_data_set"] == "ipam"
    assert fake_pce.changes() == []
    assert fake_pce.find("env", "prod")["external_data_set"] == "cmdb"


def test_rename_keeps_the_href(fake_pce):
    stage = fake_pce.add_label("env", "stage")
    preview = run(fake_pce, check_mode=True, key="env", value="stage", new_value="staging")
    assert preview["changed"] is True
    assert fake_pce.changes() == []

    renamed = run(fake_pce, diff=True, key="env", value="stage", new_value="staging")
    assert renamed["changed"] is True
    assert renamed["label"]["href"] == stage["href"]
    assert renamed["label"]["value"] == "staging"
    assert renamed["diff"]["before"]["value"] == "stage"
    assert renamed["diff"]["after"]["value"] == "staging"
    [put] = fake_pce.changes()
    assert (put.method, put.path, put.body) == ("PUT", "/api/v2" + stage["href"], {"value": "staging"})

    again = run(fake_pce, key="env", value="stage", new_value="staging")
    assert again["changed"] is False
    assert again["label"]["href"] == stage["href"]


def test_rename_when_only_the_new_value_exists_changes_nothing(fake_pce):
    fake_pce.add_label("env", "staging")
    fake_pce.add_label("env", "stage-old")  # the partial filter returns it for value=stage; it is not "stage"
    assert run(fake_pce, key="env", value="stage", new_value="staging")["changed"] is False
    assert fake_pce.changes() == []


def test_rename_when_both_exist_fails_clearly(fake_pce):
    old = fake_pce.add_label("env", "stage")
    new = fake_pce.add_label("env", "staging")
    result = run(fake_pce, key="env", value="stage", new_value="staging")
    assert result["failed"] is True
    assert "both exist" in result["msg"]
    assert old["href"] in result["msg"] and new["href"] in result["msg"]
    assert fake_pce.changes() == []


def test_rename_when_neither_exists_creates_the_new_value(fake_pce):
    result = run(fake_pce, key="env", value="stage", new_value="staging")
    assert result["changed"] is True
    assert fake_pce.changes()[0].body == {"key": "env", "value": "staging"}


def test_absent_deletes_once(fake_pce):
    existing = fake_pce.add_label("app", "legacy")
    fake_pce.add_label("app", "legacy-2")
    preview = run(fake_pce, check_mode=True, diff=True, key="app", value="legacy", state="absent")
    assert preview["changed"] is True
    assert preview["diff"]["before"]["href"] == existing["href"]
    assert preview["diff"]["after"] == {}
    assert fake_pce.changes() == []

    removed = run(fake_pce, key="app", value="legacy", state="absent")
    assert removed["changed"] is True
    assert removed["label"] == {}
    [delete] = fake_pce.changes()
    assert (delete.method, delete.path) == ("DELETE", "/api/v2" + existing["href"])
    assert fake_pce.find("app", "legacy-2") is not None

    assert run(fake_pce, key="app", value="legacy", state="absent")["changed"] is False


def test_absent_when_missing_is_ok(fake_pce):
    result = run(fake_pce, key="app", value="never-was", state="absent")
    assert result == {"changed": False, "label": {}, "diff": {"before": {}, "after": {}}}


def test_label_in_use_fails_with_the_pce_reason(fake_pce):
    used = fake_pce.add_label("role", "db")
    fake_pce.in_use.add(used["href"])
    result = run(fake_pce, key="role", value="db", state="absent")
    assert result["failed"] is True
    assert result["msg"].startswith("PCE rejected the request: Label is still in use")
    assert "(label_in_use)" in result["msg"]
    assert "Traceback" not in result["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"key": "role", "value": ""}, "value must not be empty"),
        ({"key": " ", "value": "web"}, "key must not be empty"),
        ({"key": "role", "value": "web", "new_value": ""}, "new_value must not be empty"),
        ({"key": "role", "value": "web", "new_value": "x", "state": "absent"}, "only goes with state=present"),
        ({"key": "role", "value": "web", "state": "gone"}, "state must be one of"),
        ({"key": "role"}, "missing required arguments: value"),
    ],
)
def test_bad_input_fails_before_touching_the_pce(fake_pce, args, message):
    result = run(fake_pce, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert fake_pce.changes() == []


def test_missing_connection_is_named(fake_pce):
    result = run_module(label.main, {"key": "role", "value": "web"})
    assert result["failed"] is True
    assert result["msg"] == (
        "missing PCE connection option(s): pce_host (or ILLUMIO_PCE_HOST), api_key_username "
        "(or ILLUMIO_API_KEY_USERNAME), api_key_secret (or ILLUMIO_API_KEY_SECRET)"
    )


def test_connection_from_the_environment(fake_pce, monkeypatch):
    monkeypatch.setenv("ILLUMIO_PCE_HOST", "https://127.0.0.1")
    monkeypatch.setenv("ILLUMIO_PCE_PORT", str(fake_pce.server.port))
    monkeypatch.setenv("ILLUMIO_PCE_ORG_ID", "1")
    monkeypatch.setenv("ILLUMIO_API_KEY_USERNAME", fake_pce.username)
    monkeypatch.setenv("ILLUMIO_API_KEY_SECRET", fake_pce.secret)
    monkeypatch.setenv("ILLUMIO_PCE_CA_PATH", str(fake_pce.server_ca))
    result = run_module(label.main, {"key": "role", "value": "web"})
    assert result["changed"] is True
    assert result["label"]["href"] == "/orgs/1/labels/1"


def test_wrong_secret_fails_clearly_without_echoing_it(fake_pce):
    wrong = "0123456789abcdef-not-the-secret-fedcba9876543210"
    result = run(fake_pce, api_key_secret=wrong, key="role", value="web")
    assert result["failed"] is True
    assert "authentication failed" in result["msg"]
    assert wrong not in str(result)
    assert fake_pce.secret not in str(result)


def test_untrusted_certificate_fails_clearly(fake_pce, tls_files):
    result = run(fake_pce, ca_path=str(tls_files.other_ca_cert), key="role", value="web")
    assert result["failed"] is True
    assert "certificate" in result["msg"]
    assert "ca_path" in result["msg"]
    assert fake_pce.requests == []


# --- issue 17 finding 5: no silent surprises ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"key": "role", "value": ["a", "b"]}, "value must be a single value, not a list (['a', 'b'])"),
        ({"key": {"role": "web"}, "value": "web"}, "key must be a single value, not a dict ({'role': 'web'})"),
        ({"key": "role", "value": "web", "new_value": ["x"]}, "new_value must be a single value, not a list"),
    ],
)
def test_a_list_or_dict_for_a_text_option_is_refused_not_stringified(fake_pce, args, message):
    # Ansible would make the label "['a', 'b']" of `value: [a, b]` without a word.
    result = run(fake_pce, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert fake_pce.requests == []
    assert fake_pce.labels == {}


def test_numbers_for_a_text_option_are_still_taken_as_text(fake_pce):
    created = run(fake_pce, key="loc", value=42)
    assert created["changed"] is True
    assert created["label"]["value"] == "42"


def test_validate_certs_false_warns(fake_pce, monkeypatch):
    from ansible.module_utils.basic import AnsibleModule

    warnings = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, warning: warnings.append(warning))
    run(fake_pce, key="role", value="web")
    assert warnings == []
    result = run(fake_pce, key="role", value="web", validate_certs=False)
    assert result["changed"] is False
    [warning] = warnings
    assert warning.startswith("validate_certs is false: the PCE's TLS certificate is not checked")
