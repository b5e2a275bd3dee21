"""Compiled record walkers and frame decoders (numba): the only per-packet code in darkscope.

A walker consumes as many whole records of a buffer as fit, decodes each frame straight into
preallocated column arrays, and returns where it stopped and why. Python handles the rare
things (file headers, pcapng section and interface blocks, errors, refills) between calls, so
the hot loop stays small and allocation-free.

Column arrays are grouped by width (``u32[k, row]``, ``u16``, ``u8``) so that a walker takes a
handful of arguments; ``val[row]`` holds the validity (non-null) flags of a row as bits
``1 << V_*``, turned into Arrow validity bitmaps by :func:`validity_bitmaps`.
"""

from __future__ import annotations

import numpy as np
from numba import config, njit, prange

from darkscope.packets._bytes import (
    load_be16,
    load_be32,
    load_le16,
    load_le32,
    load_word,
    store_word,
)

# --- column slots -------------------------------------------------------------------------
# Columns most packets fill come first, the sparse ones last: a batch's columns are carved
# from huge pages, and a page that no packet touches is never faulted in (nor zeroed).
U32_CAPLEN, U32_WIRELEN, U32_SRC, U32_DST, U32_IPLEN, U32_PAYLEN = 0, 1, 2, 3, 4, 5
U32_SEQ, U32_ACK, U32_TSVAL, U32_TSECR, U32_INNER_SRC, U32_INNER_DST = 6, 7, 8, 9, 10, 11
N_U32 = 12

U16_LINKTYPE, U16_IPID, U16_FRAGOFF, U16_SPORT, U16_DPORT, U16_WIN = 0, 1, 2, 3, 4, 5
U16_MSS, U16_INNER_SPORT, U16_INNER_DPORT, U16_VLAN = 6, 7, 8, 9
N_U16 = 10

U8_IPVER, U8_PROTO, U8_TTL, U8_TOS, U8_IPFLAGS, U8_FLAGS = 0, 1, 2, 3, 4, 5
U8_WSCALE, U8_ICMPTYPE, U8_ICMPCODE, U8_INNER_PROTO = 6, 7, 8, 9
N_U8 = 10

# validity flags; one per group of fields that are present together
V_TS, V_VLAN, V_IP, V_V4, V_V6, V_IPID, V_PORTS, V_TCP = 0, 1, 2, 3, 4, 5, 6, 7
V_MSS, V_WSCALE, V_TSOPT, V_ICMP, V_INNER4, V_INNER6, V_INNER_PROTO, V_INNER_PORTS = (
    8, 9, 10, 11, 12, 13, 14, 15)
V_PAYLEN, V_FRAGINFO = 16, 17
# two boolean columns travel as bits too: their values become Arrow bitmaps the same way
B_FRAGMENT, B_SACK_OK = 18, 19
N_VAL = 20

V6_SRC, V6_DST, V6_INNER_SRC, V6_INNER_DST = 0, 1, 2, 3

HEAD_BYTES = 16
OPTS_MAX = 40
LAYOUT_MAX = 5 * OPTS_MAX  # per option byte at most a 4-letter token and a separator

# Rows are decoded in this many parallel chunks when a call has enough of them.
N_CHUNKS = max(1, config.NUMBA_NUM_THREADS)
PARALLEL_MIN_ROWS = 4096
# A chunk decodes this many rows, then sets their bitmap bits while their flags are in cache.
DECODE_BLOCK = 4096

# --- walker status codes ------------------------------------------------------------------
ST_FULL = 0          # row capacity reached
ST_NEED_MORE = 1     # the next record does not fit in the buffer
ST_PYTHON = 2        # pcapng section header or interface description: handled in Python
ST_BAD_FRAC = 3      # timestamp fraction >= one second
ST_BAD_CAPLEN = 4    # captured length larger than the snap length
ST_BAD_WIRELEN = 5   # captured length larger than the original length, or absurd length
ST_BAD_BLOCKLEN = 6  # pcapng block length not a multiple of 4 or too small
ST_BAD_TRAILER = 7   # pcapng block length trailer differs from its header
ST_BAD_IFACE = 8     # pcapng packet names an interface that was not described
ST_BAD_PKTLEN = 9    # pcapng packet data longer than its block

MAX_WIRE_LEN = 1 << 24

LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL = 0, 1, 101, 108, 113
LINK_IPV4, LINK_IPV6, LINK_SLL2 = 228, 229, 276
LINK_RAW_BSD12, LINK_RAW_BSD14 = 12, 14
SUPPORTED_LINK_TYPES = frozenset({LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP, LINK_SLL,
                                  LINK_IPV4, LINK_IPV6, LINK_SLL2, LINK_RAW_BSD12, LINK_RAW_BSD14})

# option kind -> token written into tcp_layout: its text, length, and the text with the comma
# that follows it as one 8-byte word (written with a single store)
_TOKENS = {0: "eol", 1: "nop", 2: "mss", 3: "ws", 4: "sok", 5: "sack", 8: "ts"}
TOKEN_TEXT = np.zeros((256, 8), dtype=np.uint8)
TOKEN_LENS = np.zeros(256, dtype=np.int64)
for _kind in range(256):
    _text = _TOKENS.get(_kind, str(_kind)).encode()
    TOKEN_TEXT[_kind, : len(_text) + 1] = np.frombuffer(_text + b",", dtype=np.uint8)
    TOKEN_LENS[_kind] = len(_text)
