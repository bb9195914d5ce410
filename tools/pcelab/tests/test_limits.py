"""Input the lab refuses with a 4xx instead of failing: odd numbers, deep or huge bodies, huge ids, far dates.

Each test here is a finding of issue 17 (finding 9) that answered 500 or took the lab down before it was fixed.
"""

from __future__ import annotations

import pytest
from conftest import API_SECRET, API_USER, ORG
from starlette.testclient import TestClient
from ven_helpers import Prefixed, pair_with

HUGE_ID = "99999999999999999999"
MiB = 1024 * 1024


@pytest.fixture
def quiet(client):
    """The in-process lab, answering a failure as the 500 a client would see rather than raising it."""
    with TestClient(client.app, base_url=str(client.base_url), raise_server_exceptions=False) as quiet_client:
        quiet_client.auth = (API_USER, API_SECRET)
        quiet_client.lab = client.lab
        yield quiet_client


def refusal(answer, status: int) -> str:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert isinstance(body, list) and set(body[0]) == {"token", "message"}, body
    return body[0]["token"]


# --- the lab clock -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("offset", ["1e300", "-1e300", str(10**400), str(-(10**30)), "3.2e9"])
def test_clock_offset_out_of_range_is_refused_and_the_lab_keeps_answering(quiet, offset):
    answer = quiet.put("https://testserver/lab/admin/clock", content=f'{{"offset_seconds": {offset}}}')
    assert refusal(answer, 406) == "input_validation_error"
    assert quiet.get("/health").status_code == 200
    assert quiet.get(f"{ORG}/labels").status_code == 200
    assert quiet.get("https://testserver/lab/admin/clock").json()["offset_seconds"] == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_nan_and_infinity_are_not_json(quiet, constant):
    answer = quiet.put("https://testserver/lab/admin/clock", content=f'{{"offset_seconds": {constant}}}')
    assert refusal(answer, 400) == "invalid_json"
    assert quiet.get("/health").status_code == 200


def test_clock_offset_of_a_century_is_taken(quiet):
    century = 100 * 365.25 * 86400
    for offset in (century, -century, 86400):
        answer = quiet.put("https://testserver/lab/admin/clock", json={"offset_seconds": offset})
        assert answer.status_code == 200, answer.text
        assert quiet.get(f"{ORG}/labels").status_code == 200
    answer = quiet.put("https://testserver/lab/admin/clock", json={"offset_seconds": century + 86400})
    assert refusal(answer, 406) == "input_validation_error"


# --- nesting -------------------------------------------------------------------------------------------------
DEEP_PATHS = [
    ("POST", f"{ORG}/labels"),  # @endpoint
    ("POST", f"{ORG}/pairing_profiles"),  # VEN side, its own body reader
    ("POST", f"{ORG}/traffic_flows/async_queries"),
    ("PUT", "https://testserver/lab/admin/clock"),
]


@pytest.mark.parametrize(("method", "path"), DEEP_PATHS)
def test_hundred_thousand_open_brackets_are_refused(quiet, method, path):
    answer = quiet.request(method, path, content="[" * 100_000)
    assert answer.status_code in (400, 406), answer.text
    refusal(answer, answer.status_code)


