"""Compare the lab's answers with the real PCE payloads in pce_samples/ (the SDK's recorded test data).

`shape_gaps(sample, answer)` lists where `answer` does not have the sample's shape: a key of a sample object
missing from the lab's object, or a value of another JSON type. Objects are compared key by key, recursively;
lists by their first items. null on either side matches any type (the samples show null where the value is
simply unset, and the lab does the same where a real PCE would have data it does not model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).resolve().parent / "pce_samples"


def sample(name: str) -> Any:
    """The sample payload `name` (e.g. "workloads")."""
    return json.loads((SAMPLES / f"{name}.json").read_text())


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def shape_gaps(expected: Any, answer: Any, path: str = "$") -> list[str]:
    if expected is None or answer is None:
        return []
    if json_type(expected) != json_type(answer):
        return [f"{path}: {json_type(answer)} where the PCE has {json_type(expected)}"]
    if isinstance(expected, dict):
        gaps = []
        for key, value in expected.items():
            if key not in answer:
                gaps.append(f"{path}.{key}: missing")
            else:
                gaps += shape_gaps(value, answer[key], f"{path}.{key}")
        return gaps
    if isinstance(expected, list) and expected and answer:
        return shape_gaps(expected[0], answer[0], f"{path}[0]")
    return []
