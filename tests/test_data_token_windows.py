"""Token windows: the (x, y) shift, full random batches, seeding, exact evaluation coverage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dlkit.data.corpus import load_tokens
from dlkit.data.token_windows import (
    EvalWindows,
    TokenWindows,
    eval_windows,
    random_window_loader,
)


def test_windows_are_the_array_shifted_by_one() -> None:
    tokens = np.random.default_rng(0).integers(0, 2048, size=50).astype(np.uint16)
    ds = TokenWindows(tokens, 8)
    assert len(ds) == 50 - 8
    for i in (0, 17, len(ds) - 1, -1):
        x, y = ds[i]
        start = i % len(ds)
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape == (8,)
        assert x.tolist() == tokens[start : start + 8].tolist()
        assert y.tolist() == tokens[start + 1 : start + 9].tolist()
        assert torch.equal(y[:-1], x[1:])  # y_t = x_{t+1}
    with pytest.raises(IndexError, match="window 42 out of range for 42"):
        ds[42]


def test_windows_do_not_copy_the_memmap() -> None:
    tokens = load_tokens("val")
    ds = TokenWindows(tokens, 64)
    assert ds.tokens is tokens or np.shares_memory(ds.tokens, tokens)
    x, y = ds[1000]
    assert x.tolist() == tokens[1000:1064].tolist() and y[-1].item() == int(tokens[1064])


def test_windows_accept_tensors_and_lists() -> None:
    for tokens in (torch.arange(10), list(range(10)), np.arange(10, dtype=np.int32)):
        x, y = TokenWindows(tokens, 3)[2]
        assert x.tolist() == [2, 3, 4] and y.tolist() == [3, 4, 5]


@pytest.mark.parametrize(
    ("tokens", "context", "error", "message"),
    [
        (np.zeros((4, 5), dtype=np.int64), 2, ValueError, r"1-D .* shape \(4, 5\)"),
        (np.zeros(10, dtype=np.float32), 2, TypeError, "integer dtype, got float32"),
        (np.zeros(10, dtype=bool), 2, TypeError, "integer dtype, got bool"),
        (np.arange(5), 5, ValueError, "more than context = 5 tokens .* got 5"),
        (np.arange(5), 0, ValueError, "context must be >= 1, got 0"),
        (np.arange(5), 2.0, TypeError, "context must be an int, got float"),
        (np.arange(5), True, TypeError, "context must be an int, got bool"),
    ],
)
def test_bad_input_is_a_clear_error(tokens, context, error, message) -> None:
    with pytest.raises(error, match=message):
        TokenWindows(tokens, context)
    with pytest.raises(error, match=message):
        random_window_loader(tokens, context, 2, 2, seed=0)
    if "more than context" not in message:
        with pytest.raises(error, match=message):
            eval_windows(tokens, context, 2)


def test_eval_windows_need_one_target_not_one_full_window() -> None:
    x, y = next(iter(eval_windows(np.arange(5), 8, 2)))  # shorter than the context: one window
    assert x.tolist() == [[0, 1, 2, 3]] and y.tolist() == [[1, 2, 3, 4]]
    with pytest.raises(ValueError, match=r"at least 2 tokens for one .* target, got 1"):
        eval_windows(np.arange(1), 8, 2)


def test_loader_arguments_are_checked() -> None:
    tokens = np.arange(20)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        random_window_loader(tokens, 4, 0, 3, seed=0)
    with pytest.raises(ValueError, match="num_batches must be >= 1, got 0"):
        random_window_loader(tokens, 4, 2, 0, seed=0)
    with pytest.raises(ValueError, match="seed or generator, not both"):
        random_window_loader(tokens, 4, 2, 3, seed=0, generator=torch.Generator())
    with pytest.raises(TypeError, match=r"torch\.Generator, got int"):
        random_window_loader(tokens, 4, 2, 3, generator=0)
    with pytest.raises(ValueError, match="max_tokens must be >= 1, got 0"):
        eval_windows(tokens, 4, 2, max_tokens=0)


def test_every_random_batch_is_full_even_with_few_windows() -> None:
    tokens = np.arange(100, 112, dtype=np.uint16)  # 12 tokens, context 9: only 3 windows
    loader = random_window_loader(tokens, 9, 5, 7, seed=1)
    batches = list(loader)
    assert len(loader) == len(batches) == 7
    for x, y in batches:
        assert x.shape == y.shape == (5, 9) and x.dtype == torch.int64
        starts = x[:, 0] - 100
        assert ((starts >= 0) & (starts < 3)).all()
        assert torch.equal(x, 100 + starts[:, None] + torch.arange(9))  # real windows
        assert torch.equal(y, x + 1)


def test_seeded_loader_is_reproducible_and_follows_its_generator() -> None:
    tokens = np.arange(1000)

    def starts(loader):
        return [x[:, 0].tolist() for x, _ in loader]

    first = starts(random_window_loader(tokens, 16, 4, 6, seed=3))
    assert first == starts(random_window_loader(tokens, 16, 4, 6, seed=3))
    assert first != starts(random_window_loader(tokens, 16, 4, 6, seed=4))
    loader = random_window_loader(tokens, 16, 4, 6, seed=3)
    assert starts(loader) == first
    assert starts(loader) != first  # the next "epoch" continues the generator
    loader.generator.manual_seed(3)  # what dlkit.train.Trainer does at each epoch
    assert starts(loader) == first
    generator = torch.Generator().manual_seed(3)
    assert starts(random_window_loader(tokens, 16, 4, 6, generator=generator)) == first
    torch.manual_seed(5)
    unseeded = starts(random_window_loader(tokens, 16, 4, 6))
    torch.manual_seed(5)
    assert starts(random_window_loader(tokens, 16, 4, 6)) == unseeded  # from the global RNG


def test_random_starts_are_uniform() -> None:
    tokens = np.arange(30)  # context 10: 20 windows
    loader = random_window_loader(tokens, 10, 50, 40, seed=0)  # 2,000 draws
    counts = np.bincount(torch.cat([x[:, 0] for x, _ in loader]).numpy(), minlength=20)
    assert counts.sum() == 2000 and len(counts) == 20 and counts.min() > 0
    assert stats.chisquare(counts).pvalue > 1e-3  # fixed seed: deterministic


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 80),
    context=st.integers(1, 12),
    batch_size=st.integers(1, 5),
    max_tokens=st.one_of(st.none(), st.integers(1, 100)),
)
def test_eval_windows_predict_every_target_exactly_once(n, context, batch_size, max_tokens):
    tokens = np.arange(n, dtype=np.uint16)
    loader = eval_windows(tokens, context, batch_size, max_tokens=max_tokens)
    m = n - 1 if max_tokens is None else min(max_tokens, n - 1)
    assert isinstance(loader, EvalWindows) and loader.n_targets == m
    batches = list(loader)
    assert len(batches) == len(loader)
    targets = torch.cat([y.reshape(-1) for _, y in batches])
    assert targets.tolist() == list(range(1, m + 1))  # each once, in order
    for k, (x, y) in enumerate(batches):
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape
        assert torch.equal(y, x + 1)  # the next token at every position
        assert 1 <= x.shape[0] <= batch_size
        if x.shape[1] != context:  # only the last batch: one short window
            assert k == len(batches) - 1 and x.shape == (1, m % context)
    assert list(loader) is not batches and len(list(loader)) == len(batches)  # re-iterable


def test_eval_windows_give_the_exact_token_weighted_loss() -> None:
    tokens = load_tokens("test")[:5000]
    rng = np.random.default_rng(0)
    log_p = np.log(rng.dirichlet(np.ones(2048), size=2048))  # a bigram "model": (V, V)
    direct = -log_p[tokens[:-1], tokens[1:]].mean()  # over all 4,999 targets
    total, count = 0.0, 0
    for x, y in eval_windows(tokens, 64, 8):
        total += -log_p[x.numpy(), y.numpy()].sum()
        count += y.numel()
    assert count == 4999
    np.testing.assert_allclose(total / count, direct, rtol=1e-12)
