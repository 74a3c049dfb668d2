r"""LoRA: fine-tune a frozen linear layer through a trainable low-rank update (Hu et al., 2021).

A pretrained weight :math:`W \in \mathbb{R}^{d_\text{out} \times d_\text{in}}` stays frozen; the
layer learns two thin matrices :math:`A \in \mathbb{R}^{r \times d_\text{in}}` and
:math:`B \in \mathbb{R}^{d_\text{out} \times r}` with :math:`r \ll \min(d_\text{in}, d_\text{out})`,
and computes

.. math::

    y = x W^\top + b + \frac{\alpha}{r}\, \operatorname{drop}(x)\, A^\top B^\top,
    \qquad\text{so (without dropout)}\qquad
    W' = W + \frac{\alpha}{r} B A .

**Parameters.** :math:`r (d_\text{in} + d_\text{out})` per layer instead of
:math:`d_\text{in} d_\text{out}`: for a :math:`128 \times 128` projection and :math:`r = 8`,
2,048 instead of 16,384 (12.5 %). The update :math:`BA` has rank at most :math:`r`.

**Why** :math:`B = 0` **at initialization.** Then :math:`\Delta W = \tfrac{\alpha}{r} BA = 0`
and the adapted model *is* the pretrained model at step 0: fine-tuning starts from what was
learned, not from a random perturbation of it. :math:`A` cannot be zero as well: the
gradients are

.. math::

    \frac{\partial \mathcal L}{\partial B} = \frac{\alpha}{r}\, G^\top (X A^\top), \qquad
    \frac{\partial \mathcal L}{\partial A} = \frac{\alpha}{r}\, B^\top G^\top X

(:math:`G = \partial \mathcal L / \partial Y`), so with :math:`B = 0` only :math:`B` moves in the
first step, and with both zero neither would ever move. :math:`A` is drawn like a linear layer's
weight (``kaiming_uniform_(a=√5)``, :math:`\mathcal U(\pm 1/\sqrt{d_\text{in}})`, as PEFT does).

**Why the scale** :math:`\alpha / r`. :math:`\Delta W x = \sum_{k=1}^{r} B_{:,k} (A_{k,:} x)`
is a sum of :math:`r` rank-one terms. Adam moves every entry of :math:`B` by about the learning
rate whatever the size of its gradient, and in the first step those moves line up with
:math:`A x`, so the change of the output grows like :math:`r`. Dividing by :math:`r` makes it
independent of the rank: one can change :math:`r` without retuning the learning rate, and
:math:`\alpha` acts as a learning-rate multiplier for the adapter (the paper sets
:math:`\alpha` to the first :math:`r` tried and leaves it). The scale is written once,
``self.scale = alpha / r``; :meth:`LoRALinear.delta_weight` is the one place it multiplies
:math:`BA`, and :meth:`LoRALinear.merge` is the one place that product is folded into
:math:`W`. (rsLoRA, Kalajdzievski 2023, argues for :math:`\alpha / \sqrt r` at large ranks.)

**Merging.** After training, :math:`W \leftarrow W + \tfrac{\alpha}{r} BA` gives a plain
linear layer with the same outputs and no extra cost at inference; :meth:`~LoRALinear.unmerge`
subtracts it again (up to rounding).

**Fused kernels.** dlkit's attention and MLP modules with ``kernels="torch"`` (``fused=True``)
call ``F.linear(x, layer.weight, layer.bias)`` instead of ``layer(x)``. So that LoRA works
there too, :attr:`LoRALinear.weight` is the *effective* weight :math:`W'` (differentiable in
:math:`A, B`); the output is the same as :meth:`~LoRALinear.forward` without dropout. Dropout
on the LoRA branch needs the forward call, so :func:`apply_lora` refuses ``dropout > 0`` under
a fused parent.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dlkit.nn.dropout import Dropout

__all__ = ["LoRALinear", "apply_lora", "lora_parameters", "merge_lora", "unmerge_lora"]


def _check_linear_like(base: object, what: str) -> tuple[int, int]:
    """``(out_features, in_features)`` of a module with a 2-D ``weight`` and a ``bias``."""
    weight = getattr(base, "weight", None)
    if not isinstance(base, nn.Module) or not isinstance(weight, Tensor) or weight.dim() != 2:
        got = type(base).__name__
        if isinstance(weight, Tensor):
            got += f" with a {weight.dim()}-D weight {tuple(weight.shape)}"
        raise ValueError(f"{what}: expected a linear layer with a 2-D weight (out, in), got {got}")
    if not hasattr(base, "bias"):
        got = type(base).__name__
        raise ValueError(
            f"{what}: expected a linear layer with a .bias (tensor or None), got {got}"
        )
    if isinstance(base, LoRALinear):
        raise ValueError(f"{what}: the layer is already a LoRALinear; LoRA is not nested")
    return int(weight.shape[0]), int(weight.shape[1])


class LoRALinear(nn.Module):
    r"""A frozen linear layer plus a trainable rank-:math:`r` update,
    :math:`y = \text{base}(x) + \tfrac{\alpha}{r}\,\operatorname{drop}(x) A^\top B^\top`.

    Args:
        base: ``torch.nn.Linear``, ``dlkit.nn.layers.Linear`` or any module with a 2-D
            ``weight`` ``(out, in)`` and a ``bias`` (tensor or None); its parameters are frozen.
        r: the rank, ``1 <= r <= min(in, out)``.
        alpha: :math:`\alpha > 0`; the update is scaled by ``scale = alpha / r``.
        dropout: probability of dropping input elements on the LoRA branch only.

    Parameters: ``lora_A`` ``(r, in)`` (``kaiming_uniform_(a=√5)``), ``lora_B`` ``(out, r)``
    (zeros). Shape: ``(*, in) -> (*, out)``. ``merged`` says whether the update is folded into
    ``base.weight`` (then the forward is ``base(x)`` alone).
    """

    def __init__(self, base: nn.Module, *, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        out_features, in_features = _check_linear_like(base, "LoRALinear")
        if isinstance(r, bool) or not isinstance(r, int):
            raise TypeError(f"LoRALinear: r must be an int, got {r!r}")
        if not 1 <= r <= min(in_features, out_features):
            raise ValueError(
                f"LoRALinear: r must lie in [1, min(in, out)] = [1, "
                f"{min(in_features, out_features)}] for a ({out_features}, {in_features}) "
                f"weight, got {r}"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, int | float):
            raise TypeError(f"LoRALinear: alpha must be a real number, got {alpha!r}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"LoRALinear: alpha must be a finite number > 0, got {alpha!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, int | float):
            raise TypeError(f"LoRALinear: dropout must be a real number, got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LoRALinear: dropout must lie in [0, 1), got {dropout!r}")

        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.in_features, self.out_features = in_features, out_features
        self.r, self.alpha = r, float(alpha)
        self.scale = self.alpha / r  # α / r: written once, used by delta_weight only
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(r, in_features, **factory))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(out_features, r, **factory))  # (out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # U(±1/√in), as PEFT
        self.dropout = Dropout(float(dropout))
        self.merged = False

    def delta_weight(self) -> Tensor:
        r"""The update :math:`\Delta W = \tfrac{\alpha}{r} B A` ``(out, in)``."""
        return self.scale * (self.lora_B @ self.lora_A)  # (out, r) @ (r, in) -> (out, in)

    @property
    def weight(self) -> Tensor:
        r"""The effective weight :math:`W' = W + \tfrac{\alpha}{r} BA` ``(out, in)``
        (``base.weight`` itself once merged); for callers that use ``F.linear(x, m.weight)``."""
        if self.merged:
            return self.base.weight
        return self.base.weight + self.delta_weight()  # (out, in)

    @property
    def bias(self) -> Tensor | None:
        """The frozen base layer's bias ``(out,)`` or None."""
        return self.base.bias

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or x.dim() < 1 or x.shape[-1] != self.in_features:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"LoRALinear({self.in_features}, {self.out_features}) expects input of shape "
                f"(..., {self.in_features}), got {got}"
            )
        y = self.base(x)  # (..., out)
        if self.merged:
            return y
        h = self.dropout(x) @ self.lora_A.T  # (..., in) @ (in, r) -> (..., r)
        return y + self.scale * (h @ self.lora_B.T)  # (..., r) @ (r, out) -> (..., out)

    @torch.no_grad()
    def merge(self) -> None:
        r""":math:`W \leftarrow W + \tfrac{\alpha}{r} BA`; afterwards the forward is ``base(x)``."""
        if self.merged:
            raise RuntimeError("LoRALinear.merge: already merged (call unmerge() first)")
        self.base.weight.add_(self.delta_weight().to(self.base.weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        r""":math:`W \leftarrow W - \tfrac{\alpha}{r} BA` (the weight before :meth:`merge`, up to
        rounding)."""
        if not self.merged:
            raise RuntimeError("LoRALinear.unmerge: not merged (call merge() first)")
        self.base.weight.sub_(self.delta_weight().to(self.base.weight.dtype))
        self.merged = False

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
            f"alpha={self.alpha:g}, scale={self.scale:g}, dropout={self.dropout.p:g}, "
            f"merged={self.merged}"
        )


def _check_patterns(patterns: Sequence[str] | str, what: str) -> list[str]:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)  # one pattern, not chars
    bad = [p for p in patterns if not isinstance(p, str) or not p]
    if bad:
        raise TypeError(f"apply_lora: {what} must be non-empty strings, got {bad!r}")
    return patterns


