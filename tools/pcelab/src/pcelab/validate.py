"""Strict type checks for request bodies; each failure names the field, as a 406 input_validation_error."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from pcelab.errors import invalid

MAX_TEXT = 255
MAX_DESCRIPTION = 4096


def known_fields(body: dict, allowed: Iterable[str], what: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise invalid(f"{what}: property {unknown[0]!r} is not allowed")


def required(body: dict, names: Iterable[str], what: str) -> None:
    for name in names:
        if name not in body:
            raise invalid(f"{what}: {name} is required")


def text(name: str, value: Any, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{name} must be a non-empty string")
    if len(value) > max_len:
        raise invalid(f"{name} must be at most {max_len} characters")
    return value


def optional_text(name: str, value: Any, max_len: int = MAX_DESCRIPTION) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string or null")
    if len(value) > max_len:
        raise invalid(f"{name} must be at most {max_len} characters")
    return value


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise invalid(f"{name} must be true or false")
    return value


def integer(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"{name} must be a whole number from {low} to {high}")
    return value


def number(name: str, value: Any, low: float, high: float) -> float:
    """A finite number (whole or not) from low to high."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise invalid(f"{name} must be a number from {_shown(low)} to {_shown(high)}")
    return float(value)


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise invalid(f"{name} must be one of: {', '.join(choices)}")
    return value


def obj(name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"{name} must be an object")
    return value


def array(name: str, value: Any, max_len: int = 10_000) -> list:
    if not isinstance(value, list):
        raise invalid(f"{name} must be a list")
    if len(value) > max_len:
        raise invalid(f"{name} must have at most {max_len} entries")
    return value


def href_ref(name: str, value: Any) -> str:
    """One reference to another object; returns its href.

    The PCE takes a reference as any object with an href and ignores its other fields, so a client may send
    the whole object it got back earlier (the official Python SDK, illumio 1.1.3, sends a rule's
    ingress_services as full service objects: `Rule.build(..., ingress_services=[service])`). What counts is
    the href; an object without one is still refused.
    """
    ref = obj(name, value)
    if not isinstance(ref.get("href"), str) or not ref["href"]:
        raise invalid(f"{name} must be an object with an href")
    return ref["href"]


def href_refs(name: str, value: Any) -> list[str]:
    hrefs = [href_ref(f"{name}[{index}]", item) for index, item in enumerate(array(name, value))]
    if len(set(hrefs)) != len(hrefs):
        raise invalid(f"{name} lists the same href twice")
    return hrefs


def query_flag(query, name: str) -> bool:
    """A yes/no query parameter such as `usage` or `include_deleted` (booleans in the REST guide). Clients send
    true/false (requests writes Python's True as "True"), yes/no or 1/0; absent means false."""
    text = query.get(name)
    if text is None:
        return False
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise invalid(f"{name} must be true or false")


def ip_address(name: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(text(name, value).strip()))
    except ValueError:
        raise invalid(f"{name} is not a valid IP address: {value!r}") from None


def ip_or_network(name: str, value: Any) -> str:
    """An address or CIDR range as written (host bits set are refused, like the PCE does)."""
    candidate = text(name, value).strip()
    try:
        if "/" in candidate:
            ipaddress.ip_network(candidate, strict=True)
        else:
            ipaddress.ip_address(candidate)
    except ValueError:
        raise invalid(f"{name} is not a valid IP address or CIDR range: {value!r}") from None
    return candidate
