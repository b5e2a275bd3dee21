"""Privacy-preserving Extreme Learning Machine across organizations (PP-ELM).

Parties add their encrypted ``HᵀH`` and ``HᵀT`` at an aggregator that holds no secret key; the
key holder decrypts only the total and solves the output weights. See docs/ppml.md.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ELM"]


def __getattr__(name: str) -> Any:
    # Lazy, so the party and aggregator processes start without importing scikit-learn.
    if name == "ELM":
        from darkscope.ppml.elm import ELM

        return ELM
    raise AttributeError(name)
