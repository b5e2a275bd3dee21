"""Scanner fingerprint mining: per-host transactions, association rules with support counted in
hosts, their timeline and charts, and tool fingerprints for bot attribution.

>>> from darkscope.patterns import mine, MineSettings
>>> rules = mine(["q3.pcap"], MineSettings(min_hosts=1000))     # pyarrow.Table, one row per rule
"""

from darkscope.patterns.pipeline import (
    HOSTS_SCHEMA,
    RULES_SCHEMA,
    MineSettings,
    MineSummary,
    attribute_periods,
    mine,
    mine_periods,
    parse_period,
)

__all__ = ["HOSTS_SCHEMA", "RULES_SCHEMA", "MineSettings", "MineSummary", "attribute_periods",
           "mine", "mine_periods", "parse_period"]
