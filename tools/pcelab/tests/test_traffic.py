"""Traffic flows: CSV parsing and query matching as functions; upload and async queries over HTTP."""

from __future__ import annotations

import ipaddress
import zlib
from datetime import UTC, datetime

import pytest
from pcelab.api.traffic import (
    Directory,
    Flow,
    QueryError,
    WorkloadView,
    parse_csv,
    parse_csv_line,
    parse_query,
    run_query,
)
from ven_helpers import new_label, pair_ven, wait_for

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
DAY = "2024-05-01"
WEB = {"href": "/orgs/1/labels/1", "key": "role", "value": "web"}
DB = {"href": "/orgs/1/labels/2", "key": "role", "value": "db"}
PROD = {"href": "/orgs/1/labels/3", "key": "env", "value": "prod"}


def workload(href, labels, mode="visibility_only"):
    return WorkloadView(href, href.rsplit("/", 1)[-1], None, "linux", mode, tuple(labels), True)


@pytest.fixture
def directory():
    web = workload("/orgs/1/workloads/web1", [WEB, PROD])
    db = workload("/orgs/1/workloads/db1", [DB, PROD], mode="full")
    return Directory(
        workloads_by_ip={"10.0.0.1": web, "10.0.0.2": db},
        ip_lists={
            "/orgs/1/sec_policy/draft/ip_lists/1": [
                (ipaddress.ip_network("10.0.0.0/8"), False),
                (ipaddress.ip_network("10.9.0.0/16"), True),
            ]
        },
        label_groups={"/orgs/1/sec_policy/draft/label_groups/g": frozenset({DB["href"]})},
    )


def flow(src, dst, port=443, proto=6, count=1):
    return Flow(src, dst, port, proto, count, NOW, NOW)


def query(**fields):
    return parse_query({"start_date": DAY, "end_date": DAY, "policy_decisions": [], **fields})


# --- CSV --------------------------------------------------------------------------------------------
def test_csv_line_with_all_columns():
    parsed = parse_csv_line("10.0.0.1, 10.0.0.2,5432,tcp,7,2024-05-01T10:00:00Z,1714561200", NOW)
    assert parsed == Flow("10.0.0.1", "10.0.0.2", 5432, 6, 7, NOW - 7200, NOW - 3600)


def test_csv_short_line_defaults_to_one_connection_now():
    assert parse_csv_line("fd00::1,fd00::2,53,17", NOW) == Flow("fd00::1", "fd00::2", 53, 17, 1, NOW, NOW)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("10.0.0.1,10.0.0.2,80", "found 3"),
        ("10.0.0.1,10.0.0.2,80,6,1,2024-05-01T00:00:00Z", "found 6"),
        ("10.0.0.300,10.0.0.2,80,6", "src_ip"),
        ("10.0.0.1,fd00::2,80,6", "different IP versions"),
        ("10.0.0.1,10.0.0.2,70000,6", "dst_port"),
        ("10.0.0.1,10.0.0.2,80,sctpx", "proto"),
        ("10.0.0.1,10.0.0.2,80,6,0", "num_connections"),
        ("10.0.0.1,10.0.0.2,80,6,1,yesterday,now", "first_detected"),
        ("10.0.0.1,10.0.0.2,80,6,1,1714561200,1714557600", "after"),
    ],
)
def test_csv_bad_lines_say_why(line, message):
    with pytest.raises(ValueError, match=message):
        parse_csv_line(line, NOW)


def test_csv_keeps_good_lines_and_reports_bad_ones_by_line_number():
    flows, failures = parse_csv("10.0.0.1,10.0.0.2,80,6\n\nsrc_ip,dst_ip,port,proto\n10.0.0.2,10.0.0.1,22,6\n", NOW)
    assert len(flows) == 2
    assert [(f["line"], f["flow"]) for f in failures] == [(3, "src_ip,dst_ip,port,proto")]


