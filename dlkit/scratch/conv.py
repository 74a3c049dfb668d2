r"""2-D convolution from scratch in NumPy: forward and backward, two ways.

PyTorch's ``conv2d`` (like every framework's) computes a *cross-correlation*. For an input
:math:`x` of shape ``(N, C, H, W)``, weights :math:`w` of shape ``(O, C, KH, KW)``, bias
:math:`b` of shape ``(O,)``, stride :math:`s`, zero padding :math:`p` and dilation :math:`d`
(per axis), with :math:`\tilde x` the padded input:

.. math::

    y_{n,o,i,j} = b_o + \sum_{c=0}^{C-1}\sum_{k=0}^{KH-1}\sum_{l=0}^{KW-1}
        w_{o,c,k,l}\; \tilde x_{n,\,c,\; s_h i + d_h k,\; s_w j + d_w l}

and the output size along an axis of input size :math:`H` is

.. math:: H_\text{out} = \left\lfloor \frac{H + 2p - d\,(K - 1) - 1}{s} \right\rfloor + 1 .

Gradients, with :math:`g = \partial L / \partial y`:

.. math::

    \frac{\partial L}{\partial b_o} = \sum_{n,i,j} g_{n,o,i,j}, \qquad
    \frac{\partial L}{\partial w_{o,c,k,l}} = \sum_{n,i,j} g_{n,o,i,j}\,
        \tilde x_{n,c,\,s_h i + d_h k,\, s_w j + d_w l}, \qquad
    \frac{\partial L}{\partial \tilde x_{n,c,\,s_h i + d_h k,\, s_w j + d_w l}}
        \mathrel{+}= \sum_o g_{n,o,i,j}\, w_{o,c,k,l}

(the input gradient scatters back into every window that read the pixel; cropping the
padding gives :math:`\partial L/\partial x`).

Two implementations of the same sums:

- :func:`conv2d_forward_loop` / :func:`conv2d_backward_loop`: the *sliding dot product*, a
  Python loop over output positions, short enough to read (and slow);
- :func:`conv2d_forward` / :func:`conv2d_backward`: **im2col**: every receptive field becomes
  one row of a matrix ``cols`` of shape ``(N·OH·OW, C·KH·KW)``, so the convolution is one matrix
  product ``cols @ w.reshape(O, -1).T``, the weight gradient is ``g.T @ cols`` and the input
  gradient is ``g @ w`` scattered back by :func:`col2im` (a loop over the KH·KW kernel
  offsets, each a strided slice).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "col2im",
    "conv2d_backward",
    "conv2d_backward_loop",
    "conv2d_forward",
    "conv2d_forward_loop",
    "conv2d_output_shape",
    "conv_output_size",
    "im2col",
]

IntPair = int | tuple[int, int]


def conv_output_size(size: int, kernel: int, *, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:  # fmt: skip
    r"""Output length along one axis: :math:`\lfloor (n + 2p - d(k-1) - 1)/s \rfloor + 1`.

    The dilated kernel spans :math:`d(k-1)+1` pixels; it fits in the padded input
    :math:`n + 2p` at positions :math:`0, s, 2s, \dots` while it does not run past the end.

    Raises:
        ValueError: if the dilated kernel is larger than the padded input, or an argument
            is out of range.
    """
    if stride < 1 or dilation < 1 or padding < 0 or kernel < 1 or size < 1:
        raise ValueError(
            f"expected size >= 1, kernel >= 1, stride >= 1, padding >= 0, dilation >= 1; got "
            f"size={size}, kernel={kernel}, stride={stride}, padding={padding}, dilation={dilation}"
        )
    span = dilation * (kernel - 1) + 1  # pixels the dilated kernel covers
    if span > size + 2 * padding:
        raise ValueError(
            f"the kernel (size {kernel}, dilation {dilation}: spans {span} pixels) is larger than "
            f"the padded input (size {size} + 2·{padding} = {size + 2 * padding}); expected an "
            f"input of size >= {span - 2 * padding} along this axis"
        )
    return (size + 2 * padding - span) // stride + 1


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def conv2d_output_shape(input_shape: tuple[int, ...], weight_shape: tuple[int, ...], *,
                        stride: IntPair = 1, padding: IntPair = 0,
                        dilation: IntPair = 1) -> tuple[int, int, int, int]:  # fmt: skip
    """``(N, O, OH, OW)`` for an input ``(N, C, H, W)`` and weights ``(O, C, KH, KW)``.

    Raises:
        ValueError: naming the expected shape when the input is not 4-D, the channel counts
            differ, or the kernel does not fit the padded input.
    """
    if len(weight_shape) != 4:
        raise ValueError(
            f"expected weight of shape (O, C, KH, KW), got shape {tuple(weight_shape)}"
        )
    out_ch, in_ch, kh, kw = weight_shape
    if len(input_shape) != 4:
        raise ValueError(
            f"expected input of shape (N, C, H, W) = (N, {in_ch}, H, W), got shape "
            f"{tuple(input_shape)}; add a batch axis with x[None] for a single image"
        )
    n, c, h, w = input_shape
    if c != in_ch:
        raise ValueError(
            f"the input has {c} channel(s) but the weight of shape {tuple(weight_shape)} expects "
            f"{in_ch}: expected input of shape (N, {in_ch}, H, W), got {tuple(input_shape)}"
        )
    (sh, sw), (ph, pw), (dh, dw) = (_pair(stride, "stride"), _pair(padding, "padding"),
                                    _pair(dilation, "dilation"))  # fmt: skip
    oh = conv_output_size(h, kh, stride=sh, padding=ph, dilation=dh)
    ow = conv_output_size(w, kw, stride=sw, padding=pw, dilation=dw)
    return n, out_ch, oh, ow


def _check_bias(bias: np.ndarray | None, out_ch: int) -> None:
    if bias is not None and np.shape(bias) != (out_ch,):
        raise ValueError(f"expected bias of shape ({out_ch},), got shape {np.shape(bias)}")


def _check_grad(grad_out: np.ndarray, expected: tuple[int, ...]) -> None:
    if grad_out.shape != expected:
        raise ValueError(
            f"expected grad_out of the output's shape {expected}, got shape {grad_out.shape}"
        )


def _pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Zero-pad the two spatial axes of ``(N, C, H, W)``: ``(N, C, H + 2ph, W + 2pw)``."""
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _crop(xp: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Undo :func:`_pad`."""
    return xp[:, :, ph : xp.shape[2] - ph, pw : xp.shape[3] - pw]


def _float_dtype(*arrays: np.ndarray | None) -> np.dtype:
    return np.result_type(*(a for a in arrays if a is not None), np.float32)


# --------------------------------------------------------------------------- the loop
def conv2d_forward_loop(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *,
                        stride: IntPair = 1, padding: IntPair = 0,
                        dilation: IntPair = 1) -> np.ndarray:  # fmt: skip
    """Convolution as a sliding dot product: ``(N, C, H, W)`` → ``(N, O, OH, OW)``.

    For each output position, the receptive field (a ``(C, KH, KW)`` block of the padded
    input, every ``dilation``-th pixel) is dotted with each of the ``O`` filters.
    """
    x, weight = np.asarray(x), np.asarray(weight)
    n, out_ch, oh, ow = conv2d_output_shape(x.shape, weight.shape, stride=stride,
                                            padding=padding, dilation=dilation)  # fmt: skip
    _check_bias(bias, out_ch)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "s"), _pair(padding, "p"), _pair(dilation, "d")
    _, _, kh, kw = weight.shape
    xp = _pad(x, ph, pw)
    y = np.zeros((n, out_ch, oh, ow), dtype=_float_dtype(x, weight, bias))
    for i in range(oh):
        for j in range(ow):
            # The receptive field of output (i, j): (N, C, KH, KW).
            field = xp[:, :, i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                             j * sw : j * sw + dw * (kw - 1) + 1 : dw]  # fmt: skip
            y[:, :, i, j] = np.tensordot(field, weight, axes=([1, 2, 3], [1, 2, 3]))  # (N, O)
    if bias is not None:
        y += np.asarray(bias)[:, None, None]
    return y


def conv2d_backward_loop(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray, *,
                         stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Gradients ``(dL/dx, dL/dw, dL/db)`` of :func:`conv2d_forward_loop`, by the same loop.

    Shapes: ``grad_out`` ``(N, O, OH, OW)`` → ``(N, C, H, W)``, ``(O, C, KH, KW)``, ``(O,)``.
    """
    x, weight, grad_out = np.asarray(x), np.asarray(weight), np.asarray(grad_out)
    shape = conv2d_output_shape(x.shape, weight.shape, stride=stride, padding=padding,
                                dilation=dilation)  # fmt: skip
    _check_grad(grad_out, shape)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride, "s"), _pair(padding, "p"), _pair(dilation, "d")
    _, _, kh, kw = weight.shape
    dtype = _float_dtype(x, weight, grad_out)
    xp = _pad(x, ph, pw)
    dxp = np.zeros(xp.shape, dtype=dtype)
    dw_ = np.zeros(weight.shape, dtype=dtype)
    for i in range(shape[2]):
        for j in range(shape[3]):
            rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
            cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
            g = grad_out[:, :, i, j]  # (N, O)
            dw_ += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))  # (O, C, KH, KW)
            dxp[:, :, rows, cols] += np.tensordot(g, weight, axes=([1], [0]))  # (N, C, KH, KW)
    db = grad_out.sum(axis=(0, 2, 3)).astype(dtype)
    return _crop(dxp, ph, pw), dw_, db


