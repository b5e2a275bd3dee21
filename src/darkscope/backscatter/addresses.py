"""IPv4 and IPv6 sources side by side: the features are per host, not per address family.

IPv6 addresses arrive as 16-byte columns (``src6``, ``dst6``, ``inner_src6``). A host is its
IPv4 address or its IPv6 address; within one packet table every host gets a dense id, so the
group-bys of the features run unchanged. For destination counts and spans an IPv6 destination
is its /64 (bits 32-63 of the address: the low half of the routing prefix), since a /64 is what
an IPv4 address is to a telescope: one subnet, one target. A /48 telescope's /64s vary over
2**16 values, as a /16's IPv4 addresses do.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa

from darkscope.backscatter import _kernels


def ipv6_matrix(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An (n, 16) uint8 view of a 16-byte column and its validity (rows of nulls are 0)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    if n == 0:
        return np.zeros((0, 16), np.uint8), np.zeros(0, bool)
    if array.null_count == n:  # IPv4-only input: nothing to copy
        return np.zeros((n, 16), np.uint8), np.zeros(n, bool)
    array = array.cast(pa.binary(16))
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    data = array.buffers()[1]
    matrix = np.frombuffer(data, np.uint8)[array.offset * 16:(array.offset + n) * 16]
    matrix = matrix.reshape(n, 16).copy()
    matrix[~valid] = 0
    return matrix, valid


def halves(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The high and low 64 bits of each address (numeric order = address order)."""
    words = matrix.view(">u8").astype(np.uint64)
    return words[:, 0], words[:, 1]


def subnet64(matrix: np.ndarray) -> np.ndarray:
    """Bits 32-63 of each address (the /64 prefix's low half) as uint32."""
    return np.ascontiguousarray(matrix[:, 4:8]).view(">u4").astype(np.uint32).ravel()


def ipv6_sources(table: pa.Table) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows whose source is IPv6 (no IPv4 source), and their 16-byte sources (None when no
    row has one, the common IPv4-only case, so nothing of the table's size is allocated)."""
    n = table.num_rows
    if "src6" not in table.column_names or table["src6"].null_count == n:
        return np.zeros(n, bool), None
    matrix, valid = ipv6_matrix(table["src6"])
    is6 = valid & ~table["src"].is_valid().to_numpy(zero_copy_only=False)
    return is6, matrix


def host_ids(src: np.ndarray, is6: np.ndarray, src6: np.ndarray | None) -> np.ndarray:
    """A dense id per row's host (< 2**32): IPv4 and IPv6 hosts never share one. Without IPv6
    rows the IPv4 address itself serves (no pass needed)."""
    if src6 is None or not is6.any():
        return src
    hi, lo = halves(src6[is6])
    pairs = np.stack([hi, lo], axis=1)
    _, v6_id = np.unique(pairs, axis=0, return_inverse=True)
    keys = src.astype(np.uint64)
    keys[is6] = np.uint64(1 << 32) + v6_id.ravel().astype(np.uint64)
    ids, _ = _kernels.factorize(keys)
    return ids


def destinations(table: pa.Table, is6: np.ndarray) -> np.ndarray:
    """Per row the destination as the features count it: the IPv4 address, or the IPv6 /64."""
    dst = table["dst"].cast(pa.int64()).fill_null(0).to_numpy().astype(np.uint32)
    if is6.any() and "dst6" in table.column_names:
        matrix, _ = ipv6_matrix(table["dst6"])
        dst[is6] = subnet64(matrix[is6])
    return dst


def ipv6_text(matrix: np.ndarray) -> list[str]:
    """Compressed text form of each address (one per host, not per packet)."""
    return [str(ipaddress.IPv6Address(bytes(row))) for row in matrix]
