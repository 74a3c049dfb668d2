"""Position encodings: the sinusoidal table against its formula, the additive modules'
offsets and limits, and rotary embeddings' defining property: the score between a rotated
query at m and a rotated key at n depends only on m - n."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlkit.nn.positions import (
    LearnedPositions,
    NoPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    build_positions,
    sinusoidal_table,
)

F64 = torch.float64


@pytest.mark.parametrize(("max_len", "d_model"), [(7, 8), (5, 5), (3, 1), (50, 16)])
def test_sinusoidal_table_follows_the_formula(max_len: int, d_model: int) -> None:
    table = sinusoidal_table(max_len, d_model, dtype=F64)
    assert table.shape == (max_len, d_model)
    for p in range(max_len):
        for j in range(d_model):
            i = j // 2  # the pair (2i, 2i+1) shares one frequency
            angle = p / 10000 ** (2 * i / d_model)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(table[p, j].item() - expected) < 1e-12, (p, j)
    assert sinusoidal_table(4, 6).dtype == torch.get_default_dtype()


def test_sinusoidal_positions_add_the_table_from_the_offset() -> None:
    pos = SinusoidalPositions(8, 10)
    x = torch.randn(2, 4, 8)
    table = sinusoidal_table(10, 8)
    torch.testing.assert_close(pos(x), x + table[:4])
    torch.testing.assert_close(pos(x, offset=6), x + table[6:10])
    assert "pe" not in pos.state_dict()  # recomputed, not saved
    with pytest.raises(ValueError, match="max_len=10"):
        pos(x, offset=7)
    with pytest.raises(ValueError, match="max_len=10"):
        pos(torch.randn(1, 11, 8))
    with pytest.raises(ValueError, match=r"\(B, T, 8\)"):
        pos(torch.randn(2, 4, 6))


def test_learned_positions_are_an_embedding_that_learns() -> None:
    torch.manual_seed(0)
    pos = LearnedPositions(4, 6)
    x = torch.zeros(3, 2, 4)
    out = pos(x, offset=3)
    torch.testing.assert_close(out, pos.embedding.weight[3:5].expand(3, 2, 4))
    out.sum().backward()
    grad = pos.embedding.weight.grad
    assert torch.all(grad[3:5] == 3) and torch.all(grad[[0, 1, 2, 5]] == 0)  # 3 sequences
    assert list(pos.state_dict()) == ["embedding.weight"]
    with pytest.raises(ValueError, match="max_len=6"):
        pos(torch.zeros(1, 4, 4), offset=3)


def test_no_positions_is_the_identity() -> None:
    x = torch.randn(2, 3, 4)
    assert NoPositions()(x, offset=100) is x
    assert list(NoPositions().parameters()) == []


def test_build_positions_kinds() -> None:
    assert isinstance(build_positions("sinusoidal", 8, 16), SinusoidalPositions)
    assert isinstance(build_positions("learned", 8, 16), LearnedPositions)
    assert isinstance(build_positions("none", 8, 16), NoPositions)
    assert isinstance(build_positions("rope", 8, 16), NoPositions)  # applied in attention
    with pytest.raises(ValueError, match="unknown positions kind 'alibi'"):
        build_positions("alibi", 8, 16)


def _rotary_by_complex_numbers(
    x: torch.Tensor, positions: torch.Tensor, base: float
) -> torch.Tensor:
    """Independent oracle: pair (x_2i, x_2i+1) as x_2i + i x_2i+1, times exp(i p θ_i)."""
    hd = x.shape[-1]
    theta = torch.tensor([base ** (-2 * i / hd) for i in range(hd // 2)], dtype=F64)
    z = torch.complex(x[..., 0::2], x[..., 1::2])  # (..., T, hd/2)
    z = z * torch.polar(torch.ones_like(theta), positions[:, None].to(F64) * theta)
    return torch.stack((z.real, z.imag), dim=-1).flatten(-2)


@pytest.mark.parametrize("offset", [0, 5])
def test_rotary_is_a_rotation_of_each_pair(offset: int) -> None:
    rope = RotaryEmbedding(8, 20, base=100.0, dtype=F64)
    x = torch.randn(2, 3, 6, 8, dtype=F64)
    out = rope(x, offset=offset)
    positions = torch.arange(offset, offset + 6)
    torch.testing.assert_close(
        out, _rotary_by_complex_numbers(x, positions, 100.0), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), rtol=1e-12, atol=1e-12)
    if offset == 0:
        torch.testing.assert_close(out[:, :, 0], x[:, :, 0])  # position 0: no rotation


def test_rotary_offset_equals_slicing_a_longer_sequence() -> None:
    rope = RotaryEmbedding(4, 16, dtype=F64)
    x = torch.randn(1, 2, 10, 4, dtype=F64)
    full = rope(x)
    torch.testing.assert_close(rope(x[:, :, 7:], offset=7), full[:, :, 7:], rtol=0, atol=0)
    torch.testing.assert_close(rope(x[:, :, 3:4], offset=3), full[:, :, 3:4], rtol=0, atol=0)


@settings(max_examples=40, deadline=None)
@given(
    hd=st.sampled_from([2, 4, 8, 16]),
    diff=st.integers(-30, 30),
    starts=st.lists(st.integers(0, 60), min_size=2, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_rotary_score_depends_only_on_the_position_difference(
    hd: int, diff: int, starts: list[int], seed: int
) -> None:
    rope = RotaryEmbedding(hd, 100, dtype=F64)
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(hd, generator=gen, dtype=F64), torch.randn(hd, generator=gen, dtype=F64)

    def at(x: torch.Tensor, p: int) -> torch.Tensor:
        return rope(x[None, None, None, :], offset=p)[0, 0, 0]  # x rotated to position p

    reference = at(q, max(diff, 0)) @ at(k, max(-diff, 0))  # the pair closest to position 0
    for m in starts:
        n = m - diff
        if n >= 0:
            assert abs(at(q, m) @ at(k, n) - reference) < 1e-10, (m, n)


def test_rotary_score_changes_with_the_difference() -> None:
    rope = RotaryEmbedding(8, 32, dtype=F64)
    q = torch.randn(1, 1, 1, 8, dtype=F64, generator=torch.Generator().manual_seed(1))
    scores = [(rope(q, offset=m) * q).sum().item() for m in range(8)]  # <R_m q, R_0 q>
    assert len({round(s, 8) for s in scores}) == 8  # a real position signal


def test_rotary_errors() -> None:
    with pytest.raises(ValueError, match="even head_dim"):
        RotaryEmbedding(5, 10)
    rope = RotaryEmbedding(4, 10)
    with pytest.raises(ValueError, match="max_len=10"):
        rope(torch.randn(1, 1, 3, 4), offset=8)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 4\)"):
        rope(torch.randn(1, 1, 3, 6))
    assert rope.state_dict() == {}  # the tables are recomputed buffers
