"""DDoS backscatter detection: features, rules, one-class gate, calibrated L2-SVM, experts.

>>> from darkscope.backscatter import read_packets, extract, load_rules
>>> table = read_packets("capture.pcap")              # or a Parquet packet table
>>> windows = extract(table)                          # 17 features per host-window

Training and detection: :func:`darkscope.backscatter.training.train`,
:func:`darkscope.backscatter.flow.decide`; docs/backscatter.md describes the flow.
"""

from darkscope.backscatter.features import FeatureDefinition, HostWindows, extract
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import load_rules

__all__ = ["FeatureDefinition", "HostWindows", "extract", "load_rules", "read_packets"]
