"""The Trainer: learns, records history, is reproducible, accumulates and clips gradients
exactly, schedules and stops, and stops bad input with a located message."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler, TensorDataset

from dlkit.train import (
    Callback,
    Checkpoint,
    EarlyStopping,
    LivePlot,
    LRSchedulerCallback,
    Trainer,
    accuracy,
    in_notebook,
    load_checkpoint,
    make_loader,
    seed_everything,
)


def _blobs(n: int = 256, seed: int = 0) -> TensorDataset:
    """Two Gaussian blobs in 4-D: a task a small MLP solves in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) + 2.0 * (y[:, None].float() * 2 - 1)
    return TensorDataset(x, y)


def _mlp(dropout: float = 0.2) -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 2))


def _trainer(model: nn.Module, lr: float = 0.05, **kwargs) -> Trainer:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return Trainer(model, optimizer, nn.CrossEntropyLoss(), device="cpu", progress=False, **kwargs)


def _loaders(seed: int = 0, batch: int = 32):
    train = make_loader(_blobs(256, seed=1), batch, shuffle=True, seed=seed, device="cpu")
    val = make_loader(_blobs(128, seed=2), 64, device="cpu")
    return train, val


def test_learns_and_records_history() -> None:
    seed_everything(0)
    trainer = _trainer(_mlp(), metrics={"acc": accuracy}, seed=0)
    history = trainer.fit(*_loaders(), epochs=3)
    assert set(history) == {"loss", "acc", "val_loss", "val_acc", "lr"}
    assert all(len(values) == 3 for values in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_acc"][-1] > 0.95
    assert trainer.global_step == 3 * 8
    assert trainer.evaluate(_loaders()[1]) == pytest.approx(
        {"loss": history["val_loss"][-1], "acc": history["val_acc"][-1]}
    )


def test_two_seeded_runs_are_bit_identical() -> None:
    def run() -> dict[str, torch.Tensor]:
        seed_everything(0)
        model = _mlp(dropout=0.5)  # dropout draws from the RNG every step
        _trainer(model, seed=0).fit(*_loaders(), epochs=2)
        return model.state_dict()

    first, second = run(), run()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_shuffle_order_does_not_depend_on_earlier_random_draws() -> None:
    class Recorder(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x[:, 0].clone())
            return super().forward(x)

    class DrawsRandomNumbers(Callback):
        def on_epoch_start(self, trainer: Trainer) -> None:
            torch.rand(trainer.epoch + 1)  # disturb the global RNG differently each epoch

    orders = []
    for callbacks in [(), (DrawsRandomNumbers(),)]:
        seen: list[torch.Tensor] = []
        torch.manual_seed(0)
        _trainer(Recorder(4, 2), seed=3, callbacks=callbacks).fit(_loaders()[0], epochs=2)
        orders.append(torch.cat(seen))
    assert torch.equal(orders[0], orders[1])
    assert not torch.equal(orders[0][:256], orders[0][256:])  # a new order each epoch


def _regression(n: int) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("n_micro", "short"),
    [(8, 0), (7, 0), (8, 2)],
    ids=["full-groups", "trailing-partial-group", "short-last-micro-batch"],
)
def test_grad_accumulation_equals_the_big_batch(n_micro: int, short: int) -> None:
    """k micro-batches of b examples (mean loss / k, summed) step like one batch of k*b.

    float64 and a model without batch-dependent layers, so the only difference between
    the two is the summation order. With 7 micro-batches and k = 4 the last group has 3
    (divided by 3), which equals one step on those 3*b examples. With ``short`` examples
    fewer, the last micro-batch has b - short: the last group (4, 4, 4, 2) must weight
    each example by 1/14, as one batch of 14 does (1/4 per micro-batch would not).
    """
    b, k = 4, 4
    data = _regression(n_micro * b - short)
    torch.manual_seed(0)
    accumulated = nn.Linear(3, 1).double()
    reference = nn.Linear(3, 1).double()
    reference.load_state_dict(accumulated.state_dict())

    opt = torch.optim.SGD(accumulated.parameters(), lr=0.1)
    trainer = Trainer(
        accumulated, opt, nn.MSELoss(), device="cpu", progress=False, grad_accum_steps=k
    )
    trainer.fit(make_loader(data, b, device="cpu"), epochs=1)
    assert trainer.global_step == math.ceil(n_micro / k)

    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    for big_x, big_y in make_loader(data, k * b, device="cpu"):  # the last batch may be short
        ref_opt.zero_grad()
        nn.functional.mse_loss(reference(big_x), big_y).backward()
        ref_opt.step()
    for a, r in zip(accumulated.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)


