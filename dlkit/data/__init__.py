"""Offline datasets as ``torch.utils.data.Dataset`` objects.

Nothing here downloads: data is generated from a seed, read from files that ship
inside installed packages (scikit-learn's digits, the standard library's text), or
loaded from a local folder the user points to.
"""

__all__: list[str] = []
