"""Compute accounting and scaling-law fits: 6ND, the power-law fit, Chinchilla's split."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.train.scaling import (
    CHINCHILLA_TOKENS_PER_PARAMETER,
    PowerLaw,
    attention_training_flops,
    chinchilla_optimal,
    fit_power_law,
    training_flops,
)


def test_training_flops_is_six_n_d() -> None:
    assert training_flops(1_000_000, 20_000_000) == 6 * 1_000_000 * 20_000_000
    assert training_flops(1.5, 2.0) == pytest.approx(18.0)


def test_six_n_matches_counting_the_matrix_products_of_one_linear_layer() -> None:
    # y = x W (W: n_in × n_out, N = n_in·n_out weights) for D rows: forward 2ND, backward
    # dX = dY Wᵀ (2ND) and dW = Xᵀ dY (2ND): 6ND in all.
    n_in, n_out, rows = 7, 5, 11
    forward = 2 * rows * n_in * n_out
    backward = 2 * rows * n_out * n_in + 2 * n_in * rows * n_out
    assert forward + backward == training_flops(n_in * n_out, rows)


def test_attention_flops_and_their_share() -> None:
    assert attention_training_flops(4, 64, 128, 1000) == 6 * 4 * 64 * 128 * 1000
    # against 6N with N = 12·L·d² (d_ff = 4d) the share is n_ctx / (12 d): 1/6 at (64, 32)
    layers, d, ctx = 2, 32, 64
    share = attention_training_flops(layers, ctx, d, 1) / training_flops(12 * layers * d * d, 1)
    assert share == pytest.approx(ctx / (12 * d))


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan])
def test_flops_reject_non_positive(bad: float) -> None:
    with pytest.raises(ValueError, match="n_params"):
        training_flops(bad, 10)
    with pytest.raises(ValueError, match="n_tokens"):
        training_flops(10, bad)


def test_flops_reject_non_numbers() -> None:
    with pytest.raises(TypeError, match="n_params must be a number"):
        training_flops("10", 10)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="number"):
        training_flops(True, 10)


def test_fit_recovers_an_exact_power_law() -> None:
    compute = np.logspace(10, 16, 7)
    law = fit_power_law(compute, 3.7 * compute**-0.076)
    assert law.a == pytest.approx(3.7, rel=1e-9)
    assert law.b == pytest.approx(0.076, rel=1e-9)
    assert law.c == 0.0 and law.rmse_log < 1e-12 and law.n_points == 7


@settings(max_examples=40, deadline=None)
@given(
    a=st.floats(0.1, 100.0),
    b=st.floats(0.01, 1.0),
    start=st.floats(0.0, 15.0),
    decades=st.floats(1.0, 6.0),
    n=st.integers(2, 9),
)
def test_fit_recovers_any_power_law(
    a: float, b: float, start: float, decades: float, n: int
) -> None:
    compute = np.logspace(start, start + decades, n)
    law = fit_power_law(compute, a * compute**-b)
    assert law.a == pytest.approx(a, rel=1e-6)
    assert law.b == pytest.approx(b, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(law(compute), a * compute**-b, rtol=1e-9)


def test_fit_with_noise_is_the_log_log_least_squares_line() -> None:
    rng = np.random.default_rng(0)
    compute = np.logspace(12, 15, 20)
    loss = 5.0 * compute**-0.1 * np.exp(rng.normal(0, 0.01, compute.size))
    law = fit_power_law(compute, loss)
    slope, intercept = np.polyfit(np.log(compute), np.log(loss), 1)  # the independent oracle
    assert law.b == pytest.approx(-slope, rel=1e-9)
    assert law.a == pytest.approx(math.exp(intercept), rel=1e-9)
    assert law.b == pytest.approx(0.1, abs=0.01) and 0.005 < law.rmse_log < 0.02


def test_fit_with_an_irreducible_loss_recovers_all_three() -> None:
    compute = np.logspace(8, 14, 9)
    loss = 40.0 * compute**-0.2 + 1.7
    law = fit_power_law(compute, loss, irreducible=True)
    assert law.c == pytest.approx(1.7, rel=1e-5)
    assert law.a == pytest.approx(40.0, rel=1e-3)
    assert law.b == pytest.approx(0.2, rel=1e-4)
    assert law.rmse_log < 1e-6
    plain = fit_power_law(compute, loss)  # without a floor the curve bends: a worse straight line
    assert plain.rmse_log > 100 * law.rmse_log and plain.b < 0.2


def test_irreducible_fit_finds_no_floor_in_a_pure_power_law() -> None:
    compute = np.logspace(9, 13, 6)
    law = fit_power_law(compute, 2.5 * compute**-0.05, irreducible=True)
    assert law.c == pytest.approx(0.0, abs=1e-6)
    assert law.b == pytest.approx(0.05, rel=1e-4)


def test_power_law_evaluates_and_inverts() -> None:
    law = PowerLaw(a=10.0, b=0.5, c=1.0)
    assert law(100.0) == pytest.approx(2.0)
    np.testing.assert_allclose(law(np.array([1.0, 1e4])), [11.0, 1.1])
    assert law.compute_for_loss(2.0) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="never reaches"):
        law.compute_for_loss(1.0)
    assert str(PowerLaw(2.0, 0.1)) == "L(C) = 2 · C^(-0.1)"


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="equally long"):
        fit_power_law([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite numbers > 0"):
        fit_power_law([1.0, -2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="loss must hold finite"):
        fit_power_law([1.0, 2.0], [1.0, math.nan])
    with pytest.raises(ValueError, match="at least 2 distinct"):
        fit_power_law([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="with a floor needs at least 3"):
        fit_power_law([1.0, 2.0], [2.0, 1.0], irreducible=True)
    with pytest.raises(ValueError, match="1-D"):
        fit_power_law([[1.0, 2.0]], [[2.0, 1.0]])


def test_chinchilla_spends_the_budget_at_twenty_tokens_per_parameter() -> None:
    n, d = chinchilla_optimal(5.76e23)  # Chinchilla's own budget: ≈ 70 B params, 1.4 T tokens
    assert d / n == pytest.approx(CHINCHILLA_TOKENS_PER_PARAMETER)
    assert training_flops(n, d) == pytest.approx(5.76e23)
    assert n == pytest.approx(69.3e9, rel=0.01) and d == pytest.approx(1.39e12, rel=0.01)


@settings(max_examples=30, deadline=None)
@given(compute=st.floats(1e6, 1e26), ratio=st.floats(1.0, 1000.0))
def test_chinchilla_split_round_trips(compute: float, ratio: float) -> None:
    n, d = chinchilla_optimal(compute, tokens_per_parameter=ratio)
    assert d == pytest.approx(ratio * n, rel=1e-12)
    assert training_flops(n, d) == pytest.approx(compute, rel=1e-12)
    n4, _ = chinchilla_optimal(4 * compute, tokens_per_parameter=ratio)
    assert n4 == pytest.approx(2 * n, rel=1e-12)  # N_opt ∝ C^0.5


def test_chinchilla_rejects_bad_budget() -> None:
    with pytest.raises(ValueError, match="compute"):
        chinchilla_optimal(0.0)
    with pytest.raises(ValueError, match="tokens_per_parameter"):
        chinchilla_optimal(1e20, tokens_per_parameter=-20)
