# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and reset the flow sets that the enforcement table records (policy/render_nft.py, record_flows).

Reading and resetting a set that packets keep updating would lose the updates in between, and this nft has
no "reset element". So the table keeps two generations of sets: the collector first switches the generation
maps to the idle generation (one nft transaction), then reads the generation that was filling and flushes it
once its flows are safely spooled. Once the switch has settled, nothing adds to the idle generation any more
(its elements can only time out), so a generation left unflushed by an interrupted run is read, or flushed,
by the next one; the table's handle, which changes whenever the table is made again, tells whether a
generation is still the one a run spooled. The caller passes `run(argv, data=None) -> (rc, stdout, stderr)`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import json
import re
import time

from ansible_collections.microseg.illumio.plugins.module_utils.flows.parsers import (
    ALLOWED,
    BLOCKED,
    normalize_address,
    parse_proto,
)
from ansible_collections.microseg.illumio.plugins.module_utils.policy.render_nft import (
    FAMILY,
    FLOW_DECISIONS,
    FLOW_FAMILIES,
    FLOW_GENERATIONS,
    FLOW_MAPS,
    TABLE,
    flow_chain_name,
    flow_map_elements,
    flow_set_name,
)

DECISIONS = {"allow": ALLOWED, "drop": BLOCKED}
# Packets already past the switch when it commits may still update the old generation for a moment.
SETTLE_SECONDS = 0.1


class NftSetError(Exception):
    """nft failed, or the table is not one that records flows."""


def _nft(run, args, data=None):
    rc, out, err = run(["nft", *args], data=data)
    if rc != 0:
        raise NftSetError("nft %s failed (exit %d): %s" % (" ".join(args), rc, (err or out).strip()))
    return out


def table_exists(run):
    return run(["nft", "list", "tables", FAMILY])[1].split().count(TABLE) > 0


def table_handle(run):
    """The kernel's handle of the table, or None when there is no table. A table made again (firewall_apply
    replaces it whole) gets a new handle, so a generation is identified by the table handle and its name."""
    rc, out, _err = run(["nft", "-j", "list", "tables", FAMILY])
    if rc != 0:
        return None
    try:
        document = json.loads(out)
    except ValueError:
        raise NftSetError("nft printed no JSON for its tables: %s" % out.strip()[:200]) from None
    for item in document.get("nftables", []) if isinstance(document, dict) else []:
        table = item.get("table") if isinstance(item, dict) else None
        if isinstance(table, dict) and table.get("name") == TABLE and table.get("family") == FAMILY:
            return table.get("handle")
    return None


def filling_generation(run):
    """The generation the flow maps send packets to now, or None when the table records no flows."""
    rc, out, _err = run(["nft", "list", "map", FAMILY, TABLE, FLOW_MAPS["allow"]])
    if rc != 0:
        return None
    found = set(re.findall(r"jump %s" % re.escape(flow_chain_name("allow", "")) + r"(\w+)", out))
    if len(found) != 1 or not found <= set(FLOW_GENERATIONS):
        raise NftSetError("the map %s names no single flow generation: %s" % (FLOW_MAPS["allow"], out.strip()))
    return found.pop()


def other_generation(generation):
    return FLOW_GENERATIONS[1 - FLOW_GENERATIONS.index(generation)]


def switch_script(generation):
    """One transaction that sends new flows to `generation`."""
    lines = []
    for decision in FLOW_DECISIONS:
        name = "%s %s %s" % (FAMILY, TABLE, FLOW_MAPS[decision])
        lines.append("flush map %s" % name)
        lines.append("add element %s { %s }" % (name, flow_map_elements(decision, generation)))
    return "\n".join(lines) + "\n"


def flush_script(generation):
    return (
        "\n".join(
            "flush set %s %s %s" % (FAMILY, TABLE, flow_set_name(decision, family, generation))
            for decision in FLOW_DECISIONS
            for family in FLOW_FAMILIES
        )
        + "\n"
    )


def switch(run, generation):
    _nft(run, ["-f", "-"], data=switch_script(generation))
    time.sleep(SETTLE_SECONDS)


def flush(run, generation):
    _nft(run, ["-f", "-"], data=flush_script(generation))


def read_generation(run, generation, since=None, now=None):
    """(flows, notes) of one generation's four sets; a flow is the arguments of FlowAggregate.add:
    (src, dst, dst_port, proto, decision, count, first, last). The count is new connections (allowed) or
    dropped connection attempts, retries included (blocked); last seen comes from the element's remaining
    timeout, first seen is `since` (when the generation started filling) when known."""
    now = time.time() if now is None else now
    flows, notes = [], []
    for decision in FLOW_DECISIONS:
        for family in FLOW_FAMILIES:
            name = flow_set_name(decision, family, generation)
            listing = _nft(run, ["-j", "list", "set", FAMILY, TABLE, name])
            found, full = parse_set_json(listing, DECISIONS[decision], since, now)
            flows.extend(found)
            if full:
                notes.append(
                    "the flow set %s was full (%d tuples): new tuples after that were not recorded; raise "
                    "flow_set_size or collect more often" % (name, full)
                )
    return flows, notes


def parse_set_json(text, decision, since=None, now=None):
    """(flows, size when the set is full else 0) of `nft -j list set` output."""
    now = time.time() if now is None else now
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise NftSetError("nft printed no JSON: %s" % exc) from None
    entry = next((item["set"] for item in document.get("nftables", []) if "set" in item), None)
    if entry is None:
        raise NftSetError("nft listed no set")
    timeout = entry.get("timeout") or 0
    flows = [_element_flow(item, decision, timeout, since, now) for item in entry.get("elem") or []]
    flows = [flow for flow in flows if flow is not None]
    size = entry.get("size") or 0
    return flows, (size if size and len(entry.get("elem") or []) >= size else 0)


def _element_flow(item, decision, timeout, since, now):
    elem = item.get("elem") if isinstance(item, dict) else None
    if not isinstance(elem, dict):
        return None
    value, counter = elem.get("val"), elem.get("counter")
    values = value.get("concat") if isinstance(value, dict) else None
    if not isinstance(values, list) or len(values) != 4 or not isinstance(counter, dict) or not counter.get("packets"):
        return None
    src, dst = normalize_address(str(values[0])), normalize_address(str(values[1]))
    proto, port = parse_proto(str(values[2])), values[3]
    if src is None or dst is None or proto is None or not isinstance(port, int):
        return None
    last = now - max(0, timeout - (elem.get("expires") or timeout)) if timeout else now
    first = min(since, last) if since else last
    return (src[0], dst[0], port, proto, decision, int(counter["packets"]), first, last)
