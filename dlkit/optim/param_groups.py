r"""Weight-decay parameter groups for AdamW: which parameters shrink towards zero, and which not.

AdamW (Loshchilov & Hutter 2019) decays each parameter directly, after the adaptive step,

.. math:: \theta \leftarrow \theta - \eta\,\lambda\,\theta - \eta\,\frac{\hat m}{\sqrt{\hat v} +
   \varepsilon},

so :math:`\lambda` is a pull towards :math:`\theta = 0`. That pull is a prior "small weights"
that makes sense for the **weight matrices** that mix features: the weights of linear layers
and the attention's input projections (``in_proj_weight``, ``q/k/v_proj_weight``). It makes no
sense for

* **biases**: an offset, whose size says nothing about the model's complexity;
* **norm gains** (LayerNorm, RMSNorm, BatchNorm weights, all starting at 1): pulling them to 0
  switches a layer off instead of smoothing it;
* **embeddings** (token and learned position tables): each row is touched only when its token
  (position) appears, but decay would shrink every row at every step, so rare tokens drift to 0.

So the optimizer gets two groups (GPT-2's and nanoGPT's recipe):

.. math:: \underbrace{\{W : W \text{ a Linear weight or attention projection}\}}_{\lambda} \;\cup\;
   \underbrace{\{\text{biases, norm weights, embeddings}\}}_{0} .

The decision is made from the **module type and the parameter's role** in it, not from its
name. A parameter that belongs to several modules (a language-model head **tied** to the token
embedding: ``head.weight is tok_emb.weight``) is one tensor and is listed once; it decays only
if every module holding it would decay it, so a tied head counts as an embedding (no decay)
and is listed under the name ``named_parameters()`` gives it (the embedding's, registered
first). A parameter of any other module (a convolution kernel, a custom ``nn.Parameter``)
falls back to nanoGPT's shape rule: tensors with two or more axes decay, vectors and scalars do
not (so a position table kept as a bare ``nn.Parameter`` would decay: name it in ``no_decay``,
or use :class:`dlkit.nn.LearnedPositions`, an embedding). Frozen parameters (``requires_grad=False``) are left out: the optimizer never sees them.

**Discriminative learning rates** (ULMFiT, Howard & Ruder 2018; "layer-wise lr decay" in
BERT fine-tuning) group the parameters by depth instead: with the layers listed bottom to top,
:math:`\ell = 0, \dots, n-1`, layer :math:`\ell` gets

.. math:: \eta_\ell = \eta\,\gamma^{\,n-1-\ell}, \qquad 0 < \gamma \le 1,

so the new head (the top) learns at the base rate :math:`\eta` and the general features at the
bottom move least (:func:`discriminative_lr_groups`).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

__all__ = ["discriminative_lr_groups", "weight_decay_groups"]

_PROJECTIONS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def _module_kinds() -> tuple[tuple[type, ...], ...]:
    """(embeddings, norms, linears, attentions): the module types the rules know.

    Imported here, not at the top: ``dlkit.nn`` (its GPT) uses this module, so a top-level
    import of ``dlkit.nn`` would make the two packages import each other.
    """
    from dlkit.nn.attention import MultiHeadAttention
    from dlkit.nn.layers import Embedding, Linear
    from dlkit.nn.normalization import BatchNorm1d, LayerNorm, RMSNorm

    embeddings = (Embedding, nn.Embedding, nn.EmbeddingBag)
    norms = (
        LayerNorm, RMSNorm, BatchNorm1d,
        nn.LayerNorm, nn.RMSNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase,
    )  # fmt: skip
    return embeddings, norms, (Linear, nn.Linear), (MultiHeadAttention, nn.MultiheadAttention)


def _decays(
    module: nn.Module, role: str, param: nn.Parameter, kinds: tuple[tuple[type, ...], ...]
) -> bool:
    """Whether ``module.<role>`` (``param``) should be decayed, judged from this module alone."""
    embeddings, norms, linears, attentions = kinds
    if isinstance(module, embeddings + norms):
        return False  # token / position tables, norm gains and shifts
    if role == "bias" or role.endswith("_bias"):
        return False  # bias, in_proj_bias, bias_k, ...
    if isinstance(module, linears) and role == "weight":
        return True
    if isinstance(module, attentions) and role in _PROJECTIONS:
        return True
    return param.dim() >= 2  # anything else: matrices and kernels decay, vectors do not


def weight_decay_groups(
    model: nn.Module, weight_decay: float, *, no_decay: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Two AdamW parameter groups: ``[decay, no_decay]``.

    Args:
        model: any ``nn.Module``.
        weight_decay: :math:`\\lambda \\ge 0` of the first group (the second has 0).
        no_decay: extra parameter names, or ``fnmatch`` patterns such as ``"*.head.weight"``,
            to move into the no-decay group (names as ``model.named_parameters()`` gives them).

    Returns ``[{"params": [...], "weight_decay": weight_decay, "names": [...]},
    {"params": [...], "weight_decay": 0.0, "names": [...]}]``, both in ``named_parameters()``
    order; ``names`` is there for inspection (optimizers keep extra keys in their groups). Every
    trainable parameter is in exactly one group, once; either group may be empty. Pass the list
    to ``torch.optim.AdamW`` or ``dlkit.optim.AdamW``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"weight_decay_groups expects an nn.Module, got {type(model).__name__}")
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float):
        raise TypeError(f"weight_decay must be a real number, got {weight_decay!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if isinstance(no_decay, str):
        no_decay = [no_decay]  # one pattern, not its characters
    patterns = list(no_decay)

    kinds = _module_kinds()
    verdicts: dict[int, bool] = {}  # id(param) -> decays, and-ed over every module holding it
    for module in model.modules():  # each module once, even if it appears under two names
        for role, param in module.named_parameters(recurse=False):
            verdict = _decays(module, role, param, kinds)
            verdicts[id(param)] = verdicts.get(id(param), True) and verdict

    names = [name for name, _ in model.named_parameters()]  # shared parameters once
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(n, p) for n in names)]
    if unmatched:
        raise ValueError(f"no_decay patterns {unmatched} match no parameter of the model")

    groups: list[dict[str, Any]] = [
        {"params": [], "weight_decay": float(weight_decay), "names": []},
        {"params": [], "weight_decay": 0.0, "names": []},
    ]
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        forced = any(fnmatch.fnmatchcase(name, pat) for pat in patterns)
        group = groups[0] if verdicts[id(param)] and not forced else groups[1]
        group["params"].append(param)
        group["names"].append(name)
    return groups


def _real(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(
            f"discriminative_lr_groups: {what} must be a finite real number, got {value!r}"
        )
    return float(value)


def discriminative_lr_groups(
    model: nn.Module, layer_prefixes: Sequence[str], *, base_lr: float, decay: float
) -> list[dict[str, Any]]:
    """One optimizer group per layer, ``lr = base_lr * decay ** (n - 1 - i)`` for prefix ``i``.

    Args:
        model: any ``nn.Module``.
        layer_prefixes: ``n`` parameter-name prefixes ordered **bottom → top**, e.g.
            :meth:`dlkit.nn.lm_classifier.LMClassifier.layer_prefixes`. A parameter belongs to
            prefix ``p`` if its name is ``p`` or starts with ``p + "."`` (so ``"blocks.1"``
            does not take ``"blocks.10.w"``).
        base_lr: :math:`\\eta > 0`, the rate of the top layer.
        decay: :math:`\\gamma \\in (0, 1]`, the factor per layer going down (1: one rate).

    Returns ``[{"params": [...], "lr": ..., "name": prefix, "names": [...]}, ...]`` bottom →
    top, parameters in ``named_parameters()`` order. Only trainable parameters are listed, and
    a layer with none (frozen) gets no group; the others keep the rate of their position ``i``
    among all ``n`` prefixes. Every trainable parameter must fall under exactly one prefix:
    a ``ValueError`` lists those under none, or under two. Pass the list to
    ``torch.optim.AdamW`` (its ``lr`` is then only the default of groups without one).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"discriminative_lr_groups expects an nn.Module, got {type(model).__name__}"
        )
    if isinstance(layer_prefixes, str):
        raise TypeError(
            "discriminative_lr_groups: layer_prefixes must be a list of prefixes, not one string"
        )
    prefixes = [str(p).rstrip(".") for p in layer_prefixes]
    if not prefixes:
        raise ValueError("discriminative_lr_groups: layer_prefixes is empty")
    if len(set(prefixes)) != len(prefixes):
        raise ValueError(f"discriminative_lr_groups: repeated prefixes in {prefixes}")
    base_lr, decay = _real(base_lr, "base_lr"), _real(decay, "decay")
    if base_lr <= 0:
        raise ValueError(f"discriminative_lr_groups: base_lr must be > 0, got {base_lr}")
    if not 0 < decay <= 1:
        raise ValueError(f"discriminative_lr_groups: decay must be in (0, 1], got {decay}")

    n = len(prefixes)
    groups: list[dict[str, Any]] = [
        {"params": [], "lr": base_lr * decay ** (n - 1 - i), "name": p, "names": []}
        for i, p in enumerate(prefixes)
    ]
    missing, doubled = [], []
    for name, param in model.named_parameters():  # a tied tensor once
        if not param.requires_grad:
            continue
        hits = [i for i, p in enumerate(prefixes) if name == p or name.startswith(p + ".")]
        if len(hits) != 1:
            (missing if not hits else doubled).append(name)
            continue
        groups[hits[0]]["params"].append(param)
        groups[hits[0]]["names"].append(name)
    if missing:
        raise ValueError(
            f"discriminative_lr_groups: trainable parameters under no prefix: {missing}"
        )
    if doubled:
        raise ValueError(f"discriminative_lr_groups: parameters under several prefixes: {doubled}")
    return [g for g in groups if g["params"]]
