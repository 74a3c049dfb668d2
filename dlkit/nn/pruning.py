r"""Magnitude pruning: zero the weights that matter least, and keep them zero while training.

**Unstructured magnitude pruning.** For a weight tensor :math:`W` with :math:`n` entries and a
target sparsity :math:`s \in [0, 1]`, remove the :math:`k = \operatorname{round}(s\, n)` entries
of smallest magnitude and keep the rest:

.. math:: M_{ij} = \mathbb 1\left[\,|W_{ij}| \text{ is not among the } k \text{ smallest}\,\right],
   \qquad \hat W = M \odot W .

Ties in :math:`|W_{ij}|` are broken by flat index (the earlier entry goes first), so exactly
:math:`k` entries are removed even when many weights are equal (e.g. already zero).

*Layer* scope applies the rule to each layer separately (every layer ends at sparsity
:math:`s`); *global* scope ranks the magnitudes of all layers together, so layers with many
small weights lose more than layers with few.

**Keeping the zeros.** ``torch.nn.utils.prune.custom_from_mask`` renames the parameter to
``weight_orig``, stores the mask as the buffer ``weight_mask`` and recomputes
``weight = weight_orig * weight_mask`` before every forward. The gradient of a masked entry,
:math:`\partial \mathcal L / \partial W^{\text{orig}}_{ij} = M_{ij}\, \partial \mathcal L /
\partial \hat W_{ij}`, is zero, so further optimizer steps cannot revive it (weight decay
may move ``weight_orig`` but the product stays zero). :func:`make_permanent` folds the mask in
(``prune.remove``) and leaves a plain ``weight`` parameter.

**Structured (channel) pruning.** Remove whole output channels (rows of a Linear weight,
filters of a Conv2d) with the smallest L2 norm,

.. math:: \|W_{c,:}\|_2 = \Big(\sum_j W_{c,j}^2\Big)^{1/2},

which, unlike scattered zeros, shrinks the dense computation a real kernel performs.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from dlkit.nn.layers import Linear

__all__ = [
    "DEFAULT_MODULE_TYPES",
    "channel_mask",
    "layer_sparsity",
    "magnitude_mask",
    "make_permanent",
    "prunable_modules",
    "prune_by_magnitude",
    "prune_channels",
    "sparsity",
]

DEFAULT_MODULE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d, Linear)


def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _removed_count(fraction: float, numel: int) -> int:
    return min(numel, round(fraction * numel))


def _keep_mask_from_scores(scores: Tensor, k: int) -> Tensor:
    """Flat bool mask, False on the ``k`` smallest scores (ties: lower index first)."""
    order = torch.sort(scores, stable=True).indices  # (n,) ascending, stable on ties
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    keep[order[:k]] = False
    return keep


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """Keep-mask removing exactly ``round(sparsity * numel)`` smallest-magnitude entries.

    Args:
        weight: any floating tensor.
        sparsity: fraction in ``[0, 1]`` to remove.

    Returns: bool tensor of ``weight.shape``, True = keep. Ties are broken by flat index.
    """
    if not isinstance(weight, Tensor) or not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor, got {type(weight).__name__}")
    s = _check_fraction("sparsity", sparsity)
    k = _removed_count(s, weight.numel())
    scores = weight.detach().abs().reshape(-1)  # (n,)
    return _keep_mask_from_scores(scores, k).reshape(weight.shape)


def prunable_modules(
    model: nn.Module, module_types: Sequence[type[nn.Module]] = DEFAULT_MODULE_TYPES
) -> dict[str, nn.Module]:
    """Qualified name -> module for every ``module_types`` instance with a ``weight``."""
    types = tuple(module_types)
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, types) and isinstance(getattr(m, "weight", None), Tensor)
    }


def _current_weight(module: nn.Module) -> Tensor:
    # After an earlier prune, ``weight`` is the masked product; rank that (zeros go first).
    return module.weight.detach()


def prune_by_magnitude(
    model: nn.Module,
    sparsity: float,
    *,
    scope: str = "layer",
    module_types: Sequence[type[nn.Module]] = DEFAULT_MODULE_TYPES,
) -> dict[str, Tensor]:
    """Magnitude-prune the ``weight`` of every matching module in place.

    Args:
        model: pruned in place (``weight_orig`` + ``weight_mask`` per module).
        sparsity: fraction in ``[0, 1]`` of weights to remove (per layer or overall).
        scope: ``"layer"`` (each layer to ``sparsity``) or ``"global"`` (rank all together).
        module_types: which modules to prune; biases are never pruned.

    Returns: qualified module name -> bool keep-mask (same shape as its weight).
    """
    s = _check_fraction("sparsity", sparsity)
    if scope not in ("layer", "global"):
        raise ValueError(f"scope must be 'layer' or 'global', got {scope!r}")
    modules = prunable_modules(model, module_types)
    if not modules:
        raise ValueError(f"model has no modules of types {[t.__name__ for t in module_types]}")
    if scope == "layer":
        masks = {name: magnitude_mask(_current_weight(m), s) for name, m in modules.items()}
    else:
        weights = [_current_weight(m) for m in modules.values()]
        scores = torch.cat([w.abs().reshape(-1) for w in weights])  # (N_total,)
        keep = _keep_mask_from_scores(scores, _removed_count(s, scores.numel()))
        pieces = torch.split(keep, [w.numel() for w in weights])
        masks = {
            name: p.reshape(w.shape) for name, p, w in zip(modules, pieces, weights, strict=True)
        }
    for name, m in modules.items():
        prune.custom_from_mask(m, "weight", masks[name])
    return masks


def channel_mask(weight: Tensor, amount: float, *, dim: int = 0) -> Tensor:
    """Keep-mask removing the ``round(amount * C)`` channels of smallest L2 norm along ``dim``.

    ``C = weight.shape[dim]``; the norm of channel ``c`` is taken over all other axes.
    Returns a bool tensor of ``weight.shape`` (whole channels True or False); ties by index.
    """
    if not isinstance(weight, Tensor) or not weight.is_floating_point() or weight.dim() < 2:
        raise TypeError("weight must be a floating-point tensor with at least 2 dimensions")
    a = _check_fraction("amount", amount)
    if not -weight.dim() <= dim < weight.dim():
        raise ValueError(f"dim must be in [{-weight.dim()}, {weight.dim()}), got {dim}")
    dim = dim % weight.dim()
    channels = weight.shape[dim]
    moved = weight.detach().movedim(dim, 0).reshape(channels, -1)  # (C, rest)
    norms = moved.norm(dim=1)  # (C,)
    keep_c = _keep_mask_from_scores(norms, _removed_count(a, channels))  # (C,)
    shape = [1] * weight.dim()
    shape[dim] = channels
    return keep_c.reshape(shape).expand_as(weight).clone()


def prune_channels(module: nn.Module, amount: float, *, dim: int = 0) -> Tensor:
    """Structured L2 pruning of ``module.weight`` along ``dim`` (0 = output channels).

    Applied with ``prune.custom_from_mask``; returns the bool keep-mask. The bias is left
    as it is (a removed output channel still emits its bias).
    """
    if not isinstance(getattr(module, "weight", None), Tensor):
        raise TypeError(f"module must have a tensor 'weight', got {type(module).__name__}")
    mask = channel_mask(_current_weight(module), amount, dim=dim)
    prune.custom_from_mask(module, "weight", mask)
    return mask


def layer_sparsity(
    model: nn.Module, module_types: Sequence[type[nn.Module]] = DEFAULT_MODULE_TYPES
) -> dict[str, float]:
    """Qualified module name -> fraction of exactly-zero entries in its (masked) weight."""
    return {
        name: float((m.weight == 0).sum()) / m.weight.numel()
        for name, m in prunable_modules(model, module_types).items()
    }


def sparsity(
    model: nn.Module, module_types: Sequence[type[nn.Module]] = DEFAULT_MODULE_TYPES
) -> float:
    """Fraction of zero entries over the weights of all ``module_types`` modules together."""
    modules = prunable_modules(model, module_types)
    if not modules:
        raise ValueError("model has no prunable modules")
    zeros = sum(int((m.weight == 0).sum()) for m in modules.values())
    total = sum(m.weight.numel() for m in modules.values())
    return zeros / total


def make_permanent(model: nn.Module) -> int:
    """Fold every pruning mask into its parameter (``prune.remove``); returns the count."""
    count = 0
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
                count += 1
    return count
