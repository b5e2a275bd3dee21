"""Dashboard users, their roles and login sessions, in the review store's SQLite file.

Passwords are hashed with argon2id (argon2-cffi, the reference implementation's binding); a
session is a random token whose SHA-256 alone is stored, so a copy of the database opens no
session. Roles are ordered: a viewer reads, an expert also labels, an admin also manages users.

**API tokens** are for SOC tools, which cannot hold a login session: a long random bearer token
(only its SHA-256 is stored) that acts as its user with at most a chosen role, until it expires
or is revoked; removing the user or lowering their role takes effect on their tokens at once.
The store never lets the last admin go, so someone can always manage users.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass

from darkscope.errors import DarkscopeError, UsageError
from darkscope.store.review import ReviewStore, _now

ROLES = ("viewer", "expert", "admin")
SESSION_S = 12 * 3600
MIN_PASSWORD = 10
TOKEN_PREFIX = "dsk_"   # recognisable by secret scanners and in logs
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_at: str

    def can(self, role: str) -> bool:
        """Whether this user holds ``role`` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class Session:
    """Who is asking: a login session (cookie and CSRF token) or an API token (``token_id``;
    no CSRF token, as a bearer header is never sent by a browser on its own)."""

    user: User
    csrf: str
    expires_at: int
    token_id: str | None = None


@dataclass(frozen=True)
class ApiToken:
    id: str
    user: str
    role: str
    label: str
    created_at: str
    expires_at: int | None
    last_used_at: str | None


