"""Lab-only controls for tests, under /lab/admin/ (a prefix the real PCE doesn't have; API key required).

GET/PUT /lab/admin/faults  {"rate": 0.0-1.0, "status": 429|503, "next": N}
GET/PUT /lab/admin/clock   {"offset_seconds": float}   shifts the lab's clock (key expiry, timestamps)
"""

from __future__ import annotations

from starlette.routing import Route

from pcelab import validate as v
from pcelab.http import Call, endpoint, require_body


@endpoint
def get_faults(call: Call):
    return call.lab.faults.describe()


@endpoint
def put_faults(call: Call):
    body = require_body(call)
    v.known_fields(body, ("rate", "status", "next"), "faults")
    rate = body.get("rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise v.invalid("rate must be a number from 0 to 1")
    status = v.integer("status", body.get("status", 503), 429, 503)
    next_count = v.integer("next", body.get("next", 0), 0, 1_000_000)
    call.lab.faults.configure(float(rate), status, next_count)
    return call.lab.faults.describe()


@endpoint
def get_clock(call: Call):
    return {"offset_seconds": call.lab.clock_offset, "now": call.lab.stamp()}


@endpoint
def put_clock(call: Call):
    body = require_body(call)
    v.known_fields(body, ("offset_seconds",), "clock")
    offset = body.get("offset_seconds")
    if isinstance(offset, bool) or not isinstance(offset, int | float):
        raise v.invalid("offset_seconds must be a number")
    call.lab.clock_offset = float(offset)
    return {"offset_seconds": call.lab.clock_offset, "now": call.lab.stamp()}


ROUTES = [
    Route("/lab/admin/faults", get_faults, methods=["GET"]),
    Route("/lab/admin/faults", put_faults, methods=["PUT"]),
    Route("/lab/admin/clock", get_clock, methods=["GET"]),
    Route("/lab/admin/clock", put_clock, methods=["PUT"]),
]
