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


def check_name(name: str, what: str = "party name") -> str:
    if not NAME.fullmatch(name) or name == KEYHOLDER:
        raise UsageError(f"{what} {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                         f"and not {KEYHOLDER!r}")
    return name


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(parties: list[str], directory: str | Path) -> Path:
    """Write ``<name>.token`` (mode 0600) per party and the key holder, plus the hash file."""
    directory = Path(directory)
    if len(set(parties)) != len(parties) or len(parties) < 2:
        raise UsageError("give at least two distinct party names")
    for name in parties:
        check_name(name)
    directory.mkdir(parents=True, exist_ok=True)
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