TOKEN_WORDS = TOKEN_TEXT.view(np.uint64).reshape(256).copy()


@njit(inline="always")
def _be16(buf, p):
    return load_be16(buf, p)


@njit(inline="always")
def _be32(buf, p):
    return load_be32(buf, p)


@njit(inline="always")
def _rd16(buf, p, swapped):
    return load_be16(buf, p) if swapped else load_le16(buf, p)


@njit(inline="always")
def _rd32(buf, p, swapped):
    return load_be32(buf, p) if swapped else load_le32(buf, p)


@njit(inline="always")
def _copy(buf, start, stop, out, out_pos):
    for i in range(stop - start):
        out[out_pos + i] = buf[start + i]


@njit(inline="always")
def _copy_words(buf, start, stop, out, out_pos, out_limit):
    """Copy ``buf[start:stop]`` in 8-byte words (one unaligned move each) when the rounded-up
    length stays inside ``buf`` and below ``out_limit``; the bytes past ``stop - start``
    written then are garbage that the caller overwrites or never exports."""
    n = stop - start
    rounded = (n + 7) & ~7
    if start + rounded <= len(buf) and out_pos + rounded <= out_limit:
        for block in range(0, rounded, 8):
            store_word(out, out_pos + block, load_word(buf, start + block))
    else:
        _copy(buf, start, stop, out, out_pos)


@njit(inline="always")
def _option_end(data, i, stop):
    """Where the TCP option at ``i`` ends, or -1 when the list ends with it (End of Option
    List, or a length that is malformed or runs past the header)."""
    kind = data[i]
    if kind == 0:
        return -1
    if kind == 1:
        return i + 1
    if i + 1 >= stop:
        return -1
    olen = np.int64(data[i + 1])
    if olen < 2 or i + olen > stop:
        return -1
    return i + olen


@njit(inline="always")
def _tcp_options(buf, start, stop, row, u32, u16, u8, opt_pos, opt_len, lay_len):
    """Note where the raw options are (copied out by :func:`_pack_rows`) and how long their
    layout text will be, and record MSS, window scale, SACK-permitted and timestamps; returns
    the validity flags of what it found."""
    opt_pos[row] = start
    opt_len[row] = stop - start
    flags = 0
    layout = 0
    i = start
    while i < stop:
        kind = buf[i]
        layout += TOKEN_LENS[kind] + (1 if layout else 0)  # as :func:`_layout` writes it
        end = _option_end(buf, i, stop)
        if end < 0:
            break
        olen = end - i
        if kind == 2 and olen == 4:
            u16[U16_MSS, row] = _be16(buf, i + 2)
            flags |= 1 << V_MSS
        elif kind == 3 and olen == 3:
            u8[U8_WSCALE, row] = buf[i + 2]
            flags |= 1 << V_WSCALE
        elif kind == 4 and olen == 2:
            flags |= 1 << B_SACK_OK
        elif kind == 8 and olen == 10:
            u32[U32_TSVAL, row] = _be32(buf, i + 2)
            u32[U32_TSECR, row] = _be32(buf, i + 6)
            flags |= 1 << V_TSOPT
        i = end
    lay_len[row] = layout
    return flags


@njit(inline="always")
def _layout(opts, i, stop, out, w, out_limit):
    """Write the option kinds of ``opts[i:stop]`` as tokens (``mss,nop,ws``) at ``out[w]``;
    returns the text's length (:func:`_tcp_options` counts the same). Each token goes out with
    its comma as one 8-byte word where that stays below ``out_limit``; the bytes past a token
    are overwritten by what follows, the last comma lies past the returned length."""
    n = 0
    while i < stop:
        kind = opts[i]
        if w + n + 8 <= out_limit:
            store_word(out, w + n, TOKEN_WORDS[kind])
        else:
            for k in range(min(TOKEN_LENS[kind] + 1, out_limit - w - n)):
                out[w + n + k] = TOKEN_TEXT[kind, k]
        n += TOKEN_LENS[kind] + 1
        i = _option_end(opts, i, stop)
        if i < 0:
            break
    return n - 1 if n else 0


@njit(inline="always")
def _inner_ports(buf, p, stop, proto, row, u16):
    if (proto == 6 or proto == 17 or proto == 132 or proto == 33) and p + 4 <= stop:
        u16[U16_INNER_SPORT, row] = _be16(buf, p)
        u16[U16_INNER_DPORT, row] = _be16(buf, p + 2)
        return 1 << V_INNER_PORTS
    return 0


