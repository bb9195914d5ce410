# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PCE connection options every module shares, and the client built from them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible.module_utils.ansible_release import __version__ as ANSIBLE_VERSION
from ansible.module_utils.basic import env_fallback
from ansible_collections.microseg.illumio.plugins.module_utils.options import (
    INSECURE_WARNING,
    hide_credentials,
    refuse_stringified,
    url_credentials,
    without_credentials,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import PceClient
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError

USER_AGENT = "microseg.illumio ansible-core/%s" % ANSIBLE_VERSION

# Option name -> environment variable. AWX / AAP credential types already use these names.
ENVIRONMENT = {
    "pce_host": "ILLUMIO_PCE_HOST",
    "pce_port": "ILLUMIO_PCE_PORT",
    "pce_org_id": "ILLUMIO_PCE_ORG_ID",
    "api_key_username": "ILLUMIO_API_KEY_USERNAME",
    "api_key_secret": "ILLUMIO_API_KEY_SECRET",
    "validate_certs": "ILLUMIO_PCE_VALIDATE_CERTS",
    "ca_path": "ILLUMIO_PCE_CA_PATH",
    "client_cert": "ILLUMIO_PCE_CLIENT_CERT",
    "client_key": "ILLUMIO_PCE_CLIENT_KEY",
    "proxy_url": "ILLUMIO_PCE_PROXY_URL",
}
# Required, but not `required=True` in the spec: they may come from the environment instead.
REQUIRED = ("pce_host", "api_key_username", "api_key_secret")


def pce_argument_spec():
    """The connection options, to merge into a module's own argument_spec (a fresh dict every call)."""
    spec = dict(
        pce_host=dict(type="str", aliases=["pce_hostname"]),
        pce_port=dict(type="int", default=443),
        pce_org_id=dict(type="int", default=1),
        api_key_username=dict(type="str", no_log=False),
        api_key_secret=dict(type="str", no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path", no_log=False),
        # A proxy URL may carry the proxy's user name and password.
        proxy_url=dict(type="str", no_log=True),
        request_timeout=dict(type="int", default=30),
        max_retries=dict(type="int", default=5),
    )
    for name, variable in ENVIRONMENT.items():
        spec[name]["fallback"] = (env_fallback, [variable])
    return spec


def missing_connection_options(params):
    """Names of required connection options that neither the task nor the environment set."""
    return ["%s (or %s)" % (name, ENVIRONMENT[name]) for name in REQUIRED if not params.get(name)]


def client_from_params(params, user_agent=USER_AGENT):
    """A PceClient from a dict of connection options (module params or inventory plugin options)."""
    missing = missing_connection_options(params)
    if missing:
        raise PceError("missing PCE connection option(s): %s" % ", ".join(missing))
    if url_credentials(params["pce_host"]):
        raise PceError(
            "pce_host must not carry a user name or password (%s): the PCE authenticates with api_key_username "
            "and api_key_secret" % without_credentials(params["pce_host"])
        )
    if params.get("client_key") and not params.get("client_cert"):
        raise PceError("client_key needs client_cert (or ILLUMIO_PCE_CLIENT_CERT) as well")
    return PceClient(
        host=params["pce_host"],
        port=params.get("pce_port") or 443,
        org_id=params.get("pce_org_id") or 1,
        api_key_username=params["api_key_username"],
        api_key_secret=params["api_key_secret"],
        validate_certs=params.get("validate_certs", True) is not False,
        ca_path=params.get("ca_path"),
        client_cert=params.get("client_cert"),
        client_key=params.get("client_key"),
        proxy_url=params.get("proxy_url"),
        timeout=params.get("request_timeout") or 30,
        max_retries=5 if params.get("max_retries") is None else params["max_retries"],
        user_agent=user_agent,
    )


def client_from_module(module):
    """A PceClient for an AnsibleModule; fails the module with a clear message when it cannot be built.

    Every PCE module calls it first, so it also runs the checks they share: no list or dict given to a text option,
    no credentials of pce_host in the results, and a warning when the PCE's certificate is not checked.
    """
    refuse_stringified(module)
    hide_credentials(module, "pce_host", "proxy_url")
    try:
        client = client_from_params(module.params)
    except PceError as error:
        module.fail_json(msg=str(error))
    if module.params.get("validate_certs") is False:
        module.warn(INSECURE_WARNING)
    return client
