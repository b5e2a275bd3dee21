"""Helpers for the detector's tests (the simulated traffic and model are in tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def packets(**columns: list) -> pa.Table:
    """A small packet table with the detector's columns (missing ones null)."""
    n = len(next(iter(columns.values())))
    types = {"ts": pa.timestamp("ns", tz="UTC"), "src": pa.uint32(), "dst": pa.uint32(),
             "proto": pa.uint8(), "sport": pa.uint16(), "dport": pa.uint16(),
             "tcp_flags": pa.uint8(), "payload_len": pa.uint32(), "icmp_type": pa.uint8(),
             "inner_src": pa.uint32(), "payload_head": pa.binary()}
    arrays = {}
    for name, typ in types.items():
        values = columns.get(name, [None] * n)
        if name == "ts":
            values = [None if v is None else int(v * 1e9) for v in values]
            arrays[name] = pa.array(np.array(values, np.int64), pa.int64()).cast(typ)
        else:
            arrays[name] = pa.array(values, typ)
    return pa.table(arrays)