@njit(inline="always")
def _transport(buf, l4, cap_stop, wire_len, proto, row, u32, u16, u8, v6,
               head_pos, head_len, opt_pos, opt_len, lay_len):
    """Decode TCP/UDP/ICMP at ``l4``; ``wire_len`` is the transport length the IP header
    claims. Returns the validity flags of the fields written."""
    hdr = 0
    flags = 0
    if proto == 6:
        if l4 + 20 > cap_stop:
            return 0
        u16[U16_SPORT, row] = _be16(buf, l4)
        u16[U16_DPORT, row] = _be16(buf, l4 + 2)
        u32[U32_SEQ, row] = _be32(buf, l4 + 4)
        u32[U32_ACK, row] = _be32(buf, l4 + 8)
        u8[U8_FLAGS, row] = buf[l4 + 13]
        u16[U16_WIN, row] = _be16(buf, l4 + 14)
        flags = (1 << V_PORTS) | (1 << V_TCP)
        hdr = (np.int64(buf[l4 + 12]) >> 4) * 4
        if hdr < 20:
            hdr = 20
        if hdr > 20:
            flags |= _tcp_options(buf, l4 + 20, min(l4 + hdr, cap_stop), row, u32, u16, u8,
                                  opt_pos, opt_len, lay_len)
    elif proto == 17:
        if l4 + 8 > cap_stop:
            return 0
        u16[U16_SPORT, row] = _be16(buf, l4)
        u16[U16_DPORT, row] = _be16(buf, l4 + 2)
        flags = 1 << V_PORTS
        hdr = 8
    elif proto == 1 or proto == 58:
        if l4 + 8 > cap_stop:
            return 0
        itype = buf[l4]
        u8[U8_ICMPTYPE, row] = itype
        u8[U8_ICMPCODE, row] = buf[l4 + 1]
        flags = 1 << V_ICMP
        hdr = 8
        q = l4 + 8
        if proto == 1 and (itype == 3 or itype == 4 or itype == 5 or itype == 11 or itype == 12):
            if q + 20 <= cap_stop and (buf[q] >> 4) == 4:
                ihl = (np.int64(buf[q]) & 15) * 4
                u32[U32_INNER_SRC, row] = _be32(buf, q + 12)
                u32[U32_INNER_DST, row] = _be32(buf, q + 16)
                u8[U8_INNER_PROTO, row] = buf[q + 9]
                flags |= (1 << V_INNER4) | (1 << V_INNER_PROTO)
                if ihl >= 20 and (_be16(buf, q + 6) & 0x1FFF) == 0:
                    flags |= _inner_ports(buf, q + ihl, cap_stop, buf[q + 9], row, u16)
        elif proto == 58 and itype >= 1 and itype <= 4:
            if q + 40 <= cap_stop and (buf[q] >> 4) == 6:
                _copy(buf, q + 8, q + 24, v6[V6_INNER_SRC, row], 0)
                _copy(buf, q + 24, q + 40, v6[V6_INNER_DST, row], 0)
                u8[U8_INNER_PROTO, row] = buf[q + 6]
                flags |= (1 << V_INNER6) | (1 << V_INNER_PROTO)
                flags |= _inner_ports(buf, q + 40, cap_stop, buf[q + 6], row, u16)
    payload = l4 + hdr
    paylen = wire_len - hdr
    u32[U32_PAYLEN, row] = paylen if paylen > 0 else 0
    _head(payload, cap_stop, row, head_pos, head_len)
    return flags | (1 << V_PAYLEN)


@njit(inline="always")
def _head(start, stop, row, head_pos, head_len):
    """Note where the payload's first bytes are (copied out by :func:`_pack_rows`)."""
    n = min(stop - start, HEAD_BYTES)
    if n > 0:
        head_pos[row] = start
        head_len[row] = n


@njit(inline="always")
def _ipv4(buf, q, stop, row, u32, u16, u8, v6, head_pos, head_len, opt_pos, opt_len, lay_len):
    if q + 20 > stop or (buf[q] >> 4) != 4:
        return 0
    ihl = (np.int64(buf[q]) & 15) * 4
    if ihl < 20 or q + ihl > stop:
        return 0
    total = _be16(buf, q + 2)
    ff = _be16(buf, q + 6)
    ip_flags = ff >> 13
    frag_off = ff & 0x1FFF
    proto = buf[q + 9]
    u8[U8_IPVER, row] = 4
    u8[U8_TOS, row] = buf[q + 1]
    u32[U32_IPLEN, row] = total
    u16[U16_IPID, row] = _be16(buf, q + 4)
    u8[U8_IPFLAGS, row] = ip_flags
    u16[U16_FRAGOFF, row] = frag_off
    u8[U8_TTL, row] = buf[q + 8]
    u8[U8_PROTO, row] = proto
    u32[U32_SRC, row] = _be32(buf, q + 12)
    u32[U32_DST, row] = _be32(buf, q + 16)
    flags = (1 << V_IP) | (1 << V_V4) | (1 << V_IPID) | (1 << V_FRAGINFO)
    if (ip_flags & 1) or frag_off:
        flags |= 1 << B_FRAGMENT
    if total < ihl:
        return flags  # inconsistent header (e.g. TSO placeholders): no transport fields
    l4 = q + ihl
    cap_stop = min(stop, q + total)  # excludes Ethernet padding
    if frag_off:
        u32[U32_PAYLEN, row] = total - ihl
        _head(l4, cap_stop, row, head_pos, head_len)
        return flags | (1 << V_PAYLEN)
    return flags | _transport(buf, l4, cap_stop, total - ihl, proto, row, u32, u16, u8, v6,
                              head_pos, head_len, opt_pos, opt_len, lay_len)


