"""module_utils/flows/report.py: flow_query rows into a graph of app groups, and that graph as one HTML page."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.flows import report
from ansible_collections.microseg.illumio.plugins.module_utils.flows.report import ReportError, build_model, render_html


def flow(src_ip="10.1.2.3", dst_ip="10.1.9.9", src_labels=None, dst_labels=None, **changes):
    """One row as flow_query returns it; an end with labels is a workload."""
    row = {
        "src_ip": src_ip,
        "src_hostname": None,
        "src_workload": "/orgs/1/workloads/src" if src_labels else None,
        "src_labels": src_labels or {},
        "dst_ip": dst_ip,
        "dst_hostname": None,
        "dst_workload": "/orgs/1/workloads/dst" if dst_labels else None,
        "dst_labels": dst_labels or {},
        "port": 443,
        "proto": 6,
        "proto_name": "tcp",
        "num_connections": 1,
        "policy_decision": "allowed",
        "flow_direction": "outbound",
        "first_detected": "2026-11-23T13:01:00Z",
        "last_detected": "2026-11-23T13:55:10Z",
    }
    row.update(changes)
    return row


WEB = {"app": "shop", "env": "prod", "role": "web"}
DB = {"app": "shop", "env": "prod", "role": "db"}
PAY = {"app": "pay", "env": "prod", "role": "api"}
DEV = {"app": "shop", "env": "dev"}


def edges_by_name(model):
    return {(edge["source_name"], edge["target_name"]): edge for edge in model["edges"]}


def node_names(model):
    return [node["name"] for node in model["nodes"]]


class Page(HTMLParser):
    """The parts of a page the tests look at: the svg's node and edge groups, and every tag seen."""

    def __init__(self):
        super().__init__()
        self.tags = []
        self.svg_count = 0
        self.nodes = []
        self.edges = []
        self.open_svg = 0
        self.texts = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "svg":
            self.svg_count += 1
            self.open_svg += 1
        classes = (attributes.get("class") or "").split()
        if self.open_svg and tag == "g" and "node" in classes:
            self.nodes.append(attributes)
        if self.open_svg and tag == "g" and "edge" in classes:
            self.edges.append(attributes)

    def handle_endtag(self, tag):
        if tag == "svg":
            self.open_svg -= 1

    def handle_data(self, data):
        self.texts.append(data)


def parse(page):
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


def test_groups_workloads_by_label_values_and_sums_edges():
    rows = [
        flow("10.0.0.1", "10.0.0.2", WEB, DB, num_connections=5, port=5432),
        flow("10.0.0.3", "10.0.0.2", WEB, DB, num_connections=7, port=5432),
        flow("10.0.0.1", "10.0.0.9", WEB, PAY, num_connections=2),
        flow("10.0.0.4", "10.0.0.2", DEV, DB, num_connections=1, port=22, proto_name=None, proto=6),
    ]
    model = build_model(rows)
    assert node_names(model) == ["pay | prod", "shop | dev", "shop | prod"]
    assert all(node["kind"] == report.WORKLOAD_GROUP for node in model["nodes"])
    edges = edges_by_name(model)
    # web and db share app and env, so their flows are one loop on "shop | prod".
    loop = edges[("shop | prod", "shop | prod")]
    assert (loop["connections"], loop["flows"], loop["services"]) == (12, 2, ["tcp/5432"])
    assert edges[("shop | prod", "pay | prod")]["connections"] == 2
    assert edges[("shop | dev", "shop | prod")]["services"] == ["tcp/22"]
    assert model["totals"] == {
        "groups": 3,
        "edges": 3,
        "flows": 4,
        "connections": 15,
        "blocked_edges": 0,
        "first_detected": "2026-11-23T13:01:00Z",
        "last_detected": "2026-11-23T13:55:10Z",
    }


def test_group_by_other_keys_and_missing_labels_show_a_dash():
    rows = [flow("10.0.0.1", "10.0.0.2", {"role": "web"}, {"app": "shop", "role": "db"})]
    model = build_model(rows, group_by=["app", "role"])
    assert node_names(model) == ["- | web", "shop | db"]
    model = build_model(rows, group_by=["env"])
    assert node_names(model) == ["-"]
    # A workload href without labels is a workload too, not an address.
    bare = flow("10.0.0.1", "10.0.0.2", None, DB, src_workload="/orgs/1/workloads/w9")
    assert node_names(build_model([bare])) == ["- | -", "shop | prod"]


def test_address_groups_with_ipv4_and_ipv6_cidrs_most_specific_wins():
    groups = [
        {"name": "internet", "cidrs": ["0.0.0.0/0", "::/0"]},
        {"name": "office", "cidrs": ["192.168.0.0/16", "2001:db8:100::/48"]},
        {"name": "dmz", "cidrs": ["10.20.0.5"]},
    ]
    rows = [
        flow("192.168.4.4", "10.0.0.2", None, DB, num_connections=3),
        flow("2001:db8:100:1::7", "10.0.0.2", None, DB, num_connections=4),
        flow("2001:db8:200::1", "10.0.0.2", None, DB),
        flow("10.0.0.2", "10.20.0.5", DB, None, num_connections=2),
        flow("10.0.0.2", "8.8.8.8", DB, None),
    ]
    model = build_model(rows, address_groups=groups)
    assert node_names(model) == ["shop | prod", "dmz", "internet", "office"]
    office = next(node for node in model["nodes"] if node["name"] == "office")
    assert office["kind"] == report.ADDRESS_GROUP
    assert office["members"] == ["192.168.4.4", "2001:db8:100:1::7"]
    edges = edges_by_name(model)
    assert edges[("office", "shop | prod")]["connections"] == 7
    assert edges[("internet", "shop | prod")]["connections"] == 1
    assert edges[("shop | prod", "internet")]["connections"] == 1
    assert edges[("shop | prod", "dmz")]["connections"] == 2


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ([{"name": "dmz", "cidrs": ["10.0.0.0/33"]}], "address_groups[0] (dmz): '10.0.0.0/33' is not a valid"),
        ([{"name": "a", "cidrs": ["10.0.0.0/8"]}, {"name": "b", "cidrs": ["fe80::/zz"]}], "address_groups[1] (b)"),
        ([{"name": "", "cidrs": ["10.0.0.0/8"]}], "address_groups[0] needs a name"),
        ([{"name": "x", "cidrs": []}], "needs a list of CIDRs"),
    ],
)
def test_bad_address_groups(groups, message):
    with pytest.raises(ReportError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        build_model([flow()], address_groups=groups)


def test_addresses_beyond_max_address_nodes_are_merged_busiest_kept():
    rows = [flow(f"10.9.0.{number}", "10.0.0.2", None, DB, num_connections=number) for number in range(1, 11)]
    rows.append(flow("10.0.0.2", "10.9.0.1", DB, None, num_connections=100))  # now the busiest
    model = build_model(rows, max_address_nodes=3)
    assert node_names(model) == ["shop | prod", "10.9.0.1", "10.9.0.9", "10.9.0.10", "other addresses"]
    other = model["nodes"][-1]
    assert other["kind"] == report.OTHER
    assert other["members"] == [f"10.9.0.{number}" for number in range(2, 9)]
    edges = edges_by_name(model)
    assert edges[("other addresses", "shop | prod")]["connections"] == sum(range(2, 9))
    assert edges[("other addresses", "shop | prod")]["flows"] == 7
    assert edges[("shop | prod", "10.9.0.1")]["connections"] == 100
    # Edges follow the node order: groups by name, then addresses by number (10.9.0.9 before 10.9.0.10).
    assert [(edge["source_name"], edge["target_name"]) for edge in model["edges"]] == [
        ("shop | prod", "10.9.0.1"),
        ("10.9.0.1", "shop | prod"),
        ("10.9.0.9", "shop | prod"),
        ("10.9.0.10", "shop | prod"),
        ("other addresses", "shop | prod"),
    ]
    merged_all = build_model(rows, max_address_nodes=0)
    assert node_names(merged_all) == ["shop | prod", "other addresses"]


def test_address_nodes_show_hostnames_and_tolerate_missing_fields():
    rows = [
        {"src_ip": "10.0.0.7", "dst_ip": "10.0.0.8", "dst_hostname": "db.example"},
        {"src_ip": None, "dst_ip": "10.0.0.8", "src_labels": None, "port": None, "proto": 1, "num_connections": None},
        {"src_ip": "10.0.0.7", "dst_ip": "2001:db8::1", "proto": 17, "port": 53, "policy_decision": None},
    ]
    model = build_model(rows)
    assert node_names(model) == ["10.0.0.7", "db.example (10.0.0.8)", "2001:db8::1", "(no address)"]
    edges = edges_by_name(model)
    assert edges[("(no address)", "db.example (10.0.0.8)")]["services"] == ["icmp"]
    assert edges[("10.0.0.7", "db.example (10.0.0.8)")]["services"] == ["any"]
    assert edges[("10.0.0.7", "2001:db8::1")]["services"] == ["udp/53"]
    assert edges[("10.0.0.7", "2001:db8::1")]["decision"] == "unknown"
    assert model["totals"]["connections"] == 3  # a row without num_connections counts as one
    assert model["totals"]["first_detected"] is None
    assert "carry no detection times" in render_html(model)


def test_decisions_give_the_edge_its_class_worst_first():
    def decision_of(*decisions):
        rows = [flow("10.0.0.1", "10.0.0.2", WEB, PAY, policy_decision=decision) for decision in decisions]
        [edge] = build_model(rows)["edges"]
        return edge["decision"], edge["decisions"]

    assert decision_of("allowed", "allowed") == ("allowed", {"allowed": 2})
    assert decision_of("allowed", None) == ("unknown", {"allowed": 1, "unknown": 1})
    assert decision_of("allowed", "potentially_blocked", "unknown")[0] == "potentially_blocked"
    assert decision_of("potentially_blocked", "blocked", "allowed") == (
        "blocked",
        {"allowed": 1, "potentially_blocked": 1, "blocked": 1},
    )
    rows = [
        flow("10.0.0.1", "10.0.0.2", WEB, PAY, policy_decision="blocked"),
        flow("10.0.0.1", "10.0.0.3", WEB, DEV, policy_decision="potentially_blocked"),
        flow("10.0.0.1", "10.0.0.4", WEB, None, policy_decision="unknown"),
    ]
    assert build_model(rows)["totals"]["blocked_edges"] == 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"src_ip": None, "dst_ip": "", "port": 443}, r"flows\[1\] has neither src_ip nor dst_ip"),
        ({"port": 443}, r"flows\[1\] has neither src_ip nor dst_ip"),
        ("10.0.0.1", r"flows\[1\] must be a dict"),
        ({"src_ip": "10.0.0.1", "num_connections": "many"}, r"flows\[1\]: num_connections must be a number"),
        ({"src_ip": "10.0.0.1", "policy_decision": "denied"}, r"flows\[1\]: policy_decision 'denied' is not one of"),
        ({"src_ip": "10.0.0.1", "src_labels": ["app:x"]}, r"flows\[1\]: src_labels must be a dict"),
    ],
)
def test_bad_rows_name_their_index(row, message):
    with pytest.raises(ReportError, match=message):
        build_model([flow(), row])


