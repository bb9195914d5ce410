"""Endpoint modules. Every module here is imported at start-up; see tools/pcelab/HACKING.md for the contract
(ROUTES, register_cli, label_reference_check, setup)."""

from starlette.convertors import register_url_convertor

from pcelab.limits import IdConvertor

# `{name:id}` in route paths: a whole number that fits SQLite (pcelab.limits). Registered here, before any endpoint
# module builds its routes; use it instead of Starlette's unbounded `int` (tests/test_fuzz_routes.py checks).
register_url_convertor("id", IdConvertor())
