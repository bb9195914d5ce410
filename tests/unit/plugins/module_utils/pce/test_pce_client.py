"""PceClient against local HTTPS servers: retries, async collections, TLS, proxies and error wording."""

from __future__ import annotations

import base64
import email.utils
import socket
import time

import pytest
from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import PceClient
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from pce_test_server import ConnectProxy, Reply, script

USERNAME = "api_0123456789abcdef"
SECRET = "f0e1d2c3b4a5968778695a4b3c2d1e0f-very-secret"
BASIC_TOKEN = base64.b64encode(f"{USERNAME}:{SECRET}".encode()).decode()


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


def test_read_timeout_is_retried_then_reported(serve, client_for, sleeps):
    def too_slow(request):
        time.sleep(0.5)
        return Reply(200, [])

    server = serve(too_slow)
    with pytest.raises(PceError, match="timed out after 2 attempt"):
        client_for(server, timeout=0.1, max_retries=1).get("/orgs/1/labels")
    assert len(sleeps) == 1


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


def test_tls_options_are_wired_into_the_session(tls_files):
    common = {"api_key_username": "u", "api_key_secret": "s"}
    assert PceClient("pce", **common).session.verify is True
    assert PceClient("pce", ca_path="/etc/pce-ca.pem", **common).session.verify == "/etc/pce-ca.pem"
    assert PceClient("pce", validate_certs=False, ca_path="/x.pem", **common).session.verify is False
    both = PceClient("pce", client_cert="/c.pem", client_key="/k.pem", **common)
    assert both.session.cert == ("/c.pem", "/k.pem")
    assert PceClient("pce", client_cert="/ck.pem", **common).session.cert == "/ck.pem"


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
