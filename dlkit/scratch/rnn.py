r"""A vanilla (Elman) RNN in NumPy: forward, backpropagation through time, clipping.

**Convention.** Sequences are time-major, like ``torch.nn.RNN``'s default: ``x`` has
shape ``(T, B, D)`` (time, batch, input features), hidden states ``(B, H)``. Each example
is a *row* of a batch, so the textbook recurrence on column vectors

.. math::

    h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b)

reads, for a batch :math:`X_t` ``(B, D)`` and :math:`H_{t-1}` ``(B, H)``,

.. math::

    H_t = \tanh(X_t W_{xh}^\top + H_{t-1} W_{hh}^\top + b), \qquad
    W_{xh} \in \mathbb{R}^{H \times D},\; W_{hh} \in \mathbb{R}^{H \times H},\; b \in \mathbb{R}^{H}.

The weights have PyTorch's shapes: ``W_xh`` is ``weight_ih_l0``, ``W_hh`` is
``weight_hh_l0`` and ``b`` is ``bias_ih_l0 + bias_hh_l0`` (PyTorch keeps two biases
that always appear as a sum).

**Backpropagation through time.** With :math:`A_t = X_t W_{xh}^\top + H_{t-1}
W_{hh}^\top + b` and :math:`G_t = \partial L / \partial H_t` the *total* gradient (from
the loss at step :math:`t` and, through :math:`H_{t+1}`, from every later step):

.. math::

    \delta_t = G_t \odot (1 - H_t^2), \qquad
    G_{t-1} = \frac{\partial L}{\partial H_{t-1}}\Big|_{\text{direct}} + \delta_t W_{hh},

    \frac{\partial L}{\partial X_t} = \delta_t W_{xh}, \qquad
    \frac{\partial L}{\partial W_{xh}} = \sum_t \delta_t^\top X_t, \qquad
    \frac{\partial L}{\partial W_{hh}} = \sum_t \delta_t^\top H_{t-1}, \qquad
    \frac{\partial L}{\partial b} = \sum_t \mathbf{1}^\top \delta_t .

Since :math:`G_{t-1}` contains :math:`G_t` multiplied by :math:`\operatorname{diag}(1 -
H_t^2)\,W_{hh}`, a gradient that travels :math:`k` steps back is multiplied by :math:`k`
such Jacobians: it shrinks (vanishes) or grows (explodes) geometrically with :math:`k`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

RNNParams = dict[str, np.ndarray]  # {"W_xh": (H, D), "W_hh": (H, H), "b": (H,)}


def _check_params(params: RNNParams) -> tuple[int, int]:
    missing = {"W_xh", "W_hh", "b"} - set(params)
    if missing:
        raise KeyError(f"RNN parameters need W_xh, W_hh and b; missing {sorted(missing)}")
    w_xh, w_hh, b = params["W_xh"], params["W_hh"], params["b"]
    if w_xh.ndim != 2:
        raise ValueError(f"W_xh must have shape (H, D), got {w_xh.shape}")
    hidden, features = w_xh.shape
    if w_hh.shape != (hidden, hidden) or b.shape != (hidden,):
        raise ValueError(
            f"with W_xh of shape {w_xh.shape}, W_hh must be {(hidden, hidden)} and b "
            f"{(hidden,)}; got {w_hh.shape} and {b.shape}"
        )
    return hidden, features


def _check_inputs(x: np.ndarray, h0: np.ndarray, hidden: int, features: int) -> None:
    if x.ndim != 3 or x.shape[2] != features:
        raise ValueError(f"x must have shape (T, B, D={features}), got {x.shape}")
    if h0.shape != (x.shape[1], hidden):
        raise ValueError(f"h0 must have shape (B={x.shape[1]}, H={hidden}), got {h0.shape}")


def init_rnn_params(
    input_size: int, hidden_size: int, *, weight_scale: float = 1.0, seed: int = 0
) -> RNNParams:
    r"""Random parameters in float64.

    :math:`W_{hh} = s\,Q` with :math:`Q` a random orthogonal matrix, so every singular
    value of :math:`W_{hh}` equals the ``weight_scale`` :math:`s`: :math:`s < 1` shrinks
    and :math:`s > 1` stretches a signal sent back through time. :math:`W_{xh}` has
    entries :math:`\mathcal{N}(0, 1/D)` and :math:`b = 0`.
    """
    if input_size < 1 or hidden_size < 1:
        raise ValueError(f"sizes must be >= 1, got {input_size} and {hidden_size}")
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((hidden_size, hidden_size)))
    q = q * np.sign(np.diag(r))  # a uniformly random orthogonal matrix
    return {
        "W_xh": rng.standard_normal((hidden_size, input_size)) / np.sqrt(input_size),
        "W_hh": weight_scale * q,
        "b": np.zeros(hidden_size),
    }


def rnn_step_forward(
    x: np.ndarray, h_prev: np.ndarray, w_xh: np.ndarray, w_hh: np.ndarray, b: np.ndarray
) -> np.ndarray:
    r"""One step :math:`H_t = \tanh(X_t W_{xh}^\top + H_{t-1} W_{hh}^\top + b)`.

    Shapes: ``x`` ``(B, D)``, ``h_prev`` ``(B, H)``, ``w_xh`` ``(H, D)``, ``w_hh``
    ``(H, H)``, ``b`` ``(H,)``; returns ``(B, H)``.
    """
    return np.tanh(x @ w_xh.T + h_prev @ w_hh.T + b)  # (B, H)


def rnn_step_backward(
    dh: np.ndarray,
    x: np.ndarray,
    h_prev: np.ndarray,
    h: np.ndarray,
    w_xh: np.ndarray,
    w_hh: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of one step, given :math:`G = \partial L / \partial H_t` ``dh`` ``(B, H)``.

    Returns ``(dx (B, D), dh_prev (B, H), dW_xh (H, D), dW_hh (H, H), db (H,))`` from
    :math:`\delta = G \odot (1 - H_t^2)` (since :math:`\tanh' = 1 - \tanh^2`).
    """
    delta = dh * (1.0 - h**2)  # (B, H)
    return delta @ w_xh, delta @ w_hh, delta.T @ x, delta.T @ h_prev, delta.sum(axis=0)


