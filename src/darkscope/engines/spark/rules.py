"""The labelling rules of :mod:`darkscope.backscatter.rules` as Spark SQL predicates.

Each rule's ``match`` table becomes one boolean expression over a packet's columns, exactly as
:func:`~darkscope.backscatter.rules.packet_matches` evaluates it (a null field matches
nothing; the DNS header is read from the payload head's bytes; a quoted source lies in the
telescope by its prefix bits). Per host-window the first rule, in file order, whose share of
matching packets reaches its ``min_share`` decides, as in
:func:`~darkscope.backscatter.rules.apply_rules`.
"""

from __future__ import annotations

from typing import Any

from darkscope.backscatter.features import NS
from darkscope.backscatter.rules import FLAG_MASK, NO_RULE, Rule, RuleSet
from darkscope.backscatter.telescope import Telescope

_INT_FIELDS = ("proto", "sport", "dport", "icmp_type")
_DNS_OPCODES = (0, 1, 2, 4, 5)


def _byte(column: Any, index: int) -> Any:
    """The unsigned byte at ``index`` (0-based) of a binary column."""
    from pyspark.sql import functions as F

    return F.conv(F.hex(F.substring(column, index + 1, 1)), 16, 10).cast("int")


def _dns_header() -> Any:
    """A plausible DNS header (>= 12 payload bytes, opcode 0-2 or 4-5, Z clear, 1..16
    questions), as :func:`darkscope.backscatter.rules._dns_header`."""
    from pyspark.sql import functions as F

    head = F.col("payload_head")
    opcode = F.shiftright(_byte(head, 2), 3).bitwiseAND(0x0F)
    questions = _byte(head, 4) * 256 + _byte(head, 5)
    return F.coalesce((F.octet_length(head) >= 12)
                      & (F.coalesce(F.col("payload_len"), F.lit(0)) >= 12)
                      & opcode.isin(*_DNS_OPCODES) & (_byte(head, 3).bitwiseAND(0x40) == 0)
                      & questions.between(1, 16), F.lit(False))


def _in_network6(column: Any, network: Any) -> Any:
    """Whether a 16-byte address lies in ``network``: its whole prefix nibbles as hex, then
    the remaining bits of the next nibble."""
    from pyspark.sql import functions as F

    digits = F.hex(column)
    whole, rest = divmod(network.prefixlen, 4)
    wanted = f"{int(network.network_address):032X}"
    test = F.substring(digits, 1, whole) == F.lit(wanted[:whole]) if whole else F.lit(True)
    if rest:
        nibble = F.conv(F.substring(digits, whole + 1, 1), 16, 10).cast("int")
        test = test & (F.shiftright(nibble, 4 - rest) == int(wanted[whole], 16) >> (4 - rest))
    return test


def _quoted_in_telescope(telescope: Telescope | None, inside_wanted: bool) -> Any:
    from pyspark.sql import functions as F

    v4, v6 = F.col("inner_src"), F.col("inner_src6")
    inside = F.lit(False)
    if telescope is not None and telescope.network is not None:
        mask = (0xFFFFFFFF << (32 - telescope.network.prefixlen)) & 0xFFFFFFFF
        inside = inside | F.coalesce(v4.cast("long").bitwiseAND(mask)
                                     == int(telescope.network.network_address), F.lit(False))
    if telescope is not None and telescope.network6 is not None:
        inside = inside | F.coalesce(_in_network6(v6, telescope.network6), F.lit(False))
    if inside_wanted:
        return inside
    return (v4.isNotNull() | v6.isNotNull()) & ~inside


def packet_matches(rule: Rule, telescope: Telescope | None) -> Any:
    """A boolean column: does a packet satisfy every predicate of ``rule``?"""
    from pyspark.sql import functions as F

    m = rule.match
    ok = F.lit(True)
    for name in _INT_FIELDS:
        if name in m:
            ok = ok & F.coalesce(F.col(name).cast("long").isin(*m[name]), F.lit(False))
    if "tcp_flags" in m:
        ok = ok & F.coalesce(F.col("tcp_flags").cast("int").bitwiseAND(FLAG_MASK)
                             .isin(*m["tcp_flags"]), F.lit(False))
    if "payload_len_min" in m or "payload_len_max" in m:
        length = F.col("payload_len").cast("long")
        ok = ok & F.coalesce(length.between(m.get("payload_len_min", 0),
                                            m.get("payload_len_max", 2**32 - 1)), F.lit(False))
    if "payload_prefix" in m:
        head = F.hex(F.col("payload_head"))
        hit = F.lit(False)
        for prefix in m["payload_prefix"]:
            hit = hit | F.coalesce(F.substring(head, 1, 2 * len(prefix))
                                   == F.lit(prefix.hex().upper()), F.lit(False))
        ok = ok & hit
    if "dns_header" in m:
        ok = ok & (_dns_header() if m["dns_header"] else ~_dns_header())
    if "inner_src_in_telescope" in m:
        ok = ok & _quoted_in_telescope(telescope, bool(m["inner_src_in_telescope"]))
    return ok


def deciding_rules(rows: Any, rules: RuleSet, telescope: Telescope | None,
                   window_s: int) -> Any:
    """Per host-window (``host``, ``window_start``): ``rule``, the index of the first rule
    that fires (``NO_RULE`` if none)."""
    from pyspark.sql import functions as F

    span = window_s * NS
    hits = [F.sum(packet_matches(rule, telescope).cast("long")).alias(f"hits_{i}")
            for i, rule in enumerate(rules.rules)]
    counted = rows.groupBy("host", F.expr(f"ts div {span}").alias("w")).agg(
        F.count(F.lit(1)).alias("n"), *hits)
    fires = [F.when((F.col(f"hits_{i}") > 0)
                    & (F.col(f"hits_{i}") >= F.lit(rule.min_share) * F.col("n")), F.lit(i))
             for i, rule in enumerate(rules.rules)]
    return counted.select("host", (F.col("w") * span).alias("window_start"),
                          F.coalesce(*fires, F.lit(NO_RULE)).alias("rule"))
