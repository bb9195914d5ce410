"""Where the VEN side (pairing, vens, agents, software, traffic) meets the lab PCE's core.

Everything the VEN modules need from the core goes through `LabCore`, so the seam is one small,
explicit interface: the database, the clock, the caller, errors, events, labels, workloads, policy
objects, collection paging, the data folder and the CA. `lab(request)` finds the core's implementation.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pcelab.errors import LabError  # the core's one refusal type; the VEN modules import it from here
from pcelab.limits import JsonRefused, loads

AGENT_TOKEN_HEADER = "x-lab-agent-token"  # noqa: S105 - a header name, not a secret


def hash_token(token: str) -> str:
    """Agent tokens are stored and looked up by SHA-256 only."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


__all__ = ["AGENT_TOKEN_HEADER", "LabCore", "LabError", "hash_token", "lab"]


class LabCore(Protocol):
    data_dir: str
    ca_pem: str

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A connection inside one transaction (commit on success, rollback on error)."""

    def now(self) -> float:
        """Epoch seconds from the server's clock (tests move it to expire keys)."""

    def user_href(self, request: Request) -> str:
        """The authenticated API user, e.g. /users/1 (requests under /api/v2 are authenticated by the core)."""

    def record_event(
        self,
        org_id: int,
        event_type: str,
        created_by: dict | str,
        resource: dict | None = None,
        changes: dict | None = None,
    ) -> dict:
        """Append to the org's event log, e.g. pairing_profile.create_pairing_key."""

    def label(self, org_id: int, href: str) -> dict | None:
        """{href, key, value} of a label, or None."""

    def label_by_value(self, org_id: int, key: str, value: str) -> dict | None: ...

    def label_group_members(self, org_id: int, href: str) -> frozenset[str]:
        """Every label href in a label group, sub-groups included (empty when unknown)."""

    def ip_list_ranges(self, org_id: int, href: str) -> list[dict]:
        """The ip_ranges of an IP list ([{from_ip, to_ip?, exclusion}]), empty when unknown."""

    def create_managed_workload(self, org_id: int, uuid: str, fields: dict) -> dict: ...

    def workload(self, org_id: int, uuid: str) -> dict | None: ...

    def workloads(self, org_id: int) -> Iterator[dict]: ...

    def update_workload(self, org_id: int, uuid: str, changes: dict) -> None: ...

    def delete_workload(self, org_id: int, uuid: str) -> None: ...

    def collection(self, request: Request, items: list[dict]) -> Response:
        """A GET collection answer: max_results, X-Total-Count, async (Prefer: respond-async) as the core does."""


def ensure_schema(db: sqlite3.Connection, schema: str) -> None:
    """Create a module's tables if missing, statement by statement (executescript would commit the caller's
    transaction)."""
    for statement in schema.split(";"):
        if statement.strip():
            db.execute(statement)


def lab(request: Request) -> LabCore:
    return request.app.state.lab_core


def error_response(error: LabError) -> JSONResponse:
    """The PCE's error body, [{token, message}], with the error's status (406 for bad input)."""
    return JSONResponse([{"token": error.token, "message": error.message}], status_code=error.status)


def not_found(what: str) -> JSONResponse:
    return JSONResponse([{"token": "not_found", "message": f"{what} not found"}], status_code=404)


async def json_body(request: Request) -> object:
    """The JSON body, read and parsed under pcelab.limits (size, depth, numbers); 406 when it is not taken."""
    raw = await request.body()
    try:
        # A big body is parsed in the thread pool: it must not hold up the event loop.
        return loads(raw) if len(raw) < 65536 else await run_in_threadpool(loads, raw)
    except JsonRefused as refused:
        raise LabError("input_validation_error", f"the request body is not valid JSON: {refused}") from None
    except ValueError:
        raise LabError("input_validation_error", "the request body is not valid JSON") from None


def refusals_as_responses(handler):
    """Turn a LabError raised by an endpoint into the PCE's error answer."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except LabError as error:
            return error_response(error)

    return endpoint


def org_of(request: Request) -> int:
    return int(request.path_params["org_id"])
