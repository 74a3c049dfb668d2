"""dlkit.nn.sampling: top-k, top-p and temperature against brute-force references written from
the definitions, the order of the three steps, chi-square goodness of fit of the samples,
seeded reproducibility, independent rows, dtypes and clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from dlkit.nn.sampling import (
    next_token_distribution,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)

# ---- references, one row at a time, in plain Python floats --------------------------------


def _ranked(row: list[float]) -> list[int]:
    """Ids by decreasing logit, ties by increasing id (the documented order)."""
    return sorted(range(len(row)), key=lambda i: (-row[i], i))


def _softmax(row: list[float]) -> list[float]:
    top = max(row)
    e = [math.exp(z - top) for z in row]  # exp(-inf) = 0
    total = math.fsum(e)
    return [x / total for x in e]


def ref_top_k(row: list[float], k: int) -> list[float]:
    keep = set(_ranked(row)[:k])
    return [z if i in keep else -math.inf for i, z in enumerate(row)]


def ref_top_p(row: list[float], p: float) -> list[float]:
    """The definition: the smallest m such that the m most probable tokens sum to >= p."""
    if p == 1.0:
        return list(row)
    probs, order = _softmax(row), _ranked(row)
    for m in range(1, len(row) + 1):
        if math.fsum(probs[i] for i in order[:m]) >= p:
            break
    keep = set(order[:m])
    return [z if i in keep else -math.inf for i, z in enumerate(row)]


def prefix_sums_near(row: list[float], p: float, tol: float = 1e-9) -> bool:
    """True when a prefix sum lies within ``tol`` of ``p``: there rounding decides the set."""
    probs, order = _softmax(row), _ranked(row)
    return any(abs(math.fsum(probs[i] for i in order[:m]) - p) < tol for m in range(len(row)))


def ref_distribution(row: list[float], temperature: float, k: int | None, p: float | None):
    z = [x / temperature for x in row]
    if k is not None:
        z = ref_top_k(z, k)
    if p is not None:
        z = ref_top_p(z, p)
    return _softmax(z)


logit_values = st.one_of(
    st.integers(-3, 3).map(float),  # small integers: many exact ties
    st.floats(-30.0, 30.0, allow_nan=False),
)
rows = st.lists(logit_values, min_size=1, max_size=12)


def _as_tensor(row: list[float]) -> torch.Tensor:
    return torch.tensor([row], dtype=torch.float64)  # (1, V)


# ---- top-k ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(row=rows, k=st.integers(1, 14))
def test_top_k_matches_reference(row: list[float], k: int) -> None:
    out = top_k_filter(_as_tensor(row), k)[0].tolist()
    assert out == ref_top_k(row, k)
    assert sum(v > -math.inf for v in out) == min(k, len(row))  # exactly k survive


def test_top_k_ties_keep_exactly_k_lowest_ids_first() -> None:
    z = torch.tensor([1.0, 3.0, 3.0, 2.0, 3.0, 1.0])
    out = top_k_filter(z, 2)
    assert torch.isfinite(out).nonzero().flatten().tolist() == [1, 2]
    assert torch.equal(top_k_filter(z, 6), z) and torch.equal(top_k_filter(z, 100), z)


def test_top_k_rows_of_a_batch_are_filtered_separately() -> None:
    z = torch.randn(2, 3, 9, generator=torch.Generator().manual_seed(0))  # (..., V)
    out = top_k_filter(z, 4)
    for idx in [(0, 0), (0, 2), (1, 1)]:
        assert out[idx].tolist() == ref_top_k(z[idx].tolist(), 4)
    assert out.shape == z.shape and out.dtype == z.dtype


# ---- top-p ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(row=rows, p=st.floats(1e-6, 1.0))
def test_top_p_matches_the_smallest_set_definition(row: list[float], p: float) -> None:
    assume(not prefix_sums_near(row, p))
    out = top_p_filter(_as_tensor(row), p)[0].tolist()
    assert out == ref_top_p(row, p)
    assert out[_ranked(row)[0]] == row[_ranked(row)[0]]  # the top token always stays


def test_top_p_keeps_the_token_that_crosses_p() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    z = probs.log()
    kept = lambda p: torch.isfinite(top_p_filter(z, p)).nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.5) == [0]  # 0.5 >= 0.5 already
    assert kept(0.51) == [0, 1]  # 0.5 < 0.51: the 0.3 token crosses and is kept
    assert kept(0.79) == [0, 1]  # 0.8 >= 0.79: the 0.15 token is not needed
    assert kept(0.81) == [0, 1, 2]
    assert kept(1e-9) == [0]  # always at least the top token


def test_top_p_ties_broken_by_index_and_p_one_keeps_everything() -> None:
    z = torch.zeros(4)  # four tokens of probability 1/4
    assert torch.isfinite(top_p_filter(z, 0.5)).tolist() == [True, True, False, False]
    assert torch.isfinite(top_p_filter(z, 0.6)).tolist() == [True, True, True, False]
    tiny = torch.tensor([0.0, -1000.0], dtype=torch.float64)  # p(1) = e^-1000 underflows to 0
    assert torch.equal(top_p_filter(tiny, 1.0), tiny)  # p = 1: the whole vocabulary
    assert torch.isfinite(top_p_filter(tiny, 0.999)).tolist() == [True, False]


# ---- the full distribution and the order of the steps --------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    row=rows,
    temperature=st.floats(0.1, 5.0),
    k=st.none() | st.integers(1, 14),
    p=st.none() | st.floats(1e-3, 1.0),
)
def test_distribution_matches_reference(row, temperature, k, p) -> None:
    if p is not None:  # rounding at the top-p boundary: exclude the measure-zero ties
        z = [x / temperature for x in row]
        assume(not prefix_sums_near(ref_top_k(z, k) if k else z, p))
    probs = next_token_distribution(_as_tensor(row), temperature=temperature, top_k=k, top_p=p)
    expected = torch.tensor([ref_distribution(row, temperature, k, p)], dtype=torch.float64)
    torch.testing.assert_close(probs, expected, rtol=0, atol=1e-12)
    assert probs.dtype == torch.float64
    assert abs(probs.sum().item() - 1.0) < 1e-12


def test_top_p_applies_after_temperature() -> None:
    z = torch.tensor([[2.0, 1.0, 0.0]], dtype=torch.float64)  # probs .665 .245 .090
    at_1 = next_token_distribution(z, top_p=0.7)
    at_half = next_token_distribution(z, temperature=0.5, top_p=0.7)  # .867 .117 .016
    assert (at_1 > 0).tolist() == [[True, True, False]]
    assert (at_half > 0).tolist() == [[True, False, False]]  # top-p on the tempered probs


def test_top_p_applies_after_top_k_on_renormalized_probs() -> None:
    z = torch.tensor([[0.4, 0.3, 0.2, 0.1]], dtype=torch.float64).log()
    # top-k first: renormalized (4/7, 3/7); 4/7 >= 0.5 so top-p keeps one token.
    probs = next_token_distribution(z, top_k=2, top_p=0.5)
    torch.testing.assert_close(probs, torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64))
    # The other order (top-p on the full distribution keeps 0.4 + 0.3) would keep two.
    other = top_k_filter(top_p_filter(z, 0.5), 2)
    assert torch.isfinite(other).sum().item() == 2


def test_temperature_commutes_with_top_k_and_scales_logits() -> None:
    z = torch.randn(3, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for tau in (0.3, 2.0):
        assert torch.equal(
            torch.isfinite(top_k_filter(z / tau, 4)), torch.isfinite(top_k_filter(z, 4))
        )
        torch.testing.assert_close(
            next_token_distribution(z, temperature=tau), torch.softmax(z / tau, dim=-1)
        )


def test_temperature_zero_is_one_hot_argmax_and_greedy_sampling() -> None:
    z = torch.tensor([[0.5, 2.0, 2.0, -1.0], [3.0, 0.0, 1.0, 3.0]])
    probs = next_token_distribution(z, temperature=0)
    assert probs.tolist() == [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]  # lowest id on ties
    gen = torch.Generator().manual_seed(0)
    assert sample_next_token(z, temperature=0, top_k=2, top_p=0.1, generator=gen).tolist() == [1, 0]
    # a temperature so tiny that z / τ overflows to +inf gives the τ → 0 limit, not NaN; a row
    # of equal logits stays uniform (z / τ = 0), the limit for a tie of all tokens
    rows = torch.tensor([[0.5, 2.0, 1.0], [0.0, 0.0, 0.0]])
    tiny = next_token_distribution(rows, temperature=1e-40)
    torch.testing.assert_close(tiny, torch.tensor([[0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
    assert sample_next_token(rows[:1], temperature=1e-40).tolist() == [1]


def test_banned_tokens_at_minus_inf_stay_banned() -> None:
    z = torch.tensor([[1.0, -math.inf, 0.0, -math.inf]])
    probs = next_token_distribution(z, temperature=2.0, top_k=3)
    assert probs[0, 1] == 0 and probs[0, 3] == 0 and probs.sum().item() == pytest.approx(1.0)


# ---- sampling ------------------------------------------------------------------------------

N_DRAWS = 20_000


def _counts(samples: torch.Tensor, V: int) -> torch.Tensor:
    return torch.bincount(samples, minlength=V).double()


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p", "dtype"),
    [
        (1.0, None, None, torch.float64),
        (0.7, None, None, torch.float32),
        (1.3, 5, None, torch.float64),
        (1.0, None, 0.8, torch.float32),
        (0.8, 6, 0.9, torch.float64),
        (1.0, 4, 0.95, torch.bfloat16),
    ],
)
def test_samples_fit_the_distribution_chi_square(temperature, top_k, top_p, dtype) -> None:
    V = 10
    z = torch.randn(1, V, generator=torch.Generator().manual_seed(7)).to(dtype) * 1.5  # (1, V)
    kw = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    probs = next_token_distribution(z, **kw)[0].double()  # (V,)
    probs = probs / probs.sum()  # float32 sums are 1 to ~1e-7; chisquare wants equal totals
    gen = torch.Generator().manual_seed(11)
    samples = sample_next_token(z.expand(N_DRAWS, V), generator=gen, **kw)  # (N,)
    assert samples.dtype == torch.int64 and samples.shape == (N_DRAWS,)
    counts = _counts(samples, V)
    kept = probs > 0
    assert counts[~kept].sum() == 0, "sampled a token the filters removed"
    # Pearson's chi-square over the kept tokens, df = kept - 1. A correct sampler gives a
    # uniform p-value; with fixed seeds the number is fixed, and 1e-3 leaves a wide margin.
    _, p_value = stats.chisquare(counts[kept].numpy(), (N_DRAWS * probs[kept]).numpy())
    assert p_value > 1e-3, f"chi-square p = {p_value:.2e}"
    # The test has power: the same counts against the untempered distribution are rejected.
    if temperature != 1.0:
        wrong = next_token_distribution(z, top_k=top_k, top_p=top_p)[0].double()
        wrong = wrong / wrong.sum()
        if bool((wrong > 0).eq(kept).all()):
            _, p_wrong = stats.chisquare(counts[kept].numpy(), (N_DRAWS * wrong[kept]).numpy())
            assert p_wrong < 1e-6


def test_rows_follow_their_own_distributions() -> None:
    V = 6
    z = torch.randn(2, V, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = z.repeat(N_DRAWS // 2, 1)  # (N, V): rows alternate between two distributions
    samples = sample_next_token(z, top_k=4, generator=torch.Generator().manual_seed(5))
    for r in range(2):
        probs = next_token_distribution(z[r], top_k=4)
        counts = _counts(samples[r::2], V)
        kept = probs > 0
        assert counts[~kept].sum() == 0
        _, p_value = stats.chisquare(counts[kept].numpy(), (N_DRAWS // 2 * probs[kept]).numpy())
        assert p_value > 1e-3


def test_rows_of_one_call_are_independent() -> None:
    V = 4
    z = torch.tensor([[0.0, 0.5, 1.0, -0.5]]).expand(N_DRAWS, V)
    s = sample_next_token(z, generator=torch.Generator().manual_seed(9)).view(-1, 2)  # pairs
    table = torch.zeros(V, V)
    table.index_put_((s[:, 0], s[:, 1]), torch.ones(len(s)), accumulate=True)
    # chi-square test of independence between row 2i and row 2i+1
    assert stats.chi2_contingency(table.numpy()).pvalue > 1e-3
    # and it detects dependence: pairs (a, a) are far from independent
    same = torch.zeros(V, V)
    same.index_put_((s[:, 0], s[:, 0]), torch.ones(len(s)), accumulate=True)
    assert stats.chi2_contingency(same.numpy() + 1).pvalue < 1e-6


def test_seeded_generator_reproduces_and_leaves_global_rng_alone() -> None:
    z = torch.randn(500, 20, generator=torch.Generator().manual_seed(0))
    a = sample_next_token(z, top_p=0.9, generator=torch.Generator().manual_seed(42))
    state = torch.get_rng_state()
    b = sample_next_token(z, top_p=0.9, generator=torch.Generator().manual_seed(42))
    assert torch.equal(torch.get_rng_state(), state)
    c = sample_next_token(z, top_p=0.9, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_dtypes(dtype: torch.dtype) -> None:
    z = (torch.randn(3, 50, generator=torch.Generator().manual_seed(2)) * 3).to(dtype)
    assert top_k_filter(z, 5).dtype == dtype and top_p_filter(z, 0.5).dtype == dtype
    probs = next_token_distribution(z, temperature=0.9, top_k=20, top_p=0.9)
    assert probs.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    # the same rounded logits through the float64 reference
    for r in range(3):
        expected = ref_distribution(z[r].double().tolist(), 0.9, 20, 0.9)
        torch.testing.assert_close(
            probs[r].double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-6
        )
    s = sample_next_token(z, temperature=0.9, top_k=20, generator=torch.Generator().manual_seed(0))
    assert s.dtype == torch.int64 and bool((probs.gather(1, s[:, None]) > 0).all())


# ---- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"top_k": 2.5}, "top_k must be an integer >= 1"),
        ({"top_k": True}, "top_k must be an integer >= 1"),
        ({"top_p": 0.0}, r"top_p must be a number in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p must be a number in \(0, 1\]"),
        ({"top_p": float("nan")}, r"top_p must be a number in \(0, 1\]"),
        ({"temperature": -0.5}, "temperature must be a finite number >= 0"),
        ({"temperature": float("inf")}, "temperature must be a finite number >= 0"),
        ({"temperature": float("nan")}, "temperature must be a finite number >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    z = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=match):
        next_token_distribution(z, **kwargs)
    with pytest.raises(ValueError, match=match):
        sample_next_token(z, **kwargs)


def test_bad_logits() -> None:
    with pytest.raises(ValueError, match="NaN"):
        sample_next_token(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"\+inf"):
        top_p_filter(torch.tensor([0.0, math.inf]), 0.5)
    with pytest.raises(ValueError, match="all -inf"):
        next_token_distribution(torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]]))
    with pytest.raises(TypeError, match="floating-point"):
        top_k_filter(torch.tensor([1, 2, 3]), 1)
    with pytest.raises(ValueError, match=r"shape \(B, V\)"):
        sample_next_token(torch.zeros(5))
    with pytest.raises(ValueError, match=r"shape \(B, V\)"):
        sample_next_token(torch.zeros(2, 3, 5))
    with pytest.raises(ValueError, match=r"V >= 1"):
        top_k_filter(torch.zeros(3, 0), 1)
    with pytest.raises(ValueError, match=r"V >= 1"):
        next_token_distribution(torch.tensor(1.0))