class _Logs(Callback):
    def __init__(self) -> None:
        self.batches: list[dict[str, float]] = []

    def on_batch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        self.batches.append(dict(logs))


def test_clipping_limits_the_update_to_max_grad_norm() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    logs = _Logs()
    data = TensorDataset(*(t * 100 for t in _regression(16).tensors))  # huge gradients
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=1.0), nn.MSELoss(),
                      device="cpu", progress=False, max_grad_norm=0.5, callbacks=[logs])  # fmt: skip
    trainer.fit(make_loader(data, 16, device="cpu"), epochs=1)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert logs.batches[0]["grad_norm"] > 0.5  # the norm before clipping
    assert float((after - before).norm()) == pytest.approx(0.5, rel=1e-9)  # lr 1: |Δθ| = c


def test_early_stopping_stops_after_patience_bad_epochs() -> None:
    stopper = EarlyStopping("val_loss", patience=2)
    history = _trainer(_mlp(), lr=0.0, callbacks=[stopper]).fit(*_loaders(), epochs=10)
    # lr 0: val_loss never improves after epoch 1; epochs 2 and 3 are the 2 bad ones.
    assert len(history["val_loss"]) == 3 and stopper.stopped_epoch == 2


def test_early_stopping_names_a_missing_metric() -> None:
    trainer = _trainer(_mlp(), callbacks=[EarlyStopping("val_loss")])
    with pytest.raises(KeyError, match=r"monitors 'val_loss'.*\['loss', 'lr'\].*val_loader"):
        trainer.fit(_loaders()[0], epochs=1)


def test_reduce_lr_on_plateau_follows_the_validation_metric() -> None:
    model = _mlp()
    frozen = nn.Parameter(torch.zeros(1))  # the optimizer moves only this: val_loss stays flat
    optimizer = torch.optim.SGD([frozen], lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    scheduler = LRSchedulerCallback(plateau)
    assert scheduler.monitor == "val_loss"
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), device="cpu", progress=False,
                      callbacks=[scheduler])  # fmt: skip
    history = trainer.fit(*_loaders(), epochs=5)
    assert len(set(history["val_loss"])) == 1
    # Epoch 1 sets the best; after 2 more epochs without improvement (> patience) it halves.
    assert history["lr"] == [0.1, 0.1, 0.1, 0.05, 0.05]
    assert optimizer.param_groups[0]["lr"] == 0.025


def test_step_interval_scheduler_steps_every_optimizer_step() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    decay = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
    trainer = Trainer(model, optimizer, nn.CrossEntropyLoss(), device="cpu", progress=False,
                      callbacks=[LRSchedulerCallback(decay, interval="step")])  # fmt: skip
    trainer.fit(_loaders()[0], epochs=1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.9**8)