def _hasher():
    try:
        from argon2 import PasswordHasher
    except ImportError as exc:
        raise DarkscopeError("users and darkscope serve need argon2-cffi: pip install "
                             "'darkscope[web]'") from exc
    return PasswordHasher()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Users and sessions of one store file (shares the review store's connection)."""

    def __init__(self, store: ReviewStore) -> None:
        self._store = store
        self._db: sqlite3.Connection = store._db
        self._hasher = _hasher()
        self._dummy = self._hasher.hash(secrets.token_hex(16))

    def add(self, name: str, password: str, role: str) -> User:
        if not _NAME.match(name):
            raise UsageError(f"user name {name!r}: letters, digits and . _ @ - only (1-64)")
        _check(password, role)
        user = User(name, role, _now())
        try:
            self._db.execute("INSERT INTO users VALUES (?,?,?,?)",
                             (name, role, self._hasher.hash(password), user.created_at))
        except sqlite3.IntegrityError:
            raise UsageError(f"user {name!r} exists already") from None
        return user

    def set_password(self, name: str, password: str) -> None:
        _check(password, "viewer")
        self._update(name, "UPDATE users SET password_hash=? WHERE name=?",
                     self._hasher.hash(password))
        self._db.execute("DELETE FROM sessions WHERE user=?", (name,))  # log out everywhere

    def set_role(self, name: str, role: str) -> None:
        _check(None, role)
        if role != "admin":
            self._keep_an_admin(name)
        self._update(name, "UPDATE users SET role=? WHERE name=?", role)

    def remove(self, name: str) -> None:
        self._keep_an_admin(name)
        self._db.execute("DELETE FROM sessions WHERE user=?", (name,))
        self._db.execute("DELETE FROM api_tokens WHERE user=?", (name,))
        if self._db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount == 0:
            raise UsageError(f"no user {name!r}")

    def _keep_an_admin(self, leaving: str) -> None:
        others = self._db.execute("SELECT count(*) FROM users WHERE role='admin' AND name<>?",
                                  (leaving,)).fetchone()[0]
        user = self.get(leaving)
        if user is not None and user.role == "admin" and others == 0:
            raise UsageError(f"{leaving!r} is the last admin: make another admin first")

    def _update(self, name: str, sql: str, value: str) -> None:
        if self._db.execute(sql, (value, name)).rowcount == 0:
            raise UsageError(f"no user {name!r}")

    def users(self) -> list[User]:
        return [User(*row) for row in self._db.execute(
            "SELECT name, role, created_at FROM users ORDER BY name")]

    def get(self, name: str) -> User | None:
        row = self._db.execute("SELECT name, role, created_at FROM users WHERE name=?",
                               (name,)).fetchone()
        return User(*row) if row else None

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right; as slow for an unknown name as a known one."""
        from argon2.exceptions import VerificationError

        row = self._db.execute("SELECT password_hash FROM users WHERE name=?",
                               (name,)).fetchone()
        try:
            self._hasher.verify(row[0] if row else self._dummy, password)
        except VerificationError:
            return None
        if row is None:
            return None
        if self._hasher.check_needs_rehash(row[0]):
            self._db.execute("UPDATE users SET password_hash=? WHERE name=?",
                             (self._hasher.hash(password), name))
        return self.get(name)

    def open_session(self, user: User) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), int(time.time()) + SESSION_S)
        self._db.execute("DELETE FROM sessions WHERE expires_at < ?", (int(time.time()),))
        self._db.execute("INSERT INTO sessions VALUES (?,?,?,?,?)",
                         (_token_hash(token), user.name, session.csrf, _now(),
                          session.expires_at))
        return token, session

    def session(self, token: str) -> Session | None:
        row = self._db.execute(
            "SELECT u.name, u.role, u.created_at, s.csrf, s.expires_at FROM sessions s "
            "JOIN users u ON u.name = s.user WHERE s.token_hash=?",
            (_token_hash(token),)).fetchone()
        if row is None or row[4] < time.time():
            return None
        return Session(User(*row[:3]), row[3], row[4])

    def close_session(self, token: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE token_hash=?", (_token_hash(token),))

    def create_token(self, name: str, label: str, role: str | None = None,
                     days: int | None = None) -> tuple[str, ApiToken]:
        """A new API token for ``name`` (shown once: only its hash is kept)."""
        user = self.get(name)
        if user is None:
            raise UsageError(f"no user {name!r}")
        role = role or user.role
        _check(None, role)
        if not user.can(role):
            raise UsageError(f"{name} is {user.role}: a token cannot hold more ({role})")
        label = label.strip()
        if not 1 <= len(label) <= 100:
            raise UsageError("a token needs a label of 1-100 characters (what uses it)")
        if days is not None and days < 1:
            raise UsageError("a token lasts at least one day")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _token_hash(token)
        expires = int(time.time()) + days * 86400 if days else None
        record = ApiToken(digest[:12], name, role, label, _now(), expires, None)
        self._db.execute("INSERT INTO api_tokens VALUES (?,?,?,?,?,?,?,?)",
                         (record.id, digest, name, role, label, record.created_at, expires,
                          None))
        return token, record

    def tokens(self, name: str | None = None) -> list[ApiToken]:
        where, args = ("WHERE user=?", (name,)) if name else ("", ())
        return [ApiToken(*row) for row in self._db.execute(
            "SELECT id, user, role, label, created_at, expires_at, last_used_at FROM "
            f"api_tokens {where} ORDER BY user, created_at", args)]

    def revoke_token(self, token_id: str) -> None:
        if self._db.execute("DELETE FROM api_tokens WHERE id=?", (token_id,)).rowcount == 0:
            raise UsageError(f"no API token {token_id!r}")

    def token_session(self, token: str) -> Session | None:
        """The session an ``Authorization: Bearer`` token stands for, with the lower of the
        token's and the user's role; None if unknown, expired or revoked."""
        row = self._db.execute(
            "SELECT u.name, u.role, u.created_at, t.role, t.expires_at, t.id, t.last_used_at "
            "FROM api_tokens t JOIN users u ON u.name = t.user WHERE t.token_hash=?",
            (_token_hash(token),)).fetchone()
        now = time.time()
        if row is None or (row[4] is not None and row[4] < now):
            return None
        name, user_role, created, token_role, expires, token_id, used = row
        role = min(user_role, token_role, key=ROLES.index)
        if used is None or used[:16] != _now()[:16]:   # at most one write a minute per token
            self._db.execute("UPDATE api_tokens SET last_used_at=? WHERE id=?",
                             (_now(), token_id))
        return Session(User(name, role, created), "", expires or 0, token_id)


def _check(password: str | None, role: str) -> None:
    if role not in ROLES:
        raise UsageError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UsageError(f"a password needs at least {MIN_PASSWORD} characters")
