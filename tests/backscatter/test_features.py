from __future__ import annotations

import numpy as np
import pytest

from darkscope.backscatter.features import FeatureDefinition, context_features, extract
from darkscope.backscatter.inputs import read_packets
from darkscope.backscatter.reference import reference_features
from darkscope.errors import UsageError

from .conftest import packets

A, B = 3325231105, 3325231106  # 198.51.0.1, 198.51.0.2


@pytest.mark.parametrize("variant", ["dst-span", "payload"])
def test_fast_path_equals_plain_groupby(sim_train, variant: str) -> None:
    table = read_packets([sim_train.table])
    definition = FeatureDefinition(variant=variant)
    windows = extract(table, definition)
    reference = reference_features(table, definition)
    assert len(windows) == len(reference) > 1000
    order = np.lexsort((windows.window_start, windows.src))
    np.testing.assert_allclose(windows.X[order], reference[list(definition.names)].to_numpy(),
                               rtol=1e-6, atol=1e-6)
    assert windows.packets.sum() == table.num_rows


def test_hand_computed_window() -> None:
    # host A: 4 packets at 0, 1, 3, 7 s; ports and addresses chosen to make every feature
    # easy to work out by hand.
    table = packets(ts=[0, 1, 3, 7], src=[A] * 4, dst=[10, 20, 20, 50], proto=[6, 6, 6, 17],
                    sport=[80, 80, 443, 80], dport=[1000, 1000, 2000, 1000],
                    payload_len=[0, 0, 10, 30])
    x = dict(zip(FeatureDefinition().names, extract(table).X[0], strict=True))
    gaps = np.array([1, 2, 4.0])
    assert x["packet_count"] == 4
    assert x["interval_mean"] == pytest.approx(gaps.mean())
    assert x["interval_std"] == pytest.approx(gaps.std())
    assert (x["sports"], x["pkts_per_sport_mean"]) == (2, 2)
    assert x["pkts_per_sport_std"] == pytest.approx(np.std([3, 1]))
    assert (x["dsts"], x["pkts_per_dst_mean"]) == (3, pytest.approx(4 / 3))
    assert x["pkts_per_dst_std"] == pytest.approx(np.std([1, 2, 1]))
    assert (x["dports"], x["pkts_per_dport_mean"], x["pkts_per_dport_std"]) == (2, 2, 1)
    # port 1000 at 0, 1, 7 -> gaps 1, 6; port 2000 once -> none
    assert x["dport_interval_mean"] == pytest.approx(3.5)
    assert x["dport_interval_std"] == pytest.approx(2.5)
    assert x["protocols"] == 2
    # distinct destinations 10, 20, 50 -> spans 10, 30
    assert (x["dst_span_mean"], x["dst_span_std"]) == (pytest.approx(20), pytest.approx(10))
    payload = extract(table, FeatureDefinition(variant="payload")).X[0, 15:]
    np.testing.assert_allclose(payload, [10, np.std([0, 0, 10, 30])])


def test_single_packet_host_is_defined_and_finite() -> None:
    table = packets(ts=[5], src=[A], dst=[7], proto=[1], icmp_type=[0])
    windows = extract(table)
    assert windows.X.tolist() == [[1, 0, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0]]


def test_time_windows_and_order_independence() -> None:
    ts = [10, 3590, 3610, 20]
    table = packets(ts=ts, src=[A, A, A, B], dst=[1, 2, 3, 4], proto=[6] * 4,
                    sport=[1] * 4, dport=[2] * 4)
    windows = extract(table)
    assert sorted(zip(windows.src.tolist(), windows.packets.tolist(),
                      (windows.window_start // 10**9).tolist(), strict=True)) == [
        (A, 1, 3600), (A, 2, 0), (B, 1, 0)]
    shuffled = extract(table.take([2, 0, 3, 1]))
    key = lambda w: np.lexsort((w.window_start, w.src))  # noqa: E731
    np.testing.assert_array_equal(windows.X[key(windows)], shuffled.X[key(shuffled)])


def test_packet_count_windows() -> None:
    table = packets(ts=list(range(7)), src=[A] * 7, dst=list(range(7)), proto=[6] * 7,
                    sport=[1] * 7, dport=[2] * 7)
    windows = extract(table, FeatureDefinition(window_s=None, window_packets=3))
    assert windows.packets.tolist() == [3, 3, 1]
    assert (windows.window_start // 10**9).tolist() == [0, 3, 6]
    assert (windows.window_end - windows.window_start).tolist() == [2 * 10**9 + 1] * 2 + [1]


def test_sparse_windows_are_judged_on_their_hosts_context() -> None:
    C = A + 2
    hour = 3600
    rows = (
        [(A, 100 + i, 6, 443) for i in range(3)]                 # A: 3 packets in hour 0,
        + [(A, hour + 50 + 7 * i, 6, 443) for i in range(20)]    # 20 in hour 1 (same span)
        + [(B, 200 + i, 17, 53) for i in range(2)]               # B: 2 packets, nothing else
        + [(C, 5 * hour + 1800, 1, None), (C, 5 * hour + 1801, 1, None)]  # C: 2 before 06:00,
        + [(C, 6 * hour + 10 + i, 1, None) for i in range(30)]   # 30 in the next span
    )
    src, ts, proto, sport = (list(column) for column in zip(*rows, strict=True))
    table = packets(ts=ts, src=src, dst=[1000 + 37 * i for i in range(len(rows))], proto=proto,
                    sport=sport, dport=[(7 * i) % 5 for i in range(len(rows))])
    windows = extract(table)
    judged, context = context_features(table, windows)

    def window(host: int, start_h: int) -> int:
        return int(np.flatnonzero((windows.src == host)
                                  & (windows.window_start == start_h * hour * 10**9))[0])

    # A's 3-packet window is judged on all 23 packets of A in 00:00-06:00
    a_span = extract(table.filter(np.array(src) == A), FeatureDefinition(window_s=21600))
    np.testing.assert_array_equal(judged[window(A, 0)], a_span.X[0])
    assert context[window(A, 0)] == 23
    # A's 20-packet window, B (no other packets) and C before 06:00 (its other packets lie
    # in the next span) keep their own features
    for row in (window(A, 1), window(B, 0), window(C, 5), window(C, 6)):
        np.testing.assert_array_equal(judged[row], windows.X[row])
        assert context[row] == 0
    # switched off: every window judged on its own features
    off = extract(table, FeatureDefinition(context_below=0))
    np.testing.assert_array_equal(context_features(table, off)[0], off.X)


def test_bad_definitions() -> None:
    with pytest.raises(UsageError, match="variant"):
        FeatureDefinition(variant="bytes")
    with pytest.raises(UsageError, match="exactly one"):
        FeatureDefinition(window_s=60, window_packets=10)
    with pytest.raises(UsageError, match="context span"):
        FeatureDefinition(window_s=3600, context_s=5400)
