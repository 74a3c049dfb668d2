"""The RNN chapter's measurements at tiny sizes: reproducible, clipping acts, training learns,
and (slow) the LSTM beats the vanilla RNN on the adding problem with the chapter's quick settings."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlkit.data.sequences import ADDING_BASELINE_MSE, sequence_splits
from dlkit.data.text import char_splits
from dlkit.nn.char_lm import CharLM
from dlkit.train.rnn_experiments import (
    LastStateRegressor,
    char_lm_loss,
    compare_cells,
    train_char_lm,
    train_sequence_regressor,
)


@pytest.fixture(scope="module")
def adding():
    return sequence_splits("adding", length=8, n_train=256, n_val=8, n_test=64, seed=0)


def test_runs_are_reproducible(adding) -> None:
    a = compare_cells(adding.train, adding.test, cells=("rnn", "gru"), hidden_size=8, steps=5)
    b = compare_cells(adding.train, adding.test, cells=("rnn", "gru"), hidden_size=8, steps=5)
    for cell in ("rnn", "gru"):
        assert a[cell].losses == b[cell].losses and a[cell].test_loss == b[cell].test_loss
        assert len(a[cell].losses) == len(a[cell].grad_norms) == 5
    assert a["rnn"].losses != a["gru"].losses


def test_clipping_keeps_sgd_finite_where_it_otherwise_explodes(adding) -> None:
    results = {}
    for clip in (None, 1.0):
        torch.manual_seed(0)
        model = LastStateRegressor("rnn", 2, 16)
        with torch.no_grad():
            q, _ = torch.linalg.qr(torch.randn(16, 16))
            model.rnn.weight_hh_l0.copy_(3.0 * q)  # singular values 3: exploding gradients
        results[clip] = train_sequence_regressor(
            model, adding.train, adding.test, steps=40, lr=0.3, clip=clip, optimizer="sgd"
        )
    assert not math.isfinite(results[None].test_loss)
    assert math.isfinite(results[1.0].test_loss) and max(results[1.0].grad_norms) > 1.0
    assert results[None].grad_norms[0] == pytest.approx(results[1.0].grad_norms[0])


def test_regressor_shapes_and_errors() -> None:
    model = LastStateRegressor("lstm", 3, 5, out_features=2)
    assert model(torch.randn(4, 7, 3)).shape == (4, 2)
    with pytest.raises(ValueError, match="cell must be one of"):
        LastStateRegressor("transformer", 3, 5)  # type: ignore[arg-type]


def test_char_lm_learns_the_text() -> None:
    text = "the cat sat on the mat. " * 40
    splits, vocab = char_splits(16, text=text, stride=4)
    torch.manual_seed(0)
    model = CharLM(vocab.size, embed_dim=8, hidden_size=32, cell="gru")
    before = char_lm_loss(model, splits.val)
    run = train_char_lm(model, splits.train, steps=60, batch_size=16, lr=1e-2)
    after = char_lm_loss(model, splits.val)
    assert before > math.log(vocab.size) - 0.5 and after < 0.5 * before
    gen = torch.Generator().manual_seed(0)
    sample = vocab.decode(
        model.sample(torch.from_numpy(vocab.encode("the ")), 20, temperature=0.5, generator=gen)
    )
    gen = torch.Generator().manual_seed(0)
    again = vocab.decode(
        model.sample(torch.from_numpy(vocab.encode("the ")), 20, temperature=0.5, generator=gen)
    )
    assert sample == again and len(sample) == 20
    assert run.losses[-1] < run.losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lstm_beats_vanilla_rnn_on_the_adding_problem(seed: int) -> None:
    # The chapter's quick-mode settings (07_rnn.ipynb, which uses seed 0): length 20, 300 steps.
    s = sequence_splits("adding", length=20, n_train=4000, n_val=100, n_test=500, seed=seed)
    results = compare_cells(s.train, s.test, hidden_size=32, steps=300, lr=1e-2, seed=seed)
    assert results["rnn"].test_loss > 0.8 * ADDING_BASELINE_MSE  # no better than the mean
    assert results["lstm"].test_loss < results["rnn"].test_loss / 3


def test_lstm_forget_gate_bias_starts_at_one() -> None:
    torch.manual_seed(0)
    model = LastStateRegressor("lstm", 2, 5)
    total = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0  # (4H,), gates i, f, g, o
    torch.testing.assert_close(total[5:10], torch.ones(5))
    assert not torch.allclose(total[:5], torch.ones(5))  # the other gates keep PyTorch's init
    torch.manual_seed(0)
    default = LastStateRegressor("lstm", 2, 5, forget_bias=None)
    torch.manual_seed(0)
    reference = nn.LSTM(2, 5, batch_first=True)
    torch.testing.assert_close(default.rnn.bias_hh_l0, reference.bias_hh_l0)
