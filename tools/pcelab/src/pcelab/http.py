"""How the core's endpoints are written: sync handlers taking a `Call`, run in the thread pool.

    @endpoint
    def get_label(call: Call):
        return call.lab.store.doc(...)           # dict/list -> 200 JSON; (body, 201) -> status; Response as is

Bodies are parsed before the handler runs (malformed JSON -> 400); a raised LabError becomes the PCE's
error answer; anything else is logged and answered with a JSON 500 by the app's handler.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pcelab.collections import collection_response
from pcelab.errors import LabError, malformed_json
from pcelab.limits import JsonRefused, loads
from pcelab.store import dumps

if TYPE_CHECKING:
    from pcelab.core import Lab

NO_BODY = object()
# The status a successful write answers, as events record it (a create 201, an update or delete 204).
SUCCESS_STATUS = {"POST": 201, "PUT": 204, "DELETE": 204}


@dataclass
class Call:
    request: Request
    lab: Lab
    org_id: int
    user: str
    body: Any

    @property
    def query(self):
        return self.request.query_params

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def collection(self, fetch: Callable[[], list[str]]) -> Response:
        return collection_response(self.lab, self.request, fetch)

    def _success_status(self) -> int:
        if self.request.url.path.rsplit("/", 1)[-1].startswith("bulk_"):
            return 200  # bulk calls answer a list of per-item results
        return SUCCESS_STATUS.get(self.request.method, 200)

    def event(self, event_type: str, resource: dict | None = None, changes: dict | None = None) -> None:
        """Record an event for this request. Like the PCE's (pce_samples/events.json, sec_rule.create): the
        endpoint, method, status the request answers and client address, and `info.api_key_id` (the key's
        username without its `api_` prefix) when an API key made the request."""
        action = {
            "api_endpoint": self.request.url.path,
            "api_method": self.request.method,
            "http_status_code": self._success_status(),
            "src_ip": self.request.client.host if self.request.client else None,
        }
        username = self.lab.username_of(self.user) or ""
        if username.startswith("api_"):
            action = {"info": {"api_key_id": username[len("api_") :]}, **action}
        self.lab.record_event(self.org_id, event_type, self.user, resource, changes, action)


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json", headers=headers)


def parse_body(raw: bytes) -> Any:
    """The JSON body (see `pcelab.limits.loads` for what is refused), NO_BODY when there is none, else 400."""
    if not raw.strip():
        return NO_BODY
    try:
        return loads(raw)
    except JsonRefused as refused:
        raise malformed_json(str(refused)) from None
    except ValueError:  # UnicodeDecodeError too
        raise malformed_json() from None


def endpoint(handler: Callable[[Call], Any]):
    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        lab: Lab = request.app.state.lab_core
        raw = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
        org_id = int(request.path_params.get("org_id", lab.org_id))

        def parse_and_handle():  # parsing in the thread too: a big body never holds up the event loop
            return handler(Call(request, lab, org_id, lab.user_href(request), parse_body(raw)))

        return as_response(await run_in_threadpool(parse_and_handle))

    return run


def as_response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        data, status = result
        return Response(status_code=status) if status == 204 else json_response(data, status)
    return json_response(result)


def require_body(call: Call, kind: type = dict) -> Any:
    """The parsed body, which must be a JSON object (or `kind`)."""
    if call.body is NO_BODY:
        raise LabError("input_validation_error", "a JSON request body is required")
    if not isinstance(call.body, kind):
        expected = "object" if kind is dict else "array"
        raise LabError("input_validation_error", f"the request body must be a JSON {expected}")
    return call.body
