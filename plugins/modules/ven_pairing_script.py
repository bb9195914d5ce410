#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: ven_pairing_script
short_description: Install and pair the Illumio VEN with the PCE's pairing script, once
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs on the managed host. Downloads the pairing script of a pairing profile from the PCE's VEN library
    (C(pair.sh), or C(prepare.sh) for golden images) and runs it, which installs the VEN package the profile
    names and pairs the VEN (or prepares it to pair at the next boot).
  - B(Only when needed.) A VEN already paired with O(management_server) (or, for O(script=prepare), already
    prepared for it) is left alone - nothing is downloaded, nothing runs, the activation code is not spent.
    A VEN paired with another PCE is refused; M(microseg.illumio.ven_activation) with
    O(microseg.illumio.ven_activation#module:when_paired_elsewhere=repair) moves it.
  - B(The activation code never appears on a command line.) The module hands it to the script in the
    documented install variable C(VEN_ACTIVATION_CODE), in the script's environment only, and never prints
    it; Ansible's own C(environment) keyword would put it on the remote command line, so the code is a
    (secret) module option instead.
  - The script is downloaded over TLS verified against the system trust store or O(ca_path), through
    O(proxy_server) when given, into C(tmp) of the data directory (emptied first, as the documented one-liner
    does), and removed after running.
options:
  management_server:
    description:
      - The PCE, C(HOST:PORT) - where the script comes from and the VEN pairs with.
    type: str
    required: true
  pairing_profile_id:
    description:
      - The pairing profile's id (the last part of its href), which the script's URL names.
    type: str
    required: true
  activation_code:
    description:
      - The activation code of a pairing key of that profile (M(microseg.illumio.pairing_key)).
    type: str
    required: true
  script:
    description:
      - V(pair) installs and pairs now; V(prepare) installs and leaves the activation for the next boot
        (golden images; the profile decides labels and modes, so O(activate_options) must be empty).
    type: str
    choices: [pair, prepare]
    default: pair
  activate_options:
    description:
      - Activation options as script arguments, for example C(["--role", "web", "--env", "prod"]); build them
        with the filter P(microseg.illumio.ven_activate_arguments#filter), which checks them first.
    type: list
    elements: str
    default: []
  environment:
    description:
      - Documented install variables for the package install the script runs (C(VEN_DATA_DIR),
        C(VEN_NONPRIV_USER), C(VEN_NONPRIV_UID), C(VEN_NONPRIV_GID), C(VEN_DISABLE_MONITOR_RESTART),
        C(VEN_PROXY_SERVER)). Not the activation code - that is O(activation_code).
    type: dict
    default: {}
  proxy_server:
    description:
      - HTTP proxy to download through, also handed to the script (C(--proxy-server)) for the VEN.
    type: str
  ca_path:
    description:
      - CA bundle to verify the PCE's certificate with, instead of the system trust store.
    type: path
  api_version:
    description:
      - API version in the script's URL (C(/api/v18/software/ven/image?pair_script=pair.sh&profile_id=N)).
    type: str
    default: v18
  timeout:
    description:
      - Seconds to wait for the download.
    type: int
    default: 60
  install_dir:
    description:
      - Where the VEN is (or will be) installed.
    type: path
    default: /opt/illumio_ven
  data_dir:
    description:
      - The VEN's data directory; by default C(VEN_DATA_DIR) from O(environment), else C(/opt/illumio_ven_data).
    type: path
attributes:
  check_mode:
    description: Reports whether the script would run; downloads and runs nothing.
    support: full
  diff_mode:
    description: Shows the VEN's activation and version before and after.
    support: full
seealso:
  - module: microseg.illumio.pairing_key
  - module: microseg.illumio.ven_activation
  - module: microseg.illumio.ven_package
"""

EXAMPLES = r"""
- name: Make a pairing key on the controller
  microseg.illumio.pairing_key:
    pairing_profile: linux-web
  delegate_to: localhost
  run_once: true
  register: pairing
  no_log: true

- name: Install and pair with the PCE's pairing script (nothing happens on a VEN already paired)
  microseg.illumio.ven_pairing_script:
    management_server: pce.example.com:8443
    pairing_profile_id: "{{ profile_id }}"
    activation_code: "{{ pairing.activation_code }}"
    activate_options: "{{ {'labels': {'role': 'web'}} | microseg.illumio.ven_activate_arguments }}"
    environment:
      VEN_DATA_DIR: /srv/illumio_ven_data
  vars:
    profile_id: 8
"""

RETURN = r"""
ran:
  description: Whether the script ran (or would run, in check mode).
  returned: always
  type: bool
url:
  description: Where the script came from.
  returned: always
  type: str
  sample: https://pce.example.com:8443/api/v18/software/ven/image?pair_script=pair.sh&profile_id=8
output:
  description: What the script printed, line by line; never the activation code.
  returned: when the script ran
  type: list
  elements: str
ven:
  description: The VEN's facts after the task (M(microseg.illumio.ven_facts)).
  returned: always
  type: dict
"""

import os
import shutil
import ssl
from urllib.parse import urlencode
from urllib.request import HTTPSHandler, ProxyHandler, build_opener

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.options import (
    hide_credentials,
    refuse_stringified,
    url_credentials,
)
from ansible_collections.microseg.illumio.plugins.module_utils.ven import activation
from ansible_collections.microseg.illumio.plugins.module_utils.ven.ctl import DEFAULT_INSTALL_DIR, VenCtlError
from ansible_collections.microseg.illumio.plugins.module_utils.ven.facts import data_dir_of, gather
from ansible_collections.microseg.illumio.plugins.module_utils.ven.package import normalize_environment

SCRIPT_NAMES = {"pair": "pair.sh", "prepare": "prepare.sh"}


def script_url(params):
    query = urlencode([("pair_script", SCRIPT_NAMES[params["script"]]), ("profile_id", params["pairing_profile_id"])])
    return "https://%s/api/%s/software/ven/image?%s" % (params["management_server"], params["api_version"], query)


def download(module, url, path):
    """Fetch the script over verified TLS (our CA or the system's), through the proxy when there is one."""
    context = ssl.create_default_context(cafile=module.params["ca_path"])
    handlers = [HTTPSHandler(context=context)]
    proxy = module.params["proxy_server"]
    if proxy:
        proxy = proxy if "://" in proxy else "http://" + proxy
        handlers.append(ProxyHandler({"https": proxy, "http": proxy}))
    else:
        handlers.append(ProxyHandler({}))
    try:
        response = build_opener(*handlers).open(url, timeout=module.params["timeout"])
        body = response.read()
    except Exception as exc:  # urllib raises URLError, HTTPError, ssl and socket errors: all mean "no script"
        module.fail_json(msg="cannot download the pairing script from %s: %s" % (url, exc))
    if not body.startswith(b"#!"):
        module.fail_json(msg="%s did not return a script (is the profile id right?)" % url)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(body)


def fresh_work_dir(data_dir):
    """The one-liner's `rm -fr DATA/tmp && umask 026 && mkdir -p DATA/tmp`."""
    work_dir = os.path.join(data_dir, "tmp")
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir, 0o751)
    return work_dir


def run_script(module, path, environment):
    params = module.params
    arguments = [path, "--management-server", params["management_server"]]
    if params["proxy_server"]:
        arguments += ["--proxy-server", params["proxy_server"]]
    arguments += params["activate_options"]
    environ = dict(environment, VEN_ACTIVATION_CODE=params["activation_code"])
    rc, out, err = module.run_command(arguments, environ_update=environ)
    lines = scrub((out + err).splitlines(), params["activation_code"])
    if rc != 0:
        module.fail_json(msg="the pairing script failed (exit %d): %s" % (rc, " / ".join(lines[-6:])), output=lines)
    return lines


def scrub(lines, secret):
    return [line.replace(secret, "********") for line in lines]


def needed(module, facts):
    """True when the script must run; fails on a VEN paired with another PCE."""
    params = module.params
    wanted = params["management_server"]
    if facts["activated"]:
        if activation.same_server(facts["management_server"], wanted) and params["script"] == "pair":
            return False
        module.fail_json(
            msg="the VEN is already paired with %s; use microseg.illumio.ven_activation with "
            "when_paired_elsewhere=repair (or state=deactivated before preparing an image)"
            % ((facts["management_server"] or "").lower() or "a PCE")
        )
    if params["script"] == "prepare":
        return not (facts["prepared"] and activation.same_server(facts["activation_file_server"], wanted))
    return True


# The script decides these itself; the code has its own (secret) option.
SCRIPT_OWNED_VARIABLES = ("VEN_ACTIVATION_CODE", "VEN_INSTALL_ACTION", "VEN_MANAGEMENT_SERVER")


def environment_problems(environment):
    found = normalize_environment(environment)[1]
    owned = sorted(set(environment) & set(SCRIPT_OWNED_VARIABLES))
    if owned:
        found.append("environment: %s come from the module's own options, not environment" % ", ".join(owned))
    return found


def validate(module):
    params = module.params
    found = [
        activation.check_management_server(params["management_server"]),
        activation.check_activation_code(params["activation_code"]),
    ]
    if params["proxy_server"]:
        found.append(activation.check_proxy(params["proxy_server"]))
    found += environment_problems(params["environment"])
    if not str(params["pairing_profile_id"]).isdigit():
        found.append("pairing_profile_id must be the number at the end of the profile's href")
    if params["script"] == "prepare" and params["activate_options"]:
        found.append("the prepare script takes no activate options: the pairing profile decides them")
    found = [reason for reason in found if reason]
    if found:
        module.fail_json(msg="; ".join(found))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            management_server=dict(type="str", required=True),
            pairing_profile_id=dict(type="str", required=True),
            activation_code=dict(type="str", required=True, no_log=True),
            script=dict(type="str", choices=["pair", "prepare"], default="pair"),
            activate_options=dict(type="list", elements="str", default=[]),
            environment=dict(type="dict", default={}),
            proxy_server=dict(type="str"),
            ca_path=dict(type="path"),
            api_version=dict(type="str", default="v18"),
            timeout=dict(type="int", default=60),
            install_dir=dict(type="path", default=DEFAULT_INSTALL_DIR),
            data_dir=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    hide_credentials(module, "proxy_server")
    module.no_log_values.update(url_credentials((module.params["environment"] or {}).get("VEN_PROXY_SERVER")))
    refuse_stringified(module)
    validate(module)
    params = module.params
    environment = normalize_environment(params["environment"])[0]
    data_dir = params["data_dir"] or data_dir_of({"environment": environment})
    url = script_url(params)
    try:
        before = gather(module, params["install_dir"], data_dir)
        if not needed(module, before):
            module.exit_json(changed=False, ran=False, url=url, ven=before)
        if module.check_mode:
            module.exit_json(changed=True, ran=True, url=url, ven=before, diff=diff(before, before, params))
        path = os.path.join(fresh_work_dir(data_dir), SCRIPT_NAMES[params["script"]])
        download(module, url, path)
        try:
            output = run_script(module, path, environment)
        finally:
            activation.remove_quietly(path)
        after = gather(module, params["install_dir"], data_dir)
    except (VenCtlError, OSError) as exc:
        module.fail_json(msg=str(exc))
    expected = "activated" if params["script"] == "pair" else "prepared"
    if after["activation"] != expected:
        found = after["activation"] if after["installed"] else "not installed"
        module.fail_json(msg="the pairing script ran, but the VEN is %s, not %s" % (found, expected))
    module.exit_json(changed=True, ran=True, url=url, output=output, ven=after, diff=diff(before, after, params))


def diff(before, after, params):
    def view(facts):
        return {
            "installed": facts["installed"],
            "version": facts["version"],
            "activation": facts["activation"],
            "management_server": facts["management_server"],
        }

    wanted = dict(view(after), activation="activated" if params["script"] == "pair" else "prepared")
    return {"before": view(before), "after": wanted}


if __name__ == "__main__":
    main()
