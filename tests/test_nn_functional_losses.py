"""dlkit.nn.functional losses against torch.nn.functional: values and gradients in float64.

Each comparison differentiates ours and PyTorch's with torch.autograd.grad with respect
to the input and (where PyTorch allows it) the target, with a random upstream gradient
when the reduction keeps a shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from unittest import mock

import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.nn import functional as F

SETTINGS = settings(max_examples=25, deadline=None)
REDUCTIONS = ["mean", "sum", "none"]
f64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _run(fn: Callable, tensors: list[torch.Tensor], upstream_seed: int = 0):
    """Value of fn(*tensors) and its gradient with respect to the tensors that require grad."""
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in tensors]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about kl_div's "mean"
        out = fn(*leaves)
    wrt = [t for t in leaves if t.requires_grad]
    upstream = torch.randn(out.shape, generator=_gen(upstream_seed), dtype=out.dtype)
    grads = torch.autograd.grad(out, wrt, upstream) if wrt else ()
    return out.detach(), grads


def assert_matches(
    ours: Callable, theirs: Callable, tensors: list[torch.Tensor], rtol=1e-9, atol=1e-11
) -> None:
    out, grads = _run(ours, tensors)
    want_out, want_grads = _run(theirs, tensors)
    torch.testing.assert_close(out, want_out, rtol=rtol, atol=atol, equal_nan=True)
    assert len(grads) == len(want_grads)
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=rtol, atol=atol, equal_nan=True)


shapes = st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple)


# --- regression losses -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16), data=st.data())
def test_regression_losses_match_torch(name, shape, seed, data) -> None:
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    kwargs: dict = {"reduction": reduction}
    if name == "huber_loss":
        kwargs["delta"] = data.draw(st.sampled_from([0.1, 1.0, 2.5]), label="delta")
    x = torch.randn(shape, generator=_gen(seed), dtype=f64) * 2
    y = torch.randn(shape, generator=_gen(seed + 1), dtype=f64) * 2
    assert_matches(
        lambda a, b: getattr(F, name)(a, b, **kwargs),
        lambda a, b: getattr(TF, name)(a, b, **kwargs),
        [x.requires_grad_(), y.requires_grad_()],
    )


def test_regression_losses_at_kinks() -> None:
    # difference 0 (l1's kink) and |difference| = delta (huber's switch)
    x = torch.tensor([0.0, 1.0, -1.0, 0.5, 3.0, 1e4], dtype=f64, requires_grad=True)
    y = torch.tensor([0.0, 0.0, 0.0, 0.5, 2.0, -1e4], dtype=f64, requires_grad=True)
    for name in ("mse_loss", "l1_loss", "huber_loss"):
        assert_matches(
            lambda a, b, n=name: getattr(F, n)(a, b, reduction="none"),
            lambda a, b, n=name: getattr(TF, n)(a, b, reduction="none"),
            [x, y],
        )


# --- binary cross-entropy ----------------------------------------------------------------


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16), data=st.data())
def test_binary_cross_entropy_matches_torch(shape, seed, data) -> None:
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    use_weight = data.draw(st.booleans(), label="weight")
    p = torch.rand(shape, generator=_gen(seed), dtype=f64) * 0.98 + 0.01
    y = torch.rand(shape, generator=_gen(seed + 1), dtype=f64)
    w = torch.rand(shape[-1:], generator=_gen(seed + 2), dtype=f64) if use_weight else None
    assert_matches(
        lambda a, b: F.binary_cross_entropy(a, b, w, reduction=reduction),
        lambda a, b: TF.binary_cross_entropy(a, b, w, reduction=reduction),
        [p.requires_grad_(), y.requires_grad_()],
    )


def test_binary_cross_entropy_edges_clamp_like_torch() -> None:
    # p = 0 and 1: log clamped at -100 (loss 100), gradient through max(p(1-p), 1e-12)
    p = torch.tensor([0.0, 1.0, 1e-13, 1 - 1e-13, 0.0, 1.0, 0.5], dtype=f64, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.5, 1.0, 0.0, 1.0, 0.3], dtype=f64, requires_grad=True)
    assert_matches(
        lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
        lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"),
        [p, y],
    )
    loss = F.binary_cross_entropy(p, y, reduction="none")
    assert loss[0].item() == 100.0 and loss[1].item() == 100.0


@SETTINGS
@given(shape=shapes, seed=st.integers(0, 2**16), data=st.data())
def test_bce_with_logits_matches_torch(shape, seed, data) -> None:
    reduction = data.draw(st.sampled_from(REDUCTIONS), label="reduction")
    use_weight = data.draw(st.booleans(), label="weight")
    use_pos_weight = data.draw(st.booleans(), label="pos_weight")
    scale = data.draw(st.sampled_from([1.0, 10.0, 1e4]), label="scale")
    x = torch.randn(shape, generator=_gen(seed), dtype=f64) * scale
    y = torch.rand(shape, generator=_gen(seed + 1), dtype=f64)
    w = torch.rand(shape[-1:], generator=_gen(seed + 2), dtype=f64) if use_weight else None
    pw = torch.rand(shape[-1:], generator=_gen(seed + 3), dtype=f64) * 3 if use_pos_weight else None
    kwargs = {"reduction": reduction, "pos_weight": pw}
    assert_matches(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, **kwargs),
        lambda a, b: TF.binary_cross_entropy_with_logits(a, b, w, **kwargs),
        [x.requires_grad_(), y.requires_grad_()],
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bce_with_logits_extreme_logits(dtype) -> None:
    x = torch.tensor([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4], dtype=dtype, requires_grad=True)
    y = torch.tensor([1.0, 0.0, 0.3, 1.0, 0.0, 1.0, 0.0], dtype=dtype, requires_grad=True)
    out, grads = _run(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"), [x, y]
    )
    assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
    tol = 1e-11 if dtype == torch.float64 else 1e-5
    assert_matches(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"),
        lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction="none"),
        [x, y],
        rtol=tol,
        atol=tol,
    )
    assert abs(out[0].item() - 1e4) < 1e-3  # -log σ(-1e4) = 1e4, not inf


# --- cross-entropy and nll ---------------------------------------------------------------


@st.composite
def classification_case(draw, index_target: bool = True):
    """Logits (N, C, d...) or (C,), a target and the options, drawn together."""
    n_classes = draw(st.integers(1, 5), label="C")
    batch = draw(
        st.sampled_from([(), (3,), (2, 3), (2, 2, 2)]), label="batch"
    )  # (), (N,), (N, d1)...
    seed = draw(st.integers(0, 2**16), label="seed")
    shape = (n_classes,) if batch == () else (batch[0], n_classes, *batch[1:])
    target_shape = batch
    scale = draw(st.sampled_from([1.0, 5.0, 1e4]), label="scale")
    x = torch.randn(shape, generator=_gen(seed), dtype=f64) * scale
    class_dim = 0 if batch == () else 1
    if index_target:
        y = torch.randint(0, n_classes, target_shape, generator=_gen(seed + 1))
        ignore_index = draw(st.sampled_from([-100, 0, 1]), label="ignore_index")
        if batch and draw(st.booleans(), label="some ignored"):
            drop = torch.rand(target_shape, generator=_gen(seed + 2)) < 0.3
            y = torch.where(drop, ignore_index, y)
    else:
        y = torch.softmax(torch.randn(shape, generator=_gen(seed + 1), dtype=f64) * 2, class_dim)
        ignore_index = -100
    use_weight = draw(st.booleans(), label="weight")
    w = torch.rand(n_classes, generator=_gen(seed + 3), dtype=f64) + 0.1 if use_weight else None
    return {
        "x": x,
        "y": y,
        "weight": w,
        "ignore_index": ignore_index,
        "reduction": draw(st.sampled_from(REDUCTIONS), label="reduction"),
        "label_smoothing": draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]), label="smoothing"),
    }


def _ce_pair(case, fn: str):
    kwargs = {k: case[k] for k in ("ignore_index", "reduction", "label_smoothing")}
    if fn == "nll_loss":
        kwargs.pop("label_smoothing")
    return (
        lambda a, b: getattr(F, fn)(a, b, case["weight"], **kwargs),
        lambda a, b: getattr(TF, fn)(a, b, case["weight"], **kwargs),
    )


@SETTINGS
@given(case=classification_case(index_target=True))
def test_cross_entropy_class_indices_matches_torch(case) -> None:
    ours, theirs = _ce_pair(case, "cross_entropy")
    assert_matches(ours, theirs, [case["x"].requires_grad_(), case["y"]])


@SETTINGS
@given(case=classification_case(index_target=False))
def test_cross_entropy_probabilities_matches_torch(case) -> None:
    ours, theirs = _ce_pair(case, "cross_entropy")
    assert_matches(ours, theirs, [case["x"].requires_grad_(), case["y"].requires_grad_()])


@SETTINGS
@given(case=classification_case(index_target=True))
def test_nll_loss_matches_torch(case) -> None:
    class_dim = 0 if case["x"].dim() == 1 else 1
    log_p = torch.log_softmax(case["x"], class_dim)
    ours, theirs = _ce_pair(case, "nll_loss")
    assert_matches(ours, theirs, [log_p.requires_grad_(), case["y"]])


def test_ignore_index_means_over_counted_targets_only() -> None:
    x = torch.randn(4, 3, dtype=f64)
    y = torch.tensor([0, -100, 2, -100])
    kept = F.cross_entropy(x[[0, 2]], y[[0, 2]])
    torch.testing.assert_close(F.cross_entropy(x, y), kept)
    assert torch.isnan(F.cross_entropy(x, torch.full((4,), -100)))  # 0 / 0, as in PyTorch


def test_label_smoothing_equals_cross_entropy_with_smoothed_probabilities() -> None:
    x = torch.randn(5, 4, dtype=f64)
    y = torch.tensor([0, 1, 2, 3, 1])
    eps = 0.2
    q = (1 - eps) * torch.eye(4, dtype=f64)[y] + eps / 4
    torch.testing.assert_close(F.cross_entropy(x, y, label_smoothing=eps), F.cross_entropy(x, q))


def test_cross_entropy_extreme_logits_are_finite_and_match() -> None:
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]], requires_grad=True)
    y = torch.tensor([1, 0, 2])
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-5)):
        xd = x.detach().to(dtype).requires_grad_()
        out, grads = _run(lambda a, b: F.cross_entropy(a, b, reduction="none"), [xd, y])
        assert torch.isfinite(out).all() and torch.isfinite(grads[0]).all()
        assert abs(out[0].item() - 2e4) / 2e4 < 1e-6  # 1e4 - (-1e4), not inf
        for smoothing in (0.0, 0.1):
            assert_matches(
                lambda a, b, s=smoothing: F.cross_entropy(a, b, label_smoothing=s),
                lambda a, b, s=smoothing: TF.cross_entropy(a, b, label_smoothing=s),
                [xd, y],
                rtol=tol,
                atol=tol,
            )


# --- KL divergence -----------------------------------------------------------------------


@SETTINGS
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    seed=st.integers(0, 2**16),
    reduction=st.sampled_from(["mean", "batchmean", "sum", "none"]),
    log_target=st.booleans(),
)
def test_kl_div_matches_torch(shape, seed, reduction, log_target) -> None:
    log_p = torch.log_softmax(torch.randn(shape, generator=_gen(seed), dtype=f64), -1)
    q = torch.softmax(torch.randn(shape, generator=_gen(seed + 1), dtype=f64) * 3, -1)
    target = q.log() if log_target else q
    kwargs = {"reduction": reduction, "log_target": log_target}
    assert_matches(
        lambda a, b: F.kl_div(a, b, **kwargs),
        lambda a, b: TF.kl_div(a, b, **kwargs),
        [log_p.requires_grad_(), target.requires_grad_()],
    )


def test_kl_div_zero_target_probabilities_count_as_zero() -> None:
    log_p = torch.log_softmax(torch.randn(3, 4, dtype=f64), 1).requires_grad_()
    q = torch.tensor([[0.0, 0.5, 0.5, 0.0]] * 3, dtype=f64)
    assert_matches(
        lambda a, b: F.kl_div(a, b, reduction="batchmean"),
        lambda a, b: TF.kl_div(a, b, reduction="batchmean"),
        [log_p, q],
    )


def test_cross_entropy_is_entropy_plus_kl() -> None:
    x = torch.randn(6, 5, dtype=f64)
    q = torch.softmax(torch.randn(6, 5, dtype=f64), 1)
    entropy = -(q * q.log()).sum(1).mean()
    kl = F.kl_div(F.log_softmax(x, 1), q, reduction="batchmean")
    torch.testing.assert_close(F.cross_entropy(x, q), entropy + kl)


# --- gradcheck ---------------------------------------------------------------------------


def _gradcheck_cases():
    g = _gen(7)
    x = torch.randn(3, 4, generator=g, dtype=f64)
    y = torch.randn(3, 4, generator=g, dtype=f64)
    p = torch.rand(3, 4, generator=g, dtype=f64) * 0.8 + 0.1
    t = torch.rand(3, 4, generator=g, dtype=f64)
    idx = torch.tensor([0, 3, -100])
    q = torch.softmax(torch.randn(3, 4, generator=g, dtype=f64), 1)
    w = torch.rand(4, generator=g, dtype=f64) + 0.5
    x_kink_free = x + 0.1 * torch.sign(x - y)  # keep |x - y| away from l1's and huber's kinks
    return [
        ("mse_loss", lambda a, b: F.mse_loss(a, b), (x, y)),
        ("l1_loss", lambda a, b: F.l1_loss(a, b, reduction="sum"), (x_kink_free, y)),
        ("huber_loss", lambda a, b: F.huber_loss(a, b, delta=0.7), (x_kink_free, y)),
        ("bce", lambda a, b: F.binary_cross_entropy(a, b, w), (p, t)),
        (
            "bce_logits",
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, pos_weight=w),
            (x, t),
        ),
        ("ce_index", lambda a: F.cross_entropy(a, idx, w, label_smoothing=0.1), (x,)),
        ("ce_prob", lambda a, b: F.cross_entropy(a, b, w, label_smoothing=0.2), (x, q)),
        ("nll", lambda a: F.nll_loss(F.log_softmax(a, 1), idx, w, reduction="sum"), (x,)),
        ("kl", lambda a, b: F.kl_div(F.log_softmax(a, 1), b, reduction="batchmean"), (x, q)),
        (
            "kl_log",
            lambda a, b: F.kl_div(a, b, reduction="none", log_target=True),
            (F.log_softmax(x, 1), q.log()),
        ),
    ]


@pytest.mark.parametrize(("name", "fn", "inputs"), _gradcheck_cases(), ids=lambda v: v)
def test_gradcheck(name, fn, inputs) -> None:
    inputs = tuple(t.detach().clone().requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(fn, inputs)


# --- errors ------------------------------------------------------------------------------


def test_errors_name_what_was_expected() -> None:
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"reduction must be one of 'mean', 'sum', 'none'"):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="'batchmean'"):
        F.kl_div(x, x, reduction="average")
    with pytest.raises(ValueError, match=r"target has shape \(4,\) but input has shape \(3, 4\)"):
        F.l1_loss(x, torch.randn(4))
    with pytest.raises(TypeError, match="floating-point"):
        F.mse_loss(x, torch.ones(3, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        F.binary_cross_entropy(torch.tensor([0.5, 1.5]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="delta must be > 0"):
        F.huber_loss(x, x, delta=0.0)
    with pytest.raises(TypeError, match=r"torch\.int64"):
        F.cross_entropy(x, torch.tensor([0, 1, 2], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"target of class indices of shape \(3,\), got \(3, 1\)"):
        F.cross_entropy(x, torch.tensor([[0], [1], [2]]))
    with pytest.raises(IndexError, match=r"class index 7 at position \(2,\).*0 <= index < 4"):
        F.cross_entropy(x, torch.tensor([0, 1, 7]))
    with pytest.raises(IndexError, match="class index -1"):
        F.nll_loss(x, torch.tensor([0, -1, 2]))
    with pytest.raises(ValueError, match=r"class probabilities.*shape \(3, 4\)"):
        F.cross_entropy(x, torch.rand(3, 5))
    with pytest.raises(ValueError, match="ignore_index is not supported"):
        F.cross_entropy(x, torch.rand(3, 4), ignore_index=1)
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.cross_entropy(x, torch.tensor([0, 1, 2]), torch.ones(3))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        F.cross_entropy(x, torch.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="class axis"):
        F.cross_entropy(torch.tensor(1.0), torch.tensor(0))


# --- no shortcut through torch.nn.functional ---------------------------------------------


def _raise(*args, **kwargs):
    raise AssertionError("dlkit.nn.functional called a fused PyTorch version")


def test_losses_never_call_torch_functional() -> None:
    names = [n for n in dir(TF) if not n.startswith("_") and callable(getattr(TF, n))]
    fused = ["softmax", "log_softmax", "logsumexp", "sigmoid", "binary_cross_entropy_with_logits"]
    fused += ["nll_loss", "cross_entropy", "kl_div", "huber_loss", "mse_loss", "l1_loss"]
    fused += ["binary_cross_entropy", "smooth_l1_loss"]
    patches = [mock.patch.object(TF, n, _raise) for n in names]
    patches += [mock.patch.object(torch, n, _raise) for n in fused if hasattr(torch, n)]
    patches += [
        mock.patch.object(torch.Tensor, n, _raise) for n in fused if hasattr(torch.Tensor, n)
    ]
    g = _gen(3)
    x = torch.randn(3, 4, generator=g, dtype=f64, requires_grad=True)
    p = torch.rand(3, 4, generator=g, dtype=f64) * 0.8 + 0.1
    q = torch.softmax(torch.randn(3, 4, generator=g, dtype=f64), 1)
    idx = torch.tensor([0, 3, 1])
    for patch in patches:
        patch.start()
    try:
        losses = [
            F.mse_loss(x, p),
            F.l1_loss(x, p),
            F.huber_loss(x, p),
            F.binary_cross_entropy(p * torch.exp(x - x.detach()), q),  # p, with a path to x
            F.binary_cross_entropy_with_logits(x, q, pos_weight=p[0]),
            F.cross_entropy(x, idx, label_smoothing=0.1),
            F.cross_entropy(x, q),
            F.nll_loss(x, idx),
            F.kl_div(x, q, reduction="batchmean"),
        ]
        torch.autograd.grad(sum(losses), x)
    finally:
        for patch in patches:
            patch.stop()
