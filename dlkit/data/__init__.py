"""Offline datasets as NumPy arrays and ``torch.utils.data.Dataset`` objects.

Nothing here downloads: data is generated from a seed, read from files that ship
inside installed packages (scikit-learn's digits, the standard library's text), or
loaded from a local folder the user points to. Importing this package does not
import torch; :meth:`ArraySplits.datasets` does, when asked.
"""

from dlkit.data.digits import load_digits
from dlkit.data.sequences import (
    DatasetSplits,
    adding_problem,
    copy_task,
    noisy_sine,
    reverse_task,
    sequence_splits,
)
from dlkit.data.splits import ArraySplits, split_arrays, standardize_splits
from dlkit.data.text import CharBlocks, CharVocab, char_splits, stdlib_corpus

__all__ = [
    "ArraySplits",
    "CharBlocks",
    "CharVocab",
    "DatasetSplits",
    "adding_problem",
    "char_splits",
    "copy_task",
    "load_digits",
    "noisy_sine",
    "reverse_task",
    "sequence_splits",
    "split_arrays",
    "standardize_splits",
    "stdlib_corpus",
]
