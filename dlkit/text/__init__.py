"""Text tokenization written to teach: GPT-2-style byte-level BPE, trained from scratch.

Pure Python plus the ``regex`` package (for ``\\p{L}`` / ``\\p{N}``); no torch, no NumPy.

- :mod:`dlkit.text.pretokenize`: the GPT-2 split pattern that cuts text into pieces;
- :mod:`dlkit.text.merges`: the merge rule and training with incremental pair counts;
- :mod:`dlkit.text.bpe`: :class:`BPETokenizer` (encode, decode, stream, save, load) and
  :func:`train_bpe`.
"""

from dlkit.text.bpe import BPETokenizer, EncodeStep, train_bpe
from dlkit.text.merges import Merge, get_pair_counts, learn_merges, merge_pair
from dlkit.text.pretokenize import GPT2_SPLIT_PATTERN, pretokenize

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "BPETokenizer",
    "EncodeStep",
    "Merge",
    "get_pair_counts",
    "learn_merges",
    "merge_pair",
    "pretokenize",
    "train_bpe",
]
