"""Memory formulas in dlkit.train.memory checked against what PyTorch really allocates."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from dlkit.nn import GPT, GPTConfig, MLPConfig, build_mlp
from dlkit.train.memory import (
    activation_bytes_mlp,
    activation_bytes_transformer,
    count_parameters,
    measure_grad_bytes,
    measure_optimizer_state_bytes,
    measure_param_bytes,
    measure_saved_activation_bytes,
    peak_cuda_memory,
    training_memory,
)

MLPS = [
    MLPConfig(d_in=10, hidden=(32, 16), d_out=3),
    MLPConfig(d_in=7, hidden=(), d_out=2, bias=False),
    MLPConfig(d_in=64, hidden=(128, 128, 64), d_out=10),
    MLPConfig(d_in=5, hidden=(9,), d_out=1, bias=False),
]
TRANSFORMERS = [
    GPTConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=16),
    GPTConfig(97, 48, 3, 6, 100, 32, tie_weights=False),
    GPTConfig(11, 8, 1, 1, 8, max_len=12, bias=False),
]
# Every design the config allows: norms, MLPs, positions, biases, tying, both kernels.
VARIANTS = [
    GPTConfig.modern(50, 32, 2, 4, 16),
    GPTConfig.modern(50, 32, 2, 4, 16, bias=True, tie_weights=False),
    GPTConfig(40, 16, 2, 2, 24, 8, norm="rmsnorm", mlp="relu", positions="sinusoidal"),
    GPTConfig(40, 16, 1, 2, 24, 8, norm="layernorm", mlp="swiglu", positions="none", bias=False),
    GPTConfig(40, 16, 1, 4, 20, 8, positions="rope", kernels="dlkit"),
]


def _numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("config", MLPS, ids=str)
def test_mlp_parameter_formula_matches_pytorch(config: MLPConfig) -> None:
    assert count_parameters(config) == _numel(build_mlp(config))


@pytest.mark.parametrize("config", TRANSFORMERS, ids=str)
def test_transformer_parameter_formula_matches_pytorch(config: GPTConfig) -> None:
    assert count_parameters(config) == _numel(GPT(config))


@pytest.mark.parametrize("config", VARIANTS, ids=str)
def test_parameter_formula_covers_every_design(config: GPTConfig) -> None:
    model = GPT(config)
    assert count_parameters(config) == _numel(model) == model.num_parameters()


def test_gpt2_small_has_124m_parameters() -> None:
    gpt2 = GPTConfig.gpt2(50257, 768, 12, 12, 1024)
    assert count_parameters(gpt2) == 124_439_808


def test_tied_head_saves_one_embedding_matrix() -> None:
    tied = TRANSFORMERS[0]
    untied = GPTConfig.from_dict({**tied.to_dict(), "tie_weights": False})
    assert count_parameters(untied) - count_parameters(tied) == tied.vocab_size * tied.d_model


def test_bad_configs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        GPTConfig(10, 30, 1, 4, 8, 8)
    with pytest.raises(TypeError, match="MLPConfig or GPTConfig"):
        count_parameters(nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exact for the GPT-2 design"):
        activation_bytes_transformer(VARIANTS[0], 2, 4)
    with pytest.raises(ValueError, match="kernels='dlkit'"):
        activation_bytes_transformer(GPTConfig(11, 8, 1, 1, 8, 12, kernels="dlkit"), 2, 4)


def test_transformer_is_causal_and_shaped() -> None:
    torch.manual_seed(0)
    config = TRANSFORMERS[0]
    model = GPT(config).eval()
    idx = torch.randint(0, config.vocab_size, (2, 10))
    logits = model(idx)
    assert logits.shape == (2, 10, config.vocab_size)
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % config.vocab_size  # change only the future
    assert torch.allclose(model(changed)[:, :6], logits[:, :6], atol=1e-6)
    assert not torch.allclose(model(changed)[:, 6:], logits[:, 6:])


def test_training_memory_rules_of_thumb() -> None:
    n = 1_000_000
    adam = training_memory(n)
    assert (adam.params, adam.grads, adam.optimizer_state, adam.total) == (
        4 * n,
        4 * n,
        8 * n,
        16 * n,
    )
    mixed = training_memory(n, param_bytes=2, grad_bytes=2, master_weights=True)
    assert (mixed.params, mixed.grads, mixed.optimizer_state) == (2 * n, 2 * n, 12 * n)
    assert mixed.total == 16 * n  # mixed precision does not shrink Adam's footprint
    assert training_memory(n, optimizer="adamw") == adam
    assert training_memory(n, optimizer="sgd_momentum").total == 12 * n
    assert training_memory(n, optimizer="sgd").total == 8 * n
    table = str(adam)
    assert "optimizer state" in table and "16.0" in table and "MiB" in table and "GiB" in table
    with pytest.raises(ValueError, match="optimizer must be one of"):
        training_memory(n, optimizer="lion")  # type: ignore[arg-type]


def _one_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimizer.zero_grad()
    model(x).float().pow(2).mean().backward()
    optimizer.step()


@pytest.mark.parametrize(
    ("name", "make", "per_tensor_extra"),
    [
        ("adam", lambda p: torch.optim.Adam(p, lr=1e-3), 4),  # 0-dim float32 `step` per tensor
        ("adamw", lambda p: torch.optim.AdamW(p, lr=1e-3), 4),
        ("sgd_momentum", lambda p: torch.optim.SGD(p, lr=1e-3, momentum=0.9), 0),
        ("sgd", lambda p: torch.optim.SGD(p, lr=1e-3), 0),
    ],
)
@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_formulas_match_allocated_tensors(name, make, per_tensor_extra, kind) -> None:
    torch.manual_seed(0)
    if kind == "mlp":
        config, model = MLPS[2], build_mlp(MLPS[2])
        x = torch.randn(4, MLPS[2].d_in)
    else:
        config, model = TRANSFORMERS[0], GPT(TRANSFORMERS[0])  # tied weights
        x = torch.randint(0, TRANSFORMERS[0].vocab_size, (2, 8))
    optimizer = make(model.parameters())
    assert measure_grad_bytes(model) == 0 and measure_optimizer_state_bytes(optimizer) == 0
    _one_step(model, optimizer, x)

    expected = training_memory(count_parameters(config), optimizer=name)
    n_tensors = len(list(model.parameters()))
    assert measure_param_bytes(model) == expected.params
    assert measure_grad_bytes(model) == expected.grads
    measured_state = measure_optimizer_state_bytes(optimizer)
    assert measured_state == expected.optimizer_state + per_tensor_extra * n_tensors


@pytest.mark.parametrize("config", MLPS, ids=str)
@pytest.mark.parametrize("batch_size", [1, 16])
def test_mlp_activation_formula_is_exact(config: MLPConfig, batch_size: int) -> None:
    model = build_mlp(config)
    x = torch.randn(batch_size, config.d_in)
    measured = measure_saved_activation_bytes(model, x)
    assert measured == activation_bytes_mlp(config, batch_size)
    assert measure_saved_activation_bytes(model.double(), x.double()) == activation_bytes_mlp(
        config, batch_size, dtype_bytes=8
    )


@pytest.mark.parametrize("config", TRANSFORMERS, ids=str)
@pytest.mark.parametrize(("batch_size", "seq_len"), [(3, 12), (1, 4), (2, 1)])
def test_transformer_activation_formula_flash_is_exact(config, batch_size, seq_len) -> None:
    model = GPT(config)
    idx = torch.randint(0, config.vocab_size, (batch_size, seq_len))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        measured = measure_saved_activation_bytes(model, idx)
    assert measured == activation_bytes_transformer(config, batch_size, seq_len)


@pytest.mark.parametrize("config", TRANSFORMERS[:2], ids=str)
def test_transformer_activation_formula_math_is_exact(config: GPTConfig) -> None:
    model = GPT(config)
    B, T = 2, 16
    idx = torch.randint(0, config.vocab_size, (B, T))
    with sdpa_kernel(SDPBackend.MATH):
        measured = measure_saved_activation_bytes(model, idx)
    estimate = activation_bytes_transformer(config, B, T, attention="math")
    assert measured == estimate
    # The T×T attention probabilities are what the fused kernel avoids keeping.
    assert estimate > activation_bytes_transformer(config, B, T)


def test_saved_activations_leave_out_parameters_and_grow_with_batch() -> None:
    model = build_mlp(MLPS[2])
    one = measure_saved_activation_bytes(model, torch.randn(1, MLPS[2].d_in))
    assert one < measure_param_bytes(model)
    assert measure_saved_activation_bytes(model, torch.randn(8, MLPS[2].d_in)) == 8 * one


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_peak_cuda_memory_is_none_without_cuda() -> None:
    calls = []
    assert peak_cuda_memory(lambda: calls.append(1)) is None
    assert calls == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_peak_cuda_memory_covers_params_grads_and_adam_state() -> None:
    config = MLPS[2]
    model = build_mlp(config).cuda()
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(64, config.d_in, device="cuda")
    peak = peak_cuda_memory(lambda: _one_step(model, optimizer, x))
    assert peak is not None
    assert peak >= training_memory(count_parameters(config)).total
