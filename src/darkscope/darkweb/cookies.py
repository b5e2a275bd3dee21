"""Session cookies exported from a browser, so a crawl can pass a login a person solved.

Markets put listings behind a login with a CAPTCHA; darkscope never tries to solve or bypass
it. A person logs in with Tor Browser, exports the cookies (Netscape ``cookies.txt`` or the JSON
list browser extensions write) and the crawl sends them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.cookiejar import LoadError, MozillaCookieJar
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from darkscope.errors import InputFormatError, UsageError


@dataclass(frozen=True)
class Cookie:
    name: str
    value: str
    domain: str
    path: str = "/"
    subdomains: bool = False


def load_cookies(path: str | Path) -> list[Cookie]:
    """Read a Netscape ``cookies.txt`` or a JSON export (list of {name, value, domain, ...})."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFormatError(path, f"cannot read cookies: {exc}") from None
    if text.lstrip().startswith(("[", "{")):
        return _from_json(path, text)
    jar = MozillaCookieJar()
    try:
        jar.load(str(path), ignore_discard=True, ignore_expires=True)
    except LoadError as exc:
        raise InputFormatError(
            path, f"not a Netscape cookies.txt (first line '# Netscape HTTP Cookie File') "
                  f"nor a JSON cookie list: {exc}") from None
    return [Cookie(c.name, c.value or "", c.domain.lstrip("."), c.path or "/",
                   c.domain_specified and c.domain.startswith(".")) for c in jar]


def _from_json(path: Path, text: str) -> list[Cookie]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(path, f"invalid JSON: {exc.msg}", offset=exc.pos) from None
    if isinstance(data, dict):
        data = data.get("cookies", [])
    cookies = []
    for index, item in enumerate(data if isinstance(data, list) else []):
        if not isinstance(item, dict) or not all(k in item for k in ("name", "value", "domain")):
            raise InputFormatError(path, f"cookie {index}: needs name, value and domain")
        domain = str(item["domain"])
        cookies.append(Cookie(str(item["name"]), str(item["value"]), domain.lstrip("."),
                              str(item.get("path", "/")),
                              not item.get("hostOnly", not domain.startswith("."))))
    if not cookies:
        raise InputFormatError(path, "no cookies found")
    return cookies


def parse_cookie_pairs(pairs: list[str]) -> list[tuple[str, str]]:
    """``NAME=VALUE`` strings, as a test market or a browser's developer tools show them."""
    parsed = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name or any(c in name for c in " ;,\t"):
            raise UsageError(f"--cookie {pair!r}: expected NAME=VALUE (e.g. session=abc123)")
        parsed.append((name, value.strip()))
    return parsed


def cookies_for_hosts(pairs: list[tuple[str, str]], urls: list[str]) -> list[Cookie]:
    """The cookies ``pairs`` for each host of ``urls`` (the crawl's own seeds)."""
    hosts = sorted({urlsplit(url).hostname or "" for url in urls} - {""})
    return [Cookie(name, value, host) for name, value in pairs for host in hosts]


def cookie_jar(cookies: list[Cookie]) -> aiohttp.CookieJar:
    """An aiohttp jar holding ``cookies``; ``unsafe`` so loopback IPs keep their cookies."""
    jar = aiohttp.CookieJar(unsafe=True, quote_cookie=False)
    for cookie in cookies:
        morsel: SimpleCookie = SimpleCookie()
        morsel[cookie.name] = cookie.value
        morsel[cookie.name]["path"] = cookie.path
        if cookie.subdomains:
            morsel[cookie.name]["domain"] = cookie.domain
        jar.update_cookies(morsel, URL.build(scheme="http", host=cookie.domain))
    return jar
