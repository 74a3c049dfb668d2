r"""Batch, layer and RMS normalization from primitive tensor operations.

Batch and layer norm standardize activations and then apply a learned affine map, elementwise

.. math:: \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}}, \qquad y = \gamma\,\hat x + \beta,

and differ in *which* elements share :math:`\mu, \sigma^2`:

* **Batch norm** (:class:`BatchNorm1d`) averages each feature (channel) over the batch
  (and the length axis of a sequence). In training it uses the batch's statistics and
  updates running estimates; in evaluation it uses those running estimates, so an
  example's output no longer depends on the rest of its batch.
* **Layer norm** (:class:`LayerNorm`) averages each example over its last feature axes.
  It never looks at other examples, so it behaves the same in training and evaluation
  and works for a batch of one.
* **RMS norm** (:class:`RMSNorm`) is layer norm without the centring: it divides by the
  root mean square :math:`\sqrt{\frac1n\sum_k x_k^2 + \varepsilon}` and scales by
  :math:`\gamma` (no :math:`\beta`). One statistic fewer; many recent Transformers use it.

:math:`\sigma^2` is the *biased* variance (divide by the count :math:`n`). Gradients come
from autograd through these operations; the tests compare forward, backward and the
running statistics with ``torch.nn.BatchNorm1d``, ``torch.nn.LayerNorm`` and
``torch.nn.RMSNorm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BatchNorm1d", "LayerNorm", "RMSNorm"]


def _normalized_shape(normalized_shape: int | Sequence[int]) -> tuple[int, ...]:
    """``normalized_shape`` as a tuple of positive sizes (LayerNorm's and RMSNorm's argument)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    sizes = tuple(int(s) for s in shape)
    if not sizes or min(sizes) < 1:
        raise ValueError(f"normalized_shape must be positive sizes, got {normalized_shape}")
    return sizes


