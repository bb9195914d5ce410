"""The one exception type endpoints raise; the app turns it into the PCE's error body [{token, message}]."""

from __future__ import annotations


class LabError(Exception):
    """A request the lab refuses. `status` is 406 for bad input, as on the real PCE."""

    def __init__(self, token: str, message: str, status: int = 406):
        super().__init__(message)
        self.token = token
        self.message = message
        self.status = status

    def body(self) -> list[dict]:
        return [{"token": self.token, "message": self.message}]


def invalid(message: str, token: str = "input_validation_error") -> LabError:  # noqa: S107 - an error token
    return LabError(token, message, 406)


def not_found(what: str) -> LabError:
    return LabError("not_found", f"{what} not found", 404)


def malformed_json(detail: str = "") -> LabError:
    """400 invalid_json; `detail` says what is wrong when that is more than a syntax error (too deep, NaN...)."""
    message = "the request body is not valid JSON"
    return LabError("invalid_json", f"{message}: {detail}" if detail else message, 400)
