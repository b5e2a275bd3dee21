"""Price normalisation: market prices come as "USD 12.50", "$1,250", "0.0031 BTC", "฿ 0.01",
"1.234,56 EUR", "1 500,00 €" or "mBTC 500".

Separators are read the way the number itself shows them: with both ``.`` and ``,`` the last one
is the decimal mark; a lone ``,`` followed by exactly three digits groups thousands, by one or
two digits it is a decimal comma; a group that fits neither reading makes the price unknown
(None) rather than a wrong number. A currency word must stand alone ("Amateur 3" is no EUR).
"""

from __future__ import annotations

import re

CURRENCY_ALIASES = {
    "usd": "USD", "$": "USD", "us$": "USD", "eur": "EUR", "€": "EUR", "gbp": "GBP", "£": "GBP",
    "btc": "BTC", "฿": "BTC", "₿": "BTC", "xbt": "BTC", "mbtc": "BTC", "xmr": "XMR", "ɱ": "XMR",
    "ltc": "LTC", "eth": "ETH", "bch": "BCH", "zec": "ZEC",
}
UNITS_PER_CURRENCY = {"mbtc": 1000}  # millibitcoin: 1000 mBTC = 1 BTC
CURRENCIES = frozenset(CURRENCY_ALIASES.values())
_SYMBOLS = "|".join(re.escape(k) for k in sorted(CURRENCY_ALIASES, key=len, reverse=True))
_GROUP_SPACE = "[ \u00a0\u202f]"
# Digits with ``.``/``,`` separators, or thousands grouped by (no-break) spaces: "1 500,00".
_NUMBER = (rf"\d{{1,3}}(?:{_GROUP_SPACE}\d{{3}})+(?!\d)(?:[.,]\d{{1,2}}(?!\d))?"
           r"|\d(?:[\d.,]*\d)?|[.,]\d+")
_NOT_LETTER = r"[^\W\d_]"
_PRICE = re.compile(
    rf"(?:(?<!{_NOT_LETTER})(?P<pre>{_SYMBOLS})(?!{_NOT_LETTER}))?\s*"
    rf"(?<![\d.,])(?P<num>{_NUMBER})"
    rf"(?:\s*(?P<post>{_SYMBOLS})(?!{_NOT_LETTER}))?",
    re.IGNORECASE)
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+|\d+")


def parse_amount(text: str) -> float | None:
    """The value of one number as written, or None when its separators are ambiguous."""
    digits = re.sub(_GROUP_SPACE, "", text)
    if "," in digits and "." in digits:
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        whole, _, fraction = digits.rpartition(decimal)
        grouping = "." if decimal == "," else ","
        if not re.fullmatch(rf"\d{{1,3}}(?:{re.escape(grouping)}\d{{3}})*", whole) \
                or not fraction.isdigit():
            return None
        return float(whole.replace(grouping, "") + "." + fraction)
    for mark in (",", "."):
        if mark not in digits:
            continue
        whole, _, fraction = digits.rpartition(mark)
        if digits.count(mark) > 1:
            grouped = re.fullmatch(rf"\d{{1,3}}(?:{re.escape(mark)}\d{{3}})+", digits)
            return float(digits.replace(mark, "")) if grouped else None
        if mark == "," and len(fraction) == 3 and whole:
            return float(whole + fraction)  # "1,250": thousands
        if mark == "," and len(fraction) > 3:
            return None
        return float((whole or "0") + "." + fraction)
    return float(digits)


def parse_price(text: str | None) -> tuple[float | None, str | None]:
    """``(amount, ISO-like currency code)`` of the first price in ``text``; ``(None, None)``
    when none is found or its number is ambiguous."""
    if not text:
        return None, None
    for match in _PRICE.finditer(text):
        symbol = match.group("pre") or match.group("post")
        if symbol is None:
            continue
        amount = parse_amount(match.group("num"))
        if amount is None:
            return None, None
        unit = symbol.lower()
        return amount / UNITS_PER_CURRENCY.get(unit, 1), CURRENCY_ALIASES[unit]
    return None, None


def find_price(text: str) -> bool:
    """Whether ``text`` contains a price with a currency (used to spot listing blocks)."""
    return parse_price(text)[1] is not None
