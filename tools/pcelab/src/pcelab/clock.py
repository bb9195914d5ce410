"""Time as the PCE writes it: ISO-8601 UTC with milliseconds and a Z."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(epoch: float) -> str:
    stamp = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Accepts what clients send in timestamp filters: with or without fraction, Z or an offset."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
