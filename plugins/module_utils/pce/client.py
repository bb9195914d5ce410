# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one HTTP client for the Illumio PCE REST API (v2): used by every module and by the inventory plugin.

It runs wherever a module runs, so it uses the Python standard library only (Python 3.6+): http.client over
one kept-alive TLS connection, ssl for certificate checks, and urllib's proxy settings from the environment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import base64
import datetime
import email.utils
import functools
import http.client
import ipaddress
import json
import os
import random
import select
import socket
import ssl
import time
from urllib.parse import quote, unquote, urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

from ansible_collections.microseg.illumio.plugins.module_utils.options import without_credentials
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError, secret_forms

API_PREFIX = "/api/v2"
DEFAULT_USER_AGENT = "microseg.illumio"
# Statuses that mean "not now, try again": rate limiting, and a PCE (or its load balancer) that is overloaded.
RETRY_STATUSES = frozenset([429, 502, 503, 504])
# A request that is not idempotent (see resend_is_safe) and reached the PCE may have done its work even if a
# gateway timed out (502, 504), so it is resent only when the PCE said it did not process it.
RETRY_STATUSES_POST = frozenset([429, 503])
# Statuses after which the PCE may or may not have done the work: a gateway gave up waiting for it.
UNCERTAIN_STATUSES = frozenset([502, 504])
IDEMPOTENT_METHODS = frozenset(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
# Requests of idempotent methods that a resend does NOT repeat harmlessly: each bulk_create makes new workloads
# (hostnames are not unique on a PCE), and a resent bulk_delete answers "not found" for what the first one did.
# Their callers look up what happened instead (see UncertainOutcome).
NOT_IDEMPOTENT_PATHS = ("/bulk_create", "/bulk_delete")
JOB_PENDING_STATUSES = frozenset(["pending", "running", "queued", "in_progress"])
BODY_EXCERPT_CHARS = 500
# What a kept-alive connection that the server closed while it was idle looks like once a request is sent on it.
STALE_CONNECTION_ERRORS = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
    ssl.SSLZeroReturnError,
    ssl.SSLEOFError,
)
# Characters left as they are in a request path: RFC 3986 path characters, and "%" of escapes already made.
_PATH_SAFE = "/:@!$&'()*+,;=~%"


