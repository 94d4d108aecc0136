"""DECODE type 1: Huffman codes with Xtensa-style multi-level decode tables.

Encoded data: the code words of the elements in element order, most
significant bit first, read by the kernel as big-endian 32-bit words
(so the stream is padded to whole words, and far enough that the
kernel's look-ahead stays inside it). Ancillary data: the 16-byte DCM
(byte 4: Huffman version 1; byte 5: `((initial bits - 1) << 4) | wide`,
`wide` = 32-bit table entries), then the decode tables. A table of
`2**w` entries is indexed by the next `w` bits. An entry either holds a
symbol (top bit set; bits 11-14, or 27-30 when wide: how many of the `w`
bits the code used, the rest are put back; low bits: the value) or points
to a sub-table (top bit clear; same field: sub-table bits - 1; low bits:
the distance from this entry to the sub-table). 16-bit entries decode
int8 only and reach 2047 entries ahead; wide entries decode int8 and
int16 (TFLite Micro's `decode_state_huffman.cc`).
"""

import heapq

import numpy as np

from keras_compress._decode import layout as _layout

TYPE = 1
MAX_TABLE_BITS = 15  # Symbol entries count used bits in 4 bits.
_NARROW = {"found": 0x8000, "shift": 11, "value": 0x07FF}
_WIDE = {"found": 0x80000000, "shift": 27, "value": 0x07FFFFFF}


def code_lengths(counts):
    """Huffman code lengths (>= 1) for symbol `counts`."""
    n = len(counts)
    if n == 1:
        return [1]
    heap = [(int(c), i, (i,)) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    lengths = [0] * n
    order = n
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, order, s1 + s2))
        order += 1
    return lengths


