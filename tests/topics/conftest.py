"""Shared fixtures: a planted-topic corpus written as crawler-style JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from darkscope.topics.synthetic import PlantedCorpus, planted_corpus

REPO = Path(__file__).resolve().parents[2]
AGORA = REPO / ".." / "shared" / "data" / "darkweb" / "agora_vendorall_0114_sample2000.csv"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def best_overlap(planted: PlantedCorpus, vocabulary: np.ndarray, topic_word: np.ndarray,
                 n: int = 20) -> list[float]:
    """For each planted topic, the best top-``n`` word overlap with any found topic."""
    found = [set(vocabulary[np.argsort(-row)[:n]]) for row in topic_word]
    return [max(len(set(planted.top_words(z, n)) & f) / n for f in found)
            for z in range(planted.topic_words.shape[0])]


def matching(planted: PlantedCorpus, vocabulary: np.ndarray, topic_word: np.ndarray,
             n: int = 20) -> dict[int, int]:
    """Planted topic -> the found topic sharing most of its top-``n`` words."""
    found = [set(vocabulary[np.argsort(-row)[:n]]) for row in topic_word]
    return {z: int(np.argmax([len(set(planted.top_words(z, n)) & f) for f in found]))
            for z in range(planted.topic_words.shape[0])}


@pytest.fixture(scope="session")
def planted() -> PlantedCorpus:
    return planted_corpus(n_documents=1500, k=6, seed=11)


@pytest.fixture(scope="session")
def agora_path() -> Path:
    if not AGORA.is_file():
        pytest.skip(f"Agora sample not found at {AGORA} (needs ../shared beside the repo)")
    return AGORA
