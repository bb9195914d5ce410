"""ven_proxy against the fake VEN of test_ven_suspension.py (no root): set, reset, restart, check and diff mode."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.modules import ven_proxy
from module_runner import run_module
from test_ven_suspension import FakeHost

PROXY = "http://proxy.example.com:3128"


@pytest.fixture
def host(tmp_path, monkeypatch):
    return FakeHost(tmp_path, monkeypatch)


def run(host, check_mode=False, diff=False, **args):
    return run_module(ven_proxy.main, host.args(**args), check_mode=check_mode, diff=diff)


def test_setting_a_proxy_restarts_a_running_ven_once(host):
    result = run(host, proxy_server=PROXY)
    assert result["changed"] is True, result
    assert result["proxy_server"] == PROXY
    assert result["previous_proxy_server"] is None
    assert result["restarted"] is True
    assert result["output"][0] == f"Updating proxy to {PROXY}. VEN restart needed."
    assert host.ctl_log() == ["set-proxy " + PROXY, "restart"]
    assert host.state()["ven"]["proxy"] == PROXY

    again = run(host, proxy_server=PROXY)
    assert again["changed"] is False
    assert again["restarted"] is False
    assert again["previous_proxy_server"] == PROXY
    assert host.ctl_log() == ["set-proxy " + PROXY, "restart"]


def test_changing_to_another_proxy(host):
    host.update(lambda state: state["ven"].update(proxy="192.0.2.8:3128"))
    result = run(host, proxy_server=PROXY, diff=True)
    assert result["changed"] is True
    assert result["previous_proxy_server"] == "192.0.2.8:3128"
    assert result["diff"]["before"] == "proxy_server: 192.0.2.8:3128\n"
    assert result["diff"]["after"] == f"proxy_server: {PROXY}\n"


def test_the_setting_is_compared_as_written(host):
    host.update(lambda state: state["ven"].update(proxy="proxy.example.com:3128"))
    result = run(host, proxy_server=PROXY)
    assert result["changed"] is True
    assert host.state()["ven"]["proxy"] == PROXY


def test_absent_resets_the_proxy_and_is_idempotent(host):
    host.update(lambda state: state["ven"].update(proxy=PROXY))
    result = run(host, state="absent", diff=True)
    assert result["changed"] is True
    assert result["proxy_server"] is None
    assert result["previous_proxy_server"] == PROXY
    assert result["restarted"] is True
    assert result["diff"]["after"] == "proxy_server: (not set)\n"
    assert host.ctl_log() == ["reset-proxy", "restart"]
    assert host.state()["ven"]["proxy"] is None

    again = run(host, state="absent")
    assert again["changed"] is False
    assert host.ctl_log() == ["reset-proxy", "restart"]


def test_a_stopped_or_suspended_ven_is_not_restarted(tmp_path, monkeypatch):
    for number, ven in enumerate(({"running": False}, {"running": False, "suspended": True})):
        folder = tmp_path / str(number)
        folder.mkdir()
        host = FakeHost(folder, monkeypatch, **ven)
        result = run(host, proxy_server=PROXY)
        assert result["changed"] is True
        assert result["restarted"] is False
        assert host.ctl_log() == ["set-proxy " + PROXY]


def test_restart_false_leaves_the_ven_running_as_it_is(host):
    result = run(host, proxy_server=PROXY, restart=False)
    assert result["changed"] is True
    assert result["restarted"] is False
    assert host.ctl_log() == ["set-proxy " + PROXY]
    assert host.state()["ven"]["restarts"] == 0


def test_check_mode_changes_nothing(host):
    result = run(host, proxy_server=PROXY, check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["restarted"] is True
    assert result["proxy_server"] == PROXY
    assert result["diff"]["before"] == "proxy_server: (not set)\n"
    assert host.ctl_log() == []
    assert host.state()["ven"]["proxy"] is None


def test_check_mode_of_an_unchanged_setting(host):
    host.update(lambda state: state["ven"].update(proxy=PROXY))
    result = run(host, proxy_server=PROXY, check_mode=True)
    assert result["changed"] is False
    assert result["restarted"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"proxy_server": "https://proxy.example.com:3128"}, "the VEN supports http proxies only, not https://"),
        ({"proxy_server": "socks5://proxy:1080"}, "http proxies only, not socks5://"),
        ({"proxy_server": "proxy.example.com:99999"}, "port out of range"),
        ({"proxy_server": "http://proxy/with/path"}, "proxy_server must be [http://]SERVER[:PORT]"),
        ({"proxy_server": ""}, "proxy_server must be [http://]SERVER[:PORT]"),
        ({}, "state is present but all of the following are missing: proxy_server"),
        ({"state": "absent", "proxy_server": PROXY}, "proxy_server is only for state=present"),
        ({"state": "gone"}, "value of state must be one of: present, absent"),
        ({"proxy_server": PROXY, "restart": "sometimes"}, "restart"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(host, args, message):
    result = run(host, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert host.state()["log"] == []


def test_no_ven_is_a_clear_failure(host, tmp_path):
    result = run(host, proxy_server=PROXY, install_dir=str(tmp_path / "none"))
    assert result["failed"] is True
    assert "no VEN is installed here" in result["msg"]


def test_a_failing_set_proxy_fails_with_the_vens_words(host):
    host.update(
        lambda state: state.setdefault("broken", {}).update({"illumio-ven-ctl set-proxy": "illumio-ven-ctl: no"})
    )
    result = run(host, proxy_server=PROXY)
    assert result["failed"] is True
    assert result["msg"] == "illumio-ven-ctl set-proxy failed (exit 1): illumio-ven-ctl: no"
    assert "restart" not in host.ctl_log()
