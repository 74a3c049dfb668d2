r"""Freezing: choosing which parameters a fine-tuning run may change.

A pretrained model :math:`f_\theta` is adapted to a new task by minimizing the task loss over a
**subset** :math:`S` of its parameters, the rest held at their pretrained values
:math:`\theta^{\text{pre}}`:

.. math:: \min_{\theta_S} \; \mathcal L\big(\theta_S,\; \theta_{\bar S} = \theta^{\text{pre}}_{\bar S}\big).

In PyTorch, :math:`\bar S` is the set of tensors with ``requires_grad=False``: autograd computes
no gradient for them (their ``.grad`` stays ``None``), so no optimizer can move them, and the
backward pass skips work that only they need (no weight gradients for a frozen layer; the
gradient still flows *through* it to any trainable layer below).

:func:`freeze` and :func:`unfreeze` flip ``requires_grad`` on the parameters whose qualified
names (as ``model.named_parameters()`` gives them, e.g. ``"backbone.decoder.blocks.3.mlp.w1.weight"``)
match ``fnmatch`` patterns such as ``"backbone.*"`` or ``"*.norm*"``. Freezing is done on
**parameters**, not modules, so ``model.eval()`` is a separate decision (dropout, batch norm).

:func:`count_parameters` reports :math:`|S|` against the total, counting a tensor shared by two
modules (a language model's head **tied** to its token embedding) once, as
``named_parameters()`` does.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

__all__ = ["ParameterCount", "count_parameters", "freeze", "unfreeze"]


def _as_patterns(patterns: str | Sequence[str], fn: str) -> list[str]:
    if isinstance(patterns, str):
        return [patterns]  # one pattern, not its characters
    out = list(patterns)
    if not out or not all(isinstance(p, str) for p in out):
        raise TypeError(
            f"{fn}: patterns must be a string or a non-empty list of strings, got {patterns!r}"
        )
    return out


def _set_requires_grad(
    model: nn.Module, patterns: str | Sequence[str], value: bool, fn: str
) -> int:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{fn} expects an nn.Module, got {type(model).__name__}")
    pats = _as_patterns(patterns, fn)
    named = list(model.named_parameters())  # a shared tensor once, under its first name
    unmatched = [p for p in pats if not any(fnmatch.fnmatchcase(n, p) for n, _ in named)]
    if unmatched:
        raise ValueError(
            f"{fn}: patterns {unmatched} match no parameter name; names look like "
            f"{[n for n, _ in named[:3]]}"
        )
    changed = 0
    for name, param in named:
        if any(fnmatch.fnmatchcase(name, p) for p in pats) and param.requires_grad != value:
            param.requires_grad_(value)
            changed += 1
    return changed


def freeze(model: nn.Module, patterns: str | Sequence[str] = "*") -> int:
    """Set ``requires_grad=False`` on every parameter whose name matches a pattern.

    Args:
        model: any ``nn.Module``.
        patterns: one ``fnmatch`` pattern or a list (``"*"``: everything; ``"backbone.*"``).

    Returns the number of tensors changed (already frozen ones are not counted). A pattern
    that matches no parameter name is a ``ValueError`` naming it (a typo would otherwise
    silently freeze nothing).
    """
    return _set_requires_grad(model, patterns, False, "freeze")


def unfreeze(model: nn.Module, patterns: str | Sequence[str] = "*") -> int:
    """Set ``requires_grad=True`` on every parameter whose name matches a pattern.

    The mirror of :func:`freeze` (same patterns, same errors); returns the number of tensors
    changed.
    """
    return _set_requires_grad(model, patterns, True, "unfreeze")


@dataclass(frozen=True)
class ParameterCount:
    """Scalar parameters: ``trainable`` (``requires_grad``) out of ``total``."""

    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        """``trainable / total`` (0.0 for a model without parameters)."""
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} / {self.total:,} trainable ({100 * self.fraction:.2f}%)"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Trainable and total scalar parameters of ``model``, a tied tensor counted once."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects an nn.Module, got {type(model).__name__}")
    params = list(model.parameters())  # deduplicated by identity
    return ParameterCount(
        trainable=sum(p.numel() for p in params if p.requires_grad),
        total=sum(p.numel() for p in params),
    )
