"""Bearer tokens: one secret per party and one for the key holder; the aggregator keeps hashes.

Tokens are 256-bit random strings from :mod:`secrets`. The aggregator's token file holds only
their SHA-256 hashes, so a copy of the aggregator's state does not let anyone upload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from darkscope.errors import DarkscopeError, InputFormatError, UsageError
from darkscope.io import atomic_path

KEYHOLDER = "keyholder"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
HASHES_FILE = "aggregator-tokens.json"
HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def check_name(name: str, what: str = "party name") -> str:
    if not NAME.fullmatch(name) or name == KEYHOLDER:
        raise UsageError(f"{what} {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                         f"and not {KEYHOLDER!r}")
    return name


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(parties: list[str], directory: str | Path, overwrite: bool = False) -> Path:
    """Write ``<name>.token`` (mode 0600) per party and the key holder, plus the hash file.

    Existing tokens are replaced only with ``overwrite``; then every other ``*.token`` of the
    directory is removed too, since the new hash file no longer admits it (a stale token
    left beside the new ones would only fail later, at the aggregator).
    """
    directory = Path(directory)
    if len(set(parties)) != len(parties) or len(parties) < 2:
        raise UsageError("give at least two distinct party names")
    for name in parties:
        check_name(name)
    existing = sorted(directory.glob("*.token")) + [p for p in [directory / HASHES_FILE]
                                                     if p.exists()]
    if existing and not overwrite:
        raise UsageError(f"{directory} already holds tokens ({', '.join(p.name for p in existing)}"
                         "); pass --overwrite to issue new ones (the old ones stop working)")
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {f"{name}.token" for name in [*parties, KEYHOLDER]}
    for stale in existing:
        if stale.suffix == ".token" and stale.name not in wanted:
            stale.unlink()
    hashes: dict[str, object] = {"parties": {}}
    for name in [*parties, KEYHOLDER]:
        token = secrets.token_urlsafe(32)
        path = directory / f"{name}.token"
        with atomic_path(path) as tmp:
            tmp.write_text(token + "\n")
            os.chmod(tmp, 0o600)
        if name == KEYHOLDER:
            hashes[KEYHOLDER] = digest(token)
        else:
            hashes["parties"][name] = digest(token)  # type: ignore[index]
    target = directory / HASHES_FILE
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(hashes, indent=2) + "\n")
    return target


def issue_own(name: str, path: str | Path, overwrite: bool = False) -> str:
    """One role makes its own token (mode 0600) and hands out only the returned SHA-256."""
    if name != KEYHOLDER:
        check_name(name)
    token = secrets.token_urlsafe(32)
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(token + "\n")
        os.chmod(tmp, 0o600)
    return digest(token)


def collect(hashes_file: str | Path, directory: str | Path, overwrite: bool = False) -> Path:
    """Build the aggregator's hash file from ``name sha256`` lines sent in by each role."""
    target = Path(directory) / HASHES_FILE
    if target.exists() and not overwrite:
        raise UsageError(f"{target} exists; pass --overwrite to replace it (tokens it admits "
                         "now and the new file does not will stop working)")
    try:
        lines = Path(hashes_file).read_text().splitlines()
    except OSError as exc:
        raise DarkscopeError(f"cannot read {hashes_file}: {exc.strerror}") from exc
    table: dict[str, object] = {"parties": {}}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2 or not HEX64.fullmatch(fields[1]):
            raise InputFormatError(hashes_file, f"line {number}: expected 'name sha256' with a "
                                                f"64-digit hex SHA-256, got {line.strip()!r}")
        name, hashed = fields
        if name in table["parties"] or name in table:  # type: ignore[operator]
            raise InputFormatError(hashes_file, f"line {number}: {name!r} appears twice")
        if name == KEYHOLDER:
            table[KEYHOLDER] = hashed.lower()
        else:
            try:
                check_name(name)
            except UsageError as exc:
                raise InputFormatError(hashes_file, f"line {number}: {exc}") from exc
            table["parties"][name] = hashed.lower()  # type: ignore[index]
    if KEYHOLDER not in table or len(table["parties"]) < 2:  # type: ignore[arg-type]
        raise InputFormatError(hashes_file, f"needs a {KEYHOLDER!r} line and at least two "
                                            "parties")
    Path(directory).mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(table, indent=2) + "\n")
    return target


def read_token(path: str | Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise DarkscopeError(f"cannot read token file {path}: {exc.strerror}") from exc
    if not token:
        raise InputFormatError(path, "empty token file")
    return token


@dataclass(frozen=True)
class Identity:
    name: str

    @property
    def is_keyholder(self) -> bool:
        return self.name == KEYHOLDER


class TokenTable:
    """Who a presented token belongs to, compared in constant time."""

    def __init__(self, hashes: dict[str, str]) -> None:
        self._hashes = hashes

    @classmethod
    def load(cls, path: str | Path) -> TokenTable:
        try:
            raw = json.loads(Path(path).read_text())
            table = {str(k): str(v) for k, v in raw["parties"].items()}
            table[KEYHOLDER] = str(raw[KEYHOLDER])
        except OSError as exc:
            raise DarkscopeError(f"cannot read token hashes {path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InputFormatError(path, f"not an aggregator token file ({exc})") from exc
        return cls(table)

    @property
    def parties(self) -> list[str]:
        return sorted(n for n in self._hashes if n != KEYHOLDER)

    def identify(self, token: str) -> Identity | None:
        presented = digest(token)
        found = None
        for name, expected in self._hashes.items():
            if hmac.compare_digest(presented, expected):
                found = Identity(name)
        return found
