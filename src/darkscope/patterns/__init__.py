"""Scanner fingerprint mining: per-host transactions, association rules with support counted in
hosts, their timeline and charts, and tool fingerprints for bot attribution.

>>> from darkscope.patterns import mine, MineSettings
>>> rules = mine(["q3.pcap"], MineSettings(min_hosts=1000))     # pyarrow.Table, one row per rule

Names are loaded on first use, so the miner alone (``darkscope.patterns.mining``) does not pull
in the packet reader.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["HOSTS_SCHEMA", "RULES_SCHEMA", "MineSettings", "MineSummary", "attribute_periods",
           "mine", "mine_periods", "parse_period"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("darkscope.patterns.pipeline"), name)
    raise AttributeError(f"module 'darkscope.patterns' has no attribute {name!r}")
