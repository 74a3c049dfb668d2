"""dlkit.nn.BatchNorm1d and LayerNorm against PyTorch's, train and eval, forward and backward."""

from __future__ import annotations

import pytest
import torch

from dlkit.nn import BatchNorm1d, LayerNorm


@pytest.fixture(autouse=True)
def _float64():
    """Every module and tensor in these tests is float64, so the oracles are exact."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _copy_params(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    with torch.no_grad():
        for (name, a), (_, b) in zip(
            ours.named_parameters(), theirs.named_parameters(), strict=True
        ):
            a.copy_(torch.randn_like(a))
            b.copy_(a)
            assert name in ("weight", "bias")


def _run_both(ours, theirs, x: torch.Tensor) -> None:
    """Forward and backward through both with the same upstream gradient; compare all."""
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    ya, yb = ours(xa), theirs(xb)
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-12)
    upstream = torch.randn_like(ya)
    ya.backward(upstream)
    yb.backward(upstream)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-9, atol=1e-11)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
@pytest.mark.parametrize("shape", [(16, 5), (8, 5, 7), (2, 5)])
def test_batchnorm_matches_torch_over_several_steps(shape, momentum) -> None:
    torch.manual_seed(0)
    ours = BatchNorm1d(5, momentum=momentum)
    theirs = torch.nn.BatchNorm1d(5, momentum=momentum)
    _copy_params(ours, theirs)
    for step in range(4):  # training: batch statistics, running stats updated each step
        x = torch.randn(*shape) * (step + 1) + step
        _run_both(ours, theirs, x)
        torch.testing.assert_close(ours.running_mean, theirs.running_mean, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(ours.running_var, theirs.running_var, rtol=1e-12, atol=1e-14)
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked) == step + 1
    ours.eval()
    theirs.eval()
    x = torch.randn(*shape)
    _run_both(ours, theirs, x)  # evaluation: running statistics, nothing updated
    torch.testing.assert_close(ours.running_var, theirs.running_var, rtol=1e-12, atol=1e-14)


def test_running_var_uses_the_unbiased_estimate() -> None:
    layer = BatchNorm1d(1, momentum=1.0)  # running stats = the last batch's
    x = torch.tensor([[1.0], [2.0], [6.0]])
    layer(x)
    assert layer.running_mean.item() == pytest.approx(3.0)
    assert layer.running_var.item() == pytest.approx((4 + 1 + 9) / 2)  # ÷ (n - 1)
    # ... while the training output used the biased one, ÷ n:
    y = BatchNorm1d(1, affine=False)(x)
    expected = (x - 3.0) / torch.sqrt(torch.tensor(14 / 3 + 1e-5))
    torch.testing.assert_close(y, expected)


def test_eval_output_does_not_depend_on_the_batch() -> None:
    layer = BatchNorm1d(3)
    for _ in range(5):
        layer(torch.randn(32, 3) * 2 + 1)
    layer.eval()
    x = torch.randn(10, 3)
    torch.testing.assert_close(layer(x)[:1], layer(x[:1]))  # a batch of one works in eval
    layer.train()
    assert not torch.allclose(layer(x)[:2], layer(x[:2]))  # in training it does depend


@pytest.mark.parametrize(("affine", "track"), [(False, True), (True, False), (False, False)])
def test_batchnorm_options_match_torch(affine: bool, track: bool) -> None:
    torch.manual_seed(1)
    ours = BatchNorm1d(4, affine=affine, track_running_stats=track, eps=1e-3)
    theirs = torch.nn.BatchNorm1d(4, affine=affine, track_running_stats=track, eps=1e-3)
    _copy_params(ours, theirs)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(theirs, mode)()
        _run_both(ours, theirs, torch.randn(6, 4, 3))
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())


def test_batchnorm_state_dict_loads_into_torch() -> None:
    ours = BatchNorm1d(3)
    ours(torch.randn(10, 3))
    theirs = torch.nn.BatchNorm1d(3)
    theirs.load_state_dict(ours.state_dict())
    ours.eval()
    theirs.eval()
    x = torch.randn(4, 3)
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize(
    ("make", "x", "match"),
    [
        (lambda: BatchNorm1d(3), torch.randn(4, 2), r"\(N, 3\)"),
        (lambda: BatchNorm1d(3), torch.randn(1, 3), "more than 1 value"),
        (lambda: BatchNorm1d(3), torch.randn(2, 3, 4, 5), r"\(N, 3, L\)"),
        (lambda: LayerNorm(4), torch.randn(2, 3), r"\(\.\.\., 4\)"),
        (lambda: LayerNorm((2, 3)), torch.randn(5, 3, 2), r"\(\.\.\., 2, 3\)"),
    ],
)
def test_bad_shapes_are_named(make, x, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()(x)


def test_bad_hyperparameters() -> None:
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        LayerNorm(3, eps=0.0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize(("normalized", "shape"), [(6, (4, 6)), ((3, 4), (2, 5, 3, 4)), (5, (5,))])
def test_layernorm_matches_torch(normalized, shape, affine: bool, bias: bool) -> None:
    torch.manual_seed(2)
    ours = LayerNorm(normalized, elementwise_affine=affine, bias=bias)
    theirs = torch.nn.LayerNorm(normalized, elementwise_affine=affine, bias=bias)
    _copy_params(ours, theirs)
    x = torch.randn(*shape) * 3 + 1
    _run_both(ours, theirs, x)
    ours.eval()
    theirs.eval()
    _run_both(ours, theirs, x)  # no train/eval difference
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())


def test_layernorm_is_per_example() -> None:
    layer = LayerNorm(8)
    x = torch.randn(5, 8)
    torch.testing.assert_close(layer(x)[2:3], layer(x[2:3]))


@pytest.mark.parametrize(
    "make", [lambda: BatchNorm1d(3), lambda: BatchNorm1d(3, affine=False), lambda: LayerNorm(3)]
)
def test_gradients_match_finite_differences(make) -> None:
    # Central differences of the training-mode output with respect to x, gamma and beta.
    torch.manual_seed(3)
    layer = make()
    names = [name for name, _ in layer.named_parameters()]

    def f(x, *params):
        return torch.func.functional_call(layer, dict(zip(names, params, strict=True)), (x,))

    params = [(p.detach() + torch.randn_like(p)).requires_grad_(True) for p in layer.parameters()]
    inputs = (torch.randn(5, 3, requires_grad=True), *params)
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7)
