"""Durations and instants as users write them (``30m``, ``3d``, ``2016-08-06T00:00Z``)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import numpy as np

NS = 1_000_000_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> int:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"3d"``, ``"1w"`` -> nanoseconds; ValueError otherwise."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 1h, 3d)")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return round(value * NS)


def parse_instant(value: object) -> int:
    """An ISO 8601 date or date-time (UTC unless an offset is given), or a TOML date/datetime,
    as nanoseconds since the epoch."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a date or date-time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS + moment.microsecond * 1000


def day_of(ns: int | np.ndarray) -> int | np.ndarray:
    return ns // (86400 * NS)


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, UTC).isoformat().replace("+00:00", "Z")
