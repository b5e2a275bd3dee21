"""Data shipped with darkscope (sample captures; attribution in each folder's SOURCES.md)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sample_capture(name: str = "stopddos_tcp_reflection.pcap") -> Path:
    """Path of a built-in sample capture (see ``data/captures/SOURCES.md``)."""
    path = Path(str(files("darkscope.data") / "captures" / name))
    if not path.is_file():
        raise FileNotFoundError(f"no built-in capture named {name}")
    return path
