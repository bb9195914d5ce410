"""Security principals (AD groups by SID) and user-based rules naming them (in-process TestClient), and the
official SDK against a running lab."""

from __future__ import annotations

import pytest
from conftest import ORG
from pcelab.contract import contract

PRINCIPALS = f"{ORG}/security_principals"
CONTRACT = contract("security_principals")
SID = "S-1-5-21-1004336348-1177238915-682003330-512"


def created(answer):
    assert answer.status_code == 201, answer.text
    return answer.json()


def refused(answer, token=None, status=406):
    assert answer.status_code == status, answer.text
    if token:
        assert answer.json()[0]["token"] == token, answer.text
    return answer.json()[0]["message"]


def make_principal(client, name="CORP\\Domain Admins", sid=SID, **extra):
    return created(client.post(PRINCIPALS, json={"name": name, "sid": sid, **extra}))


def test_create_get_list_and_the_contract(client):
    principal = make_principal(client, description="admins")
    assert CONTRACT.answer_gaps(principal) == []
    assert principal["href"].startswith(f"{PRINCIPALS}/") and len(principal["href"].rsplit("/", 1)[1]) == 36
    assert (principal["name"], principal["sid"], principal["description"]) == ("CORP\\Domain Admins", SID, "admins")
    assert principal["deleted"] is False and principal["used_by_ruleset"] is False
    assert principal["created_by"] == {"href": "/users/1"}
    assert client.get(principal["href"]).json() == principal
    assert client.get(PRINCIPALS).json() == [principal]
    assert client.get(PRINCIPALS).headers["X-Total-Count"] == "1"
    events = [event["event_type"] for event in client.get(f"{ORG}/events").json()]
    assert "security_principal.create" in events


def test_name_and_sid_filters(client):
    admins = make_principal(client)
    users = make_principal(client, "CORP\\Domain Users", "S-1-5-21-1004336348-1177238915-682003330-513")
    everyone = make_principal(client, "Everyone", "S-1-1-0")

    def names(**params):
        answer = client.get(PRINCIPALS, params=params)
        assert answer.status_code == 200, answer.text
        return [item["name"] for item in answer.json()]

    assert names(name="corp\\domain") == [admins["name"], users["name"]]  # partial, any case
    assert names(name="Everyone") == [everyone["name"]]
    assert names(sid="S-1-1-0") == ["Everyone"]
    assert names(sid="S-1-1") == []  # the SID filter is exact
    assert names(name="CORP", sid=users["sid"]) == [users["name"]]
    assert client.get(PRINCIPALS, params={"max_results": "0"}).headers["X-Total-Count"] == "3"


def test_update_name_and_description_but_not_the_sid(client):
    principal = make_principal(client)
    assert client.put(principal["href"], json={"name": "CORP\\Admins", "description": None}).status_code == 204
    changed = client.get(principal["href"]).json()
    assert (changed["name"], changed["description"], changed["sid"]) == ("CORP\\Admins", None, SID)
    assert CONTRACT.answer_gaps(changed) == []
    assert "sid" in refused(client.put(principal["href"], json={"sid": "S-1-5-32-544"}))
    assert "href" in refused(client.put(principal["href"], json={"href": principal["href"]}))
    assert "used_by_ruleset" in refused(client.put(principal["href"], json={"used_by_ruleset": True}))
    assert "name" in refused(client.put(principal["href"], json={"name": ""}))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "G"}, "'sid' is a required property"),
        ({"sid": SID}, "'name' is a required property"),
        ({"name": "G", "sid": "S-1"}, "does not match"),
        ({"name": "G", "sid": "S-1-5"}, "does not match"),
        ({"name": "G", "sid": "s-1-5-21-1"}, "does not match"),
        ({"name": "G", "sid": "S-2-5-21-1"}, "does not match"),
        ({"name": "G", "sid": "S-1-5-21-"}, "does not match"),
        ({"name": "G", "sid": "CORP\\Domain Admins"}, "does not match"),
        ({"name": "G", "sid": 512}, "is not of type 'string'"),
        ({"name": "  ", "sid": SID}, "does not match"),
        ({"name": "G", "sid": SID, "deleted": False}, "deleted"),
        ({"name": "G", "sid": SID, "group": True}, "('group' was unexpected)"),
    ],
)
def test_invalid_principals_are_406_naming_the_field(client, body, message):
    assert message in refused(client.post(PRINCIPALS, json=body), "input_validation_error")


