r"""2-D max and average pooling from scratch in NumPy, forward and backward.

Pooling slides a ``(KH, KW)`` window with stride :math:`s` over each channel on its own
(no weights) and keeps one number per window, so the output size follows the convolution
formula :math:`\lfloor (H + 2p - K)/s \rfloor + 1` (see :func:`dlkit.scratch.conv_output_size`).

- **Max pooling** :math:`y_{n,c,i,j} = \max_{k,l} \tilde x_{n,c,\,s_h i + k,\, s_w j + l}`, with
  padding by :math:`-\infty` (a padded pixel never wins). Its gradient routes each
  :math:`g_{n,c,i,j}` to the one input that was the maximum (the first in row-major order on
  ties, as PyTorch does); an input that wins several overlapping windows receives the sum.
- **Average pooling** :math:`y_{n,c,i,j} = \frac{1}{KH\,KW}\sum_{k,l} \tilde x_{n,c,\,s_h i + k,\, s_w j + l}`,
  padding by zeros that count in the divisor (PyTorch's default ``count_include_pad=True``).
  Its gradient spreads :math:`g_{n,c,i,j} / (KH\,KW)` evenly over the window.

The stride defaults to the kernel size (non-overlapping windows), as in PyTorch.
"""

from __future__ import annotations

import numpy as np

from dlkit.scratch.conv import IntPair, _pair, conv_output_size

__all__ = ["avg_pool2d", "avg_pool2d_backward", "max_pool2d", "max_pool2d_backward"]


def _geometry(shape: tuple[int, ...], kernel_size: IntPair, stride: IntPair | None,
              padding: IntPair) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int],
                                         tuple[int, int]]:  # fmt: skip
    """Validate and return ``(kernel, stride, padding, output size)`` as pairs."""
    if len(shape) != 4:
        raise ValueError(f"expected input of shape (N, C, H, W), got shape {tuple(shape)}")
    kernel = _pair(kernel_size, "kernel_size")
    strides = kernel if stride is None else _pair(stride, "stride")
    pads = _pair(padding, "padding")
    for k, p in zip(kernel, pads, strict=True):
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half the kernel size, got padding {pads} for kernel "
                f"{kernel} (a window of padding alone has no input to pool)"
            )
    out = tuple(
        conv_output_size(n, k, stride=s, padding=p)
        for n, k, s, p in zip(shape[2:], kernel, strides, pads, strict=True)
    )
    return kernel, strides, pads, out  # type: ignore[return-value]


def _windows(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
             out: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """View of every window of the padded input: ``(N, C, OH, OW, KH, KW)``, no copy."""
    view = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))
    return view[:, :, : stride[0] * (out[0] - 1) + 1 : stride[0],
                      : stride[1] * (out[1] - 1) + 1 : stride[1]]  # fmt: skip


def _pad(x: np.ndarray, pads: tuple[int, int], value: float) -> np.ndarray:
    ph, pw = pads
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _scatter(per_offset: np.ndarray, shape: tuple[int, ...], kernel: tuple[int, int],
             stride: tuple[int, int], pads: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """Add ``per_offset`` ``(N, C, OH, OW, KH, KW)`` back onto the input ``(N, C, H, W)``."""
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pads
    oh, ow = per_offset.shape[2:4]
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=per_offset.dtype)
    for k in range(kh):
        for l_ in range(kw):
            dxp[:, :, k : k + sh * (oh - 1) + 1 : sh, l_ : l_ + sw * (ow - 1) + 1 : sw] += (
                per_offset[..., k, l_]
            )
    return dxp[:, :, ph : ph + h, pw : pw + w]


def _argmax(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            pads: tuple[int, int], out: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Window maxima ``(N, C, OH, OW)`` and the flat index ``k·KW + l`` of each one."""
    x = x.astype(np.result_type(x, np.float32), copy=False)  # -inf padding needs floats
    fields = _windows(_pad(x, pads, -np.inf), kernel, stride, out)  # (N, C, OH, OW, KH, KW)
    flat = fields.reshape(*fields.shape[:4], -1)  # (N, C, OH, OW, KH·KW), one copy
    index = flat.argmax(axis=-1)  # first maximum on ties
    return np.take_along_axis(flat, index[..., None], axis=-1)[..., 0], index


def max_pool2d(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0) -> np.ndarray:  # fmt: skip
    """Max over each window: ``(N, C, H, W)`` → ``(N, C, OH, OW)``."""
    x = np.asarray(x)
    kernel, strides, pads, out = _geometry(x.shape, kernel_size, stride, padding)
    return _argmax(x, kernel, strides, pads, out)[0]


def max_pool2d_backward(grad_out: np.ndarray, x: np.ndarray, kernel_size: IntPair,
                        stride: IntPair | None = None, padding: IntPair = 0) -> np.ndarray:  # fmt: skip
    """``dL/dx`` ``(N, C, H, W)`` of :func:`max_pool2d`: each ``grad_out`` entry goes to its arg-max."""
    x, grad_out = np.asarray(x), np.asarray(grad_out)
    kernel, strides, pads, out = _geometry(x.shape, kernel_size, stride, padding)
    if grad_out.shape != (*x.shape[:2], *out):
        raise ValueError(f"expected grad_out of shape {(*x.shape[:2], *out)}, got {grad_out.shape}")
    _, index = _argmax(x, kernel, strides, pads, out)
    # One-hot over the window's KH·KW positions, times the incoming gradient.
    onehot = index[..., None] == np.arange(kernel[0] * kernel[1])  # (N, C, OH, OW, KH·KW)
    dtype = np.result_type(x, grad_out, np.float32)
    per_offset = (onehot * grad_out[..., None]).astype(dtype).reshape(*index.shape, *kernel)
    return _scatter(per_offset, x.shape, kernel, strides, pads)


def avg_pool2d(x: np.ndarray, kernel_size: IntPair, stride: IntPair | None = None,
               padding: IntPair = 0) -> np.ndarray:  # fmt: skip
    """Mean over each window (zero padding counted): ``(N, C, H, W)`` → ``(N, C, OH, OW)``."""
    x = np.asarray(x)
    kernel, strides, pads, out = _geometry(x.shape, kernel_size, stride, padding)
    fields = _windows(_pad(x, pads, 0.0), kernel, strides, out)  # (N, C, OH, OW, KH, KW)
    return fields.mean(axis=(-2, -1), dtype=np.result_type(x, np.float32))


def avg_pool2d_backward(grad_out: np.ndarray, x: np.ndarray, kernel_size: IntPair,
                        stride: IntPair | None = None, padding: IntPair = 0) -> np.ndarray:  # fmt: skip
    """``dL/dx`` ``(N, C, H, W)`` of :func:`avg_pool2d`: ``g / (KH·KW)`` to every window pixel."""
    x, grad_out = np.asarray(x), np.asarray(grad_out)
    kernel, strides, pads, out = _geometry(x.shape, kernel_size, stride, padding)
    if grad_out.shape != (*x.shape[:2], *out):
        raise ValueError(f"expected grad_out of shape {(*x.shape[:2], *out)}, got {grad_out.shape}")
    dtype = np.result_type(x, grad_out, np.float32)
    share = (grad_out / (kernel[0] * kernel[1])).astype(dtype)  # (N, C, OH, OW)
    per_offset = np.broadcast_to(share[..., None, None], (*share.shape, *kernel))
    return _scatter(per_offset, x.shape, kernel, strides, pads)
