"""The ASGI application: endpoint modules discovered under pcelab.api, behind auth, org and fault checks."""

from __future__ import annotations

import base64
import binascii
import importlib
import logging
import pkgutil
import re
import sys
import time
from types import ModuleType

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

import pcelab.api
from pcelab.core import Lab
from pcelab.errors import LabError
from pcelab.limits import body_limit, declared_too_large, too_large
from pcelab.store import dumps

log = logging.getLogger("pcelab")

AUTHENTICATED_PREFIXES = ("/api/v2/", "/lab/admin/")
HEALTH_PATH = "/api/v2/health"
ORG_PATH = re.compile(r"^/api/v2/orgs/([^/]+)(/|$)")


def endpoint_modules() -> list[ModuleType]:
    """Every module in pcelab.api, imported in name order. A module that fails to import stops the server:
    a lab silently missing endpoints would make tests fail in confusing ways."""
    names = sorted(info.name for info in pkgutil.iter_modules(pcelab.api.__path__) if not info.name.startswith("_"))
    return [importlib.import_module(f"pcelab.api.{name}") for name in names]


def build_app(lab: Lab, access_log: bool = False) -> Starlette:
    modules = endpoint_modules()
    routes = [route for module in modules for route in getattr(module, "ROUTES", [])]
    for module in modules:
        check = getattr(module, "label_reference_check", None)
        if check is not None:
            lab.label_reference_checks.append(check)
        usage = getattr(module, "label_usage", None)
        if usage is not None and not isinstance(usage, ModuleType):
            lab.label_usage_sources.append(usage)
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(lab)
    app = Starlette(
        routes=routes,
        exception_handlers={LabError: _lab_error, HTTPException: _http_error, Exception: _unexpected_error},
    )
    app.state.lab_core = lab
    app.add_middleware(Gate, lab=lab, access_log=access_log)
    return app


async def _lab_error(request: Request, error: LabError) -> Response:
    return _error(error.status, error.token, error.message)


async def _http_error(request: Request, error: HTTPException) -> Response:
    tokens = {404: "not_found", 405: "method_not_allowed"}
    message = "no such API endpoint" if error.status_code == 404 else str(error.detail)
    return _error(error.status_code, tokens.get(error.status_code, "request_error"), message)


async def _unexpected_error(request: Request, error: Exception) -> Response:
    # Logged here with the traceback; the client only learns that the lab failed, never how.
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return _error(500, "internal_server_error", "the lab PCE failed to answer this request; see its log")


def _error(status: int, token: str, message: str, headers: dict | None = None) -> Response:
    body = dumps([{"token": token, "message": message}])
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class Gate:
    """Pure ASGI middleware: body size limit, fault injection, HTTP Basic auth with API keys, the org check,
    access log. A body over pcelab.limits.MAX_BODY_BYTES is 413: by its Content-Length here, else when a handler
    reads past the limit (every handler reads bodies through the `receive` wrapped here)."""

    def __init__(self, app, lab: Lab, access_log: bool = False):
        self.app = app
        self.lab = lab
        self.access_log = access_log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.monotonic(), {"code": 0}

        async def send_noting_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_noting_status)
        else:
            await self.app(scope, body_limit(scope, receive), send_noting_status)
        if self.access_log:
            # Method, path and status only: never headers (Authorization) nor query strings with secrets.
            elapsed = (time.monotonic() - started) * 1000
            print(f"pcelab {scope['method']} {scope['path']} {status['code']} {elapsed:.1f}ms", file=sys.stderr)

    def _refusal(self, scope) -> Response | None:
        if declared_too_large(scope):
            return _error(413, "request_too_large", too_large().message)
        path = scope["path"]
        if not path.startswith(AUTHENTICATED_PREFIXES):
            return None
        if path.startswith("/api/") and path != HEALTH_PATH and self.lab.faults.should_fail():
            status = self.lab.faults.status
            token = "too_many_requests" if status == 429 else "service_unavailable"
            return _error(status, token, "injected fault (pcelab fault injection)", {"Retry-After": "1"})
        if path == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            return None
        user = self._user(scope)
        if user is None:
            headers = {"WWW-Authenticate": 'Basic realm="pcelab"'}
            return _error(401, "authentication_required", "valid API key credentials are required", headers)
        scope["pcelab_user"] = user
        match = ORG_PATH.match(path)
        if match and match.group(1) != str(self.lab.org_id):
            return _error(404, "not_found", f"organization {match.group(1)} not found")
        return None

    def _user(self, scope) -> str | None:
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            username, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self.lab.authenticate(username, secret) if sep else None
