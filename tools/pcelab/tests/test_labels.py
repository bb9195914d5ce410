"""Labels, authentication, org checks, error shapes (in-process, Starlette TestClient)."""

from __future__ import annotations

import httpx
import pytest
from conftest import ORG


def make_label(client, key="role", value="Web", **extra):
    answer = client.post(f"{ORG}/labels", json={"key": key, "value": value, **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_label_has_the_pce_shape(client):
    label = make_label(client, external_data_set="cmdb", external_data_reference="42")
    assert set(label) == {
        "href", "key", "value", "created_at", "updated_at", "created_by", "updated_by",
        "external_data_set", "external_data_reference", "deleted",
    }  # fmt: skip
    assert label["href"].startswith(f"{ORG}/labels/") and label["href"].rsplit("/", 1)[1].isdigit()
    assert label["created_by"] == {"href": "/users/1"}
    assert label["created_at"].endswith("Z") and len(label["created_at"]) == len("2024-01-02T03:04:05.678Z")
    assert (label["external_data_set"], label["deleted"]) == ("cmdb", False)
    assert client.get(label["href"]).json() == label


def test_key_filter_is_exact_and_value_filter_is_partial(client):
    make_label(client, "role", "Web")
    make_label(client, "role", "WebProxy")
    make_label(client, "app", "Webshop")
    make_label(client, "role", "DB")
    answer = client.get(f"{ORG}/labels", params={"key": "role", "value": "web"})
    assert sorted(label["value"] for label in answer.json()) == ["Web", "WebProxy"]
    assert answer.headers["X-Total-Count"] == "2"
    assert [label["value"] for label in client.get(f"{ORG}/labels", params={"key": "ro"}).json()] == []


def test_max_results_limits_but_total_count_tells_all(client):
    for index in range(5):
        make_label(client, "loc", f"DC{index}")
    answer = client.get(f"{ORG}/labels", params={"max_results": 2})
    assert len(answer.json()) == 2 and answer.headers["X-Total-Count"] == "5"
    counted = client.get(f"{ORG}/labels", params={"max_results": "0"})  # a count: no objects, the real total
    assert counted.status_code == 200 and counted.json() == [] and counted.headers["X-Total-Count"] == "5"
    assert client.get(f"{ORG}/labels", params={"max_results": "-1"}).status_code == 406
    assert client.get(f"{ORG}/labels", params={"max_results": "many"}).status_code == 406


def test_key_and_value_must_be_unique(client):
    make_label(client, "env", "Prod")
    answer = client.post(f"{ORG}/labels", json={"key": "env", "value": "Prod"})
    assert answer.status_code == 406
    assert answer.json()[0]["token"] == "label_key_value_not_unique"
    make_label(client, "app", "Prod")  # same value under another key is fine


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"key": "role"}, "'value' is a required property"),
        ({"key": "role", "value": ""}, "value: '' should be non-empty"),
        ({"key": "role", "value": "  "}, "value: '  ' does not match"),
        ({"key": "role", "value": 7}, "value: 7 is not of type 'string'"),
        ({"key": "", "value": "x"}, "key: '' should be non-empty"),
        ({"key": "role", "value": "x", "colour": "red"}, "('colour' was unexpected)"),
        ({"key": "role", "value": "x", "href": "/orgs/1/labels/9"}, "('href' was unexpected)"),
        ({"key": "role", "value": "x", "external_data_set": 5}, "external_data_set: 5 is not of type"),
    ],
)
def test_invalid_label_bodies_are_406_naming_the_field(client, body, message):
    answer = client.post(f"{ORG}/labels", json=body)
    assert answer.status_code == 406
    assert answer.json()[0]["token"] == "input_validation_error"
    assert message in answer.json()[0]["message"]


def test_a_key_must_be_a_label_dimension(client):
    refused = client.post(f"{ORG}/labels", json={"key": "bu", "value": "Finance"})
    assert refused.status_code == 406 and refused.json()[0]["token"] == "label_key_not_supported"
    dimension = {"key": "bu", "display_name": "Business unit"}
    assert client.post(f"{ORG}/label_dimensions", json=dimension).status_code == 201
    assert make_label(client, "bu", "Finance")["key"] == "bu"


def test_update_changes_value_but_not_key(client):
    label = make_label(client, "app", "Billing")
    assert client.put(label["href"], json={"value": "Invoicing"}).status_code == 204
    assert client.get(label["href"]).json()["value"] == "Invoicing"
    refused = client.put(label["href"], json={"key": "env"})
    assert refused.status_code == 406 and refused.json()[0]["token"] == "label_key_immutable"
    other = make_label(client, "app", "Other")
    assert client.put(other["href"], json={"value": "Invoicing"}).json()[0]["token"] == "label_key_value_not_unique"


