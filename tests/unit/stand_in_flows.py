"""Flows as the VEN stand-in's FlowRecorder.record() takes them (tests/vensim/vensim.py), for the flow tests."""

from __future__ import annotations

UUID = "3c1b9f96-969a-472e-bbbc-9d1c93751ef9"


def stand_in_flow(at: float, **changes) -> dict:
    """A closed inbound TCP connection first seen at `at` (epoch seconds), last seen half a second later."""
    flow = {
        "detected_at": at + 0.5,
        "first_seen": at,
        "last_seen": at + 0.5,
        "interface": "eth0",
        "ip_version": 4,
        "src_ip": "10.0.0.12",
        "dst_ip": "10.0.0.11",
        "proto": 6,
        "src_port": 50972,
        "dst_port": 9999,
        "direction": "I",
        "state": "C",
        "bytes_in": 373,
        "bytes_out": 768,
        "workload_uuid": UUID,
    }
    flow.update(changes)
    return flow