# --- queries ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"end_date": DAY}, "start_date is required"),
        ({"start_date": "2024-05-02", "end_date": DAY}, "after end_date"),
        ({"start_date": DAY, "end_date": DAY, "max_results": 300000}, "max_results"),
        ({"start_date": DAY, "end_date": DAY, "policy_decisions": ["maybe"]}, "policy_decisions"),
        ({"start_date": DAY, "end_date": DAY, "sources": {"include": [{"label": {"href": "x"}}]}}, "list of lists"),
        ({"start_date": DAY, "end_date": DAY, "sources": {"include": [[{"host": "x"}]]}}, "each actor"),
        ({"start_date": DAY, "end_date": DAY, "sources": {"exclude": [{"ip_address": "nope"}]}}, "ip_address"),
        ({"start_date": DAY, "end_date": DAY, "services": {"include": [{"port": -1}]}}, "port"),
        ({"start_date": DAY, "end_date": DAY, "sources_destinations_query_op": "xor"}, "query_op"),
    ],
)
def test_bad_queries_name_the_field(body, message):
    with pytest.raises(QueryError, match=message):
        parse_query(body)


def hrefs(rows):
    return sorted((r["src"]["ip"], r["dst"]["ip"], r["service"]["port"]) for r in rows)


def test_label_include_and_exclude(directory):
    flows = [flow("10.0.0.1", "10.0.0.2", 5432), flow("10.0.0.2", "10.0.0.1", 80), flow("192.0.2.9", "10.0.0.2", 22)]
    rows = run_query(query(sources={"include": [[{"label": {"href": WEB["href"]}}]], "exclude": []}), flows, directory)
    assert hrefs(rows) == [("10.0.0.1", "10.0.0.2", 5432)]
    not_db = {"include": [], "exclude": [{"label": {"href": DB["href"]}}]}
    rows = run_query(query(destinations=not_db), flows, directory)
    assert hrefs(rows) == [("10.0.0.2", "10.0.0.1", 80)]


def test_include_groups_are_and_inside_or_between(directory):
    flows = [flow("10.0.0.1", "192.0.2.1"), flow("10.0.0.2", "192.0.2.1")]
    both = [[{"label": {"href": WEB["href"]}}, {"label": {"href": PROD["href"]}}]]
    assert hrefs(run_query(query(sources={"include": both}), flows, directory)) == [("10.0.0.1", "192.0.2.1", 443)]
    either = [[{"label": {"href": WEB["href"]}}], [{"label": {"href": DB["href"]}}]]
    assert len(run_query(query(sources={"include": either}), flows, directory)) == 2


def test_ip_list_with_exclusion_and_workload_exclusion(directory):
    flows = [flow("10.1.1.1", "10.0.0.2"), flow("10.9.1.1", "10.0.0.2"), flow("10.0.0.1", "10.0.0.2")]
    ip_list = {"ip_list": {"href": "/orgs/1/sec_policy/draft/ip_lists/1"}}
    rows = run_query(query(sources={"include": [[ip_list]]}), flows, directory)
    assert hrefs(rows) == [("10.1.1.1", "10.0.0.2", 443)]
    with_workloads = query(sources={"include": [[ip_list]]}, exclude_workloads_from_ip_list_query=False)
    rows = run_query(with_workloads, flows, directory)
    assert hrefs(rows) == [("10.0.0.1", "10.0.0.2", 443), ("10.1.1.1", "10.0.0.2", 443)]


def test_workload_ip_address_label_group_and_ams_actors(directory):
    flows = [flow("10.0.0.1", "10.0.0.2"), flow("192.0.2.5", "10.0.0.1", 22)]
    by_workload = {"include": [[{"workload": {"href": "/orgs/1/workloads/db1"}}]]}
    assert hrefs(run_query(query(destinations=by_workload), flows, directory)) == [("10.0.0.1", "10.0.0.2", 443)]
    by_cidr = {"include": [[{"ip_address": "192.0.2.0/24"}]]}
    assert hrefs(run_query(query(sources=by_cidr), flows, directory)) == [("192.0.2.5", "10.0.0.1", 22)]
    by_group = {"include": [[{"label_group": {"href": "/orgs/1/sec_policy/draft/label_groups/g"}}]]}
    assert len(run_query(query(destinations=by_group), flows, directory)) == 1
    assert hrefs(run_query(query(sources={"include": [[{"actors": "ams"}]]}), flows, directory)) == [
        ("10.0.0.1", "10.0.0.2", 443)
    ]


def test_or_operator_needs_only_one_named_side(directory):
    flows = [flow("10.0.0.1", "192.0.2.1"), flow("192.0.2.1", "10.0.0.2"), flow("192.0.2.1", "192.0.2.2")]
    sides = {
        "sources": {"include": [[{"label": {"href": WEB["href"]}}]]},
        "destinations": {"include": [[{"label": {"href": DB["href"]}}]]},
    }
    assert run_query(query(**sides), flows, directory) == []
    assert len(run_query(query(sources_destinations_query_op="or", **sides), flows, directory)) == 2


def test_services_port_ranges_protocols_and_process_names(directory):
    flows = [flow("10.0.0.1", "10.0.0.2", 5432), flow("10.0.0.1", "10.0.0.2", 53, 17), flow("10.0.0.1", "10.0.0.2", 22)]
    ranged = {"include": [{"port": 5000, "to_port": 6000, "proto": 6}]}
    assert hrefs(run_query(query(services=ranged), flows, directory)) == [("10.0.0.1", "10.0.0.2", 5432)]
    not_udp = {"include": [], "exclude": [{"proto": 17}]}
    assert len(run_query(query(services=not_udp), flows, directory)) == 2
    by_process = {"include": [{"process_name": "sshd"}]}
    assert run_query(query(services=by_process), flows, directory) == []


def test_dates_policy_decisions_and_max_results(directory):
    old = Flow("10.0.0.1", "10.0.0.2", 80, 6, 1, NOW - 86400 * 3, NOW - 86400 * 3)
    flows = [old, flow("10.0.0.1", "10.0.0.2", 81), flow("10.0.0.2", "10.0.0.1", 82), flow("192.0.2.1", "192.0.2.2")]
    assert len(run_query(query(), flows, directory)) == 3
    assert len(run_query(query(start_date="2024-04-28", end_date="2024-04-28"), flows, directory)) == 1
    blocked = run_query(query(policy_decisions=["blocked"]), flows, directory)
    assert hrefs(blocked) == [("10.0.0.1", "10.0.0.2", 81)]
    unknown = run_query(query(policy_decisions=["unknown"]), flows, directory)
    assert hrefs(unknown) == [("192.0.2.1", "192.0.2.2", 443)]
    assert len(run_query(query(max_results=2), flows, directory)) == 2


def test_result_rows_have_the_pce_shape_and_aggregate_repeats(directory):
    flows = [flow("10.0.0.1", "10.0.0.2", count=2), flow("10.0.0.1", "10.0.0.2", count=3)]
    flows.append(flow("192.0.2.7", "10.0.0.1"))
    rows = run_query(query(), flows, directory)
    assert len(rows) == 2
    row = next(r for r in rows if r["src"]["ip"] == "10.0.0.1")
    assert set(row) == {
        "dst",
        "dst_bi",
        "dst_bo",
        "flow_direction",
        "num_connections",
        "policy_decision",
        "service",
        "src",
        "state",
        "timestamp_range",
    }
    assert row["num_connections"] == 5
    assert row["service"] == {"port": 443, "proto": 6}
    assert row["dst"]["workload"]["labels"] == [DB, PROD]
    assert row["flow_direction"] == "inbound"
    assert row["timestamp_range"] == {"first_detected": "2024-05-01T12:00:00Z", "last_detected": "2024-05-01T12:00:00Z"}
    unknown_source = next(r for r in rows if r["src"]["ip"] == "192.0.2.7")
    assert unknown_source["src"] == {"ip": "192.0.2.7"}


# --- over HTTPS ---------------------------------------------------------------------------------------------
CSV_HEADERS = {"Content-Type": "text/csv", "X-Bulk-Traffic-Load-CSV-Version": "1"}


def finished(api, href: str) -> dict:
    return wait_for(lambda: (q := api.get(href).json())["status"] == "completed" and q)