def test_delete_then_delete_again_is_already_deleted(client):
    label = make_label(client, "loc", "Paris")
    assert client.delete(label["href"]).status_code == 204
    assert client.get(label["href"]).json()["deleted"] is True
    assert label["href"] not in [item["href"] for item in client.get(f"{ORG}/labels").json()]
    again = client.delete(label["href"])
    assert again.status_code == 406 and again.json()[0]["token"] == "already_deleted"


def test_label_in_use_by_a_workload_cannot_be_deleted(client):
    label = make_label(client, "role", "Used")
    client.post(f"{ORG}/workloads", json={"hostname": "w1", "labels": [{"href": label["href"]}]})
    answer = client.delete(label["href"])
    assert answer.status_code == 406 and answer.json()[0]["token"] == "label_in_use"
    assert "workloads" in answer.json()[0]["message"]


def test_label_reference_checks_of_other_modules_count(client):
    label = make_label(client, "role", "Paired")
    client.lab.label_reference_checks.append(
        lambda lab, org_id, href: "pairing profile PP-1" if href == label["href"] else None
    )
    answer = client.delete(label["href"])
    assert answer.status_code == 406 and "pairing profile PP-1" in answer.json()[0]["message"]


def test_unknown_label_is_404(client):
    answer = client.get(f"{ORG}/labels/999")
    assert answer.status_code == 404 and answer.json()[0]["token"] == "not_found"


def test_malformed_json_is_400(client):
    answer = client.post(f"{ORG}/labels", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()[0]["token"] == "invalid_json"


def test_body_must_be_an_object(client):
    answer = client.post(f"{ORG}/labels", json=["key", "value"])
    assert answer.status_code == 406 and "must be a JSON object" in answer.json()[0]["message"]


def test_missing_or_wrong_credentials_are_401_with_challenge(client):
    for auth in (None, ("api_0123456789abcde", "wrong"), ("nobody", "f" * 64)):
        answer = client.get(f"{ORG}/labels", auth=auth) if auth else client.get(f"{ORG}/labels", auth=_NoAuth())
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Basic")
        assert answer.json()[0]["token"] == "authentication_required"
    broken = client.get(f"{ORG}/labels", auth=_NoAuth(), headers={"Authorization": "Basic !!notbase64"})
    assert broken.status_code == 401


def test_health_needs_no_key_and_reports_normal(client):
    answer = client.get("/health", auth=_NoAuth())
    assert answer.status_code == 200
    assert answer.json()[0]["status"] == "normal"


def test_unknown_org_is_404(client):
    assert client.get("/orgs/2/labels").status_code == 404
    assert client.get("/orgs/abc/labels").status_code == 404


def test_unknown_endpoint_and_wrong_method_answer_json(client):
    assert client.get(f"{ORG}/no_such_thing").json()[0]["token"] == "not_found"
    answer = client.patch(f"{ORG}/labels")
    assert answer.status_code == 405 and answer.json()[0]["token"] == "method_not_allowed"


def test_unexpected_failure_is_a_json_500_without_details(client, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.lab.store, "texts", explode)
    from starlette.testclient import TestClient

    quiet = TestClient(client.app, base_url=str(client.base_url), raise_server_exceptions=False)
    answer = quiet.get(f"{ORG}/labels", auth=client.auth)
    assert answer.status_code == 500
    assert answer.json()[0]["token"] == "internal_server_error"
    assert "secret internals" not in answer.text and "Traceback" not in answer.text


def test_label_changes_are_recorded_as_events(client):
    label = make_label(client, "env", "Staging")
    client.put(label["href"], json={"value": "Stage"})
    client.delete(label["href"])
    events = client.get(f"{ORG}/events").json()
    types = [event["event_type"] for event in events[:3]]
    assert types == ["label.delete", "label.update", "label.create"]
    update = events[1]
    assert update["resource_changes"][0]["changes"]["value"] == {"before": "Staging", "after": "Stage"}
    assert update["created_by"] == {"user": {"href": "/users/1", "username": "api_0123456789abcde"}}
    assert update["action"]["api_method"] == "PUT" and update["status"] == "success"


class _NoAuth(httpx.Auth):
    """httpx auth that sends nothing (the client's default auth would otherwise apply)."""

    def auth_flow(self, request):
        request.headers.pop("Authorization", None)
        yield request


def test_a_replaced_secret_stops_working_at_once(client):
    assert client.get(f"{ORG}/labels").status_code == 200
    client.lab.add_api_key("api_0123456789abcde", "e" * 64)
    assert client.get(f"{ORG}/labels").status_code == 401
    assert client.get(f"{ORG}/labels", auth=("api_0123456789abcde", "e" * 64)).status_code == 200