def _scrubbing_secrets(method):
    """Every PceError leaving the client passes through here, so no message can carry a secret."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except PceError as error:
            # `from None`: the chained socket or TLS exception may quote what the server echoed back.
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
        self._secrets = secret_forms(api_key_username, api_key_secret) + _url_password(proxy_url)
        self.base_url = _base_url(host, port)
        parts = urlsplit(self.base_url)
        self._host, self._port = parts.hostname, parts.port
        self.org_id = int(org_id)
        self.timeout = timeout
        self.max_retries = max(0, int(max_retries))
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.sync_limit = sync_limit
        self.job_timeout = job_timeout
        self.sleep = sleep
        self.clock = clock
        self.validate_certs = bool(validate_certs)
        self.ca_path = ca_path
        self.client_cert = client_cert
        self.client_key = client_key
        # The proxy in use: proxy_url, else HTTPS_PROXY (or ALL_PROXY) unless NO_PROXY names the PCE; or None.
        self.proxy_url = proxy_url or _environment_proxy(self._host, self._port)
        self._secrets += _url_password(self.proxy_url)
        try:
            self._proxy = _parse_proxy(self.proxy_url) if self.proxy_url else None
        except PceError as error:
            raise error.scrubbed(self._secrets) from None
        credentials = ("%s:%s" % (api_key_username or "", api_key_secret or "")).encode("utf-8")
        self._headers = {
            "Accept": "application/json",
            "User-Agent": user_agent,
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
        }
        self._tls_context = None
        self._connection = None

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

    def close(self):
        """Close the kept-alive connection; the next request opens a new one."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    # --- the one request path ---------------------------------------------------------------------------
    @_scrubbing_secrets
    def request(self, method, path, params=None, json_body=None, headers=None):
        """Send one API request with retries; return its Response or raise PceError."""
        method = method.upper()
        target = self._target(path, params)
        body = _encode_json(json_body, method, path)
        request_headers = dict(self._headers)
        if body is not None:
            request_headers["Content-Type"] = "application/json"
        request_headers.update(headers or {})
        request_headers = dict((name, value) for name, value in request_headers.items() if value is not None)
        return self._request_with_retries(method, target, body, request_headers, path)

    def _target(self, path, params):
        """The request target: quoted API path and query string (parameters set to None are left out)."""
        path, query = (API_PREFIX + self.href_path(path)).partition("?")[::2]
        pairs = [(name, value) for name, value in (params or {}).items() if value is not None]
        query = "&".join(part for part in (query, urlencode(pairs, doseq=True)) if part)
        return quote(path, safe=_PATH_SAFE) + ("?" + query if query else "")

    def _request_with_retries(self, method, target, body, headers, path):
        safe = resend_is_safe(method, path)
        attempt = 0
        maybe_done = False  # an earlier attempt may have done the work (sent whole, answer lost or 502/504)
        while True:
            try:
                response = self._send(method, target, body, headers, safe)
            except _TlsFailure as failure:
                raise PceError(_tls_message(self.base_url, failure.error), details=str(failure.error)) from None
            except _ConnectionFailure as failure:
                if failure.sent and not safe:
                    raise UncertainOutcome(_uncertain_message(self.base_url, method, path, failure)) from None
                if attempt >= self.max_retries:
                    message = _connection_message(self.base_url, failure, attempt + 1)
                    raise PceError(message, details=str(failure.error)) from None
                maybe_done = maybe_done or failure.sent
                self.sleep(self._backoff(attempt))
            else:
                if response.status_code < 400:
                    return response
                if maybe_done and method == "DELETE" and response.status_code == 404:
                    # The earlier attempt deleted it; its answer was lost on the way.
                    return Response(204, "No Content", http.client.HTTPMessage(), b"")
                if not safe and response.status_code in UNCERTAIN_STATUSES:
                    error = _error_from_response(response, method, path, attempt + 1)
                    raise UncertainOutcome(
                        "%s; the PCE may have applied %s %s before the gateway gave up" % (error.message, method, path),
                        status=error.status,
                        token=error.token,
                        details=error.details,
                    )
                if attempt >= self.max_retries or response.status_code not in _retry_statuses(method, safe):
                    raise _error_from_response(response, method, path, attempt + 1)
                maybe_done = maybe_done or response.status_code in UNCERTAIN_STATUSES
                self.sleep(self._retry_after(response) if "Retry-After" in response.headers else self._backoff(attempt))
            attempt += 1

    def _backoff(self, attempt):
        # "Full jitter": clients that failed together do not retry together. Not security relevant.
        return random.uniform(0, min(self.backoff_max, self.backoff_factor * (2**attempt)))  # noqa: S311

    def _retry_after(self, response):
        return min(self.backoff_max, _parse_retry_after(response.headers.get("Retry-After")))

    # --- the connection ---------------------------------------------------------------------------------
    def _send(self, method, target, body, headers, safe):
        """One exchange on the kept-alive connection, which is opened (again) when there is none."""
        reused = self._connection_is_usable()
        if not reused:
            self._connect()
        try:
            return self._exchange(method, target, body, headers)
        except _ConnectionFailure as failure:
            # The server closed the idle connection just as this request went out on it. That is not the
            # PCE failing, so the request goes once more on a fresh connection without counting as a retry;
            # one that is not idempotent only if it did not leave whole, since the PCE may have acted on it.
            if not (reused and failure.stale and (safe or not failure.sent)):
                raise
            first_sent = failure.sent
        self._connect()
        response = self._exchange(method, target, body, headers)
        if first_sent and method == "DELETE" and response.status_code == 404:
            # The first attempt deleted it before the server hung up.
            return Response(204, "No Content", http.client.HTTPMessage(), b"")
        return response

    def _connection_is_usable(self):
        connection = self._connection
        if connection is None:
            return False
        if connection.sock is None or _dropped(connection.sock):
            # Closed after a `Connection: close` answer, or by the server while idle (its FIN is waiting).
            self.close()
            return False
        return True

    def _connect(self):
        self.close()
        context = self.tls_context()
        if self._proxy:
            connection = http.client.HTTPSConnection(
                self._proxy["host"], self._proxy["port"], timeout=self.timeout, context=context
            )
            connection.set_tunnel(self._host, self._port, headers=self._proxy["headers"])
        else:
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout, context=context)
        try:
            connection.connect()
        except BaseException as error:
            connection.close()
            if isinstance(error, (ssl.SSLError, ssl.CertificateError)):
                # Even a server that hangs up in the handshake is a TLS problem (versions, client certificate).
                raise _TlsFailure(error) from None
            raise _failure(error, self._connect_step(), sent=False) from None
        self._connection = connection

    def _exchange(self, method, target, body, headers):
        connection = self._connection
        try:
            connection.request(method, target, body=body, headers=headers)
            send_error = None
        except BaseException as error:
            if not _hung_up(error):
                self.close()
                raise _failure(error, "sending the request", sent=False) from None
            # The server hung up while the request went out. It may have said why first (an HTTP error, or a
            # TLS alert such as "certificate required"), so whatever it sent is still read.
            send_error = error
        step = "waiting for the answer"
        try:
            answer = connection.getresponse()
            step = "reading the answer"
            content = answer.read()
        except BaseException as error:
            self.close()
            if send_error is None:
                raise _failure(error, step, sent=True) from None
            if isinstance(error, ssl.SSLError) and not _hung_up(error):
                raise _TlsFailure(error) from None
            raise _failure(send_error, "sending the request", sent=False) from None
        if send_error is not None:
            self.close()
        return Response(answer.status, answer.reason, answer.msg, content)

    def _connect_step(self):
        if self._proxy:
            return "connecting through the proxy at %s:%d" % (_url_host(self._proxy["host"]), self._proxy["port"])
        return "connecting"

    def tls_context(self):
        """The ssl.SSLContext of every connection (built on first use): verification, CA and client certificate.

        With ca_path only the CAs in that file (or hashed directory) are trusted; without it, OpenSSL's default
        trust store (which SSL_CERT_FILE / SSL_CERT_DIR may point elsewhere). REQUESTS_CA_BUNDLE is not used.
        """
        if self._tls_context is None:
            self._tls_context = _tls_context(self.validate_certs, self.ca_path, self.client_cert, self.client_key)
        return self._tls_context

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


