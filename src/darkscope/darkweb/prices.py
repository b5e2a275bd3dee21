"""Price normalisation: market prices come as "USD 12.50", "$1,250", "0.0031 BTC", "฿ 0.01"."""

from __future__ import annotations

import re

CURRENCY_ALIASES = {
    "usd": "USD", "$": "USD", "us$": "USD", "eur": "EUR", "€": "EUR", "gbp": "GBP", "£": "GBP",
    "btc": "BTC", "฿": "BTC", "₿": "BTC", "xbt": "BTC", "xmr": "XMR", "ɱ": "XMR",
    "ltc": "LTC", "eth": "ETH", "bch": "BCH", "zec": "ZEC",
}
CURRENCIES = frozenset(CURRENCY_ALIASES.values())
_SYMBOLS = "|".join(re.escape(k) for k in sorted(CURRENCY_ALIASES, key=len, reverse=True))
_NUMBER = r"\d[\d,]*(?:\.\d+)?|\.\d+"
_PRICE = re.compile(
    rf"(?P<pre>{_SYMBOLS})?\s*(?P<num>{_NUMBER})\s*(?P<post>{_SYMBOLS})?(?![a-z])",
    re.IGNORECASE)


def parse_price(text: str | None) -> tuple[float | None, str | None]:
    """``(amount, ISO-like currency code)`` of the first price in ``text``; ``(None, None)``
    when none is found. Thousands separators (``,``) are dropped."""
    if not text:
        return None, None
    for match in _PRICE.finditer(text):
        symbol = match.group("pre") or match.group("post")
        if symbol is None:
            continue
        number = match.group("num").replace(",", "")
        try:
            return float(number), CURRENCY_ALIASES[symbol.lower()]
        except ValueError:
            continue
    return None, None


def find_price(text: str) -> bool:
    """Whether ``text`` contains a price with a currency (used to spot listing blocks)."""
    return parse_price(text)[1] is not None
