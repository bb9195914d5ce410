# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP client for the Illumio PCE REST API (v2): used by every module and by the inventory plugin."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import datetime
import email.utils
import functools
import random
import time
import traceback
from urllib.parse import urlsplit

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError, secret_forms

try:
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

API_PREFIX = "/api/v2"
DEFAULT_USER_AGENT = "microseg.illumio"
# Statuses that mean "not now, try again": rate limiting, and a PCE (or its load balancer) that is overloaded.
RETRY_STATUSES = frozenset([429, 502, 503, 504])
# A POST that reached the PCE may have created something even if a gateway timed out, so it is resent only
# when the PCE said it did not process it.
RETRY_STATUSES_POST = frozenset([429, 503])
IDEMPOTENT_METHODS = frozenset(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
JOB_PENDING_STATUSES = frozenset(["pending", "running", "queued", "in_progress"])
BODY_EXCERPT_CHARS = 500


def _scrubbing_secrets(method):
    """Every PceError leaving the client passes through here, so no message can carry a secret."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except PceError as error:
            # `from None`: the chained requests exception may quote what the server echoed back.
            raise error.scrubbed(self._secrets) from None

    return wrapper


class PceClient(object):
    """A keep-alive session to one PCE organization, with retries, async collections and clear errors."""

    def __init__(
        self,
        host,
        port=443,
        org_id=1,
        api_key_username=None,
        api_key_secret=None,
        validate_certs=True,
        ca_path=None,
        client_cert=None,
        client_key=None,
        proxy_url=None,
        timeout=30,
        max_retries=5,
        backoff_factor=0.5,
        backoff_max=30,
        sync_limit=500,
        user_agent=DEFAULT_USER_AGENT,
        job_timeout=600,
        sleep=time.sleep,
        clock=time.monotonic,
    ):
        if not HAS_REQUESTS:
            raise PceError("the Python library 'requests' is required to talk to the PCE")
        self._secrets = secret_forms(api_key_username, api_key_secret) + _url_password(proxy_url)
        self.base_url = _base_url(host, port)
        self.org_id = int(org_id)
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.sync_limit = sync_limit
        self.job_timeout = job_timeout
        self.sleep = sleep
        self.clock = clock
        # Proxies and verify are passed with every request, not only set on the session: requests lets
        # HTTPS_PROXY and REQUESTS_CA_BUNDLE from the environment override session settings, and an explicit
        # proxy_url or ca_path must win.
        self.proxies = {"https": proxy_url, "http": proxy_url} if proxy_url else None
        self.session = _new_session(
            api_key_username, api_key_secret, validate_certs, ca_path, client_cert, client_key, user_agent
        )

    # --- paths ------------------------------------------------------------------------------------------
    def org_path(self, rel):
        """`labels` -> `/orgs/<org_id>/labels`."""
        return "/orgs/%d/%s" % (self.org_id, rel.lstrip("/"))

    @staticmethod
    def href_path(href):
        """A PCE href (`/orgs/1/labels/7`) as a request path; the client adds the API prefix."""
        if not href or not href.startswith("/"):
            raise PceError("not a PCE href: %r (expected something like /orgs/1/labels/7)" % (href,))
        prefix_length = len(API_PREFIX) if href.startswith(API_PREFIX + "/") else 0
        return href[prefix_length:]

    def url(self, path):
        return self.base_url + API_PREFIX + self.href_path(path)

    # --- verbs ------------------------------------------------------------------------------------------
    @_scrubbing_secrets
    def get(self, path, params=None):
        return _json_body(self.request("GET", path, params=params))

    @_scrubbing_secrets
    def post(self, path, data=None):
        return _json_body(self.request("POST", path, json_body=data))

    @_scrubbing_secrets
    def put(self, path, data=None):
        return _json_body(self.request("PUT", path, json_body=data))

    @_scrubbing_secrets
    def delete(self, path):
        return _json_body(self.request("DELETE", path))

    @_scrubbing_secrets
    def get_collection(self, path, params=None):
        """Every object of a collection, switching to an async request when the PCE caps the answer.

        `path` is an org-relative name (`labels`, `sec_policy/draft/ip_lists`) or a path (`/orgs/1/labels`).
        """
        if not path.startswith("/"):
            path = self.org_path(path)
        query = dict(params or {})
        query["max_results"] = self.sync_limit
        response = self.request("GET", path, params=query)
        items = _json_body(response) or []
        total = _int_header(response, "X-Total-Count")
        if total is None or total <= len(items):
            return items
        return self._get_collection_async(path, params)

    # --- the one request path ---------------------------------------------------------------------------
    @_scrubbing_secrets
    def request(self, method, path, params=None, json_body=None, headers=None):
        """Send one API request with retries; return the requests.Response or raise PceError."""
        return self._request_with_retries(method.upper(), path, params, json_body, headers)

    def _request_with_retries(self, method, path, params, json_body, headers):
        url = self.url(path)
        attempt = 0
        while True:
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=self.timeout,
                    proxies=self.proxies,
                    verify=self.session.verify,
                )
            except requests.exceptions.SSLError as error:
                raise PceError(_tls_message(self.base_url, error), details=str(error)) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                if attempt >= self.max_retries or not _safe_to_resend(method, error):
                    raise PceError(_connection_message(self.base_url, error, attempt + 1), details=str(error)) from None
                self.sleep(self._backoff(attempt))
            else:
                if response.status_code < 400:
                    return response
                if attempt >= self.max_retries or response.status_code not in _retry_statuses(method):
                    raise _error_from_response(response, method, path, attempt + 1)
                self.sleep(self._retry_after(response) if "Retry-After" in response.headers else self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt):
        # "Full jitter": clients that failed together do not retry together. Not security relevant.
        return random.uniform(0, min(self.backoff_max, self.backoff_factor * (2**attempt)))  # noqa: S311

    def _retry_after(self, response):
        return min(self.backoff_max, _parse_retry_after(response.headers.get("Retry-After")))

    # --- async collections ------------------------------------------------------------------------------
    def _get_collection_async(self, path, params):
        response = self.request("GET", path, params=params, headers={"Prefer": "respond-async"})
        if response.status_code != 202:
            # Some PCE versions answer small collections synchronously even when asked for async.
            return _json_body(response) or []
        location = response.headers.get("Location")
        if not location:
            raise PceError("PCE accepted the async request for %s but gave no job Location" % path)
        job = self._wait_for_job(_location_path(location), _parse_retry_after(response.headers.get("Retry-After"), 1))
        return self.get(job["result"]["href"]) or []

    def _wait_for_job(self, job_path, delay):
        deadline = self.clock() + self.job_timeout
        while True:
            self.sleep(delay)
            response = self.request("GET", job_path)
            job = _json_body(response) or {}
            status = job.get("status")
            if status == "done":
                if not (job.get("result") or {}).get("href"):
                    raise PceError("PCE job %s is done but names no result datafile" % job_path)
                return job
            if status not in JOB_PENDING_STATUSES:
                raise PceError(
                    "PCE job %s ended with status %r: %s" % (job_path, status, _excerpt(response.text)), details=job
                )
            if self.clock() >= deadline:
                raise PceError(
                    "PCE job %s did not finish within %s seconds (last status %r)"
                    % (job_path, self.job_timeout, status)
                )
            delay = _parse_retry_after(response.headers.get("Retry-After"), 1)


# --- construction helpers ---------------------------------------------------------------------------------
def _base_url(host, port):
    """`pce.example.com` or `https://pce.example.com[:port][/]` -> `https://pce.example.com:port`."""
    text = (host or "").strip()
    if not text:
        raise PceError("no PCE host given: set pce_host (or ILLUMIO_PCE_HOST)")
    if "://" not in text:
        # A bare IPv6 address has colons of its own and needs brackets in a URL.
        text = "https://" + ("[%s]" % text if text.count(":") > 1 and not text.startswith("[") else text)
    parts = urlsplit(text)
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise PceError("pce_host must be a host name or an https:// URL, got %r" % (host,))
    try:
        url_port = parts.port
    except ValueError:
        raise PceError("pce_host has an invalid port: %r" % (host,)) from None
    hostname = "[%s]" % parts.hostname if ":" in parts.hostname else parts.hostname
    return "https://%s:%d" % (hostname, url_port or int(port))


def _new_session(username, secret, validate_certs, ca_path, client_cert, client_key, user_agent):
    session = requests.Session()
    session.auth = (username or "", secret or "")
    session.headers.update({"Accept": "application/json", "User-Agent": user_agent})
    session.verify = (ca_path or True) if validate_certs else False
    if client_cert:
        session.cert = (client_cert, client_key) if client_key else client_cert
    return session


def _url_password(url):
    if not url:
        return []
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []


# --- retry helpers ----------------------------------------------------------------------------------------
def _retry_statuses(method):
    return RETRY_STATUSES if method in IDEMPOTENT_METHODS else RETRY_STATUSES_POST


def _safe_to_resend(method, error):
    """Whether a failed request can be sent again without risking doing its work twice."""
    if method in IDEMPOTENT_METHODS:
        return True
    # requests does not say whether the request left; a refused or timed-out connect means it did not.
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = error.args[0] if error.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _parse_retry_after(value, default=0.0):
    """Retry-After as seconds: a number, or an HTTP date (RFC 9110); anything else gives the default."""
    if value is None:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return default
    if when is None:
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())


def _location_path(location):
    """The job path from a Location header, which may be a path or a full URL."""
    path = urlsplit(location).path if "://" in location else location
    return PceClient.href_path(path)


def _int_header(response, name):
    try:
        return int(response.headers.get(name))
    except (TypeError, ValueError):
        return None


def _json_body(response):
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        message = "PCE answered %s %s with something that is not JSON: %s" % (
            response.status_code,
            response.reason,
            _excerpt(response.text),
        )
        raise PceError(message, status=response.status_code) from None


# --- error wording ----------------------------------------------------------------------------------------
def _error_from_response(response, method, path, attempts):
    status = response.status_code
    token, message = _pce_messages(response)
    where = "%s %s" % (method, path)
    if status == 406:
        text = "PCE rejected the request: %s" % message
    elif status == 400:
        text = "PCE says the request is invalid (400 Bad Request) for %s: %s" % (where, message)
    elif status == 401:
        text = "PCE authentication failed (401): check api_key_username / api_key_secret and that the API key is active"
    elif status == 403:
        text = "PCE denied permission (403 Forbidden) for %s: the API key's user lacks a role that allows it" % where
    elif status == 404:
        text = "not found: %s" % path
    elif status >= 500 or status in RETRY_STATUSES:
        text = "PCE answered %d %s for %s after %d attempt(s): %s" % (status, response.reason, where, attempts, message)
    else:
        text = "PCE answered %d %s for %s: %s" % (status, response.reason, where, message)
    return PceError(text, status=status, token=token, details=_excerpt(response.text))


def _pce_messages(response):
    """(first token, readable text) of an error body; the PCE sends `[{"token": ..., "message": ...}]`."""
    try:
        body = response.json()
    except ValueError:
        return None, _excerpt(response.text) or "(no details)"
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        return None, _excerpt(response.text)
    entries = [entry for entry in body if isinstance(entry, dict)]
    parts = []
    for entry in entries:
        message, token = entry.get("message"), entry.get("token")
        parts.append("%s (%s)" % (message, token) if message and token else str(message or token or entry))
    token = next((entry.get("token") for entry in entries if entry.get("token")), None)
    return token, "; ".join(parts) or _excerpt(response.text) or "(no details)"


def _excerpt(text):
    text = (text or "").strip()
    return text if len(text) <= BODY_EXCERPT_CHARS else text[:BODY_EXCERPT_CHARS] + "..."


def _tls_message(base_url, error):
    reason = _reason(error)
    if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate verify failed" in reason.lower():
        return (
            "TLS certificate verification failed for %s: %s. Set ca_path (or ILLUMIO_PCE_CA_PATH) to the CA "
            "certificate that signed the PCE certificate; validate_certs=false turns verification off and is "
            "not recommended." % (base_url, reason)
        )
    return (
        "TLS handshake with %s failed: %s. If the PCE (or a gateway in front of it) asks for a client certificate, "
        "set client_cert and client_key; for the server's certificate see ca_path and validate_certs."
        % (base_url, reason)
    )


def _connection_message(base_url, error, attempts):
    kind = "timed out" if isinstance(error, requests.exceptions.Timeout) else "failed"
    return (
        "connection to the PCE at %s %s after %d attempt(s): %s. Check pce_host / pce_port, network access "
        "and proxy_url (or HTTPS_PROXY / NO_PROXY)." % (base_url, kind, attempts, _reason(error))
    )


def _reason(error):
    """The innermost readable cause of a requests exception, without urllib3's object reprs."""
    reason = error.args[0] if error.args else error
    reason = getattr(reason, "reason", reason)
    text = str(reason)
    # urllib3 wraps the cause as "<urllib3.connection.HTTPSConnection object at 0x..>: Failed to ..."
    return text.split(">: ", 1)[-1] if text.startswith("<") else text
