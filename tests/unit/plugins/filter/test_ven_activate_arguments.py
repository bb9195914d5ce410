"""Filter microseg.illumio.ven_activate_arguments: checked activate options as pairing-script arguments."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.microseg.illumio.plugins.filter.ven_activate_arguments import (
    FilterModule,
    ven_activate_arguments,
)

CODE = "00112233445566778899aabbccddeeff"


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters() == {"ven_activate_arguments": ven_activate_arguments}


def test_the_documented_example():
    options = {
        "management_server": "pce.example.com:8443",
        "labels": {"role": "web", "env": "prod"},
        "enforcement_mode": "visibility_only",
    }
    assert ven_activate_arguments(options) == [
        "--management-server",
        "pce.example.com:8443",
        "--role",
        "web",
        "--env",
        "prod",
        "--enforcement_mode",
        "visibility_only",
    ]


def test_every_option_in_the_documented_order_on_linux():
    options = {
        "proxy_server": "proxy.example.com:3128",
        "log_traffic": True,
        "visibility_level": "flow_summary",
        "enforcement_mode": "selective",
        "labels": {"loc": "eu", "app": "shop"},
        "name": "web 1",
        "management_server": "10.0.0.5:8443",
    }
    assert ven_activate_arguments(options) == [
        "--management-server",
        "10.0.0.5:8443",
        "--name",
        "web 1",
        "--app",
        "shop",
        "--loc",
        "eu",
        "--enforcement_mode",
        "selective",
        "--visibility-level",
        "flow_summary",
        "--log-traffic",
        "true",
        "--proxy-server",
        "proxy.example.com:3128",
    ]


def test_windows_uses_one_dash():
    options = {"labels": {"role": "web"}, "name": "web1", "log_traffic": False}
    assert ven_activate_arguments(options, "windows") == ["-name", "web1", "-role", "web", "-log_traffic", "false"]
    assert ven_activate_arguments(options, platform="linux") == [
        "--name",
        "web1",
        "--role",
        "web",
        "--log-traffic",
        "false",
    ]


def test_empty_values_are_left_out_but_false_is_kept():
    options = {"name": "", "labels": {}, "proxy_server": None, "management_server": None, "log_traffic": False}
    assert ven_activate_arguments(options) == ["--log-traffic", "false"]
    assert ven_activate_arguments({}) == []


def test_empty_values_are_not_checked():
    # An empty proxy or server is "not given", not a malformed one.
    assert ven_activate_arguments({"proxy_server": "", "management_server": ""}, "windows") == []


@pytest.mark.parametrize("options", [None, "--role web", ["--role", "web"], 3])
def test_not_a_dict(options):
    with pytest.raises(AnsibleFilterError, match=r"^ven_activate_arguments takes a dict of activate options$"):
        ven_activate_arguments(options)


def test_unknown_options_are_named_and_the_code_is_not_one_of_them():
    with pytest.raises(AnsibleFilterError) as error:
        ven_activate_arguments({"role": "web", "activation_code": CODE, "name": "x"})
    assert str(error.value) == "ven_activate_arguments: unknown option(s) activation_code, role"
    assert CODE not in str(error.value)


@pytest.mark.parametrize("platform", ["Linux", "aix", "", None])
def test_platform_must_be_linux_or_windows(platform):
    with pytest.raises(AnsibleFilterError) as error:
        ven_activate_arguments({}, platform)
    assert str(error.value) == f"ven_activate_arguments: platform must be linux or windows, not {platform!r}"


def test_every_broken_rule_in_one_message_management_server_first():
    options = {
        "management_server": "pce.example.com",
        "labels": {"os": "linux", "role": "web:1"},
        "name": "a:b",
        "visibility_level": "flow_off",
        "log_traffic": True,
        "proxy_server": "http://proxy:3128",
    }
    with pytest.raises(AnsibleFilterError) as error:
        ven_activate_arguments(options, "windows")
    assert str(error.value) == "VEN activate options: " + "; ".join(
        [
            "management_server must be HOST:PORT, such as pce.example.com:8443 (got 'pce.example.com')",
            "labels: activation sets only role/app/env/loc labels, not 'os'",
            "labels.role: Windows activation fails on a colon in a value ('web:1')",
            "name: Windows activation fails on a colon in a value ('a:b')",
            "visibility_level flow_off with log_traffic true is an invalid combination",
            "proxy_server: Windows VENs find their proxy themselves; leave it unset",
        ]
    )


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"management_server": "pce:70000"}, "management_server must be HOST:PORT"),
        ({"proxy_server": "https://proxy:3128"}, "proxy_server: the VEN supports http proxies only, not https://"),
        (
            {"visibility_level": "flow_drops", "enforcement_mode": "visibility_only"},
            "visibility_level flow_drops is valid only with enforcement_mode full, not visibility_only",
        ),
        ({"labels": {"department": "x"}}, "labels: activation sets only role/app/env/loc labels, not 'department'"),
    ],
)
def test_single_broken_rules_on_linux(options, reason):
    with pytest.raises(AnsibleFilterError) as error:
        ven_activate_arguments(options)
    assert str(error.value).startswith("VEN activate options: " + reason)


def test_colons_are_fine_on_linux():
    assert ven_activate_arguments({"name": "a:b", "labels": {"env": "x:y"}}) == ["--name", "a:b", "--env", "x:y"]


def test_log_traffic_false_as_text_does_not_turn_logging_on():
    try:
        arguments = ven_activate_arguments({"log_traffic": "false"})
    except AnsibleFilterError:
        return
    assert arguments == ["--log-traffic", "false"]


@pytest.mark.parametrize("options", [{"enforcement_mode": "enforced"}, {"visibility_level": "flow_all"}])
def test_unknown_modes_and_levels_are_refused(options):
    with pytest.raises(AnsibleFilterError):
        ven_activate_arguments(options)
