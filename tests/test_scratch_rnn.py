"""The NumPy RNN: forward and BPTT against torch.nn.RNN (copied weights, float64) and
central differences; clipping against torch.nn.utils.clip_grad_norm_."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlkit.grading import check_gradient
from dlkit.scratch.rnn import (
    clip_grad_norm,
    gradient_flow,
    init_rnn_params,
    rnn_backward,
    rnn_forward,
    rnn_step_backward,
    rnn_step_forward,
)


def _problem(t: int, b: int, d: int, h: int, seed: int):
    rng = np.random.default_rng(seed)
    params = init_rnn_params(d, h, weight_scale=0.9, seed=seed)
    params["b"] = rng.normal(size=h)
    x = rng.normal(size=(t, b, d))
    h0 = rng.normal(size=(b, h)) * 0.5
    dhs = rng.normal(size=(t, b, h))  # the loss sum_t <dhs_t, h_t>
    return params, x, h0, dhs


@pytest.mark.parametrize(("t", "b", "d", "h"), [(1, 1, 1, 1), (5, 3, 4, 6), (12, 2, 3, 5)])
def test_forward_and_backward_match_torch_rnn(t: int, b: int, d: int, h: int) -> None:
    params, x, h0, dhs = _problem(t, b, d, h, seed=t)
    hs = rnn_forward(x, h0, params)
    grads = rnn_backward(dhs, x, h0, hs, params)

    ref = torch.nn.RNN(d, h, nonlinearity="tanh").double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.from_numpy(params["W_xh"]))
        ref.weight_hh_l0.copy_(torch.from_numpy(params["W_hh"]))
        ref.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
        ref.bias_hh_l0.zero_()
    xt = torch.from_numpy(x).requires_grad_(True)
    h0t = torch.from_numpy(h0).unsqueeze(0).requires_grad_(True)
    out, hn = ref(xt, h0t)
    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hs[-1], hn[0].detach().numpy(), rtol=1e-12, atol=1e-12)
    (out * torch.from_numpy(dhs)).sum().backward()
    np.testing.assert_allclose(grads["x"], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["h0"], h0t.grad[0].numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["W_xh"], ref.weight_ih_l0.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["W_hh"], ref.weight_hh_l0.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["b"], ref.bias_ih_l0.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_bptt_matches_central_differences() -> None:
    params, x, h0, dhs = _problem(6, 2, 3, 4, seed=7)

    def loss(W_xh, W_hh, b, x, h0):
        hs = rnn_forward(x, h0, {"W_xh": W_xh, "W_hh": W_hh, "b": b})
        return float(np.sum(hs * dhs))

    grads = rnn_backward(dhs, x, h0, rnn_forward(x, h0, params), params)
    check_gradient(loss, {**params, "x": x, "h0": h0}, grads, rtol=1e-6, atol=1e-8)


def test_total_hidden_gradients_are_what_flows_back() -> None:
    params, x, h0, dhs = _problem(4, 3, 2, 5, seed=1)
    hs = rnn_forward(x, h0, params)
    grads = rnn_backward(dhs, x, h0, hs, params)
    np.testing.assert_allclose(grads["h"][-1], dhs[-1])  # nothing comes after the last step
    # G_{t-1} = dhs_{t-1} + (G_t * (1 - h_t^2)) W_hh
    for t in range(1, 4):
        expected = dhs[t - 1] + (grads["h"][t] * (1 - hs[t] ** 2)) @ params["W_hh"]
        np.testing.assert_allclose(grads["h"][t - 1], expected, rtol=1e-12)


def test_step_functions_compose_to_the_sequence_version() -> None:
    params, x, h0, dhs = _problem(1, 3, 2, 4, seed=2)
    h1 = rnn_step_forward(x[0], h0, params["W_xh"], params["W_hh"], params["b"])
    dx, dh0, dw_xh, dw_hh, db = rnn_step_backward(
        dhs[0], x[0], h0, h1, params["W_xh"], params["W_hh"]
    )
    grads = rnn_backward(dhs, x, h0, h1[None], params)
    for mine, full in ((dx, grads["x"][0]), (dh0, grads["h0"]), (dw_xh, grads["W_xh"]),
                       (dw_hh, grads["W_hh"]), (db, grads["b"])):  # fmt: skip
        np.testing.assert_allclose(mine, full, rtol=1e-12)


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 1e3])
def test_clip_grad_norm_matches_torch(max_norm: float) -> None:
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    clipped, norm = clip_grad_norm(grads, max_norm)
    tensors = [torch.zeros(3, 4, dtype=torch.float64, requires_grad=True),
               torch.zeros(5, dtype=torch.float64, requires_grad=True)]  # fmt: skip
    for p, g in zip(tensors, grads.values(), strict=True):
        p.grad = torch.from_numpy(g.copy())
    ref_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    assert norm == pytest.approx(float(ref_norm), rel=1e-12)
    for p, g in zip(tensors, clipped.values(), strict=True):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-12)
    assert grads["a"] is not clipped["a"]  # copies; the input is left alone
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(grads, 0.0)


def _torch_clip(grads: dict[str, np.ndarray], max_norm: float) -> tuple[list[np.ndarray], float]:
    """torch.nn.utils.clip_grad_norm_ on copies of ``grads``: (clipped grads, total norm)."""
    tensors = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
               for g in grads.values()]  # fmt: skip
    for p, g in zip(tensors, grads.values(), strict=True):
        p.grad = torch.from_numpy(g.copy())
    norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm, error_if_nonfinite=False)
    return [p.grad.numpy() for p in tensors], float(norm)


@pytest.mark.parametrize(
    "case", ["finite", "small", "nan", "inf", "-inf", "overflow64", "overflow32", "float32"]
)
def test_clip_grad_norm_matches_torch_for_finite_nan_and_inf_norms(case: str) -> None:
    rng = np.random.default_rng(3)
    grads = {"w": rng.normal(size=(3, 4)), "b": rng.normal(size=5)}
    bad = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "overflow64": 1e200}
    if case in bad:
        grads["w"][1, 2] = bad[case]
    elif case == "small":
        grads = {k: 1e-3 * g for k, g in grads.items()}  # below max_norm: left as it is
    elif case in ("overflow32", "float32"):
        grads = {k: g.astype(np.float32) for k, g in grads.items()}
        if case == "overflow32":
            grads["b"][0] = 1e20  # its square overflows float32 (torch's norm is inf too)
    before = {k: g.copy() for k, g in grads.items()}
    clipped, norm = clip_grad_norm(grads, 1.0)
    ref_grads, ref_norm = _torch_clip(grads, 1.0)
    np.testing.assert_allclose(norm, ref_norm, rtol=1e-6 if case == "float32" else 1e-12)
    for mine, ref, original in zip(clipped.values(), ref_grads, grads.values(), strict=True):
        assert mine.dtype == ref.dtype == original.dtype
        # assert_allclose counts nan == nan, so where torch gives nan ours must too
        np.testing.assert_allclose(mine, ref, rtol=1e-6 if case == "float32" else 1e-12)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])  # the input is left alone
    # What torch does, spelled out (so a change in torch shows up here too):
    if case == "nan":  # the factor is nan: every gradient becomes nan
        assert np.isnan(norm) and all(np.isnan(g).all() for g in clipped.values())
    elif case in ("inf", "-inf", "overflow64", "overflow32"):  # the factor is 0
        assert norm == np.inf
        assert all(np.nanmax(np.abs(g)) == 0.0 for g in clipped.values())
        assert np.isnan(clipped["w"][1, 2]) == (case in ("inf", "-inf"))  # inf * 0 = nan
    else:
        assert np.isfinite(norm) and all(np.isfinite(g).all() for g in clipped.values())
    if np.isfinite(norm):
        clip_grad_norm(grads, 1.0, error_if_nonfinite=True)  # no error
    else:
        with pytest.raises(ValueError, match=r"total gradient norm is (nan|inf)"):
            clip_grad_norm(grads, 1.0, error_if_nonfinite=True)


def test_bad_shapes_raise_clear_errors() -> None:
    params, x, h0, _ = _problem(3, 2, 3, 4, seed=0)
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, D=3\)"):
        rnn_forward(x[..., :2], h0, params)
    with pytest.raises(ValueError, match=r"h0 must have shape \(B=2, H=4\)"):
        rnn_forward(x, h0[:1], params)
    with pytest.raises(ValueError, match="W_hh must be"):
        rnn_forward(x, h0, {**params, "W_hh": np.eye(3)})
    with pytest.raises(KeyError, match="missing"):
        rnn_forward(x, h0, {"W_xh": params["W_xh"]})


def test_gradients_vanish_below_and_explode_above_unit_weight_scale() -> None:
    small = gradient_flow(60, 0.6, seed=0)
    large = gradient_flow(60, 2.0, seed=0)
    assert small.gradient[-1] == pytest.approx(1.0)  # dL/dh_T is the unit vector u
    assert small.gradient[0] < 1e-8 < 1e3 < large.gradient[0]
    assert np.all(np.diff(small.gradient) > 0)  # shrinks monotonically going back in time
    np.testing.assert_array_equal(small.gradient, gradient_flow(60, 0.6, seed=0).gradient)
    params = init_rnn_params(3, 8, weight_scale=1.7, seed=4)
    np.testing.assert_allclose(np.linalg.svd(params["W_hh"], compute_uv=False), 1.7)
