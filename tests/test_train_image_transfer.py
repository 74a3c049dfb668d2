"""Transfer from digits 0-4 to digits 5-9 (dlkit.train.image_transfer)."""

import numpy as np
import pytest
import torch

from dlkit.data.digits import load_digits
from dlkit.nn.freezing import count_parameters
from dlkit.optim.param_groups import discriminative_lr_groups
from dlkit.train.image_transfer import (
    QUICK_RECIPE,
    SOURCE_CLASSES,
    TARGET_CLASSES,
    DigitCNN,
    digit_transfer,
    format_transfer,
    pretrain_source,
    summarize,
    transfer_split,
)


@pytest.fixture(scope="module")
def data():
    return load_digits(seed=0, images=True)


@pytest.mark.parametrize("hidden", [None, 16])
def test_cnn_shapes_and_layer_prefixes(hidden):
    torch.manual_seed(0)
    model = DigitCNN(5, channels=4, hidden=hidden)
    x = torch.randn(3, 1, 8, 8)
    assert model.features(x).shape == (3, 4 * 2 * 16)
    assert model(x).shape == (3, 5)
    groups = discriminative_lr_groups(model, model.layer_prefixes(), base_lr=1.0, decay=0.5)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    before = model.head
    model.new_head(3)
    assert model.head is not before and model(x).shape == (3, 3)
    with pytest.raises(ValueError, match=r"\(B, 1, 8, 8\)"):
        model(torch.randn(3, 64))


def test_transfer_split_keeps_and_relabels_classes(data):
    x, y = transfer_split(data, TARGET_CLASSES, "train")
    keep = np.isin(data.y_train, TARGET_CLASSES)
    assert x.shape == (keep.sum(), 1, 8, 8)
    np.testing.assert_array_equal(y.numpy(), data.y_train[keep] - 5)
    _, ys = transfer_split(data, SOURCE_CLASSES, "test")
    assert set(ys.tolist()) == set(range(5))
    with pytest.raises(ValueError, match="split"):
        transfer_split(data, TARGET_CLASSES, "dev")


def test_pretrained_source_learns_digits_0_to_4(data):
    _, acc = pretrain_source(seed=0, data=data, recipe=QUICK_RECIPE)
    assert acc > 0.85


def test_quick_transfer_rows(data):
    rows = digit_transfer(labels_per_class=(5,), seeds=(0,), recipe=QUICK_RECIPE, data=data)
    assert [r["method"] for r in rows] == ["scratch", "probe", "finetune"]
    by = {r["method"]: r for r in rows}
    full = count_parameters(DigitCNN(5, channels=QUICK_RECIPE.channels, hidden=QUICK_RECIPE.hidden))
    assert by["scratch"]["trainable"] == by["finetune"]["trainable"] == full.total
    assert by["probe"]["trainable"] == 5 * (16 * 2 * QUICK_RECIPE.channels) + 5  # the head only
    for r in rows:
        assert set(r) == {"method", "labels_per_class", "seed", "accuracy", "trainable", "seconds"}
        assert 0.5 < r["accuracy"] <= 1.0  # 25 labels: far above chance (0.2)
    again = digit_transfer(labels_per_class=(5,), seeds=(0,), recipe=QUICK_RECIPE, data=data)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows]  # seeded


def test_summarize_means_stds_and_paired_gain():
    rows = [
        {
            "method": m,
            "labels_per_class": 1,
            "seed": s,
            "accuracy": a,
            "trainable": 7,
            "seconds": 1.0,
        }
        for m, accs in (("scratch", [0.5, 0.7, 0.6]), ("probe", [0.6, 0.9, 0.6]))
        for s, a in enumerate(accs)
    ]
    out = {r["method"]: r for r in summarize(rows)}
    assert out["probe"]["mean"] == pytest.approx(0.7)
    assert out["probe"]["std"] == pytest.approx(np.std([0.6, 0.9, 0.6], ddof=1))
    assert out["probe"]["gain"] == pytest.approx((0.1 + 0.2 + 0.0) / 3)
    assert out["scratch"]["gain"] is None and out["scratch"]["seeds"] == 3
    table = format_transfer(summarize(rows))
    assert "| probe | 7 | 70.0 ± 17.3 (+10.0) |" in table


def test_bad_arguments(data):
    with pytest.raises(ValueError, match="unknown methods"):
        digit_transfer(methods=("lora",), data=data)
    with pytest.raises(ValueError, match="evaluate_on"):
        digit_transfer(methods=("probe",), evaluate_on="train", data=data, recipe=QUICK_RECIPE)
