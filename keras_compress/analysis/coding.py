"""Bit streams and canonical Huffman codes over integer symbols.

These are the real codes behind the sizes `keras_compress.analysis`
reports: every Huffman size is the length of a bit string `HuffmanCode.encode`
wrote and `HuffmanCode.decode` reads back, plus the length of the code
table `HuffmanCode.pack_table` wrote.

Conventions:

- Bits are written most significant bit first and packed into bytes with
  `numpy.packbits`; a stream is `(bytes, nbits)`, the last byte zero-padded.
- Code lengths are those of a Huffman tree built from the symbol counts
  (ties broken by symbol order, so the code is deterministic), limited to
  `max_length` bits (default 16) with the adjustment of JPEG (ITU T.81,
  Annex K.3), which keeps a complete prefix code; the limited code is
  optimal only when the limit does not bind. A stream with one distinct
  symbol gets a 0-bit code: its length alone (known to the decoder) says
  how many symbols it holds.
- Codes are canonical (sorted by length, then symbol), so a decoder needs
  only each symbol's code length: the code table is, per distinct symbol,
  its code length in `LENGTH_FIELD_BITS` (5) bits, preceded by the symbol
  itself in `symbol_bits` bits unless the alphabet is `0 .. k-1` with every
  symbol present (then the symbols are implicit). The number of table
  entries is header information, not counted here.
- The entropy bound `entropy_bits` is `sum(-log2 p(s))` over the stream with
  `p` the stream's own symbol frequencies: no code that gives each symbol
  one fixed code word can make the stream shorter. It is a bound, not a
  size.
"""

import dataclasses

import numpy as np

from keras_compress.analysis._bits import pack_bits
from keras_compress.analysis._bits import read_fields
from keras_compress.analysis._bits import unpack_bits
from keras_compress.analysis._code_lengths import code_lengths

LENGTH_FIELD_BITS = 5
MAX_CODE_LENGTH = 16

def entropy_bits(symbols):
    """The entropy bound of a symbol stream, in bits.

    Args:
        symbols: Integer symbols (array-like, any shape).

    Returns:
        `sum(-log2 p(s))` over the stream, `p` being the stream's own symbol
        frequencies (a float; 0.0 for an empty stream or one symbol).
    """
    _, counts = np.unique(np.asarray(symbols).reshape(-1), return_counts=True)
    total = counts.sum()
    if total == 0:
        return 0.0
    return float(-(counts * np.log2(counts / total)).sum()) + 0.0  # No -0.0.


