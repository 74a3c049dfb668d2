"""MLM masking: the 15% / 80-10-10 statistics, special ids and padding never selected, the
labels, uniform random replacements, reproducibility and argument checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dlkit.data.masking import IGNORE_INDEX, mask_tokens

V = 100
SPECIAL = (0, 5, 50, 99)  # spread over the vocabulary, not just a block at the end
MASK = 99
PLAIN = [i for i in range(V) if i not in SPECIAL]


def _ids(shape: tuple[int, int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, shape, generator=g)  # about 4% special ids


def _mask(ids: torch.Tensor, seed: int = 1, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    kw = {"mask_id": MASK, "vocab_size": V, "special_ids": SPECIAL, **kw}
    return mask_tokens(ids, generator=torch.Generator().manual_seed(seed), **kw)


@pytest.fixture(scope="module")
def big() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = _ids((128, 512))  # 65,536 positions
    inputs, labels = _mask(ids)
    return ids, inputs, labels


def test_fifteen_percent_of_eligible_positions_are_selected(big) -> None:
    ids, _, labels = big
    eligible = ~torch.isin(ids, torch.tensor(SPECIAL))
    selected = labels != IGNORE_INDEX
    assert not (selected & ~eligible).any()  # special ids are never selected
    share = selected.sum().item() / eligible.sum().item()
    assert abs(share - 0.15) < 0.01, share


def test_eighty_ten_ten_among_selected(big) -> None:
    ids, inputs, labels = big
    sel = labels != IGNORE_INDEX
    n = sel.sum().item()
    masked = (inputs[sel] == MASK).sum().item() / n
    kept = (inputs[sel] == ids[sel]).sum().item() / n  # 10% + random draws that hit x_i
    random = 1.0 - masked - kept
    assert abs(masked - 0.80) < 0.02 and abs(random - 0.10) < 0.02 and abs(kept - 0.10) < 0.02


def test_labels_are_the_original_ids_exactly_where_selected(big) -> None:
    ids, inputs, labels = big
    sel = labels != IGNORE_INDEX
    assert labels.dtype == inputs.dtype == torch.int64 and labels.shape == ids.shape
    assert torch.equal(labels[sel], ids[sel])
    assert (labels[~sel] == IGNORE_INDEX).all()
    assert torch.equal(inputs[~sel], ids[~sel])  # unselected (incl. special) positions unchanged
    changed = inputs != ids
    assert not (changed & ~sel).any()  # only selected positions ever change


def test_random_replacements_are_never_special(big) -> None:
    ids, inputs, labels = big
    sel = labels != IGNORE_INDEX
    replaced = inputs[sel & (inputs != MASK) & (inputs != ids)]
    assert replaced.numel() > 500
    assert not torch.isin(replaced, torch.tensor(SPECIAL)).any()


def test_random_replacements_are_uniform_over_non_special_ids() -> None:
    ids = _ids((128, 512), seed=3)
    inputs, labels = _mask(ids, mask_frac=0.0, random_frac=1.0)  # every selection is random
    drawn = inputs[labels != IGNORE_INDEX]  # about 9,400 draws over 96 ids
    counts = torch.bincount(drawn, minlength=V)
    assert counts[list(SPECIAL)].sum() == 0
    observed = counts[PLAIN].numpy()
    _, p_value = stats.chisquare(observed)  # uniform expectation
    assert p_value > 1e-3, p_value


def test_ids_are_not_modified_and_results_are_reproducible() -> None:
    ids = _ids((4, 64))
    before = ids.clone()
    a = _mask(ids, seed=7)
    b = _mask(ids, seed=7)
    c = _mask(ids, seed=8)
    assert torch.equal(ids, before)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    torch.manual_seed(5)
    d = mask_tokens(ids, mask_id=MASK, vocab_size=V, special_ids=SPECIAL)
    torch.manual_seed(5)
    e = mask_tokens(ids, mask_id=MASK, vocab_size=V, special_ids=SPECIAL)
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])  # the global RNG without one


def test_mask_id_counts_as_special_even_if_not_listed() -> None:
    ids = torch.full((8, 256), MASK)
    ids[:, ::2] = 7
    inputs, labels = mask_tokens(
        ids, mask_id=MASK, vocab_size=V, mask_frac=0.0, random_frac=1.0, select_prob=1.0,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert (labels[:, 1::2] == IGNORE_INDEX).all()  # [MASK] in the input is never selected
    assert (labels[:, ::2] == 7).all()
    assert not (inputs[:, ::2] == MASK).any()  # nor drawn as a random replacement


def test_padding_positions_are_never_selected() -> None:
    ids = _ids((16, 128))
    pad = torch.zeros_like(ids, dtype=torch.bool)
    pad[:, 100:] = True
    inputs, labels = _mask(ids, select_prob=1.0, key_padding_mask=pad)
    assert (labels[pad] == IGNORE_INDEX).all() and torch.equal(inputs[pad], ids[pad])
    real = ~pad & ~torch.isin(ids, torch.tensor(SPECIAL))
    assert (labels[real] != IGNORE_INDEX).all()  # select_prob=1: every eligible one


def test_extreme_fractions() -> None:
    ids = _ids((8, 64))
    inputs, labels = _mask(ids, select_prob=0.0)
    assert (labels == IGNORE_INDEX).all() and torch.equal(inputs, ids)
    inputs, labels = _mask(ids, select_prob=1.0, mask_frac=1.0, random_frac=0.0)
    eligible = ~torch.isin(ids, torch.tensor(SPECIAL))
    assert (inputs[eligible] == MASK).all() and torch.equal(labels[eligible], ids[eligible])
    inputs, labels = _mask(ids, select_prob=1.0, mask_frac=0.0, random_frac=0.0)
    assert torch.equal(inputs, ids) and torch.equal(labels[eligible], ids[eligible])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cpu_generator_gives_the_same_masks_on_the_gpu() -> None:
    ids = _ids((8, 64))
    cpu = _mask(ids, seed=3)
    gpu = _mask(ids.cuda(), seed=3)
    assert gpu[0].is_cuda and gpu[1].is_cuda
    assert torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())


@settings(max_examples=40, deadline=None)
@given(
    B=st.integers(1, 4),
    T=st.integers(1, 40),
    vocab=st.integers(3, 30),
    data=st.data(),
)
def test_invariants_hold_for_any_shape_and_special_set(B, T, vocab, data) -> None:
    special = data.draw(st.sets(st.integers(0, vocab - 1), max_size=vocab - 2))
    mask_id = data.draw(st.integers(0, vocab - 1))
    p = data.draw(st.floats(0.0, 1.0))
    m = data.draw(st.floats(0.0, 1.0))
    q = data.draw(st.floats(0.0, 1.0 - m))
    seed = data.draw(st.integers(0, 2**31))
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (B, T), generator=g)
    inputs, labels = mask_tokens(
        ids, mask_id=mask_id, vocab_size=vocab, special_ids=special, select_prob=p,
        mask_frac=m, random_frac=q, generator=g,
    )  # fmt: skip
    banned = torch.tensor(sorted(special | {mask_id}))
    sel = labels != IGNORE_INDEX
    assert inputs.shape == labels.shape == ids.shape
    assert not (sel & torch.isin(ids, banned)).any()
    assert torch.equal(labels[sel], ids[sel]) and torch.equal(inputs[~sel], ids[~sel])
    other = sel & (inputs != ids) & (inputs != mask_id)  # random replacements
    assert not torch.isin(inputs[other], banned).any()
    assert ((inputs >= 0) & (inputs < vocab)).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"select_prob": 1.5}, ValueError, r"select_prob must lie in \[0, 1\], got 1.5"),
        ({"mask_frac": -0.1}, ValueError, r"mask_frac must lie in \[0, 1\], got -0.1"),
        ({"random_frac": float("nan")}, ValueError, r"random_frac must lie in \[0, 1\]"),
        ({"mask_frac": 0.8, "random_frac": 0.3}, ValueError, r"random_frac must be <= 1"),
        ({"select_prob": True}, TypeError, "select_prob must be a number"),
        ({"select_prob": "0.15"}, TypeError, "select_prob must be a number"),
        ({"mask_id": 100}, ValueError, r"mask_id=100 is outside \[0, vocab_size=100\)"),
        ({"mask_id": -1}, ValueError, "mask_id=-1 is outside"),
        ({"mask_id": 2.0}, TypeError, "mask_id must be an int, got float"),
        ({"vocab_size": 0}, ValueError, "vocab_size must be >= 1, got 0"),
        ({"vocab_size": 50}, ValueError, r"mask_id=99 is outside \[0, vocab_size=50\)"),
        ({"special_ids": (3, 100)}, ValueError, r"special id 100 is outside the vocabulary"),
        ({"special_ids": tuple(range(99))}, ValueError, "every id in \\[0, 100\\) is special"),
        ({"generator": 3}, TypeError, "generator must be a torch.Generator, got int"),
        ({"key_padding_mask": torch.zeros(2, 3)}, ValueError, "key_padding_mask must be a bool"),
        (
            {"key_padding_mask": torch.zeros(2, 4, dtype=torch.bool)},
            ValueError,
            r"shape \(2, 3\) \(True = padding\), got torch.bool \(2, 4\)",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message) -> None:
    args = {"mask_id": MASK, "vocab_size": V, "special_ids": SPECIAL, **kwargs}
    with pytest.raises(error, match=message):
        mask_tokens(torch.ones(2, 3, dtype=torch.long), **args)


@pytest.mark.parametrize(
    ("ids", "error", "message"),
    [
        (torch.ones(2, 3, dtype=torch.int32), TypeError, "tensor, got torch.int32"),
        (torch.ones(2, 3), TypeError, "int64 \\(long\\) tensor, got torch.float32"),
        ([[1, 2]], TypeError, "ids must be a torch.Tensor, got list"),
        (torch.ones(6, dtype=torch.long), ValueError, r"shape \(B, T\), got \(6,\)"),
        (torch.ones(1, 2, 3, dtype=torch.long), ValueError, r"shape \(B, T\), got \(1, 2, 3\)"),
        (torch.tensor([[1, 100]]), ValueError, r"ids must lie in \[0, vocab_size=100\), got 100"),
        (torch.tensor([[-3, 1]]), ValueError, r"ids must lie in \[0, vocab_size=100\), got -3"),
    ],
)
def test_bad_ids_are_named(ids, error, message) -> None:
    with pytest.raises(error, match=message):
        mask_tokens(ids, mask_id=MASK, vocab_size=V, special_ids=SPECIAL)