def test_checkpoint_callback_keeps_last_best_and_snapshots(tmp_path) -> None:
    saver = Checkpoint(tmp_path, every_n_steps=4, keep_last=2, monitor="val_loss")
    _trainer(_mlp(), callbacks=[saver]).fit(*_loaders(), epochs=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pt", "epoch001-step000012.pt", "epoch001-step000016.pt", "last.pt"]
    meta = load_checkpoint(tmp_path / "last.pt", model=_mlp())
    assert (meta["epoch"], meta["step"], meta["global_step"]) == (2, 0, 16)  # next: epoch 2


def test_sampler_set_epoch_is_called_each_epoch() -> None:
    data = _blobs(64)
    sampler = DistributedSampler(data, num_replicas=1, rank=0, seed=0)
    loader = torch.utils.data.DataLoader(data, batch_size=16, sampler=sampler)
    _trainer(_mlp()).fit(loader, epochs=3)
    assert sampler.epoch == 2


def test_live_plot_prints_one_line_per_epoch_outside_jupyter(capsys) -> None:
    assert not in_notebook()
    _trainer(_mlp(), callbacks=[LivePlot(("loss", "val_loss", "val_acc"))],
             metrics={"acc": accuracy}).fit(*_loaders(), epochs=2)  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert (
        lines[1].startswith("epoch 2/2  loss ") and "val_loss" in lines[1] and "val_acc" in lines[1]
    )


def test_live_plot_updates_one_figure_in_jupyter(monkeypatch) -> None:
    import IPython.display

    shown, updates = [], []

    class Handle:
        def update(self, image: IPython.display.Image) -> None:
            updates.append(image)

    def display(image: IPython.display.Image, display_id: bool) -> Handle:
        shown.append(image)
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    plot = LivePlot(("loss", "val_loss", "acc", "val_acc"), notebook=True)
    _trainer(_mlp(), callbacks=[plot], metrics={"acc": accuracy}).fit(*_loaders(), epochs=3)
    assert len(shown) == 1 and len(updates) == 2  # one output, redrawn in place
    assert all(image.data.startswith(b"\x89PNG") for image in shown + updates)
    assert len(plot._figure.axes) == 2  # a loss panel and an acc panel


def test_progress_bar_counts_the_batches_of_each_epoch(capsys) -> None:
    import tqdm.auto

    import dlkit.train.trainer

    assert dlkit.train.trainer.tqdm is tqdm.auto.tqdm  # the notebook widget under Jupyter
    model = _mlp()
    trainer = Trainer(model, torch.optim.Adam(model.parameters()), nn.CrossEntropyLoss(),
                      device="cpu", progress=True)  # fmt: skip
    trainer.fit(_loaders()[0], epochs=2)  # 256 examples in batches of 32
    bars = capsys.readouterr().err
    assert "epoch 1/2" in bars and "epoch 2/2" in bars and "8/8" in bars


def test_progress_bar_can_be_switched_off(capsys) -> None:
    _trainer(_mlp()).fit(*_loaders(), epochs=1)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ bad input


def test_device_mismatch_names_both_devices_and_where() -> None:
    model = _mlp()
    trainer = _trainer(model)
    model.to("meta")  # moved after the Trainer put it on the CPU
    with pytest.raises(
        RuntimeError,
        match=r"device mismatch at epoch 1/1, step 1/8: .* on meta but the batch is on cpu",
    ):
        trainer.fit(_loaders()[0], epochs=1)


def test_nan_in_the_data_stops_with_epoch_step_and_last_finite_loss() -> None:
    x, y = _blobs(64).tensors
    x = x.clone()
    x[40] = float("nan")  # in the 3rd batch of 16 (no shuffling)
    model = _mlp()
    with pytest.raises(
        FloatingPointError,
        match=r"loss is nan at epoch 1/2, step 3/4; the last finite loss was [\d.e-]+ at epoch 1, "
        r"step 2\. The batch's inputs contain nan",
    ):
        _trainer(model).fit(make_loader(TensorDataset(x, y), 16, device="cpu"), epochs=2)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # never updated with nan


def test_nan_in_a_later_epoch() -> None:
    calls = []

    def loss_fn(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = nn.functional.cross_entropy(outputs, targets)
        return loss * float("nan") if len(calls) == 8 + 5 else loss  # epoch 2, step 5

    model = _mlp()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, device="cpu",
                      progress=False)  # fmt: skip
    with pytest.raises(FloatingPointError, match=r"epoch 2/3, step 5/8; .* at epoch 2, step 4\."):
        trainer.fit(_loaders()[0], epochs=3)


def test_divergence_is_stopped_not_trained_on() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=10.0), nn.MSELoss(),
                      device="cpu", progress=False)  # fmt: skip
    with pytest.raises(
        FloatingPointError, match=r"the loss is (nan|inf) at epoch \d+/50, step \d+/4"
    ):
        trainer.fit(make_loader(_regression(64), 16, device="cpu"), epochs=50)


def test_inf_loss_on_the_first_batch() -> None:
    model = nn.Linear(4, 2)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                      lambda out, y: out.sum() / 0.0, device="cpu", progress=False)  # fmt: skip
    with pytest.raises(
        FloatingPointError, match=r"loss is -?inf at epoch 1/1, step 1/.*no finite loss was seen"
    ):
        trainer.fit(_loaders()[0], epochs=1)


