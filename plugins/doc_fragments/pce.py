# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate


class ModuleDocFragment(object):
    # Connection options of modules (module docs cannot declare env:, so the variables are named in the text).
    DOCUMENTATION = r"""
options:
  pce_host:
    description:
      - Host name of the PCE, or its URL such as V(https://pce.example.com:8443).
      - A port in the URL wins over O(pce_port).
      - If not set, the value of the E(ILLUMIO_PCE_HOST) environment variable is used.
      - Required, either here or in the environment.
    type: str
    aliases: [pce_hostname]
  pce_port:
    description:
      - TCP port of the PCE's REST API.
      - If not set, the value of the E(ILLUMIO_PCE_PORT) environment variable is used.
    type: int
    default: 443
  pce_org_id:
    description:
      - ID of the PCE organization to manage.
      - If not set, the value of the E(ILLUMIO_PCE_ORG_ID) environment variable is used.
    type: int
    default: 1
  api_key_username:
    description:
      - User name of the PCE API key (it looks like V(api_1a2b3c4d5e6f7a8b9)).
      - If not set, the value of the E(ILLUMIO_API_KEY_USERNAME) environment variable is used.
      - Required, either here or in the environment.
    type: str
  api_key_secret:
    description:
      - Secret of the PCE API key. It is never logged or shown in results or error messages.
      - If not set, the value of the E(ILLUMIO_API_KEY_SECRET) environment variable is used.
      - Required, either here or in the environment.
    type: str
  validate_certs:
    description:
      - Whether to verify the PCE's TLS certificate. Only set this to V(false) on a throwaway test PCE.
      - With V(false) every task warns that the certificate is not checked.
      - If not set, the value of the E(ILLUMIO_PCE_VALIDATE_CERTS) environment variable is used.
    type: bool
    default: true
  ca_path:
    description:
      - File with the CA certificate(s), PEM encoded, that the PCE's certificate must be signed by.
        A directory of CA certificates named by their OpenSSL subject hash (C(c_rehash)) works too.
      - When set, only these CAs are trusted; the system's trusted CAs are not.
      - Without it the system's trusted CAs are used (OpenSSL's default locations, which the E(SSL_CERT_FILE)
        and E(SSL_CERT_DIR) environment variables can change). E(REQUESTS_CA_BUNDLE) is not used.
      - If not set, the value of the E(ILLUMIO_PCE_CA_PATH) environment variable is used.
    type: path
  client_cert:
    description:
      - Client certificate (PEM) to present to the PCE or to a TLS-inspecting gateway in front of it.
      - May contain the private key too; otherwise set O(client_key).
      - If not set, the value of the E(ILLUMIO_PCE_CLIENT_CERT) environment variable is used.
    type: path
  client_key:
    description:
      - Private key (PEM, unencrypted) of O(client_cert).
      - If not set, the value of the E(ILLUMIO_PCE_CLIENT_KEY) environment variable is used.
    type: path
  proxy_url:
    description:
      - URL of the HTTP proxy to reach the PCE through, for example V(http://proxy.example.com:3128)
        or V(http://user:password@proxy.example.com:3128). The connection to the PCE is tunnelled through
        it with C(CONNECT).
      - Without it the standard E(HTTPS_PROXY) (or E(ALL_PROXY)) and E(NO_PROXY) environment variables apply;
        E(NO_PROXY) may list host names, domain suffixes, IP addresses and networks such as V(10.0.0.0/8).
      - If not set, the value of the E(ILLUMIO_PCE_PROXY_URL) environment variable is used.
      - Since it may hold a password, its value is never shown in results or logs (it is a C(no_log) option);
        error messages name the proxy by host and port only.
    type: str
  request_timeout:
    description:
      - Seconds to wait for the PCE to connect and to answer each request.
    type: int
    default: 30
  max_retries:
    description:
      - How many times to retry a request when the connection fails or the PCE answers
        429, 502, 503 or 504, with exponential backoff that honours the PCE's C(Retry-After).
    type: int
    default: 5
requirements:
  - python >= 3.6 (standard library only)
notes:
  - Modules of this collection talk to the PCE from where they run, usually the controller
    (C(delegate_to) V(localhost)).
  - Use C(module_defaults) with the group C(group/microseg.illumio.pce) to set the connection options once.
  - Options that take text refuse a list or a dictionary (Ansible would otherwise turn V([a, b]) into the text
    V(['a', 'b'])); quote such a value if that text is really meant.
"""

    # The same options for the inventory plugin, where env: entries are part of the option definition.
    PLUGINS = r"""
options:
  pce_host:
    description:
      - Host name of the PCE, or its URL such as V(https://pce.example.com:8443).
      - A port in the URL wins over O(pce_port).
      - Required, either here or in the environment.
    type: str
    aliases: [pce_hostname]
    env:
      - name: ILLUMIO_PCE_HOST
  pce_port:
    description:
      - TCP port of the PCE's REST API.
    type: int
    default: 443
    env:
      - name: ILLUMIO_PCE_PORT
  pce_org_id:
    description:
      - ID of the PCE organization to read.
    type: int
    default: 1
    env:
      - name: ILLUMIO_PCE_ORG_ID
  api_key_username:
    description:
      - User name of the PCE API key.
      - Required, either here or in the environment.
    type: str
    env:
      - name: ILLUMIO_API_KEY_USERNAME
  api_key_secret:
    description:
      - Secret of the PCE API key. Prefer the environment variable (or Ansible Vault) over writing it into the
        inventory file. It is never logged or shown in error messages.
      - Required, either here or in the environment.
    type: str
    env:
      - name: ILLUMIO_API_KEY_SECRET
  validate_certs:
    description:
      - Whether to verify the PCE's TLS certificate. With V(false) the inventory warns that it is not checked.
    type: bool
    default: true
    env:
      - name: ILLUMIO_PCE_VALIDATE_CERTS
  ca_path:
    description:
      - File with the CA certificate(s), PEM encoded, that the PCE's certificate must be signed by.
        A directory of CA certificates named by their OpenSSL subject hash (C(c_rehash)) works too.
      - When set, only these CAs are trusted; without it the system's trusted CAs are used
        (E(SSL_CERT_FILE) and E(SSL_CERT_DIR) can change those). E(REQUESTS_CA_BUNDLE) is not used.
    type: path
    env:
      - name: ILLUMIO_PCE_CA_PATH
  client_cert:
    description:
      - Client certificate (PEM) to present to the PCE; may contain the private key too.
    type: path
    env:
      - name: ILLUMIO_PCE_CLIENT_CERT
  client_key:
    description:
      - Private key (PEM, unencrypted) of O(client_cert).
    type: path
    env:
      - name: ILLUMIO_PCE_CLIENT_KEY
  proxy_url:
    description:
      - URL of the HTTP proxy (V(http://[user:password@]host:port)) to reach the PCE through.
        Without it E(HTTPS_PROXY) (or E(ALL_PROXY)) and E(NO_PROXY) apply.
      - Error messages name the proxy by host and port only, never with its user name and password.
    type: str
    env:
      - name: ILLUMIO_PCE_PROXY_URL
  request_timeout:
    description:
      - Seconds to wait for the PCE to connect and to answer each request.
    type: int
    default: 30
  max_retries:
    description:
      - How many times to retry a request when the connection fails or the PCE answers 429, 502, 503 or 504.
    type: int
    default: 5
requirements:
  - python >= 3.6 (standard library only)
"""
