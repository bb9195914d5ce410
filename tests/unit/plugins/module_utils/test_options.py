"""Checks every module shares on its options (module_utils/options.py)."""

from __future__ import annotations

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.options import (
    stringified_options,
    url_credentials,
    without_credentials,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import pce_argument_spec

SPEC = {
    "name": {"type": "str", "aliases": ["title"]},
    "path": {"type": "path"},
    "count": {"type": "int"},
    "anything": {"type": "raw"},
    "secret": {"type": "str", "no_log": True},
    "names": {"type": "list", "elements": "str"},
    "rules": {
        "type": "list",
        "elements": "dict",
        "options": {"description": {"type": "str"}, "ports": {"type": "list", "elements": "int"}},
    },
    "filters": {"type": "dict", "options": {"hostname": {}}},
    "untyped": {},
}


def test_scalars_and_raw_options_pass():
    params = {"name": 7, "path": "/tmp/x", "count": [1], "anything": [1, {"a": 2}], "names": "a,b", "untyped": True}
    assert stringified_options(SPEC, params) == []


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"name": ["a", "b"]}, "name must be a single value, not a list (['a', 'b'])"),
        ({"title": {"a": 1}}, "title must be a single value, not a dict ({'a': 1})"),
        ({"path": ["/a"]}, "path must be a single value, not a list"),
        ({"untyped": ["x"]}, "untyped must be a single value, not a list"),
        ({"names": ["ok", ["a", "b"]]}, "names[1] must be a single value, not a list"),
        ({"rules": [{"description": "ok"}, {"description": ["x"]}]}, "rules[1].description must be a single value"),
        ({"filters": {"hostname": {"contains": "web"}}}, "filters.hostname must be a single value, not a dict"),
    ],
)
def test_lists_and_dicts_for_text_are_found_everywhere(params, problem):
    [found] = stringified_options(SPEC, params)
    assert found.startswith(problem)


def test_a_secret_is_never_repeated():
    [found] = stringified_options(SPEC, {"secret": ["hunter2"]})
    assert found == "secret must be a single value, not a list"


def test_the_connection_options_are_checked_too():
    [found] = stringified_options(pce_argument_spec(), {"pce_host": ["a", "b"]})
    assert found.startswith("pce_host must be a single value, not a list")


@pytest.mark.parametrize(
    ("url", "secrets", "shown"),
    [
        ("http://proxy:3128", [], "http://proxy:3128"),
        ("http://alice:pw@proxy:3128", ["alice:pw", "pw"], "http://proxy:3128"),
        ("http://alice:p%40ss@proxy:3128", ["alice:p%40ss", "p%40ss", "alice:p@ss", "p@ss"], "http://proxy:3128"),
        ("http://alice:se/cr#et@proxy:3128", ["alice:se/cr#et", "se/cr#et"], "http://proxy:3128"),
        ("alice:pw@proxy:3128", ["alice:pw", "pw"], "proxy:3128"),
        ("http://token@proxy", ["token"], "http://proxy"),
        (None, [], ""),
    ],
)
def test_url_credentials(url, secrets, shown):
    assert url_credentials(url) == secrets
    assert without_credentials(url) == shown


def test_pce_host_with_credentials_is_refused_without_repeating_them():
    from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_params
    from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError

    params = {"pce_host": "https://admin:hunter2@pce.example.com:8443", "api_key_username": "u", "api_key_secret": "s"}
    with pytest.raises(PceError) as raised:
        client_from_params(params)
    assert "pce_host must not carry a user name or password (https://pce.example.com:8443)" in str(raised.value)
    assert "hunter2" not in str(raised.value) and "admin" not in str(raised.value)


def test_hide_credentials_masks_them_in_results():
    from types import SimpleNamespace

    from ansible.module_utils.common.parameters import remove_values
    from ansible_collections.microseg.illumio.plugins.module_utils.options import hide_credentials

    module = SimpleNamespace(
        params={"proxy_server": "http://alice:pw-1234@proxy:3128", "other": None}, no_log_values=set()
    )
    hide_credentials(module, "proxy_server", "other")
    shown = remove_values({"invocation": {"module_args": dict(module.params)}}, module.no_log_values)
    assert shown["invocation"]["module_args"]["proxy_server"] == "http://********@proxy:3128"


@pytest.mark.parametrize("password", ["s3cr/et-9e4b", "s3cr#et-9e4b", "s3cr?et-9e4b", "s3cr@et-9e4b", "Pr0xyPa55word"])
def test_a_proxy_url_the_client_cannot_use_is_shown_without_user_and_password(password):
    """A password that is not percent-encoded breaks the URL; no part of it may show in the message."""
    from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import PceClient
    from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError

    for scheme in ("http", "https"):
        url = f"{scheme}://proxyuser:{password}@proxy.example.com:99999"
        with pytest.raises(PceError) as raised:
            PceClient("pce", api_key_username="api_1", api_key_secret="unit-secret-1f2e", proxy_url=url)
        message = str(raised.value)
        assert f"got '{scheme}://proxy.example.com:99999'" in message
        assert "et-9e4b" not in message and "Pa55word" not in message and "proxyuser" not in message
