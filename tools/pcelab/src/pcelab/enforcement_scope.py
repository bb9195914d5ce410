"""`num_enforcement_boundaries` of a workload: how many active enforcement boundaries it is inside.

A boundary's providers say which workloads it protects (the REST guide: "an enforcement boundary ... the
destination workloads"; the SDK's EnforcementBoundary.build takes providers, consumers and services like a rule):
`{"actors": "ams"}` is every workload, a label the workloads carrying it, a label group those carrying any label
in it (sub-groups too); IP lists name no workload. Counted when a workload is read, so it follows provisioning
and label changes without rewriting stored workloads; with no active boundary (most labs, and the 25,000-workload
benchmark) nothing is counted and listings pass through unparsed.
The real sample (pce_samples/workloads.json) carries the field as a number (5 there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pcelab.core import Lab

Matcher = Callable[[set[str]], bool]


def workload_view(lab: Lab, org_id: int) -> Callable[[dict], dict] | None:
    """A function setting a workload document's count, or None when no active boundary exists."""
    boundaries = lab.store.docs(org_id, "enforcement_boundaries", "active")
    if not boundaries:
        return None
    matchers = [_matcher(lab, org_id, boundary.get("providers", [])) for boundary in boundaries]

    def count(doc: dict) -> dict:
        labels = {ref["href"] for ref in doc.get("labels") or []}
        doc["num_enforcement_boundaries"] = sum(1 for matches in matchers if matches(labels))
        return doc

    return count


def _matcher(lab: Lab, org_id: int, providers: list[dict]) -> Matcher:
    if any(actor.get("actors") == "ams" for actor in providers):
        return lambda labels: True
    wanted: list[frozenset[str]] = []
    for actor in providers:
        if "label" in actor:
            wanted.append(frozenset([actor["label"]["href"]]))
        elif "label_group" in actor:
            wanted.append(lab.label_group_members(org_id, actor["label_group"]["href"]))
    return lambda labels: any(labels & members for members in wanted)
