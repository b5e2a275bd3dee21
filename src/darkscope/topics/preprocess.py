"""Listing text to a document-term matrix, with a tokeniser that knows security vocabulary.

Market listings are short, full of markup, quantities ("20 mg x 60"), version numbers and shop
boilerplate ("free shipping", "escrow"). Those would dominate LDA topics, so they go; terms that
carry the threat signal (``0day``, ``cve-2017-0144``, ``ms17-010``, ``ddos``, ``btc``) stay whole.
Work is done once per *distinct* token (classification, stop words), not once per occurrence.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache

import lxml.html
import numpy as np
import scipy.sparse as sp
from lxml import etree

# A listing description longer than this is markup abuse, not text (darkweb keeps 100,000).
MAX_MARKUP_CHARS = 100_000
_HTML_PARSER = lxml.html.HTMLParser(encoding="utf-8", recover=True, remove_comments=True,
                                    remove_pis=True)

# Words every listing uses whatever it sells: shipping terms, market mechanics, sales talk.
_BOILERPLATE_TEXT = """
    ship ships shipped shipping shipment post posted postage delivery deliver delivered track
    tracking tracked stealth stealthy worldwide international domestic escrow fe finalize finalise
    finalizing feedback feedbacks review reviews rating vendor vendors seller buyer buyers customer
    customers order orders ordering ordered listing listings item items product products price
    prices priced cheap cheapest sale sell selling sold buy buying purchase purchased please pls
    thanks thank thx contact message msg pm pms reship reshipping refund refunds guarantee
    guaranteed days day hours week weeks business quality high best great good excellent amazing
    new available stock instock profile terms conditions info information added later read note
    notes usa uk eu undeclared details detail description listed offer offers offering discount
    bulk deal deals qty quantity amount unit units include includes included including just
    make sure want need like use used using get got time dont don't im ive youre
    www com http https html
