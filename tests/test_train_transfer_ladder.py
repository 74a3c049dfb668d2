"""The transfer ladder at toy size: each method trains what it says, runs are reproducible."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dlkit.data.docstring_areas import AreaSplits, load_docstring_areas
from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.train.transfer_ladder import (
    DEFAULT_RECIPES,
    METHODS,
    FinetuneRecipe,
    bag_of_tokens_baseline,
    build_classifier,
    forgetting,
    format_ladder_table,
    length_grouped_batches,
    lm_loss,
    predict,
    run_ladder,
    summarize_ladder,
    train_classifier,
)

PAD = 2045
TINY = {m: FinetuneRecipe(lr=3e-3, epochs=1, min_steps=2, batch_size=4) for m in DEFAULT_RECIPES}


def tiny_gpt(seed: int = 123, vocab: int = 2048) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig.modern(vocab, 16, 2, 2, 16, dropout=0.0))


@pytest.fixture(scope="module")
def data() -> AreaSplits:
    d = load_docstring_areas(max_tokens=8)
    keep = np.arange(0, len(d.y_test), 10)  # 35 test documents, 5 per class
    return dataclasses.replace(
        d, test_ids=[d.test_ids[i] for i in keep], y_test=d.y_test[keep],
        test_documents=tuple(d.test_documents[i] for i in keep),
    )  # fmt: skip


def test_recipe_steps_are_epochs_clipped_to_the_bounds() -> None:
    r = FinetuneRecipe(lr=1e-3, epochs=8, min_steps=200, max_steps=600, batch_size=16)
    assert r.steps(70) == 200 and r.steps(700) == 8 * 44 and r.steps(1600) == 600
    with pytest.raises(ValueError, match="lr > 0"):
        FinetuneRecipe(lr=0.0)
    with pytest.raises(ValueError, match="layer_decay"):
        FinetuneRecipe(lr=1e-3, layer_decay=1.5)


def test_length_grouped_batches_cover_every_index_once() -> None:
    lengths = np.random.default_rng(0).integers(1, 100, size=203)
    batches = length_grouped_batches(lengths, 8, np.random.default_rng(1), chunk=4)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(203)) and max(len(b) for b in batches) == 8
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(np.arange(203), 26)])
    assert spread < random_spread / 2  # batches of similar lengths: little padding


def test_each_method_trains_exactly_its_parameters(data: AreaSplits) -> None:
    backbone = tiny_gpt()
    K, C = data.num_classes, 16
    total = backbone.num_parameters()
    models = {m: build_classifier(m, backbone, K, seed=0, pad_id=PAD) for m in METHODS}
    trainable = {
        m: {n for n, p in model.named_parameters() if p.requires_grad}
        for m, model in models.items()
    }
    assert trainable["probe"] == {"classifier.weight", "classifier.bias"}
    assert trainable["last_block"] == {"classifier.weight", "classifier.bias"} | {
        f"backbone.{n}" for n, _ in backbone.named_parameters()
        if n.startswith(("decoder.blocks.1.", "decoder.norm."))
    }  # fmt: skip
    assert (
        len(trainable["full"]) == len(trainable["scratch"]) == len(list(backbone.parameters())) + 2
    )
    lora_numel = sum(
        p.numel() for n, p in models["lora"].named_parameters() if n in trainable["lora"]
    )
    per_block = 8 * (C + C) + 3 * 8 * (C + backbone.config.d_ff)  # r (in + out) per target
    assert lora_numel == 2 * per_block + C * K + K
    assert all("lora_" in n or n.startswith("classifier") for n in trainable["lora"])
    # scratch starts from new weights; the others from the backbone's
    emb = "backbone.decoder.embed.tok_emb.weight"
    assert torch.equal(
        models["full"].state_dict()[emb], backbone.state_dict()["decoder.embed.tok_emb.weight"]
    )
    assert not torch.equal(models["scratch"].state_dict()[emb], models["full"].state_dict()[emb])
    assert sum(p.numel() for p in models["full"].backbone.parameters()) == total
    with pytest.raises(ValueError, match="unknown method"):
        build_classifier("adapters", backbone, K, seed=0, pad_id=PAD)


def test_training_learns_a_separable_toy_task() -> None:
    rng = np.random.default_rng(0)
    ids = [[5 + 2 * (i % 2)] * int(rng.integers(2, 9)) for i in range(64)]  # class = token
    y = np.arange(64) % 2
    model = build_classifier("full", tiny_gpt(vocab=64), 2, seed=0, pad_id=60)
    before = (predict(model, ids, max_len=8) == y).mean()
    info = train_classifier(model, ids, y, FinetuneRecipe(lr=1e-2, epochs=4), seed=0, max_len=8)
    assert info["steps"] == 16 and info["final_loss"] < 0.1
    assert (predict(model, ids, max_len=8) == y).mean() == 1.0 > before


def test_run_ladder_rows_are_reproducible_and_leave_the_backbone_alone(data: AreaSplits) -> None:
    backbone = tiny_gpt()
    state = {k: v.clone() for k, v in backbone.state_dict().items()}
    kw = {"data": data, "backbone": backbone, "labels_per_class": (2,), "recipes": TINY,
          "probe_steps": 5}  # fmt: skip
    rows = run_ladder(seeds=(0, 1), **kw)
    assert [(r["method"], r["seed"]) for r in rows] == [(m, s) for m in METHODS for s in (0, 1)]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["labels_per_class"] == 2
        assert 0 < r["trainable_params"] <= r["total_params"] and r["seconds"] > 0
    by = {(r["method"], r["seed"]): r for r in rows}
    assert by[("full", 0)]["trainable_params"] == by[("full", 0)]["total_params"]
    assert by[("probe", 0)]["trainable_params"] == 16 * 7 + 7
    again = run_ladder(seeds=(0,), methods=("full", "lora"), **kw)
    assert [r["accuracy"] for r in again] == [
        by[("full", 0)]["accuracy"],
        by[("lora", 0)]["accuracy"],
    ]
    assert all(torch.equal(v, state[k]) for k, v in backbone.state_dict().items())
    with pytest.raises(ValueError, match="unknown methods"):
        run_ladder(methods=("nope",), **kw)


def test_summary_and_table() -> None:
    rows = [
        {"method": m, "labels_per_class": k, "seed": s, "accuracy": a, "trainable_params": 10,
         "total_params": 1000, "seconds": 1.0}
        for m, k, s, a in [("full", 10, 0, 0.5), ("full", 10, 1, 0.7), ("lora", 10, 0, 0.6)]
    ]  # fmt: skip
    summary = summarize_ladder(rows)
    full = summary[0]
    assert full["accuracy_mean"] == pytest.approx(0.6)
    assert full["accuracy_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summary[1]["accuracy_std"] == 0.0 and full["trainable_fraction"] == 0.01
    table = format_ladder_table(summary)
    assert "| full | 60.0 ± 14.1 | 10 (1.0%) | 1 |" in table and "10 / class" in table


def test_lm_loss_and_forgetting(data: AreaSplits) -> None:
    gpt = tiny_gpt()
    tokens = np.random.default_rng(0).integers(0, 2048, size=200).astype(np.uint16)
    loss = lm_loss(gpt, tokens, max_tokens=100)
    with torch.no_grad():
        x = torch.as_tensor(tokens[:113].astype(np.int64))
        manual = []  # windows of 16 inputs, the first 100 targets scored once each
        for s in range(0, 100, 16):
            n = min(16, 100 - s)
            logits = gpt(x[s : s + n].unsqueeze(0))[0]  # (n, V)
            manual.append(
                torch.nn.functional.cross_entropy(logits, x[s + 1 : s + 1 + n], reduction="sum")
            )
    assert loss == pytest.approx(float(sum(manual)) / 100, rel=1e-5)
    rows = forgetting(data=data, backbone=gpt, lm_tokens=tokens, labels_per_class=2,
                      recipes=TINY, max_tokens=100)  # fmt: skip
    assert [r["method"] for r in rows] == ["full", "lora", "full, lr × 0.1"]
    assert rows[2]["lr"] == pytest.approx(0.1 * rows[0]["lr"])
    assert all(r["lm_loss_before"] == pytest.approx(loss) for r in rows)
    assert all(r["lm_loss_after"] != r["lm_loss_before"] for r in rows)  # the LM path moved


def test_bag_of_tokens_baseline_rows(data: AreaSplits) -> None:
    rows = bag_of_tokens_baseline(data, labels_per_class=(2, 10), seeds=(0,))
    assert [r["labels_per_class"] for r in rows] == [2, 10]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)


def test_discriminative_rates_move_lower_layers_less() -> None:
    ids = [[5 + 2 * (i % 2)] * 4 for i in range(32)]
    y = np.arange(32) % 2
    moved = {}
    for decay in (1.0, 0.01):
        backbone = tiny_gpt(vocab=64)
        model = build_classifier("full", backbone, 2, seed=0, pad_id=60)
        recipe = FinetuneRecipe(lr=1e-2, epochs=2, layer_decay=decay, weight_decay=0.0)
        train_classifier(model, ids, y, recipe, seed=0, max_len=4)
        emb = model.backbone.decoder.embed.tok_emb.weight
        moved[decay] = float((emb - backbone.decoder.embed.tok_emb.weight).detach().abs().max())
    assert 0 < moved[0.01] < moved[1.0] / 5  # embedding lr = 1e-2 · 0.01^(L+2-1)
