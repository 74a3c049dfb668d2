r"""Pretraining a causal language model on a token stream with :class:`dlkit.train.Trainer`.

One run is ``steps`` optimizer steps. Each step averages the next-token loss over
``grad_accum_steps`` micro-batches of ``batch_size`` random windows of ``context`` tokens
(:func:`dlkit.data.token_windows.random_window_loader`: O(batch) slicing of a memory-mapped
``uint16`` array), clips the gradient norm, and takes an AdamW step over two parameter groups
(weight decay on the weight matrices only, :func:`dlkit.optim.param_groups.weight_decay_groups`).
The learning rate follows :class:`dlkit.optim.schedules.WarmupCosine`, stepped once per
optimizer step:

.. math::

    \eta_t = \begin{cases} \eta\, t / W & t < W \\
    \eta_{\min} + \tfrac12 (\eta - \eta_{\min})\bigl(1 + \cos \pi \tfrac{t - W}{T - W}\bigr)
    & W \le t \le T \end{cases}, \qquad \eta_{\min} = r\,\eta,

with :math:`T` = ``steps``, :math:`W` = ``warmup_steps`` and :math:`r` = ``min_lr_ratio``.

The Trainer's "epoch" is ``eval_every`` optimizer steps: after each one the model is scored
on a *fixed* set of validation windows (:func:`dlkit.train.lm_metrics.evaluate_lm`, exact and
token-weighted), so the validation curve has ``steps / eval_every`` points and every point
measures the same tokens. Each epoch draws fresh random windows (the Trainer re-seeds the
sampler from ``(seed, epoch)``), and a checkpoint written at an epoch end or mid-epoch resumes
bit-identically (:mod:`dlkit.train.resume`).

On a CPU the run uses ``threads`` math threads (default 1) and restores the previous count
afterwards: for small models on a shared machine, threads mostly wait for each other.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import KW_ONLY, asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dlkit.data.token_windows import as_token_array, eval_windows, random_window_loader
from dlkit.nn.gpt import next_token_loss
from dlkit.optim.param_groups import weight_decay_groups
from dlkit.optim.schedules import WarmupCosine
from dlkit.train.callbacks import Callback, Checkpoint, Logs, LRSchedulerCallback
from dlkit.train.checkpoint import unwrap
from dlkit.train.device import DeviceLike, get_device
from dlkit.train.live_plot import LivePlot
from dlkit.train.lm_metrics import mean_token_nll
from dlkit.train.precision import maybe_compile
from dlkit.train.trainer import Trainer

__all__ = ["LMRun", "LMTrainConfig", "train_lm"]


def _positive_int(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class LMTrainConfig:
    """Everything that decides a language-model training run (JSON-safe via :meth:`to_dict`).

    Args:
        steps: optimizer steps :math:`T` in total; a multiple of ``eval_every``.
        batch_size: windows per micro-batch.
        context: tokens per window (``x`` and ``y`` are ``(batch_size, context)``).
        lr: the peak learning rate :math:`\\eta`.
        warmup_steps: linear warm-up length :math:`W < T`.
        min_lr_ratio: the cosine ends at ``min_lr_ratio * lr``.
        weight_decay: AdamW's decoupled decay on the weight matrices (not on biases, norms,
            embeddings).
        betas: AdamW's :math:`(\\beta_1, \\beta_2)`.
        grad_clip: clip the global gradient 2-norm to this (``None``: no clipping).
        grad_accum_steps: micro-batches per optimizer step.
        eval_every: optimizer steps between validations (the Trainer's epoch).
        eval_tokens: validate on the first ``eval_tokens`` predictable validation tokens
            (``None``: all of them).
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` (CUDA) or ``"auto"`` (see
            :mod:`dlkit.train.precision`).
        compile: run the model through ``torch.compile``.
        threads: torch math threads on a CPU during the run (``None``: leave as is).
        seed: seeds every RNG at the start and each epoch's window sampler.
    """

    steps: int
    batch_size: int
    context: int
    lr: float
    _: KW_ONLY
    warmup_steps: int
    eval_every: int
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    grad_accum_steps: int = 1
    eval_tokens: int | None = None
    precision: str = "fp32"
    compile: bool = False
    threads: int | None = 1
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "LMTrainConfig"
        for name in ("steps", "batch_size", "context", "grad_accum_steps", "eval_every"):
            _positive_int(owner, name, getattr(self, name))
        _positive_int(owner, "warmup_steps", self.warmup_steps, minimum=0)
        _positive_int(owner, "seed", self.seed, minimum=0)
        if self.warmup_steps >= self.steps:
            raise ValueError(
                f"{owner}: warmup_steps={self.warmup_steps} must be < steps={self.steps}"
            )
        if self.steps % self.eval_every:
            raise ValueError(
                f"{owner}: steps={self.steps} must be a multiple of eval_every="
                f"{self.eval_every} (each validation closes a Trainer epoch of eval_every steps)"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"{owner}: lr must be a finite number > 0, got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"{owner}: min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if not self.weight_decay >= 0:
            raise ValueError(f"{owner}: weight_decay must be >= 0, got {self.weight_decay}")
        self.betas = tuple(self.betas)  # type: ignore[assignment]  # a JSON list comes back
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"{owner}: betas must be two numbers in [0, 1), got {self.betas}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"{owner}: grad_clip must be > 0 or None, got {self.grad_clip}")
        if self.eval_tokens is not None:
            _positive_int(owner, "eval_tokens", self.eval_tokens)
        if self.threads is not None:
            _positive_int(owner, "threads", self.threads)

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step: ``batch_size * context * grad_accum_steps``."""
        return self.batch_size * self.context * self.grad_accum_steps

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; ``LMTrainConfig(**d)`` rebuilds the config."""
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out


@dataclass
class LMRun:
    """The result of :func:`train_lm`.

    Attributes:
        history: one row per validation: ``step``, ``tokens`` (seen so far), ``lr`` (of the
            last step), ``train_loss`` (mean over the steps since the previous row),
            ``val_loss`` and ``val_bpb`` (``None`` without validation data or without
            ``bytes_per_token``).
        step_history: one row per optimizer step: ``step``, ``lr``, ``train_loss``,
            ``grad_norm`` (``None`` without clipping).
        tokens_per_second: training tokens per second of training time in this call
            (validation excluded).
        wall_seconds: the whole call, validation included.
        eval_seconds: time spent validating in this call.
        final_val_loss: the last row's ``val_loss`` (``None`` without validation data).
        best_val_loss, best_step: the lowest validation loss and the step it was reached at.
    """

    history: list[dict[str, Any]]
    step_history: list[dict[str, Any]]
    tokens_per_second: float
    wall_seconds: float
    eval_seconds: float
    final_val_loss: float | None
    best_val_loss: float | None
    best_step: int | None
    config: LMTrainConfig = field(repr=False)

    def curve(self, key: str, *, per_step: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of a column of ``history`` (or of ``step_history`` with
        ``per_step``), for plotting; rows where it is ``None`` are dropped."""
        rows = self.step_history if per_step else self.history
        if rows and key not in rows[0]:
            raise KeyError(f"no column {key!r}; the rows hold {sorted(rows[0])}")
        pairs = [(r["step"], r[key]) for r in rows if r[key] is not None]
        if not pairs:
            return np.zeros(0), np.zeros(0)
        steps, values = zip(*pairs, strict=True)
        return np.asarray(steps), np.asarray(values, dtype=float)


class _LMLog(Callback):
    """Per-step and per-validation rows; validates on fixed windows at each epoch end.

    Runs before the other callbacks (order -10) and writes ``val_loss``/``val_bpb`` into the
    epoch's logs and the Trainer's history, so that ``Checkpoint(monitor="val_loss")``,
    ``EarlyStopping`` and ``LivePlot`` see them. Its rows travel in checkpoints, and with
    ``keep_best`` a copy of the best weights too.
    """

    order = -10

    def __init__(
        self,
        config: LMTrainConfig,
        val_batches: list[tuple[Tensor, Tensor]] | None,
        bytes_per_token: float | None,
        keep_best: bool,
    ) -> None:
        self.config, self.val_batches = config, val_batches
        self.bytes_per_token, self.keep_best = bytes_per_token, keep_best
        self.rows: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"val_loss": None, "step": None, "state": None}
        self.eval_seconds, self.first_step = 0.0, 0

    def on_fit_start(self, trainer: Trainer) -> None:
        self.eval_seconds, self.first_step = 0.0, trainer.global_step  # after a resume too

    def on_batch_end(self, trainer: Trainer, logs: Logs) -> None:
        self.steps.append(
            {
                "step": trainer.global_step,
                "lr": float(logs["lr"]),  # the rate this step used (read before the scheduler)
                "train_loss": float(logs["loss"]),
                "grad_norm": float(logs["grad_norm"]) if "grad_norm" in logs else None,
            }
        )

    def on_epoch_end(self, trainer: Trainer, logs: Logs) -> None:
        step = trainer.global_step
        row: dict[str, Any] = {
            "step": step,
            "tokens": step * self.config.tokens_per_step,
            "lr": self.steps[-1]["lr"] if self.steps else None,
            "train_loss": float(logs["loss"]),
            "val_loss": None,
            "val_bpb": None,
        }
        if self.val_batches is not None:
            start = time.perf_counter()
            val = mean_token_nll(trainer.model, self.val_batches, device=trainer.device)
            self.eval_seconds += time.perf_counter() - start
            row["val_loss"] = val
            if self.bytes_per_token is not None:
                row["val_bpb"] = val / (self.bytes_per_token * math.log(2))
            for name in ("val_loss", "val_bpb"):
                if row[name] is not None:
                    logs[name] = row[name]
                    trainer.history.setdefault(name, []).append(row[name])
            best = self.best["val_loss"]
            if best is None or val < best:
                self.best["val_loss"], self.best["step"] = val, step
                if self.keep_best:
                    state = unwrap(trainer.model).state_dict()
                    self.best["state"] = {k: v.detach().clone() for k, v in state.items()}
        self.rows.append(row)

    def state_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "rows": copy.deepcopy(self.rows),
                "steps": copy.deepcopy(self.steps), "best": dict(self.best)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        now = self.config.to_dict()
        differ = [f"{k}: checkpoint {v!r} vs now {now.get(k)!r}"
                  for k, v in state["config"].items() if now.get(k) != v]  # fmt: skip
        if differ:
            changes = "; ".join(differ)
            raise ValueError(
                f"train_lm: the checkpoint was written with another LMTrainConfig ({changes}); "
                "resume with the same config"
            )
        self.rows, self.steps = list(state["rows"]), list(state["steps"])
        self.best = dict(state["best"])


def train_lm(
    model: nn.Module,
    train_tokens: np.ndarray | Tensor,
    val_tokens: np.ndarray | Tensor | None = None,
    config: LMTrainConfig | None = None,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = next_token_loss,
    bytes_per_token: float | None = None,
    keep_best: bool = False,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    live_plot: bool = False,
    device: DeviceLike = "auto",
) -> LMRun:
    """Train ``model`` (ids ``(B, T)`` → logits ``(B, T, V)``) on ``train_tokens`` in place.

    Args:
        model: e.g. a :class:`dlkit.nn.gpt.GPT`; its weights are updated in place.
        train_tokens, val_tokens: 1-D token arrays (``np.memmap`` of ``uint16`` is fine);
            without ``val_tokens`` no validation runs.
        config: the :class:`LMTrainConfig`.
        loss_fn: ``loss_fn(logits (B, T, V), targets (B, T))``, the mean loss.
        bytes_per_token: UTF-8 bytes per token of the validation split
            (``dlkit.data.corpus.bytes_per_token("val")``); gives ``val_bpb``. With
            ``eval_tokens`` set it is the split's average ratio applied to a prefix.
        keep_best: load the weights of the best validation back into ``model`` at the end.
        checkpoint: a folder: ``last.pt`` is written after every validation.
        resume: continue from ``checkpoint/last.pt`` if it exists (a fresh run otherwise);
            ``config`` must be the one the checkpoint was written with.
        callbacks: more :class:`~dlkit.train.callbacks.Callback` objects for the Trainer.
        progress: tqdm bars (one per ``eval_every`` steps).
        live_plot: the live loss plot (:class:`~dlkit.train.live_plot.LivePlot`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    """
    if not isinstance(config, LMTrainConfig):
        raise TypeError(f"train_lm needs config=LMTrainConfig(...), got {type(config).__name__}")
    if resume and checkpoint is None:
        raise ValueError("train_lm: resume=True needs checkpoint=<folder> to resume from")
    as_token_array(train_tokens, config.context, name="train_lm: train_tokens")
    if val_tokens is not None:
        as_token_array(val_tokens, config.context, name="train_lm: val_tokens")
    if bytes_per_token is not None and not bytes_per_token > 0:
        raise ValueError(f"train_lm: bytes_per_token must be > 0, got {bytes_per_token}")
    device = get_device(device)
    with _math_threads(device, config.threads):
        return _run(model, train_tokens, val_tokens, config, device, loss_fn, bytes_per_token,
                    keep_best, checkpoint, resume, callbacks, progress, live_plot)  # fmt: skip


@contextmanager
def _math_threads(device: torch.device, threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` on a CPU for the block, then the previous count."""
    before = torch.get_num_threads()
    if device.type == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(
    model: nn.Module,
    train_tokens: np.ndarray | Tensor,
    val_tokens: np.ndarray | Tensor | None,
    config: LMTrainConfig,
    device: torch.device,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    bytes_per_token: float | None,
    keep_best: bool,
    checkpoint: str | Path | None,
    resume: bool,
    callbacks: Sequence[Callback],
    progress: bool,
    live_plot: bool,
) -> LMRun:
    start = time.perf_counter()
    model.to(device)
    optimizer = torch.optim.AdamW(
        weight_decay_groups(model, config.weight_decay), lr=config.lr, betas=config.betas
    )
    schedule = WarmupCosine(
        optimizer, config.warmup_steps, config.steps, min_lr=config.lr * config.min_lr_ratio
    )
    loader = random_window_loader(
        train_tokens,
        config.context,
        config.batch_size,
        num_batches=config.eval_every * config.grad_accum_steps,
        seed=config.seed,
    )
    val_batches = None
    if val_tokens is not None:  # one fixed list: every validation scores the same tokens
        val_batches = list(
            eval_windows(val_tokens, config.context, config.batch_size,
                         max_tokens=config.eval_tokens)
        )  # fmt: skip
    log = _LMLog(config, val_batches, bytes_per_token, keep_best)
    extra: list[Callback] = [LRSchedulerCallback(schedule, interval="step"), log]
    if live_plot:
        extra.append(LivePlot(("loss", "val_loss")))
    resume_from = None
    if checkpoint is not None:
        saver = Checkpoint(checkpoint)
        extra.append(saver)
        if resume and saver.last_path.exists():
            resume_from = saver.last_path
    trainer = Trainer(
        maybe_compile(model, config.compile),
        optimizer,
        loss_fn,
        device=device,
        callbacks=[*extra, *callbacks],
        precision=config.precision,
        grad_accum_steps=config.grad_accum_steps,
        max_grad_norm=config.grad_clip,
        progress=progress,
        seed=config.seed,
    )
    trainer.fit(loader, epochs=config.steps // config.eval_every, resume_from=resume_from)
    if keep_best and log.best["state"] is not None:
        unwrap(model).load_state_dict(log.best["state"])
    wall = time.perf_counter() - start
    trained = (trainer.global_step - log.first_step) * config.tokens_per_step
    train_seconds = max(wall - log.eval_seconds, 1e-9)
    final = log.rows[-1]["val_loss"] if log.rows else None
    return LMRun(
        history=[dict(row) for row in log.rows],
        step_history=[dict(row) for row in log.steps],
        tokens_per_second=trained / train_seconds,
        wall_seconds=wall,
        eval_seconds=log.eval_seconds,
        final_val_loss=final,
        best_val_loss=log.best["val_loss"],
        best_step=log.best["step"],
        config=config,
    )