"""
MARKET_BOILERPLATE: frozenset[str] = frozenset(_BOILERPLATE_TEXT.split())

# Units left alone once their numbers are gone ("20 mg" -> "mg"): they say nothing about topics.
_UNITS_TEXT = "mg mcg ug µg gr gram grams kg kilo kilos oz lb lbs ml cl pcs pc tab tabs"
UNIT_WORDS: frozenset[str] = frozenset(_UNITS_TEXT.split())



@cache
def base_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words, market boilerplate and bare units.

    Loaded on first use: importing scikit-learn takes a second that `--help` should not pay.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | MARKET_BOILERPLATE | UNIT_WORDS

# Letters/digits of any script, joined by inner hyphens or dots: "cve-2017-0144", "ms17-010",
# "v1.2", "3.5g", "münchen", "наркотики" (text is NFKC-normalised first: "ＲＤＰ" is "rdp").
_TOKEN = re.compile(r"[^\W_]+(?:[.\-][^\W_]+)*")
# Terms that look like quantities but name platforms and networks: kept whole.
SECURITY_TERMS: frozenset[str] = frozenset(
    ["x86", "x64", "x32", "x86-64", "2g", "3g", "4g", "5g"])
_QUANTITY_UNITS = (
    r"(?:mg|mcg|ug|µg|g|gr|gram|grams|kg|kilo|kilos|oz|lb|lbs|ml|l|cl|pcs?|pieces?|x|k|m|"
    r"tabs?|tablets?|pills?|caps?|capsules?|blotters?|hits?|units?|%|btc|usd|eur|gbp|mbtc)"
)
# A number, amount or range with an optional unit: "20", "3.5g", "180-200mg", "x60".
_NUMBER_OR_QUANTITY = re.compile(
    rf"(?:x?\d+(?:[.,]\d+)*(?:-\d+(?:[.,]\d+)*)?{_QUANTITY_UNITS}?|x\d+)")
_VERSION = re.compile(r"v?\d+(?:\.\d+)+[a-z]?|v\d+[a-z]?")
_SECURITY_ID = re.compile(r"(?:cve|ms|cwe|kb|apt|ta)\d*-\d[\d-]*")
# Title clean-up for near-duplicate products: amounts, units, versions and punctuation go.
_TITLE_NOISE = re.compile(
    rf"\bx?\s*v?\d+(?:[.,/]\d+)*\s*{_QUANTITY_UNITS}?\b|[^\w\s]|_", re.I)


@dataclass(frozen=True)
class Preprocessing:
    """Settings that define the features; saved with a model so scoring uses the same ones."""

    min_df: int = 2
    max_df: float = 0.5
    phrases: bool = False
    phrase_min_count: int = 5
    phrase_threshold: float = 0.5
    max_features: int | None = None
    extra_stop_words: tuple[str, ...] = ()

    def stop_words(self) -> frozenset[str]:
        return base_stop_words() | frozenset(w.lower() for w in self.extra_stop_words)


@dataclass
class Corpus:
    """Counts (documents x vocabulary) and the vocabulary; empty documents keep their row."""

    counts: sp.csr_matrix
    vocabulary: np.ndarray
    phrases: list[str] = field(default_factory=list)

    @property
    def lengths(self) -> np.ndarray:
        return np.asarray(self.counts.sum(axis=1)).ravel()


def listing_text(titles: Sequence[str | None], descriptions: Sequence[str | None]) -> list[str]:
    """Title and description as one text; a description that repeats the title counts it once."""
    texts = []
    for title, description in zip(titles, descriptions, strict=True):
        title, description = title or "", description or ""
        texts.append(description if description.startswith(title) else f"{title}\n{description}")
    return texts


def strip_markup(text: str) -> str:
    """Visible text of an HTML fragment (scripts and styles dropped, entities decoded).

    lxml (libxml2) caps nesting depth, so deeply nested hostile markup parses in linear time
    (selectolax/lexbor was quadratic: 0.94 s for 20,000 nested tags); input beyond
    ``MAX_MARKUP_CHARS`` is not read.
    """
    if "<" not in text and "&" not in text:
        return text
    data = text[:MAX_MARKUP_CHARS].encode("utf-8", errors="replace")
    try:
        root = lxml.html.document_fromstring(data, parser=_HTML_PARSER)
    except (etree.ParserError, ValueError):  # nothing but markup or whitespace
        return ""
    etree.strip_elements(root, "script", "style", "noscript", "template", with_tail=False)
    return " ".join(root.itertext())


def tokenize(texts: Iterable[str]) -> list[list[str]]:
    """Raw lower-case tokens of each text, markup removed, NFKC-normalised (full-width and
    compatibility forms folded); filtering happens per distinct token."""
    return [_TOKEN.findall(unicodedata.normalize("NFKC", strip_markup(t)).lower()
                           .replace("'", "").replace("\u2019", "")) for t in texts]


def _keep_token(token: str, stop_words: frozenset[str]) -> list[str]:
    """What one distinct raw token becomes: itself, its parts, or nothing."""
    if _SECURITY_ID.fullmatch(token) or token in SECURITY_TERMS:
        return [token] if token not in stop_words else []
    if _NUMBER_OR_QUANTITY.fullmatch(token) or _VERSION.fullmatch(token):
        return []
    if "-" in token or "." in token:
        if any(c.isdigit() for c in token) and any(c.isalpha() for c in token):
            parts = [token.replace(".", "")] if "." in token and "-" not in token else [token]
        else:
            parts = re.split(r"[.\-]", token)
        return [p for p in parts if _is_word(p, stop_words)]
    return [token] if _is_word(token, stop_words) else []


def _is_word(token: str, stop_words: frozenset[str]) -> bool:
    return (len(token) >= 2 and token not in stop_words and not token.isdigit()
            and not _NUMBER_OR_QUANTITY.fullmatch(token) and not _VERSION.fullmatch(token))


def clean_tokens(raw: Sequence[Sequence[str]], stop_words: frozenset[str]) -> list[list[str]]:
    """Drop numbers, quantities, versions and stop words; split plain hyphenated words."""
    distinct = {t for doc in raw for t in doc}
    mapping = {t: _keep_token(t, stop_words) for t in distinct}
    return [[w for t in doc for w in mapping[t]] for doc in raw]


def token_ids(docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten documents: (token ids, document index per token, distinct token strings)."""
    flat = np.array([t for doc in docs for t in doc], dtype=object)
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    doc_index = np.repeat(np.arange(len(docs)), lengths)
    if flat.size == 0:
        return np.zeros(0, np.int64), doc_index, np.zeros(0, dtype=object)
    words, ids = np.unique(flat.astype(str), return_inverse=True)
    return ids.astype(np.int64), doc_index, words.astype(object)


def find_phrases(docs: Sequence[Sequence[str]], min_count: int, threshold: float) -> list[str]:
    """Adjacent word pairs whose NPMI over the corpus is at least ``threshold`` ("credit_card")."""
    ids, doc_index, words = token_ids(docs)
    if ids.size < 2:
        return []
    same_doc = doc_index[:-1] == doc_index[1:]
    left, right = ids[:-1][same_doc], ids[1:][same_doc]
    pair_keys, pair_counts = np.unique(left * len(words) + right, return_counts=True)
    frequent = pair_counts >= min_count
    pair_keys, pair_counts = pair_keys[frequent], pair_counts[frequent]
    if pair_keys.size == 0:
        return []
    word_counts = np.bincount(ids, minlength=len(words)).astype(float)
    total = float(ids.size)
    a, b = pair_keys // len(words), pair_keys % len(words)
    p_ab = pair_counts / total
    npmi = np.log(p_ab / (word_counts[a] / total * word_counts[b] / total)) / -np.log(p_ab)
    chosen = (npmi >= threshold) & (a != b)  # "2c-e 2c-e" is a repetition, not a phrase
    return sorted(f"{words[i]}_{words[j]}" for i, j in zip(a[chosen], b[chosen], strict=True))


