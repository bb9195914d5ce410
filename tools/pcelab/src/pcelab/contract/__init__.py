"""The lab's contract with its clients: one JSON Schema per object type, in this folder.

Each `<name>.json` is a JSON Schema (draft 2020-12) of the object as the PCE answers it, with the request rules
in the standard `readOnly` keyword and in `x-pcelab`:

- `collection`: the URL collection (`label_dimensions`); `sources`: where each fact comes from (public only);
- `create_required`: fields a POST must carry; `create_only`: fields a POST may set but a PUT may not;
- `optional`: fields an answer carries only when asked (`usage` with `usage=true`) or once set;
- `query`: the query parameters a listing takes, each a JSON Schema of its text value.

From one schema come the POST and PUT body checks (unknown and read-only fields refused, types, lengths,
patterns), the query checks, and the answer's shape: `new_document` fills every field in schema order, and
`answer_gaps` (used by the conformance tests) lists where an answer leaves the contract. A new endpoint is a
schema here plus a handler in pcelab.api.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from pcelab.errors import invalid

DEFAULT_BY_TYPE = {"array": list, "object": dict, "boolean": bool}


@dataclass(frozen=True)
class Contract:
    name: str
    schema: dict

    @property
    def rules(self) -> dict:
        return self.schema.get("x-pcelab", {})

    @property
    def properties(self) -> dict:
        return self.schema["properties"]

    @functools.cached_property
    def _create(self) -> Draft202012Validator:
        return Draft202012Validator(self._request_schema(creating=True))

    @functools.cached_property
    def _update(self) -> Draft202012Validator:
        return Draft202012Validator(self._request_schema(creating=False))

    @functools.cached_property
    def _answer(self) -> Draft202012Validator:
        schema = copy.deepcopy(self.schema)
        optional = set(self.rules.get("optional", ()))
        schema["required"] = [name for name in self.properties if name not in optional]
        schema["additionalProperties"] = False
        return Draft202012Validator(schema)

    @functools.cached_property
    def _query(self) -> Draft202012Validator:
        return Draft202012Validator({"type": "object", "properties": self.rules.get("query", {})})

    def writable(self, creating: bool = True) -> tuple[str, ...]:
        """The fields a POST (or, with creating=False, a PUT) may carry."""
        excluded = set() if creating else set(self.rules.get("create_only", ()))
        return tuple(
            name for name, spec in self.properties.items() if not spec.get("readOnly") and name not in excluded
        )

    @property
    def required(self) -> tuple[str, ...]:
        """The fields a POST must carry."""
        return tuple(self.rules.get("create_required", ()))

    def _request_schema(self, creating: bool) -> dict:
        excluded = set() if creating else set(self.rules.get("create_only", ()))
        writable = {
            name: spec for name, spec in self.properties.items() if not spec.get("readOnly") and name not in excluded
        }
        return {
            "$defs": self.schema.get("$defs", {}),  # the fields' $refs point here
            "type": "object",
            "properties": writable,
            "required": list(self.rules.get("create_required", ())) if creating else [],
            "additionalProperties": False,
        }

    def check_create(self, body: Any) -> dict:
        """A POST body, checked; 406 naming the first field that breaks the contract."""
        return self._checked(self._create, body, "create")

    def check_update(self, body: Any) -> dict:
        """A PUT body, checked (fields the PCE sets, and create-only ones, are refused)."""
        return self._checked(self._update, body, "update")

    def check_query(self, query) -> dict:
        """The listing's declared query parameters, each checked as text; returns them (undeclared ones ignored)."""
        declared = {name: query[name] for name in self.rules.get("query", {}) if name in query}
        error = next(iter(self._query.iter_errors(declared)), None)
        if error is not None:
            raise invalid(f"query parameter {error.path[0]}: {error.message}")
        return declared

    def _checked(self, validator: Draft202012Validator, body: Any, verb: str) -> dict:
        if body is None or not isinstance(body, dict):
            raise invalid(f"{self.name}: the request body must be a JSON object")
        error = min(validator.iter_errors(body), key=_error_order, default=None)
        if error is not None:
            raise invalid(f"{self.name} {verb}: {_describe(error)}")
        return body

    def new_document(self, fields: dict) -> dict:
        """An answer with every field of the contract, in its order: `fields` first, then each field's
        `default` from the schema, else the empty value of its type (null where the type allows it)."""
        return {name: fields[name] if name in fields else _empty(spec) for name, spec in self._stored_fields()}

    def _stored_fields(self):
        optional = set(self.rules.get("optional", ()))
        return [(name, spec) for name, spec in self.properties.items() if name not in optional]

    def answer_gaps(self, answer: Any) -> list[str]:
        """Where an answer leaves the contract (missing or extra fields, wrong types); empty when it keeps it."""
        return sorted(_describe(error) for error in self._answer.iter_errors(answer))

    def sample_gaps(self, sample: Any) -> list[str]:
        """Where a real PCE payload has a field or type the contract does not know (missing fields are fine:
        older PCEs leave out newer ones)."""
        schema = _without_required(copy.deepcopy(self.schema))
        schema["additionalProperties"] = False
        return sorted(_describe(error) for error in Draft202012Validator(schema).iter_errors(sample))


# Of several errors on one field, the most basic one is reported: an empty string "should be non-empty" rather
# than "does not match".
KEYWORD_ORDER = ("required", "additionalProperties", "type", "enum", "minLength", "maxLength", "minimum", "maximum")


def _error_order(error) -> tuple:
    rank = KEYWORD_ORDER.index(error.validator) if error.validator in KEYWORD_ORDER else len(KEYWORD_ORDER)
    return (len(error.absolute_path), list(map(str, error.absolute_path)), rank, error.message)


def _describe(error) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _empty(spec: dict) -> Any:
    if "default" in spec:
        return copy.deepcopy(spec["default"])
    types = spec.get("type", "null")
    types = [types] if isinstance(types, str) else types
    if "null" in types:
        return None
    return DEFAULT_BY_TYPE.get(types[0], lambda: None)()


def _without_required(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {key: _without_required(value) for key, value in schema.items() if key != "required"}
    if isinstance(schema, list):
        return [_without_required(item) for item in schema]
    return schema


@functools.cache
def contract(name: str) -> Contract:
    """The contract `name` (the file name without .json, e.g. "label_dimensions")."""
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Contract(name, schema)


def names() -> list[str]:
    """Every contract in this folder."""
    return sorted(
        entry.name[: -len(".json")] for entry in resources.files(__name__).iterdir() if entry.name.endswith(".json")
    )
