"""dlkit.nn.distillation: the loss against F.kl_div / F.cross_entropy and a hand formula,
why ``batchmean`` and why :math:`T^2` (the soft gradient's scale does not depend on T),
unlabelled rows, a finite-difference gradient check and clear errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.data.masking import IGNORE_INDEX
from dlkit.nn.distillation import distillation_loss, soft_kl, soft_targets


def _logits(B: int, K: int, seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = scale * torch.randn(B, K, generator=g, dtype=torch.float64)
    t = scale * torch.randn(B, K, generator=g, dtype=torch.float64)
    return s, t


def _hand_kl(s: torch.Tensor, t: torch.Tensor, T: float) -> float:
    """Per-row sum_i p_i log(p_i / q_i), averaged over rows, in plain Python floats."""
    total = 0.0
    for srow, trow in zip(s.tolist(), t.tolist(), strict=True):
        p = [math.exp(z / T) for z in trow]
        q = [math.exp(z / T) for z in srow]
        p = [x / math.fsum(p) for x in p]
        q = [x / math.fsum(q) for x in q]
        total += math.fsum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    return total / len(s)


def test_soft_targets_is_softmax_of_logits_over_t() -> None:
    z = torch.tensor([[2.0, 1.0, -1.0]], dtype=torch.float64)
    for T in (0.5, 1.0, 4.0):
        e = [math.exp(v / T) for v in z[0].tolist()]
        expected = torch.tensor([[x / sum(e) for x in e]], dtype=torch.float64)
        torch.testing.assert_close(soft_targets(z, T), expected)
    # high T flattens towards uniform, low T sharpens towards the arg-max
    assert torch.allclose(soft_targets(z, 1e4), torch.full_like(z, 1 / 3), atol=1e-3)
    assert soft_targets(z, 0.01)[0, 0] > 1 - 1e-6


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0, 8.0])
def test_loss_matches_torch_and_hand_formula(T: float) -> None:
    s, t = _logits(6, 5, seed=int(T))
    y = torch.tensor([0, 4, 2, 1, 3, 3])
    alpha = 0.7
    kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                  reduction="batchmean")  # fmt: skip
    expected = (1 - alpha) * F.cross_entropy(s, y) + alpha * T**2 * kl
    got = distillation_loss(s, t, y, temperature=T, alpha=alpha)
    torch.testing.assert_close(got, expected)
    assert soft_kl(s, t, temperature=T).item() == pytest.approx(_hand_kl(s, t, T), rel=1e-12)
    # the two ends of alpha: labels only, teacher only
    torch.testing.assert_close(
        distillation_loss(s, t, y, temperature=T, alpha=0.0), F.cross_entropy(s, y)
    )
    torch.testing.assert_close(distillation_loss(s, t, y, temperature=T, alpha=1.0), T**2 * kl)


def test_batchmean_is_the_kl_per_example_and_mean_divides_it_by_k() -> None:
    for K in (3, 10, 50):
        s, t = _logits(8, K, seed=K)
        log_q, log_p = F.log_softmax(s, -1), F.log_softmax(t, -1)
        batchmean = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
        with warnings.catch_warnings():  # torch itself warns that 'mean' is not the KL
            warnings.simplefilter("ignore", UserWarning)
            mean = F.kl_div(log_q, log_p, log_target=True, reduction="mean")
        # batchmean is the true KL (sum over classes) averaged over examples ...
        assert batchmean.item() == pytest.approx(_hand_kl(s, t, 1.0), rel=1e-12)
        # ... 'mean' also averages over the K classes, so its size depends on K
        assert (batchmean / mean).item() == pytest.approx(K, rel=1e-12)
        assert soft_kl(s, t, temperature=1.0).item() == pytest.approx(batchmean.item())


def _soft_grad(s: torch.Tensor, t: torch.Tensor, T: float, *, t_squared: bool) -> torch.Tensor:
    s = s.clone().requires_grad_(True)
    y = torch.full((s.shape[0],), IGNORE_INDEX)
    loss = distillation_loss(s, t, y, temperature=T, alpha=1.0)  # alpha * T^2 * KL
    if not t_squared:
        loss = loss / T**2
    (grad,) = torch.autograd.grad(loss, s)
    return grad


def test_gradient_is_q_minus_p_over_t() -> None:
    s, t = _logits(4, 6, seed=1)
    T = 3.0
    grad = _soft_grad(s, t, T, t_squared=False)  # d KL / d s, batchmean
    expected = (soft_targets(s, T) - soft_targets(t, T)) / T / s.shape[0]
    torch.testing.assert_close(grad, expected)


def test_t_squared_keeps_the_soft_gradient_scale_independent_of_t() -> None:
    s, t = _logits(16, 10, seed=2)
    B, K = s.shape
    with_t2 = [_soft_grad(s, t, T, t_squared=True).norm().item() for T in (2.0, 4.0, 8.0)]
    without = [_soft_grad(s, t, T, t_squared=False).norm().item() for T in (2.0, 4.0, 8.0)]
    assert max(with_t2) / min(with_t2) < 1.3  # roughly constant with T^2 ...
    # ... and without it the gradient falls like 1/T^2: x4 per doubling of T
    assert without[0] / without[1] == pytest.approx(4.0, rel=0.15)
    assert without[1] / without[2] == pytest.approx(4.0, rel=0.05)
    # the large-T limit: T^2 dKL/ds -> ((s - mean s) - (t - mean t)) / K (per row, / B)
    centred = (s - s.mean(-1, keepdim=True)) - (t - t.mean(-1, keepdim=True))
    limit = centred / K / B
    errors = [(_soft_grad(s, t, T, t_squared=True) - limit).norm() / limit.norm() for T in
              (50.0, 200.0, 800.0)]  # fmt: skip
    assert errors[-1] < 2e-3
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.1)  # the error falls like 1/T
    # and a large T is far from that limit without the T^2 factor
    assert _soft_grad(s, t, 200.0, t_squared=False).norm() < 1e-3 * limit.norm()


def test_unlabelled_rows_count_in_the_kl_not_in_the_ce() -> None:
    s, t = _logits(5, 4, seed=3)
    y = torch.tensor([1, IGNORE_INDEX, 3, IGNORE_INDEX, 0])
    T, alpha = 2.0, 0.4
    kl_all = soft_kl(s, t, temperature=T)  # over all 5 rows
    ce_labelled = F.cross_entropy(s[[0, 2, 4]], y[[0, 2, 4]])
    expected = (1 - alpha) * ce_labelled + alpha * T**2 * kl_all
    torch.testing.assert_close(distillation_loss(s, t, y, temperature=T, alpha=alpha), expected)
    # the same as torch's ignore_index for the CE term
    torch.testing.assert_close(ce_labelled, F.cross_entropy(s, y, ignore_index=IGNORE_INDEX))
    # no labelled row: the CE term is 0, the loss is the soft term alone
    none = torch.full((5,), IGNORE_INDEX)
    got = distillation_loss(s, t, none, temperature=T, alpha=alpha)
    torch.testing.assert_close(got, alpha * T**2 * kl_all)
    assert torch.isfinite(got)


def test_teacher_gets_no_gradient() -> None:
    s, t = _logits(3, 4, seed=4)
    s.requires_grad_(True)
    t.requires_grad_(True)
    distillation_loss(s, t, torch.tensor([0, 1, 2]), temperature=2.0, alpha=0.5).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@settings(max_examples=20, deadline=None)
@given(
    B=st.integers(1, 4), K=st.integers(2, 6), seed=st.integers(0, 10_000),
    T=st.floats(0.5, 10.0), alpha=st.floats(0.0, 1.0),
)  # fmt: skip
def test_finite_difference_gradient(B: int, K: int, seed: int, T: float, alpha: float) -> None:
    s, t = _logits(B, K, seed=seed, scale=2.0)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K, (B,), generator=g)
    y[torch.rand(B, generator=g) < 0.3] = IGNORE_INDEX
    s.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: distillation_loss(x, t, y, temperature=T, alpha=alpha), (s,)
    )
    # and the loss is >= 0 (CE >= 0, KL >= 0)
    assert distillation_loss(s, t, y, temperature=T, alpha=alpha).item() >= -1e-12


def test_zero_soft_term_when_student_equals_teacher() -> None:
    s, _ = _logits(4, 5, seed=5)
    y = torch.full((4,), IGNORE_INDEX)
    assert distillation_loss(s, s.clone(), y, temperature=4.0, alpha=1.0).item() == pytest.approx(
        0.0, abs=1e-12
    )
    # shifting the teacher's logits by a constant per row changes nothing (softmax invariance)
    got = distillation_loss(s, s + 3.0, y, temperature=4.0, alpha=1.0).item()
    assert got == pytest.approx(0.0, abs=1e-12)


def test_errors_are_clear() -> None:
    s, t = _logits(3, 4, seed=6)
    y = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"temperature must be finite and > 0"):
        distillation_loss(s, t, y, temperature=0.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"temperature"):
        soft_targets(s, -1.0)
    with pytest.raises(TypeError, match=r"temperature must be a real number"):
        soft_targets(s, "2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        distillation_loss(s, t, y, temperature=1.0, alpha=1.5)
    with pytest.raises(ValueError, match=r"teacher_logits must have the student's shape"):
        distillation_loss(s, t[:, :3], y, temperature=1.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"student_logits must be \(B, K\)"):
        distillation_loss(s[0], t[0], y, temperature=1.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"targets must be \(B,\) = \(3,\)"):
        distillation_loss(s, t, y[:2], temperature=1.0, alpha=0.5)
    with pytest.raises(TypeError, match=r"targets must be an int64 tensor"):
        distillation_loss(s, t, y.int(), temperature=1.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\) or be IGNORE_INDEX"):
        distillation_loss(s, t, torch.tensor([0, 4, -1]), temperature=1.0, alpha=0.5)
    with pytest.raises(TypeError, match=r"floating"):
        distillation_loss(s.long(), t, y, temperature=1.0, alpha=0.5)
