"""Label dimensions: the four built-in keys, custom ones, and labels tied to them (in-process TestClient)."""

from __future__ import annotations

import pytest
from conftest import ORG
from pcelab.contract import contract

DIMENSIONS = f"{ORG}/label_dimensions"
CONTRACT = contract("label_dimensions")


def make_dimension(client, key="os", display_name="OS", **extra):
    answer = client.post(DIMENSIONS, json={"key": key, "display_name": display_name, **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_the_four_builtin_dimensions_exist_and_keep_the_contract(client):
    listed = client.get(DIMENSIONS).json()
    assert [item["key"] for item in listed] == ["role", "app", "env", "loc"]
    for item in listed:
        assert CONTRACT.answer_gaps(item) == []
        assert item["href"].startswith(f"{DIMENSIONS}/") and len(item["href"].rsplit("/", 1)[1]) == 36
        assert client.get(item["href"]).json() == item
    refused = client.delete(listed[0]["href"])
    assert refused.status_code == 406 and "built-in" in refused.json()[0]["message"]


def test_custom_dimension_lifecycle(client):
    info = {"initial": "OS", "background_color": "#112233", "display_name_plural": "OSes"}
    dimension = make_dimension(client, display_info=info, external_data_set="cmdb", external_data_reference="os")
    assert CONTRACT.answer_gaps(dimension) == []
    assert dimension["display_info"] == info and dimension["deleted"] is False
    assert client.get(DIMENSIONS, params={"key": "os"}).json() == [dimension]
    assert client.put(dimension["href"], json={"display_name": "Operating system"}).status_code == 204
    assert client.get(dimension["href"]).json()["display_name"] == "Operating system"
    refused = client.put(dimension["href"], json={"key": "platform"})
    assert refused.status_code == 406 and refused.json()[0]["token"] == "label_dimension_key_immutable"

    label = client.post(f"{ORG}/labels", json={"key": "os", "value": "linux"}).json()
    usage = client.get(DIMENSIONS, params={"key": "os", "usage": "true"}).json()[0]["usage"]
    assert usage == {"labels": True, "label_groups": False}
    in_use = client.delete(dimension["href"])
    assert in_use.status_code == 406 and in_use.json()[0]["token"] == "label_dimension_in_use"

    assert client.delete(label["href"]).status_code == 204
    assert client.delete(dimension["href"]).status_code == 204
    assert client.get(dimension["href"]).json()["deleted"] is True
    assert "os" not in [item["key"] for item in client.get(DIMENSIONS).json()]
    gone = client.post(f"{ORG}/labels", json={"key": "os", "value": "linux"})
    assert gone.status_code == 406 and gone.json()[0]["token"] == "label_key_not_supported"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"key": "os"}, "'display_name' is a required property"),
        ({"key": "bad key", "display_name": "X"}, "key: 'bad key' does not match"),
        ({"key": "k" * 65, "display_name": "X"}, "is too long"),
        ({"key": "os", "display_name": "X", "display_info": {"background_color": "red"}}, "does not match"),
        ({"key": "os", "display_name": "X", "display_info": {"shape": "round"}}, "('shape' was unexpected)"),
        ({"key": "os", "display_name": "X", "caps": []}, "('caps' was unexpected)"),
        ({"key": "role", "display_name": "Another role"}, "already exists"),
        ({"key": "os2", "display_name": "Role"}, "already exists"),
    ],
)
def test_invalid_dimensions_are_406_naming_the_field(client, body, message):
    answer = client.post(DIMENSIONS, json=body)
    assert answer.status_code == 406
    assert message in answer.json()[0]["message"]


def test_label_groups_need_a_dimension_key_and_count_as_usage(client):
    refused = client.post(f"{ORG}/sec_policy/draft/label_groups", json={"name": "g", "key": "tier"})
    assert refused.status_code == 406 and refused.json()[0]["token"] == "label_key_not_supported"
    dimension = make_dimension(client, "tier", "Tier")
    assert client.post(f"{ORG}/sec_policy/draft/label_groups", json={"name": "g", "key": "tier"}).status_code == 201
    assert client.get(dimension["href"], params={"usage": "yes"}).json()["usage"]["label_groups"] is True
