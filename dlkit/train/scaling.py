r"""What training costs in floating-point operations, and how loss falls with compute.

**Training compute.** A forward pass of a transformer with :math:`N` (non-embedding)
parameters costs about :math:`2N` FLOPs per token (one multiply and one add per weight), and
the backward pass about twice that (gradients with respect to the activations *and* the
weights), so training on :math:`D` tokens costs

.. math:: C \approx 6 N D \quad \text{FLOPs} \qquad (Kaplan et al. 2020, §2.1).

The count leaves out attention's own products :math:`Q K^\top` and :math:`A V`, which do
not touch any parameter: :math:`2\, n_\text{layer}\, n_\text{ctx}\, d_\text{attn}` FLOPs per
token forward, :math:`6\, n_\text{layer}\, n_\text{ctx}\, d_\text{attn}` for training
(:func:`attention_training_flops`). Against :math:`6N \approx 72\, n_\text{layer}\,
d_\text{model}^2` (with :math:`d_\text{ff} = 4 d_\text{model}`) it adds a fraction
:math:`n_\text{ctx} / (12\, d_\text{model})`: negligible for large models, not for the
tiny ones of this course (context 64, width 32: +17 %).

**Scaling laws.** Over many orders of magnitude, the loss of well-tuned language models
follows a power law in compute, parameters or data (Kaplan et al. 2020, "Scaling Laws for
Neural Language Models", arXiv:2001.08361):

.. math:: L(C) \approx a\, C^{-b} \quad \text{or, with an irreducible loss } c,
   \quad L(C) \approx a\, C^{-b} + c .

:func:`fit_power_law` fits :math:`\log L = \log a - b \log C` by least squares (a straight
line on log–log axes). With ``irreducible=True`` it also fits :math:`c \in [0, \min L)`:
for each :math:`c` the best :math:`(a, b)` is the straight-line fit of :math:`\log (L - c)`,
so only the one number :math:`c` is searched (a grid, then golden-section refinement) for
the smallest squared error in :math:`\log (L - c)`.

**Compute-optimal models.** For a budget :math:`C`, which :math:`N` and :math:`D` give the
lowest loss? Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models",
arXiv:2203.15556, the *Chinchilla* paper) found that :math:`N` and :math:`D` should grow
equally, :math:`N_\text{opt} \propto C^{0.5}`, :math:`D_\text{opt} \propto C^{0.5}`, at
about 20 training tokens per parameter. With :math:`C = 6 N D` and :math:`D = r N`:

.. math:: N_\text{opt} = \sqrt{\frac{C}{6 r}}, \qquad D_\text{opt} = r\, N_\text{opt},
   \qquad r \approx 20 \qquad (:func:`chinchilla_optimal`).

Kaplan et al. had recommended spending most extra compute on parameters
(:math:`N_\text{opt} \propto C^{0.73}`); part of the difference is that they counted
non-embedding parameters and studied small models, where embeddings are a large share of
the total (Pearce and Song 2024, "Reconciling Kaplan and Chinchilla Scaling Laws",
arXiv:2406.12907). Both are empirical fits to large models trained for one pass over fresh
data; at the scale of this course (a ~0.5 M-token corpus, models of 10⁴–10⁶ parameters)
they are a vocabulary and a sanity check, not a prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CHINCHILLA_TOKENS_PER_PARAMETER",
    "PowerLaw",
    "attention_training_flops",
    "chinchilla_optimal",
    "fit_power_law",
    "training_flops",
]

CHINCHILLA_TOKENS_PER_PARAMETER = 20.0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def training_flops(n_params: float, n_tokens: float) -> float:
    """:math:`C = 6 N D`: the FLOPs of training ``n_params`` parameters on ``n_tokens`` tokens."""
    return 6.0 * _positive("n_params", n_params) * _positive("n_tokens", n_tokens)


def attention_training_flops(n_layers: int, context: int, d_attn: int, n_tokens: float) -> float:
    r""":math:`6\, n_\text{layer}\, n_\text{ctx}\, d_\text{attn}\, D`: the attention products
    (:math:`QK^\top` and :math:`AV`) that :math:`6ND` leaves out, forward and backward, for
    ``n_tokens`` tokens trained at context ``context`` (Kaplan et al. 2020, Table 1)."""
    for name, value in (("n_layers", n_layers), ("context", context), ("d_attn", d_attn)):
        _positive(name, value)
    return 6.0 * n_layers * context * d_attn * _positive("n_tokens", n_tokens)


@dataclass(frozen=True)
class PowerLaw:
    r""":math:`L(C) = a\, C^{-b} + c` (``c = 0`` for a pure power law).

    ``rmse_log`` is the root-mean-square residual of the fit in :math:`\ln (L - c)` (0 for
    data that lie exactly on the curve); ``n_points`` how many points it was fitted to.
    """

    a: float
    b: float
    c: float = 0.0
    rmse_log: float = 0.0
    n_points: int = 0

    def __call__(self, compute: float | np.ndarray) -> float | np.ndarray:
        """The predicted loss at ``compute`` (a number or an array)."""
        return self.a * np.power(np.asarray(compute, dtype=float), -self.b) + self.c

    def compute_for_loss(self, loss: float) -> float:
        r"""The compute at which the curve reaches ``loss``: :math:`((L - c) / a)^{-1/b}`."""
        if not loss > self.c:
            raise ValueError(f"the curve never reaches loss {loss} <= its floor c = {self.c}")
        if self.b <= 0:
            raise ValueError(f"the curve does not fall with compute (b = {self.b})")
        return float(((loss - self.c) / self.a) ** (-1.0 / self.b))

    def __str__(self) -> str:
        floor = f" + {self.c:.4g}" if self.c else ""
        return f"L(C) = {self.a:.4g} · C^(-{self.b:.4g}){floor}"


def _as_positive_array(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or not np.all(array > 0):
        raise ValueError(f"{name} must hold finite numbers > 0, got {array.tolist()}")
    return array


def _line_fit(log_c: np.ndarray, log_l: np.ndarray) -> tuple[float, float, float]:
    """Least squares ``log_l ≈ log_a - b * log_c``: ``(log_a, b, sum of squared residuals)``."""
    design = np.stack([np.ones_like(log_c), -log_c], axis=1)  # (n, 2)
    (log_a, b), *_ = np.linalg.lstsq(design, log_l, rcond=None)
    residual = log_l - design @ np.array([log_a, b])  # (n,)
    return float(log_a), float(b), float(residual @ residual)


def fit_power_law(
    compute: Sequence[float] | np.ndarray,
    loss: Sequence[float] | np.ndarray,
    *,
    irreducible: bool = False,
) -> PowerLaw:
    r"""Fit :math:`L \approx a\, C^{-b}` (or :math:`a\, C^{-b} + c` with ``irreducible``).

    Least squares on log–log axes: minimises :math:`\sum_i (\ln (L_i - c) - \ln a + b \ln
    C_i)^2`. ``compute`` and ``loss`` are equally long 1-D arrays of positive numbers, at
    least two points distinct in compute (three for ``irreducible``). The fitted floor
    :math:`c` lies in :math:`[0, \min L)`.
    """
    log_c = np.log(_as_positive_array("compute", compute))
    losses = _as_positive_array("loss", loss)
    if log_c.shape != losses.shape:
        raise ValueError(
            f"compute and loss must be equally long, got {log_c.size} and {losses.size} values"
        )
    needed = 3 if irreducible else 2
    if np.unique(log_c).size < needed:
        raise ValueError(
            f"fitting a power law{' with a floor' if irreducible else ''} needs at least "
            f"{needed} distinct compute values, got {np.unique(log_c).size}"
        )
    if not irreducible:
        log_a, b, sse = _line_fit(log_c, np.log(losses))
        return PowerLaw(math.exp(log_a), b, 0.0, math.sqrt(sse / losses.size), losses.size)

    def sse_at(c: float) -> float:
        return _line_fit(log_c, np.log(losses - c))[2]

    top = float(losses.min()) * (1.0 - 1e-9)  # c < min L keeps every log finite
    grid = np.linspace(0.0, top, 257)
    errors = [sse_at(c) for c in grid]
    i = int(np.argmin(errors))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    for _ in range(80):  # golden-section search inside the grid bracket
        x1, x2 = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
        if sse_at(x1) <= sse_at(x2):
            hi = x2
        else:
            lo = x1
    c = 0.5 * (lo + hi)
    if errors[i] < sse_at(c):  # a grid end point (c = 0, say) can beat the interior
        c = float(grid[i])
    log_a, b, sse = _line_fit(log_c, np.log(losses - c))
    return PowerLaw(math.exp(log_a), b, c, math.sqrt(sse / losses.size), losses.size)


def chinchilla_optimal(
    compute: float, *, tokens_per_parameter: float = CHINCHILLA_TOKENS_PER_PARAMETER
) -> tuple[float, float]:
    r"""``(n_params, n_tokens)`` that spend ``compute`` FLOPs as Chinchilla recommends.

    Solves :math:`C = 6 N D` with :math:`D = r N` (:math:`r` = ``tokens_per_parameter``,
    about 20 in Hoffmann et al. 2022): :math:`N = \sqrt{C / (6 r)}`, :math:`D = r N`.
    """
    c = _positive("compute", compute)
    r = _positive("tokens_per_parameter", tokens_per_parameter)
    n_params = math.sqrt(c / (6.0 * r))
    return n_params, r * n_params
