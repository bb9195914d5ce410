"""A proxy password (proxy_url, or ILLUMIO_PCE_PROXY_URL) stays out of -vvv output and the ANSIBLE_LOG_PATH file.

Modules and the inventory plugin reach the lab PCE through a CONNECT proxy (the unit tests' ConnectProxy, which
records each tunnel's headers), so the runs also prove that the credentials still go where they belong: in the
Proxy-Authorization header of the CONNECT. Playbooks run with the run_playbook fixture of conftest.py, as in
test_pairing_secrets.py.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from pce_test_server import ConnectProxy

USER = "proxyuser"
PASSWORD = "Pr0xy-pa55w0rd-7c1f"
# Not percent-encoded, as users write it: "/" makes a URL parser take the rest for the path.
BROKEN_PASSWORD = "s3cr/et-9e4b"
PLAY = """\
- name: Read labels through the proxy
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Labels
      microseg.illumio.label_info:
        key: role
        proxy_url: "{{ lookup('ansible.builtin.env', 'TEST_PROXY_URL') or omit }}"
"""
INVENTORY_PLAY = """\
- name: Nothing but the inventory
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Hosts
      ansible.builtin.debug:
        msg: "{{ groups['all'] | length }} hosts"
"""


@pytest.fixture
def proxy():
    running = ConnectProxy()
    yield running
    running.stop()


def proxy_url(proxy: ConnectProxy, password: str = PASSWORD) -> str:
    return proxy.url.replace("http://", f"http://{USER}:{password}@")


def authorized(proxy: ConnectProxy, password: str = PASSWORD) -> bool:
    token = "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode()
    return bool(proxy.tunnels) and all(headers.get("Proxy-Authorization") == token for _m, _t, headers in proxy.tunnels)


def assert_hidden(output: str, log: Path, *fragments: str) -> None:
    logged = log.read_text() if log.exists() else ""
    for fragment in fragments:
        assert fragment not in output, f"{fragment!r} shows in the -vvv output"
        assert fragment not in logged, f"{fragment!r} is in the ANSIBLE_LOG_PATH file"


@pytest.mark.parametrize("given_as", ["option", "environment"])
def test_module_never_shows_the_proxy_password(given_as, proxy, run_playbook, tmp_path):
    playbook = tmp_path / "labels.yml"
    playbook.write_text(PLAY)
    log = tmp_path / "ansible.log"
    variable = "TEST_PROXY_URL" if given_as == "option" else "ILLUMIO_PCE_PROXY_URL"
    run = run_playbook(playbook, "-vvv", env={variable: proxy_url(proxy), "ANSIBLE_LOG_PATH": str(log)})
    assert run.returncode == 0, run.output
    assert authorized(proxy), proxy.tunnels
    assert "module_args" in run.output and "module_args" in log.read_text()
    assert_hidden(run.output, log, PASSWORD)


@pytest.mark.parametrize("given_as", ["option", "environment"])
def test_inventory_never_shows_the_proxy_password(given_as, proxy, run_playbook, tmp_path):
    playbook = tmp_path / "inventory.yml"
    playbook.write_text(INVENTORY_PLAY)
    config = tmp_path / "proxied.pce.yml"
    settings = "plugin: microseg.illumio.pce\n"
    env = {"ANSIBLE_LOG_PATH": str(tmp_path / "ansible.log")}
    if given_as == "option":
        settings += f"proxy_url: {proxy_url(proxy)}\n"
    else:
        env["ILLUMIO_PCE_PROXY_URL"] = proxy_url(proxy)
    config.write_text(settings)
    run = run_playbook(playbook, "-vvv", "-i", str(config), env=env)
    assert run.returncode == 0, run.output
    assert f"Parsed {config} inventory source with auto plugin" in run.output or "microseg.illumio.pce" in run.output
    assert "Failed to parse" not in run.output, run.output
    assert authorized(proxy), proxy.tunnels
    assert_hidden(run.output, tmp_path / "ansible.log", PASSWORD)


@pytest.mark.parametrize("tool", ["module", "inventory"])
def test_a_proxy_url_that_does_not_parse_is_shown_without_user_and_password(tool, proxy, run_playbook, tmp_path):
    """A password with an unencoded "/" breaks the URL: the error names the proxy, but no part of the password."""
    url = proxy_url(proxy, BROKEN_PASSWORD)
    log = tmp_path / "ansible.log"
    env = {"ANSIBLE_LOG_PATH": str(log)}
    playbook = tmp_path / "play.yml"
    if tool == "module":
        playbook.write_text(PLAY)
        run = run_playbook(playbook, "-vvv", env={**env, "TEST_PROXY_URL": url})
        assert run.returncode != 0, run.output
    else:
        playbook.write_text(INVENTORY_PLAY)
        config = tmp_path / "broken.pce.yml"
        config.write_text(f"plugin: microseg.illumio.pce\nproxy_url: {url}\n")
        run = run_playbook(playbook, "-vvv", "-i", str(config), env=env)
    assert "proxy_url must be an http:// URL" in run.output, run.output
    assert proxy.url in run.output
    assert_hidden(run.output, log, BROKEN_PASSWORD, BROKEN_PASSWORD.split("/")[1], f"{USER}:")
    assert proxy.tunnels == []