def rnn_forward(x: np.ndarray, h0: np.ndarray, params: RNNParams) -> np.ndarray:
    """Run the RNN over ``x`` ``(T, B, D)`` from ``h0`` ``(B, H)``; returns ``h_1..h_T`` ``(T, B, H)``."""
    hidden, features = _check_params(params)
    _check_inputs(x, h0, hidden, features)
    hs = np.empty((x.shape[0], x.shape[1], hidden), dtype=np.result_type(x, h0, params["W_hh"]))
    h = h0
    for t in range(x.shape[0]):
        h = rnn_step_forward(x[t], h, params["W_xh"], params["W_hh"], params["b"])
        hs[t] = h
    return hs


def rnn_backward(
    dhs: np.ndarray, x: np.ndarray, h0: np.ndarray, hs: np.ndarray, params: RNNParams
) -> dict[str, np.ndarray]:
    r"""Backpropagation through time.

    Args:
        dhs: ``(T, B, H)``, the *direct* gradient of the loss with respect to each
            :math:`H_t` (zeros where the loss does not read :math:`H_t`).
        x, h0, hs: the forward pass's input ``(T, B, D)``, initial state ``(B, H)`` and
            output of :func:`rnn_forward` ``(T, B, H)``.
        params: the parameters used in the forward pass.

    Returns:
        ``{"x": (T, B, D), "h0": (B, H), "W_xh": (H, D), "W_hh": (H, H), "b": (H,),
        "h": (T, B, H)}``; ``"h"`` holds the total gradients :math:`G_t` through time.
    """
    hidden, features = _check_params(params)
    _check_inputs(x, h0, hidden, features)
    if hs.shape != (*x.shape[:2], hidden) or dhs.shape != hs.shape:
        raise ValueError(
            f"hs and dhs must have shape (T, B, H) = {(*x.shape[:2], hidden)}, "
            f"got {hs.shape} and {dhs.shape}"
        )
    w_xh, w_hh = params["W_xh"], params["W_hh"]
    grads = {
        "x": np.zeros_like(x, dtype=np.float64),
        "W_xh": np.zeros_like(w_xh, dtype=np.float64),
        "W_hh": np.zeros_like(w_hh, dtype=np.float64),
        "b": np.zeros(hidden),
        "h": np.zeros_like(hs, dtype=np.float64),
    }
    carry = np.zeros_like(h0, dtype=np.float64)  # gradient reaching H_t from H_{t+1}
    for t in reversed(range(x.shape[0])):
        total = dhs[t] + carry  # G_t
        grads["h"][t] = total
        h_prev = hs[t - 1] if t > 0 else h0
        dx, carry, dw_xh, dw_hh, db = rnn_step_backward(total, x[t], h_prev, hs[t], w_xh, w_hh)
        grads["x"][t] = dx
        grads["W_xh"] += dw_xh
        grads["W_hh"] += dw_hh
        grads["b"] += db
    grads["h0"] = carry
    return grads