def _tied_names(model: nn.Module) -> dict[int, list[str]]:
    """id(parameter) -> every name it appears under (tied weights appear more than once)."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return names


def apply_lora(
    model: nn.Module,
    targets: Sequence[str],
    *,
    r: int,
    alpha: float,
    dropout: float = 0.0,
    freeze_others: bool = True,
    trainable: Sequence[str] = (),
) -> list[str]:
    """Replace the linear submodules named by ``targets`` with :class:`LoRALinear`, in place.

    Args:
        model: any ``nn.Module``.
        targets: ``fnmatch`` patterns on qualified module names (``named_modules()``), e.g.
            ``["*.out_proj", "*.mlp.w1", "*.mlp.w2", "*.mlp.w3"]``. Each must match at least one
            module, and every match must be linear-like (2-D ``weight``, a ``bias``), not tied
            to another parameter (merging would change both) and not already LoRA.
        r, alpha, dropout: as :class:`LoRALinear`.
        freeze_others: freeze every parameter outside the LoRA matrices, except those whose
            ``named_parameters()`` names match a ``trainable`` pattern (e.g. ``"classifier.*"``).
            Without it only the wrapped layers' base weights are frozen.
        trainable: ``fnmatch`` patterns of parameters to leave trainable; each must match.

    Returns the replaced module names, in ``named_modules()`` order. Everything is checked
    before the model is changed.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"apply_lora expects an nn.Module, got {type(model).__name__}")
    targets = _check_patterns(targets, "targets")
    if not targets:
        raise ValueError(
            "apply_lora: targets is empty; name the layers to adapt, e.g. '*.out_proj'"
        )
    trainable = _check_patterns(trainable, "trainable")

    modules = dict(model.named_modules())
    modules.pop("")  # the model itself is never replaced
    names = [n for n in modules if any(fnmatch.fnmatchcase(n, p) for p in targets)]
    unmatched = [p for p in targets if not any(fnmatch.fnmatchcase(n, p) for n in modules)]
    if unmatched:
        raise ValueError(f"apply_lora: target patterns {unmatched} match no module of the model")
    tied = _tied_names(model)
    for name in names:
        module = modules[name]
        _check_linear_like(module, f"apply_lora: target {name!r}")
        ancestors = [name[:i] for i, ch in enumerate(name) if ch == "."]  # "a.b.c" -> a, a.b
        if any(isinstance(modules.get(a), LoRALinear) for a in ancestors):
            raise ValueError(f"apply_lora: target {name!r} lies inside a LoRALinear")
        shared = tied.get(id(module.weight), [])
        if len(shared) > 1:
            raise ValueError(
                f"apply_lora: target {name!r} has a weight tied to {shared}; merging its update "
                f"would change every one of them"
            )
        parent = modules.get(name.rpartition(".")[0], model)
        if dropout and getattr(parent, "fused", False) is True:
            raise ValueError(
                f"apply_lora: {name!r} sits in a fused module that calls F.linear on its weight, "
                f"so LoRA dropout cannot apply; use dropout=0.0 or build with kernels='dlkit'"
            )
    if trainable:
        param_names = [n for n, _ in model.named_parameters()]
        missing = [p for p in trainable if not any(fnmatch.fnmatchcase(n, p) for n in param_names)]
        if missing:
            raise ValueError(f"apply_lora: trainable patterns {missing} match no parameter")

    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        setattr(parent, child, LoRALinear(modules[name], r=r, alpha=alpha, dropout=dropout))

    if freeze_others:
        lora = {id(p) for p in lora_parameters(model)}
        for pname, p in model.named_parameters():
            if id(p) not in lora:
                p.requires_grad_(any(fnmatch.fnmatchcase(pname, pat) for pat in trainable))
    return names


def _lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> int:
    """Merge every unmerged :class:`LoRALinear` of ``model``; returns how many were merged."""
    layers = [m for m in _lora_layers(model) if not m.merged]
    for m in layers:
        m.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Unmerge every merged :class:`LoRALinear` of ``model``; returns how many were unmerged."""
    layers = [m for m in _lora_layers(model) if m.merged]
    for m in layers:
        m.unmerge()
    return len(layers)


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """``lora_A`` and ``lora_B`` of every :class:`LoRALinear`, in ``modules()`` order (pass
    them to the optimizer)."""
    return [p for m in _lora_layers(model) for p in (m.lora_A, m.lora_B)]
