"""Labelling rules as data: TOML files of packet predicates with an id, a label and a source.

A rule fires on a host-window when at least ``min_share`` of its packets match; the first
firing rule in file order decides. Matching is vectorised over the packet columns, and the
per-window share is one ``bincount`` (``GROUP BY src, window``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from darkscope.backscatter.addresses import ipv6_matrix
from darkscope.backscatter.telescope import Telescope
from darkscope.errors import InputFormatError

LABELS = ("ddos", "not_ddos")
FLAG_BITS = {"S": 0x02, "A": 0x10, "R": 0x04, "F": 0x01}
FLAG_MASK = 0x17
_INT_FIELDS = ("proto", "sport", "dport", "icmp_type")
_KNOWN = {*_INT_FIELDS, "tcp_flags", "payload_prefix", "payload_len_min", "payload_len_max",
          "dns_header", "inner_src_in_telescope"}
NO_RULE = -1


class RulesError(InputFormatError):
    """A rules file with a missing or invalid field."""


@dataclass(frozen=True)
class Rule:
    id: str
    label: str
    description: str
    source: str
    match: dict[str, Any]
    min_share: float = 0.5


@dataclass
class RuleSet:
    rules: list[Rule]
    path: str = "built-in"
    ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.ids = [r.id for r in self.rules]


BUILT_IN = {"default": "rules.toml", "minimal": "rules-minimal.toml"}


def default_rules_path(name: str = "default") -> Path:
    return Path(str(files("darkscope.backscatter") / BUILT_IN[name]))


def _ints(path: str, where: str, value: Any, top: int) -> list[int]:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= top:
            raise RulesError(path, f"{where}: expected integers 0..{top}, got {v!r}")
    return values


def _parse_rule(path: str, index: int, raw: Any) -> Rule:
    where = f"rule[{index}]"
    if not isinstance(raw, dict):
        raise RulesError(path, f"{where}: expected a table")
    for key in ("id", "label", "source", "match"):
        if key not in raw:
            raise RulesError(path, f"{where}.{key}: missing")
    unknown = set(raw) - {"id", "label", "description", "source", "match", "min_share"}
    if unknown:
        raise RulesError(path, f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if raw["label"] not in LABELS:
        raise RulesError(path, f"{where}.label: expected one of {', '.join(LABELS)}, "
                               f"got {raw['label']!r}")
    share = raw.get("min_share", 0.5)
    if not isinstance(share, int | float) or not 0 < share <= 1:
        raise RulesError(path, f"{where}.min_share: expected a number in (0, 1], got {share!r}")
    match = raw["match"]
    if not isinstance(match, dict) or not match:
        raise RulesError(path, f"{where}.match: expected a non-empty table")
    clean: dict[str, Any] = {}
    for key, value in match.items():
        at = f"{where}.match.{key}"
        if key not in _KNOWN:
            raise RulesError(path, f"{at}: unknown field (known: {', '.join(sorted(_KNOWN))})")
        if key in _INT_FIELDS:
            clean[key] = _ints(path, at, value, 255 if key in ("proto", "icmp_type") else 65535)
        elif key == "tcp_flags":
            sets = value if isinstance(value, list) else [value]
            bits = []
            for text in sets:
                if not isinstance(text, str) or not text or set(text) - set(FLAG_BITS):
                    raise RulesError(path, f"{at}: expected flag sets of S A R F, got {text!r}")
                bits.append(sum(FLAG_BITS[c] for c in set(text)))
            clean[key] = bits
        elif key == "payload_prefix":
            try:
                clean[key] = [bytes.fromhex(v) for v in value]
            except (TypeError, ValueError):
                raise RulesError(path, f"{at}: expected a list of hex strings") from None
            if any(not 1 <= len(p) <= 16 for p in clean[key]):
                raise RulesError(path, f"{at}: prefixes must be 1..16 bytes (the payload head)")
        elif key in ("payload_len_min", "payload_len_max"):
            clean[key] = _ints(path, at, value, 2**32 - 1)[0]
        elif not isinstance(value, bool):
            raise RulesError(path, f"{at}: expected true or false")
        else:
            clean[key] = value
    return Rule(str(raw["id"]), raw["label"], str(raw.get("description", "")),
                str(raw["source"]), clean, float(share))


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Built-in rules (``None``/``"default"``, ``"minimal"``) or a user's file (errors name
    the file and the field)."""
    builtin = path is None or str(path) in BUILT_IN
    target = default_rules_path(str(path or "default")) if builtin else Path(path)
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(target, f"cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RulesError(target, f"not valid TOML: {exc}") from None
    raw = data.get("rule")
    if not isinstance(raw, list) or not raw:
        raise RulesError(target, "no [[rule]] tables")
    rules = [_parse_rule(str(target), i, r) for i, r in enumerate(raw)]
    seen: set[str] = set()
    for i, r in enumerate(rules):
        if r.id in seen:
            raise RulesError(target, f"rule[{i}].id: duplicate id {r.id!r}")
        seen.add(r.id)
    return RuleSet(rules, f"built-in:{path or 'default'}" if builtin else str(target))


def _in(column: np.ndarray, valid: np.ndarray, values: list[int]) -> np.ndarray:
    return valid & np.isin(column, np.asarray(values))


def packet_matches(rule: Rule, table: pa.Table, telescope: Telescope | None,
                   cache: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Boolean per packet: does it satisfy every predicate of ``rule``?"""
    n = table.num_rows

    def col(name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in cache:
            column = table[name]
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            values = column.fill_null(0).to_numpy()
            cache[name] = (values, valid)
        return cache[name]

    ok = np.ones(n, bool)
    m = rule.match
    for name in _INT_FIELDS:
        if name in m:
            values, valid = col(name)
            ok &= _in(values, valid, m[name])
    if "tcp_flags" in m:
        values, valid = col("tcp_flags")
        ok &= _in(values & FLAG_MASK, valid, m["tcp_flags"])
    if "payload_len_min" in m or "payload_len_max" in m:
        values, valid = col("payload_len")
        ok &= valid & (values >= m.get("payload_len_min", 0)) \
            & (values <= m.get("payload_len_max", 2**32 - 1))
    if "payload_prefix" in m:
        hit = np.zeros(n, bool)
        for prefix in m["payload_prefix"]:
            hit |= _starts_with(table["payload_head"], prefix).fill_null(False).to_numpy(
                zero_copy_only=False)
        ok &= hit
    if m.get("dns_header"):
        ok &= _dns_header(table)
    if "dns_header" in m and not m["dns_header"]:
        ok &= ~_dns_header(table)
    if "inner_src_in_telescope" in m:
        values, valid = col("inner_src")
        inside = valid & (telescope.contains(values) if telescope else np.zeros(n, bool))
        if "inner_src6" in table.column_names and table["inner_src6"].null_count < n:
            # an ICMPv6 error quotes an IPv6 header
            quoted6, valid6 = ipv6_matrix(table["inner_src6"])
            if valid6.any():
                inside6 = telescope.contains6(quoted6) if telescope else np.zeros(n, bool)
                inside |= valid6 & inside6
                valid = valid | valid6
        ok &= inside if m["inner_src_in_telescope"] else valid & ~inside
    return ok


def _starts_with(heads: pa.ChunkedArray, prefix: bytes) -> pa.ChunkedArray:
    """Binary prefix test: slice the first bytes and compare (no per-row Python)."""
    sliced = pc.binary_slice(heads, 0, len(prefix))
    return pc.equal(sliced, pa.scalar(prefix, pa.binary()))


def _dns_header(table: pa.Table) -> np.ndarray:
    """A plausible DNS header: >= 12 payload bytes, opcode 0-2 or 4-5, Z bit clear, and
    1..16 questions (every request has one; responses repeat it), per RFC 1035/6895."""
    n = table.num_rows
    heads = table["payload_head"]
    length = table["payload_len"].fill_null(0).to_numpy()
    fixed = pc.binary_slice(heads, 0, 12).fill_null(b"\x00" * 12)
    raw = pc.binary_length(fixed).to_numpy(zero_copy_only=False)
    out = np.zeros(n, bool)
    full = (raw == 12) & (length >= 12)
    if not full.any():
        return out
    chosen = pc.filter(fixed, pa.array(full)).combine_chunks().cast(pa.binary(12))
    hdr = np.frombuffer(chosen.buffers()[1], np.uint8, count=len(chosen) * 12,
                        offset=chosen.offset * 12).reshape(-1, 12)
    opcode = (hdr[:, 2] >> 3) & 0x0F
    z = hdr[:, 3] & 0x40
    qd = hdr[:, 4].astype(np.int32) * 256 + hdr[:, 5]
    out[np.flatnonzero(full)] = np.isin(opcode, [0, 1, 2, 4, 5]) & (z == 0) & (qd >= 1) & (qd <= 16)
    return out


def apply_rules(rules: RuleSet, table: pa.Table, row_of_packet: np.ndarray, n_windows: int,
                packets: np.ndarray, telescope: Telescope | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per host-window: the index of the deciding rule (``NO_RULE`` if none) and its label
    (1 = ddos, 0 = not_ddos, -1 = none)."""
    decided = np.full(n_windows, NO_RULE, np.int64)
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for index, rule in enumerate(rules.rules):
        hits = np.bincount(row_of_packet,
                           weights=packet_matches(rule, table, telescope, cache).astype(float),
                           minlength=n_windows)
        fires = (decided == NO_RULE) & (hits > 0) & (hits >= rule.min_share * packets)
        decided[fires] = index
    labels = np.array([1 if r.label == "ddos" else 0 for r in rules.rules] + [-1], np.int64)
    return decided, labels[decided]