def test_sids_are_unique_among_live_principals_and_deleted_ones_stay_readable(client):
    principal = make_principal(client)
    assert "already exists" in refused(client.post(PRINCIPALS, json={"name": "Other", "sid": SID}))
    assert client.delete(principal["href"]).status_code == 204
    gone = client.get(principal["href"]).json()
    assert gone["deleted"] is True and CONTRACT.answer_gaps(gone) == []
    assert client.get(PRINCIPALS).json() == []
    refused(client.delete(principal["href"]), "already_deleted")
    refused(client.put(principal["href"], json={"name": "x"}), "already_deleted")
    again = make_principal(client)  # the SID is free again
    assert again["href"] != principal["href"]
    assert "security_principal.delete" in [event["event_type"] for event in client.get(f"{ORG}/events").json()]


def test_unknown_principals_are_404(client):
    missing = f"{PRINCIPALS}/5d5c06b6-0000-4000-8000-00000000dead"
    refused(client.get(missing), "not_found", 404)
    refused(client.put(missing, json={"name": "x"}), "not_found", 404)
    refused(client.delete(missing), "not_found", 404)
    refused(client.get("/orgs/2/security_principals"), "not_found", 404)


def test_user_based_rules_name_principals_which_then_are_used_by_a_ruleset(client):
    principal = make_principal(client)
    rule_set = created(client.post(f"{ORG}/sec_policy/draft/rule_sets", json={"name": "RS-RDP", "scopes": [[]]}))
    rule = {"providers": [{"actors": "ams"}], "consumers": [{"actors": "ams"}], "ingress_services": []}
    stray = {"href": f"{PRINCIPALS}/5d5c06b6-0000-4000-8000-00000000dead"}
    message = refused(
        client.post(f"{rule_set['href']}/sec_rules", json={**rule, "consuming_security_principals": [stray]}),
        "invalid_uri",
    )
    assert "not an existing security principal" in message
    made = created(
        client.post(f"{rule_set['href']}/sec_rules", json={**rule, "consuming_security_principals": [principal]})
    )
    assert made["consuming_security_principals"] == [{"href": principal["href"]}]
    assert client.get(principal["href"]).json()["used_by_ruleset"] is True
    assert client.get(PRINCIPALS).json()[0]["used_by_ruleset"] is True
    refused(client.delete(principal["href"]), "object_in_use")
    assert client.put(made["href"], json={"consuming_security_principals": []}).status_code == 204
    assert client.get(principal["href"]).json()["used_by_ruleset"] is False
    assert client.delete(principal["href"]).status_code == 204


# --- the official SDK (illumio 1.1.3) against a running lab -----------------------------------------------
def test_the_sdk_manages_security_principals(pce):
    import illumio

    sid = "S-1-5-21-3623811015-3361044348-30300820-1013"
    principal = pce.security_principals.create(illumio.SecurityPrincipal(name="CORP\\SDK Users", sid=sid))
    assert isinstance(principal, illumio.SecurityPrincipal) and principal.sid == sid
    assert principal.href.startswith("/orgs/1/security_principals/")
    assert pce.security_principals.get_by_reference(principal.href).name == "CORP\\SDK Users"
    assert [found.href for found in pce.security_principals.get(params={"name": "SDK Users"})] == [principal.href]
    assert principal.href in {found.href for found in pce.security_principals.get_all()}
    pce.security_principals.update(principal.href, {"description": "from the SDK"})
    assert pce.security_principals.get_by_reference(principal.href).description == "from the SDK"
    with pytest.raises(illumio.IllumioApiException, match="input_validation_error"):
        pce.security_principals.create(illumio.SecurityPrincipal(name="bad", sid="not-a-sid"))
    pce.security_principals.delete(principal.href)
    assert pce.security_principals.get(params={"sid": sid}) == []
