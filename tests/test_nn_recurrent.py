"""dlkit.nn's LSTM and GRU against torch.nn's with copied weights (float64): outputs,
final states and every gradient, over sizes, lengths, layers and layouts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlkit.nn.recurrent import GRU, LSTM, GRUCell, LSTMCell

CASES = [  # (input_size, hidden_size, seq_len, batch, num_layers, batch_first)
    (3, 5, 1, 2, 1, False),
    (4, 7, 6, 3, 1, True),
    (2, 4, 9, 1, 2, False),
    (5, 3, 12, 4, 2, True),
]


def _assert_grads_match(ours: nn.Module, theirs: nn.Module) -> None:
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs_params[name].grad, rtol=1e-10, atol=1e-12)


def _inputs(case: tuple, seed: int) -> torch.Tensor:
    d, _, t, b, _, batch_first = case
    gen = torch.Generator().manual_seed(seed)
    shape = (b, t, d) if batch_first else (t, b, d)
    return torch.randn(shape, generator=gen, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("case", CASES)
def test_lstm_matches_torch_forward_and_backward(case: tuple) -> None:
    d, h, _, b, layers, batch_first = case
    torch.manual_seed(0)
    ref = nn.LSTM(d, h, num_layers=layers, batch_first=batch_first).double()
    ours = LSTM(d, h, num_layers=layers, batch_first=batch_first).double()
    ours.load_state_dict(ref.state_dict())  # the same names and shapes
    x1 = _inputs(case, 1)
    x2 = x1.detach().clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(2)
    h0 = torch.randn(layers, b, h, generator=gen, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(layers, b, h, generator=gen, dtype=torch.float64, requires_grad=True)
    h0b, c0b = (s.detach().clone().requires_grad_(True) for s in (h0, c0))
    out_ref, (hn_ref, cn_ref) = ref(x1, (h0, c0))
    out, (hn, cn) = ours(x2, (h0b, c0b))
    for a, e in ((out, out_ref), (hn, hn_ref), (cn, cn_ref)):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    weights = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    ((out_ref * weights).sum() + hn_ref.square().sum() + cn_ref.sum()).backward()
    ((out * weights).sum() + hn.square().sum() + cn.sum()).backward()
    _assert_grads_match(ours, ref)
    for a, e in ((x2, x1), (h0b, h0), (c0b, c0)):
        torch.testing.assert_close(a.grad, e.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_gru_matches_torch_forward_and_backward(case: tuple) -> None:
    d, h, _, b, layers, batch_first = case
    torch.manual_seed(0)
    ref = nn.GRU(d, h, num_layers=layers, batch_first=batch_first).double()
    ours = GRU(d, h, num_layers=layers, batch_first=batch_first).double()
    ours.load_state_dict(ref.state_dict())
    x1 = _inputs(case, 3)
    x2 = x1.detach().clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(4)
    h0 = torch.randn(layers, b, h, generator=gen, dtype=torch.float64, requires_grad=True)
    h0b = h0.detach().clone().requires_grad_(True)
    out_ref, hn_ref = ref(x1, h0)
    out, hn = ours(x2, h0b)
    torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hn, hn_ref, rtol=1e-12, atol=1e-12)
    weights = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    ((out_ref * weights).sum() + hn_ref.square().sum()).backward()
    ((out * weights).sum() + hn.square().sum()).backward()
    _assert_grads_match(ours, ref)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h0b.grad, h0.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("ours_cls", "ref_cls"), [(LSTMCell, nn.LSTMCell), (GRUCell, nn.GRUCell)])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch_cells(ours_cls: type, ref_cls: type, bias: bool) -> None:
    torch.manual_seed(5)
    ref = ref_cls(6, 4, bias=bias).double()
    ours = ours_cls(6, 4, bias=bias).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 6, dtype=torch.float64)
    h = torch.randn(3, 4, dtype=torch.float64)
    state = (h, torch.randn(3, 4, dtype=torch.float64)) if ours_cls is LSTMCell else h
    out_ref, out = ref(x, state), ours(x, state)
    if ours_cls is LSTMCell:
        loss_ref, loss = (
            out_ref[0].sum() + out_ref[1].square().sum(),
            out[0].sum() + out[1].square().sum(),
        )
        for a, e in zip(out, out_ref, strict=True):
            torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    else:
        loss_ref, loss = out_ref.square().sum(), out.square().sum()
        torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
    loss_ref.backward()
    loss.backward()
    _assert_grads_match(ours, ref)
    # Zero initial state by default, as in PyTorch.
    default_ref, default = ref(x), ours(x)
    first = (lambda s: s[0]) if ours_cls is LSTMCell else (lambda s: s)
    torch.testing.assert_close(first(default), first(default_ref), rtol=1e-12, atol=1e-12)


def test_default_initial_state_and_initialisation_range() -> None:
    torch.manual_seed(0)
    lstm = LSTM(3, 8, num_layers=2).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    zeros = torch.zeros(2, 2, 8, dtype=torch.float64)
    out_default, _ = lstm(x)
    out_zeros, _ = lstm(x, (zeros, zeros))
    torch.testing.assert_close(out_default, out_zeros, rtol=0, atol=0)
    for p in lstm.parameters():
        assert p.abs().max() <= 8**-0.5 and p.std() > 0.1 * 8**-0.5
    assert set(dict(lstm.named_parameters())) == set(dict(nn.LSTM(3, 8, 2).named_parameters()))


def test_bad_shapes_raise_clear_errors() -> None:
    lstm, gru = LSTM(3, 4), GRU(3, 4, batch_first=True)
    with pytest.raises(ValueError, match=r"\(T, B, input_size=3\)"):
        lstm(torch.randn(5, 2, 7))
    with pytest.raises(ValueError, match=r"\(B, T, input_size=3\)"):
        gru(torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 2, 4\)"):
        lstm(torch.randn(5, 2, 3), (torch.zeros(1, 3, 4), torch.zeros(1, 2, 4)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 5, 4\)"):
        gru(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"\(B, input_size=3\)"):
        LSTMCell(3, 4)(torch.randn(2, 4))
    with pytest.raises(ValueError, match="c must have shape"):
        LSTMCell(3, 4)(torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 5)))
    with pytest.raises(ValueError, match="num_layers"):
        GRU(3, 4, num_layers=0)


def test_sample_next_follows_the_tempered_softmax() -> None:
    from dlkit.nn.char_lm import sample_next

    logits = torch.tensor([[1.0, 0.0, -2.0, 0.5]])
    assert sample_next(torch.tensor([[0.0, 3.0], [2.0, 1.0]]), 0.0).tolist() == [1, 0]
    for tau in (0.5, 1.0, 2.0):
        gen = torch.Generator().manual_seed(0)
        draws = sample_next(logits.repeat(40000, 1), tau, generator=gen)
        freq = torch.bincount(draws, minlength=4).double() / 40000
        expected = torch.softmax(logits[0].double() / tau, dim=0)
        assert (freq - expected).abs().max() < 0.012
    with pytest.raises(ValueError, match="temperature"):
        sample_next(logits, -1.0)
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        sample_next(logits[0], 1.0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_char_lm_shapes_state_and_reproducible_samples(cell: str) -> None:
    from dlkit.nn.char_lm import CharLM

    torch.manual_seed(0)
    model = CharLM(11, embed_dim=4, hidden_size=6, num_layers=2, cell=cell)
    ids = torch.randint(0, 11, (3, 5))
    logits, _ = model(ids)
    assert logits.shape == (3, 5, 11)
    # Reading the sequence in two pieces, carrying the state, gives the same logits.
    first, state1 = model(ids[:, :2])
    second, _ = model(ids[:, 2:], state1)
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits)
    prompt = torch.tensor([1, 2, 3])
    a = model.sample(prompt, 12, temperature=0.8, generator=torch.Generator().manual_seed(1))
    b = model.sample(prompt, 12, temperature=0.8, generator=torch.Generator().manual_seed(1))
    assert a.shape == (12,) and torch.equal(a, b) and model.training
    with pytest.raises(ValueError, match=r"int64 tensor of shape \(B, T\)"):
        model(ids.float())
    with pytest.raises(ValueError, match="cell must be one of"):
        CharLM(11, cell="transformer")  # type: ignore[arg-type]