def test_page_parses_with_one_svg_node_per_group_and_classed_edges():
    rows = [
        flow("10.0.0.1", "10.0.0.2", WEB, PAY, policy_decision="blocked", num_connections=40),
        flow("10.0.0.1", "10.0.0.3", WEB, DEV, policy_decision="potentially_blocked"),
        flow("10.0.0.1", "10.0.0.4", WEB, None, policy_decision="allowed"),
        flow("10.0.0.4", "10.0.0.1", None, WEB),
    ]
    model = build_model(rows)
    page = render_html(model, title="Shop")
    parsed = parse(page)
    assert parsed.svg_count == 1
    assert len(parsed.nodes) == model["totals"]["groups"] == 4
    assert {node["id"] for node in parsed.nodes} == {node["id"] for node in model["nodes"]}
    assert len(parsed.edges) == 4
    by_ends = {(edge["data-source"], edge["data-target"]): edge["class"].split() for edge in parsed.edges}
    ids = {node["name"]: node["id"] for node in model["nodes"]}
    assert by_ends[(ids["shop | prod"], ids["pay | prod"])] == ["edge", "blocked"]
    assert by_ends[(ids["shop | prod"], ids["shop | dev"])] == ["edge", "potentially_blocked"]
    assert by_ends[(ids["shop | prod"], ids["10.0.0.4"])] == ["edge", "allowed"]
    tags = {tag for tag, _attributes in parsed.tags}
    assert {"style", "script", "table", "svg", "path", "marker", "title", "details"} <= tags
    assert ("title", {}) in parsed.tags and "Shop" in parsed.texts
    # Self-contained: nothing is loaded from anywhere.
    for tag, attributes in parsed.tags:
        assert "src" not in attributes, tag
        assert not (attributes.get("href") or "").strip(), tag
        assert tag not in ("link", "img", "iframe", "object", "embed")
    assert "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(http" not in page


def test_user_data_is_escaped():
    evil = "<script>alert(1)</script>"
    rows = [
        flow(
            "10.0.0.1",
            "10.0.0.2",
            {"app": evil, "env": 'a"b'},
            None,
            dst_hostname="<b>host</b>",
            proto_name="<i>tcp</i>",
            first_detected="<x>",
        )
    ]
    model = build_model(rows, group_by=["app", "env"], address_groups=[{"name": "<dmz&>", "cidrs": ["10.0.0.2/32"]}])
    page = render_html(model, title="<title>")
    assert evil not in page
    assert "<b>host" not in page and "<i>tcp" not in page and "<x>" not in page and "<dmz&>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&quot;b" in page
    assert page.count("<script>") == 1  # only the page's own
    assert "&lt;title&gt;" in page
    parsed = parse(page)
    assert evil + ' | a"b' in "".join(parsed.texts)


