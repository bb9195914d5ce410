"""The shared connection options: environment fallbacks, secrets marked no_log, and the client built from them."""

from __future__ import annotations

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import (
    ENVIRONMENT,
    client_from_module,
    client_from_params,
    pce_argument_spec,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from module_runner import run_module


def build_client():
    """A module main() that reports how the client was built from its options."""
    module = AnsibleModule(argument_spec=pce_argument_spec(), supports_check_mode=True)
    client = client_from_module(module)
    module.exit_json(
        base_url=client.base_url,
        org_id=client.org_id,
        validate_certs=client.validate_certs,
        ca_path=client.ca_path,
        cert=(client.client_cert, client.client_key),
        proxy_url=client.proxy_url,
        timeout=client.timeout,
        max_retries=client.max_retries,
        no_log_values=sorted(module.no_log_values),
    )


def test_every_connection_option_falls_back_to_its_environment_variable(monkeypatch):
    monkeypatch.setenv("ILLUMIO_PCE_HOST", "pce.example.com")
    monkeypatch.setenv("ILLUMIO_PCE_PORT", "8443")
    monkeypatch.setenv("ILLUMIO_PCE_ORG_ID", "3")
    monkeypatch.setenv("ILLUMIO_API_KEY_USERNAME", "api_1")
    monkeypatch.setenv("ILLUMIO_API_KEY_SECRET", "from-the-environment")
    monkeypatch.setenv("ILLUMIO_PCE_VALIDATE_CERTS", "true")
    monkeypatch.setenv("ILLUMIO_PCE_CA_PATH", "/etc/pce/ca.pem")
    monkeypatch.setenv("ILLUMIO_PCE_CLIENT_CERT", "/etc/pce/client.pem")
    monkeypatch.setenv("ILLUMIO_PCE_CLIENT_KEY", "/etc/pce/client.key")
    monkeypatch.setenv("ILLUMIO_PCE_PROXY_URL", "http://proxy.example.com:3128")
    result = run_module(build_client, {})
    assert result["base_url"] == "https://pce.example.com:8443"
    assert result["org_id"] == 3
    assert (result["validate_certs"], result["ca_path"]) == (True, "/etc/pce/ca.pem")
    assert result["cert"] == ("/etc/pce/client.pem", "/etc/pce/client.key")
    assert result["proxy_url"] == "http://proxy.example.com:3128"
    assert "from-the-environment" in result["no_log_values"]


def test_task_options_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("ILLUMIO_PCE_HOST", "env.example.com")
    monkeypatch.setenv("ILLUMIO_PCE_VALIDATE_CERTS", "false")
    args = {
        "pce_hostname": "task.example.com",
        "validate_certs": True,
        "api_key_username": "u",
        "api_key_secret": "task-secret",
        "request_timeout": 7,
        "max_retries": 0,
    }
    result = run_module(build_client, args)
    assert result["base_url"] == "https://task.example.com:443"
    assert (result["validate_certs"], result["ca_path"]) == (True, None)
    assert (result["timeout"], result["max_retries"]) == (7, 0)
    assert "task-secret" in result["no_log_values"]


def test_validate_certs_false_from_the_environment(monkeypatch):
    monkeypatch.setenv("ILLUMIO_PCE_VALIDATE_CERTS", "false")
    result = run_module(build_client, {"pce_host": "pce", "api_key_username": "u", "api_key_secret": "s"})
    assert result["validate_certs"] is False


def test_missing_secret_is_named_with_its_variable():
    result = run_module(build_client, {"pce_host": "pce", "api_key_username": "u"})
    assert result["failed"] is True
    assert result["msg"] == "missing PCE connection option(s): api_key_secret (or ILLUMIO_API_KEY_SECRET)"


def test_client_key_without_certificate_is_refused():
    with pytest.raises(PceError, match="client_key needs client_cert"):
        client_from_params({"pce_host": "p", "api_key_username": "u", "api_key_secret": "s", "client_key": "/k"})


def test_spec_marks_the_secret_no_log_and_is_a_fresh_copy():
    spec = pce_argument_spec()
    assert spec["api_key_secret"]["no_log"] is True
    assert set(ENVIRONMENT) <= set(spec)
    spec["pce_port"]["default"] = 1
    assert pce_argument_spec()["pce_port"]["default"] == 443
