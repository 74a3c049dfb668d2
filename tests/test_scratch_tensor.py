"""dlkit.scratch.Tensor against PyTorch (float64), forward and backward, and through gradcheck.

Every op runs on the same random inputs in both engines; the loss is ``sum(out * w)``
with random ``w``, so every output element's gradient is compared. Shapes are drawn by
hypothesis, broadcasting included.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

from dlkit.scratch import Tensor, assert_gradcheck, unbroadcast

FAST = settings(max_examples=30, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
PAIRS = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4)


def _inputs(shapes, seed, low=-2.0, high=2.0, away_from_zero=False) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(low, high, size=s) for s in shapes]
    if away_from_zero:  # keep |x| >= 0.5 for division, log, and relu's kink
        arrays = [np.where(np.abs(a) < 0.5, np.sign(a + 1e-12) * 0.5 + a, a) for a in arrays]
    return arrays


def compare_with_torch(
    ours: Callable[..., Tensor],
    theirs: Callable[..., torch.Tensor],
    arrays: list[np.ndarray],
    *,
    gradcheck: bool = True,
) -> None:
    """Forward values and input gradients of ``ours`` and ``theirs`` agree (float64)."""
    xs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, expected = ours(*xs), theirs(*ts)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert out.shape == tuple(expected.shape)
    w = np.random.default_rng(0).standard_normal(out.shape)
    (out * w).sum().backward()
    (expected * torch.from_numpy(w)).sum().backward()
    for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
        want = t.grad.numpy() if t.grad is not None else np.zeros_like(x.data)
        got = x.grad if x.grad is not None else np.zeros_like(x.data)
        assert got.shape == x.shape, f"gradient {i} has shape {got.shape}, input {x.shape}"
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"input {i}")
    if gradcheck:
        assert_gradcheck(ours, arrays, rtol=1e-5, atol=1e-6)


BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
}


@pytest.mark.parametrize("name", list(BINARY))
@FAST
@given(shapes=PAIRS, seed=SEEDS)
def test_binary_ops_broadcast(name, shapes, seed) -> None:
    ours, theirs = BINARY[name]
    arrays = _inputs(shapes.input_shapes, seed, away_from_zero=name == "div")
    compare_with_torch(ours, theirs, arrays)


UNARY = {
    "exp": (lambda a: a.exp(), torch.exp, {}),
    "log": (lambda a: a.log(), torch.log, {"low": 0.2, "high": 3.0}),
    "tanh": (lambda a: a.tanh(), torch.tanh, {}),
    "sigmoid": (lambda a: a.sigmoid(), torch.sigmoid, {"low": -8.0, "high": 8.0}),
    "relu": (lambda a: a.relu(), torch.relu, {"away_from_zero": True}),
    "neg": (lambda a: -a, lambda a: -a, {}),
    "square": (lambda a: a**2, lambda a: a**2, {}),
    "cube": (lambda a: a**3, lambda a: a**3, {}),
    "sqrt": (lambda a: a**0.5, torch.sqrt, {"low": 0.2, "high": 3.0}),
    "reciprocal": (lambda a: a**-1, torch.reciprocal, {"away_from_zero": True}),
    "scalar_ops": (
        lambda a: (2.0 - a) * 3 / (1.5 + a * a) + 1,
        lambda a: (2.0 - a) * 3 / (1.5 + a * a) + 1,
        {},
    ),
    "rdiv": (lambda a: 1.0 / a, lambda a: 1.0 / a, {"away_from_zero": True}),
}


@pytest.mark.parametrize("name", list(UNARY))
@FAST
@given(shape=array_shapes(min_dims=0, max_dims=3, max_side=4), seed=SEEDS)
def test_unary_ops(name, shape, seed) -> None:
    ours, theirs, kwargs = UNARY[name]
    compare_with_torch(ours, theirs, _inputs([shape], seed, **kwargs))


def test_sigmoid_is_stable_for_huge_inputs() -> None:
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    compare_with_torch(lambda a: a.sigmoid(), torch.sigmoid, [x], gradcheck=False)
    assert np.isfinite(Tensor(x).sigmoid().data).all()


@st.composite
def reduction_cases(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=3, max_side=4))
    axes = draw(
        st.lists(st.integers(-len(shape), len(shape) - 1), unique_by=lambda a: a % len(shape))
    )
    axis = None if not axes else (axes[0] if len(axes) == 1 else tuple(axes))
    return shape, axis, draw(st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean"])
@FAST
@given(case=reduction_cases(), seed=SEEDS)
def test_reductions(name, case, seed) -> None:
    shape, axis, keepdims = case

    def ours(a):
        return getattr(a, name)(axis=axis, keepdims=keepdims)

    def theirs(a):
        dim = tuple(range(a.ndim)) if axis is None else axis
        return getattr(torch, name)(a, dim=dim, keepdim=keepdims)

    compare_with_torch(ours, theirs, _inputs([shape], seed))


@st.composite
def matmul_shapes(draw):
    n, m, p = (draw(st.integers(1, 4)) for _ in range(3))
    kind = draw(st.sampled_from(["mm", "vm", "mv", "vv", "batched", "broadcast_batch"]))
    if kind == "mm":
        return (n, m), (m, p)
    if kind == "vm":
        return (m,), (m, p)
    if kind == "mv":
        return (n, m), (m,)
    if kind == "vv":
        return (m,), (m,)
    if kind == "batched":
        b = draw(st.integers(1, 3))
        return (b, n, m), (b, m, p)
    b = draw(st.integers(2, 3))
    return (b, 1, n, m), (3, m, p)  # batch axes (b, 1) and (3,) broadcast to (b, 3)


@FAST
@given(shapes=matmul_shapes(), seed=SEEDS)
def test_matmul(shapes, seed) -> None:
    compare_with_torch(lambda a, b: a @ b, torch.matmul, _inputs(shapes, seed))


@FAST
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=3), seed=SEEDS, data=st.data())
def test_reshape_and_transpose(shape, seed, data) -> None:
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    compare_with_torch(
        lambda a: a.transpose(perm), lambda a: a.permute(perm), _inputs([shape], seed)
    )
    compare_with_torch(
        lambda a: a.T * 2, lambda a: a.permute(*reversed(range(a.ndim))) * 2, _inputs([shape], seed)
    )
    compare_with_torch(lambda a: a.reshape(-1), lambda a: a.reshape(-1), _inputs([shape], seed))
    new = (shape[0], -1)
    compare_with_torch(lambda a: a.reshape(new), lambda a: a.reshape(new), _inputs([shape], seed))


INDICES = [
    (1,),
    (slice(1, 3),),
    (slice(None), 0),
    (Ellipsis, slice(0, 3, 2)),
    (None, 2),
    (np.array([0, 2, 2, 1]),),  # repeated rows: their gradients add up
    (np.arange(4), np.array([1, 0, 2, 2])),  # cross-entropy style picking
    (np.array([True, False, True, True]),),
]


@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_indexing(index) -> None:
    def theirs(a):
        return a[tuple(torch.from_numpy(i) if isinstance(i, np.ndarray) else i for i in index)]

    compare_with_torch(lambda a: a[index], theirs, _inputs([(4, 3)], 7))


def test_indexing_with_a_tensor_of_integers() -> None:
    x = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    picked = x[Tensor(np.array([2, 2, 0]))]
    picked.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1, 1], [0, 0], [2, 2]])


def test_numpy_array_on_the_left_uses_the_tensor_op() -> None:
    x = Tensor(np.ones(3), requires_grad=True)
    out = np.array([1.0, 2.0, 3.0]) * x + np.ones(3)
    assert isinstance(out, Tensor)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0, 3.0])


def test_two_layer_network_matches_torch() -> None:
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in [(5, 4), (4, 6), (6,), (6, 3), (3,)]]

    def ours(x, w1, b1, w2, b2):
        h = (x @ w1 + b1).tanh()
        return ((h @ w2 + b2).sigmoid() ** 2).mean(axis=0)

    def theirs(x, w1, b1, w2, b2):
        h = torch.tanh(x @ w1 + b1)
        return (torch.sigmoid(h @ w2 + b2) ** 2).mean(dim=0)

    compare_with_torch(ours, theirs, arrays)


# ---- unbroadcast -------------------------------------------------------------------------------


@FAST
@given(shapes=PAIRS, seed=SEEDS)
def test_unbroadcast_sums_over_broadcast_axes(shapes, seed) -> None:
    shape, _ = shapes.input_shapes
    grad = np.random.default_rng(seed).standard_normal(shapes.result_shape)
    # torch's own broadcasting backward: expand shape to the result, take the gradient.
    t = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    (t.expand(shapes.result_shape) * torch.from_numpy(grad)).sum().backward()
    np.testing.assert_allclose(unbroadcast(grad, shape), t.grad.numpy(), rtol=1e-12)


def test_unbroadcast_returns_the_same_array_when_nothing_was_broadcast() -> None:
    grad = np.ones((2, 3))
    assert unbroadcast(grad, (2, 3)) is grad


# ---- graph semantics ---------------------------------------------------------------------------


def test_reused_node_sums_gradients_from_every_use() -> None:
    x = Tensor(np.array([1.5, -2.0]), requires_grad=True)
    y = x * x + x  # d/dx = 2x + 1
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)


def test_backward_accumulates_until_zero_grad() -> None:
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    h = (x * 2).retain_grad()
    loss = (h**2).sum()  # dloss/dx = 8x, dloss/dh = 2h
    loss.backward()
    np.testing.assert_allclose(x.grad, 8 * x.data)
    loss.backward()
    np.testing.assert_allclose(x.grad, 16 * x.data, err_msg="leaf gradients add up")
    np.testing.assert_allclose(h.grad, 2 * h.data, err_msg="intermediate grads are per pass")
    x.zero_grad()
    assert x.grad is None
    loss.backward()
    np.testing.assert_allclose(x.grad, 8 * x.data)


def test_leaf_grad_is_a_private_copy() -> None:
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.ones(2), requires_grad=True)
    (a + b).sum().backward()  # both get the same upstream array
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_constants_get_no_gradient_and_no_graph() -> None:
    x = Tensor(np.ones(3))
    w = Tensor(np.ones(3), requires_grad=True)
    out = (x * 2 + 1) * w
    assert not (x * 2).requires_grad and (x * 2).is_leaf
    out.sum().backward()
    assert x.grad is None and w.grad is not None


def test_deep_chain_does_not_hit_the_recursion_limit() -> None:
    x = Tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001**5000, rtol=1e-9)


def test_float32_stays_float32() -> None:
    x = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    out = (x * 2.5 + 1).tanh().sum()
    assert out.dtype == np.float32
    out.backward()
    assert x.grad.dtype == np.float32


def test_backward_with_an_explicit_gradient() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).backward(np.array([1.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [3.0, -3.0])


# ---- errors ------------------------------------------------------------------------------------


def test_broadcast_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(3,\)"):
        Tensor(np.ones((3, 4))) + Tensor(np.ones(3))


def test_matmul_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(4, 5\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match="at least 1-D"):
        Tensor(np.ones(3)) @ Tensor(np.array(2.0))


def test_backward_on_non_scalar_needs_a_gradient() -> None:
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"non-scalar tensor of shape \(2, 3\) needs a gradient"):
        (x * 2).backward()
    with pytest.raises(
        ValueError, match=r"grad has shape \(3,\) but the tensor has shape \(2, 3\)"
    ):
        (x * 2).backward(np.ones(3))


def test_backward_without_any_gradient_tracking() -> None:
    with pytest.raises(RuntimeError, match="requires_grad=True"):
        (Tensor(np.ones(2)) * 2).sum().backward()


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: Tensor(np.array([1.0, 0.0])).log(), ValueError, "log needs positive"),
        (lambda: Tensor(np.array(["a"])), TypeError, "real numbers"),
        (lambda: Tensor(np.ones(6)).reshape(4, 2), ValueError, r"\(6,\) into \(4, 2\)"),
        (lambda: Tensor(np.ones((2, 3))).transpose(0, 0), ValueError, "permutation"),
        (lambda: Tensor(np.ones((2, 3))).sum(axis=2), ValueError, "out of range"),
        (lambda: Tensor(np.ones(2)) ** Tensor(np.ones(2)), TypeError, "number exponent"),
        (lambda: Tensor(np.ones(2)).item(), ValueError, "one-element"),
        (lambda: Tensor(np.array([4.0, -1.0])) ** 0.5, ValueError, "no real power"),
    ],
)
def test_bad_input_errors(build, error, match) -> None:
    with pytest.raises(error, match=match):
        build()


def test_gradcheck_covers_an_op_chain_with_broadcasting() -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((3, 1, 4)), rng.standard_normal((2, 4)), rng.uniform(1, 2, (4,))]

    def chain(a, b, c):  # (3, 1, 4) * (2, 4) -> (3, 2, 4); / (4,); + (2, 4); mean over 0, 2
        return ((a * b).tanh() / c + b).exp().mean(axis=(0, 2)).log()

    assert_gradcheck(chain, arrays)