# --------------------------------------------------------------------------- im2col
def _windows(xp: np.ndarray, kh: int, kw: int, stride: tuple[int, int],
             dilation: tuple[int, int], oh: int, ow: int) -> np.ndarray:  # fmt: skip
    """A strided *view* of every receptive field: ``(N, C, OH, OW, KH, KW)``, nothing copied."""
    (sh, sw), (dh, dw) = stride, dilation
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    view = np.lib.stride_tricks.sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
    return view[:, :, : sh * (oh - 1) + 1 : sh, : sw * (ow - 1) + 1 : sw, ::dh, ::dw]


def im2col(x: np.ndarray, kernel_size: IntPair, *, stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1) -> np.ndarray:  # fmt: skip
    """Every receptive field as a row: ``(N, C, H, W)`` → ``(N·OH·OW, C·KH·KW)``.

    Row ``(n·OH + i)·OW + j`` holds the field of output ``(i, j)`` of image ``n``, flattened
    in ``(c, k, l)`` order, the order of ``weight.reshape(O, -1)``'s columns.
    """
    x = np.asarray(x)
    kh, kw = _pair(kernel_size, "kernel_size")
    if x.ndim != 4:
        raise ValueError(f"expected input of shape (N, C, H, W), got shape {x.shape}")
    n, _, oh, ow = conv2d_output_shape(x.shape, (1, x.shape[1], kh, kw), stride=stride,
                                       padding=padding, dilation=dilation)  # fmt: skip
    (ph, pw) = _pair(padding, "padding")
    fields = _windows(_pad(x, ph, pw), kh, kw, _pair(stride, "stride"),
                      _pair(dilation, "dilation"), oh, ow)  # (N, C, OH, OW, KH, KW)  # fmt: skip
    return fields.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)  # the one copy


