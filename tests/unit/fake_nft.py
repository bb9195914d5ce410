"""A fake `nft` for the flow sets of the table inet illumio, keeping maps, sets and counters like the kernel.

What it keeps: whether the table exists (and records flows), its handle (a new one whenever the table is made
again, as firewall_apply does), which generation the maps send packets to, and each set's elements with their
packet counters. `traffic()` counts a new connection the way the table's rules do: in the filling generation.
`after_write` is called after each `nft -f` script is applied (tests crash there). `calls` logs what was run.
"""

from __future__ import annotations

import json
import re

FAMILY, TABLE = "inet", "illumio"
TIMEOUT = 3600


def element(src, dst, proto, port, packets, expires=TIMEOUT):
    return {"elem": {"val": {"concat": [src, dst, proto, port]}, "expires": expires, "counter": {"packets": packets}}}


def set_json(name, elements, size=1000, handle=None):
    entry = {"family": FAMILY, "name": name, "table": TABLE, "size": size, "timeout": TIMEOUT}
    if handle is not None:
        entry["handle"] = handle
    if elements:
        entry["elem"] = elements
    return json.dumps({"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": entry}]})


def set_name(decision, family, generation):
    return f"flow_{decision}_{ {'ipv4': 'v4', 'ipv6': 'v6'}[family] }_{generation}"


class FakeNft:
    def __init__(self, records=True):
        self.records = records
        self.table = True
        self.handle = 7
        self.filling = "a"
        self.sets = {}
        self.calls = []
        self.after_write = None

    def record(self, decision, family, src, dst, proto, port, packets=1, generation=None):
        """Add an element as listed (tests of the parser); see traffic() for counting connections."""
        name = set_name(decision, family, generation or self.filling)
        self.sets.setdefault(name, []).append(element(src, dst, proto, port, packets))

    def traffic(self, decision, src, dst, proto, port, connections=1):
        """New connections (or dropped attempts) counted into the filling generation, as the table does."""
        if not (self.table and self.records):
            return
        family = "ipv6" if ":" in src else "ipv4"
        elements = self.sets.setdefault(set_name(decision, family, self.filling), [])
        for item in elements:
            if item["elem"]["val"]["concat"] == [src, dst, proto, port]:
                item["elem"]["counter"]["packets"] += connections
                return
        elements.append(element(src, dst, proto, port, connections))

    def replace_table(self, records=True):
        """firewall_apply replacing the table: a new handle, empty sets, the maps back at generation a."""
        self.table, self.records = True, records
        self.handle += 1
        self.filling = "a"
        self.sets = {}

    def remove_table(self):
        self.table, self.records, self.sets = False, False, {}

    def __call__(self, argv, data=None):
        self.calls.append(" ".join(argv[1:]) if data is None else data.strip())
        args = argv[1:]
        if args[:2] == ["list", "tables"]:
            return 0, "table inet illumio\n" if self.table else "", ""
        if args[:3] == ["-j", "list", "tables"]:
            tables = [{"table": {"family": FAMILY, "name": TABLE, "handle": self.handle}}] if self.table else []
            return 0, json.dumps({"nftables": [{"metainfo": {"version": "1.0.6"}}, *tables]}), ""
        if args[:2] == ["list", "map"]:
            if not (self.table and self.records):
                return 1, "", "Error: No such file or directory"
            target = "flow_allow_" + self.filling
            listing = f"map flow_gen_allow {{\n\t\telements = {{ tcp : jump {target}, udp : jump {target} }}\n"
            return 0, listing, ""
        if args[:3] == ["-j", "list", "set"]:
            if not (self.table and self.records):
                return 1, "", "Error: No such file or directory"
            return 0, set_json(args[-1], self.sets.get(args[-1], []), handle=3), ""
        if args == ["-f", "-"]:
            if not (self.table and self.records):
                return 1, "", "Error: No such file or directory"
            for generation in re.findall(
                r"add element inet illumio flow_gen_allow \{ tcp : jump flow_allow_(\w)", data
            ):
                self.filling = generation
            for name in re.findall(r"flush set inet illumio (\S+)", data):
                self.sets.pop(name, None)
            if self.after_write is not None:
                self.after_write(data)
            return 0, "", ""
        return 1, "", f"unexpected nft call {args}"
