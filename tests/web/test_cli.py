"""`darkscope users` and `darkscope serve` mistakes: one clear line, exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("argon2")
DARKSCOPE = str(Path(sys.executable).parent / "darkscope")


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([DARKSCOPE, *args], input=stdin, capture_output=True, text=True,
                          timeout=60)


def test_users_add_list_role_passwd_remove(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    added = _run("users", "add", "alice", "--role", "admin", "--password-stdin", "--store",
                 store, stdin="a long enough password\n")
    assert added.returncode == 0 and "alice (admin)" in added.stdout
    again = _run("users", "add", "alice", "--password-stdin", "--store", store,
                 stdin="a long enough password\n")
    assert again.returncode == 2 and "exists already" in again.stderr
    assert "Traceback" not in again.stderr
    short = _run("users", "add", "bob", "--password-stdin", "--store", store, stdin="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    last = _run("users", "role", "alice", "expert", "--store", store)
    assert last.returncode == 2 and "last admin" in last.stderr  # someone must manage users
    assert _run("users", "add", "root", "--role", "admin", "--password-stdin", "--store", store,
                stdin="a long enough password\n").returncode == 0
    assert _run("users", "role", "alice", "expert", "--store", store).returncode == 0
    listed = _run("users", "list", "--store", store).stdout.split()
    assert listed[:2] == ["alice", "expert"]
    changed = _run("users", "passwd", "alice", "--password-stdin", "--store", store,
                   stdin="another long password\n")
    assert changed.returncode == 0
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    with ReviewStore(store) as opened:
        users = UserStore(opened)
        assert users.authenticate("alice", "a long enough password") is None
        assert users.authenticate("alice", "another long password").role == "expert"
        hashed = opened._db.execute("SELECT password_hash FROM users").fetchone()[0]
        assert hashed.startswith("$argon2id$") and "another" not in hashed
    assert _run("users", "remove", "alice", "--store", store).returncode == 0
    gone = _run("users", "remove", "alice", "--store", store)
    assert gone.returncode == 2 and "no user 'alice'" in gone.stderr


def test_serve_without_a_store_says_how_to_make_the_first_admin(tmp_path: Path) -> None:
    answer = _run("serve", "--data", str(tmp_path), "--store", str(tmp_path / "none.db"))
    assert answer.returncode == 2
    assert "darkscope users add NAME --role admin" in answer.stderr
    assert not (tmp_path / "none.db").exists()


def test_serve_listens_on_loopback_port_8080_unless_told_otherwise() -> None:
    from darkscope.web.cli import serve

    defaults = {p.name: p.default for p in serve.params}
    assert (defaults["host"], defaults["port"]) == ("127.0.0.1", 8080)


def test_api_tokens_from_the_cli_are_printed_once_and_stored_hashed(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    _run("users", "add", "carol", "--role", "expert", "--password-stdin", "--store", store,
         stdin="a long enough password\n")
    too_much = _run("users", "token", "add", "carol", "--label", "siem", "--role", "admin",
                    "--store", store)
    assert too_much.returncode == 2 and "cannot hold more" in too_much.stderr
    made = _run("users", "token", "add", "carol", "--label", "SIEM pull", "--role", "viewer",
                "--days", "30", "--store", store)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()   # stdout holds the token alone, for scripts
    assert secret.startswith("dsk_") and len(secret) > 40
    listed = _run("users", "token", "list", "--store", store).stdout
    token_id, user, role, label = listed.split("\t")[:4]
    assert (user, role, label) == ("carol", "viewer", "SIEM pull")
    assert secret not in listed and secret not in Path(store).read_bytes().decode("latin-1")

    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    with ReviewStore(store) as opened:
        session = UserStore(opened).token_session(secret)
        assert session.user.name == "carol" and session.user.role == "viewer"
        assert UserStore(opened).token_session(secret + "x") is None
    assert _run("users", "token", "revoke", token_id, "--store", store).returncode == 0
    with ReviewStore(store) as opened:
        assert UserStore(opened).token_session(secret) is None
    gone = _run("users", "token", "revoke", token_id, "--store", store)
    assert gone.returncode == 2 and "no API token" in gone.stderr
