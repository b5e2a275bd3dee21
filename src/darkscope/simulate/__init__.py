"""A network-telescope simulator with ground truth: real pcap files, the packet table, and
per-host truth (kind, family, DDoS) for training, testing and benchmarking the darknet parts.

>>> from darkscope.simulate import load_scenario, simulate
>>> simulate(load_scenario("demo"), "demo.pcap", truth="truth.parquet", seed=1)
"""

from darkscope.simulate.engine import Simulation, SimulationResult, simulate
from darkscope.simulate.scenario import Population, Scenario, load_scenario, parse_scenario

__all__ = ["Population", "Scenario", "Simulation", "SimulationResult", "load_scenario",
           "parse_scenario", "simulate"]