@pytest.mark.parametrize(("method", "path"), DEEP_PATHS)
def test_valid_json_nested_too_deep_is_refused(quiet, method, path):
    answer = quiet.request(method, path, content='{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    assert answer.status_code in (400, 406), answer.text
    assert "deeper than" in answer.json()[0]["message"]


def test_nesting_up_to_the_limit_is_parsed(quiet):
    from pcelab.limits import MAX_JSON_DEPTH

    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    answer = quiet.post(f"{ORG}/labels", content=f'{{"key": "role", "value": {nested}}}')
    assert refusal(answer, 406) == "input_validation_error"  # parsed, then refused for its type
    brackets_in_strings = '{"key": "role", "value": "' + "[{" * 500 + '"}'
    assert quiet.post(f"{ORG}/labels", content=brackets_in_strings).status_code == 406


# --- body size -----------------------------------------------------------------------------------------------
BIG_PATHS = [
    ("POST", f"{ORG}/labels"),
    ("PUT", f"{ORG}/workloads/bulk_create"),
    ("POST", f"{ORG}/pairing_profiles"),
    ("POST", f"{ORG}/agents/bulk_traffic_flows"),
    ("POST", "https://testserver/lab/agent/v1/activate"),
]


@pytest.mark.parametrize(("method", "path"), BIG_PATHS)
def test_a_body_over_the_limit_is_413(quiet, method, path):
    from pcelab.limits import MAX_BODY_BYTES

    body = b"[" + b"1," * (MAX_BODY_BYTES // 2) + b"1]"
    assert refusal(quiet.request(method, path, content=body), 413) == "request_too_large"


@pytest.mark.parametrize(("method", "path"), BIG_PATHS)
def test_a_streamed_body_over_the_limit_is_413(quiet, method, path):
    """Without Content-Length (chunked), the size is counted while the body is read."""

    def chunks():
        for _ in range(17):
            yield b" " * MiB

    assert refusal(quiet.request(method, path, content=chunks()), 413) == "request_too_large"


def test_a_lying_content_length_is_counted_too(quiet):
    from pcelab.limits import MAX_BODY_BYTES, body_limit

    assert body_limit is not None
    scope = {"type": "http", "headers": [(b"content-length", b"10")]}
    messages = iter([{"type": "http.request", "body": b" " * (MAX_BODY_BYTES + 1), "more_body": False}])

    async def receive():
        return next(messages)

    import asyncio

    from pcelab.errors import LabError

    with pytest.raises(LabError) as raised:
        asyncio.run(body_limit(scope, receive)())
    assert raised.value.status == 413


def test_a_legitimate_bulk_body_of_a_thousand_workloads_is_taken(quiet):
    items = [{"hostname": f"h{i}", "interfaces": [{"name": "eth0", "address": f"10.1.{i // 250}.{i % 250}"}]}
             for i in range(1000)]  # fmt: skip
    answer = quiet.put(f"{ORG}/workloads/bulk_create", json=items)
    assert answer.status_code == 200, answer.text


def test_a_gzip_bomb_csv_upload_is_refused_without_inflating_it(quiet, monkeypatch):
    import tracemalloc
    import zlib

    from pcelab.api import traffic

    monkeypatch.setattr(traffic, "MAX_UPLOAD_BYTES", 1 * MiB)
    compressor = zlib.compressobj(1, wbits=31)
    bomb = b"".join(compressor.compress(b"\n" * MiB) for _ in range(64)) + compressor.flush()
    headers = {"content-type": "text/csv", "content-encoding": "gzip"}
    tracemalloc.start()
    try:
        answer = quiet.post(f"{ORG}/agents/bulk_traffic_flows", content=bomb, headers=headers)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refusal(answer, 406) == "input_validation_error"
    assert "larger than" in answer.json()[0]["message"]
    assert peak < 16 * MiB, f"inflated {peak} bytes for a {len(bomb)}-byte upload"


# --- ids -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{ORG}/labels/{HUGE_ID}"),
        ("PUT", f"{ORG}/labels/{HUGE_ID}"),
        ("DELETE", f"{ORG}/labels/{HUGE_ID}"),
        ("GET", f"{ORG}/pairing_profiles/{HUGE_ID}"),
        ("PUT", f"{ORG}/pairing_profiles/{HUGE_ID}"),
        ("DELETE", f"{ORG}/pairing_profiles/{HUGE_ID}"),
        ("POST", f"{ORG}/pairing_profiles/{HUGE_ID}/pairing_key"),
        ("GET", f"{ORG}/sec_policy/{HUGE_ID}"),
        ("GET", f"{ORG}/sec_policy/draft/rule_sets/{HUGE_ID}"),
        ("GET", f"{ORG}/sec_policy/draft/rule_sets/{HUGE_ID}/sec_rules/{HUGE_ID}"),
        ("GET", f"{ORG}/agents/{HUGE_ID}/compatibility_report"),
        ("GET", f"{ORG}/workloads/{HUGE_ID}"),
        ("GET", f"/orgs/{HUGE_ID}/labels"),
    ],
)
def test_huge_ids_are_not_found(quiet, method, path):
    answer = quiet.request(method, path, json={})
    assert refusal(answer, 404) == "not_found"


