"""The policy_compile module: from a snapshot file or a (fake) PCE, text or files, check and diff mode."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
from ansible_collections.microseg.illumio.plugins.modules import policy_compile
from module_runner import run_module
from pce_test_server import Reply

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "module_utils" / "policy"))
from policy_builder import Org

USER, SECRET = "api_1f00dcafe1234", "0123456789abcdef-policy-compile-unit-secret"


@pytest.fixture
def org():
    org = Org()
    web, db, app = org.label("role", "web"), org.label("role", "db"), org.label("app", "shop")
    org.workload("web1.example.com", [web, app], ["10.0.1.1", "fd00::1"])
    org.workload("db1.example.com", [db, app], ["10.0.1.2"], mode="visibility_only")
    rs = org.rule_set("RS-SHOP", scopes=[[app]])
    org.rule(rs, providers=[db], consumers=[web], services=["tcp/5432"])
    org.rule(
        rs,
        providers=[web],
        consumers=[org.ip_list("office", ["192.0.2.0/24"], fqdns=["vpn.example.com"])],
        services=["tcp/443"],
    )
    return org


@pytest.fixture
def snapshot_file(org, tmp_path):
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(org.snapshot()))
    return path


def run(check_mode=False, diff=False, **args):
    return run_module(policy_compile.main, args, check_mode=check_mode, diff=diff)


def test_returns_nft_text_per_host_with_a_summary(snapshot_file):
    result = run(
        snapshot_file=str(snapshot_file), hosts=["web1.example.com", "db1", "ghost"], management_allow=["192.0.2.250"]
    )
    assert result["changed"] is False
    assert sorted(result["policies"]) == ["db1", "web1.example.com"]
    web = result["policies"]["web1.example.com"]
    assert web["enforcement_mode"] == "full" and web["hostname"] == "web1.example.com"
    assert web["nft"].splitlines()[3:5] == ["table inet illumio {}", "delete table inet illumio"]
    assert "192.0.2.0/24" in web["nft"] and "tcp dport 5432 accept" in web["nft"]
    assert "192.0.2.250" in web["nft"]
    assert web["summary"]["rules"] == 2 and web["summary"]["sets"] == 2
    assert any("vpn.example.com" in text for text in web["warnings"])
    db = result["policies"]["db1"]
    assert db["enforcement_mode"] == "visibility_only" and "policy accept;" in db["nft"]
    assert result["missing_hosts"] == ["ghost"]
    assert result["summary"]["hosts"] == 2 and result["summary"]["snapshot"]["workloads"] == 2
    assert result["msg"].startswith("compiled 2 host(s) for nftables: 3 rules")
    assert "no workload for: ghost" in result["msg"]
    assert "ir" not in web


def test_iptables_backend_returns_three_parts(snapshot_file):
    result = run(snapshot_file=str(snapshot_file), hosts=["web1.example.com"], backend="iptables", return_ir=True)
    web = result["policies"]["web1.example.com"]
    assert sorted(web) == sorted(
        ["workload", "hostname", "enforcement_mode", "summary", "warnings", "ipset", "iptables", "ip6tables", "ir"]
    )
    assert "-I INPUT 1 -j ILO-INPUT" in web["iptables"] and "create ILO-mgmt_allow_v6" in web["ipset"]
    assert web["ir"]["rules"][0]["hrefs"][0].startswith("/orgs/1/sec_policy/active/rule_sets/")


def test_writes_files_once_then_is_idempotent_with_check_and_diff_mode(snapshot_file, org, tmp_path):
    dest = tmp_path / "compiled"
    hosts = {"web": "web1.example.com", "db": org.workloads[1]["href"]}
    checked = run(check_mode=True, diff=True, snapshot_file=str(snapshot_file), hosts=hosts, dest=str(dest))
    assert checked["changed"] is True and not dest.exists()
    assert {d["after_header"] for d in checked["diff"]} == {str(dest / "web.nft"), str(dest / "db.nft")}
    assert all(d["before"] == "" for d in checked["diff"])

    written = run(snapshot_file=str(snapshot_file), hosts=hosts, dest=str(dest))
    assert written["changed"] is True and written["summary"]["files_changed"] == 2
    assert written["policies"]["web"]["files"] == {"nft": str(dest / "web.nft")}
    assert "nft" not in written["policies"]["web"]
    text = (dest / "web.nft").read_text()
    assert text == checked["diff"][1]["after"] or text == checked["diff"][0]["after"]

    again = run(snapshot_file=str(snapshot_file), hosts=hosts, dest=str(dest), diff=True)
    again_check = run(snapshot_file=str(snapshot_file), hosts=hosts, dest=str(dest), check_mode=True)
    assert again["changed"] is False and again_check["changed"] is False and "diff" not in again

    # A policy change rewrites only the hosts it concerns, and diff mode shows the change.
    data = json.loads(snapshot_file.read_text())
    data["rule_sets"][0]["rules"][1]["ingress_services"] = [{"proto": 6, "port": 8443}]  # web's inbound only
    snapshot_file.write_text(json.dumps(data))
    changed = run(snapshot_file=str(snapshot_file), hosts=hosts, dest=str(dest), diff=True)
    assert changed["changed"] is True
    assert (changed["policies"]["web"]["changed"], changed["policies"]["db"]["changed"]) == (True, False)
    [diff] = changed["diff"]
    assert "tcp dport 443 " in diff["before"] and "tcp dport 8443 " in diff["after"]
    assert (dest / "web.nft").read_text() == diff["after"]


def test_iptables_files_and_names_from_hrefs(snapshot_file, org, tmp_path):
    href = org.workloads[0]["href"]
    result = run(snapshot_file=str(snapshot_file), hosts=[href], dest=str(tmp_path), backend="iptables")
    assert sorted(path.name for path in tmp_path.glob("web1*")) == [
        "web1.example.com.ip6tables",
        "web1.example.com.ipset",
        "web1.example.com.iptables",
    ]
    assert set(result["policies"][href]["files"]) == {"ipset", "iptables", "ip6tables"}


def test_enforcement_mode_override(snapshot_file):
    everyone = run(
        snapshot_file=str(snapshot_file),
        hosts=["web1.example.com", "db1.example.com"],
        enforcement_mode_override="idle",
    )
    assert {p["enforcement_mode"] for p in everyone["policies"].values()} == {"idle"}
    assert "table inet illumio {\n" not in everyone["policies"]["db1.example.com"]["nft"]
    some = run(
        snapshot_file=str(snapshot_file),
        hosts=["web1.example.com", "db1.example.com"],
        enforcement_mode_override={"db1.example.com": "selective"},
    )
    assert [some["policies"][h]["enforcement_mode"] for h in ("web1.example.com", "db1.example.com")] == [
        "full",
        "selective",
    ]
    bad = run(snapshot_file=str(snapshot_file), hosts=["web1.example.com"], enforcement_mode_override="enforced")
    assert bad["failed"] and "'enforced' is not an enforcement mode" in bad["msg"]
    stray = run(
        snapshot_file=str(snapshot_file), hosts=["web1.example.com"], enforcement_mode_override={"other": "full"}
    )
    assert stray["failed"] and "names hosts that are not in hosts: other" in stray["msg"]


def test_input_problems_fail_clearly(snapshot_file, tmp_path):
    missing = run(hosts=["web1"])
    assert missing["failed"] and "missing PCE connection option(s): pce_host" in missing["msg"]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "not valid JSON" in run(snapshot_file=str(broken), hosts=["web1"])["msg"]
    assert "a list of objects" in run(snapshot_file=str(_write(tmp_path, {"workloads": {}})), hosts=["x"])["msg"]
    twice = run(
        snapshot_file=str(snapshot_file),
        hosts={"a/b": "web1.example.com", "a_b": "db1.example.com"},
        dest=str(tmp_path / "out"),
    )
    assert twice["failed"] and "would write the same files (a_b.*)" in twice["msg"]
    bad_cidr = run(snapshot_file=str(snapshot_file), hosts=["web1.example.com"], management_allow=["me"])
    assert bad_cidr["failed"] and "management_allow entry 'me'" in bad_cidr["msg"]


def _write(folder, data):
    path = folder / "data.json"
    path.write_text(json.dumps(data))
    return path


def test_reads_the_snapshot_from_the_pce(serve, tls_files, org):
    data = org.snapshot()
    # A PCE that answers a rule set without its rules inline: they come from its sec_rules collection.
    rules = data["rule_sets"][0].pop("rules")
    collections = {
        "/api/v2/orgs/1/labels": data["labels"],
        "/api/v2/orgs/1/sec_policy/active/label_groups": data["label_groups"],
        "/api/v2/orgs/1/sec_policy/active/ip_lists": data["ip_lists"],
        "/api/v2/orgs/1/sec_policy/active/services": data["services"],
        "/api/v2/orgs/1/sec_policy/active/rule_sets": data["rule_sets"],
        "/api/v2" + data["rule_sets"][0]["href"] + "/sec_rules": rules,
        "/api/v2/orgs/1/workloads": data["workloads"],
    }
    expected = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()

    def handle(request):
        if request.headers.get("authorization") != expected:
            return Reply(401, {"error": "Authentication required"})
        if request.path in collections:
            items = collections[request.path]
            return Reply(200, items, {"X-Total-Count": str(len(items))})
        return Reply(404, [{"token": "not_found", "message": "Not Found"}])  # no enforcement boundaries here

    server = serve(handle)
    result = run(
        pce_host="127.0.0.1",
        pce_port=server.port,
        api_key_username=USER,
        api_key_secret=SECRET,
        ca_path=str(tls_files.ca_cert),
        hosts=["db1.example.com"],
        enforcement_mode_override="full",
    )
    assert not result.get("failed"), result
    assert "tcp dport 5432 accept" in result["policies"]["db1.example.com"]["nft"]
    paths = [request.path for request in server.requests]
    assert "/api/v2/orgs/1/sec_policy/active/enforcement_boundaries" in paths
    assert all(request.method == "GET" for request in server.requests)
    assert SECRET not in json.dumps(result)
