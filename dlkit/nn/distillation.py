r"""Knowledge distillation: a small student learns from a large teacher's soft targets.

Hinton, Vinyals and Dean (2015) train the student on the teacher's *softened*
distribution as well as on the labels. With student logits :math:`s`, teacher logits
:math:`t` (both :math:`\in \mathbb{R}^K`) and a temperature :math:`T > 0`,

.. math:: p_T = \operatorname{softmax}(t / T), \qquad q_T = \operatorname{softmax}(s / T),

and the loss of a batch mixes the hard-label cross-entropy with the soft-target KL:

.. math:: \mathcal{L} = (1 - \alpha)\, \mathrm{CE}(s, y)
   + \alpha\, T^2\, \mathrm{KL}(p_T \,\|\, q_T), \qquad
   \mathrm{KL}(p \,\|\, q) = \sum_{i=1}^K p_i \log \frac{p_i}{q_i}.

A high temperature lifts the small probabilities the teacher gives to wrong classes
(a 3 that looks a bit like an 8), the "dark knowledge" a one-hot label does not carry.

**Why** :math:`T^2`. With :math:`\log q_{T,i} = s_i / T - \log \sum_j e^{s_j / T}`,

.. math:: \frac{\partial\, \mathrm{KL}(p_T \,\|\, q_T)}{\partial s_i}
   = -\sum_j p_{T,j} \frac{\partial \log q_{T,j}}{\partial s_i}
   = -\frac{1}{T} \sum_j p_{T,j} (\delta_{ij} - q_{T,i}) = \frac{q_{T,i} - p_{T,i}}{T}.

For large :math:`T` expand :math:`e^{z_i / T} \approx 1 + z_i / T`:
:math:`\operatorname{softmax}(z / T)_i \approx \frac{1}{K} + \frac{z_i - \bar z}{K T}`
(:math:`\bar z` the mean logit), so

.. math:: \frac{\partial\, \mathrm{KL}}{\partial s_i} \approx
   \frac{(s_i - \bar s) - (t_i - \bar t)}{K\, T^2}.

The soft term's gradient falls like :math:`1/T^2`; multiplying it by :math:`T^2`
makes its gradient :math:`\approx ((s - \bar s) - (t - \bar t)) / K`, independent of
:math:`T` (in the limit, matching centred logits, Hinton et al.'s section 2.1). So
changing :math:`T` changes *what* the student is taught, not how loud the soft term is
relative to the cross-entropy, and :math:`\alpha` keeps its meaning across temperatures.

**Batch reduction.** The KL is a sum over classes averaged over rows,
``F.kl_div(log q, log p, log_target=True, reduction="batchmean")``: the mathematical
KL per example. ``reduction="mean"`` averages over all :math:`B K` entries and so
returns the KL divided by :math:`K`, a loss whose scale depends on the number of classes.

**Unlabelled rows.** A row whose target is ``IGNORE_INDEX`` (-100) takes part in the KL
only: the teacher labels it. This is how a transfer set of unlabelled images is used.
The CE is the mean over labelled rows (0 when there are none), the KL the mean over all rows.
The teacher's logits are detached: no gradient flows into the teacher.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor

from dlkit.data.masking import IGNORE_INDEX

__all__ = ["distillation_loss", "soft_kl", "soft_targets"]


def _check_temperature(temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, Real):
        raise TypeError(f"temperature must be a real number, got {type(temperature).__name__}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be finite and > 0, got {temperature!r}")
    return float(temperature)


def _check_logits(logits: Tensor, name: str) -> None:
    if not isinstance(logits, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {logits.dtype}")


def _check_pair(student_logits: Tensor, teacher_logits: Tensor) -> None:
    _check_logits(student_logits, "student_logits")
    _check_logits(teacher_logits, "teacher_logits")
    if student_logits.ndim != 2:
        raise ValueError(f"student_logits must be (B, K), got shape {tuple(student_logits.shape)}")
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits must have the student's shape (B, K) = "
            f"{tuple(student_logits.shape)}, got {tuple(teacher_logits.shape)}"
        )


def soft_targets(logits: Tensor, temperature: float) -> Tensor:
    r"""The softened distribution :math:`\operatorname{softmax}(z / T)` over the last dim.

    ``logits`` ``(..., K)`` floating → probabilities of the same shape. :math:`T = 1` is
    the ordinary softmax, :math:`T \to \infty` the uniform distribution, :math:`T \to 0`
    the one-hot arg-max.
    """
    _check_logits(logits, "logits")
    T = _check_temperature(temperature)
    return torch.softmax(logits / T, dim=-1)


def soft_kl(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float) -> Tensor:
    r""":math:`\mathrm{KL}(p_T \,\|\, q_T)` averaged over the batch (no :math:`T^2`).

    ``student_logits``, ``teacher_logits`` ``(B, K)``; the teacher is detached. Equals
    ``F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, reduction="batchmean")``.
    """
    _check_pair(student_logits, teacher_logits)
    T = _check_temperature(temperature)
    log_q = F.log_softmax(student_logits / T, dim=-1)  # (B, K) student
    log_p = F.log_softmax(teacher_logits.detach() / T, dim=-1)  # (B, K) teacher
    return F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    *,
    temperature: float,
    alpha: float,
) -> Tensor:
    r""":math:`(1-\alpha)\,\mathrm{CE}(s, y) + \alpha\, T^2\, \mathrm{KL}(p_T \,\|\, q_T)`, a scalar.

    Args:
        student_logits: ``(B, K)`` floating, the student's logits :math:`s`.
        teacher_logits: ``(B, K)``, the teacher's logits :math:`t` (detached here).
        targets: ``(B,)`` int64 class ids in ``[0, K)``, or ``IGNORE_INDEX`` (-100) for a
            row with no label (it counts in the KL, not in the CE).
        temperature: :math:`T > 0`.
        alpha: weight :math:`\alpha \in [0, 1]` of the soft term (0: labels only,
            1: teacher only).

    The CE is the mean over labelled rows (0 if none is labelled), the KL the per-example
    KL averaged over all ``B`` rows (``batchmean``; see the module docstring for why, and
    for why :math:`T^2`).
    """
    _check_pair(student_logits, teacher_logits)
    T = _check_temperature(temperature)
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    B, K = student_logits.shape
    if not isinstance(targets, Tensor) or targets.dtype != torch.int64:
        kind = targets.dtype if isinstance(targets, Tensor) else type(targets).__name__
        raise TypeError(f"targets must be an int64 tensor (B,), got {kind}")
    if targets.shape != (B,):
        raise ValueError(f"targets must be (B,) = ({B},), got shape {tuple(targets.shape)}")
    labelled = targets != IGNORE_INDEX  # (B,) bool
    bad = labelled & ((targets < 0) | (targets >= K))
    if bool(bad.any()):
        raise ValueError(
            f"targets must lie in [0, {K}) or be IGNORE_INDEX ({IGNORE_INDEX}), "
            f"got {targets[bad][:5].tolist()}"
        )
    if bool(labelled.any()):
        ce = F.cross_entropy(student_logits[labelled], targets[labelled])  # mean over labelled
    else:
        ce = student_logits.new_zeros(())
    kl = soft_kl(student_logits, teacher_logits, temperature=T)
    return (1.0 - alpha) * ce + alpha * T**2 * kl
