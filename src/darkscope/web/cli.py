"""``darkscope serve`` (the analysts' and experts' web application) and ``darkscope users``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from darkscope.clikit import common
from darkscope.errors import UsageError

_STORE = click.option("--store", "store_path", envvar="DARKSCOPE_STORE", default="darkscope.db",
                      show_default=True, type=click.Path(dir_okay=False),
                      help="Review store holding users, sessions, the queue and labels.")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@click.group(name="users")
def users() -> None:
    """Dashboard users (viewer, expert, admin): the first admin is made here.

    \b
    darkscope users add alice --role admin        (asks for the password twice)
    echo "$PW" | darkscope users add bob --role expert --password-stdin
    """


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "expert", "admin"]), default="viewer",
              show_default=True, help="viewer reads; expert also labels; admin also "
                                      "manages users.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin's first "
                                                      "line instead of asking.")
@_STORE
@common
def add(name: str, role: str, password_stdin: bool, store_path: str) -> None:
    """Add a user."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    password = _password(password_stdin)
    with ReviewStore(store_path) as store:
        user = UserStore(store).add(name, password, role)
    click.echo(f"user {user.name} ({user.role}) added to {store_path}")


@users.command("list")
@_STORE
@common
def list_users(store_path: str) -> None:
    """List users and roles."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    if not Path(store_path).exists():
        raise UsageError(f"{store_path}: no store yet (darkscope users add makes one)")
    with ReviewStore(store_path) as store:
        for user in UserStore(store).users():
            click.echo(f"{user.name}\t{user.role}\t{user.created_at}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from stdin.")
@_STORE
@common
def passwd(name: str, password_stdin: bool, store_path: str) -> None:
    """Set a user's password (their sessions end)."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    password = _password(password_stdin)
    with ReviewStore(store_path) as store:
        UserStore(store).set_password(name, password)
    click.echo(f"password of {name} changed; their sessions are closed")


@users.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(["viewer", "expert", "admin"]))
@_STORE
@common
def role(name: str, role: str, store_path: str) -> None:
    """Change a user's role."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    with ReviewStore(store_path) as store:
        UserStore(store).set_role(name, role)
    click.echo(f"{name} is now {role}")


@users.command("remove")
@click.argument("name")
@_STORE
@common
def remove(name: str, store_path: str) -> None:
    """Remove a user (their labels stay in the history)."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    with ReviewStore(store_path) as store:
        UserStore(store).remove(name)
    click.echo(f"user {name} removed")


@users.group("token")
def token() -> None:
    """API tokens: how SOC tools call /api/v1 (``Authorization: Bearer TOKEN``).

    \b
    darkscope users token add alice --label "SIEM pull" --role viewer --days 90
    darkscope users token list
    darkscope users token revoke 3f2a9c01d4e5
    """


@token.command("add")
@click.argument("name")
@click.option("--label", required=True, help="What will use the token (shown in lists).")
@click.option("--role", type=click.Choice(["viewer", "expert", "admin"]), default=None,
              help="At most the user's role (default: the user's).")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Expire after this many days (default: until revoked).")
@_STORE
@common
def token_add(name: str, label: str, role: str | None, days: int | None,
              store_path: str) -> None:
    """Create a token for user NAME; it is printed once, on stdout, and never stored."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    with ReviewStore(store_path) as store:
        secret, record = UserStore(store).create_token(name, label, role, days)
    click.echo(f"API token {record.id} for {name} ({record.role}); copy it now:", err=True)
    click.echo(secret)


@token.command("list")
@_STORE
@common
def token_list(store_path: str) -> None:
    """List tokens (id, user, role, label, created, expires, last used); never the secret."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    if not Path(store_path).exists():
        raise UsageError(f"{store_path}: no store yet (darkscope users add makes one)")
    with ReviewStore(store_path) as store:
        for t in UserStore(store).tokens():
            expires = (datetime.fromtimestamp(t.expires_at, UTC).isoformat()
                       if t.expires_at else "never")
            click.echo("\t".join((t.id, t.user, t.role, t.label, t.created_at, expires,
                                  t.last_used_at or "never")))


