"""Nearest tokens by cosine: checked against torch's cosine_similarity and a brute-force
ranking, on hand-made embeddings whose neighbours are known, and on real models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.nn.transformer import DecoderOnlyLM
from dlkit.nn.transformer_blocks import TransformerStackConfig
from dlkit.text import BPETokenizer, train_bpe
from dlkit.train.embedding_neighbours import (
    NeighbourRow,
    format_neighbours_table,
    nearest_tokens,
    token_embedding,
    token_label,
    token_neighbours_table,
)

TEXT = "def return(x):\n\treturn x  # the cat sat on the mat\n" * 30


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return train_bpe(TEXT, 256 + 20, special_tokens=["<|endoftext|>"])


def test_known_neighbours_and_exclusion_of_the_token_itself() -> None:
    E = torch.tensor(
        [[1.0, 0.0], [10.0, 0.5], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7], [0.0, 0.0]]
    )  # (6, 2); row 5 is a zero (padding) row
    got = nearest_tokens(E, 0, k=5)
    assert [i for i, _ in got] == [1, 4, 2, 5, 3]  # length does not matter, only the angle
    cos = [c for _, c in got]
    np.testing.assert_allclose(cos, [10 / np.hypot(10, 0.5), 0.5**0.5, 0.0, 0.0, -1.0], atol=1e-12)
    assert 0 not in [i for i, _ in nearest_tokens(E, 0, k=5)]
    # equal cosines (rows 2 and 5 both 0) come in increasing id; a zero row gives 0, not NaN
    assert got[2][0] < got[3][0]


@settings(max_examples=40, deadline=None)
@given(
    V=st.integers(2, 30),
    C=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    data=st.data(),
)
def test_matches_torch_cosine_similarity_and_brute_force(V, C, seed, data) -> None:
    E = torch.randn(V, C, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    token = data.draw(st.integers(0, V - 1))
    k = data.draw(st.integers(1, V - 1))
    got = nearest_tokens(E, token, k)
    reference = F.cosine_similarity(E, E[token][None], dim=1)  # (V,)
    ranked = sorted((i for i in range(V) if i != token), key=lambda i: (-float(reference[i]), i))
    assert [i for i, _ in got] == ranked[:k]
    np.testing.assert_allclose([c for _, c in got], reference[ranked[:k]].numpy(), atol=1e-12)
    assert all(a >= b for (_, a), (_, b) in itertools.pairwise(got))


def test_float32_numpy_input_is_ranked_in_float64() -> None:
    E = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    got = nearest_tokens(E, 7, k=3)
    E64 = torch.from_numpy(E).double()
    reference = F.cosine_similarity(E64, E64[7][None], dim=1)
    reference[7] = -2.0
    assert [i for i, _ in got] == torch.topk(reference, 3).indices.tolist()


def test_bad_arguments() -> None:
    E = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"token_id must lie in \[0, 5\)"):
        nearest_tokens(E, 5)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, V - 1\] = \[1, 4\]"):
        nearest_tokens(E, 0, k=5)
    with pytest.raises(ValueError, match="k must be"):
        nearest_tokens(E, 0, k=0)
    with pytest.raises(ValueError, match=r"\(V, C\) matrix, got shape \(5,\)"):
        nearest_tokens(torch.randn(5), 0)
    with pytest.raises(ValueError, match="floating-point"):
        nearest_tokens(torch.ones(5, 3, dtype=torch.long), 0)
    with pytest.raises(TypeError, match="got list"):
        nearest_tokens([[1.0, 2.0]], 0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        nearest_tokens(torch.tensor([[1.0, float("nan")], [1.0, 0.0]]), 0, k=1)
    with pytest.raises(ValueError, match="all zeros"):
        nearest_tokens(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), 0, k=1)


def test_token_labels_are_readable_and_unambiguous(tokenizer: BPETokenizer) -> None:
    plain = BPETokenizer([], special_tokens=["<|endoftext|>"])
    assert [token_label(plain, b) for b in b" \n\t\r\\a$"] == [
        "␣", "\\n", "\\t", "\\r", "\\\\", "a", "$"
    ]  # fmt: skip
    assert token_label(plain, 0x07) == "\\x07"  # a control character
    assert token_label(plain, 0xE4) == "\\xe4"  # part of a multi-byte character
    assert token_label(plain, 256) == "<|endoftext|>"
    for token_id in range(tokenizer.vocab_size):
        label = token_label(tokenizer, token_id)
        assert label and " " not in label and "\n" not in label
    assert token_label(tokenizer, tokenizer.encode(" the")[0]) == "␣the"


def test_token_embedding_finds_the_models_table(tokenizer: BPETokenizer) -> None:
    config = TransformerStackConfig(d_model=8, n_heads=2, n_layers=1, d_ff=16, max_len=16)
    torch.manual_seed(0)
    lm = DecoderOnlyLM(config, tokenizer.vocab_size)
    torch.testing.assert_close(
        token_embedding(lm, tokenizer.vocab_size), lm.decoder.embed.tok_emb.weight
    )
    emb = torch.nn.Embedding(tokenizer.vocab_size, 4)
    torch.testing.assert_close(token_embedding(emb), emb.weight.detach())
    with pytest.raises(ValueError, match="no embedding layer with 7 rows"):
        token_embedding(lm, 7)
    with pytest.raises(ValueError, match="the tokenizer 9 tokens"):
        token_embedding(torch.randn(8, 3), 9)


def test_neighbours_table_rows(tokenizer: BPETokenizer) -> None:
    V = tokenizer.vocab_size
    E = torch.randn(V, 6, generator=torch.Generator().manual_seed(1))
    the = tokenizer.encode(" the")[0]
    rows = token_neighbours_table(E, tokenizer, [" the", 65], k=3)
    assert [r.token_id for r in rows] == [the, 65] and rows[1].token == "A"
    for row in rows:
        assert isinstance(row, NeighbourRow)
        expected = nearest_tokens(E, row.token_id, 3)
        assert [(i, c) for i, _, c in row.neighbours] == expected
        assert [label for _, label, _ in row.neighbours] == [
            token_label(tokenizer, i) for i, _ in expected
        ]
    first = rows[0]
    assert str(first).startswith("␣the → ")
    assert f"{first.neighbours[0][1]} ({first.neighbours[0][2]:.2f})" in str(first)
    lines = format_neighbours_table(rows).splitlines()
    assert len(lines) == 2 and lines[0].index("→") == lines[1].index("→")
    with pytest.raises(ValueError, match=r"'the cat' is \d+ tokens"):
        token_neighbours_table(E, tokenizer, ["the cat"])
