"""``darkscope crawl`` and ``darkscope parse``: thin wrappers over the crawler and parsers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from darkscope.clikit import common, output_option, overwrite_option
from darkscope.darkweb.connection import Connection, ProxyConfig
from darkscope.darkweb.cookies import cookies_for_hosts, load_cookies, parse_cookie_pairs
from darkscope.darkweb.crawler import DEFAULT_USER_AGENT, CrawlConfig, Crawler
from darkscope.darkweb.extract import generations, login_walls, parse_generation, recheck
from darkscope.darkweb.listings import (
    CHANGES_SCHEMA,
    PARSE_ERRORS_SCHEMA,
    changes,
    write_listings,
    write_rows,
)
from darkscope.darkweb.templates import Template, load_template
from darkscope.darkweb.urls import is_onion
from darkscope.errors import DarkscopeError, UsageError
from darkscope.io import check_output
from darkscope.progress import track


def _template(market: str | None, allow_hook: bool) -> Template | None:
    return None if market is None else load_template(market, allow_hook)


allow_hook_option = click.option(
    "--allow-hook", is_flag=True,
    help="Run the market template's Python hook (a file beside the template). Needed each "
         "time, --resume included: a template is code you should have read.")


def write_outputs(directory: Path, template: Template | None, max_depth: int,
                  output: Path | None = None, fmt: str | None = None) -> dict[str, int]:
    """Listings, parse errors and (after a re-crawl) changes of the latest generation."""
    generation = generations(directory)
    with track("parsing archive", unit="pages") as progress:
        listings, errors = parse_generation(directory, template, generation, progress)
    write_listings(listings, output or directory / "listings.jsonl", fmt)
    write_rows(({"url": e.url, "error": e.error} for e in errors), PARSE_ERRORS_SCHEMA,
               directory / "parse-errors.jsonl")
    summary = {"listings": len(listings), "parse_errors": len(errors)}
    if generation > 1:
        sources: dict[str, str] = {}
        previous, _ = parse_generation(directory, template, generation - 1, sources=sources)
        diff = changes(previous, listings,
                       recheck(directory, generation, sources, max_depth))
        write_rows(diff, CHANGES_SCHEMA, directory / "changes.jsonl")
        for kind in ("new", "changed", "removed", "not re-crawled"):
            summary[kind] = sum(1 for d in diff if d["change"] == kind)
    return summary


# CLI option names of list-valued crawl settings -> CrawlConfig fields.
_CONFIG_NAMES = {"allow_host": "allow_hosts", "allow_path": "allow_paths",
                 "deny_path": "deny_paths"}


def _refuse_onion_without_proxy(config: CrawlConfig, direct: bool) -> None:
    """--direct cannot reach .onion: refuse up front instead of failing every URL."""
    onion = [s for s in [*config.seeds, *config.allow_hosts]
             if is_onion(s if "://" in s else f"http://{s}/")]
    if direct and onion:
        raise UsageError(f"{onion[0]} is an .onion address: it needs the Tor proxy "
                         "(--proxy socks5h://HOST:PORT), not --direct")


@click.command("crawl")
@click.argument("seeds", nargs=-1)
@click.option("--proxy", help="Tor SOCKS port as socks5h://HOST:PORT (names resolve in Tor).")
@click.option("--direct", is_flag=True,
              help="No proxy: clearnet sites only; .onion addresses are refused.")
@click.option("--control", help="Tor control port HOST:PORT for health checks and NEWNYM.")
@click.option("--control-password", envvar="DARKSCOPE_TOR_PASSWORD",
              help="Control port password (else cookie authentication).")
@click.option("--market", help="Market template: a TOML file or a built-in name (testmarket). "
                               "Without it a generic parser finds repeated listing blocks.")
@output_option(help="Crawl directory (state.sqlite, warc/, listings.jsonl).")
@click.option("--resume", is_flag=True,
              help="Continue the crawl in the output directory (same limits, template and "
                   "cookies as before unless given again).")
@click.option("--recrawl", is_flag=True,
              help="Crawl again into the same directory and record new/changed/removed listings.")
@allow_hook_option
@click.option("--cookies", type=click.Path(exists=True, dir_okay=False),
              help="Browser cookie export (Netscape cookies.txt or JSON) for a login.")
@click.option("--cookie", "cookie_pairs", multiple=True, metavar="NAME=VALUE",
              help="A session cookie for the seeds' hosts (repeatable; not stored in the "
                   "crawl state: give it again with --resume).")
@click.option("--concurrency", type=int, default=16, show_default=True,
              help="Requests in flight over all sites.")
@click.option("--per-site", type=int, default=4, show_default=True,
              help="Requests in flight per site.")
@click.option("--delay", type=float, default=0.0, show_default=True,
              help="Seconds between request starts on one site.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds for one request (onion services are slow).")
@click.option("--retries", type=int, default=3, show_default=True,
              help="Retries of a failed request, with exponential backoff.")
@click.option("--backoff", type=float, default=2.0, show_default=True,
              help="Seconds before the first retry; doubled for each further one.")
@click.option("--new-circuit-after", type=int, default=5, show_default=True,
              help="Consecutive failures on a site before it gets new Tor circuits.")
@click.option("--max-bytes", type=int, default=2_000_000, show_default=True,
              help="Largest body kept; longer ones are cut and marked truncated.")
@click.option("--max-depth", type=int, default=10, show_default=True, help="Link depth limit.")
@click.option("--max-pages", type=int, default=0, help="Page budget (0: none).")
@click.option("--max-redirects", type=int, default=5, show_default=True,
              help="Redirect hops followed from one URL; more are recorded as an error.")
@click.option("--user-agent", default=DEFAULT_USER_AGENT, show_default=True,
              help="User-Agent header (default: Tor Browser's, the commonest on onion sites).")
@click.option("--allow-host", multiple=True, help="Host[:port] in scope (default: the seeds').")
@click.option("--allow-path", multiple=True, help="Regex a path must match (repeatable).")
@click.option("--deny-path", multiple=True, help="Regex of paths never fetched (repeatable).")
@common
def crawl_command(seeds: tuple[str, ...], proxy: str | None, direct: bool, control: str | None,
                  control_password: str | None, market: str | None, output: str, resume: bool,
                  recrawl: bool, cookies: str | None, cookie_pairs: tuple[str, ...],
                  allow_hook: bool, **limits: Any) -> None:
    """Crawl market SEEDS through Tor and archive every page as WARC.

    Everything is kept in the output directory: the frontier (state.sqlite), the archive
    (warc/*.warc.gz), and after the crawl listings.jsonl and parse-errors.jsonl. A crawl killed
    at any point continues with --resume without losing or repeating a fetched page.

    \b
    darkscope crawl http://MARKET.onion/ --proxy socks5h://127.0.0.1:9050 \\
        --control 127.0.0.1:9051 --market market.toml --cookies cookies.txt -o crawl/
    """
    if resume and recrawl:
        raise UsageError("--resume and --recrawl exclude each other")
    if (proxy is None) == (not direct):
        raise UsageError("give --proxy socks5h://HOST:PORT (Tor) or --direct (clearnet only)")
    directory = Path(output)
    mode = "resume" if resume else "recrawl" if recrawl else "new"
    # A bad template or cookie file leaves no half-made crawl that would demand --resume.
    template = _template(market, allow_hook)
    session = load_cookies(cookies) if cookies else None
    pairs = parse_cookie_pairs(list(cookie_pairs))
    fields = {_CONFIG_NAMES.get(k, k): list(v) if isinstance(v, tuple) else v
              for k, v in limits.items()}
    if mode == "resume":
        frontier = Crawler.prepare(directory, CrawlConfig(list(seeds)), mode)
        # Limits given again on the command line replace the stored ones (and are kept).
        context = click.get_current_context()
        given = {_CONFIG_NAMES.get(k, k): fields[_CONFIG_NAMES.get(k, k)] for k in limits
                 if context.get_parameter_source(k) in (ParameterSource.COMMANDLINE,
                                                         ParameterSource.ENVIRONMENT)}
        config = CrawlConfig(**{**json.loads(frontier.get_meta("config") or "{}"), **given})
        try:
            _refuse_onion_without_proxy(config, direct)
            config.scope()
        except UsageError:
            frontier.close()
            raise
        frontier.set_meta("config", json.dumps(asdict(config)))
    else:
        if not seeds:
            raise UsageError("give at least one seed URL")
        config = CrawlConfig(seeds=list(seeds), **fields)
        _refuse_onion_without_proxy(config, direct)
        config.scope()  # bad --allow-host or path pattern: say so before creating anything
        frontier = Crawler.prepare(directory, config, mode)
    # Template and cookies are remembered, so --resume needs only the proxy.
    if market is None:
        market = frontier.get_meta("market")
        try:
            template = _template(market, allow_hook)
        except Exception:
            frontier.close()
            raise
    if cookies is None and frontier.get_meta("cookies"):
        try:
            session = load_cookies(frontier.get_meta("cookies"))
        except Exception:
            frontier.close()
            raise
    cookies = cookies or frontier.get_meta("cookies")
    for key, value in (("market", market), ("cookies", cookies)):
        if value is not None:
            frontier.set_meta(key, str(Path(value).resolve()) if Path(value).exists() else value)
    session = (session or []) + cookies_for_hosts(pairs, config.seeds)
    tor = None
    if control is not None:
        from darkscope.darkweb.torcontrol import TorControl
        tor = TorControl(control, control_password)
        tor.check_health()
    connection = Connection(ProxyConfig.parse(proxy), per_site_connections=config.per_site,
                            user_agent=config.user_agent)
    crawler = Crawler(directory, config, connection, template, session or None, tor)
    try:
        with track("crawling", unit="pages") as progress:
            crawler.on_page = lambda _: progress.advance(1)
            stats = asyncio.run(crawler.run(frontier))
        counts = frontier.counts()
    finally:
        frontier.close()
        if tor is not None:
            tor.close()
    summary = write_outputs(directory, template, config.max_depth)
    click.echo(json.dumps({**stats.as_dict(), "states": counts, **summary}))
    if summary["listings"] == 0:
        _refuse_login_wall(directory, bool(session))


def _refuse_login_wall(directory: Path, had_cookies: bool) -> None:
    """No listing and a redirect to a login form: the crawl saw the login page, not the
    market. Exit non-zero with what to do, rather than report an empty market as a success."""
    walls = login_walls(directory)
    if not walls:
        return
    page, login = walls[0]
    more = f" (and {len(walls) - 1} more pages)" if len(walls) > 1 else ""
    cause = ("the session cookie given was not accepted (expired, or for another host)"
             if had_cookies else "no session cookie was given")
    raise DarkscopeError(
        f"the crawl hit a login wall: {page} redirected to the login form {login}{more} and no "
        f"listing was found; {cause}. Log in with a browser, then crawl again with --recrawl "
        "and --cookie NAME=VALUE or --cookies cookies.txt (docs/darkweb.md, \"Logging in\")")


@click.command("parse")
@click.argument("crawl_dir", type=click.Path(exists=True, file_okay=False))
@output_option(help="Listings file: .jsonl (JSON Lines) or .parquet.")
@click.option("--market", help="Market template (TOML file or built-in name); "
                                "without it the generic parser is used.")
@click.option("--generation", type=int, default=None,
              help="Which crawl pass to parse (default: the latest).")
@allow_hook_option
@overwrite_option
@common
def parse_command(crawl_dir: str, output: str, market: str | None, generation: int | None,
                  allow_hook: bool, overwrite: bool) -> None:
    """Re-parse a crawl's WARC archive into listings, without crawling again.

    Use it after writing or fixing a market template. Parse errors (hostile or broken pages)
    go to stderr as one JSON object per line with the page URL.
    """
    check_output(output, overwrite)
    with track("parsing archive", unit="pages") as progress:
        listings, errors = parse_generation(crawl_dir, _template(market, allow_hook), generation,
                                           progress)
    write_listings(listings, output, overwrite=overwrite)
    for error in errors:
        click.echo(json.dumps({"url": error.url, "error": error.error}), err=True)
    click.echo(json.dumps({"listings": len(listings), "parse_errors": len(errors)}))
