"""PceClient against local HTTPS servers: retries, async collections, TLS, proxies and error wording."""

from __future__ import annotations

import base64
import email.utils
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import (
    PceClient,
    UncertainOutcome,
    resend_is_safe,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from cryptography.hazmat.primitives import serialization
from pce_test_server import ConnectProxy, Reply, script

USERNAME = "api_0123456789abcdef"
SECRET = "f0e1d2c3b4a5968778695a4b3c2d1e0f-very-secret"
BASIC_TOKEN = base64.b64encode(f"{USERNAME}:{SECRET}".encode()).decode()
# CA settings of the machine running the tests, read before the autouse fixture clears some of them.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
MACHINE_CA_ENVIRONMENT = {name: os.environ.get(name) for name in CA_VARIABLES}


class Sleeps(list):
    """Stands in for time.sleep: records the delays instead of waiting."""

    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture
def client_for(tls_files, sleeps):
    """client_for(server, **options) -> a PceClient that trusts the test CA and records its sleeps."""

    def make(server, **options):
        settings = {
            "host": "127.0.0.1",
            "port": server.port,
            "api_key_username": USERNAME,
            "api_key_secret": SECRET,
            "ca_path": str(tls_files.ca_cert),
            "sleep": sleeps,
            **options,
        }
        return PceClient(**settings)

    return make


def labels(count, start=1):
    return [{"href": f"/orgs/1/labels/{n}", "key": "role", "value": f"r{n}"} for n in range(start, start + count)]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- plain requests -------------------------------------------------------------------------------------


def test_get_sends_basic_auth_to_the_v2_api(serve, client_for):
    server = serve(script(Reply(200, {"href": "/orgs/1/labels/7"})))
    client = client_for(server)
    assert client.get(client.href_path("/orgs/1/labels/7")) == {"href": "/orgs/1/labels/7"}
    request = server.requests[0]
    assert (request.method, request.path) == ("GET", "/api/v2/orgs/1/labels/7")
    assert request.headers["authorization"] == "Basic " + BASIC_TOKEN
    assert request.headers["accept"] == "application/json"


def test_post_put_delete_send_json_and_accept_empty_answers(serve, client_for):
    server = serve(script(Reply(201, {"href": "/orgs/3/labels/1"}), Reply(204), Reply(204)))
    client = client_for(server, org_id=3)
    assert client.post(client.org_path("labels"), {"key": "env", "value": "prod"}) == {"href": "/orgs/3/labels/1"}
    assert client.put("/orgs/3/labels/1", {"value": "production"}) is None
    assert client.delete("/orgs/3/labels/1") is None
    assert [(r.method, r.path, r.body) for r in server.requests] == [
        ("POST", "/api/v2/orgs/3/labels", {"key": "env", "value": "prod"}),
        ("PUT", "/api/v2/orgs/3/labels/1", {"value": "production"}),
        ("DELETE", "/api/v2/orgs/3/labels/1", None),
    ]


@pytest.mark.parametrize(
    ("host", "port", "base_url"),
    [
        ("pce.example.com", 443, "https://pce.example.com:443"),
        ("pce.example.com", 8443, "https://pce.example.com:8443"),
        ("https://pce.example.com", 8443, "https://pce.example.com:8443"),
        ("https://pce.example.com:9443/", 8443, "https://pce.example.com:9443"),
        (" HTTPS://PCE.example.com:9443 ", 443, "https://pce.example.com:9443"),
        ("2001:db8::10", 8443, "https://[2001:db8::10]:8443"),
        ("https://[2001:db8::10]:9443", 443, "https://[2001:db8::10]:9443"),
    ],
)
def test_host_may_be_a_name_or_an_https_url(host, port, base_url):
    client = PceClient(host, port=port, api_key_username="u", api_key_secret="s")
    assert client.base_url == base_url
    assert client.url("/orgs/1/labels") == base_url + "/api/v2/orgs/1/labels"


@pytest.mark.parametrize("host", ["http://pce.example.com", "ftp://pce.example.com", "", "https://pce:notaport"])
def test_bad_host_is_refused_clearly(host):
    with pytest.raises(PceError, match="pce_host"):
        PceClient(host, api_key_username="u", api_key_secret="s")


def test_request_target_is_quoted_and_unset_parameters_are_left_out(serve, client_for):
    server = serve(script(Reply(200, []), Reply(200, [])))
    client = client_for(server)
    client.get("/orgs/1/labels?key=role", params={"value": "web tier", "max_results": None})
    client.get("/orgs/1/labels/x y")
    assert (server.requests[0].path, server.requests[0].query) == (
        "/api/v2/orgs/1/labels",
        {"key": "role", "value": "web tier"},
    )
    assert server.requests[1].path == "/api/v2/orgs/1/labels/x%20y"


def test_answer_headers_are_read_whatever_their_case(serve, client_for, sleeps):
    server = serve(script(Reply(429, None, {"retry-after": "2"}), Reply(200, labels(1), {"x-total-count": "1"})))
    assert client_for(server).get_collection("labels") == labels(1)
    assert sleeps == [2.0]


def test_paths():
    client = PceClient("pce.example.com", org_id=7, api_key_username="u", api_key_secret="s")
    assert client.org_path("labels") == "/orgs/7/labels"
    assert client.org_path("/sec_policy/draft/ip_lists") == "/orgs/7/sec_policy/draft/ip_lists"
    assert client.href_path("/orgs/7/labels/3") == "/orgs/7/labels/3"
    assert client.href_path("/api/v2/orgs/7/labels/3") == "/orgs/7/labels/3"
    with pytest.raises(PceError, match="not a PCE href"):
        client.href_path("labels/3")


# --- retries --------------------------------------------------------------------------------------------


def test_429_is_retried_after_the_delay_the_pce_asks_for(serve, client_for, sleeps):
    server = serve(script(Reply(429, {"error": "slow down"}, {"Retry-After": "3"}), Reply(200, [])))
    assert client_for(server).get("/orgs/1/labels") == []
    assert sleeps == [3.0]
    assert len(server.requests) == 2


def test_retry_after_as_http_date(serve, client_for, sleeps):
    when = email.utils.formatdate(time.time() + 8, usegmt=True)
    server = serve(script(Reply(429, None, {"Retry-After": when}), Reply(200, [])))
    client_for(server).get("/orgs/1/labels")
    assert len(sleeps) == 1
    assert 5 <= sleeps[0] <= 8


def test_retry_after_is_capped_by_backoff_max(serve, client_for, sleeps):
    server = serve(script(Reply(503, None, {"Retry-After": "3600"}), Reply(200, [])))
    client_for(server, backoff_max=12).get("/orgs/1/labels")
    assert sleeps == [12]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_overloaded_pce_is_retried_with_jittered_exponential_backoff(serve, client_for, sleeps, status):
    server = serve(script(Reply(status), Reply(status), Reply(status), Reply(200, [{"href": "/orgs/1/labels/1"}])))
    assert client_for(server, backoff_factor=0.5).get("/orgs/1/labels") == [{"href": "/orgs/1/labels/1"}]
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):
        assert 0 <= delay <= 0.5 * 2**attempt