def col2im(cols: np.ndarray, input_shape: tuple[int, int, int, int], kernel_size: IntPair, *,
           stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1) -> np.ndarray:  # fmt: skip
    """The adjoint of :func:`im2col`: add each row back onto the pixels it was read from.

    ``(N·OH·OW, C·KH·KW)`` → ``(N, C, H, W)``. Pixels shared by overlapping fields receive
    the *sum* of their entries, which is exactly the input gradient's scatter-add. One
    strided slice per kernel offset ``(k, l)``: KH·KW vectorised additions, no ``np.add.at``.
    """
    n, c, h, w = input_shape
    kh, kw = _pair(kernel_size, "kernel_size")
    (sh, sw), (ph, pw), (dh, dw) = (_pair(stride, "stride"), _pair(padding, "padding"),
                                    _pair(dilation, "dilation"))  # fmt: skip
    _, _, oh, ow = conv2d_output_shape(input_shape, (1, c, kh, kw), stride=stride,
                                       padding=padding, dilation=dilation)  # fmt: skip
    if cols.shape != (n * oh * ow, c * kh * kw):
        raise ValueError(f"expected cols of shape {(n * oh * ow, c * kh * kw)}, got {cols.shape}")
    fields = cols.reshape(n, oh, ow, c, kh, kw)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for k in range(kh):
        for l_ in range(kw):
            # Offset (k, l) of output (i, j) reads padded pixel (s_h i + d_h k, s_w j + d_w l).
            xp[:, :, k * dh : k * dh + sh * (oh - 1) + 1 : sh,
                     l_ * dw : l_ * dw + sw * (ow - 1) + 1 : sw] += (
                fields[:, :, :, :, k, l_].transpose(0, 3, 1, 2)  # (N, C, OH, OW)
            )  # fmt: skip
    return _crop(xp, ph, pw)


