r"""The byte-pair-encoding merge rule, and learning merges with incremental pair counts.

BPE (Sennrich et al., 2016; byte-level as in GPT-2) starts from the 256 byte values as
tokens. A *merge* replaces every adjacent occurrence of a pair of tokens :math:`(a, b)`
by one new token :math:`c` whose bytes are those of :math:`a` followed by those of
:math:`b`. Training repeats: count every adjacent pair, merge the most frequent one, give
it the next id (256, 257, ...). The learned merges, in order, are the tokenizer.

Counting is done over *words* (the pieces of :mod:`dlkit.text.pretokenize`), since merges
never cross them: with :math:`n_w` the number of times word :math:`w` occurs in the
corpus and :math:`w_i` its current tokens,

.. math::

    \operatorname{count}(a, b) = \sum_w n_w \,\bigl|\{\, i : (w_i, w_{i+1}) = (a, b) \,\}\bigr|

(overlapping occurrences count: ``a a a`` holds the pair ``(a, a)`` twice, although one
merge, left to right, replaces only the first two).

**Tie-breaking**, so that training is deterministic: the highest count wins; among equal
counts, the *smallest pair of ids* :math:`(a, b)`, compared first by :math:`a`, then by
:math:`b`. That is Hugging Face ``tokenizers``' rule too (its ``BpeTrainer`` keeps a max-heap
ordered by count, then by ascending pair of ids); the two differ only in how the 256 byte
tokens are numbered (here id = byte value; there, sorted by GPT-2's printable stand-in
character, which moves the space, newline and other control bytes behind the printable
ones), so their choices can differ where such a tie involves those bytes
(``tests/test_text_bpe.py`` measures it).

**Incremental counts.** Recounting every pair after every merge costs a pass over the
whole corpus per merge. Instead :func:`learn_merges` keeps the counts and an index
``pair -> words that contain it``; merging :math:`(a, b)` visits only the words in its
index entry, subtracts the counts of their old pairs, adds those of their new pairs, and
pushes the changed counts onto a heap. The heap may hold stale entries (a pair's count
changed after it was pushed); an entry is used only if its count is still the current
one, and every change pushes the current count, so the top valid entry is always the
best pair.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

__all__ = ["Merge", "count_words", "get_pair_counts", "learn_merges", "merge_pair"]

Pair = tuple[int, int]


class Merge(NamedTuple):
    """One learned merge: the ``pair`` of ids, replaced by ``new_id``; ``count`` when chosen."""

    pair: Pair
    new_id: int
    count: int


def get_pair_counts(ids: Sequence[int], counts: Counter[Pair] | None = None) -> Counter[Pair]:
    """How often each adjacent pair occurs in ``ids`` (added to ``counts`` when given).

    >>> dict(get_pair_counts([1, 2, 3, 1, 2]))
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    """
    counts = Counter() if counts is None else counts
    for pair in itertools.pairwise(ids):
        counts[pair] += 1
    return counts


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """``ids`` with every occurrence of ``pair``, scanned left to right, replaced by ``new_id``.

    >>> merge_pair([1, 2, 3, 1, 2], (1, 2), 4)
    [4, 3, 4]
    >>> merge_pair([5, 5, 5], (5, 5), 6)  # non-overlapping, from the left
    [6, 5]
    """
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(
    word_counts: Mapping[bytes, int],
    num_merges: int,
    *,
    first_id: int = 256,
    progress: bool = False,
) -> list[Merge]:
    """Up to ``num_merges`` merges learned from ``{word bytes: occurrences}``, in order.

    Stops early when no pair is left (every word is a single token). New ids are
    ``first_id, first_id + 1, ...``; ties are broken as the module docstring says.
    """
    words: list[list[int]] = [list(word) for word in word_counts]  # byte values = ids 0..255
    weights: list[int] = list(word_counts.values())
    pair_counts: Counter[Pair] = Counter()
    where: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words holding it
    for index, ids in enumerate(words):
        for pair in itertools.pairwise(ids):
            pair_counts[pair] += weights[index]
            where[pair].add(index)
    # max-heap by count, then min by pair: heapq is a min-heap of (-count, pair)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[Merge] = []
    bar = _progress_bar(num_merges) if progress else None
    while len(merges) < num_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative_count:
            continue  # stale: this pair's count changed after the entry was pushed
        new_id = first_id + len(merges)
        merges.append(Merge(pair, new_id, -negative_count))
        delta: Counter[Pair] = Counter()  # net change of each pair's count in this step
        for index in where.pop(pair):
            old = words[index]
            new = merge_pair(old, pair, new_id)
            if len(new) == len(old):
                continue  # stale index entry: an earlier merge removed the pair from this word
            weight = weights[index]
            for old_pair in itertools.pairwise(old):
                delta[old_pair] -= weight
            for new_pair in itertools.pairwise(new):
                delta[new_pair] += weight
                where[new_pair].add(index)
            words[index] = new
        for changed, change in delta.items():
            if change == 0:
                continue
            count = pair_counts[changed] + change
            if count > 0:
                pair_counts[changed] = count
                heapq.heappush(heap, (-count, changed))
            else:
                del pair_counts[changed]  # gone from the corpus (the merged pair among them)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


def _progress_bar(total: int):  # tqdm only when asked: dlkit.text stays light to import
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="BPE merges", unit="merge")


def count_words(pieces: Iterable[str]) -> Counter[bytes]:
    """``{UTF-8 bytes of a piece: occurrences}`` over ``pieces``."""
    return Counter(piece.encode("utf-8") for piece in pieces)