def test_gives_up_after_max_retries_with_a_clear_error(serve, client_for, sleeps):
    server = serve(lambda request: Reply(503, [{"token": "service_unavailable", "message": "PCE is busy"}]))
    with pytest.raises(PceError) as caught:
        client_for(server, max_retries=2).get("/orgs/1/labels")
    assert len(server.requests) == 3
    assert len(sleeps) == 2
    assert caught.value.status == 503
    assert "503" in str(caught.value)
    assert "after 3 attempt(s)" in str(caught.value)
    assert "PCE is busy" in str(caught.value)


def test_post_is_not_resent_after_a_gateway_error(serve, client_for, sleeps):
    """The PCE behind a 502/504 may have created the object already; resending could create it twice."""
    server = serve(script(Reply(504), Reply(201, {})))
    with pytest.raises(PceError, match="504"):
        client_for(server).post("/orgs/1/labels", {"key": "role", "value": "web"})
    assert len(server.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("method", "path", "safe"),
    [
        ("GET", "/orgs/1/workloads", True),
        ("PUT", "/orgs/1/workloads/abc", True),
        ("PUT", "/orgs/1/workloads/bulk_update", True),
        ("DELETE", "/orgs/1/labels/7", True),
        ("POST", "/orgs/1/labels", False),
        ("PUT", "/orgs/1/workloads/bulk_create", False),
        ("PUT", "/orgs/1/workloads/bulk_delete", False),
        ("put", "/orgs/1/workloads/bulk_create?x=1", False),
    ],
)
def test_requests_are_classified_by_what_a_resend_does(method, path, safe):
    assert resend_is_safe(method, path) is safe