def canonical_codes(lengths):
    """Canonical code words for `lengths` (shorter codes first)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    codes = [0] * len(lengths)
    code, previous = 0, lengths[order[0]]
    for k, i in enumerate(order):
        if k:
            code = (code + 1) << (lengths[i] - previous)
        codes[i] = code
        previous = lengths[i]
    return codes


class _Planner:
    """Chooses the bits of every (sub-)table to use the fewest entries."""

    def __init__(self, codes, lengths):
        self.codes = codes
        self.lengths = lengths
        self.memo = {}

    def below(self, members, depth, width):
        """Codes of `members` longer than `depth + width`, by next bits."""
        groups = {}
        for i in members:
            rest = self.lengths[i] - depth
            if rest > width:
                bits = (self.codes[i] >> (rest - width)) & ((1 << width) - 1)
                groups.setdefault(bits, []).append(i)
        return groups

    def best(self, members, depth, prefix):
        """`(entries, width)` of the smallest table tree for a node."""
        key = (depth, prefix)
        if key not in self.memo:
            longest = max(self.lengths[i] for i in members) - depth
            choice = None
            for width in range(1, min(longest, MAX_TABLE_BITS) + 1):
                total = 1 << width
                for bits, sub in self.below(members, depth, width).items():
                    total += self.best(sub, depth + width, (prefix << width) | bits)[0]
                    if choice is not None and total >= choice[0]:
                        break
                if choice is None or total < choice[0]:
                    choice = (total, width)
            self.memo[key] = choice
        return self.memo[key]


def build_tables(symbols, lengths, codes):
    """Decode tables as entry fields, plus the bits read per symbol.

    Returns:
        `(entries, initial_bits, read_bits)`: a list of
        `("symbol", used, value)` / `("table", bits - 1, distance)`
        tuples, the bits of the first table, and for each symbol the bits
        the kernel reads to decode it (the widths of its tables).
    """
    planner = _Planner(codes, lengths)
    members = list(range(len(symbols)))
    initial = planner.best(members, 0, 0)[1]
    entries = []
    read_bits = [0] * len(symbols)
    queue = [(members, 0, 0, initial)]
    bases = [0]
    entries.extend([None] * (1 << initial))
    while queue:
        members, depth, prefix, width = queue.pop(0)
        base = bases.pop(0)
        for i in members:
            read_bits[i] += width
        for i in members:
            rest = lengths[i] - depth
            if rest <= width:
                first = (codes[i] << (width - rest)) & ((1 << width) - 1)
                for slot in range(first, first + (1 << (width - rest))):
                    entries[base + slot] = ("symbol", rest, int(symbols[i]))
        for bits, sub in sorted(planner.below(members, depth, width).items()):
            child = (prefix << width) | bits
            sub_width = planner.best(sub, depth + width, child)[1]
            start = len(entries)
            entries.extend([None] * (1 << sub_width))
            entries[base + bits] = ("table", sub_width - 1, start - (base + bits))
            queue.append((sub, depth + width, child, sub_width))
            bases.append(start)
    # Only a one-symbol code leaves slots no code reaches.
    entries = [e or ("symbol", 1, int(symbols[0])) for e in entries]
    return entries, initial, read_bits


def _pack_entries(entries, wide, dtype):
    fmt = _WIDE if wide else _NARROW
    mask = (1 << (8 * dtype.itemsize)) - 1
    words = []
    for kind, count, value in entries:
        field = count << fmt["shift"]
        if kind == "symbol":
            words.append(fmt["found"] | field | (value & mask))
        else:
            words.append(field | value)
    return np.asarray(words, dtype="<u4" if wide else "<u2").tobytes()


class Huffman:
    """Encoder and runtime-faithful decoder of Huffman-compressed tensors."""

    name = "huffman"

    def encode(self, values, layout):
        """Returns `(encoded, ancillary, info)`; raises `NotDecodable`."""
        if layout.dtype not in (np.dtype("i1"), np.dtype("<i2")):
            raise _layout.NotDecodable(
                f"Huffman decodes int8 and int16 only, not {layout.dtype}"
            )
        flat = np.asarray(values, dtype=layout.dtype).reshape(-1)
        symbols, inverse, counts = np.unique(
            flat, return_inverse=True, return_counts=True
        )
        inverse = inverse.reshape(-1)
        lengths = code_lengths(counts)
        codes = canonical_codes(lengths)
        entries, initial, read_bits = build_tables(symbols, lengths, codes)
        longest_jump = max((v for k, _, v in entries if k == "table"), default=0)
        wide = layout.dtype != np.int8 or longest_jump > _NARROW["value"]
        if longest_jump > _WIDE["value"]:
            raise _layout.NotDecodable("Huffman tables too large")
        element_lengths = np.asarray(lengths, dtype=np.int64)[inverse]
        element_codes = np.asarray(codes, dtype=np.int64)[inverse]
        starts = np.concatenate([[0], np.cumsum(element_lengths)[:-1]])
        total = int(element_lengths.sum())
        # The kernel reads a whole table index even past the last code.
        reach = int((starts + np.asarray(read_bits)[inverse]).max())
        words = -(-max(total, reach, 1) // 32)
        stream = np.zeros(words * 32, dtype=np.uint8)
        for j in range(int(element_lengths.max())):
            use = element_lengths > j
            shift = element_lengths[use] - 1 - j
            stream[starts[use] + j] = (element_codes[use] >> shift) & 1
        encoded = np.packbits(stream).tobytes()
        header = _layout.dcm(TYPE, [1, ((initial - 1) << 4) | int(wide)])
        ancillary = header + _pack_entries(entries, wide, layout.dtype)
        info = {"distinct": int(len(symbols)), "bits": round(total / flat.size, 3)}
        return encoded, ancillary, info

    def decode(self, encoded, ancillary, layout):
        """The values TFLM's Huffman kernel writes, in element order.

        Follows the kernel step by step (32-bit big-endian words, table
        walk, bits put back), with bounds checks the kernel does not make.
        """
        _layout.check_dcm(ancillary, TYPE, "Huffman")
        wide = bool(ancillary[5] & 0x01)
        initial = ((ancillary[5] & 0xF0) >> 4) + 1
        if not wide and layout.dtype != np.int8:
            raise _layout.NotDecodable("16-bit Huffman tables decode int8 only")
        if layout.dtype not in (np.dtype("i1"), np.dtype("<i2")):
            raise _layout.NotDecodable(f"Huffman cannot decode {layout.dtype}")
        fmt = _WIDE if wide else _NARROW
        table = np.frombuffer(
            ancillary[_layout.DCM_BYTES:],
            dtype="<u4" if wide else "<u2",
            count=(len(ancillary) - _layout.DCM_BYTES) // (4 if wide else 2),
        ).tolist()
        words = np.frombuffer(
            encoded, dtype=">u4", count=len(encoded) // 4
        ).tolist()
        reader = _WordReader(words)
        count_mask = 0xF << fmt["shift"]
        out = np.empty(layout.size, dtype=np.int64)
        for k in range(layout.size):
            used = initial
            offset = reader.get(used)
            entry = _entry(table, offset)
            while not entry & fmt["found"]:
                used = ((entry & count_mask) >> fmt["shift"]) + 1
                offset += (entry & fmt["value"]) + reader.get(used)
                entry = _entry(table, offset)
            out[k] = entry & fmt["value"]
            residual = (entry & count_mask) >> fmt["shift"]
            if used > residual:
                reader.put_back(used - residual)
        bits = 8 * layout.dtype.itemsize
        out &= (1 << bits) - 1
        out -= (out >> (bits - 1)) << bits  # Two's complement, as a cast does.
        return out.astype(layout.dtype)


def _entry(table, offset):
    if offset >= len(table):
        raise _layout.NotDecodable(f"Huffman table entry {offset} past the table")
    return table[offset]


class _WordReader:
    """The kernel's bit reader over 32-bit words, with bounds checks."""

    def __init__(self, words):
        self.words = words
        self.next = 0
        self.hold = self._word()
        self.offset = 32  # Unread bits in `hold`.

    def _word(self):
        if self.next >= len(self.words):
            raise _layout.NotDecodable("the Huffman kernel would read past the codes")
        word = self.words[self.next]
        self.next += 1
        return word

    def get(self, count):
        output = 0
        if count > self.offset:
            output = (self.hold & ((1 << self.offset) - 1)) << (count - self.offset)
            count -= self.offset
            self.hold = self._word()
            self.offset = 32
        shift = self.offset - count
        output |= (self.hold >> shift) & ((1 << count) - 1)
        self.offset -= count
        return output

    def put_back(self, count):
        self.offset += count
        if self.offset > 32:
            self.offset -= 32
            self.next -= 1
            self.hold = self.words[self.next - 1]
