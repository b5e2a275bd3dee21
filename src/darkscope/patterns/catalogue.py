"""The item catalogue: which packet fields become items of a host's transaction, as data.

Items are strings ``name=value`` (``win=1320``, ``tos=24``, ``dport=2323``). Which fields are
items, and how a field's value is turned into an item value, is read from a TOML file (the
built-in ``catalogue.toml`` unless the user gives one), so a new item needs no code as long as it
uses one of the transforms below.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from darkscope.errors import InputFormatError, UsageError

#: Value code of the one item that stands for all of a sweeping host's values of an attribute.
SWEEP = 1 << 16
MAX_ITEMS = 16          # attribute ids fit in 4 bits of the aggregation key

_TTL_STEPS = np.array([32, 64, 128, 255], dtype=np.uint32)
_IP_ID_KINDS = ("other", "zmap", "masscan", "zero")
_PORT_CLASSES = ("well-known", "registered", "dynamic")


@dataclass(frozen=True)
class ItemSpec:
    """One kind of item: its name, the packet column it reads and the transform applied."""

    name: str
    column: str
    transform: str
    default: bool = False


class Columns(dict[str, np.ndarray]):
    """Packet columns of one batch as numpy arrays (nulls filled with 0) plus validity masks."""

    def __init__(self, arrays: dict[str, np.ndarray], valid: dict[str, np.ndarray],
                 no_options: np.ndarray | None = None,
                 mss_only: np.ndarray | None = None) -> None:
        super().__init__(arrays)
        self.valid = valid
        #: option layouts the fingerprints test: none at all / exactly one MSS option
        self.no_options = no_options
        self.mss_only = mss_only


class LayoutCodes:
    """Stable integer codes for TCP option layout strings across batches and periods."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}

    def encode(self, layouts: list[str | None]) -> np.ndarray:
        """Codes of the distinct strings ``layouts`` (a dictionary's values; few of them)."""
        out = np.zeros(len(layouts), dtype=np.uint32)
        for i, text in enumerate(layouts):
            key = text or ""
            code = self._codes.get(key)
            if code is None:
                if len(self.names) >= SWEEP:
                    raise UsageError("more than 65,536 distinct TCP option layouts")
                code = self._codes[key] = len(self.names)
                self.names.append(key)
            out[i] = code
        return out


def _value(cols: Columns, column: str) -> tuple[np.ndarray, np.ndarray]:
    return cols[column].astype(np.uint32), cols.valid[column]


def _ttl_initial(cols: Columns, column: str) -> tuple[np.ndarray, np.ndarray]:
    ttl = cols[column].astype(np.uint32)
    return _TTL_STEPS[np.searchsorted(_TTL_STEPS, ttl)], cols.valid[column]


def _layout(cols: Columns, column: str) -> tuple[np.ndarray, np.ndarray]:
    return cols[column].astype(np.uint32), cols.valid[column]


def _ip_id_kind(cols: Columns, column: str) -> tuple[np.ndarray, np.ndarray]:
    ip_id = cols[column].astype(np.uint32)
    derived = (cols["dst"] ^ cols["dport"].astype(np.uint32) ^ cols["seq"]) & 0xFFFF
    kind = np.zeros(len(ip_id), dtype=np.uint32)
    kind[ip_id == 0] = 3
    kind[ip_id == derived] = 2
    kind[ip_id == 54321] = 1
    return kind, cols.valid[column]


def _port_class(cols: Columns, column: str) -> tuple[np.ndarray, np.ndarray]:
    port = cols[column].astype(np.uint32)
    return (port >= 1024).astype(np.uint32) + (port >= 49152), cols.valid[column]


Transform = Callable[[Columns, str], tuple[np.ndarray, np.ndarray]]
TRANSFORMS: dict[str, Transform] = {
    "value": _value, "ttl_initial": _ttl_initial, "layout": _layout,
    "ip_id_kind": _ip_id_kind, "port_class": _port_class,
}
#: Extra packet columns a transform needs besides its own.
TRANSFORM_NEEDS: dict[str, tuple[str, ...]] = {"ip_id_kind": ("dst", "dport", "seq")}


class Catalogue:
    """The chosen item specs, in order; attribute id = position."""

    def __init__(self, specs: list[ItemSpec]) -> None:
        if not specs:
            raise UsageError("no items chosen")
        if len(specs) > MAX_ITEMS:
            raise UsageError(f"at most {MAX_ITEMS} item kinds, got {len(specs)}")
        self.specs = specs
        self.layouts = LayoutCodes()

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def columns(self) -> set[str]:
        needed = {spec.column for spec in self.specs}
        for spec in self.specs:
            needed.update(TRANSFORM_NEEDS.get(spec.transform, ()))
        return needed

    def values(self, cols: Columns) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per item kind: value codes and validity of every packet in ``cols``."""
        return [TRANSFORMS[spec.transform](cols, spec.column) for spec in self.specs]

    def label(self, attr: int, code: int) -> str:
        """The item string of attribute ``attr`` with value code ``code``."""
        spec = self.specs[attr]
        if code == SWEEP:
            return f"{spec.name}=*sweep*"
        if spec.transform == "layout":
            text = self.layouts.names[code]
            return f"{spec.name}={text or 'none'}"
        if spec.transform == "ip_id_kind":
            return f"{spec.name}={_IP_ID_KINDS[code]}"
        if spec.transform == "port_class":
            return f"{spec.name}={_PORT_CLASSES[code]}"
        return f"{spec.name}={code}"


def load_catalogue(path: str | Path | None = None,
                   items: list[str] | None = None) -> Catalogue:
    """The catalogue in ``path`` (default: built-in), restricted to ``items`` if given
    (default: the items marked ``default = true``)."""
    if path is None:
        source = "catalogue.toml"
        text = (files("darkscope.patterns") / "catalogue.toml").read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read item catalogue {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputFormatError(source, f"not valid TOML: {exc}") from None
    specs = []
    for i, entry in enumerate(data.get("item", [])):
        where = f"item[{i}]"
        if not isinstance(entry, dict):
            raise InputFormatError(source, f"{where}: expected a table")
        for key in ("name", "column", "transform"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise InputFormatError(source, f"{where}.{key}: expected a non-empty string")
        if entry["transform"] not in TRANSFORMS:
            raise InputFormatError(source, f"{where}.transform: unknown {entry['transform']!r};"
                                           f" choose one of {', '.join(TRANSFORMS)}")
        if "=" in entry["name"] or "," in entry["name"]:
            raise InputFormatError(source, f"{where}.name: may not contain '=' or ','")
        specs.append(ItemSpec(entry["name"], entry["column"], entry["transform"],
                              bool(entry.get("default", False))))
    if not specs:
        raise InputFormatError(source, "no [[item]] entries")
    known = {spec.name: spec for spec in specs}
    if len(known) != len(specs):
        raise InputFormatError(source, "item names must be unique")
    if items is None:
        chosen = [spec for spec in specs if spec.default]
    else:
        unknown = [name for name in items if name not in known]
        if unknown:
            raise UsageError(f"unknown item name(s) {', '.join(map(repr, unknown))}; "
                             f"the catalogue has {', '.join(known)}")
        chosen = [known[name] for name in dict.fromkeys(items)]
    return Catalogue(chosen)
