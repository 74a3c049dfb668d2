"""dlkit.scratch.ngram against brute-force counting in plain Python: log-probabilities,
normalisation over the vocabulary, the first-token rule, and the error messages."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.scratch.ngram import BigramLM, UnigramLM


def _brute_unigram(train: list[int], vocab: int, alpha: float, b: int) -> float:
    return (train.count(b) + alpha) / (len(train) + alpha * vocab)


def _brute_bigram(train: list[int], vocab: int, alpha: float, a: int, b: int) -> float:
    pairs = list(itertools.pairwise(train))
    starting = sum(1 for p, _ in pairs if p == a)
    return (pairs.count((a, b)) + alpha) / (starting + alpha * vocab)


streams = st.integers(2, 9).flatmap(
    lambda v: st.tuples(
        st.just(v),
        st.lists(st.integers(0, v - 1), min_size=2, max_size=60),
        st.lists(st.integers(0, v - 1), min_size=1, max_size=20),
        st.sampled_from([0.01, 0.5, 1.0, 2.0]),
    )
)


@settings(max_examples=60, deadline=None)
@given(streams)
def test_unigram_log_prob_matches_brute_force(case) -> None:
    vocab, train, test, alpha = case
    model = UnigramLM(vocab, alpha).fit(np.array(train, dtype=np.uint16))
    expected = [math.log(_brute_unigram(train, vocab, alpha, b)) for b in test]
    np.testing.assert_allclose(model.log_prob(test), expected, rtol=1e-12)
    assert model.mean_nll(test) == pytest.approx(-sum(expected) / len(expected), rel=1e-12)
    assert model.probs().sum() == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(streams)
def test_bigram_log_prob_matches_brute_force(case) -> None:
    vocab, train, test, alpha = case
    model = BigramLM(vocab, alpha).fit(np.array(train, dtype=np.uint16))
    first = math.log(_brute_unigram(train, vocab, alpha, test[0]))  # no predecessor
    rest = [math.log(_brute_bigram(train, vocab, alpha, a, b)) for a, b in itertools.pairwise(test)]
    expected = [first, *rest]
    np.testing.assert_allclose(model.log_prob(test), expected, rtol=1e-12)
    assert model.mean_nll(test) == pytest.approx(-sum(expected) / len(expected), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(streams)
def test_bigram_rows_are_distributions(case) -> None:
    vocab, train, _, alpha = case
    model = BigramLM(vocab, alpha).fit(train)
    for a in range(vocab):  # also for a token never seen as a predecessor (uniform row)
        probs = model.next_token_probs(a)
        assert probs.shape == (vocab,)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        assert (probs > 0).all()
        expected = [_brute_bigram(train, vocab, alpha, a, b) for b in range(vocab)]
        np.testing.assert_allclose(probs, expected, rtol=1e-12)


def test_worked_example_by_hand() -> None:
    # train = 0 1 0 1 2: pairs (0,1) twice, (1,0), (1,2); counts c(0)=2, c(1)=2, c(2)=1.
    train = [0, 1, 0, 1, 2]
    uni = UnigramLM(3, alpha=1.0).fit(train)
    np.testing.assert_allclose(uni.probs(), [3 / 8, 3 / 8, 2 / 8])
    bi = BigramLM(3, alpha=1.0).fit(train)
    np.testing.assert_allclose(bi.next_token_probs(0), [1 / 5, 3 / 5, 1 / 5])  # c(0,.) = 2
    np.testing.assert_allclose(bi.next_token_probs(1), [2 / 5, 1 / 5, 2 / 5])
    np.testing.assert_allclose(bi.next_token_probs(2), [1 / 3, 1 / 3, 1 / 3])  # never a predecessor
    # score 0 1 2: p_uni(0) * p(1|0) * p(2|1)
    np.testing.assert_allclose(bi.log_prob([0, 1, 2]), np.log([3 / 8, 3 / 5, 2 / 5]))


def test_bigram_beats_unigram_on_a_predictable_stream() -> None:
    rng = np.random.default_rng(0)
    vocab = 50
    stream = np.cumsum(rng.integers(1, 3, size=5000)) % vocab  # next = prev + 1 or + 2
    train, test = stream[:4000], stream[4000:]
    uni = UnigramLM(vocab).fit(train).mean_nll(test)
    bi = BigramLM(vocab, alpha=0.01).fit(train).mean_nll(test)
    assert uni == pytest.approx(math.log(vocab), rel=0.02)  # near-uniform marginals
    assert bi < 0.75  # about ln 2 = 0.69: two equally likely successors


def test_large_vocab_pairs_do_not_overflow() -> None:
    vocab = 60_000  # a * V + b exceeds uint16 and int32 range
    train = np.array([59_999, 59_998, 59_999, 59_998], dtype=np.uint16)
    bi = BigramLM(vocab, alpha=1.0).fit(train)
    assert bi.pair_count(np.array([59_999]), np.array([59_998]))[0] == 2
    assert bi.log_prob(np.array([59_999, 59_998], dtype=np.uint16))[1] == pytest.approx(
        math.log(3 / (2 + vocab))
    )


@pytest.mark.parametrize("model", [UnigramLM(4), BigramLM(4)])
def test_errors_name_what_was_expected(model) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        model.log_prob([0, 1])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        model.fit([0, 1, 4])
    with pytest.raises(ValueError, match="1-D"):
        model.fit(np.zeros((2, 2), dtype=int))
    with pytest.raises(TypeError, match="integers"):
        model.fit(np.array([0.0, 1.0]))
    model.fit([0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"got values in \[-1, 1\]"):
        model.log_prob([-1, 1])
    with pytest.raises(ValueError, match="at least 1"):
        model.mean_nll([])


@pytest.mark.parametrize("cls", [UnigramLM, BigramLM])
def test_constructor_validation(cls) -> None:
    with pytest.raises(ValueError, match="alpha must be"):
        cls(4, alpha=0.0)
    with pytest.raises(ValueError, match="alpha must be"):
        cls(4, alpha=float("nan"))
    with pytest.raises(ValueError, match="vocab_size must be >= 1"):
        cls(0)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        cls(4.0)


def test_bigram_needs_two_training_tokens() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        BigramLM(3).fit([1])


def test_counts_match_counter() -> None:
    rng = np.random.default_rng(1)
    train = rng.integers(0, 7, size=300)
    bi = BigramLM(7).fit(train)
    pairs = Counter(itertools.pairwise(train.tolist()))
    assert bi.pair_keys is not None and bi.pair_counts is not None
    ours = {divmod(int(k), 7): int(c) for k, c in zip(bi.pair_keys, bi.pair_counts, strict=True)}
    assert ours == dict(pairs)