def test_rendering_is_deterministic_and_has_no_generation_time():
    rows = [
        flow(
            f"10.0.0.{number % 7}",
            f"10.0.1.{number % 5}",
            WEB,
            None,
            num_connections=number,
            first_detected=f"2020-01-0{number % 9 + 1}T10:00:00Z",
            last_detected=f"2020-01-1{number % 9}T10:00:00Z",
        )
        for number in range(60)
    ]
    groups = [{"name": "n", "cidrs": ["10.0.1.0/30"]}]
    first = render_html(build_model(rows, address_groups=groups))
    second = render_html(build_model([dict(row) for row in rows], address_groups=[dict(groups[0])]))
    assert first == second
    assert time.strftime("%Y-%m-%d", time.gmtime()) not in first
    assert "first detected 2020-01-01T10:00:00Z, last detected 2020-01-18T10:00:00Z" in first


def test_summary_text_is_kept_in_the_page_and_read_back():
    rows = [
        flow("10.0.0.1", "10.0.0.2", {"app": "<a>", "env": "prod"}, DB, policy_decision="blocked", num_connections=3),
        flow("10.0.0.1", "10.0.0.2", {"app": "<a>", "env": "prod"}, DB, port=22),
    ]
    model = build_model(rows)
    text = report.summary_text(model)
    assert text == "<a> | prod -> shop | prod: 4 connections, 2 flows, allowed=1 blocked=1, tcp/22 tcp/443\n"
    assert report.summary_text_of_page(render_html(model)) == text
    assert report.summary_text_of_page("<html>not ours</html>") is None
    assert report.summary(model) == [
        {
            "source": "<a> | prod",
            "destination": "shop | prod",
            "connections": 4,
            "flows": 2,
            "decision": "blocked",
            "decisions": {"allowed": 1, "blocked": 1},
            "services": ["tcp/22", "tcp/443"],
        }
    ]


def generated_flows(count):
    decisions = ["allowed", "potentially_blocked", "blocked", "unknown", None]
    rows = []
    for number in range(count):
        src = {"app": f"app{number % 12}", "env": ("prod", "dev", "test")[number % 3]} if number % 4 else None
        dst = {"app": f"app{number % 9}", "env": "prod"} if number % 5 else None
        rows.append(
            flow(
                f"10.{number % 3}.{number % 250}.{number % 199}",
                f"172.16.{number % 40}.{number % 97}" if number % 7 else f"2001:db8::{number:x}",
                src,
                dst,
                port=(443, 22, 5432, 53, 8080)[number % 5],
                num_connections=number % 50 + 1,
                policy_decision=decisions[number % 5],
            )
        )
    return rows


def test_five_thousand_flows_render_with_a_capped_flow_table():
    # How fast is measured by tests/bench/bench_flow_report.py (a figure, not a timed test).
    rows = generated_flows(5000)
    model = build_model(rows, address_groups=[{"name": "dc", "cidrs": ["172.16.0.0/20", "2001:db8::/120"]}])
    page = render_html(model)
    assert len(page) < 2 * 1024 * 1024
    parsed = parse(page)
    assert len(parsed.nodes) == model["totals"]["groups"]
    assert len(parsed.edges) == model["totals"]["edges"]
    assert model["totals"]["flows"] == 5000
    flow_rows = page.split('<table class="flows">', 1)[1].count("<tr>") - 1  # minus the header row
    assert flow_rows == report.DEFAULT_MAX_FLOW_ROWS
    assert "Showing the first 2000 of 5000 flow rows; 3000 rows were left out" in page
    edge_rows = page.split('<table class="edges">', 1)[1].split("</table>", 1)[0].count("<tr>") - 1
    assert edge_rows == model["totals"]["edges"]
    assert render_html(model, max_flow_rows=10).count("rows were left out") == 1


def test_empty_flows_give_an_empty_map():
    model = build_model([])
    page = render_html(model)
    assert model["totals"]["groups"] == 0
    assert "No flows." in page
    assert parse(page).svg_count == 1


def test_bad_arguments():
    with pytest.raises(ReportError, match="group_by needs at least one label key"):
        build_model([flow()], group_by=[])
    with pytest.raises(ReportError, match="max_address_nodes must be 0 or more"):
        build_model([flow()], max_address_nodes=-1)
