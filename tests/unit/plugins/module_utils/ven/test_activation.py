"""module_utils/ven/activation.py: the installation guide's rules for `activate` options, and the activation file."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.ven import activation
from ansible_collections.microseg.illumio.plugins.module_utils.ven.activation import (
    activate_arguments,
    check_activation_code,
    check_management_server,
    check_proxy,
    problems,
    write_activation_file,
)

CODE = "1a2b3c4d5e6f7a8b9c0d"

# --- single values --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "server", ["pce.example.com:8443", "pce:443", "10.0.0.5:8443", "[2001:db8::1]:8443", "PCE-1.example.com:1"]
)
def test_good_management_servers(server):
    assert check_management_server(server) == ""


@pytest.mark.parametrize(
    "server",
    [
        None,
        "",
        "pce.example.com",
        "pce.example.com:",
        "pce.example.com:0",
        "pce.example.com:65536",
        "pce.example.com:123456",
        "https://pce.example.com:8443",
        "pce.example.com:8443/",
        "pce example.com:8443",
        "2001:db8::1:8443",
    ],
)
def test_bad_management_servers(server):
    assert check_management_server(server) == (
        f"management_server must be HOST:PORT, such as pce.example.com:8443 (got {server!r})"
    )


@pytest.mark.parametrize(
    "proxy",
    [
        "proxy.example.com",
        "proxy.example.com:3128",
        "http://proxy.example.com:3128",
        "HTTP://proxy.example.com:3128/",
        "http://10.0.0.1",
        "[2001:db8::2]:3128",
        "http://[2001:db8::2]:3128",
    ],
)
def test_good_proxies(proxy):
    assert check_proxy(proxy) == ""


@pytest.mark.parametrize(
    ("proxy", "reason"),
    [
        ("https://proxy:3128", "proxy_server: the VEN supports http proxies only, not https://"),
        ("socks5://proxy:1080", "proxy_server: the VEN supports http proxies only, not socks5://"),
        ("proxy:0", "proxy_server: port out of range in 'proxy:0'"),
        ("http://proxy:65536", "proxy_server: port out of range in 'http://proxy:65536'"),
        ("proxy:abc", "proxy_server must be [http://]SERVER[:PORT], not 'proxy:abc'"),
        ("http://", "proxy_server must be [http://]SERVER[:PORT], not 'http://'"),
        ("http://user:secret@proxy:3128", "proxy_server must not carry a user name or password (http://proxy:3128)"),
        ("user:se/cret@proxy:3128", "proxy_server must not carry a user name or password (proxy:3128)"),
        ("http://proxy:3128/path", "proxy_server must be [http://]SERVER[:PORT], not "),
        ("proxy server:3128", "proxy_server must be [http://]SERVER[:PORT], not "),
        ("", "proxy_server must be [http://]SERVER[:PORT], not ''"),
        (None, "proxy_server must be [http://]SERVER[:PORT], not None"),
    ],
)
def test_bad_proxies(proxy, reason):
    assert check_proxy(proxy).startswith(reason)
    assert "secret" not in check_proxy(proxy) and "se/cret" not in check_proxy(proxy)


@pytest.mark.parametrize("code", [CODE, "ABCDEF0123", "0"])
def test_good_activation_codes(code):
    assert check_activation_code(code) == ""


@pytest.mark.parametrize("code", [None, "", "xyz", "1a2b 3c", "1a2b\n3c", "-1a2b", "0x1a2b"])
def test_bad_activation_codes_do_not_repeat_the_value(code):
    reason = check_activation_code(code)
    assert reason == "activation_code must be the hexadecimal code of a pairing key"


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (check_activation_code, CODE + "\n"),
        (check_management_server, "pce.example.com:8443\n"),
        (check_proxy, "http://proxy:3128\n"),
    ],
)
def test_a_trailing_newline_is_not_accepted(check, value):
    assert check(value) != ""


# --- problems(): every rule -----------------------------------------------------------------------------------


def test_no_options_no_problems():
    assert problems({}) == []
    assert problems({}, windows=True) == []
    assert problems({"labels": None, "name": None, "proxy_server": None}) == []


def test_good_options_have_no_problems_on_linux():
    options = {
        "name": "web 1: front",
        "labels": {"role": "web", "app": "shop", "env": "prod:eu", "loc": "dc1"},
        "enforcement_mode": "full",
        "visibility_level": "flow_drops",
        "log_traffic": False,
        "proxy_server": "http://proxy:3128",
    }
    assert problems(options) == []


def test_only_the_four_label_keys_activate_takes():
    found = problems({"labels": {"role": "web", "os": "linux", "Env": "prod", "app": "a"}})
    assert found == [
        "labels: activation sets only role/app/env/loc labels, not 'Env'",
        "labels: activation sets only role/app/env/loc labels, not 'os'",
    ]


def test_windows_refuses_colons_in_label_values_and_name():
    options = {"labels": {"role": "web:1", "env": "prod", "loc": "eu:west"}, "name": "web:1"}
    assert problems(options) == []
    assert problems(options, windows=True) == [
        "labels.loc: Windows activation fails on a colon in a value ('eu:west')",
        "labels.role: Windows activation fails on a colon in a value ('web:1')",
        "name: Windows activation fails on a colon in a value ('web:1')",
    ]


def test_windows_colon_rule_applies_to_non_string_label_values():
    assert problems({"labels": {"app": 12}}, windows=True) == []


def test_flow_off_with_log_traffic_true_is_invalid():
    expected = ["visibility_level flow_off with log_traffic true is an invalid combination"]
    assert problems({"visibility_level": "flow_off", "log_traffic": True}) == expected
    assert problems({"visibility_level": "flow_off", "log_traffic": False}) == []
    # Not given: visibility-level takes precedence over the default of log-traffic.
    assert problems({"visibility_level": "flow_off"}) == []
    assert problems({"visibility_level": "flow_summary", "log_traffic": True}) == []


@pytest.mark.parametrize("mode", ["idle", "visibility_only", "selective"])
def test_flow_drops_only_with_full_enforcement(mode):
    assert problems({"visibility_level": "flow_drops", "enforcement_mode": mode}) == [
        f"visibility_level flow_drops is valid only with enforcement_mode full, not {mode}"
    ]


def test_flow_drops_with_full_or_with_the_profiles_mode_is_allowed():
    assert problems({"visibility_level": "flow_drops", "enforcement_mode": "full"}) == []
    assert problems({"visibility_level": "flow_drops"}) == []


def test_bad_proxy_is_a_problem():
    assert problems({"proxy_server": "https://proxy:3128"}) == [
        "proxy_server: the VEN supports http proxies only, not https://"
    ]
    assert problems({"proxy_server": "proxy:99999"}) == ["proxy_server: port out of range in 'proxy:99999'"]


def test_windows_finds_its_proxy_itself():
    assert problems({"proxy_server": "http://proxy:3128"}, windows=True) == [
        "proxy_server: Windows VENs find their proxy themselves; leave it unset"
    ]
    # A bad one on Windows: both reasons.
    assert problems({"proxy_server": "ftp://proxy"}, windows=True) == [
        "proxy_server: the VEN supports http proxies only, not ftp://",
        "proxy_server: Windows VENs find their proxy themselves; leave it unset",
    ]


def test_every_problem_is_reported_at_once():
    options = {
        "labels": {"os": "linux", "role": "a:b"},
        "name": "x:y",
        "visibility_level": "flow_off",
        "log_traffic": True,
        "proxy_server": "https://p",
    }
    assert len(problems(options, windows=True)) == 6
    assert len(problems(options)) == 3


# --- activate_arguments ---------------------------------------------------------------------------------------

ALL_OPTIONS = {
    "proxy_server": "http://proxy:3128",
    "log_traffic": False,
    "visibility_level": "flow_summary",
    "enforcement_mode": "visibility_only",
    "labels": {"loc": "dc1", "env": "prod", "app": "shop", "role": "web"},
    "name": "Web Server 1",
    "management_server": "pce.example.com:8443",
    "activation_code": CODE,
}


def test_linux_arguments_in_order_with_two_dashes_and_never_the_code():
    assert activate_arguments(ALL_OPTIONS) == [
        "--management-server",
        "pce.example.com:8443",
        "--name",
        "Web Server 1",
        "--role",
        "web",
        "--app",
        "shop",
        "--env",
        "prod",
        "--loc",
        "dc1",
        "--enforcement_mode",
        "visibility_only",
        "--visibility-level",
        "flow_summary",
        "--log-traffic",
        "false",
        "--proxy-server",
        "http://proxy:3128",
    ]
    assert CODE not in activate_arguments(ALL_OPTIONS)


def test_windows_arguments_with_one_dash_and_no_proxy():
    arguments = activate_arguments(ALL_OPTIONS, windows=True)
    assert arguments == [
        "-management-server",
        "pce.example.com:8443",
        "-name",
        "Web Server 1",
        "-role",
        "web",
        "-app",
        "shop",
        "-env",
        "prod",
        "-loc",
        "dc1",
        "-enforcement_mode",
        "visibility_only",
        "-visibility_level",
        "flow_summary",
        "-log_traffic",
        "false",
    ]
    assert not any(argument.startswith("--") for argument in arguments)


def test_arguments_leave_out_what_is_not_given():
    assert activate_arguments({}) == []
    assert activate_arguments({"labels": {"env": "prod", "role": ""}, "name": None, "log_traffic": None}) == [
        "--env",
        "prod",
    ]
    assert activate_arguments({"log_traffic": True}) == ["--log-traffic", "true"]
    assert activate_arguments({"labels": {"app": 7}}) == ["--app", "7"]


# --- the activation file --------------------------------------------------------------------------------------


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_activation_file_content_and_mode(tmp_path):
    path = tmp_path / "data" / "etc" / "agent_activation.cfg"
    write_activation_file(str(path), CODE, "pce.example.com:8443")
    assert path.read_text() == f"activation_code: {CODE}\nmasterconfig_server: pce.example.com:8443\n"
    assert _mode(path) == 0o600
    # The folder is made when missing, not open to everyone.
    assert _mode(path.parent) & 0o007 == 0


def test_activation_file_is_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        write_activation_file(str(tmp_path / "a.cfg"), CODE, "pce:443")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.cfg") == 0o600


def test_an_existing_readable_file_is_replaced_by_a_new_0600_one(tmp_path):
    path = tmp_path / "agent_activation.cfg"
    path.write_text("activation_code: old\nmasterconfig_server: old:1\nextra: line\n")
    path.chmod(0o644)
    old_inode = path.stat().st_ino
    write_activation_file(str(path), CODE, "pce:443")
    assert path.read_text() == f"activation_code: {CODE}\nmasterconfig_server: pce:443\n"
    assert _mode(path) == 0o600
    hard_link_safe = path.stat().st_ino != old_inode or path.stat().st_nlink == 1
    assert hard_link_safe


def test_a_symlink_is_replaced_and_its_target_left_alone(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me\n")
    target.chmod(0o644)
    path = tmp_path / "agent_activation.cfg"
    path.symlink_to(target)
    write_activation_file(str(path), CODE, "pce:443")
    assert not path.is_symlink()
    assert target.read_text() == "keep me\n"
    assert _mode(target) == 0o644
    assert CODE in path.read_text()
    assert _mode(path) == 0o600


def test_a_dangling_symlink_is_not_followed(tmp_path):
    target = tmp_path / "would-be-created.txt"
    path = tmp_path / "agent_activation.cfg"
    path.symlink_to(target)
    write_activation_file(str(path), CODE, "pce:443")
    assert not target.exists()
    assert not path.is_symlink()


def test_a_hard_link_to_another_file_is_not_written_through(tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("keep me\n")
    path = tmp_path / "agent_activation.cfg"
    os.link(other, path)
    write_activation_file(str(path), CODE, "pce:443")
    assert other.read_text() == "keep me\n"
    assert CODE in path.read_text()


def test_remove_quietly(tmp_path):
    path = tmp_path / "agent_activation.cfg"
    path.write_text("x")
    activation.remove_quietly(str(path))
    assert not path.exists()
    activation.remove_quietly(str(path))  # gone already: no error
