r"""A multilayer perceptron on :class:`~dlkit.scratch.tensor.Tensor`, trained with SGD.

The network maps inputs :math:`x \in \mathbb{R}^{D}` to class scores (logits)
:math:`z \in \mathbb{R}^{C}` through ``Linear`` layers with ReLU between them:

.. math::

    h_1 = \mathrm{relu}(x W_1^\top + b_1), \;\dots,\; z = h_{n-1} W_n^\top + b_n ,

and is trained on the mean cross-entropy of integer labels :math:`y`,

.. math::

    \ell = -\frac{1}{B}\sum_{i=1}^{B} \log \mathrm{softmax}(z_i)_{y_i},\qquad
    \log \mathrm{softmax}(z)_k = (z_k - m) - \log \textstyle\sum_j e^{z_j - m},

where subtracting :math:`m = \max_j z_j` changes nothing mathematically but keeps every
exponent :math:`\le 0`, so nothing overflows. The weight layout ``(out, in)`` and the
initialisation :math:`\mathcal{U}(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})` follow
``torch.nn.Linear``, so the same weights can be loaded into PyTorch.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from dlkit.scratch.tensor import Tensor


class Linear:
    """``y = x @ W.T + b`` with ``W`` of shape ``(out_features, in_features)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rng: np.random.Generator,
        dtype: type = np.float64,
    ) -> None:
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Tensor(
            rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype),
            requires_grad=True,
        )
        self.bias = Tensor(
            rng.uniform(-bound, bound, out_features).astype(dtype), requires_grad=True
        )

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.weight.shape[1]:
            raise ValueError(
                f"Linear expects input of shape (batch, {self.weight.shape[1]}), got {x.shape}"
            )
        return x @ self.weight.T + self.bias  # (B, in) @ (in, out) + (out,) -> (B, out)

    def parameters(self) -> list[Tensor]:
        return [self.weight, self.bias]


class MLP:
    """Linear layers of the given ``sizes`` with ReLU between them; returns logits.

    ``MLP([64, 64, 10], seed=0)`` is ``Linear(64, 64) -> ReLU -> Linear(64, 10)``.
    """

    def __init__(self, sizes: Sequence[int], *, seed: int = 0, dtype: type = np.float64) -> None:
        if len(sizes) < 2:
            raise ValueError(f"an MLP needs at least input and output sizes, got {list(sizes)}")
        rng = np.random.default_rng(seed)
        self.layers = [Linear(i, o, rng, dtype) for i, o in itertools.pairwise(sizes)]

    def __call__(self, x: Tensor | np.ndarray) -> Tensor:
        h = x if isinstance(x, Tensor) else Tensor(x)
        for layer in self.layers[:-1]:
            h = layer(h).relu()
        return self.layers[-1](h)

    def parameters(self) -> list[Tensor]:
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The most likely class for each row of ``x``; shape ``(N,)``."""
        return self(Tensor(x)).data.argmax(axis=1)


def log_softmax(logits: Tensor, axis: int = -1) -> Tensor:
    """:math:`\\log\\mathrm{softmax}` along ``axis``, stable for any logits."""
    shift = Tensor(logits.data.max(axis=axis, keepdims=True))  # a constant: no gradient needed
    shifted = logits - shift
    return shifted - shifted.exp().sum(axis=axis, keepdims=True).log()


def cross_entropy(logits: Tensor, targets: np.ndarray) -> Tensor:
    """Mean cross-entropy of ``logits`` ``(B, C)`` against integer class ``targets`` ``(B,)``."""
    targets = np.asarray(targets)
    if logits.ndim != 2:
        raise ValueError(
            f"cross_entropy expects logits of shape (batch, classes), got {logits.shape}"
        )
    if targets.shape != (logits.shape[0],) or targets.dtype.kind not in "iu":
        raise ValueError(
            f"cross_entropy expects integer targets of shape ({logits.shape[0]},), got "
            f"shape {targets.shape} and dtype {targets.dtype}"
        )
    if targets.size and (targets.min() < 0 or targets.max() >= logits.shape[1]):
        raise ValueError(
            f"targets must lie in [0, {logits.shape[1] - 1}], got values from {targets.min()} "
            f"to {targets.max()}"
        )
    picked = log_softmax(logits)[np.arange(len(targets)), targets]  # (B,): log p(y_i | x_i)
    return -picked.mean()


def minibatches(n: int, batch_size: int, steps: int, seed: int) -> list[np.ndarray]:
    """Index arrays for ``steps`` mini-batches: a fresh shuffle of ``range(n)`` per epoch."""
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}], got {batch_size}")
    rng = np.random.default_rng(seed)
    batches: list[np.ndarray] = []
    while len(batches) < steps:
        order = rng.permutation(n)
        batches += [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    return batches[:steps]


def sgd_step(parameters: Sequence[Tensor], lr: float) -> None:
    """:math:`\\theta \\leftarrow \\theta - \\eta\\, \\partial\\ell/\\partial\\theta` in place."""
    for p in parameters:
        if p.grad is not None:
            p.data -= lr * p.grad


def train_mlp(
    model: MLP,
    x: np.ndarray,
    y: np.ndarray,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 0.1,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` with mini-batch SGD on cross-entropy; returns the loss of each step.

    Each step: zero the gradients, forward a batch, compute the loss, backward, update.
    ``x`` is ``(N, D)``, ``y`` ``(N,)`` integer labels.
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)} labels")
    losses = []
    for idx in minibatches(len(x), batch_size, steps, seed):
        model.zero_grad()  # otherwise backward() adds this step's gradient to the last one
        loss = cross_entropy(model(Tensor(x[idx])), y[idx])
        loss.backward()
        sgd_step(model.parameters(), lr)
        losses.append(loss.item())
    return losses
