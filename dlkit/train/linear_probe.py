r"""Linear probing: multinomial logistic regression on frozen features.

A frozen network gives every example a feature vector :math:`\phi(x) \in \mathbb R^C`; the
**probe** is the linear classifier :math:`z = W\phi(x) + b` trained on them alone, the
cheapest use of a pretrained model and the measure of how linearly its features separate
the new classes. With :math:`N` labelled examples the objective is the convex

.. math:: \mathcal L(W, b) = \frac1N \sum_{n=1}^N -\log \operatorname{softmax}(W u_n + b)_{y_n}
   + \frac\lambda2 \lVert W \rVert_F^2, \qquad u_n = \frac{\phi(x_n) - \mu}{\sigma},

on **standardized** features (:math:`\mu, \sigma` the per-feature mean and standard deviation
of the training features; a constant feature gets :math:`\sigma = 1`), so one
:math:`\lambda` means the same for every backbone whatever the scale of its features. The bias
is not penalized. This is scikit-learn's ``LogisticRegression(C=...)`` with
:math:`\lambda = 1 / (C N)`.

:func:`fit_linear_probe` minimizes it full-batch with L-BFGS (strong-Wolfe line search) from
:math:`W = 0, b = 0`; being strictly convex in :math:`W` for :math:`\lambda > 0`, the answer
does not depend on the start. The standardization is then folded into the returned layer,

.. math:: z = W\,\frac{\phi - \mu}{\sigma} + b = \underbrace{(W / \sigma)}_{W'}\,\phi
   + \underbrace{(b - W \mu / \sigma)}_{b'},

so it takes the **raw** features: ``probe(features)`` gives the logits, and it can replace a
model's head directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["extract_features", "fit_linear_probe"]


def _check(features: Tensor, labels: Tensor, num_classes: int) -> None:
    if not isinstance(features, Tensor) or features.dim() != 2 or not features.is_floating_point():
        got = (
            f"{features.dtype} {tuple(features.shape)}"
            if isinstance(features, Tensor)
            else type(features).__name__
        )
        raise ValueError(f"fit_linear_probe: features must be a float tensor (N, C), got {got}")
    if (
        not isinstance(labels, Tensor)
        or labels.dtype != torch.long
        or labels.shape != features.shape[:1]
    ):
        got = (
            f"{labels.dtype} {tuple(labels.shape)}"
            if isinstance(labels, Tensor)
            else type(labels).__name__
        )
        raise ValueError(
            f"fit_linear_probe: labels must be int64 of shape ({features.shape[0]},), got {got}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"fit_linear_probe: num_classes must be an int >= 2, got {num_classes!r}")
    if features.shape[0] == 0:
        raise ValueError("fit_linear_probe: no examples")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"fit_linear_probe: labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )
    if not bool(torch.isfinite(features).all()):
        raise ValueError("fit_linear_probe: features contain NaN or inf")


def fit_linear_probe(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    *,
    weight_decay: float = 1e-3,
    steps: int = 200,
    lr: float = 1.0,
    seed: int = 0,
) -> nn.Linear:
    """Train a multinomial logistic regression on frozen ``features`` (module docstring).

    Args:
        features: :math:`\\phi(x_n)`, float ``(N, C)`` (detached; not modified).
        labels: ``(N,)`` int64 in ``[0, num_classes)``.
        num_classes: :math:`K`.
        weight_decay: :math:`\\lambda \\ge 0` on :math:`W` (standardized features).
        steps: L-BFGS iterations (``max_iter``).
        lr: L-BFGS's initial step length (1 is its natural scale).
        seed: fixes the global RNG during the fit; the objective is convex and the start
            zero, so it changes nothing for :math:`\\lambda > 0` (kept for a uniform API).

    Returns an ``nn.Linear(C, K)`` in ``features``' dtype, in eval mode, on the **raw**
    features (the standardization folded in).
    """
    _check(features, labels, num_classes)
    if isinstance(weight_decay, bool) or not math.isfinite(weight_decay) or weight_decay < 0:
        raise ValueError(
            f"fit_linear_probe: weight_decay must be a finite number >= 0, got {weight_decay!r}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"fit_linear_probe: steps must be a positive int, got {steps!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"fit_linear_probe: lr must be > 0, got {lr!r}")
    torch.manual_seed(seed)

    x = features.detach().to(torch.float64)  # (N, C), float64: L-BFGS likes exact gradients
    mu = x.mean(dim=0)  # (C,)
    sigma = x.std(dim=0, unbiased=False)  # (C,)
    sigma = torch.where(sigma > 1e-12, sigma, torch.ones_like(sigma))  # constant feature: 1
    u = (x - mu) / sigma  # (N, C) standardized
    C = x.shape[1]
    W = torch.zeros(num_classes, C, dtype=torch.float64, requires_grad=True)  # (K, C)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)  # (K,)
    opt = torch.optim.LBFGS(
        [W, b], lr=lr, max_iter=steps, tolerance_grad=1e-9, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(u @ W.T + b, labels) + 0.5 * weight_decay * W.square().sum()
        loss.backward()
        return loss

    opt.step(closure)

    head = nn.Linear(C, num_classes, dtype=features.dtype, device=features.device)
    with torch.no_grad():
        w_raw = W / sigma  # (K, C): W' = W / σ
        head.weight.copy_(w_raw)
        head.bias.copy_(b - w_raw @ mu)  # b' = b - W μ / σ
    return head.eval()


@torch.no_grad()
def extract_features(
    model: nn.Module,
    inputs: Tensor | Sequence[Sequence[int]],
    batch_size: int = 256,
    *,
    max_len: int | None = None,
) -> Tensor:
    """``model.features`` of every input, batched, in eval mode and without gradients.

    Args:
        model: anything with ``features(batch) -> (B, C)`` (an image CNN, an
            :class:`~dlkit.nn.lm_classifier.LMClassifier`).
        inputs: a tensor ``(N, ...)`` cut along its first axis, or ``N`` token lists, which
            are right-padded with ``model.pad_id`` (:func:`~dlkit.nn.lm_classifier.pad_batch`)
            in length order so a batch holds little padding; ``max_len`` truncates them
            (default: the longest).
        batch_size: examples per forward pass.

    Returns ``(N, C)`` in the input order. The model's train/eval mode is restored.
    """
    if not hasattr(model, "features"):
        raise TypeError(
            f"extract_features: model must have features(batch), got {type(model).__name__}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"extract_features: batch_size must be a positive int, got {batch_size!r}")
    was_training = model.training
    model.eval()
    try:
        if isinstance(inputs, Tensor):
            outs = [
                model.features(inputs[i : i + batch_size])
                for i in range(0, len(inputs), batch_size)
            ]
            return torch.cat(outs)  # (N, C)
        return _token_features(model, inputs, batch_size, max_len)
    finally:
        model.train(was_training)


def _token_features(
    model: Any, ids: Sequence[Sequence[int]], batch_size: int, max_len: int | None
) -> Tensor:
    from dlkit.nn.lm_classifier import pad_batch

    if len(ids) == 0:
        raise ValueError("extract_features: got no sequences")
    longest = max(len(s) for s in ids)
    limit = longest if max_len is None else max_len
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # little padding per batch
    outs = [
        model.features(pad_batch([ids[i] for i in order[s : s + batch_size]], model.pad_id, limit))
        for s in range(0, len(order), batch_size)
    ]
    feats = torch.cat(outs)  # (N, C) in length order
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.as_tensor(order)] = torch.arange(len(order))
    return feats[inverse]  # back to the input order
