"""Lab-only controls for tests, under /lab/admin/ (a prefix the real PCE doesn't have; API key required).

GET/PUT /lab/admin/faults  {"rate": 0.0-1.0, "status": 429|503, "next": N}
GET/PUT /lab/admin/clock   {"offset_seconds": float}   shifts the lab's clock (key expiry, timestamps), at most
                                                        100 years either way (MAX_CLOCK_OFFSET)
"""

from __future__ import annotations

from starlette.routing import Route

from pcelab import validate as v
from pcelab.http import Call, endpoint, require_body

# A century either way: far enough for any expiry test, near enough that every timestamp stays a valid date.
MAX_CLOCK_OFFSET = 100 * 365.25 * 86400


@endpoint
def get_faults(call: Call):
    return call.lab.faults.describe()


@endpoint
def put_faults(call: Call):
    body = require_body(call)
    v.known_fields(body, ("rate", "status", "next"), "faults")
    rate = v.number("rate", body.get("rate", 0.0), 0, 1)
    status = v.integer("status", body.get("status", 503), 429, 503)
    next_count = v.integer("next", body.get("next", 0), 0, 1_000_000)
    call.lab.faults.configure(rate, status, next_count)
    return call.lab.faults.describe()


@endpoint
def get_clock(call: Call):
    return {"offset_seconds": call.lab.clock_offset, "now": call.lab.stamp()}


@endpoint
def put_clock(call: Call):
    body = require_body(call)
    v.known_fields(body, ("offset_seconds",), "clock")
    offset = v.number("offset_seconds", body.get("offset_seconds"), -MAX_CLOCK_OFFSET, MAX_CLOCK_OFFSET)
    call.lab.clock_offset = offset
    return {"offset_seconds": call.lab.clock_offset, "now": call.lab.stamp()}


ROUTES = [
    Route("/lab/admin/faults", get_faults, methods=["GET"]),
    Route("/lab/admin/faults", put_faults, methods=["PUT"]),
    Route("/lab/admin/clock", get_clock, methods=["GET"]),
    Route("/lab/admin/clock", put_clock, methods=["PUT"]),
]
