r"""Windows of a token array for language modelling: random ones to train, consecutive to evaluate.

A causal language model reads ``context`` tokens and predicts, at every position, the
next one. From a 1-D token array :math:`u_0, \dots, u_{N-1}` (a whole split, documents
separated by ``<|endoftext|>``), window :math:`i` is

.. math::

    x = (u_i, \dots, u_{i+T-1}), \qquad y = (u_{i+1}, \dots, u_{i+T}),
    \qquad 0 \le i < N - T,

so :math:`y_t = x_{t+1}`: the target at position :math:`t` is the token after
:math:`x_{\le t}`. There are :math:`N - T` windows (one per start whose target fits).

**Training** (:func:`random_window_loader`) draws starts uniformly *with replacement*:
a batch costs :math:`O(B \cdot T)` (``B`` slices of the array), whatever :math:`N`, and
every batch is full. Sampling without replacement would need a permutation of all
:math:`N - T` starts per epoch (:math:`O(N)`, and an int64 copy of the whole array when
it is converted first), which is what made the old character loader slow on large files.
With replacement, a draw of :math:`n` starts sees each token about :math:`nT/N` times.

**Evaluation** (:func:`eval_windows`) needs each predictable token
(:math:`u_1, \dots, u_{M}`, :math:`M \le N - 1`) exactly once, so that the mean loss is
exact: consecutive non-overlapping windows starting at :math:`0, T, 2T, \dots`. If
:math:`T` does not divide :math:`M`, the last window is shorter and comes alone in the
last batch (shape ``(1, M mod T)``), so weight batch losses by their number of targets.
A window's first tokens see less than :math:`T` tokens of history; this is the usual
(slightly pessimistic) non-overlapping evaluation.

Token arrays are typically the ``uint16`` memmaps of :func:`dlkit.data.corpus.load_tokens`;
windows are converted to int64 one at a time, so the array is never copied. As
:class:`dlkit.data.text.CharBlocks`, :class:`TokenWindows` is a map-style dataset that
does not subclass ``torch.utils.data.Dataset`` (``DataLoader`` only needs ``__len__``
and ``__getitem__``), so that importing :mod:`dlkit.data` does not import torch.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

__all__ = [
    "EvalWindows",
    "TokenWindows",
    "as_token_array",
    "eval_windows",
    "random_window_loader",
]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def as_token_array(tokens: Any, context: int | None, *, name: str = "tokens") -> np.ndarray:
    """``tokens`` as a 1-D integer NumPy array (a view where possible), checked.

    At least ``context + 1`` tokens (one full window), or 2 (one target) if ``context`` is None.
    ``name`` is how error messages call the array (e.g. ``"train_lm: val_tokens"``).
    """
    if hasattr(tokens, "detach") and hasattr(tokens, "numpy"):  # a torch tensor
        tokens = tokens.detach().cpu().numpy()
    array = np.asarray(tokens)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D token array, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {array.dtype}")
    n = len(array)
    if context is None and n < 2:
        raise ValueError(f"{name} needs at least 2 tokens for one (x, y) target, got {n}")
    if context is not None and n <= context:
        raise ValueError(
            f"{name} holds {n} tokens; one window of context={context} needs at least "
            f"{context + 1}: more than context = {context} tokens for one (x, y) window, got {n}"
        )
    return array


class TokenWindows:
    """All ``len(tokens) - context`` windows ``(x, y)`` of a 1-D token array.

    ``ds[i] = (x, y)``, int64 tensors of shape ``(context,)``, ``x = tokens[i : i + T]``,
    ``y = tokens[i + 1 : i + T + 1]``. Indexing slices the array: ``O(context)`` work.
    """

    def __init__(self, tokens: Any, context: int) -> None:
        self.context = _positive_int(context, "context")
        self.tokens = as_token_array(tokens, self.context)  # (N,), not copied

    def __len__(self) -> int:
        return len(self.tokens) - self.context

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        i = operator.index(i)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"window {i} out of range for {n} windows")
        i %= n
        chunk = np.asarray(self.tokens[i : i + self.context + 1], dtype=np.int64)  # (T + 1,)
        chunk = torch.from_numpy(chunk)
        return chunk[:-1], chunk[1:]  # (T,), (T,)

    def __repr__(self) -> str:
        return f"TokenWindows(n_tokens={len(self.tokens)}, context={self.context})"


def random_window_loader(
    tokens: Any,
    context: int,
    batch_size: int,
    num_batches: int,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """``num_batches`` batches of ``batch_size`` windows with uniformly random starts.

    Each batch is ``(x, y)``, int64 ``(batch_size, context)``; the starts are drawn with
    replacement (``RandomSampler(replacement=True)``), so every batch is full and costs
    ``O(batch_size * context)``. Draws come from ``generator``, or a new one seeded with
    ``seed``, or (neither given) a new one seeded from torch's global RNG; the loader
    exposes it as ``loader.generator``, which :class:`dlkit.train.Trainer` re-seeds per
    epoch. One iteration of the loader is one "epoch" of ``num_batches`` batches.
    """
    import torch
    from torch.utils.data import DataLoader, RandomSampler

    dataset = TokenWindows(tokens, context)
    batch_size = _positive_int(batch_size, "batch_size")
    num_batches = _positive_int(num_batches, "num_batches")
    if seed is not None and generator is not None:
        raise ValueError("give seed or generator, not both")
    if generator is None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))  # from the global RNG
        generator = torch.Generator().manual_seed(seed)
    elif not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    sampler = RandomSampler(
        dataset,  # type: ignore[arg-type]  # map-style: __len__ and __getitem__
        replacement=True,
        num_samples=num_batches * batch_size,
        generator=generator,
    )
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=0,
        generator=generator,  # the same object: re-seeding loader.generator re-seeds the sampler
    )


class EvalWindows:
    """Consecutive non-overlapping ``(x, y)`` batches covering the first ``max_tokens`` targets.

    Iterating yields int64 tensors ``(b, context)``, ``b <= batch_size``, then, if
    ``context`` does not divide ``n_targets``, one ``(1, n_targets % context)`` batch, where
    ``n_targets = min(max_tokens, len(tokens) - 1)`` (default ``len(tokens) - 1``). Every
    target ``tokens[1 : n_targets + 1]`` appears in exactly one ``y``, in order.
    """

    def __init__(
        self, tokens: Any, context: int, batch_size: int, max_tokens: int | None = None
    ) -> None:
        self.context = _positive_int(context, "context")
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.tokens = as_token_array(tokens, None)  # (N,), a shorter last window is fine
        n = len(self.tokens) - 1
        limit = n if max_tokens is None else _positive_int(max_tokens, "max_tokens")
        self.n_targets = min(limit, n)

    @property
    def _n_full(self) -> int:
        return self.n_targets // self.context

    def __len__(self) -> int:
        full_batches = -(-self._n_full // self.batch_size)  # ceil
        return full_batches + (1 if self.n_targets % self.context else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        import torch

        T = self.context
        for first in range(0, self._n_full, self.batch_size):
            b = min(self.batch_size, self._n_full - first)
            start = first * T
            chunk = np.asarray(self.tokens[start : start + b * T + 1], dtype=np.int64)
            chunk = torch.from_numpy(chunk)  # (b * T + 1,)
            yield chunk[:-1].reshape(b, T), chunk[1:].reshape(b, T)  # (b, T), (b, T)
        rest = self.n_targets % T
        if rest:
            start = self._n_full * T
            chunk = torch.from_numpy(np.asarray(self.tokens[start : start + rest + 1], np.int64))
            yield chunk[:-1].reshape(1, rest), chunk[1:].reshape(1, rest)  # (1, r), (1, r)

    def __repr__(self) -> str:
        return (
            f"EvalWindows(n_targets={self.n_targets}, context={self.context}, "
            f"batch_size={self.batch_size}, batches={len(self)})"
        )


def eval_windows(
    tokens: Any, context: int, batch_size: int, *, max_tokens: int | None = None
) -> EvalWindows:
    """Batches of consecutive windows predicting each of the first ``max_tokens`` targets once.

    The targets are ``tokens[1 : M + 1]`` with ``M = min(max_tokens, len(tokens) - 1)``
    (default all ``len(tokens) - 1``). See :class:`EvalWindows` for the batch shapes; a
    mean loss must weight each batch by ``y.numel()``.
    """
    return EvalWindows(tokens, context, batch_size, max_tokens)