class Response(object):
    """One answer of the PCE: status_code, reason, headers (case-insensitive), content (bytes), text, json()."""

    def __init__(self, status_code, reason, headers, content):
        self.status_code = status_code
        self.reason = reason
        self.headers = headers  # an http.client.HTTPMessage: get() and `in` ignore the case of names
        self.content = content

    @property
    def text(self):
        try:
            return self.content.decode(self.headers.get_content_charset("utf-8"), "replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", "replace")

    def json(self):
        """The body as JSON; ValueError when it is not JSON."""
        return json.loads(self.text)


class UncertainOutcome(PceError):
    """A request that is not safe to resend reached the PCE whole, and no answer came back (the connection
    dropped, or a gateway answered 502 / 504): the PCE may or may not have done the work. The caller looks up
    what happened before it sends anything again."""

    def scrubbed(self, secrets):
        plain = PceError.scrubbed(self, secrets)
        return UncertainOutcome(plain.message, status=plain.status, token=plain.token, details=plain.details)


class _ConnectionFailure(Exception):
    """A request that got no answer. `sent`: whether it may have reached the PCE whole."""

    def __init__(self, error, step, sent):
        super(_ConnectionFailure, self).__init__(error)
        self.error = error
        self.step = step
        self.sent = sent
        self.stale = _hung_up(error) and step != "reading the answer"


class _TlsFailure(Exception):
    def __init__(self, error):
        super(_TlsFailure, self).__init__(error)
        self.error = error


def _failure(error, step, sent):
    """The _ConnectionFailure or _TlsFailure for an exception of http.client, socket or ssl."""
    if _hung_up(error) or isinstance(error, (socket.timeout, TimeoutError)):
        return _ConnectionFailure(error, step, sent)
    if isinstance(error, (ssl.SSLError, ssl.CertificateError)):
        return _TlsFailure(error)
    if isinstance(error, (OSError, http.client.HTTPException, UnicodeError)):
        return _ConnectionFailure(error, step, sent)
    raise error


def _hung_up(error):
    """Whether an exception means the server closed the connection (as it does with an idle one)."""
    if isinstance(error, STALE_CONNECTION_ERRORS):
        return True
    # Python < 3.10 built with OpenSSL 3 reports a close without TLS close_notify as a generic SSLError.
    return isinstance(error, ssl.SSLError) and "unexpected eof" in str(error).lower()


def _dropped(sock):
    """Whether an idle kept-alive socket has something to read: the server closed it (or broke protocol)."""
    try:
        if getattr(sock, "pending", None) and sock.pending():
            return True
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


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
    return "https://%s:%d" % (_url_host(parts.hostname), url_port or int(port))


def _url_host(hostname):
    return "[%s]" % hostname if ":" in hostname else hostname


