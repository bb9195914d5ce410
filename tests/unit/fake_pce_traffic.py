"""A fake PCE for traffic: bulk CSV upload (gzip too) and async traffic queries, with scripted failures.

It answers like the lab PCE (tools/pcelab/README.md, Traffic): uploads store the good lines and report the
bad ones; queries select flows whose detection window overlaps [start_date, end_date], filter them by
ip_address actors and port/proto services, and merge rows of one (src, dst, port, proto). Raw request
bodies are kept (the shared test server decodes them as text, which gzip does not survive).

`drop_after_commit`: upload numbers (1-based) that are stored and then answered by closing the connection,
as a PCE that dies between committing and answering. `refuse_upload_status`: answer every upload with
that status and store nothing.
"""

from __future__ import annotations

import gzip
import http.server
import ipaddress
import json
import re
import socketserver
import ssl
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

ORG = "/api/v2/orgs/1"
QUERY = re.compile(r"^/api/v2/orgs/1/traffic_flows/async_queries/([\w-]+)(/download)?$")
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


def parse_time(text: str, end_of_day: bool = False) -> float:
    if len(text) == 10:
        day = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        return (day + timedelta(days=1)).timestamp() - 0.001 if end_of_day else day.timestamp()
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_line(line: str, now: float) -> tuple:
    fields = [part.strip() for part in line.split(",")]
    if len(fields) not in (4, 5, 7):
        raise ValueError(f"expected 4, 5 or 7 comma-separated fields, found {len(fields)}")
    src, dst = ipaddress.ip_address(fields[0]), ipaddress.ip_address(fields[1])
    if not fields[2].isdigit() or not 0 <= int(fields[2]) <= 65535:
        raise ValueError(f"dst_port {fields[2]!r} is not a whole number from 0 to 65535")
    proto = PROTOCOLS.get(fields[3].lower()) or int(fields[3])
    connections = int(fields[4]) if len(fields) > 4 else 1
    first = last = now
    if len(fields) == 7:
        first, last = float(fields[5]), float(fields[6])
    return (str(src), str(dst), int(fields[2]), proto, connections, first, last)


@dataclass
class Upload:
    headers: dict
    raw: bytes
    text: str


@dataclass
class FakeTrafficPce:
    flows: list = field(default_factory=list)
    uploads: list = field(default_factory=list)
    queries: dict = field(default_factory=dict)
    query_bodies: list = field(default_factory=list)
    drop_after_commit: set = field(default_factory=set)
    refuse_upload_status: int | None = None
    polls_before_done: int = 1
    queries_down: bool = False  # answer traffic queries 503, as a PCE that is not back yet
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- test-side helpers ---------------------------------------------------------------------------------
    def connection(self, **args):
        return {
            "pce_host": "127.0.0.1",
            "pce_port": self.port,
            "api_key_username": "api_test",
            "api_key_secret": "s3cret-traffic",
            "ca_path": str(self.ca_path),
            "max_retries": 1,
            **args,
        }

    def total_connections(self):
        return sum(flow[4] for flow in self.flows)

    def stored_lines(self):
        """Every stored flow as (src, dst, port, proto, connections, first): markers moved only last_detected."""
        return sorted(flow[:6] for flow in self.flows)

    # --- the API -------------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: dict, raw: bytes):
        """(status, body) or None to drop the connection without an answer."""
        if method == "POST" and path == f"{ORG}/agents/bulk_traffic_flows":
            return self._upload(headers, raw)
        if self.queries_down and "/traffic_flows/" in path:
            return 503, [{"token": "service_unavailable", "message": "scripted outage"}]
        if method == "POST" and path == f"{ORG}/traffic_flows/async_queries":
            body = json.loads(raw)
            self.query_bodies.append(body)
            key = str(uuid.uuid4())
            href = f"/orgs/1/traffic_flows/async_queries/{key}"
            self.queries[key] = {"body": body, "polls": 0, "href": href}
            return 202, {"href": href, "status": "queued"}
        match = QUERY.match(path)
        if method == "GET" and match:
            query = self.queries.get(match.group(1))
            if query is None:
                return 404, [{"token": "not_found", "message": "no such query"}]
            if match.group(2):
                return 200, self._run(query["body"])
            query["polls"] += 1
            if query["polls"] < self.polls_before_done:
                return 200, {"href": query["href"], "status": "working"}
            return 200, {"href": query["href"], "status": "completed", "result": query["href"] + "/download"}
        if method == "GET" and path == f"{ORG}/labels":
            return 200, []
        return 404, [{"token": "not_found", "message": f"{method} {path}"}]

    def _upload(self, headers, raw):
        if self.refuse_upload_status:
            return self.refuse_upload_status, [{"token": "refused", "message": "scripted refusal"}]
        data = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        text = data.decode()
        with self.lock:
            self.uploads.append(Upload(headers, raw, text))
            number = len(self.uploads)
        good, errors = [], []
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                good.append(parse_line(line, 1.8e9))
            except ValueError as error:
                errors.append({"line": line_number, "flow": line, "message": str(error)})
        with self.lock:
            self.flows.extend(good)
        if number in self.drop_after_commit:
            return None
        answer = {
            "num_flows_received": len(good) + len(errors),
            "num_flows_failed": len(errors),
            "failed_flows": [error["flow"] for error in errors],
            "errors": errors,
        }
        return 200, answer

    def _run(self, body):
        start, end = parse_time(body["start_date"]), parse_time(body["end_date"], end_of_day=True)

        def side_ok(side, ip):
            groups = (side or {}).get("include") or []
            if not groups:
                return True
            return any(all(self._actor(actor, ip) for actor in group) for group in groups)

        services = (body.get("services") or {}).get("include") or []
        merged = {}
        for src, dst, port, proto, connections, first, last in self.flows:
            if last < start or first > end:
                continue
            if not side_ok(body.get("sources"), src) or not side_ok(body.get("destinations"), dst):
                continue
            if services and not any(
                s.get("port") in (None, port) and s.get("proto") in (None, proto) for s in services
            ):
                continue
            key = (src, dst, port, proto)
            seen = merged.get(key, (0, first, last))
            merged[key] = (seen[0] + connections, min(seen[1], first), max(seen[2], last))
        rows = []
        for (src, dst, port, proto), (connections, first, last) in merged.items():
            rows.append(
                {
                    "src": {"ip": src},
                    "dst": {
                        "ip": dst,
                        "workload": {
                            "hostname": "db.example",
                            "href": "/orgs/1/workloads/w1",
                            "labels": [{"href": "/orgs/1/labels/7", "key": "role", "value": "db"}],
                        },
                    },
                    "service": {"port": port, "proto": proto},
                    "num_connections": connections,
                    "policy_decision": "unknown",
                    "flow_direction": "outbound",
                    "timestamp_range": {"first_detected": _iso(first), "last_detected": _iso(last)},
                }
            )
        rows.sort(key=lambda row: row["timestamp_range"]["last_detected"], reverse=True)
        return rows[: body.get("max_results") or 100000]

    @staticmethod
    def _actor(actor, ip):
        if "ip_address" in actor:
            return ipaddress.ip_address(ip) in ipaddress.ip_network(actor["ip_address"], strict=False)
        return False


def _iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.pce.handle(self.command, self.path.split("?")[0], headers, raw)
        if answer is None:
            self.close_connection = True
            return
        status, body = answer
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _serve


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass


def start_traffic_pce(tls_files) -> tuple[FakeTrafficPce, _Server]:
    pce = FakeTrafficPce()
    server = _Server(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls_files.server_cert), str(tls_files.server_key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.pce = pce
    pce.port = server.server_address[1]
    pce.ca_path = tls_files.ca_cert
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return pce, server