@token.command("revoke")
@click.argument("token_id")
@_STORE
@common
def token_revoke(token_id: str, store_path: str) -> None:
    """Revoke a token by its id (from ``list``); it stops working at once."""
    from darkscope.store import ReviewStore
    from darkscope.store.users import UserStore

    with ReviewStore(store_path) as store:
        UserStore(store).revoke_token(token_id)
    click.echo(f"API token {token_id} revoked")


@click.command(name="serve")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, exists=True),
              required=True, help="Directory of darkscope outputs (monitor OUT, packet "
                                  "tables, verdicts, victims, rules, hosts, listings, topics), "
                                  "found by schema whatever the names.")
@_STORE
@click.option("--model", "model_path", type=click.Path(file_okay=False, exists=True),
              default=None, help="Backscatter model whose update the review page previews "
                                 "(default: the newest model under --data).")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
              help="Summaries of --data the pages read (DuckDB file, derived: delete it any "
                   "time; about 16 bytes per packet). Default: STORE.cache.duckdb.")
@click.option("--ppml-state", "ppml_state", type=click.Path(file_okay=False, exists=True),
              default=None, help="A PP-ELM aggregator's --state directory, shown read only on "
                                 "the PP-ELM page (rounds, parties, status, reported accuracy).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (put a TLS reverse proxy in front for others).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--secure-cookies/--no-secure-cookies", default=False, show_default=True,
              help="Mark cookies Secure and send HSTS: set this behind a TLS proxy.")
@click.option("--taxii-operator", default="darkscope telescope", show_default=True,
              help="TAXII: the identity that sighted everything (your organisation).")
@click.option("--taxii-victims", type=click.Choice(["full", "prefix24", "none"]),
              default="prefix24", show_default=True,
              help="TAXII: DDoS victims as full addresses, their /24, or left out.")
@click.option("--taxii-expert-notes", is_flag=True,
              help="TAXII: also share the experts' labels (opinions) and notes.")
@click.option("--taxii-allowlist", "taxii_allowlists", multiple=True,
              type=click.Path(exists=True, dir_okay=False),
              help="TAXII: more known scanners to leave out (TOML); repeatable.")
@common
def serve(data_dir: str, store_path: str, model_path: str | None, cache_path: str | None,
          ppml_state: str | None, host: str, port: int, secure_cookies: bool,
          taxii_operator: str, taxii_victims: str, taxii_expert_notes: bool,
          taxii_allowlists: tuple[str, ...]) -> None:
    """Serve the dashboard: overview, IP pages, review, attacks, rules, map, dark web, PP-ELM,
    and a TAXII 2.1 server of the findings.

    Every page has a JSON API under /api/v1 (OpenAPI at /api/openapi.json). TAXII 2.1 clients
    start at /taxii2/ (collections scanners, indicators, rules, victims; API token or Basic).
    Nothing is shown before login; create the first admin with
    `darkscope users add NAME --role admin`.
    Example: darkscope serve --data /srv/darkscope --store /srv/darkscope/darkscope.db
    """
    from darkscope.web.app import Settings, TaxiiSettings, run

    if not Path(store_path).exists():
        raise UsageError(f"{store_path}: no store, so nobody could log in; create the first "
                         "admin with: darkscope users add NAME --role admin --store "
                         f"{store_path}")
    run(Settings(Path(data_dir), Path(store_path), Path(model_path) if model_path else None,
                 cache=Path(cache_path) if cache_path else None,
                 ppml_state=Path(ppml_state) if ppml_state else None,
                 secure_cookies=secure_cookies,
                 taxii=TaxiiSettings(taxii_operator, taxii_victims, taxii_expert_notes,
                                     tuple(Path(a) for a in taxii_allowlists))), host, port)