@pytest.mark.parametrize("operation", ["bulk_create", "bulk_delete"])
@pytest.mark.parametrize("status", [502, 504])
def test_bulk_create_and_delete_are_not_resent_after_a_gateway_error(serve, client_for, sleeps, operation, status):
    """Issue 17: a resent bulk_create made every workload twice."""
    server = serve(script(Reply(status), Reply(200, [])))
    with pytest.raises(UncertainOutcome, match="may have applied PUT /orgs/1/workloads/" + operation):
        client_for(server).put("/orgs/1/workloads/" + operation, [{"hostname": "a"}])
    assert len(server.requests) == 1
    assert sleeps == []


def test_bulk_create_is_not_resent_after_a_lost_answer(serve, client_for, sleeps):
    server = serve(script(Reply(0, drop=True), Reply(200, [])))
    with pytest.raises(UncertainOutcome, match="PCE may have applied it"):
        client_for(server).put("/orgs/1/workloads/bulk_create", [{"hostname": "a"}])
    assert len(server.requests) == 1


def test_bulk_update_is_still_resent_after_a_gateway_error(serve, client_for, sleeps):
    server = serve(script(Reply(502), Reply(200, [{"href": "/orgs/1/workloads/a", "status": "updated"}])))
    assert client_for(server).put("/orgs/1/workloads/bulk_update", [{"href": "/orgs/1/workloads/a"}]) == [
        {"href": "/orgs/1/workloads/a", "status": "updated"}
    ]
    assert len(server.requests) == 2


@pytest.mark.parametrize("first", [Reply(502), Reply(0, drop=True)])
def test_delete_whose_answer_was_lost_is_done_when_the_resend_finds_nothing(serve, client_for, sleeps, first):
    server = serve(script(first, Reply(404, [{"token": "not_found", "message": "Not Found"}])))
    assert client_for(server).delete("/orgs/1/labels/7") is None
    assert len(server.requests) == 2


def test_delete_of_what_never_existed_is_still_not_found(serve, client_for, sleeps):
    server = serve(script(Reply(404, [{"token": "not_found", "message": "Not Found"}])))
    with pytest.raises(PceError, match="not found"):
        client_for(server).delete("/orgs/1/labels/7")


def test_post_is_resent_when_the_pce_did_not_take_it(serve, client_for, sleeps):
    server = serve(script(Reply(503, None, {"Retry-After": "1"}), Reply(201, {"href": "/orgs/1/labels/1"})))
    assert client_for(server).post("/orgs/1/labels", {"key": "role", "value": "web"}) == {"href": "/orgs/1/labels/1"}
    assert sleeps == [1.0]


