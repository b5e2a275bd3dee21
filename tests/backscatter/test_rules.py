from __future__ import annotations

from pathlib import Path

import pytest

from darkscope.backscatter.features import extract
from darkscope.backscatter.rules import RulesError, apply_rules, load_rules
from darkscope.backscatter.telescope import resolve

from .conftest import packets

TELESCOPE = 198 << 24 | 51 << 16          # 198.51.0.0/16
HOSTS = [0x0A000001 + i for i in range(8)]
DNS_RESPONSE = bytes.fromhex("abcd81800001000100000000")
DHT_QUERY = b"d1:ad2:id20:abcd"


def decide(table, rules=None):
    windows = extract(table)
    rules = rules or load_rules()
    scope = resolve("198.51.0.0/16", table)
    index, label = apply_rules(rules, table, windows.row_of_packet, len(windows),
                               windows.packets, scope)
    ids = [*rules.ids, None]
    return {int(s): (ids[i], int(lab)) for s, i, lab in zip(windows.src, index, label,
                                                             strict=True)}


def test_builtin_rules_on_handmade_packets() -> None:
    h = HOSTS
    table = packets(
        ts=[1, 2, 3, 4, 5, 6, 7, 8],
        src=h,
        dst=[TELESCOPE + i for i in range(8)],
        proto=[6, 6, 17, 1, 6, 17, 6, 1],
        sport=[80, 443, 53, 80, 40000, 6881, 443, None],
        dport=[5000, 5000, 5000, 5000, 23, 6881, 5000, None],
        tcp_flags=[0x12, 0x12, None, None, 0x02, None, 0x14, None],
        payload_len=[0, 0, 30, 28, 0, 40, 0, 8],
        payload_head=[b"", b"", DNS_RESPONSE, None, b"", DHT_QUERY, b"", b"\x00" * 8],
        icmp_type=[None, None, None, None, None, None, None, 0],
    )
    got = decide(table)
    assert got[h[0]] == ("tcp80-reply", 1)
    assert got[h[1]] == ("tcp-synack-reply", 1)
    assert got[h[2]] == ("dns53-reply", 1)
    assert got[h[4]] == ("tcp-syn", 0)
    assert got[h[5]] == ("bittorrent", 0)
    assert got[h[6]] == (None, -1)          # RST-ACK from 443: left to the model
    assert got[h[7]] == (None, -1)          # echo reply: left to the model
    minimal = decide(table, load_rules("minimal"))
    assert minimal[h[1]] == (None, -1)      # the original rules leave SYN-ACK/443 alone


def test_icmp_error_quoting_a_telescope_source() -> None:
    table = packets(ts=[1, 2], src=HOSTS[:2], dst=[TELESCOPE + 1, TELESCOPE + 2], proto=[1, 1],
                    icmp_type=[3, 3], inner_src=[TELESCOPE + 1, 0x08080808])
    got = decide(table)
    assert got[HOSTS[0]] == ("icmp-error-quoting-telescope", 1)
    assert got[HOSTS[1]] == (None, -1)      # quoting someone else's packet: not ours


def test_dns_rule_needs_a_plausible_header() -> None:
    garbage = bytes.fromhex("ffffffffffffffffffffffff")
    table = packets(ts=[1, 2], src=HOSTS[:2], dst=[TELESCOPE, TELESCOPE], proto=[17, 17],
                    sport=[53, 53], dport=[9, 9], payload_len=[30, 30],
                    payload_head=[DNS_RESPONSE, garbage])
    got = decide(table)
    assert got[HOSTS[0]][0] == "dns53-reply"
    assert got[HOSTS[1]][0] is None


def test_min_share_and_order() -> None:
    # 3 SYN-ACKs from 80 and 1 SYN: the DDoS rule fires (75% >= 50%), first in file order
    table = packets(ts=[1, 2, 3, 4], src=[HOSTS[0]] * 4, dst=[TELESCOPE] * 4, proto=[6] * 4,
                    sport=[80, 80, 80, 80], dport=[1, 2, 3, 4], tcp_flags=[0x12] * 3 + [0x02])
    assert decide(table)[HOSTS[0]] == ("tcp80-reply", 1)


def test_user_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[[rule]]\nid = "game"\nlabel = "ddos"\nsource = "local knowledge"\n'
                    'min_share = 0.9\n[rule.match]\nproto = 6\nsport = [27015, 7777]\n'
                    'tcp_flags = ["SA"]\n')
    rules = load_rules(path)
    table = packets(ts=[1], src=[HOSTS[0]], dst=[TELESCOPE], proto=[6], sport=[7777],
                    dport=[5], tcp_flags=[0x12])
    assert decide(table, rules)[HOSTS[0]] == ("game", 1)


@pytest.mark.parametrize("text, where", [
    ('[[rule]]\nid = "x"\nlabel = "maybe"\nsource = "s"\n[rule.match]\nproto = 6\n',
     "rule[0].label"),
    ('[[rule]]\nid = "x"\nlabel = "ddos"\nsource = "s"\n[rule.match]\nsport = 70000\n',
     "rule[0].match.sport"),
    ('[[rule]]\nid = "x"\nlabel = "ddos"\nsource = "s"\n[rule.match]\ncolour = 1\n',
     "rule[0].match.colour"),
    ('[[rule]]\nid = "x"\nlabel = "ddos"\n[rule.match]\nproto = 6\n', "rule[0].source"),
    ('[[rule]]\nid = "x"\nlabel = "ddos"\nsource = "s"\n[rule.match]\ntcp_flags = ["SX"]\n',
     "rule[0].match.tcp_flags"),
    ("[[rule]\n", "not valid TOML"),
])
def test_bad_rules_name_file_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    assert str(path) in str(info.value) and where in str(info.value)


