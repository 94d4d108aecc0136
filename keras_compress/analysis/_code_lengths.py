"""Huffman code lengths from symbol counts, with JPEG's length limit.

Ties are broken by symbol order, so the lengths are deterministic; the
limit is the adjustment of ITU T.81, Annex K.3 (see
`keras_compress.analysis.coding`).
"""

import heapq


def code_lengths(counts, max_length):
    """Huffman code lengths for `counts` (all > 0), at most `max_length`.

    Args:
        counts: The count of each symbol (a non-empty list of ints > 0).
        max_length: Longest allowed code, in bits.

    Returns:
        The code length of each symbol, in order (`[0]` for one symbol).
    """
    return _limit_lengths(_huffman_lengths(counts), counts, max_length)


def _huffman_lengths(counts):
    """Unlimited Huffman code lengths for `counts` (all > 0), in order."""
    n = len(counts)
    if n == 1:
        return [0]
    heap = [(int(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    parent = [0] * (2 * n - 1)
    node = n
    while len(heap) > 1:
        ca, a = heapq.heappop(heap)
        cb, b = heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (ca + cb, node))
        node += 1
    depth = [0] * (2 * n - 1)
    for i in range(2 * n - 3, -1, -1):  # Parents come after children.
        depth[i] = depth[parent[i]] + 1
    return depth[:n]


def _limit_lengths(lengths, counts, max_length):
    """Applies JPEG's Annex K.3 length limit; returns new lengths."""
    longest = max(lengths)
    if longest <= max_length:
        return lengths
    per_length = [0] * (longest + 1)
    for n in lengths:
        per_length[n] += 1
    for i in range(longest, max_length, -1):
        while per_length[i] > 0:
            j = i - 2
            while per_length[j] == 0:
                j -= 1
            per_length[i] -= 2  # Two sibling leaves leave depth i ...
            per_length[i - 1] += 1  # ... one takes their parent's place,
            per_length[j + 1] += 2  # the other splits a shallower leaf,
            per_length[j] -= 1  # which moves one level down with it.
    ranked = sorted(range(len(counts)), key=lambda s: (-counts[s], s))
    flat = [n for n in range(len(per_length)) for _ in range(per_length[n])]
    result = [0] * len(counts)
    for s, n in zip(ranked, flat):
        result[s] = n
    return result
