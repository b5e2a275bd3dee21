"""The 17 features as plain pandas group-bys: the definition in its most literal form.

Slow on purpose-free code paths: tests check the compiled fast path against it and
``benchmarks/backscatter.py`` runs it as the peer. Needs pandas (the ``test`` extra).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from darkscope.backscatter.features import NO_PORT, NS, FeatureDefinition


def reference_features(table: pa.Table, definition: FeatureDefinition | None = None):
    """A DataFrame indexed by (src, window index) with the named features (time windows)."""
    import pandas as pd

    definition = definition or FeatureDefinition()
    if definition.window_s is None:
        raise ValueError("the reference covers time windows only")
    df = pd.DataFrame({
        "ts": table["ts"].cast(pa.int64()).to_numpy(),
        "src": table["src"].to_numpy(zero_copy_only=False).astype(np.int64),
        "dst": table["dst"].to_numpy(zero_copy_only=False).astype(np.int64),
        "sport": table["sport"].cast(pa.int64()).fill_null(NO_PORT).to_numpy(),
        "dport": table["dport"].cast(pa.int64()).fill_null(NO_PORT).to_numpy(),
        "proto": table["proto"].cast(pa.int64()).fill_null(256).to_numpy(),
        "payload": table["payload_len"].cast(pa.float64()).fill_null(0).to_numpy(),
    })
    df["window"] = df["ts"] // (definition.window_s * NS)
    df = df.sort_values(["src", "window", "ts"], kind="stable")
    keys = ["src", "window"]
    groups = df.groupby(keys, sort=True)
    out = pd.DataFrame({"packet_count": groups.size().astype(float)})
    df["gap"] = groups["ts"].diff() / NS
    out["interval_mean"] = groups["gap"].mean()
    out["interval_std"] = groups["gap"].std(ddof=0)
    for column, names in (("sport", ("sports", "pkts_per_sport_mean", "pkts_per_sport_std")),
                          ("dst", ("dsts", "pkts_per_dst_mean", "pkts_per_dst_std")),
                          ("dport", ("dports", "pkts_per_dport_mean", "pkts_per_dport_std"))):
        per_value = df.groupby([*keys, column]).size().groupby(level=[0, 1])
        out[names[0]] = per_value.size().astype(float)
        out[names[1]] = per_value.mean()
        out[names[2]] = per_value.std(ddof=0)
    df["port_gap"] = df.groupby([*keys, "dport"])["ts"].diff() / NS
    port_groups = df.groupby(keys)["port_gap"]
    out["dport_interval_mean"] = port_groups.mean()
    out["dport_interval_std"] = port_groups.std(ddof=0)
    out["protocols"] = groups["proto"].nunique().astype(float)
    if definition.variant == "payload":
        out["payload_mean"] = groups["payload"].mean()
        out["payload_std"] = groups["payload"].std(ddof=0)
    else:
        dsts = df[[*keys, "dst"]].drop_duplicates().sort_values([*keys, "dst"])
        dsts["span"] = dsts.groupby(keys)["dst"].diff()
        spans = dsts.groupby(keys)["span"]
        out["dst_span_mean"] = spans.mean()
        out["dst_span_std"] = spans.std(ddof=0)
    return out.fillna(0.0)
