"""A TLS fault proxy in front of a lab PCE: it relays HTTP requests and loses chosen answers after the PCE has
handled them. The one fault proxy of the integration tests (used by test_flow_upload_fault.py and
test_no_duplicates.py).

Clients connect to the proxy as to the PCE: it presents the lab's own server certificate (so they verify TLS
against the lab CA unchanged), reads each request, sends it to the lab over a verified TLS connection, reads the
whole answer and then either passes it on or - for a request a rule matches - loses it: closes the client's
connection without a word ("drop"), or answers a gateway status (502, 504) instead. Either way the PCE has done
the work; the client cannot know. It can also hold chosen requests for a while before relaying them (`slow`), as a
slow network does, to widen the window in which two concurrent runs race.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


@dataclass
class Rule:
    """Lose the answers of requests of `method` whose path matches `path` (a regex, searched): after `skip`
    matching requests have passed, the next `times` ones. `on_answer(request_path)` runs before the answer is
    lost (e.g. to kill the PCE)."""

    method: str
    path: str
    action: object = "drop"  # "drop" or a status code
    times: int = 1
    skip: int = 0
    on_answer: Callable[[str], object] | None = None
    seen: int = 0
    lost: list[str] = field(default_factory=list)
    fired: threading.Event = field(default_factory=threading.Event)


class _Relay(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _relay(self):
        proxy: FaultProxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        delay = proxy.delay_for(self.command, self.path.split("?", 1)[0])
        if delay:
            time.sleep(delay)  # a slow network or PCE: the request arrives late
        upstream = getattr(self, "_upstream", None)
        if upstream is None:
            upstream = self._upstream = proxy.upstream()
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
        except (OSError, http.client.HTTPException):
            upstream.close()
            self._upstream = None
            self.close_connection = True
            return
        rule = proxy.rule_for(self.command, self.path.split("?", 1)[0])
        if rule is not None:
            if rule.on_answer is not None:
                rule.on_answer(self.path)
            rule.fired.set()
            if rule.action == "drop":
                self.close_connection = True
                return
            payload = json.dumps([{"token": "gateway", "message": f"gateway answered {rule.action}"}]).encode()
            self.send_response(int(rule.action))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = _relay

    def finish(self):
        upstream = getattr(self, "_upstream", None)
        if upstream is not None:
            upstream.close()
        super().finish()


class _TlsServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _Relay(tls, client_address, self)
        except OSError:
            pass
        finally:
            tls.close()

    def handle_error(self, request, client_address):
        pass


class FaultProxy:
    """Listen on 127.0.0.1 (`port`) and relay to the lab PCE whose data folder (certificate, CA) is `lab_dir`."""

    def __init__(self, lab_dir: str | Path, upstream_port: int, upstream_host: str = "localhost"):
        folder = Path(lab_dir)
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._client_context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(folder / "server.pem"), str(folder / "server.key"))
        self.rules: list[Rule] = []
        self.delays: list[list] = []  # [method, path pattern, seconds, times left]
        self._lock = threading.Lock()
        self._server = _TlsServer(("127.0.0.1", 0), _Relay)
        self._server.context = context
        self._server.proxy = self
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def upstream(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.upstream_host, self.upstream_port, timeout=120, context=self._client_context
        )

    def lose(self, method: str, path: str, action: object = "drop", times: int = 1, skip: int = 0, on_answer=None):
        """Add a Rule (see there) and return it."""
        rule = Rule(method, path, action, times, skip, on_answer)
        with self._lock:
            self.rules.append(rule)
        return rule

    def slow(self, method: str, path: str, seconds: float, times: int = 1) -> None:
        """Hold the next `times` requests of `method` whose path matches `path` for `seconds` before relaying them."""
        with self._lock:
            self.delays.append([method, path, seconds, times])

    def delay_for(self, method: str, path: str) -> float:
        with self._lock:
            for delay in self.delays:
                if delay[0] == method and delay[3] > 0 and re.search(delay[1], path):
                    delay[3] -= 1
                    return delay[2]
        return 0.0

    def rule_for(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.method != method or not re.search(rule.path, path):
                    continue
                rule.seen += 1
                if rule.seen > rule.skip and len(rule.lost) < rule.times:
                    rule.lost.append(path)
                    return rule
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