def _tls_context(validate_certs, ca_path, client_cert, client_key):
    if validate_certs and ca_path:
        what = "ca_path %s" % ca_path
        try:
            if os.path.isdir(ca_path):
                context = ssl.create_default_context(capath=ca_path)
            else:
                context = ssl.create_default_context(cafile=ca_path)
        except (OSError, ValueError) as error:
            raise PceError(
                "cannot load the CA certificate(s) of %s: %s. It must be a PEM file of the CA that signed the "
                "PCE certificate." % (what, _reason(error))
            ) from None
    else:
        context = ssl.create_default_context()
    if not validate_certs:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_cert:
        try:
            # A password callback that gives none: an encrypted key fails here instead of prompting on a tty.
            context.load_cert_chain(client_cert, client_key or None, password=_no_key_password)
        except (OSError, ValueError) as error:
            raise PceError(
                "cannot load the client certificate client_cert %s%s: %s. Both must be PEM files and the key "
                "unencrypted." % (client_cert, " / client_key %s" % client_key if client_key else "", _reason(error))
            ) from None
    return context


def _no_key_password():
    return b""


def _url_password(url):
    if not url:
        return []
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []


def _environment_proxy(host, port):
    """HTTPS_PROXY (or ALL_PROXY) from the environment, unless NO_PROXY says to reach this host directly."""
    proxies = getproxies()
    proxy = proxies.get("https") or proxies.get("all")
    if not proxy:
        return None
    if proxy_bypass(host) or (":" not in host and proxy_bypass("%s:%d" % (host, port))):
        return None
    if _in_networks(host, proxies.get("no")):
        return None
    return proxy


def _in_networks(host, no_proxy):
    """Whether an IP address host lies in a network (10.0.0.0/8) of NO_PROXY, which urllib does not check."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in (no_proxy or "").split(","):
        entry = entry.strip()
        if "/" not in entry:
            continue
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _parse_proxy(url):
    """proxy_url (`http://[user:password@]host[:port]`) -> host, port and the headers of its CONNECT."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port or 80
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme.lower() != "http" or not parts.hostname or port is None:
        # Shown without its user info: a password that is not percent-encoded may not even parse as one.
        raise PceError(
            "proxy_url must be an http:// URL such as http://proxy.example.com:3128, with user and password "
            "before the host if the proxy wants them (percent-encoded; HTTPS to the PCE is tunnelled through it), "
            "got %r" % (without_credentials(url),)
        )
    headers = {}
    if parts.username is not None:
        credentials = "%s:%s" % (unquote(parts.username), unquote(parts.password or ""))
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    return {"host": parts.hostname, "port": port, "headers": headers}


def _encode_json(data, method, path):
    if data is None:
        return None
    try:
        return json.dumps(data, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise PceError("cannot send %s %s: its body is not JSON: %s" % (method, path, error)) from None


# --- retry helpers ----------------------------------------------------------------------------------------
def resend_is_safe(method, path):
    """Whether sending a request again, after it may have reached the PCE, cannot do its work twice.

    Reads, updates (PUT) and deletions are idempotent (a DELETE whose first attempt did the work answers 404
    the second time, which the client takes as done). Creations are not: a POST makes another object, and so
    does PUT workloads/bulk_create; a resent PUT workloads/bulk_delete reports errors for what the first one
    deleted. Those are never resent once they may have reached the PCE; an UncertainOutcome says so instead.
    """
    method = method.upper()
    if method not in IDEMPOTENT_METHODS:
        return False
    bare = path.partition("?")[0].rstrip("/")
    return not bare.endswith(NOT_IDEMPOTENT_PATHS)


def _retry_statuses(method, safe=None):
    if safe is None:
        safe = method in IDEMPOTENT_METHODS
    return RETRY_STATUSES if safe else RETRY_STATUSES_POST


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
    if (
        isinstance(error, ssl.CertificateError)
        or "CERTIFICATE_VERIFY_FAILED" in reason
        or "certificate verify failed" in reason.lower()
    ):
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


def _connection_message(base_url, failure, attempts):
    kind = "timed out" if isinstance(failure.error, (socket.timeout, TimeoutError)) else "failed"
    return (
        "connection to the PCE at %s %s after %d attempt(s): %s (while %s). Check pce_host / pce_port, network "
        "access and proxy_url (or HTTPS_PROXY / NO_PROXY)."
        % (base_url, kind, attempts, _reason(failure.error), failure.step)
    )


def _uncertain_message(base_url, method, path, failure):
    kind = "timed out" if isinstance(failure.error, (socket.timeout, TimeoutError)) else "failed"
    return (
        "%s %s reached the PCE at %s, then the connection %s: %s (while %s). The PCE may have applied it; it was "
        "not sent again, since that could apply it twice."
        % (method, path, base_url, kind, _reason(failure.error), failure.step)
    )


def _reason(error):
    """An exception as readable text: its message, or its type when it has none."""
    return str(error) or error.__class__.__name__