def clip_grad_norm(
    grads: dict[str, np.ndarray], max_norm: float, *, error_if_nonfinite: bool = False
) -> tuple[dict[str, np.ndarray], float]:
    r"""Rescale all gradients together when their global norm exceeds ``max_norm``.

    .. math::

        \lVert g \rVert = \sqrt{\textstyle\sum_k \lVert g_k \rVert_2^2}, \qquad
        g_k \leftarrow g_k \cdot \min\!\Big(1, \frac{\text{max\_norm}}{\lVert g \rVert + 10^{-6}}\Big)

    exactly as ``torch.nn.utils.clip_grad_norm_``: the direction of the whole gradient is
    kept, only its length is capped. Returns ``(clipped copies, norm before clipping)``.

    A non-finite norm is handled as PyTorch does (checked against torch 2.13): the factor
    is computed all the same and multiplies every gradient. A ``nan`` norm gives a ``nan``
    factor (the minimum propagates ``nan``), so *every* clipped gradient is ``nan``; an
    ``inf`` norm (an ``inf`` entry, or squares overflowing) gives the factor 0, so finite
    entries become 0 and infinite ones ``nan``. The returned norm says which happened.
    With ``error_if_nonfinite=True`` a non-finite norm raises ``ValueError`` instead
    (torch raises ``RuntimeError``).
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    if not grads:
        raise ValueError("clip_grad_norm needs at least one gradient")
    with np.errstate(over="ignore", invalid="ignore"):  # inf and nan are results here
        # Each array's norm in its own dtype, then the norm of the norms, as torch does (so
        # float32 squares overflow to inf where torch's do).
        norms = np.array([np.sqrt(np.sum(np.square(g))) for g in grads.values()])
        total = float(np.sqrt(np.sum(np.square(norms))))
        if error_if_nonfinite and not np.isfinite(total):
            raise ValueError(
                f"the total gradient norm is {total}, so it cannot be clipped; pass "
                "error_if_nonfinite=False to scale the gradients by the non-finite norm anyway"
            )
        factor = float(np.minimum(1.0, max_norm / (total + 1e-6)))  # nan stays nan, as torch
        return {name: g * factor for name, g in grads.items()}, total


class GradientFlow(NamedTuple):
    r"""Norms through time, averaged over the batch's examples :math:`b`.

    ``hidden[t]`` is the mean of :math:`\lVert h_t^{(b)} \rVert` and ``gradient[t]`` the
    mean of :math:`\lVert \partial (u^\top h_T^{(b)}) / \partial h_t^{(b)} \rVert`, the
    per-example gradient (so ``gradient[-1]`` is :math:`\lVert u \rVert = 1`).
    """

    hidden: np.ndarray  # (T,)
    gradient: np.ndarray  # (T,)


def gradient_flow(
    length: int,
    weight_scale: float,
    *,
    hidden_size: int = 32,
    input_size: int = 4,
    input_scale: float = 0.1,
    batch: int = 16,
    seed: int = 0,
) -> GradientFlow:
    r"""Measure how :math:`\lVert \partial L / \partial h_t \rVert` depends on the distance to the end.

    An RNN from :func:`init_rnn_params` (singular values of :math:`W_{hh}` all equal to
    ``weight_scale``) reads inputs :math:`x_t \sim \mathcal{N}(0, \text{input\_scale}^2)`
    from :math:`h_0 = 0`; the loss reads only the last state, :math:`L = \frac{1}{B}
    \sum_b u^\top h_T^{(b)}` with a fixed random unit vector :math:`u`. Backpropagation
    through time then gives the gradient at every earlier step; multiplying by :math:`B`
    undoes the batch mean, so the result is per example (see :class:`GradientFlow`).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    params = init_rnn_params(input_size, hidden_size, weight_scale=weight_scale, seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = input_scale * rng.standard_normal((length, batch, input_size))  # (T, B, D)
    h0 = np.zeros((batch, hidden_size))
    hs = rnn_forward(x, h0, params)  # (T, B, H)
    u = rng.standard_normal(hidden_size)
    dhs = np.zeros_like(hs)
    dhs[-1] = u / np.linalg.norm(u) / batch  # dL/dh_T
    grads = rnn_backward(dhs, x, h0, hs, params)
    return GradientFlow(
        hidden=np.linalg.norm(hs, axis=2).mean(axis=1),
        gradient=np.linalg.norm(grads["h"], axis=2).mean(axis=1) * batch,
    )
