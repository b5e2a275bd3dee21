"""Fixtures shared by every part's tests: the shared datasets, one simulated telescope day
split into training and held-out traffic, and a model trained on it (each made once a run)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from darkscope.backscatter import persist
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.rules import load_rules
from darkscope.backscatter.telescope import resolve
from darkscope.backscatter.training import train
from darkscope.simulate import load_scenario, simulate

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
HELDOUT = REPO / "src/darkscope/backscatter/scenarios/heldout.toml"


@pytest.fixture
def shared_data() -> Path:
    """The read-only shared datasets beside the repository (skipped when absent)."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip(f"shared datasets not found at {data} (clone with ../shared beside it)")
    return data


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