@pytest.mark.parametrize("profile_id", [HUGE_ID, "²", "٣", "1" * 5000])
def test_pairing_script_with_an_odd_profile_id_is_not_found(quiet, profile_id):
    answer = quiet.get("https://testserver/api/v18/software/ven/image", params={"pair_script": "pair.sh",
                                                                                 "profile_id": profile_id})  # fmt: skip
    assert answer.status_code == 404, answer.text
    assert answer.text.startswith("#!/bin/sh")


# --- numbers in bodies ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["key_lifespan", "allowed_uses_per_key"])
@pytest.mark.parametrize("value", ["9" * 400, 10**400, "9" * 5000, "²", 2**31])
def test_pairing_profile_numbers_are_bounded(quiet, field, value):
    answer = quiet.post(f"{ORG}/pairing_profiles", json={"name": "pp", field: value})
    assert refusal(answer, 406) == "input_validation_error"


def test_pairing_profile_with_the_largest_lifespan_pairs(quiet):
    agent = Prefixed(quiet, "/lab/agent/v1")
    answer = pair_with(quiet, agent, profile={"key_lifespan": 2**31 - 1, "allowed_uses_per_key": str(2**31 - 1)})
    assert isinstance(answer, dict)


# --- dates ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "end", "status"),
    [
        ("0001-01-01", "9999-12-31", 202),
        ("0001-01-01T00:00:00+01:00", "2024-01-01", 202),
        ("2024-01-01", "9999-12-31T23:59:59-01:00", 202),
        ("2024-01-01", "10000-01-01", 406),
        ("0000-12-31", "2024-01-01", 406),
    ],
)
def test_traffic_queries_over_the_whole_calendar(quiet, start, end, status):
    body = {"start_date": start, "end_date": end, "policy_decisions": [], "max_results": 10}
    answer = quiet.post(f"{ORG}/traffic_flows/async_queries", json=body)
    assert answer.status_code == status, answer.text
    if status == 202:
        assert quiet.get(answer.json()["href"]).json()["status"] in ("queued", "running", "completed")


@pytest.mark.parametrize("stamp", ["9" * 400, "99999999999999", "0001-01-01T00:00:00+01:00"])
def test_flow_times_out_of_range_fail_their_line(quiet, stamp):
    csv = f"10.0.0.1,10.0.0.2,80,tcp,1,{stamp},{stamp}\n10.0.0.1,10.0.0.2,443,tcp\n"
    answer = quiet.post(f"{ORG}/agents/bulk_traffic_flows", content=csv, headers={"content-type": "text/csv"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["num_flows_failed"] == 1


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_event_filters_at_the_ends_of_the_calendar(quiet, stamp):
    answer = quiet.get(f"{ORG}/events", params={"timestamp[gte]": stamp})
    assert answer.status_code in (200, 406), answer.text


# --- the depth check itself ----------------------------------------------------------------------------------
def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


def test_the_depth_check_agrees_with_the_parsed_depth():
    import json

    from hypothesis import given, seed, settings
    from hypothesis import strategies as st
    from pcelab.limits import nests_deeper_than

    tricky = st.text(alphabet='[]{}"\\ab\u00e9', max_size=12)
    values = st.recursive(st.none() | st.integers() | tricky, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(tricky, inner, max_size=3), max_leaves=30)  # fmt: skip

    @seed(17)
    @settings(max_examples=300, deadline=None, database=None)
    @given(value=values, limit=st.integers(min_value=0, max_value=6), ascii_only=st.booleans())
    def agrees(value, limit, ascii_only):
        raw = json.dumps(value, ensure_ascii=ascii_only).encode()
        assert nests_deeper_than(raw, limit) == (_depth(value) > limit), raw

    agrees()
