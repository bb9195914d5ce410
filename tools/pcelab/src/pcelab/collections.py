"""Collection answers as the PCE gives them: max_results, X-Total-Count, and async (Prefer: respond-async)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from pcelab.errors import invalid

if TYPE_CHECKING:
    from pcelab.core import Lab

DEFAULT_MAX_RESULTS = 500
ASYNC_RETRY_AFTER = "1"


def wants_async(request: Request) -> bool:
    prefer = request.headers.get("prefer", "")
    return any(part.strip().lower() == "respond-async" for part in prefer.split(","))


def max_results(request: Request, default: int | None = DEFAULT_MAX_RESULTS) -> int | None:
    text = request.query_params.get("max_results")
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid("max_results must be a whole number") from None
    if value < 0:
        raise invalid("max_results must not be negative")
    # 0 is a count request: an empty list with the real total in X-Total-Count. Clients rely on it, e.g. the
    # official Python SDK's get_all() (illumio 1.1.3) asks with max_results=0, then again with the total.
    return value


def json_array(texts: list[str]) -> str:
    return "[" + ",".join(texts) + "]"


def collection_response(lab: Lab, request: Request, fetch: Callable[[], list[str]]) -> Response:
    """`fetch` returns the filtered objects as JSON texts. Async requests run it in a job instead."""
    org_id = int(request.path_params.get("org_id", lab.org_id))
    if wants_async(request):
        # Async answers hold the whole collection unless the caller asked for a limit.
        limit = max_results(request, default=None)
        description = f"{request.method} {request.url.path}"
        job = lab.start_job(org_id, lab.user_href(request), description, lambda: json_array(fetch()[:limit]))
        headers = {"Location": job["href"], "Retry-After": ASYNC_RETRY_AFTER}
        return Response(status_code=202, headers=headers)
    limit = max_results(request)
    texts = fetch()
    return Response(
        json_array(texts[:limit]), media_type="application/json", headers={"X-Total-Count": str(len(texts))}
    )