def test_upload_reports_bad_lines_and_keeps_good_ones(api):
    body = "192.0.2.1,192.0.2.2,80,6\n192.0.2.1,192.0.2.2,99999,6\n\nnot,a,flow,line\n192.0.2.3,192.0.2.2,53,udp,4\n"
    answer = api.post("/orgs/1/agents/bulk_traffic_flows", data=body, headers=CSV_HEADERS)
    assert answer.status_code == 200
    result = answer.json()
    assert (result["num_flows_received"], result["num_flows_failed"]) == (4, 2)
    assert result["failed_flows"] == ["192.0.2.1,192.0.2.2,99999,6", "not,a,flow,line"]
    assert [e["line"] for e in result["errors"]] == [2, 4]


def test_upload_header_and_encoding_rules(api):
    flows = b"192.0.2.8,192.0.2.9,443,6\n"
    version_two = {**CSV_HEADERS, "X-Bulk-Traffic-Load-CSV-Version": "2"}
    assert api.post("/orgs/1/agents/bulk_traffic_flows", data=flows, headers=version_two).status_code == 406
    as_json = {"Content-Type": "application/json"}
    assert api.post("/orgs/1/agents/bulk_traffic_flows", data=flows, headers=as_json).status_code == 406
    deflated = {**CSV_HEADERS, "Content-Encoding": "deflate"}
    packed = api.post("/orgs/1/agents/bulk_traffic_flows", data=zlib.compress(flows), headers=deflated)
    assert packed.json()["num_flows_failed"] == 0
    broken = api.post(
        "/orgs/1/agents/bulk_traffic_flows", data=b"xx", headers={**CSV_HEADERS, "Content-Encoding": "gzip"}
    )
    assert broken.status_code == 406


def test_uploaded_flows_read_back_through_an_async_query_with_workloads(lab, api):
    web = new_label(api, "role")
    interfaces = [{"name": "eth0", "address": "198.51.100.10", "cidr_block": 24}]
    activation = pair_ven(lab, "web.lab", profile={"labels": [{"href": web["href"]}]}, interfaces=interfaces)
    day = datetime.now(UTC).date().isoformat()
    upload = "198.51.100.10,198.51.100.20,8443,6,3\n198.51.100.10,198.51.100.20,8443,6,2\n"
    upload += "198.51.100.30,198.51.100.20,22,6\n"
    assert (
        api.post("/orgs/1/agents/bulk_traffic_flows", data=upload, headers=CSV_HEADERS).json()["num_flows_failed"] == 0
    )
    query = {
        "start_date": day,
        "end_date": day,
        "sources": {"include": [[{"label": {"href": web["href"]}}]], "exclude": []},
        "destinations": {"include": [], "exclude": []},
        "services": {"include": [{"port": 8443, "proto": 6}], "exclude": []},
        "policy_decisions": [],
        "max_results": 100,
    }
    created = api.post("/orgs/1/traffic_flows/async_queries", json=query)
    assert created.status_code == 202
    assert created.json()["status"] == "queued" and created.json()["query_parameters"] == query
    done = finished(api, created.json()["href"])
    assert done["flows_count"] == 1 and done["result"] == created.json()["href"] + "/download"
    [flow] = api.get(done["result"]).json()
    assert flow["src"]["workload"]["href"] == activation["workload_href"]
    assert flow["src"]["workload"]["labels"] == [{"href": web["href"], "key": "role", "value": web["value"]}]
    assert flow["src"]["workload"]["hostname"] == "web.lab"
    assert flow["dst"] == {"ip": "198.51.100.20"}
    assert flow["num_connections"] == 5 and flow["service"] == {"port": 8443, "proto": 6}
    assert flow["policy_decision"] == "potentially_blocked" and flow["flow_direction"] == "outbound"
    listed = api.get("/orgs/1/traffic_flows/async_queries").json()
    assert created.json()["href"] in [q["href"] for q in listed]


def test_bad_queries_are_refused_and_unknown_ones_are_404(api):
    bad = api.post("/orgs/1/traffic_flows/async_queries", json={"start_date": "yesterday", "end_date": "2024-01-01"})
    assert bad.status_code == 406 and "start_date" in bad.json()[0]["message"]
    assert api.get("/orgs/1/traffic_flows/async_queries/nope").status_code == 404
    assert api.get("/orgs/1/traffic_flows/async_queries/nope/download").status_code == 404
