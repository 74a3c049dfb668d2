r"""Count-based language models: the unigram and bigram baselines a neural LM must beat.

Both are fitted by counting tokens in a training stream :math:`x_1, \dots, x_N` over a
vocabulary of :math:`V` ids, with add-:math:`\alpha` (Lidstone) smoothing so that an id never
seen still gets a small probability:

.. math::

    p_{\text{uni}}(b) = \frac{c(b) + \alpha}{N + \alpha V}, \qquad
    p_{\text{bi}}(b \mid a) = \frac{c(a, b) + \alpha}{c(a, \cdot) + \alpha V},

where :math:`c(b)` counts the occurrences of :math:`b`, :math:`c(a, b)` the adjacent pairs
:math:`(x_t, x_{t+1}) = (a, b)` and :math:`c(a, \cdot) = \sum_b c(a, b)` the pairs that start
with :math:`a`. Each is a proper distribution over the :math:`V` ids (the numerators sum to the
denominator); :math:`\alpha = 1` is Laplace's rule, smaller :math:`\alpha` trusts the counts more.

The bigram model scores a sequence :math:`y_1, \dots, y_n` token by token: :math:`y_1` has no
predecessor inside the sequence, so it gets its unigram probability (with the bigram model's
:math:`\alpha`), and every later :math:`y_t` gets :math:`p_{\text{bi}}(y_t \mid y_{t-1})`. The
mean negative log-likelihood in nats per token is

.. math:: \text{NLL} = -\frac{1}{n} \sum_{t=1}^{n} \ln p(y_t \mid \text{context}_t).

Pair counts are stored sparsely (the sorted distinct pair keys :math:`aV + b` and their
counts), so memory grows with the distinct pairs in the data, not with :math:`V^2`.
NumPy only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["BigramLM", "UnigramLM"]


def _check_vocab_alpha(owner: str, vocab_size: int, alpha: float) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int | np.integer):
        raise TypeError(f"{owner}: vocab_size must be an int, got {type(vocab_size).__name__}")
    if vocab_size < 1:
        raise ValueError(f"{owner}: vocab_size must be >= 1, got {vocab_size}")
    if not (isinstance(alpha, int | float | np.floating) and np.isfinite(alpha) and alpha > 0):
        raise ValueError(
            f"{owner}: alpha must be a finite number > 0 (0 would give unseen tokens "
            f"probability 0 and an infinite loss), got {alpha!r}"
        )


def _as_ids(owner: str, ids: ArrayLike, vocab_size: int, *, min_len: int = 1) -> NDArray[np.int64]:
    """``ids`` as a 1-D int64 array with every value in ``[0, vocab_size)``."""
    array = np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(f"{owner}: expected a 1-D sequence of token ids, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{owner}: token ids must be integers, got dtype {array.dtype}")
    if array.size < min_len:
        raise ValueError(f"{owner}: expected at least {min_len} token(s), got {array.size}")
    array = array.astype(np.int64)  # uint16 files: a * V + b would overflow in uint16
    if array.size and (array.min() < 0 or array.max() >= vocab_size):
        raise ValueError(
            f"{owner}: token ids must lie in [0, {vocab_size}), got values in "
            f"[{array.min()}, {array.max()}]"
        )
    return array


class UnigramLM:
    r"""Each token drawn independently: :math:`p(b) = (c(b) + \alpha) / (N + \alpha V)`."""

    def __init__(self, vocab_size: int, alpha: float = 1.0) -> None:
        _check_vocab_alpha("UnigramLM", vocab_size, alpha)
        self.vocab_size, self.alpha = int(vocab_size), float(alpha)
        self.counts: NDArray[np.int64] | None = None  # (V,), set by fit

    def fit(self, ids: ArrayLike) -> UnigramLM:
        """Count the ids of the training stream ``ids`` ``(N,)``; returns ``self``."""
        array = _as_ids("UnigramLM.fit", ids, self.vocab_size)
        self.counts = np.bincount(array, minlength=self.vocab_size)  # (V,)
        return self

    def _fitted(self) -> NDArray[np.int64]:
        if self.counts is None:
            raise RuntimeError("UnigramLM is not fitted yet: call .fit(train_ids) first")
        return self.counts

    def probs(self) -> NDArray[np.float64]:
        """The distribution :math:`p(b)` over the vocabulary, ``(V,)``, summing to 1."""
        counts = self._fitted()
        return (counts + self.alpha) / (counts.sum() + self.alpha * self.vocab_size)  # (V,)

    def log_prob(self, ids: ArrayLike) -> NDArray[np.float64]:
        """Natural-log probability of each token of ``ids`` ``(n,)`` → ``(n,)``."""
        array = _as_ids("UnigramLM.log_prob", ids, self.vocab_size, min_len=0)
        return np.log(self.probs())[array]  # (n,)

    def mean_nll(self, ids: ArrayLike) -> float:
        """Mean negative log-likelihood of ``ids`` in nats per token."""
        array = _as_ids("UnigramLM.mean_nll", ids, self.vocab_size)
        return float(-self.log_prob(array).mean())


class BigramLM:
    r"""Each token conditioned on the previous one:
    :math:`p(b \mid a) = (c(a, b) + \alpha) / (c(a, \cdot) + \alpha V)`.

    The first token of a scored sequence gets the unigram probability
    :math:`(c(b) + \alpha) / (N + \alpha V)`, computed from the same training stream.
    """

    def __init__(self, vocab_size: int, alpha: float = 0.1) -> None:
        _check_vocab_alpha("BigramLM", vocab_size, alpha)
        self.vocab_size, self.alpha = int(vocab_size), float(alpha)
        self.unigram = UnigramLM(vocab_size, alpha)
        self.pair_keys: NDArray[np.int64] | None = None  # sorted distinct a * V + b
        self.pair_counts: NDArray[np.int64] | None = None  # c(a, b) for each key
        self.row_counts: NDArray[np.int64] | None = None  # (V,) c(a, .)

    def fit(self, ids: ArrayLike) -> BigramLM:
        """Count the adjacent pairs of the training stream ``ids`` ``(N,)``; returns ``self``."""
        array = _as_ids("BigramLM.fit", ids, self.vocab_size, min_len=2)
        self.unigram.fit(array)
        keys = array[:-1] * self.vocab_size + array[1:]  # (N - 1,) pair (a, b) -> a V + b
        self.pair_keys, self.pair_counts = np.unique(keys, return_counts=True)
        self.row_counts = np.bincount(array[:-1], minlength=self.vocab_size)  # (V,)
        return self

    def _fitted(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        if self.pair_keys is None or self.pair_counts is None or self.row_counts is None:
            raise RuntimeError("BigramLM is not fitted yet: call .fit(train_ids) first")
        return self.pair_keys, self.pair_counts, self.row_counts

    def pair_count(self, prev: ArrayLike, nxt: ArrayLike) -> NDArray[np.int64]:
        """:math:`c(a, b)` for arrays of previous ids ``a`` and next ids ``b`` (same shape)."""
        keys_seen, counts, _ = self._fitted()
        keys = np.asarray(prev, dtype=np.int64) * self.vocab_size + np.asarray(nxt, dtype=np.int64)
        where = np.searchsorted(keys_seen, keys)  # index of the key if it was seen
        where = np.minimum(where, len(keys_seen) - 1)
        return np.where(keys_seen[where] == keys, counts[where], 0)

    def next_token_probs(self, prev: int) -> NDArray[np.float64]:
        """The distribution :math:`p(\\cdot \\mid a)` after token ``prev`` = :math:`a`, ``(V,)``."""
        _, _, rows = self._fitted()
        (a,) = _as_ids("BigramLM.next_token_probs", [prev], self.vocab_size)
        pair = self.pair_count(np.full(self.vocab_size, a), np.arange(self.vocab_size))  # (V,)
        return (pair + self.alpha) / (rows[a] + self.alpha * self.vocab_size)  # (V,)

    def log_prob(self, ids: ArrayLike) -> NDArray[np.float64]:
        """Natural-log probability of each token of ``ids`` ``(n,)`` → ``(n,)``: the first
        by the unigram model, each later one given its predecessor."""
        _, _, rows = self._fitted()
        array = _as_ids("BigramLM.log_prob", ids, self.vocab_size, min_len=0)
        if array.size == 0:
            return np.zeros(0)
        prev, nxt = array[:-1], array[1:]  # (n - 1,) each
        pair = self.pair_count(prev, nxt)  # (n - 1,)
        rest = np.log(pair + self.alpha) - np.log(rows[prev] + self.alpha * self.vocab_size)
        return np.concatenate([self.unigram.log_prob(array[:1]), rest])  # (n,)

    def mean_nll(self, ids: ArrayLike) -> float:
        """Mean negative log-likelihood of ``ids`` in nats per token."""
        array = _as_ids("BigramLM.mean_nll", ids, self.vocab_size)
        return float(-self.log_prob(array).mean())