def test_connection_refused_is_retried_until_the_pce_is_up(serve, tls_files, client_for, sleeps):
    port = free_port()
    started = []

    def sleep_then_start(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            started.append(serve(script(Reply(200, [])), port=port))

    placeholder = type("Placeholder", (), {"port": port})
    client = client_for(placeholder, sleep=sleep_then_start)
    assert client.get("/orgs/1/labels") == []
    assert len(sleeps) == 2
    assert len(started[0].requests) == 1


def test_connection_refused_gives_up_with_a_clear_error(client_for, sleeps):
    placeholder = type("Placeholder", (), {"port": free_port()})
    with pytest.raises(PceError) as caught:
        client_for(placeholder, max_retries=3).get("/orgs/1/labels")
    message = str(caught.value)
    assert "connection to the PCE at https://127.0.0.1:" in message
    assert "after 4 attempt(s)" in message
    assert "pce_host" in message
    assert len(sleeps) == 3


def test_post_is_resent_when_the_connection_could_not_be_made(serve, client_for, sleeps):
    """A refused connection means the POST never left, so resending it cannot create anything twice."""
    port = free_port()
    started = []

    def sleep_then_start(seconds):
        sleeps.append(seconds)
        started.append(serve(script(Reply(201, {"href": "/orgs/1/labels/1"})), port=port))

    client = client_for(type("Placeholder", (), {"port": port}), sleep=sleep_then_start)
    assert client.post("/orgs/1/labels", {"key": "role", "value": "web"}) == {"href": "/orgs/1/labels/1"}
    assert len(sleeps) == 1
    assert len(started[0].requests) == 1


def test_post_is_not_resent_after_a_read_timeout(serve, client_for, sleeps):
    def too_slow(request):
        time.sleep(0.5)
        return Reply(201, {})

    server = serve(too_slow)
    with pytest.raises(
        UncertainOutcome, match=r"then the connection timed out: .*while waiting for the answer.*may have"
    ):
        client_for(server, timeout=0.1, max_retries=3).post("/orgs/1/labels", {"key": "role", "value": "web"})
    assert len(server.requests) == 1
    assert sleeps == []


def test_read_timeout_is_retried_then_reported(serve, client_for, sleeps):
    def too_slow(request):
        time.sleep(0.5)
        return Reply(200, [])

    server = serve(too_slow)
    with pytest.raises(PceError, match="timed out after 2 attempt"):
        client_for(server, timeout=0.1, max_retries=1).get("/orgs/1/labels")
    assert len(sleeps) == 1


# --- keep-alive -----------------------------------------------------------------------------------------


def test_requests_share_one_kept_alive_connection(serve, client_for):
    server = serve(script(Reply(200, []), Reply(201, {"href": "/orgs/1/labels/1"}), Reply(204), Reply(200, [])))
    client = client_for(server)
    client.get("/orgs/1/labels")
    client.post("/orgs/1/labels", {"key": "role", "value": "web"})
    client.delete("/orgs/1/labels/1")
    client.get("/orgs/1/labels")
    assert len(server.connections) == 1
    assert [request.connection for request in server.requests] == [0, 0, 0, 0]


def test_idle_connection_closed_by_the_server_is_replaced(serve, client_for, sleeps):
    """A POST too: the client sees the server's close before it sends, so nothing is resent."""
    server = serve(script(Reply(200, [], then_close=True), Reply(201, {"href": "/orgs/1/labels/1"})))
    client = client_for(server, max_retries=0)
    client.get("/orgs/1/labels")
    wait_until(lambda: server.closed == [0])
    assert client.post("/orgs/1/labels", {"key": "role", "value": "web"}) == {"href": "/orgs/1/labels/1"}
    assert [request.connection for request in server.requests] == [0, 1]
    assert sleeps == []


def test_answer_with_connection_close_is_followed_by_a_new_connection(serve, client_for, sleeps):
    server = serve(script(Reply(200, [], {"Connection": "close"}), Reply(200, labels(1))))
    client = client_for(server, max_retries=0)
    assert client.get("/orgs/1/labels") == []
    assert client.get("/orgs/1/labels") == labels(1)
    assert [request.connection for request in server.requests] == [0, 1]
    assert sleeps == []


def test_get_lost_on_a_connection_the_server_just_closed_is_sent_once_more(serve, client_for, sleeps):
    """Not a retry attempt: even with max_retries=0 the request goes again, at once, on a fresh connection."""
    server = serve(script(Reply(200, []), Reply(0, drop=True), Reply(200, labels(1))))
    client = client_for(server, max_retries=0)
    client.get("/orgs/1/labels")
    assert client.get("/orgs/1/labels") == labels(1)
    assert [request.connection for request in server.requests] == [0, 0, 1]
    assert sleeps == []


def test_post_lost_on_a_connection_the_server_just_closed_is_not_sent_twice(serve, client_for, sleeps):
    """The server read the whole POST before it hung up, so it may have acted on it: not resent."""
    server = serve(script(Reply(200, []), Reply(0, drop=True), Reply(201, {})))
    client = client_for(server)
    client.get("/orgs/1/labels")
    with pytest.raises(PceError) as caught:
        client.post("/orgs/1/labels", {"key": "role", "value": "web"})
    message = str(caught.value)
    assert isinstance(caught.value, UncertainOutcome)
    assert "POST /orgs/1/labels reached the PCE at https://127.0.0.1:" in message
    assert "The PCE may have applied it; it was not sent again" in message
    assert "while waiting for the answer" in message
    assert len(server.requests) == 2
    assert sleeps == []
    # The client itself is fine: its next request goes out on a fresh connection.
    assert client.get("/orgs/1/labels/1") == {}
    assert server.requests[-1].connection == 1


# --- collections ----------------------------------------------------------------------------------------


def test_collection_read_synchronously_when_the_count_matches(serve, client_for):
    server = serve(script(Reply(200, labels(3), {"X-Total-Count": "3"})))
    assert client_for(server, sync_limit=50).get_collection("labels", {"key": "role"}) == labels(3)
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request.path == "/api/v2/orgs/1/labels"
    assert request.query == {"key": "role", "max_results": "50"}
    assert "prefer" not in request.headers


def test_collection_switches_to_async_when_the_pce_caps_the_answer(serve, client_for, sleeps):
    everything = labels(7)
    server = serve(
        script(
            Reply(200, everything[:2], {"X-Total-Count": "7"}),
            Reply(202, None, {"Location": "/orgs/1/jobs/5f1c", "Retry-After": "2"}),
            Reply(200, {"href": "/orgs/1/jobs/5f1c", "status": "running"}, {"Retry-After": "1"}),
            Reply(200, {"href": "/orgs/1/jobs/5f1c", "status": "done", "result": {"href": "/orgs/1/datafiles/9d2"}}),
            Reply(200, everything),
        )
    )
    assert client_for(server, sync_limit=2).get_collection("labels", {"key": "role"}) == everything
    first, async_request, poll_1, poll_2, datafile = server.requests
    assert first.query == {"key": "role", "max_results": "2"}
    assert async_request.headers["prefer"] == "respond-async"
    assert async_request.path == "/api/v2/orgs/1/labels"
    assert async_request.query == {"key": "role"}
    assert [poll_1.path, poll_2.path] == ["/api/v2/orgs/1/jobs/5f1c"] * 2
    assert datafile.path == "/api/v2/orgs/1/datafiles/9d2"
    assert sleeps == [2.0, 1.0]


def test_async_job_that_fails_is_reported(serve, client_for):
    server = serve(
        script(
            Reply(200, labels(1), {"X-Total-Count": "900"}),
            Reply(202, None, {"Location": "https://127.0.0.1/api/v2/orgs/1/jobs/77"}),
            Reply(200, {"href": "/orgs/1/jobs/77", "status": "failed"}),
        )
    )
    with pytest.raises(PceError, match=r"job /orgs/1/jobs/77 ended with status 'failed'"):
        client_for(server, sync_limit=1).get_collection("/orgs/1/workloads")
    assert server.requests[2].path == "/api/v2/orgs/1/jobs/77"


def test_async_job_that_never_finishes_times_out(serve, client_for):
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    running = Reply(200, {"status": "pending"}, {"Retry-After": "10"})
    server = serve(
        script(Reply(200, [], {"X-Total-Count": "5"}), Reply(202, None, {"Location": "/orgs/1/jobs/1"}), *[running] * 9)
    )
    client = client_for(server, sleep=sleep, clock=lambda: now[0], job_timeout=60)
    with pytest.raises(PceError, match="did not finish within 60 seconds"):
        client.get_collection("workloads")
    assert 5 <= len(server.requests) - 2 <= 8


# --- TLS ------------------------------------------------------------------------------------------------


def test_untrusted_certificate_is_refused_without_retries(serve, client_for, tls_files, sleeps):
    server = serve(script(Reply(200, [])))
    for ca_path in (str(tls_files.other_ca_cert), None):
        with pytest.raises(PceError) as caught:
            client_for(server, ca_path=ca_path).get("/orgs/1/labels")
        message = str(caught.value)
        assert "certificate verif" in message.lower()
        assert "ca_path" in message
        assert "validate_certs" in message
    assert server.requests == []
    assert sleeps == []


def test_ca_path_beats_requests_ca_bundle_from_the_environment(serve, client_for, tls_files, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.other_ca_cert))
    server = serve(script(Reply(200, [])))
    assert client_for(server).get("/orgs/1/labels") == []
    with pytest.raises(PceError, match="certificate verification failed"):
        client_for(server, ca_path=None).get("/orgs/1/labels")


