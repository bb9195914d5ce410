"""Local HTTPS servers for unit tests: a scriptable one, a fake PCE with labels, and a CONNECT proxy.

Everything listens on 127.0.0.1 with certificates from a private CA made per test session, so the client
under test verifies TLS exactly as it does against a real PCE.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import re
import select
import socket
import socketserver
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# --- certificates -----------------------------------------------------------------------------------------


@dataclass
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path  # a CA that signed nothing we serve: trusting it alone must fail


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _certificate(subject, issuer, public_key, signing_key, extensions):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def _make_ca(common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    extensions = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(False, False, False, False, False, True, True, False, False), True),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
    ]
    cert = _certificate(_name(common_name), _name(common_name), key.public_key(), key, extensions)
    return key, cert


def _make_leaf(ca_key, ca_cert, common_name, usage, alt_names=None):
    key = ec.generate_private_key(ec.SECP256R1())
    extensions = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.ExtendedKeyUsage([usage]), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    ]
    if alt_names:
        extensions.append((x509.SubjectAlternativeName(alt_names), False))
    cert = _certificate(_name(common_name), ca_cert.subject, key.public_key(), ca_key, extensions)
    return key, cert


def make_tls_files(folder: Path) -> TlsFiles:
    pem = serialization.Encoding.PEM
    ca_key, ca_cert = _make_ca("microseg.illumio unit test CA")
    other_ca_cert = _make_ca("some other CA")[1]
    alt_names = [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
    server_key, server_cert = _make_leaf(ca_key, ca_cert, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, alt_names)
    client_key, client_cert = _make_leaf(ca_key, ca_cert, "ansible-controller", ExtendedKeyUsageOID.CLIENT_AUTH)
    files = TlsFiles(
        *(folder / name for name in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "other-ca.pem"))
    )
    files.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    files.other_ca_cert.write_bytes(other_ca_cert.public_bytes(pem))
    files.server_cert.write_bytes(server_cert.public_bytes(pem))
    files.client_cert.write_bytes(client_cert.public_bytes(pem))
    _write_key(server_key, files.server_key)
    _write_key(client_key, files.client_key)
    return files


# --- a scriptable HTTPS server ----------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: object = None
    client_cert: dict | None = None
    connection: int = 0  # which TLS connection it came on: 0 for the server's first, 1 for the next...


@dataclass
class Reply:
    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    # Close the connection after this answer without saying so, as a server whose keep-alive timeout ran out.
    then_close: bool = False
    # Read the request, then close the connection without answering (a server that closed an idle
    # connection just as the request arrived).
    drop: bool = False


Handler = Callable[[Request], Reply]


@dataclass
class Fault:
    """What happens to the next `times` requests of `method` whose path matches `path` (a regex, searched):
    "drop" - handled (the fake PCE stores what they do), then the connection closes without an answer;
    a status such as 502 - handled, then answered with that status instead, as a gateway that gave up;
    a function(request) - called before the request is handled (e.g. another run makes the object first)."""

    method: str
    path: str
    action: object
    times: int = 1
    hits: list = field(default_factory=list)
    before: Callable[[Request], object] | None = None  # called first, whatever the action


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's session expects

    def log_message(self, format, *args):
        pass

    def _serve(self):
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = Request(
            method=self.command,
            path=parts.path,
            query={name: values[-1] for name, values in parse_qs(parts.query).items()},
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            client_cert=self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None,
            connection=self.server.connection_numbers.get(self.connection, -1),
        )
        self.server.requests.append(request)
        fault = self.server.fault_for(request)
        if fault is not None and fault.before is not None:
            fault.before(request)
        if fault is not None and callable(fault.action):
            fault.action(request)  # e.g. another run makes the object first
        reply = self.server.handler(request)
        if fault is not None and fault.action == "drop":
            reply = Reply(0, drop=True)  # handled and stored, then the answer is lost
        elif fault is not None and isinstance(fault.action, int):
            reply = Reply(fault.action, [{"token": "gateway", "message": f"gateway answered {fault.action}"}])
        if reply.drop:
            self.close_connection = True
            return
        self._send(reply)
        if reply.then_close:
            self.close_connection = True

    def _send(self, reply: Reply):
        if reply.body is None:
            payload = b""
        elif isinstance(reply.body, bytes):
            payload = reply.body
        elif isinstance(reply.body, str):
            payload = reply.body.encode()
        else:
            payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers, "Content-Length": str(len(payload))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class _TlsHttpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler: Handler, context: ssl.SSLContext):
        self.handler = handler
        self.context = context
        self.requests: list[Request] = []
        self.connections: list[tuple[str, int]] = []  # client address of each TLS connection, in order
        self.closed: list[int] = []  # numbers of the connections the server has closed
        self.connection_numbers: dict[ssl.SSLSocket, int] = {}
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def fault_for(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == request.method and re.search(fault.path, request.path):
                    fault.times -= 1
                    fault.hits.append(request)
                    return fault
        return None

    def finish_request(self, request, client_address):
        # The TLS handshake happens here, in the request's own thread: a client that fails it (untrusted
        # CA, missing client certificate) only ends its own connection.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with self._lock:
            number = self.connection_numbers[tls] = len(self.connections)
            self.connections.append(client_address)
        try:
            _RequestHandler(tls, client_address, self)
        finally:
            tls.close()
            self.closed.append(number)

    def handle_error(self, request, client_address):
        pass  # clients that hang up mid-request are expected in failure tests


class TestServer:
    """An HTTPS server on 127.0.0.1 that answers with handler(request) and records every request."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, handler: Handler, tls: TlsFiles, require_client_cert: bool = False, port: int = 0):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.server_cert), str(tls.server_key))
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(str(tls.ca_cert))
        self._server = _TlsHttpServer(("127.0.0.1", port), handler, context)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def requests(self) -> list[Request]:
        return self._server.requests

    @property
    def connections(self) -> list[tuple[str, int]]:
        """The TLS connections accepted so far (client addresses), in order."""
        return self._server.connections

    @property
    def closed(self) -> list[int]:
        """Numbers of the connections the server has closed so far."""
        return self._server.closed

    def fault(self, method: str, path: str, action: object = "drop", times: int = 1, before=None) -> Fault:
        """Make the next `times` matching requests fail after (or, with a function, before) they are handled."""
        fault = Fault(method, path, action, times, before=before)
        self._server.faults.append(fault)
        return fault

    def start(self) -> TestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def script(*replies: Reply) -> Handler:
    """A handler that answers with the given replies in order (and fails the test if asked once more)."""
    queue = list(replies)

    def handle(request: Request) -> Reply:
        if not queue:
            return Reply(599, {"error": f"unexpected request {request.method} {request.path}"})
        return queue.pop(0)

    return handle