@njit(inline="always")
def _ipv6(buf, q, stop, row, u32, u16, u8, v6, head_pos, head_len, opt_pos, opt_len, lay_len):
    if q + 40 > stop or (buf[q] >> 4) != 6:
        return 0
    plen = _be16(buf, q + 4)
    nh = np.int64(buf[q + 6])
    u8[U8_IPVER, row] = 6
    u8[U8_TOS, row] = (_be16(buf, q) >> 4) & 0xFF
    u8[U8_TTL, row] = buf[q + 7]
    u32[U32_IPLEN, row] = plen + 40
    _copy(buf, q + 8, q + 24, v6[V6_SRC, row], 0)
    _copy(buf, q + 24, q + 40, v6[V6_DST, row], 0)
    flags = (1 << V_IP) | (1 << V_V6) | (1 << V_FRAGINFO)
    end_wire = q + 40 + plen
    cap_stop = min(stop, end_wire)
    p = q + 40
    later_fragment = False
    frag_flags = 0
    frag_off = 0
    while nh == 0 or nh == 43 or nh == 44 or nh == 51 or nh == 60 or nh == 135 \
            or nh == 139 or nh == 140:
        if p + 8 > cap_stop:
            break
        if nh == 44:
            fo = _be16(buf, p + 2)
            frag_off = fo >> 3
            frag_flags = fo & 1
            hlen = 8
            if frag_off:
                later_fragment = True
        elif nh == 51:
            hlen = (np.int64(buf[p + 1]) + 2) * 4
        else:
            hlen = (np.int64(buf[p + 1]) + 1) * 8
        nh = np.int64(buf[p])
        p += hlen
        if later_fragment:
            break
    u8[U8_PROTO, row] = nh
    u8[U8_IPFLAGS, row] = frag_flags
    u16[U16_FRAGOFF, row] = frag_off
    if frag_flags or frag_off:
        flags |= 1 << B_FRAGMENT
    if later_fragment:
        u32[U32_PAYLEN, row] = max(end_wire - p, 0)
        _head(p, cap_stop, row, head_pos, head_len)
        return flags | (1 << V_PAYLEN)
    return flags | _transport(buf, p, cap_stop, end_wire - p, nh, row, u32, u16, u8, v6,
                              head_pos, head_len, opt_pos, opt_len, lay_len)


@njit(inline="always")
def decode_frame(buf, p, caplen, link, row, u32, u16, u8, v6, head_pos, head_len, opt_pos,
                 opt_len, lay_len):
    """Decode one frame of ``caplen`` bytes at ``p`` into row ``row`` of the columns; returns
    the row's validity flags (kept in a register, stored once by the caller)."""
    head_len[row] = 0
    opt_len[row] = 0
    lay_len[row] = 0
    flags = 0
    stop = p + caplen
    q = p
    ethertype = -1
    if link == LINK_ETHERNET:
        if caplen < 14:
            return 0
        ethertype = _be16(buf, p + 12)
        q = p + 14
        while (ethertype == 0x8100 or ethertype == 0x88A8 or ethertype == 0x9100) \
                and q + 4 <= stop:
            if not (flags >> V_VLAN) & 1:
                u16[U16_VLAN, row] = _be16(buf, q) & 0xFFF
                flags |= 1 << V_VLAN
            ethertype = _be16(buf, q + 2)
            q += 4
    elif link == LINK_SLL:
        if caplen < 16:
            return 0
        ethertype = _be16(buf, p + 14)
        q = p + 16
    elif link == LINK_SLL2:
        if caplen < 20:
            return 0
        ethertype = _be16(buf, p)
        q = p + 20
    elif link == LINK_NULL or link == LINK_LOOP:
        if caplen < 4:
            return 0
        family = _be32(buf, p)
        if link == LINK_NULL and family > 0xFFFF:
            family = _rd32(buf, p, False)  # host byte order of the capturing machine
        if family == 2:
            ethertype = 0x0800
        elif family == 10 or family == 24 or family == 28 or family == 30:
            ethertype = 0x86DD
        q = p + 4
    elif link == LINK_IPV4:
        ethertype = 0x0800
    elif link == LINK_IPV6:
        ethertype = 0x86DD
    elif link == LINK_RAW or link == LINK_RAW_BSD12 or link == LINK_RAW_BSD14:
        if caplen < 1:
            return 0
        version = buf[p] >> 4
        if version == 4:
            ethertype = 0x0800
        elif version == 6:
            ethertype = 0x86DD
    if ethertype == 0x0800:
        flags |= _ipv4(buf, q, stop, row, u32, u16, u8, v6, head_pos, head_len, opt_pos,
                       opt_len, lay_len)
    elif ethertype == 0x86DD:
        flags |= _ipv6(buf, q, stop, row, u32, u16, u8, v6, head_pos, head_len, opt_pos,
                       opt_len, lay_len)
    return flags