def conv2d_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *,
                   stride: IntPair = 1, padding: IntPair = 0,
                   dilation: IntPair = 1) -> np.ndarray:  # fmt: skip
    """Convolution as one matrix product (im2col): ``(N, C, H, W)`` → ``(N, O, OH, OW)``."""
    x, weight = np.asarray(x), np.asarray(weight)
    n, out_ch, oh, ow = conv2d_output_shape(x.shape, weight.shape, stride=stride,
                                            padding=padding, dilation=dilation)  # fmt: skip
    _check_bias(bias, out_ch)
    dtype = _float_dtype(x, weight, bias)
    cols = im2col(x.astype(dtype, copy=False), weight.shape[2:], stride=stride,
                  padding=padding, dilation=dilation)  # (N·OH·OW, C·KH·KW)  # fmt: skip
    y = cols @ weight.reshape(out_ch, -1).T.astype(dtype, copy=False)  # (N·OH·OW, O)
    if bias is not None:
        y += np.asarray(bias, dtype=dtype)
    return y.reshape(n, oh, ow, out_ch).transpose(0, 3, 1, 2)  # (N, O, OH, OW), a view


def conv2d_backward(grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray, *,
                    stride: IntPair = 1, padding: IntPair = 0, dilation: IntPair = 1,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Gradients ``(dL/dx, dL/dw, dL/db)`` of :func:`conv2d_forward` by im2col.

    With ``G = grad_out`` as a ``(N·OH·OW, O)`` matrix and ``W = weight.reshape(O, -1)``:
    ``dL/dW = Gᵀ · cols``, ``dL/dcols = G · W`` (then :func:`col2im`), ``dL/db = Σ G``.
    """
    x, weight, grad_out = np.asarray(x), np.asarray(weight), np.asarray(grad_out)
    shape = conv2d_output_shape(x.shape, weight.shape, stride=stride, padding=padding,
                                dilation=dilation)  # fmt: skip
    _check_grad(grad_out, shape)
    out_ch, _, kh, kw = weight.shape
    dtype = _float_dtype(x, weight, grad_out)
    g = grad_out.astype(dtype, copy=False).transpose(0, 2, 3, 1).reshape(-1, out_ch)  # (N·OH·OW, O)
    cols = im2col(x.astype(dtype, copy=False), (kh, kw), stride=stride, padding=padding,
                  dilation=dilation)  # (N·OH·OW, C·KH·KW)  # fmt: skip
    w2 = weight.reshape(out_ch, -1).astype(dtype, copy=False)  # (O, C·KH·KW)
    dw_ = (g.T @ cols).reshape(weight.shape)  # (O, C, KH, KW)
    dx = col2im(g @ w2, x.shape, (kh, kw), stride=stride, padding=padding, dilation=dilation)
    return dx, dw_, g.sum(axis=0)