# --- a CONNECT proxy --------------------------------------------------------------------------------------


class _ConnectHandler(socketserver.BaseRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ", 2)[:2]
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        self.server.tunnels.append((method, target, headers))
        host, port = target.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._pipe(self.request, upstream)

    @staticmethod
    def _pipe(client, upstream):
        sockets = [client, upstream]
        while True:
            readable = select.select(sockets, [], [], 5)[0]
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


class ConnectProxy(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A minimal HTTP proxy for HTTPS: it records each CONNECT (method, target, headers) and relays bytes."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.tunnels: list[tuple[str, str, dict[str, str]]] = []
        super().__init__(("127.0.0.1", 0), _ConnectHandler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


# --- a fake PCE with labels -------------------------------------------------------------------------------

LABEL_COLLECTION = re.compile(r"^/api/v2/orgs/(\d+)/labels$")
LABEL_OBJECT = re.compile(r"^/api/v2/orgs/(\d+)/labels/(\d+)$")
DIMENSION_COLLECTION = re.compile(r"^/api/v2/orgs/(\d+)/label_dimensions$")
DIMENSION_OBJECT = re.compile(r"^/api/v2/orgs/(\d+)/label_dimensions/([0-9a-f-]+)$")
DIMENSION_FIELDS = ("key", "display_name", "display_info", "external_data_set", "external_data_reference")
BUILTIN_DIMENSIONS = (("role", "Role"), ("app", "Application"), ("env", "Environment"), ("loc", "Location"))


class FakePce:
    """Enough of the PCE's label API, with its real shapes and its partial value filter, to run modules on."""

    username = "api_1f00dcafe1234"
    secret = "9c3e7f1d0b8a4e6f2a5c7d9e1b3f5a7c-unit-test-secret"

    def __init__(self, org_id: int = 1):
        self.org_id = org_id
        self.labels: dict[int, dict] = {}
        self.in_use: set[str] = set()
        self._next_id = 1
        # Label dimensions by UUID: the four built-in ones from the start, as on a PCE since 22.5.
        self.dimensions: dict[str, dict] = {}
        # False: a PCE older than label dimensions (GET label_dimensions is 404, any label key goes).
        self.has_dimensions = True
        for key, display_name in BUILTIN_DIMENSIONS:
            self.add_dimension(key, display_name, builtin=True)
        self._lock = threading.Lock()
        self.server: TestServer | None = None
        self.server_ca: Path | None = None  # the CA that signed the server's certificate

    # test-side helpers
    def add_label(self, key: str, value: str, **extra) -> dict:
        label_id, self._next_id = self._next_id, self._next_id + 1
        label = {
            "href": f"/orgs/{self.org_id}/labels/{label_id}",
            "key": key,
            "value": value,
            "external_data_set": extra.get("external_data_set"),
            "external_data_reference": extra.get("external_data_reference"),
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
            "created_by": {"href": "/users/1"},
            "updated_by": {"href": "/users/1"},
        }
        self.labels[label_id] = label
        return label

    def add_dimension(self, key: str, display_name: str, builtin: bool = False, **extra) -> dict:
        dimension_id = str(uuid.UUID(int=len(self.dimensions) + 1))
        dimension = {
            "href": f"/orgs/{self.org_id}/label_dimensions/{dimension_id}",
            "key": key,
            "display_name": display_name,
            "display_info": extra.get("display_info"),
            "external_data_set": extra.get("external_data_set"),
            "external_data_reference": extra.get("external_data_reference"),
            "caps": [] if builtin else ["write"],
            "deleted": False,
            "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
            "created_by": {"href": "/users/0" if builtin else "/users/1"},
            "updated_by": {"href": "/users/0" if builtin else "/users/1"},
        }
        self.dimensions[dimension_id] = dimension
        return dimension

    def dimension(self, key: str) -> dict | None:
        return next((d for d in self.dimensions.values() if d["key"] == key and not d["deleted"]), None)

    def find(self, key: str, value: str) -> dict | None:
        return next((lbl for lbl in self.labels.values() if lbl["key"] == key and lbl["value"] == value), None)

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def changes(self) -> list[Request]:
        return [request for request in self.requests if request.method != "GET"]

    def connection(self, **overrides) -> dict:
        """Module arguments that connect to this fake PCE."""
        return {
            "pce_host": "127.0.0.1",
            "pce_port": self.server.port,
            "api_key_username": self.username,
            "api_key_secret": self.secret,
            "ca_path": str(self.server_ca),
            **overrides,
        }

    # the API
    def handle(self, request: Request) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Reply(401, {"error": "Authentication required"})
        with self._lock:
            if DIMENSION_COLLECTION.match(request.path) or DIMENSION_OBJECT.match(request.path):
                return self._dimensions(request)
            collection = LABEL_COLLECTION.match(request.path)
            if collection and request.method == "GET":
                return self._list(request)
            if collection and request.method == "POST":
                return self._create(request.body or {})
            one = LABEL_OBJECT.match(request.path)
            label = self.labels.get(int(one.group(2))) if one else None
            if label is None:
                return Reply(404, [{"token": "not_found", "message": "Not Found"}])
            if request.method == "GET":
                return Reply(200, label)
            if request.method == "PUT":
                return self._update(label, request.body or {})
            if request.method == "DELETE":
                return self._delete(label)
        return Reply(405, [{"token": "method_not_allowed", "message": "Method not allowed"}])

    def _list(self, request: Request) -> Reply:
        found = list(self.labels.values())
        if "key" in request.query:
            found = [label for label in found if label["key"] == request.query["key"]]
        if "value" in request.query:  # the PCE matches values partially, ignoring case
            wanted = request.query["value"].lower()
            found = [label for label in found if wanted in label["value"].lower()]
        limit = int(request.query.get("max_results", 500))
        return Reply(200, found[:limit], {"X-Total-Count": str(len(found))})

    def _duplicate(self, key, value, other_than=None) -> Reply | None:
        existing = self.find(key, value)
        if existing is not None and existing is not other_than:
            message = f"Label {key}={value} already exists"
            return Reply(406, [{"token": "label_duplicate_value", "message": message}])
        return None

    def _create(self, body: dict) -> Reply:
        unknown = set(body) - {"key", "value", "external_data_set", "external_data_reference"}
        if unknown or not body.get("key") or not body.get("value"):
            return Reply(406, [{"token": "input_validation_error", "message": f"Invalid label: {sorted(body)}"}])
        if self.has_dimensions and self.dimension(body["key"]) is None:
            message = f"Label key {body['key']} is not a supported label dimension"
            return Reply(406, [{"token": "label_key_not_supported", "message": message}])
        duplicate = self._duplicate(body["key"], body["value"])
        if duplicate:
            return duplicate
        extra = {name: body.get(name) for name in ("external_data_set", "external_data_reference")}
        return Reply(201, self.add_label(body["key"], body["value"], **extra))

    def _update(self, label: dict, body: dict) -> Reply:
        if "key" in body and body["key"] != label["key"]:
            return Reply(406, [{"token": "label_key_immutable", "message": "A label's key cannot change"}])
        duplicate = self._duplicate(label["key"], body.get("value", label["value"]), other_than=label)
        if duplicate:
            return duplicate
        label.update(body)
        return Reply(204)

    def _dimensions(self, request: Request) -> Reply:
        if not self.has_dimensions:
            return Reply(404, [{"token": "not_found", "message": "Not Found"}])
        one = DIMENSION_OBJECT.match(request.path)
        if one is None and request.method == "GET":
            found = [d for d in self.dimensions.values() if not d["deleted"]]
            for name in ("key", "display_name", "external_data_set", "external_data_reference"):
                if name in request.query:
                    found = [d for d in found if d[name] == request.query[name]]
            if request.query.get("usage") == "true":
                found = [dict(d, usage=self._usage(d)) for d in found]
            return Reply(200, found, {"X-Total-Count": str(len(found))})
        if one is None and request.method == "POST":
            body = request.body or {}
            if set(body) - set(DIMENSION_FIELDS) or not body.get("key") or not body.get("display_name"):
                return Reply(406, [{"token": "input_validation_error", "message": f"Invalid body: {sorted(body)}"}])
            problem = self._dimension_duplicate(body)
            if problem:
                return problem
            extra = {name: body.get(name) for name in DIMENSION_FIELDS[2:]}
            return Reply(201, self.add_dimension(body["key"], body["display_name"], **extra))
        dimension = self.dimensions.get(one.group(2)) if one else None
        if dimension is None or dimension["deleted"]:
            return Reply(404, [{"token": "not_found", "message": "Not Found"}])
        if request.method == "GET":
            return Reply(200, dimension)
        if request.method == "PUT":
            body = request.body or {}
            if "key" in body:
                return Reply(406, [{"token": "label_dimension_key_immutable", "message": "The key can't change"}])
            if set(body) - set(DIMENSION_FIELDS):
                return Reply(406, [{"token": "input_validation_error", "message": f"Invalid body: {sorted(body)}"}])
            problem = self._dimension_duplicate(body, other_than=dimension)
            if problem:
                return problem
            dimension.update(body)
            return Reply(204)
        if request.method == "DELETE":
            if dimension["created_by"]["href"] == "/users/0":
                return Reply(406, [{"token": "input_validation_error", "message": "Built-in dimensions stay"}])
            if self._usage(dimension)["labels"]:
                message = f"label dimension {dimension['key']} is used by labels and can't be deleted"
                return Reply(406, [{"token": "label_dimension_in_use", "message": message}])
            dimension["deleted"] = True
            return Reply(204)
        return Reply(405, [{"token": "method_not_allowed", "message": "Method not allowed"}])

    def _usage(self, dimension: dict) -> dict:
        return {"labels": any(lbl["key"] == dimension["key"] for lbl in self.labels.values()), "label_groups": False}

    def _dimension_duplicate(self, body: dict, other_than: dict | None = None) -> Reply | None:
        for name in ("key", "display_name"):
            for dimension in self.dimensions.values():
                live = not dimension["deleted"] and dimension is not other_than
                if live and name in body and dimension[name] == body[name]:
                    message = f"a label dimension with {name} {body[name]} already exists"
                    return Reply(406, [{"token": "input_validation_error", "message": message}])
        return None

    def _delete(self, label: dict) -> Reply:
        if label["href"] in self.in_use:
            message = "Label is still in use by workloads, rule sets or label groups and cannot be deleted"
            return Reply(406, [{"token": "label_in_use", "message": message}])
        del self.labels[int(label["href"].rsplit("/", 1)[1])]
        return Reply(204)