@njit(inline="always")
def _record(row, off, caplen, wirelen, link, ts, has_ts, rec_off, tsarr, u32, u16, val):
    """What a serial pcapng scan knows of a record; the frame itself is decoded later."""
    rec_off[row] = off
    tsarr[row] = ts
    val[row] = has_ts << V_TS
    u32[U32_CAPLEN, row] = caplen
    u32[U32_WIRELEN, row] = wirelen
    u16[U16_LINKTYPE, row] = link


@njit(inline="always")
def _chunk_start(row0, row1, c, chunks):
    """Where chunk ``c`` of rows ``row0..row1`` starts: inner boundaries are multiples of 8,
    so that every bitmap byte between them belongs to one chunk."""
    if c == 0:
        return row0
    if c == chunks:
        return row1
    return min(row1, (row0 + (row1 - row0) * c // chunks + 7) & ~7)


@njit(parallel=True, nogil=True)
def _decode_rows(buf, rec_off, row0, row1, tsarr, u32, u16, u8, val, v6, head_pos, head_len,
                 opt_pos, opt_len, lay_len, bits, pcap_link, swapped, frac_ns):
    """Decode rows ``row0..row1`` in parallel (every row writes only its own slots), and set
    their validity bitmap bits block by block, while the block's flags are still in cache.

    With ``pcap_link >= 0`` the rows are classic pcap records whose serial scan kept only
    where each frame starts: their 16-byte record headers (timestamp, lengths) are read here,
    in parallel, and the link type is ``pcap_link``. Otherwise (pcapng) the scan wrote them
    and the timestamp's validity flag.
    """
    n = row1 - row0
    chunks = 1 if n < PARALLEL_MIN_ROWS else N_CHUNKS
    for c in prange(chunks):
        start = _chunk_start(row0, row1, c, chunks)
        hi = _chunk_start(row0, row1, c + 1, chunks)
        while start < hi:
            stop = min(hi, (start + DECODE_BLOCK) & ~7)
            for row in range(start, stop):
                off = rec_off[row]
                if pcap_link >= 0:
                    h = off - 16
                    tsarr[row] = (_rd32(buf, h, swapped) * 1_000_000_000
                                  + _rd32(buf, h + 4, swapped) * frac_ns)
                    caplen = _rd32(buf, h + 8, swapped)
                    u32[U32_CAPLEN, row] = caplen
                    u32[U32_WIRELEN, row] = _rd32(buf, h + 12, swapped)
                    u16[U16_LINKTYPE, row] = pcap_link
                    link = pcap_link
                    flags = 1 << V_TS
                else:
                    caplen = u32[U32_CAPLEN, row]
                    link = u16[U16_LINKTYPE, row]
                    flags = val[row] & (1 << V_TS)
                val[row] = flags | decode_frame(buf, off, caplen, link, row, u32, u16, u8, v6,
                                                head_pos, head_len, opt_pos, opt_len, lay_len)
            bitmap_rows(val, start, stop, bits)
            start = stop


@njit(parallel=True, nogil=True)
def _pack_rows(buf, row0, row1, head_pos, head_len, opt_pos, opt_len, lay_len, head_off,
               opt_off, lay_off, head_data, opt_data, lay_data, var_rows):
    """Copy the payload heads and options of rows ``row0..row1`` out of the buffer into the
    Arrow data arrays, write the option layouts, and write their offsets.

    In parallel: every chunk first sums its lengths, then packs from where the chunks before
    it end. Rows without any variable data (a capture of bare SYNs) write nothing:
    ``var_rows[0]`` is how many rows of the batch have offsets written, and the batch shares
    one zero offsets buffer when none has.
    """
    n = row1 - row0
    chunks = 1 if n < PARALLEL_MIN_ROWS else N_CHUNKS
    totals = np.zeros((chunks, 3), np.int64)
    for c in prange(chunks):
        head = opt = lay = 0  # locals: chunks summing into one cache line would slow each other
        for row in range(row0 + n * c // chunks, row0 + n * (c + 1) // chunks):
            head += head_len[row]
            opt += opt_len[row]
            lay += lay_len[row]
        totals[c, 0], totals[c, 1], totals[c, 2] = head, opt, lay
    if totals.sum() == 0:
        return
    done = var_rows[0]
    for row in range(done, row0):  # earlier rows of the batch had no variable data
        head_off[row + 1], opt_off[row + 1], lay_off[row + 1] = (
            head_off[done], opt_off[done], lay_off[done])
    head, opt, lay = head_off[row0], opt_off[row0], lay_off[row0]
    for c in range(chunks):
        totals[c, 0], head = head, head + totals[c, 0]
        totals[c, 1], opt = opt, opt + totals[c, 1]
        totals[c, 2], lay = lay, lay + totals[c, 2]
    for c in prange(chunks):
        head, opt, lay = totals[c, 0], totals[c, 1], totals[c, 2]
        # where the next chunk's data starts: block copies must not spill into it
        head_end, opt_end, lay_end = head_data.size, opt_data.size, lay_data.size
        if c + 1 < chunks:
            head_end, opt_end, lay_end = totals[c + 1, 0], totals[c + 1, 1], totals[c + 1, 2]
        for row in range(row0 + n * c // chunks, row0 + n * (c + 1) // chunks):
            # Heads are copied as two words whether the row has one or not (its length then
            # says how much counts): no branch to mispredict on traffic that mixes both.
            size = head_len[row]
            start = head_pos[row] if size else 0  # head_pos is stale for rows without one
            if head + HEAD_BYTES <= head_end and start + HEAD_BYTES <= len(buf):
                store_word(head_data, head, load_word(buf, start))
                store_word(head_data, head + 8, load_word(buf, start + 8))
            elif size:
                _copy(buf, start, start + size, head_data, head)
            head += size
            head_off[row + 1] = head
            size = opt_len[row]
            if size:
                start = opt_pos[row]
                _copy_words(buf, start, start + size, opt_data, opt, opt_end)
                opt += size
                lay += _layout(buf, start, start + size, lay_data, lay, lay_end)
            opt_off[row + 1] = opt
            lay_off[row + 1] = lay
    var_rows[0] = row1


@njit(inline="always")
def _finish(buf, row0, row1, rec_off, tsarr, u32, u16, u8, val, v6, head_pos, head_len,
            opt_pos, opt_len, lay_len, bits, head_off, opt_off, lay_off, head_data,
            opt_data, lay_data, var_rows, pcap_link, swapped, frac_ns):
    if row1 > row0:
        _decode_rows(buf, rec_off, row0, row1, tsarr, u32, u16, u8, val, v6, head_pos,
                     head_len, opt_pos, opt_len, lay_len, bits, pcap_link, swapped, frac_ns)
        _pack_rows(buf, row0, row1, head_pos, head_len, opt_pos, opt_len, lay_len, head_off,
                   opt_off, lay_off, head_data, opt_data, lay_data, var_rows)


ST_REACHED = -1  # internal: a scan got to the offset it was asked to stop at
PARALLEL_SCAN_BYTES = 1 << 20


@njit(inline="always")
def _scan_pcap(buf, pos, stop_at, end, swapped, frac_limit, snaplen, max_rows, row, rec_off):
    """Validate classic pcap record headers from ``pos`` and note where each frame starts, until
    a record starts at or after ``stop_at`` (``ST_REACHED``) or a stop reason (``ST_*``)."""
    while True:
        if pos >= stop_at:
            return pos, row, ST_REACHED
        if row >= max_rows:
            return pos, row, ST_FULL
        if pos + 16 > end:
            return pos, row, ST_NEED_MORE
        frac = _rd32(buf, pos + 4, swapped)
        caplen = _rd32(buf, pos + 8, swapped)
        wirelen = _rd32(buf, pos + 12, swapped)
        if frac >= frac_limit:
            return pos, row, ST_BAD_FRAC
        if caplen > snaplen:
            return pos, row, ST_BAD_CAPLEN
        if caplen > wirelen or wirelen > MAX_WIRE_LEN:
            return pos, row, ST_BAD_WIRELEN
        if pos + 16 + caplen > end:
            return pos, row, ST_NEED_MORE
        rec_off[row] = pos + 16  # the header's fields are read by the parallel decoding
        row += 1
        pos += 16 + caplen


@njit(inline="always")
def _guess_pcap_boundary(buf, pos, end, swapped, frac_limit, snaplen):
    """First offset >= ``pos`` where four consecutive plausible, non-empty record headers
    start; -1 if none. Only a guess (a frame's bytes can look like headers: zero padding looks
    like an empty record, hence non-empty and four), checked by the caller."""
    while pos + 16 <= end:
        p = pos
        found = 0
        while found < 4 and p + 16 <= end:
            frac = _rd32(buf, p + 4, swapped)
            caplen = _rd32(buf, p + 8, swapped)
            wirelen = _rd32(buf, p + 12, swapped)
            if frac >= frac_limit or caplen == 0 or caplen > snaplen or caplen > wirelen \
                    or wirelen > MAX_WIRE_LEN or p + 16 + caplen > end:
                break
            p += 16 + caplen
            found += 1
        if found == 4:
            return pos
        pos += 1
    return -1


@njit(parallel=True, nogil=True)
def _scan_halves(buf, pos, end, swapped, frac_limit, snaplen, max_rows, row0, rec_off, spare):
    """Scan both halves of ``buf[pos:end]`` at once. The second starts at the first plausible
    record boundary after the middle (:func:`_guess_pcap_boundary`) and notes its frames in
    ``spare``; it is right only if the first half's scan lands exactly there, which the caller
    checks. Returns ``[[pos, rows, status, -], [pos, rows, status, start]]``."""
    mid = pos + (end - pos) // 2
    out = np.zeros((2, 4), np.int64)
    for half in prange(2):
        if half == 0:
            p, r, st = _scan_pcap(buf, pos, mid, end, swapped, frac_limit, snaplen, max_rows,
                                  row0, rec_off)
            out[0, 0], out[0, 1], out[0, 2] = p, r, st
        else:
            start = _guess_pcap_boundary(buf, mid, end, swapped, frac_limit, snaplen)
            out[1, 3] = start
            if start >= 0:
                p, r, st = _scan_pcap(buf, start, end + 1, end, swapped, frac_limit, snaplen,
                                      max_rows - row0, 0, spare)
                out[1, 0], out[1, 1], out[1, 2] = p, r, st
    return out


@njit(cache=True, nogil=True)
def walk_pcap(buf, pos, end, swapped, frac_ns, frac_limit, snaplen, link, max_rows, row0,
              rec_off, tsarr, u32, u16, u8, val, v6, head_pos, head_len, opt_pos, opt_len,
              lay_len, bits, head_off, opt_off, lay_off, head_data, opt_data,
              lay_data, var_rows, spare):
    """Decode classic pcap records from ``buf[pos:end]`` into rows ``row0..``.

    Returns ``(pos, rows, status)``: the offset of the first record not consumed, the row after
    the last one written, and why it stopped (``ST_*``). Record boundaries are found by a
    serial walk; on a large buffer its two halves are walked at once (``spare``: scratch for
    the second half's frame offsets), falling back to the serial walk from where the first
    half ended when the second half's guessed start turns out wrong.
    """
    row = row0
    status = ST_REACHED
    if (N_CHUNKS > 1 and end - pos >= PARALLEL_SCAN_BYTES
            and max_rows - row0 >= PARALLEL_MIN_ROWS):
        out = _scan_halves(buf, pos, end, swapped, frac_limit, snaplen, max_rows, row0,
                           rec_off, spare)
        pos, row, status = out[0, 0], out[0, 1], out[0, 2]
        if status == ST_REACHED and out[1, 3] == pos:  # the halves meet: both are right
            found = out[1, 1]
            take = min(found, max_rows - row)
            rec_off[row:row + take] = spare[:take]
            row += take
            if take < found:  # the batch filled up inside the second half
                pos, status = spare[take] - 16, ST_FULL
            else:
                pos, status = out[1, 0], out[1, 2]
            if row >= max_rows:  # as the serial scan: a full batch is reported before the rest
                status = ST_FULL
    if status == ST_REACHED:
        pos, row, status = _scan_pcap(buf, pos, end + 1, end, swapped, frac_limit, snaplen,
                                      max_rows, row, rec_off)
    _finish(buf, row0, row, rec_off, tsarr, u32, u16, u8, val, v6, head_pos, head_len,
            opt_pos, opt_len, lay_len, bits, head_off, opt_off, lay_off, head_data,
            opt_data, lay_data, var_rows, link, swapped, frac_ns)
    return pos, row, status


@njit(cache=True, nogil=True)
def find_pcap_record(buf, pos, end, swapped, frac_limit, snaplen):
    """First offset >= ``pos`` where two consecutive plausible record headers start (or a
    plausible record ends exactly at ``end``); -1 if none in the buffer. Used to resynchronise
    after a corrupt record."""
    while pos + 16 <= end:
        ok = True
        p = pos
        for _ in range(2):
            if p == end:
                break
            if p + 16 > end:
                ok = False
                break
            frac = _rd32(buf, p + 4, swapped)
            caplen = _rd32(buf, p + 8, swapped)
            wirelen = _rd32(buf, p + 12, swapped)
            if frac >= frac_limit or caplen > snaplen or caplen > wirelen \
                    or wirelen > MAX_WIRE_LEN or p + 16 + caplen > end:
                ok = False
                break
            p += 16 + caplen
        if ok:
            return pos
        pos += 1
    return -1


@njit(inline="always")
def _pcapng_ts(hi, lo, if_pow2, if_exp, if_offset_ns, iface):
    raw = (hi << 32) | lo
    e = if_exp[iface]
    if if_pow2[iface]:
        whole = raw >> e
        frac = raw & ((np.int64(1) << e) - 1)
        ns = whole * 1_000_000_000 + np.int64(frac * 1e9 / (2.0 ** e))
    elif e <= 9:
        ns = raw * np.int64(10 ** (9 - e))
    else:
        ns = raw // np.int64(10 ** (e - 9))
    return ns + if_offset_ns[iface]


@njit(cache=True, nogil=True)
def walk_pcapng(buf, pos, end, swapped, if_link, if_snaplen, if_pow2, if_exp, if_offset_ns,
                n_if, max_rows, row0, rec_off, tsarr, u32, u16, u8, val, v6, head_pos,
                head_len, opt_pos, opt_len, lay_len, bits, head_off, opt_off,
                lay_off, head_data, opt_data, lay_data, var_rows, skipped):
    """Decode pcapng packet blocks (enhanced, simple, obsolete packet) from ``buf[pos:end]``.

    Stops with ``ST_PYTHON`` at a section header or interface description block. Packets of
    interfaces whose link type is unsupported (``if_link < 0``) are counted in
    ``skipped[0]`` (records) and ``skipped[1]`` (bytes).
    """
    row = row0
    status = ST_FULL
    while True:
        if row >= max_rows:
            status = ST_FULL
            break
        if pos + 12 > end:
            status = ST_NEED_MORE
            break
        btype = _rd32(buf, pos, swapped)
        if btype == 0x0A0D0D0A or btype == 1:
            status = ST_PYTHON
            break
        blen = _rd32(buf, pos + 4, swapped)
        if blen < 12 or blen % 4 != 0:
            status = ST_BAD_BLOCKLEN
            break
        if pos + blen > end:
            status = ST_NEED_MORE
            break
        if _rd32(buf, pos + blen - 4, swapped) != blen:
            status = ST_BAD_TRAILER
            break
        if btype == 6 or btype == 2:
            if blen < 32:
                status = ST_BAD_BLOCKLEN
                break
            if btype == 6:
                iface = _rd32(buf, pos + 8, swapped)
            else:
                iface = _rd16(buf, pos + 8, swapped)
            hi = _rd32(buf, pos + 12, swapped)
            lo = _rd32(buf, pos + 16, swapped)
            caplen = _rd32(buf, pos + 20, swapped)
            wirelen = _rd32(buf, pos + 24, swapped)
            if iface >= n_if:
                status = ST_BAD_IFACE
                break
            if 28 + caplen > blen - 4:
                status = ST_BAD_PKTLEN
                break
            if caplen > wirelen or wirelen > MAX_WIRE_LEN:
                status = ST_BAD_WIRELEN
                break
            if if_link[iface] < 0:
                skipped[0] += 1
                skipped[1] += blen
            else:
                ts = _pcapng_ts(hi, lo, if_pow2, if_exp, if_offset_ns, iface)
                _record(row, pos + 28, caplen, wirelen, if_link[iface], ts, 1, rec_off, tsarr,
                        u32, u16, val)
                row += 1
        elif btype == 3:
            if blen < 16:  # no room for the original length field
                status = ST_BAD_BLOCKLEN
                break
            if n_if < 1:
                status = ST_BAD_IFACE
                break
            wirelen = _rd32(buf, pos + 8, swapped)
            caplen = min(wirelen, blen - 16)
            if if_snaplen[0] > 0:
                caplen = min(caplen, if_snaplen[0])
            if wirelen > MAX_WIRE_LEN:
                status = ST_BAD_WIRELEN
                break
            if if_link[0] < 0:
                skipped[0] += 1
                skipped[1] += blen
            else:
                _record(row, pos + 12, caplen, wirelen, if_link[0], 0, 0, rec_off, tsarr,
                        u32, u16, val)
                row += 1
        pos += blen
    _finish(buf, row0, row, rec_off, tsarr, u32, u16, u8, val, v6, head_pos, head_len,
            opt_pos, opt_len, lay_len, bits, head_off, opt_off, lay_off, head_data,
            opt_data, lay_data, var_rows, -1, swapped, 0)
    return pos, row, status


@njit(cache=True, nogil=True)
def find_pcapng_block(buf, pos, end, swapped):
    """First 4-byte step >= ``pos`` where a known block type with a consistent length and
    trailer starts; -1 if none in the buffer."""
    while pos + 12 <= end:
        btype = _rd32(buf, pos, swapped)
        if btype == 0x0A0D0D0A or (btype >= 1 and btype <= 6) or btype == 0x0BAD \
                or btype == 0x40000BAD:
            blen = _rd32(buf, pos + 4, swapped)
            if blen >= 12 and blen % 4 == 0 and pos + blen <= end \
                    and _rd32(buf, pos + blen - 4, swapped) == blen:
                return pos
        pos += 4
    return -1


@njit(inline="always")
def _transpose8(x):
    """Transpose the 8x8 bit matrix in ``x`` (bit 8*r + c <-> bit 8*c + r)."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    return x ^ t ^ (t << np.uint64(28))


@njit(cache=True, nogil=True)
def bitmap_rows(val, lo, hi, bits):
    """Set the Arrow bitmap bits (LSB first) of rows ``lo..hi`` for every flag in ``val``.
    Eight rows at a time: their flag bytes form an 8x8 bit matrix whose transpose holds eight
    flags' bitmap bytes (no per-bit branches). A byte that rows outside ``lo..hi`` share is
    OR-ed in, so ``bits`` starts zeroed and a batch's rows may arrive over several calls.
    Valid rows are counted afterwards, by a popcount over the finished bitmaps."""
    b = lo >> 3
    while b * 8 < hi:
        r0 = max(b * 8, lo)
        r1 = min(b * 8 + 8, hi)
        full = r0 == b * 8 and r1 == b * 8 + 8
        first = val[r0]
        same = full
        for r in range(r0 + 1, r1):
            same &= val[r] == first
        if same:  # eight rows with the same flags (most of a darknet): no transpose
            for f in range(N_VAL):
                bits[f, b] = 0xFF if (first >> f) & 1 else 0
        else:
            for group in range((N_VAL + 7) // 8):
                x = np.uint64(0)
                for r in range(r0, r1):
                    flags = (np.uint64(val[r]) >> np.uint64(8 * group)) & np.uint64(0xFF)
                    x |= flags << np.uint64(8 * (r - b * 8))
                y = _transpose8(x)
                for f in range(min(8, N_VAL - 8 * group)):
                    byte = (y >> np.uint64(8 * f)) & np.uint64(0xFF)
                    if full:
                        bits[8 * group + f, b] = byte
                    else:
                        bits[8 * group + f, b] |= byte
        b += 1
