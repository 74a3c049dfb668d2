"""Checkpoints: exact round trips, atomic writes, and errors that name the file and the problem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlkit.train import CheckpointError, load_checkpoint, maybe_compile, save_checkpoint


def _model(hidden: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def _trained(hidden: int = 4):
    torch.manual_seed(0)
    model = _model(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        model(torch.randn(5, 3)).sum().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return model, opt, sched


def _save(path, model, opt=None, sched=None, **kwargs):
    args = {"epoch": 2, "step": 5, "history": {"loss": [1.0, 0.5]}, **kwargs}
    return save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, **args)


def test_round_trip_restores_everything(tmp_path) -> None:
    model, opt, sched = _trained()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    path = save_checkpoint(
        tmp_path / "run" / "last.pt",  # the folder is created
        model=model,
        optimizer=opt,
        scheduler=sched,
        scaler=scaler,
        epoch=1,
        step=7,
        global_step=19,
        history={"loss": [0.9], "val_loss": [1.1]},
        extra={"note": "hello", "counts": [1, 2]},
    )
    expected_draw = torch.rand(3)  # what comes next after the save

    torch.manual_seed(99)
    fresh = _model()
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, step_size=1, gamma=0.5)
    meta = load_checkpoint(
        path, model=fresh, optimizer=fresh_opt, scheduler=fresh_sched, scaler=scaler
    )

    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    saved_state, loaded_state = opt.state_dict()["state"], fresh_opt.state_dict()["state"]
    for index, slots in saved_state.items():
        for slot, value in slots.items():
            assert torch.equal(value, loaded_state[index][slot]), (index, slot)
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.1 * 0.5**3
    assert fresh_sched.state_dict() == sched.state_dict()
    assert torch.equal(torch.rand(3), expected_draw)  # RNG restored to the moment of saving
    assert (meta["epoch"], meta["step"], meta["global_step"]) == (1, 7, 19)
    assert meta["history"] == {"loss": [0.9], "val_loss": [1.1]}
    assert meta["extra"] == {"note": "hello", "counts": [1, 2]}
    assert meta["torch_version"] == torch.__version__ and meta["format_version"] == 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")  # torch.compile's imports
def test_wrapped_models_are_saved_unwrapped(tmp_path) -> None:
    model = _model()
    _save(tmp_path / "c.pt", maybe_compile(model, enabled=True))
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    assert list(payload["model"]) == list(model.state_dict())  # no "_orig_mod." prefix
    load_checkpoint(tmp_path / "c.pt", model=_model())


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    model, opt, _ = _trained()
    path = _save(tmp_path / "last.pt", model, opt, step=1)
    good = path.read_bytes()
    real_save = torch.save

    def crash_half_way(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)
        file.seek(0)
        file.truncate(len(good) // 2)  # partial bytes on disk, then the "crash"
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        _save(path, model, opt, step=2)
    monkeypatch.undo()

    assert path.read_bytes() == good
    assert load_checkpoint(path, model=_model())["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_missing_file_names_the_file(tmp_path) -> None:
    _save(tmp_path / "other.pt", _model())
    with pytest.raises(CheckpointError, match=r"last\.pt does not exist.*holds \['other\.pt'\]"):
        load_checkpoint(tmp_path / "last.pt", model=_model())


def test_empty_file(tmp_path) -> None:
    (tmp_path / "e.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"e\.pt is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "e.pt", model=_model())


def test_truncated_file(tmp_path) -> None:
    data = _save(tmp_path / "full.pt", _model()).read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt \(\d+ bytes\) is truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt", model=_model())


def test_not_a_torch_file(tmp_path) -> None:
    (tmp_path / "notes.pt").write_text("these are my notes")
    with pytest.raises(CheckpointError, match=r"notes\.pt .* is not a PyTorch file"):
        load_checkpoint(tmp_path / "notes.pt", model=_model())


def test_bare_state_dict_is_not_a_dlkit_checkpoint(tmp_path) -> None:
    torch.save(_model().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(
        CheckpointError, match=r"weights\.pt is a PyTorch file but not a dlkit checkpoint.*0\.bias"
    ):
        load_checkpoint(tmp_path / "weights.pt", model=_model())


def test_unsafe_objects_are_refused(tmp_path) -> None:
    _save(tmp_path / "x.pt", _model(), extra={"callable": torch.nn.ReLU()})
    with pytest.raises(CheckpointError, match=r"x\.pt holds Python objects that safe loading"):
        load_checkpoint(tmp_path / "x.pt", model=_model())


def test_incompatible_model_lists_keys_and_shapes(tmp_path) -> None:
    _save(tmp_path / "small.pt", _model(hidden=4))
    with pytest.raises(CheckpointError) as shapes:
        load_checkpoint(tmp_path / "small.pt", model=_model(hidden=8))
    message = str(shapes.value)
    assert "small.pt does not fit Sequential" in message
    assert "0.weight: checkpoint (4, 3) vs model (8, 3)" in message
    assert "2.weight: checkpoint (2, 4) vs model (2, 8)" in message

    deeper = nn.Sequential(*_model(), nn.Linear(2, 2))
    with pytest.raises(CheckpointError, match=r"2 missing key\(s\).*3\.weight, 3\.bias"):
        load_checkpoint(tmp_path / "small.pt", model=deeper)
    with pytest.raises(CheckpointError, match=r"2 unexpected key\(s\).*2\.weight, 2\.bias"):
        load_checkpoint(tmp_path / "small.pt", model=nn.Sequential(nn.Linear(3, 4)))


def test_optimizer_mismatch(tmp_path) -> None:
    model, opt, _ = _trained()
    _save(tmp_path / "adam.pt", model, opt)
    other = _model()
    with pytest.raises(CheckpointError, match=r"adam\.pt holds Adam optimizer state.*is SGD"):
        load_checkpoint(
            tmp_path / "adam.pt", model=other, optimizer=torch.optim.SGD(other.parameters(), lr=0.1)
        )
    one_group = torch.optim.Adam(list(other.parameters())[:2], lr=0.1)
    with pytest.raises(CheckpointError, match=r"adam\.pt: the optimizer state does not fit"):
        load_checkpoint(tmp_path / "adam.pt", model=other, optimizer=one_group)
    _save(tmp_path / "no_opt.pt", model)
    with pytest.raises(CheckpointError, match=r"no_opt\.pt holds no optimizer state"):
        load_checkpoint(
            tmp_path / "no_opt.pt", model=other, optimizer=torch.optim.Adam(other.parameters())
        )


def test_a_failed_load_leaves_model_and_optimizer_unchanged(tmp_path) -> None:
    model, opt, sched = _trained()
    _save(tmp_path / "adam.pt", model, opt, sched)
    torch.manual_seed(1)
    other = _model()
    other_opt = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    other(torch.randn(2, 3)).sum().backward()
    other_opt.step()  # a momentum buffer to keep
    weights = {k: v.clone() for k, v in other.state_dict().items()}
    buffers = [s["momentum_buffer"].clone() for s in other_opt.state.values()]
    with pytest.raises(CheckpointError, match="is SGD"):
        load_checkpoint(tmp_path / "adam.pt", model=other, optimizer=other_opt)
    for name, value in other.state_dict().items():
        assert torch.equal(value, weights[name]), f"{name} changed by a failed load"
    for state, before in zip(other_opt.state.values(), buffers, strict=True):
        assert torch.equal(state["momentum_buffer"], before)


@pytest.mark.parametrize(
    "make",
    [
        lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1),
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10),
        lambda opt: torch.optim.lr_scheduler.SequentialLR(
            opt,
            [
                torch.optim.lr_scheduler.LinearLR(opt),
                torch.optim.lr_scheduler.CosineAnnealingLR(opt, 5),
            ],
            milestones=[2],
        ),
    ],
    ids=["plateau", "onecycle", "sequential"],
)
def test_common_schedulers_load_safely(tmp_path, make) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = make(opt)
    _save(tmp_path / "s.pt", model, opt, sched)
    fresh_opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fresh = make(fresh_opt)
    load_checkpoint(tmp_path / "s.pt", model=model, optimizer=fresh_opt, scheduler=fresh)
    assert str(fresh.state_dict()) == str(sched.state_dict())