def _check_trailing_shape(x: torch.Tensor, shape: tuple[int, ...], layer: str) -> int:
    """Raise unless ``x`` ends in ``shape``; returns the number of trailing axes."""
    k = len(shape)
    if x.dim() < k or tuple(x.shape[-k:]) != shape:
        raise ValueError(
            f"{layer}{shape} expects input of shape "
            f"(..., {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    return k


class BatchNorm1d(nn.Module):
    r"""Batch normalization over ``(N, C)`` or ``(N, C, L)`` inputs, like ``torch.nn.BatchNorm1d``.

    Training mode, per channel :math:`c`, over the :math:`n = N` (or :math:`N L`) values
    :math:`x_{\cdot c \cdot}` of the batch:

    .. math::

        \mu_c = \frac1n \sum x, \qquad \sigma_c^2 = \frac1n \sum (x - \mu_c)^2, \qquad
        y = \gamma_c \frac{x - \mu_c}{\sqrt{\sigma_c^2 + \varepsilon}} + \beta_c,

    and the running estimates move towards the batch's (with ``momentum`` :math:`m`):

    .. math::

        \hat\mu \leftarrow (1 - m)\,\hat\mu + m\,\mu_c, \qquad
        \hat\sigma^2 \leftarrow (1 - m)\,\hat\sigma^2 + m\,\frac{n}{n - 1}\,\sigma_c^2 .

    The running variance uses the *unbiased* estimate :math:`\frac{n}{n-1}\sigma_c^2`,
    while the normalization itself uses the biased :math:`\sigma_c^2`: PyTorch's
    convention. ``momentum=None`` gives the cumulative average :math:`m = 1/t` at the
    :math:`t`-th batch. Evaluation mode normalizes with :math:`\hat\mu, \hat\sigma^2`
    (when ``track_running_stats``; otherwise with the batch's statistics, as in training).

    Args:
        num_features: :math:`C`.
        eps: :math:`\varepsilon`, added to the variance.
        momentum: :math:`m` in :math:`[0, 1]`, or ``None`` for the cumulative average.
        affine: learn :math:`\gamma` (``weight``, init 1) and :math:`\beta` (``bias``, init 0).
        track_running_stats: keep ``running_mean``, ``running_var`` (init 0 and 1) and
            ``num_batches_tracked`` buffers.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1] or be None, got {momentum}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))  # γ, (C,)
            self.bias = nn.Parameter(torch.zeros(num_features))  # β, (C,)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm1d({self.num_features}) expects input of shape (N, "
                f"{self.num_features}) or (N, {self.num_features}, L), got {tuple(x.shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(N, C)`` or ``(N, C, L)``; returns the same shape."""
        self._check_input(x)
        dims = (0,) if x.dim() == 2 else (0, 2)  # every axis except the channel axis 1
        shape = (1, -1) if x.dim() == 2 else (1, -1, 1)  # (1, C) or (1, C, 1) to broadcast
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            n = x.numel() // self.num_features  # values per channel
            if self.training and n < 2:
                raise ValueError(
                    f"BatchNorm1d needs more than 1 value per channel in training, got input "
                    f"of shape {tuple(x.shape)}; use a larger batch or LayerNorm"
                )
            mean = x.mean(dim=dims)  # (C,)
            var = ((x - mean.reshape(shape)) ** 2).mean(dim=dims)  # (C,), biased: ÷ n
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.detach(), var.detach(), n)
        else:
            mean, var = self.running_mean, self.running_var  # (C,) each
        x_hat = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
        if self.affine:
            return x_hat * self.weight.reshape(shape) + self.bias.reshape(shape)
        return x_hat

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        self.num_batches_tracked += 1
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * n / (n - 1)  # n/(n-1) σ²: Bessel's correction
        self.running_mean.mul_(1.0 - m).add_(m * mean)
        self.running_var.mul_(1.0 - m).add_(m * unbiased)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class LayerNorm(nn.Module):
    r"""Layer normalization over the last axes, like ``torch.nn.LayerNorm``.

    For ``normalized_shape`` :math:`S` (the trailing axes of the input), each example's
    :math:`n = \prod S` values are standardized with their own statistics:

    .. math::

        \mu = \frac1n \sum_{k} x_k, \qquad \sigma^2 = \frac1n \sum_k (x_k - \mu)^2, \qquad
        y_k = \gamma_k \frac{x_k - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta_k,

    with :math:`\gamma, \beta` of shape :math:`S` (one per element, not per example).
    Identical in training and evaluation mode.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape)
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))  # γ, shape S
        else:
            self.register_parameter("weight", None)
        if elementwise_affine and bias:
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape))  # β, shape S
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., *normalized_shape)``; returns the same shape."""
        k = _check_trailing_shape(x, self.normalized_shape, "LayerNorm")
        dims = tuple(range(-k, 0))  # the trailing axes
        mean = x.mean(dim=dims, keepdim=True)  # (..., 1, ..., 1)
        var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)  # biased: ÷ n
        y = (x - mean) / torch.sqrt(var + self.eps)  # (..., *S)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class RMSNorm(nn.Module):
    r"""Root-mean-square normalization over the last axes, like ``torch.nn.RMSNorm``.

    For ``normalized_shape`` :math:`S` and :math:`n = \prod S`, each example is divided by
    its root mean square (no mean is subtracted, no bias is added):

    .. math::

        \mathrm{RMS}(x) = \sqrt{\frac1n \sum_k x_k^2 + \varepsilon}, \qquad
        y_k = \gamma_k \frac{x_k}{\mathrm{RMS}(x)} .

    ``eps=None`` (PyTorch's default) means :math:`\varepsilon` = ``torch.finfo(x.dtype).eps``
    of the input's dtype (``2.2e-16`` in float64, ``1.2e-7`` in float32), chosen at call time.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
    ) -> None:
        super().__init__()
        self.normalized_shape = _normalized_shape(normalized_shape)
        if eps is not None and not eps > 0:
            raise ValueError(f"eps must be > 0 or None, got {eps}")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))  # γ, shape S
        else:
            self.register_parameter("weight", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., *normalized_shape)``, floating point; returns the same shape."""
        k = _check_trailing_shape(x, self.normalized_shape, "RMSNorm")
        if not x.is_floating_point():
            raise TypeError(f"RMSNorm expects a floating-point input, got {x.dtype}")
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        dims = tuple(range(-k, 0))  # the trailing axes
        mean_square = x.square().mean(dim=dims, keepdim=True)  # (..., 1, ..., 1)
        y = x * torch.rsqrt(mean_square + eps)  # (..., *S)
        if self.weight is not None:
            y = y * self.weight
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )
