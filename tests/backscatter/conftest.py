"""Simulated telescope traffic with known truth, and a model trained on it (once per run)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from darkscope.backscatter import persist
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import resolve
from darkscope.backscatter.training import train
from darkscope.simulate import load_scenario, simulate

HELDOUT = Path(__file__).resolve().parents[2] / "src/darkscope/backscatter/scenarios/heldout.toml"


@dataclass
class Sim:
    capture: Path
    table: Path
    truth: Path
    attacks: Path


def _simulate(root: Path, name: str, scenario: str | Path, seed: int,
              hours: int | None = None) -> Sim:
    sim = Sim(root / f"{name}.pcap", root / f"{name}-packets.parquet",
              root / f"{name}-truth.parquet", root / f"{name}-attacks.parquet")
    spec = load_scenario(str(scenario))
    if hours:
        spec = dataclasses.replace(spec, duration_ns=hours * 3600 * 10**9)
    simulate(spec, sim.capture, truth=sim.truth, attacks=sim.attacks, table=sim.table,
             seed=seed)
    return sim


@pytest.fixture(scope="session")
def sim_train(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    """Four hours of the demo scenario (seed 1): the training traffic."""
    return _simulate(tmp_path_factory.mktemp("train"), "train", "demo", seed=1, hours=4)


@pytest.fixture(scope="session")
def sim_heldout(tmp_path_factory: pytest.TempPathFactory) -> Sim:
    """Two hours of a mix training never saw (other seed, uncovered ports, UDP scanners)."""
    return _simulate(tmp_path_factory.mktemp("heldout"), "heldout", HELDOUT, seed=11)


@pytest.fixture(scope="session")
def model_dir(sim_train: Sim, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on ``sim_train`` with the truth oracle answering up to 200 windows."""
    table = read_packets([sim_train.table])
    saved, _ = train(table, load_rules(), resolve(None, table),
                     truth=pq.read_table(sim_train.truth), expert_budget=200)
    return persist.save(saved, tmp_path_factory.mktemp("model") / "model")


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
