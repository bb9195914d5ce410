"""label_dimension and label_dimension_info against the fake PCE, and the label module on a key that is no dimension."""

from __future__ import annotations

from ansible_collections.microseg.illumio.plugins.modules import label, label_dimension, label_dimension_info
from module_runner import run_module


def run(fake_pce, check_mode=False, diff=False, **args):
    return run_module(label_dimension.main, fake_pce.connection(**args), check_mode=check_mode, diff=diff)


def info(fake_pce, **args):
    return run_module(label_dimension_info.main, fake_pce.connection(**args))


def run_label(fake_pce, check_mode=False, **args):
    return run_module(label.main, fake_pce.connection(**args), check_mode=check_mode)


OS = {
    "key": "os",
    "display_name": "Operating system",
    "display_info": {"initial": "OS", "background_color": "#3c8dbc", "display_name_plural": "Operating systems"},
    "external_data_set": "cmdb",
    "external_data_reference": "DIM-OS",
}


def test_check_mode_predicts_creation_without_posting(fake_pce):
    result = run(fake_pce, check_mode=True, diff=True, key="os", display_name="Operating system")
    assert result["changed"] is True
    assert result["diff"]["before"] == {}
    assert result["diff"]["after"]["key"] == "os"
    assert result["label_dimension"]["href"] is None
    assert fake_pce.changes() == []


def test_creates_with_only_what_was_given_then_is_idempotent(fake_pce):
    created = run(fake_pce, **OS)
    assert created["changed"] is True
    assert created["label_dimension"]["href"].startswith("/orgs/1/label_dimensions/")
    [post] = fake_pce.changes()
    assert (post.method, post.path) == ("POST", "/api/v2/orgs/1/label_dimensions")
    assert post.body == OS  # display_info without the suboptions that were not given

    again = run(fake_pce, **OS)
    again_check = run(fake_pce, check_mode=True, **OS)
    assert again["changed"] is False
    assert again_check["changed"] is False
    assert again["label_dimension"] == created["label_dimension"]
    assert len(fake_pce.changes()) == 1


def test_creation_needs_a_display_name(fake_pce):
    result = run(fake_pce, key="os")
    assert result["failed"] is True
    assert "give display_name to create it" in result["msg"]
    assert fake_pce.changes() == []


def test_update_compares_only_what_was_given_and_keeps_other_display_info(fake_pce):
    fake_pce.add_dimension(
        "os", "OS", display_info={"initial": "OS", "background_color": "#000000"}, external_data_set="cmdb"
    )
    assert run(fake_pce, key="os")["changed"] is False
    assert run(fake_pce, key="os", display_info={"initial": "OS"})["changed"] is False

    result = run(fake_pce, diff=True, key="os", display_name="OS family", display_info={"foreground_color": "#ffffff"})
    assert result["changed"] is True
    assert result["diff"]["before"]["display_name"] == "OS"
    assert result["diff"]["after"]["display_name"] == "OS family"
    [put] = fake_pce.changes()
    assert put.method == "PUT"
    assert put.body == {
        "display_name": "OS family",
        "display_info": {"initial": "OS", "background_color": "#000000", "foreground_color": "#ffffff"},
    }
    assert fake_pce.dimension("os")["external_data_set"] == "cmdb"  # not given, not touched
    assert run(fake_pce, key="os", display_name="OS family", display_info={"foreground_color": "#ffffff"}) == {
        "changed": False,
        "label_dimension": result["label_dimension"],
        "diff": {"before": result["label_dimension"], "after": result["label_dimension"]},
    }


def test_update_in_check_mode_sends_nothing(fake_pce):
    fake_pce.add_dimension("os", "OS")
    result = run(fake_pce, check_mode=True, key="os", external_data_reference="DIM-1")
    assert result["changed"] is True
    assert result["label_dimension"]["external_data_reference"] == "DIM-1"
    assert fake_pce.changes() == []


def test_delete_then_nothing_to_delete(fake_pce):
    fake_pce.add_dimension("os", "OS")
    check = run(fake_pce, check_mode=True, key="os", state="absent")
    assert check["changed"] is True
    assert fake_pce.changes() == []
    removed = run(fake_pce, diff=True, key="os", state="absent")
    assert removed["changed"] is True
    assert removed["label_dimension"] == {}
    assert removed["diff"]["before"]["key"] == "os"
    assert fake_pce.dimension("os") is None
    assert run(fake_pce, key="os", state="absent")["changed"] is False