@dataclasses.dataclass(frozen=True)
class HuffmanCode:
    """A canonical prefix code over integer symbols.

    Args:
        symbols: The distinct symbols, ascending (tuple of ints).
        lengths: The code length of each symbol, in bits (tuple of ints).

    Example:

    ```python
    stream = np.array([3, 3, 3, 1, 7, 3, 1])
    code = HuffmanCode.from_symbols(stream)
    data, nbits = code.encode(stream)
    assert nbits == code.encoded_bits(stream) == 10
    assert (code.decode(data, nbits, len(stream)) == stream).all()
    ```
    """

    symbols: tuple
    lengths: tuple

    @classmethod
    def from_symbols(cls, symbols, max_length=MAX_CODE_LENGTH):
        """Builds the code from the symbol counts of a stream.

        Args:
            symbols: Integer symbols (array-like, any shape).
            max_length: Longest allowed code word, in bits (an int in
                `[1, 31]`). Defaults to 16.

        Returns:
            A `HuffmanCode` (with no symbols for an empty stream).
        """
        if isinstance(max_length, bool) or not isinstance(
            max_length, (int, np.integer)
        ) or not 1 <= max_length < 2 ** LENGTH_FIELD_BITS:
            raise ValueError(
                "Expected `max_length` to be an int in [1, "
                f"{2 ** LENGTH_FIELD_BITS - 1}]. Received: "
                f"max_length={max_length!r}"
            )
        values, counts = np.unique(
            _as_int_stream(symbols, "symbols"), return_counts=True
        )
        if len(values) > 2 ** max_length:
            raise ValueError(
                f"Expected at most 2 ** max_length = {2 ** max_length} "
                "distinct symbols for codes of at most "
                f"max_length={max_length} bits. Received: {len(values)} "
                "distinct symbols"
            )
        counts = [int(c) for c in counts]
        if not counts:
            return cls((), ())
        lengths = code_lengths(counts, max_length)
        return cls(tuple(int(v) for v in values), tuple(lengths))

    @property
    def max_length(self):
        """The longest code word, in bits (0 for 0 or 1 symbols)."""
        return max(self.lengths, default=0)

    def codes(self):
        """Returns `{symbol: (code word, length)}` of the canonical code."""
        order = sorted(range(len(self.symbols)),
                       key=lambda i: (self.lengths[i], self.symbols[i]))
        result, code, previous = {}, 0, None
        for i in order:
            n = self.lengths[i]
            if previous is not None:
                code = (code + 1) << (n - previous)
            result[self.symbols[i]] = (code, n)
            previous = n
        return result

    def encoded_bits(self, symbols):
        """Length in bits of `encode(symbols)`: sum of count * code length."""
        values, counts = np.unique(
            _as_int_stream(symbols, "symbols"), return_counts=True
        )
        length = dict(zip(self.symbols, self.lengths))
        missing = [int(v) for v in values if int(v) not in length]
        if missing:
            raise ValueError(
                "Expected every symbol to have a code. Received: symbols "
                f"without one: {missing[:5]}"
            )
        return int(sum(int(c) * length[int(v)] for v, c in zip(values, counts)))

    def encode(self, symbols):
        """Encodes a stream.

        Args:
            symbols: Integer symbols (array-like), each one of `self.symbols`.

        Returns:
            `(data, nbits)`: the bit stream as `bytes` and its length.
        """
        stream = _as_int_stream(symbols, "symbols")
        if stream.size == 0:
            return b"", 0
        codes = self.codes()
        table = np.asarray(self.symbols, dtype=np.int64)
        where = np.searchsorted(table, stream)
        where = np.minimum(where, len(table) - 1)
        if len(table) == 0 or np.any(table[where] != stream):
            bad = stream[(len(table) == 0) | (table[where] != stream)]
            raise ValueError(
                "Expected every symbol to have a code. Received: symbols "
                f"without one: {np.unique(bad)[:5].tolist()}"
            )
        words = np.array([codes[s][0] for s in self.symbols], dtype=np.uint64)
        widths = np.array(self.lengths, dtype=np.int64)
        return pack_bits(words[where], widths[where])

    def decode(self, data, nbits, count):
        """Decodes `count` symbols from a stream made by `encode`.

        Args:
            data: The stream as `bytes`.
            nbits: Its length in bits.
            count: Number of symbols it holds.

        Returns:
            The symbols as an int64 array.

        Raises:
            ValueError: if the stream is truncated, has bits left over or
                holds a bit pattern that is no code word.
        """
        if count == 0 or not self.symbols:
            if count or nbits:
                raise ValueError(
                    f"Expected an empty stream for count={count} with "
                    f"{len(self.symbols)} symbols. Received: nbits={nbits}"
                )
            return np.zeros(0, dtype=np.int64)
        top = self.max_length
        if top == 0:
            if nbits:
                raise ValueError(
                    "Expected 0 bits for a one-symbol code. "
                    f"Received: nbits={nbits}"
                )
            return np.full(count, self.symbols[0], dtype=np.int64)
        lut_symbol = np.zeros(1 << top, dtype=np.int64)
        lut_length = np.zeros(1 << top, dtype=np.int64)
        for symbol, (word, n) in self.codes().items():
            start = word << (top - n)
            lut_symbol[start:start + (1 << (top - n))] = symbol
            lut_length[start:start + (1 << (top - n))] = n
        bits = np.concatenate(
            [unpack_bits(data, nbits), np.zeros(top, dtype=np.uint8)]
        ).astype(np.int32)
        windows = np.zeros(nbits, dtype=np.int32)
        for j in range(top):  # windows[p] = the `top` bits from position p.
            windows |= bits[j:j + nbits] << (top - 1 - j)
        windows = windows.tolist()
        symbols_of = lut_symbol.tolist()
        lengths_of = lut_length.tolist()
        out = [0] * count
        p = 0
        for i in range(count):
            if p >= nbits:
                raise ValueError(
                    f"Expected {count} symbols in the stream. Received: a "
                    f"stream that ends after {i} (truncated)"
                )
            w = windows[p]
            if lengths_of[w] == 0:
                raise ValueError(
                    f"Expected a code word at bit {p}. Received: bits that "
                    "start no code word"
                )
            out[i] = symbols_of[w]
            p += lengths_of[w]
        if p != nbits:
            raise ValueError(
                f"Expected the {count} symbols to fill the stream's {nbits} "
                f"bits. Received: a stream that decodes to {p} bits"
            )
        return np.asarray(out, dtype=np.int64)

    def table_bits(self, symbol_bits=None):
        """Length in bits of `pack_table(symbol_bits)`."""
        field = LENGTH_FIELD_BITS + (symbol_bits or 0)
        return len(self.symbols) * field

    def pack_table(self, symbol_bits=None):
        """Writes the code table: per symbol, `[symbol] length`.

        Args:
            symbol_bits: Width of the symbol field, or `None` when the
                symbols are `0 .. k-1` (then they are implicit and only the
                lengths are written). Defaults to `None`.

        Returns:
            `(data, nbits)`, with `nbits == table_bits(symbol_bits)`.
        """
        if symbol_bits is None:
            if self.symbols != tuple(range(len(self.symbols))):
                raise ValueError(
                    "Expected the symbols 0 .. k-1 for a table with implicit "
                    f"symbols (symbol_bits=None). Received: symbols "
                    f"{list(self.symbols[:5])}..."
                )
            return pack_bits(self.lengths, LENGTH_FIELD_BITS)
        if self.symbols and (
            self.symbols[0] < 0 or self.symbols[-1] >= 2 ** symbol_bits
        ):
            raise ValueError(
                f"Expected symbols in [0, 2 ** {symbol_bits}) for "
                f"symbol_bits={symbol_bits}. Received: symbols from "
                f"{self.symbols[0]} to {self.symbols[-1]}"
            )
        fields = np.stack(
            [np.asarray(self.symbols), np.asarray(self.lengths)], axis=1
        ).reshape(-1)
        widths = np.tile([symbol_bits, LENGTH_FIELD_BITS], len(self.symbols))
        return pack_bits(fields, widths)

    @classmethod
    def unpack_table(cls, data, nbits, count, symbol_bits=None):
        """Reads a table written by `pack_table`.

        Args:
            data: The table as `bytes`.
            nbits: Its length in bits.
            count: Number of symbols in the table.
            symbol_bits: As given to `pack_table`. Defaults to `None`.

        Returns:
            The `HuffmanCode`.
        """
        bits = unpack_bits(data, nbits)
        width = LENGTH_FIELD_BITS + (symbol_bits or 0)
        fields, end = read_fields(bits, 0, count, width)
        if end != nbits:
            raise ValueError(
                f"Expected a table of {count} x {width} bits. "
                f"Received: nbits={nbits}"
            )
        lengths = fields & (2 ** LENGTH_FIELD_BITS - 1)
        if symbol_bits is None:
            symbols = np.arange(count)
        else:
            symbols = fields >> LENGTH_FIELD_BITS
        kraft = sum(2.0 ** -int(n) for n in lengths)
        if count > 1 and (np.any(lengths == 0) or kraft > 1.0) or (
            len(set(symbols.tolist())) != count
        ):
            raise ValueError(
                "Expected the table of a prefix code (distinct symbols, "
                "lengths >= 1 with sum(2 ** -length) <= 1). Received: "
                f"lengths {lengths.tolist()[:8]}..."
            )
        return cls(tuple(int(s) for s in symbols),
                   tuple(int(n) for n in lengths))


def _as_int_stream(symbols, arg_name):
    stream = np.asarray(symbols)
    if stream.dtype == object or not (
        np.issubdtype(stream.dtype, np.integer) or stream.dtype == bool
        or stream.size == 0
    ):
        raise TypeError(
            f"Expected `{arg_name}` to be an array of integers. "
            f"Received: {arg_name} with dtype {stream.dtype}"
        )
    return stream.reshape(-1).astype(np.int64)
