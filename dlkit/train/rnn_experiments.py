"""The measured experiments of the RNN chapter, as small functions that train with torch.optim.

- :func:`train_sequence_regressor`: a recurrent model reads a whole sequence and
  predicts a number from its last hidden state (the adding problem), with optional
  gradient clipping; records the loss and the gradient norm before clipping at every step.
- :func:`compare_cells`: the same task, budget and seed for several cell types, to
  measure the margin by which gated cells (LSTM, GRU) beat the vanilla RNN.
- :func:`train_char_lm` / :func:`char_lm_loss`: next-character training and evaluation.

Each run seeds PyTorch's generator itself and draws batches from its own seeded
generator, so a run is reproducible on the CPU. Training runs on one CPU thread
(restored afterwards): these models are small, so per-operation overhead dominates and
extra threads only add synchronisation, which is slow on a busy or 2-core machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from dlkit.nn.recurrent import GRU, LSTM
from dlkit.train.device import one_thread

CellKind = Literal["rnn", "lstm", "gru"]


class LastStateRegressor(nn.Module):
    r"""Recurrent layer over ``x`` ``(B, T, D)``, then a linear map of the last hidden state -> ``(B, out)``.

    ``cell``: ``"lstm"`` / ``"gru"`` (:mod:`dlkit.nn.recurrent`) or ``"rnn"`` (``nn.RNN``, tanh).
    For the LSTM, ``forget_bias`` sets the forget gate's total bias :math:`b_{if} + b_{hf}`
    (``None`` keeps PyTorch's random initialisation). The default 1 is the standard choice
    (Gers et al., 2000; Jozefowicz et al., 2015): :math:`f_t \approx \sigma(1) \approx 0.73`
    at the start, so the cell keeps its content and gradients along it survive from the
    first step; it makes learning long lags much less dependent on the seed.
    """

    def __init__(
        self,
        cell: CellKind,
        input_size: int,
        hidden_size: int,
        out_features: int = 1,
        *,
        forget_bias: float | None = 1.0,
    ) -> None:
        super().__init__()
        kinds = {"rnn": nn.RNN, "lstm": LSTM, "gru": GRU}
        if cell not in kinds:
            raise ValueError(f"cell must be one of {sorted(kinds)}, got {cell!r}")
        self.cell = cell
        self.rnn = kinds[cell](input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, out_features)
        if cell == "lstm" and forget_bias is not None:
            forget = slice(hidden_size, 2 * hidden_size)  # gate order i, f, g, o
            with torch.no_grad():
                self.rnn.bias_ih_l0[forget] = forget_bias
                self.rnn.bias_hh_l0[forget] = 0.0

    def forward(self, x: Tensor) -> Tensor:
        hidden, _ = self.rnn(x)  # (B, T, H)
        return self.head(hidden[:, -1])  # (B, out)


@dataclass
class RunResult:
    """What one training run measured."""

    losses: list[float] = field(default_factory=list)  # training loss per step
    grad_norms: list[float] = field(default_factory=list)  # global norm before clipping
    test_loss: float = math.nan


def _loader(dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )


def _batches(loader: DataLoader):
    while True:  # endless, epoch after epoch
        yield from loader


@torch.no_grad()
def mean_squared_error(model: nn.Module, dataset: Dataset, batch_size: int = 500) -> float:
    """Mean squared error of ``model`` over a dataset of ``(x, y)`` pairs."""
    model.eval()
    total, count = 0.0, 0
    for x, y in DataLoader(dataset, batch_size=batch_size):
        total += float(((model(x) - y) ** 2).sum())
        count += y.numel()
    model.train()
    return total / count


def train_sequence_regressor(
    model: nn.Module,
    train: Dataset,
    test: Dataset,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    clip: float | None = None,
    optimizer: Literal["adam", "sgd"] = "adam",
    seed: int = 0,
    progress: bool = False,
) -> RunResult:
    """Train on the mean squared error for ``steps`` steps; ``clip`` caps the global gradient norm.

    ``optimizer="sgd"`` makes the step proportional to the gradient, so an exploding
    gradient becomes an exploding step (Adam divides by a running gradient scale and
    hides much of that); that is the setting in which clipping matters most.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    opt_class = torch.optim.Adam if optimizer == "adam" else torch.optim.SGD
    opt = opt_class(model.parameters(), lr=lr)
    batches = _batches(_loader(train, batch_size, seed))
    result = RunResult()
    with one_thread():
        for _ in tqdm(range(steps), disable=not progress, desc="training", leave=False):
            x, y = next(batches)
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            max_norm = math.inf if clip is None else clip
            norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            opt.step()
            result.losses.append(loss.item())
            result.grad_norms.append(float(norm))
        result.test_loss = mean_squared_error(model, test)
    return result


def compare_cells(
    train: Dataset,
    test: Dataset,
    *,
    cells: tuple[CellKind, ...] = ("rnn", "lstm"),
    hidden_size: int = 32,
    steps: int = 500,
    batch_size: int = 64,
    lr: float = 3e-3,
    clip: float | None = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, RunResult]:
    """Train one :class:`LastStateRegressor` per cell type with the same data, budget and seed."""
    input_size = train[0][0].shape[-1]
    out_features = train[0][1].shape[-1]
    results = {}
    for cell in cells:
        torch.manual_seed(seed)
        model = LastStateRegressor(cell, input_size, hidden_size, out_features)
        results[cell] = train_sequence_regressor(
            model, train, test, steps=steps, batch_size=batch_size, lr=lr, clip=clip,
            seed=seed, progress=progress,
        )  # fmt: skip
    return results


@torch.no_grad()
def char_lm_loss(
    model: nn.Module, dataset: Dataset, *, max_batches: int = 20, batch_size: int = 64
) -> float:
    """Mean cross-entropy per character (nats) of a ``CharLM`` on a dataset of ``(ids, next ids)``."""
    model.eval()
    total, count = 0.0, 0
    for i, (x, y) in enumerate(DataLoader(dataset, batch_size=batch_size)):
        if i == max_batches:
            break
        with one_thread():
            logits, _ = model(x)  # (B, T, V)
        total += float(
            nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
        )
        count += y.numel()
    model.train()
    return total / count


def train_char_lm(
    model: nn.Module,
    train: Dataset,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    clip: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> RunResult:
    """Adam on next-character cross-entropy, clipping the global gradient norm at ``clip``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batches = _batches(_loader(train, batch_size, seed))
    result = RunResult()
    with one_thread():
        for _ in tqdm(range(steps), disable=not progress, desc="training", leave=False):
            x, y = next(batches)  # (B, T) each
            logits, _ = model(x)  # (B, T, V)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
            optimizer.zero_grad()
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            result.losses.append(loss.item())
            result.grad_norms.append(float(norm))
    return result
