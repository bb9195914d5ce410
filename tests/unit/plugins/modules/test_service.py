"""The service module against the fake policy PCE: protocols by name, port ranges, ICMP, Windows services."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import service
from fake_policy_pce import FakePolicyPce
from module_runner import run_module


@pytest.fixture
def pce(serve, tls_files):
    fake = FakePolicyPce()
    fake.server = serve(fake.handle)
    fake.server_ca = tls_files.ca_cert
    return fake


def run(pce, check_mode=False, diff=False, **args):
    return run_module(service.main, pce.connection(**args), check_mode=check_mode, diff=diff)


PORTS = [
    {"proto": "tcp", "port": 80},
    {"proto": "TCP", "port": 443, "to_port": 443},
    {"proto": "udp", "port": 49152, "to_port": 65535},
    {"proto": "icmp", "icmp_type": 8, "icmp_code": 0},
    {"proto": 58},
    {"proto": "47"},
]


def test_creates_with_protocol_numbers_then_is_idempotent(pce):
    created = run(pce, diff=True, name="S-Mixed", description="mixed", service_ports=PORTS)
    assert created["changed"] is True
    [post] = pce.changes()
    assert post.body == {
        "name": "S-Mixed",
        "description": "mixed",
        "service_ports": [
            {"proto": 6, "port": 80},
            {"proto": 6, "port": 443},
            {"proto": 17, "port": 49152, "to_port": 65535},
            {"proto": 1, "icmp_type": 8, "icmp_code": 0},
            {"proto": 58},
            {"proto": 47},
        ],
    }
    assert created["diff"]["after"]["service_ports"] == [
        {"proto": "tcp", "port": 80},
        {"proto": "tcp", "port": 443},
        {"proto": "udp", "port": 49152, "to_port": 65535},
        {"proto": "icmp", "icmp_type": 8, "icmp_code": 0},
        {"proto": "icmpv6"},
        {"proto": "gre"},
    ]
    again = run(pce, name="S-Mixed", service_ports=list(reversed(PORTS)))
    assert again["changed"] is False
    assert run(pce, check_mode=True, name="S-Mixed", service_ports=PORTS)["changed"] is False
    assert len(pce.changes()) == 1


def test_ports_as_the_pce_stores_them_compare_equal(pce):
    # The PCE answers ICMP entries with icmp_type/icmp_code null and may keep to_port equal to port.
    pce.add(
        "services",
        provisioned=True,
        name="S-Ping",
        service_ports=[
            {"proto": 1, "icmp_type": None, "icmp_code": None},
            {"proto": 6, "port": 22, "to_port": 22},
        ],
    )
    result = run(pce, name="S-Ping", service_ports=[{"proto": "tcp", "port": 22}, {"proto": "icmp"}])
    assert result["changed"] is False
    assert result["provision_pending"] is False


def test_update_replaces_the_ports_and_shows_the_difference(pce):
    pce.add("services", provisioned=True, name="S-Web", service_ports=[{"proto": 6, "port": 80}])
    result = run(pce, diff=True, name="S-Web", service_ports=[{"proto": "tcp", "port": 8080}])
    assert result["changed"] is True
    assert result["diff"]["before"]["service_ports"] == [{"proto": "tcp", "port": 80}]
    assert result["diff"]["after"]["service_ports"] == [{"proto": "tcp", "port": 8080}]
    assert pce.changes()[0].body == {"service_ports": [{"proto": 6, "port": 8080}]}
    assert result["provision_pending"] is True


def test_windows_services_and_process_name(pce):
    result = run(
        pce,
        name="S-DNS",
        process_name="svchost.exe",
        windows_services=[{"service_name": "Dnscache", "proto": "udp", "port": 53}, {"process_name": "dns.exe"}],
    )
    assert result["changed"] is True
    assert pce.changes()[0].body == {
        "name": "S-DNS",
        "process_name": "svchost.exe",
        "windows_services": [{"service_name": "Dnscache", "proto": 17, "port": 53}, {"process_name": "dns.exe"}],
    }
    assert result["service"]["windows_services"][0] == {"service_name": "Dnscache", "proto": "udp", "port": 53}
    again = run(
        pce,
        name="S-DNS",
        windows_services=[{"process_name": "dns.exe"}, {"service_name": "Dnscache", "proto": 17, "port": 53}],
    )
    assert again["changed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"service_ports": [{"proto": "tcpp", "port": 1}]}, "unknown protocol 'tcpp'"),
        ({"service_ports": [{"proto": 300}]}, "out of range"),
        ({"service_ports": [{"proto": "tcp", "port": 70000}]}, "port must be a whole number from 0 to 65535"),
        (
            {"service_ports": [{"proto": "tcp", "port": 90, "to_port": 80}]},
            "the port range 90-80 ends before it starts",
        ),
        ({"service_ports": [{"proto": "icmp", "port": 80}]}, "port and to_port need a protocol with ports"),
        ({"service_ports": [{"proto": "tcp", "icmp_type": 8}]}, "icmp_type and icmp_code need proto icmp or icmpv6"),
        ({"service_ports": [{"proto": "icmp", "icmp_type": 256}]}, "icmp_type must be a whole number from 0 to 255"),
        ({"service_ports": [{"proto": "tcp", "to_port": 80}]}, "missing parameter(s) required by 'to_port': port"),
        ({"service_ports": [{"proto": "icmp", "icmp_code": 1}]}, "missing parameter(s) required by 'icmp_code'"),
        ({"service_ports": [{"port": 80}]}, "missing required arguments: proto"),
        ({"service_ports": [{"proto": "tcp", "prot": 80}]}, "Unsupported parameters"),
        ({"windows_services": [{"port": 53, "proto": "udp"}]}, "one of the following is required"),
        ({"windows_services": [{"service_name": "x", "port": 53}]}, "missing parameter(s) required by 'port': proto"),
        (
            {"service_ports": [{"proto": "tcp"}], "windows_services": [{"service_name": "x"}]},
            "parameters are mutually exclusive: service_ports|windows_services",
        ),
        ({"new_name": "x", "state": "absent"}, "only goes with state=present"),
    ],
)
def test_bad_input_fails_before_any_request(pce, args, message):
    result = run(pce, name="S", **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert pce.requests == []


@pytest.mark.parametrize("args", [{"service_ports": [{"proto": "tcp"}]}, {"new_name": "x"}, {"state": "absent"}])
def test_all_services_is_protected(pce, args):
    result = run(pce, name="All Services", **args)
    assert result["failed"] is True
    assert "service 'All Services' is built into the PCE and cannot be" in result["msg"]
    assert pce.changes() == []


def test_rename_then_delete_a_draft_that_was_never_provisioned(pce):
    original = pce.add("services", name="S-Old", service_ports=[{"proto": 6, "port": 1}])
    renamed = run(pce, name="S-Old", new_name="S-New")
    assert renamed["service"]["href"] == original["href"]
    assert renamed["service"]["name"] == "S-New"
    deleted = run(pce, name="S-New", state="absent")
    assert deleted["changed"] is True
    assert deleted["provision_pending"] is False
    assert pce.get("services", "S-New") is None