def machine_ca_environment(monkeypatch):
    """Set the CA variables as this machine has them (or to OpenSSL's default store where it has none)."""
    defaults = ssl.get_default_verify_paths()
    for name in CA_VARIABLES:
        value = MACHINE_CA_ENVIRONMENT[name] or (defaults.capath if name == "SSL_CERT_DIR" else defaults.cafile)
        if value:
            monkeypatch.setenv(name, value)


def test_ca_environment_of_this_machine_does_not_loosen_verification(serve, client_for, tls_files, monkeypatch):
    machine_ca_environment(monkeypatch)
    server = serve(script(Reply(200, [])))
    for ca_path in (str(tls_files.other_ca_cert), None):
        with pytest.raises(PceError, match="certificate verification failed"):
            client_for(server, ca_path=ca_path).get("/orgs/1/labels")
    assert server.requests == []


def test_ca_path_is_the_only_trust_when_given(serve, client_for, tls_files, monkeypatch):
    """Every CA variable names the CA that signed the server, yet only ca_path's CA counts."""
    for name in CA_VARIABLES:
        monkeypatch.setenv(name, str(tls_files.ca_cert if name != "SSL_CERT_DIR" else tls_files.ca_cert.parent))
    server = serve(script(Reply(200, [])))
    with pytest.raises(PceError, match="certificate verification failed"):
        client_for(server, ca_path=str(tls_files.other_ca_cert)).get("/orgs/1/labels")
    assert server.requests == []