def test_builtin_dimensions_are_never_deleted(fake_pce):
    for key in ("role", "app", "env", "loc"):
        for check_mode in (True, False):
            result = run(fake_pce, check_mode=check_mode, key=key, state="absent")
            assert result["failed"] is True
            assert "built-in" in result["msg"] and "cannot be deleted" in result["msg"]
    assert fake_pce.changes() == []


def test_delete_of_a_dimension_with_labels_says_why(fake_pce):
    fake_pce.add_dimension("os", "OS")
    fake_pce.add_label("os", "linux")
    result = run(fake_pce, key="os", state="absent")
    assert result["failed"] is True
    assert "cannot delete label dimension os" in result["msg"]
    assert "used by labels" in result["msg"]  # the PCE's reason
    assert "Traceback" not in result["msg"]


def test_pce_refusal_is_a_clear_failure(fake_pce):
    fake_pce.add_dimension("os", "Operating system")
    result = run(fake_pce, key="bu", display_name="Operating system")
    assert result["failed"] is True
    assert "already exists" in result["msg"]


def test_info_lists_all_sorted_or_one_by_key(fake_pce):
    fake_pce.add_dimension("os", "OS", display_info={"initial": "OS"})
    fake_pce.add_dimension("bu", "Business unit")
    found = info(fake_pce)
    assert found["changed"] is False
    keys = [d["key"] for d in found["label_dimensions"]]
    assert keys == ["app", "bu", "env", "loc", "os", "role"]
    builtin = {d["key"]: d["builtin"] for d in found["label_dimensions"]}
    assert builtin == {"os": False, "bu": False, "role": True, "app": True, "env": True, "loc": True}
    assert "usage" not in found["label_dimensions"][0]
    assert found["label_dimensions"][4]["display_info"] == {"initial": "OS"}

    [os_dimension] = info(fake_pce, key="os")["label_dimensions"]
    assert os_dimension["display_name"] == "OS"
    assert info(fake_pce, key="nope")["label_dimensions"] == []


def test_info_usage(fake_pce):
    fake_pce.add_dimension("os", "OS")
    fake_pce.add_label("os", "linux")
    [os_dimension] = info(fake_pce, key="os", usage=True)["label_dimensions"]
    assert os_dimension["usage"] == {"labels": True, "label_groups": False}


# --- the label module on a key that is no label dimension ---------------------------------------------------------
def test_label_of_an_unknown_key_fails_with_what_to_do(fake_pce):
    result = run_label(fake_pce, key="os", value="linux")
    assert result["failed"] is True
    assert "'os' is not a label dimension" in result["msg"]
    assert "microseg.illumio.label_dimension" in result["msg"]
    # The PCE's answer decides: nothing is read before the POST but the label itself.
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake_pce.requests] == [("GET", "labels"), ("POST", "labels")]


def test_label_of_an_unknown_key_fails_in_check_mode_too(fake_pce):
    result = run_label(fake_pce, check_mode=True, key="os", value="linux")
    assert result["failed"] is True
    assert "'os' is not a label dimension" in result["msg"]
    assert fake_pce.changes() == []


def test_label_of_a_created_dimension_works_in_both_modes(fake_pce):
    run(fake_pce, key="os", display_name="OS")
    assert run_label(fake_pce, check_mode=True, key="os", value="linux")["changed"] is True
    assert run_label(fake_pce, key="os", value="linux")["changed"] is True
    assert run_label(fake_pce, key="os", value="linux")["changed"] is False


def test_check_mode_on_a_builtin_key_reads_no_dimensions(fake_pce):
    assert run_label(fake_pce, check_mode=True, key="role", value="web")["changed"] is True
    assert not any("label_dimensions" in r.path for r in fake_pce.requests)


def test_check_mode_on_a_pce_without_label_dimensions(fake_pce):
    fake_pce.has_dimensions = False
    assert run_label(fake_pce, check_mode=True, key="os", value="linux")["changed"] is True
    assert run_label(fake_pce, key="os", value="linux")["changed"] is True