def apply_phrases(docs: Sequence[Sequence[str]], phrases: Iterable[str]) -> list[list[str]]:
    """Join chosen adjacent pairs into one token, left to right, each word used once.

    Vectorised: within a run of consecutive joinable positions, the left-to-right rule joins
    the 1st, 3rd, 5th... pair (each join uses the next word up).
    """
    known = [p.split("_", 1) for p in phrases]
    ids, doc_index, words = token_ids(docs)
    if not known or ids.size < 2:
        return [list(d) for d in docs]
    words = words.astype(str)
    left = np.array([a for a, _ in known])
    right = np.array([b for _, b in known])
    present = np.isin(left, words) & np.isin(right, words)
    keys = (np.searchsorted(words, left[present]) * len(words)
            + np.searchsorted(words, right[present]))
    joinable = np.zeros(ids.size, dtype=bool)
    joinable[:-1] = (doc_index[:-1] == doc_index[1:]) & np.isin(ids[:-1] * len(words) + ids[1:],
                                                                 keys)
    run_start = joinable & ~np.concatenate(([False], joinable[:-1]))
    positions = np.arange(ids.size)
    first = np.maximum.accumulate(np.where(run_start, positions, 0))
    chosen = joinable & ((positions - first) % 2 == 0)
    tokens = words[ids].astype(object)
    tokens[chosen] = tokens[chosen] + "_" + tokens[np.flatnonzero(chosen) + 1]
    keep = ~np.concatenate(([False], chosen[:-1]))
    lengths = np.bincount(doc_index[keep], minlength=len(docs))
    return [part.tolist() for part in np.split(tokens[keep], np.cumsum(lengths)[:-1])]


def words_of(texts: Sequence[str], settings: Preprocessing,
             phrases: Iterable[str] = ()) -> list[list[str]]:
    """Cleaned words of each text, with the given phrases joined."""
    docs = clean_tokens(tokenize(texts), settings.stop_words())
    return apply_phrases(docs, phrases)


def build_corpus(texts: Sequence[str], settings: Preprocessing) -> Corpus:
    """Fit the vocabulary on ``texts`` (phrases, document-frequency pruning) and count words."""
    docs = clean_tokens(tokenize(texts), settings.stop_words())
    phrases = (find_phrases(docs, settings.phrase_min_count, settings.phrase_threshold)
               if settings.phrases else [])
    docs = apply_phrases(docs, phrases)
    ids, doc_index, words = token_ids(docs)
    counts = _count_matrix(ids, doc_index, len(docs), len(words))
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    keep = (df >= settings.min_df) & (df <= max(settings.max_df * len(docs), settings.min_df))
    if settings.max_features is not None and keep.sum() > settings.max_features:
        # Most frequent first; ties broken by word so the vocabulary is deterministic.
        order = np.lexsort((words, -df))
        ranked = order[keep[order]][: settings.max_features]
        keep = np.zeros_like(keep)
        keep[ranked] = True
    columns = np.flatnonzero(keep)
    used = {w for w in words[columns] if "_" in w}
    return Corpus(counts[:, columns].tocsr(), words[columns].astype(str),
                  [p for p in phrases if p in used])


def count_with_vocabulary(texts: Sequence[str], settings: Preprocessing,
                          vocabulary: np.ndarray, phrases: Iterable[str]) -> sp.csr_matrix:
    """Counts of new texts over a fixed vocabulary (for scoring with a fitted model)."""
    docs = words_of(texts, settings, phrases)
    index = {w: i for i, w in enumerate(vocabulary)}
    columns = np.fromiter((index.get(w, -1) for d in docs for w in d), dtype=np.int64)
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    rows = np.repeat(np.arange(len(docs)), lengths)
    known = columns >= 0
    return _count_matrix(columns[known], rows[known], len(docs), len(vocabulary))


def _count_matrix(columns: np.ndarray, rows: np.ndarray, n_docs: int,
                  n_words: int) -> sp.csr_matrix:
    data = np.ones(columns.size, dtype=np.int64)
    matrix = sp.csr_matrix((data, (rows, columns)), shape=(n_docs, n_words))
    matrix.sum_duplicates()
    return matrix


def product_key(titles: Sequence[str | None]) -> list[str]:
    """Titles without amounts, units, versions and punctuation: one key per product.

    "Cocaine Grade B x 1 gram" and "Cocaine Grade B x 5 gram" share a key; so do
    "KilerRat v10.0.0 Full" and "KilerRat v9.1 Full".
    """
    keys = []
    for title in titles:
        text = _TITLE_NOISE.sub(" ", strip_markup(title or "")).lower()
        keys.append(" ".join(text.split()))
    return keys
