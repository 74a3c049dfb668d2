"""dlkit.scratch.conv against torch.nn.functional.conv2d (float64), forward and backward.

Both implementations (the sliding-dot-product loop and im2col) are compared with PyTorch's
values and autograd gradients across random shapes, strides, paddings, dilations and channel
counts, and with central finite differences; bad shapes must raise errors naming the
expected shape.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.scratch import (
    col2im,
    conv2d_backward,
    conv2d_backward_loop,
    conv2d_forward,
    conv2d_forward_loop,
    conv2d_output_shape,
    conv_output_size,
    im2col,
)

IMPLEMENTATIONS = {
    "loop": (conv2d_forward_loop, conv2d_backward_loop),
    "im2col": (conv2d_forward, conv2d_backward),
}


@st.composite
def conv_cases(draw: st.DrawFn) -> dict:
    """A random valid conv2d configuration: shapes, stride, padding, dilation per axis."""
    n, c, o = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    # Input at least as large as the dilated kernel minus the padding (and at least 1).
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 9))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 9))
    return {
        "x": (n, c, h, w),
        "w": (o, c, kh, kw),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "seed": draw(st.integers(0, 2**16)),
    }


def torch_conv(case: dict, x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray):
    """PyTorch's output and (dx, dw, db) for upstream gradient g, all float64."""
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, stride=case["stride"], padding=case["padding"],
                 dilation=case["dilation"])  # fmt: skip
    y.backward(torch.from_numpy(g))
    return y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def arrays(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(case["seed"])
    x, w = rng.normal(size=case["x"]), rng.normal(size=case["w"])
    b = rng.normal(size=case["w"][0])
    out = conv2d_output_shape(case["x"], case["w"], stride=case["stride"],
                              padding=case["padding"], dilation=case["dilation"])  # fmt: skip
    return x, w, b, rng.normal(size=out)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@settings(max_examples=30, deadline=None)
@given(case=conv_cases())
def test_forward_and_gradients_match_torch(impl: str, case: dict) -> None:
    forward, backward = IMPLEMENTATIONS[impl]
    x, w, b, g = arrays(case)
    y_ref, dx_ref, dw_ref, db_ref = torch_conv(case, x, w, b, g)
    geometry = {k: case[k] for k in ("stride", "padding", "dilation")}
    y = forward(x, w, b, **geometry)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    dx, dw, db = backward(g, x, w, **geometry)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, db_ref, rtol=1e-10, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(case=conv_cases())
def test_output_shape_formula_matches_torch(case: dict) -> None:
    x, w, _, _ = arrays(case)
    geometry = {k: case[k] for k in ("stride", "padding", "dilation")}
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), **geometry).shape
    assert conv2d_output_shape(x.shape, w.shape, **geometry) == tuple(expected)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "dilation", "expected"),
    [(28, 5, 1, 0, 1, 24), (28, 5, 1, 2, 1, 28), (7, 3, 2, 1, 1, 4), (8, 3, 1, 0, 2, 4),
     (5, 5, 1, 0, 1, 1), (6, 2, 3, 0, 1, 2)],
)  # fmt: skip
def test_output_size_known_values(size, kernel, stride, padding, dilation, expected) -> None:
    got = conv_output_size(size, kernel, stride=stride, padding=padding, dilation=dilation)
    assert got == expected


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_gradients_match_finite_differences(impl: str) -> None:
    """Central differences of L = Σ y ⊙ g, one coordinate at a time (gradcheck-style)."""
    forward, backward = IMPLEMENTATIONS[impl]
    rng = np.random.default_rng(7)
    x, w, b = rng.normal(size=(2, 2, 5, 6)), rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    geometry = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2)}
    g = rng.normal(size=forward(x, w, b, **geometry).shape)
    dx, dw, db = backward(g, x, w, **geometry)
    eps = 1e-6

    def numeric(array: np.ndarray) -> np.ndarray:
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + eps
            plus = np.sum(forward(x, w, b, **geometry) * g)
            array[index] = saved - eps
            minus = np.sum(forward(x, w, b, **geometry) * g)
            array[index] = saved
            grad[index] = (plus - minus) / (2 * eps)
        return grad

    np.testing.assert_allclose(dx, numeric(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numeric(w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numeric(b), rtol=1e-6, atol=1e-7)


def test_im2col_rows_are_receptive_fields_and_col2im_is_its_adjoint() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 6, 5))
    geometry = {"stride": (2, 1), "padding": 1, "dilation": (1, 2)}
    cols = im2col(x, (3, 2), **geometry)
    # Unfold is PyTorch's im2col: (N, C·KH·KW, L) with the same (c, k, l) order.
    unfold = F.unfold(torch.from_numpy(x), (3, 2), **geometry).numpy()
    np.testing.assert_allclose(cols, unfold.transpose(0, 2, 1).reshape(cols.shape))
    # Adjoint: <im2col(x), r> = <x, col2im(r)> for any r.
    r = rng.normal(size=cols.shape)
    np.testing.assert_allclose(np.sum(cols * r), np.sum(x * col2im(r, x.shape, (3, 2), **geometry)))


def test_float32_stays_float32() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 1, 6, 6)).astype(np.float32)
    w = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    y = conv2d_forward(x, w, np.zeros(4, np.float32))
    assert y.dtype == np.float32
    dx, dw, db = conv2d_backward(np.ones_like(y), x, w)
    assert dx.dtype == dw.dtype == db.dtype == np.float32


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs", "match"),
    [
        (
            (2, 3, 8, 8),
            (4, 2, 3, 3),
            {},
            r"has 3 channel\(s\).*expected input of shape \(N, 2, H, W\)",
        ),
        ((3, 8, 8), (4, 3, 3, 3), {}, r"expected input of shape \(N, C, H, W\) = \(N, 3, H, W\)"),
        ((1, 1, 4, 4), (1, 1, 5, 5), {}, r"larger than the padded input.*size >= 5"),
        ((1, 1, 4, 4), (1, 1, 5, 5), {"padding": 0, "dilation": 2}, r"spans 9 pixels"),
        ((1, 1, 4, 4), (1, 1, 3, 3), {"stride": 0}, r"stride >= 1"),
        ((1, 1, 4, 4), (1, 1, 3, 3), {"padding": -1}, r"padding >= 0"),
        ((1, 1, 4, 4), (1, 3, 3), {}, r"expected weight of shape \(O, C, KH, KW\)"),
    ],
)
def test_bad_shapes_raise_naming_the_expected_shape(impl, x_shape, w_shape, kwargs, match) -> None:
    forward, backward = IMPLEMENTATIONS[impl]
    x, w = np.zeros(x_shape), np.zeros(w_shape)
    with pytest.raises(ValueError, match=match):
        forward(x, w, **kwargs)
    with pytest.raises(ValueError, match=match):
        backward(np.zeros((1, 1, 1, 1)), x, w, **kwargs)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_bad_bias_and_grad_shapes_raise(impl: str) -> None:
    forward, backward = IMPLEMENTATIONS[impl]
    x, w = np.zeros((2, 1, 5, 5)), np.zeros((3, 1, 3, 3))
    with pytest.raises(ValueError, match=r"expected bias of shape \(3,\)"):
        forward(x, w, np.zeros(4))
    with pytest.raises(ValueError, match=r"expected grad_out of the output's shape \(2, 3, 3, 3\)"):
        backward(np.zeros((2, 3, 5, 5)), x, w)
