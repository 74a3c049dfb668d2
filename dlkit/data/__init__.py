"""Offline datasets as NumPy arrays and ``torch.utils.data.Dataset`` objects.

Nothing here downloads: data is generated from a seed, read from files that ship
inside installed packages (scikit-learn's digits, the standard library's text), or
loaded from a local folder the user points to. Importing this package does not
import torch; :meth:`ArraySplits.datasets` does, when asked.
"""

from dlkit.data.digits import load_digits
from dlkit.data.splits import ArraySplits, split_arrays, standardize_splits

__all__ = ["ArraySplits", "load_digits", "split_arrays", "standardize_splits"]
