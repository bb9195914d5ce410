"""Events: GET /orgs/{org}/events, newest first, filtered by type and time."""

from __future__ import annotations

from starlette.routing import Route

from pcelab.clock import parse_iso
from pcelab.errors import invalid
from pcelab.http import Call, endpoint

ORG = "/api/v2/orgs/{org_id:id}"


def _epoch(query, name: str) -> float | None:
    if name not in query:
        return None
    try:
        return parse_iso(query[name]).timestamp()
    except ValueError:
        raise invalid(f"{name} must be an ISO-8601 timestamp such as 2024-01-31T12:00:00Z") from None


@endpoint
def list_events(call: Call):
    sql, args = "SELECT doc FROM events WHERE org_id=?", [call.org_id]
    if "event_type" in call.query:
        sql, args = sql + " AND event_type=?", [*args, call.query["event_type"]]
    for name, operator in (("timestamp[gte]", ">="), ("timestamp[lte]", "<=")):
        bound = _epoch(call.query, name)
        if bound is not None:
            # Stored times are exact; the filter is to the millisecond, as the answers show them.
            bound = bound - 0.0005 if operator == ">=" else bound + 0.0009
            sql, args = f"{sql} AND timestamp {operator} ?", [*args, bound]

    def fetch() -> list[str]:
        with call.lab.transaction() as db:
            return [row[0] for row in db.execute(sql + " ORDER BY seq DESC", args)]

    return call.collection(fetch)


ROUTES = [Route(f"{ORG}/events", list_events, methods=["GET"])]