def test_batch_of_the_wrong_shape_names_epoch_step_and_shapes() -> None:
    good, bad = torch.randn(8, 4), torch.randn(8, 5)
    labels = torch.zeros(8, dtype=torch.long)
    loader = [(good, labels), (good, labels), (bad, labels)]  # any sized iterable works
    with pytest.raises(
        RuntimeError,
        match=r"rejected the batch at epoch 1/1, step 3/3: inputs float32 \(8, 5\) on cpu, targets int64 \(8,\)",
    ) as error:
        _trainer(_mlp()).fit(loader, epochs=1)
    assert isinstance(error.value.__cause__, RuntimeError)  # the original error is chained
    assert "mat1 and mat2" in str(error.value)


def test_targets_the_loss_would_broadcast_are_an_error_not_a_warning() -> None:
    """(B, 1) outputs against (B,) targets: MSELoss only warns and trains on a (B, B) mean."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    loader = [(torch.randn(8, 3), torch.randn(8))]
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.MSELoss(),
                      device="cpu", progress=False)  # fmt: skip
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(
        ValueError,
        match=r"broadcast the targets .* at epoch 1/1, step 1/1: outputs float32 \(8, 1\) "
        r"on cpu, targets float32 \(8,\)",
    ):
        trainer.fit(loader, epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before, strict=True))


def test_targets_the_loss_rejects() -> None:
    loader = [(torch.randn(8, 4), torch.zeros(8, 3))]  # cross-entropy with 3 "classes"
    with pytest.raises(
        RuntimeError,
        match=r"the loss rejected the batch at epoch 1/1, step 1/1: outputs float32 \(8, 2\)",
    ):
        _trainer(_mlp()).fit(loader, epochs=1)


def test_a_loss_that_is_not_a_scalar() -> None:
    model = _mlp()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(reduction="none"),
                      device="cpu", progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"scalar tensor.*epoch 1/1, step 1/8.*float32 \(32,\)"):
        trainer.fit(_loaders()[0], epochs=1)


def test_batches_that_are_not_pairs() -> None:
    with pytest.raises(TypeError, match=r"\(inputs, targets\) pairs, but at epoch 1/1, step 1/1"):
        _trainer(_mlp()).fit([torch.randn(8, 4)], epochs=1)


def test_bad_validation_batch_names_the_epoch() -> None:
    val = [(torch.randn(8, 5), torch.zeros(8, dtype=torch.long))]
    with pytest.raises(
        RuntimeError, match=r"rejected the batch at validation of epoch 1/2, step 1/1"
    ):
        _trainer(_mlp()).fit(_loaders()[0], val, epochs=2)


def test_unusable_precision_fails_when_the_trainer_is_built() -> None:
    model = _mlp()
    with pytest.raises(ValueError, match="'fp16' needs a CUDA GPU"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                device="cpu", precision="fp16")  # fmt: skip


# ------------------------------------------------------------------ on a GPU

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_cuda_training_with_mixed_precision(precision: str) -> None:
    seed_everything(0)
    train = make_loader(_blobs(256, seed=1), 32, shuffle=True, device="cuda")
    val = make_loader(_blobs(128, seed=2), 64, device="cuda")
    assert train.pin_memory
    model = _mlp()
    trainer = Trainer(model, torch.optim.Adam(model.parameters(), lr=0.05), nn.CrossEntropyLoss(),
                      device="cuda", precision=precision, metrics={"acc": accuracy}, progress=False,
                      max_grad_norm=1.0, seed=0)  # fmt: skip
    assert trainer.scaler.is_enabled() == (trainer.precision == "fp16")
    history = trainer.fit(train, val, epochs=3)
    assert next(model.parameters()).device.type == "cuda"
    assert history["val_acc"][-1] > 0.95


@needs_cuda
def test_cuda_batch_on_the_cpu_model_on_the_gpu_is_named() -> None:
    model = _mlp()
    trainer = _trainer(model)  # on the CPU
    model.to("cuda")
    with pytest.raises(
        RuntimeError,
        match=r"device mismatch at epoch 1/1, step 1/8: .* on cuda:0 but the batch is on cpu",
    ):
        trainer.fit(_loaders()[0], epochs=1)
