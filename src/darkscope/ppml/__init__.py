"""Privacy-preserving Extreme Learning Machine across organizations (PP-ELM).

Parties add their encrypted ``HᵀH`` and ``HᵀT`` at an aggregator that holds no secret key; the
key holder decrypts only the total and solves the output weights. See docs/ppml.md.
"""

from darkscope.ppml.elm import ELM

__all__ = ["ELM"]
