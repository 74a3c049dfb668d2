r"""Classification losses on class indices or class probabilities: ``nll_loss`` and ``cross_entropy``.

Both follow :mod:`torch.nn.functional` exactly: the class axis is 1 (or 0 for a single
example of shape (C,)), targets equal to ``ignore_index`` are skipped and left out of
the mean, class weights rescale each example and, under ``"mean"``, also the
denominator. ``cross_entropy`` takes logits and applies the log-sum-exp form of
log-softmax from :mod:`dlkit.nn.functional.activations`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dlkit.nn.functional._checks import check_float, check_reduction
from dlkit.nn.functional.activations import log_softmax

__all__ = ["cross_entropy", "nll_loss"]


def _class_dim(input: Tensor, fn: str) -> int:
    if input.dim() == 0:
        raise ValueError(
            f"{fn}: input must have a class axis: shape (C,), (N, C) or (N, C, d1, ...)"
        )
    return 0 if input.dim() == 1 else 1


def _check_class_weight(weight: Tensor | None, n_classes: int, fn: str) -> None:
    if weight is None:
        return
    check_float(weight, fn, "weight")
    if weight.shape != (n_classes,):
        raise ValueError(
            f"{fn}: weight must have shape ({n_classes},), one weight per class, "
            f"got {tuple(weight.shape)}"
        )


def _check_class_indices(input: Tensor, target: Tensor, ignore_index: int, fn: str) -> None:
    """Target of class indices: dtype int64, shape of input without the class axis, values in range."""
    class_dim = _class_dim(input, fn)
    n_classes = input.shape[class_dim]
    if target.dtype not in (torch.int64, torch.uint8):
        raise TypeError(
            f"{fn}: a target of class indices must have dtype torch.int64 (long), got "
            f"{target.dtype}; convert with target.long(), or pass class probabilities as a "
            "floating-point tensor of the input's shape (cross_entropy only)"
        )
    expected = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.shape != expected:
        raise ValueError(
            f"{fn}: input of shape {tuple(input.shape)} (class axis {class_dim}, C={n_classes}) "
            f"needs a target of class indices of shape {tuple(expected)}, "
            f"got {tuple(target.shape)}"
        )
    counted = target != ignore_index
    out_of_range = counted & ((target < 0) | (target >= n_classes))
    if bool(out_of_range.any()):
        position = tuple(int(i) for i in torch.nonzero(out_of_range)[0])
        raise IndexError(
            f"{fn}: target holds class index {int(target[position])} at position "
            f"{position}, but input has C={n_classes} classes; expected "
            f"0 <= index < {n_classes} (or ignore_index={ignore_index})"
        )


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    r"""Negative log-likelihood of class indices, given log-probabilities.

    .. math::
        \ell_n = -w_{y_n} \log p_{n, y_n}, \qquad
        \text{mean} = \frac{\sum_{n:\, y_n \ne \text{ignore}} \ell_n}
                           {\sum_{n:\, y_n \ne \text{ignore}} w_{y_n}}

    Targets equal to ``ignore_index`` contribute 0 and are left out of the mean's
    denominator (all ignored gives ``nan``, 0/0, as in PyTorch).

    Args:
        input: log-probabilities of shape (N, C), (C,) or (N, C, d1, ...).
        target: int64 class indices of shape (N,), () or (N, d1, ...).
        weight: optional per-class weights, shape (C,).
        ignore_index: a target value that is skipped.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (returns shape of ``target``).
    """
    fn = "nll_loss"
    check_float(input, fn, "input")
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}: target must be a torch.Tensor, got {type(target).__name__}")
    check_reduction(reduction, fn)
    class_dim = _class_dim(input, fn)
    _check_class_weight(weight, input.shape[class_dim], fn)
    _check_class_indices(input, target, ignore_index, fn)
    return _nll(input, target, weight, ignore_index, reduction)


def _nll(
    log_p: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int, reduction: str
) -> Tensor:
    class_dim = 0 if log_p.dim() == 1 else 1
    target = target.long()
    counted = target != ignore_index  # shape of target
    safe_target = torch.where(counted, target, torch.zeros_like(target))  # a valid index
    # log p[n, y_n, ...]: gather along the class axis, then drop it. (N, d1, ...)
    picked = torch.gather(log_p, class_dim, safe_target.unsqueeze(class_dim)).squeeze(class_dim)
    w = torch.ones((), dtype=log_p.dtype) if weight is None else weight[safe_target]
    w = torch.where(counted, w, torch.zeros((), dtype=log_p.dtype))  # w_{y_n}, 0 if ignored
    # where, not multiply: an ignored position's log p may be -inf, and 0 * -inf = nan.
    loss = torch.where(counted, -w * picked, torch.zeros((), dtype=log_p.dtype))
    if reduction == "mean":
        return loss.sum() / w.sum()
    return loss.sum() if reduction == "sum" else loss


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    r"""Cross-entropy between logits and a target given as class indices or class probabilities.

    With :math:`\log p = \operatorname{log\_softmax}(x)` along the class axis
    (log-sum-exp inside, so logits of :math:`\pm 10^4` are fine) and smoothing
    :math:`\varepsilon` (``label_smoothing``) over :math:`C` classes:

    * **class indices** :math:`y_n`: the smoothed target puts :math:`1 - \varepsilon`
      on :math:`y_n` and :math:`\varepsilon / C` on every class, which PyTorch computes as

      .. math::
          \ell = (1 - \varepsilon)\, \mathrm{NLL}(\log p, y)
          + \frac{\varepsilon}{C} \Bigl(-\sum_c w_c \log p_{n,c}\Bigr),

      each term reduced like :func:`nll_loss` (``"mean"`` divides by
      :math:`\sum_n w_{y_n}` over non-ignored targets);
    * **class probabilities** :math:`q` (floating point, same shape as ``input``):
      :math:`\tilde q = (1 - \varepsilon) q + \varepsilon / C` and
      :math:`\ell_n = -\sum_c w_c\, \tilde q_{n,c} \log p_{n,c}`; ``"mean"`` divides by
      the number of examples :math:`N \cdot d_1 \cdots` (not by the weights), and
      ``ignore_index`` is not supported.

    Gradient with respect to the logits (probability target, no weights):
    :math:`\partial \ell_n / \partial x_{n,c} = p_{n,c} - \tilde q_{n,c}`.

    Args:
        input: logits of shape (N, C), (C,) or (N, C, d1, ...).
        target: int64 indices of shape (N,), () or (N, d1, ...), or probabilities of the
            shape of ``input``.
        weight: optional per-class weights, shape (C,).
        ignore_index: an index target value that is skipped (index targets only).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per example).
        label_smoothing: :math:`\varepsilon \in [0, 1]`.
    """
    fn = "cross_entropy"
    check_float(input, fn, "input")
    if not isinstance(target, Tensor):
        raise TypeError(f"{fn}: target must be a torch.Tensor, got {type(target).__name__}")
    check_reduction(reduction, fn)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    class_dim = _class_dim(input, fn)
    n_classes = input.shape[class_dim]
    _check_class_weight(weight, n_classes, fn)
    # weight viewed to broadcast along the class axis: (C,) or (1, C, 1, ..., 1)
    w_view = None
    if weight is not None:
        view = [1] * input.dim()
        view[class_dim] = n_classes
        w_view = weight.reshape(view)

    if target.is_floating_point():
        return _cross_entropy_probabilities(
            input, target, w_view, ignore_index, reduction, label_smoothing
        )
    _check_class_indices(input, target, ignore_index, fn)
    log_p = log_softmax(input, dim=class_dim)
    nll = _nll(log_p, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return nll
    # the uniform part: -Σ_c w_c log p_c per example, 0 where the target is ignored
    uniform = -(log_p if w_view is None else log_p * w_view).sum(dim=class_dim)
    counted = target != ignore_index
    uniform = torch.where(counted, uniform, torch.zeros((), dtype=input.dtype))
    if reduction == "mean":
        denominator = counted.sum() if weight is None else weight[target[counted].long()].sum()
        uniform = uniform.sum() / denominator
    elif reduction == "sum":
        uniform = uniform.sum()
    return (1.0 - label_smoothing) * nll + (label_smoothing / n_classes) * uniform


def _cross_entropy_probabilities(
    input: Tensor,
    target: Tensor,
    w_view: Tensor | None,
    ignore_index: int,
    reduction: str,
    label_smoothing: float,
) -> Tensor:
    fn = "cross_entropy"
    if target.shape != input.shape:
        raise ValueError(
            f"{fn}: a floating-point target holds class probabilities and must have the "
            f"input's shape {tuple(input.shape)}, got {tuple(target.shape)}; for class "
            "indices pass an int64 tensor without the class axis"
        )
    if ignore_index != -100:
        raise ValueError(
            f"{fn}: ignore_index is not supported with class probabilities as target "
            "(give an ignored example all-zero probabilities instead)"
        )
    class_dim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[class_dim]
    log_p = log_softmax(input, dim=class_dim)
    if label_smoothing > 0.0:
        target = target * (1.0 - label_smoothing) + label_smoothing / n_classes
    terms = log_p * target if w_view is None else log_p * target * w_view  # (N, C, d1, ...)
    if reduction == "none":
        return -terms.sum(dim=class_dim)
    if reduction == "sum":
        return -terms.sum()
    n_examples = input.numel() // n_classes if input.numel() else 0
    return -terms.sum() / n_examples if n_examples else -terms.sum() * float("nan")