def test_requests_ca_bundle_is_not_used(serve, client_for, tls_files, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_cert))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(tls_files.ca_cert))
    server = serve(script(Reply(200, [])))
    with pytest.raises(PceError, match="certificate verification failed"):
        client_for(server, ca_path=None).get("/orgs/1/labels")


def test_without_ca_path_openssl_default_trust_applies(serve, client_for, tls_files, tmp_path, monkeypatch):
    """As documented: without ca_path the system store is used, which SSL_CERT_FILE / SSL_CERT_DIR can move."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    server = serve(script(Reply(200, [])))
    assert client_for(server, ca_path=None).get("/orgs/1/labels") == []


def test_tls_options_shape_the_ssl_context(tls_files, monkeypatch):
    machine_ca_environment(monkeypatch)
    common = {"api_key_username": "u", "api_key_secret": "s"}
    default = PceClient("pce", **common).tls_context()
    assert (default.verify_mode, default.check_hostname) == (ssl.CERT_REQUIRED, True)
    pinned = PceClient("pce", ca_path=str(tls_files.ca_cert), **common).tls_context()
    assert (pinned.verify_mode, pinned.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert [ca["subject"] for ca in pinned.get_ca_certs()] == [((("commonName", "microseg.illumio unit test CA"),),)]
    unverified = PceClient("pce", validate_certs=False, ca_path="/x.pem", **common)
    assert (unverified.tls_context().verify_mode, unverified.tls_context().check_hostname) == (ssl.CERT_NONE, False)
    both = PceClient("pce", client_cert="/c.pem", client_key="/k.pem", **common)
    assert (both.client_cert, both.client_key) == ("/c.pem", "/k.pem")


def test_validate_certs_false_accepts_an_untrusted_certificate(serve, client_for, tls_files):
    server = serve(script(Reply(200, [])))
    assert client_for(server, ca_path=str(tls_files.other_ca_cert), validate_certs=False).get("/orgs/1/labels") == []


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command to name hashed CA files")
def test_ca_path_may_be_a_hashed_directory(serve, client_for, tls_files, tmp_path):
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(tls_files.ca_cert)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    shutil.copy(tls_files.ca_cert, tmp_path / f"{subject_hash}.0")
    server = serve(script(Reply(200, [])))
    assert client_for(server, ca_path=str(tmp_path)).get("/orgs/1/labels") == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"ca_path": "/nonexistent/ca.pem"}, "cannot load the CA certificate(s) of ca_path /nonexistent/ca.pem"),
        ({"client_cert": "/nonexistent/c.pem"}, "cannot load the client certificate client_cert /nonexistent/c.pem"),
        ({"client_cert": "CLIENT_CERT", "client_key": "/nonexistent/c.key"}, "client_key /nonexistent/c.key: "),
    ],
)
def test_unreadable_tls_files_are_reported_clearly(serve, client_for, tls_files, sleeps, options, expected):
    server = serve(script(Reply(200, [])))
    options = {name: str(tls_files.client_cert) if value == "CLIENT_CERT" else value for name, value in options.items()}
    with pytest.raises(PceError) as caught:
        client_for(server, **options).get("/orgs/1/labels")
    assert expected in str(caught.value)
    assert "No such file" in str(caught.value)
    assert (server.requests, sleeps) == ([], [])


def test_encrypted_client_key_is_refused_without_asking_for_a_password(serve, client_for, tls_files, tmp_path):
    key = serialization.load_pem_private_key(tls_files.client_key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encryption = serialization.BestAvailableEncryption(b"passphrase")
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    server = serve(script(Reply(200, [])))
    client = client_for(server, client_cert=str(tls_files.client_cert), client_key=str(encrypted))
    with pytest.raises(PceError, match=r"cannot load the client certificate .* the key unencrypted"):
        client.get("/orgs/1/labels")


def test_client_certificate_is_presented(serve, client_for, tls_files):
    server = serve(lambda request: Reply(200, [request.client_cert["subject"]]), require_client_cert=True)
    client = client_for(server, client_cert=str(tls_files.client_cert), client_key=str(tls_files.client_key))
    assert client.get("/orgs/1/labels") == [[[["commonName", "ansible-controller"]]]]
    with pytest.raises(PceError, match=r"TLS handshake .* failed: .*set client_cert and client_key"):
        client_for(server, max_retries=0).get("/orgs/1/labels")


# --- proxies --------------------------------------------------------------------------------------------


@pytest.fixture
def proxy():
    running = ConnectProxy()
    yield running
    running.stop()


def test_proxy_url_tunnels_requests_and_beats_the_environment(serve, client_for, proxy, monkeypatch):
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HTTPS_PROXY", dead_proxy)
    server = serve(script(Reply(200, []), Reply(200, [])))
    client = client_for(server, proxy_url=proxy.url)
    assert client.get("/orgs/1/labels") == []
    assert client.get("/orgs/1/labels") == []
    assert [tunnel[:2] for tunnel in proxy.tunnels] == [("CONNECT", f"127.0.0.1:{server.port}")]  # keep-alive
    assert len(server.requests) == 2


def test_without_proxy_url_the_environment_proxy_is_used(serve, client_for, proxy, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    server = serve(script(Reply(200, [])))
    client_for(server).get("/orgs/1/labels")
    assert [tunnel[:2] for tunnel in proxy.tunnels] == [("CONNECT", f"127.0.0.1:{server.port}")]


def test_proxy_credentials_go_to_the_proxy_only(serve, client_for, proxy):
    server = serve(script(Reply(200, [])))
    proxy_url = proxy.url.replace("http://", "http://proxy%20user:Pa%3Ass@")
    client_for(server, proxy_url=proxy_url).get("/orgs/1/labels")
    expected = "Basic " + base64.b64encode(b"proxy user:Pa:ss").decode()
    assert proxy.tunnels[0][2]["Proxy-Authorization"] == expected
    assert "proxy-authorization" not in server.requests[0].headers


def test_proxy_url_is_used_even_for_hosts_in_no_proxy(serve, client_for, proxy, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server = serve(script(Reply(200, [])))
    client_for(server, proxy_url=proxy.url).get("/orgs/1/labels")
    assert len(proxy.tunnels) == 1


@pytest.mark.parametrize("variable", ["https_proxy", "HTTPS_PROXY", "ALL_PROXY"])
def test_environment_proxy_variables(serve, client_for, proxy, monkeypatch, variable):
    monkeypatch.setenv(variable, proxy.url.replace("http://", "") if variable == "ALL_PROXY" else proxy.url)
    server = serve(script(Reply(200, [])))
    client = client_for(server)
    assert client.proxy_url in (proxy.url, proxy.url.replace("http://", ""))
    assert client.get("/orgs/1/labels") == []
    assert [tunnel[:2] for tunnel in proxy.tunnels] == [("CONNECT", f"127.0.0.1:{server.port}")]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NO_PROXY", "127.0.0.1"),
        ("no_proxy", "pce.example.com, 127.0.0.1"),
        ("NO_PROXY", "*"),
        ("no_proxy", "10.0.0.0/8,127.0.0.0/8"),
    ],
)
def test_no_proxy_bypasses_the_environment_proxy(serve, client_for, proxy, monkeypatch, variable, value):
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv(variable, value)
    server = serve(script(Reply(200, [])))
    client = client_for(server)
    assert client.proxy_url is None
    assert client.get("/orgs/1/labels") == []
    assert proxy.tunnels == []


def test_no_proxy_for_other_hosts_keeps_the_proxy(serve, client_for, proxy, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "pce.example.com,10.0.0.0/8,127.0.0.10")
    server = serve(script(Reply(200, [])))
    client_for(server).get("/orgs/1/labels")
    assert len(proxy.tunnels) == 1


@pytest.mark.parametrize(
    "proxy_url", ["socks5://127.0.0.1:1080", "https://user:Pr0xyPa55word@proxy:3128", "http://p:x"]
)
def test_unusable_proxy_url_is_refused_clearly(proxy_url):
    with pytest.raises(PceError) as caught:
        PceClient("pce", api_key_username=USERNAME, api_key_secret=SECRET, proxy_url=proxy_url)
    assert "proxy_url must be an http:// URL such as http://proxy.example.com:3128" in str(caught.value)
    assert "Pr0xyPa55word" not in str(caught.value)


def test_proxy_credentials_never_show_in_errors(client_for):
    placeholder = type("Placeholder", (), {"port": free_port()})
    proxy_url = f"http://proxyuser:Pr0xyPa55word@127.0.0.1:{free_port()}"
    with pytest.raises(PceError) as caught:
        client_for(placeholder, proxy_url=proxy_url, max_retries=0).get("/orgs/1/labels")
    assert "Pr0xyPa55word" not in str(caught.value) + repr(caught.value) + str(caught.value.details)


# --- error mapping --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            406,
            [{"token": "label_in_use", "message": "Label is still in use"}],
            "PCE rejected the request: Label is still in use (label_in_use)",
        ),
        (400, [{"token": "invalid_uri", "message": "Bad query"}], "invalid (400 Bad Request) for GET /orgs/1/x"),
        (400, "plain text complaint", "plain text complaint"),
        (401, {"error": "no"}, "authentication failed (401): check api_key_username / api_key_secret"),
        (403, [{"token": "forbidden_error"}], "denied permission (403 Forbidden) for GET /orgs/1/x"),
        (404, None, "not found: /orgs/1/x"),
        (409, [{"token": "conflict", "message": "busy"}], "PCE answered 409 Conflict for GET /orgs/1/x: busy"),
        (500, "<html>oops</html>", "PCE answered 500 Internal Server Error for GET /orgs/1/x after 1 attempt(s)"),
    ],
)
def test_error_statuses_are_worded_for_people(serve, client_for, status, body, expected):
    server = serve(script(Reply(status, body)))
    with pytest.raises(PceError) as caught:
        client_for(server).get("/orgs/1/x")
    assert expected in str(caught.value)
    assert caught.value.status == status
    assert len(server.requests) == 1


def test_406_keeps_the_token_for_callers(serve, client_for):
    server = serve(script(Reply(406, [{"token": "label_in_use", "message": "in use"}])))
    with pytest.raises(PceError) as caught:
        client_for(server).delete("/orgs/1/labels/1")
    assert caught.value.token == "label_in_use"


def test_answer_that_is_not_json_is_reported(serve, client_for):
    server = serve(script(Reply(200, "<html>login page of a captive portal</html>")))
    with pytest.raises(PceError, match="not JSON: <html>login page"):
        client_for(server).get("/orgs/1/labels")


# --- secrets --------------------------------------------------------------------------------------------


def echo_everything(status):
    """A server that echoes the request's credentials back in its error body, as some proxies do."""

    def handle(request):
        echoed = f"auth={request.headers.get('authorization')} secret={SECRET} user={USERNAME}"
        return Reply(status, [{"token": "echo", "message": echoed}], {"X-Echo": SECRET})

    return handle


@pytest.mark.parametrize("status", [400, 401, 403, 404, 406, 409, 500, 503])
def test_secret_never_appears_in_errors_even_when_echoed(serve, client_for, status):
    server = serve(echo_everything(status))
    with pytest.raises(PceError) as caught:
        client_for(server, max_retries=1).get("/orgs/1/labels")
    error = caught.value
    everything = " ".join([str(error), repr(error), str(error.details), str(error.token), repr(error.args)])
    assert SECRET not in everything
    assert BASIC_TOKEN not in everything
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_secret_never_appears_when_a_job_fails_with_it(serve, client_for):
    server = serve(
        script(
            Reply(200, [], {"X-Total-Count": "5"}),
            Reply(202, None, {"Location": "/orgs/1/jobs/1"}),
            Reply(200, {"status": "failed", "error": f"Authorization: Basic {BASIC_TOKEN} / {SECRET}"}),
        )
    )
    with pytest.raises(PceError) as caught:
        client_for(server).get_collection("labels")
    everything = str(caught.value) + repr(caught.value) + str(caught.value.details)
    assert "failed" in everything
    assert SECRET not in everything
    assert BASIC_TOKEN not in everything
