"""The issue-3 benchmark scripts run end to end at tiny sizes and write honest reports.

Their numbers are not checked (timings belong in bench/results, not in tests); what is
checked is that each script runs, compares what it says it compares, and reports it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(BENCH / name), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
def test_trainer_overhead_trains_both_sides_alike(tmp_path: Path) -> None:
    run_script("trainer_overhead.py", "--setups", "tiny", "--repeat", "1", "--warmup", "0",
               "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "trainer_overhead.json").read_text())
    (result,) = report["setups"]
    assert result["fair"] and result["weights"]["identical"]  # same training on both sides
    assert result["ratio"] > 0 and result["steps_per_epoch"] == 512
    assert "Trainer overhead" in (tmp_path / "trainer_overhead.md").read_text()


@pytest.mark.slow
def test_gpu_precision_runs_its_workloads_on_cpu(tmp_path: Path) -> None:
    run_script("gpu_precision.py", "--device", "cpu", "--small", "--repeat", "1", "--steps", "1",
               "--warmup", "1", "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "gpu_precision.json").read_text())
    assert [r["workload"] for r in report["results"]] == ["gpt", "cnn"]
    for r in report["results"]:
        assert set(r["median_seconds_per_step"]) == {"fp32", "bf16"}  # no TF32 off CUDA
        assert r["speedup_bf16_over_fp32"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the report without a GPU")
def test_gpu_precision_says_not_measured_without_cuda(tmp_path: Path) -> None:
    run_script("gpu_precision.py", "--out", str(tmp_path))
    text = (tmp_path / "gpu_precision.md").read_text()
    assert "**Not measured**: no CUDA device" in text
    assert json.loads((tmp_path / "gpu_precision.json").read_text())["results"] == []


@pytest.mark.slow
def test_attention_bench_compares_three_implementations(tmp_path: Path) -> None:
    run_script("attention.py", "--lengths", "8", "16", "--batch", "1", "--heads", "2",
               "--head-dim", "4", "--repeat", "1", "--steps", "1", "--warmup", "0",
               "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "attention.json").read_text())
    assert [r["T"] for r in report["results"]] == [8, 16]
    for r in report["results"]:
        assert set(r["max_relative_difference"]) == {"dlkit.nn", "numpy", "torch"}
        assert max(r["max_relative_difference"].values()) < 1e-4  # the same computation
        assert r["ratio_dlkit_vs_torch"] > 0 and r["saved_bytes"]["numpy"] > 0
    assert set(report["scaling"]["time"]) == {"dlkit.nn", "numpy", "torch"}
    assert "dlkit.nn vs NumPy vs torch" in (tmp_path / "attention.md").read_text()


@pytest.mark.slow
def test_kv_cache_bench_compares_both_decoding_paths(tmp_path: Path) -> None:
    run_script("kv_cache.py", "--tiny", "--lengths", "24", "40", "--prompt", "8", "--repeat",
               "2", "--warmup", "0", "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "kv_cache.json").read_text())
    assert [r["total_length"] for r in report["results"]] == [24, 40]
    for r in report["results"]:
        assert r["same_tokens"] and r["new_tokens"] == r["total_length"] - 8
        assert set(r["median_tokens_per_s"]) == {"cached", "recompute"}
        assert len(r["seconds"]["cached"]) == len(r["seconds"]["recompute"]) == 2
        assert r["speedup"] == pytest.approx(
            r["median_tokens_per_s"]["cached"] / r["median_tokens_per_s"]["recompute"]
        )
    text = (tmp_path / "kv_cache.md").read_text()
    assert "KV-cache decoding" in text and "not assessed" in text  # T = 256 was not run


def test_bpe_bench_compares_both_trainers(tmp_path: Path) -> None:
    run_script("bpe.py", "--corpus-bytes", "20000", "--vocab-size", "300", "--repeat", "1",
               "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "bpe.json").read_text())
    result = report["result"]
    assert report["settings"]["RAYON_NUM_THREADS"] == "1"  # the Rust side runs on one core
    assert 19_000 <= result["corpus"]["bytes"] <= 20_000
    assert result["merges"] == {"dlkit": 44, "tokenizers": 44}
    assert result["agreement"]["identical_with_hf_byte_numbering"]
    assert result["agreement"]["tokens_dlkit"] > 0 and result["ratio_train"] > 0
    assert "dlkit.text vs Hugging Face tokenizers" in (tmp_path / "bpe.md").read_text()


def test_token_sampler_bench_times_old_and_new_loaders(tmp_path: Path) -> None:
    run_script("token_sampler.py", "--smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "token_sampler.json").read_text())
    result = report["result"]
    assert report["settings"]["tokens"] == 5000 and report["settings"]["threads"] == 1
    for side in ("old, stride 1", "old, stride T", "new"):
        assert result[side]["first"]["median"] > 0 and result[side]["steady"]["median"] > 0
    assert set(result["ratio_first_batch"]) == {"old, stride 1", "old, stride T"}
    assert result["short_batches_old_stride_T"] == {
        "windows": 312, "batches": 63, "last_batch_size": 2
    }  # fmt: skip
    text = (tmp_path / "token_sampler.md").read_text()
    assert "old CharBlocks loader vs random_window_loader" in text


@pytest.mark.slow
def test_pretrain_throughput_bench_times_three_sides(tmp_path: Path) -> None:
    run_script("pretrain_throughput.py", "--smoke", "--repeat", "2", "--warmup", "0",
               "--profile-steps", "1", "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "pretrain_throughput.json").read_text())
    (r,) = report["results"]
    sides = ["dlkit (train_lm)", "dlkit GPT, plain loop", "torch (plain loop)"]
    assert report["settings"]["sides"] == sides and report["settings"]["threads"] == 1
    assert r["parameters"] == 91_520  # checked equal for all three models by the script
    for clock in ("wall", "cpu"):
        med = r[clock]["median_tokens_per_s"]
        assert all(len(r[clock]["seconds"][side]) == 2 and med[side] > 0 for side in sides)
        assert r[clock]["ratio_dlkit_vs_torch"] == pytest.approx(med[sides[0]] / med[sides[2]])
        assert r[clock]["ratio_trainer_vs_plain"] == pytest.approx(med[sides[0]] / med[sides[1]])
    where = r["where_the_time_goes"]
    for side in sides:
        assert where["top_ops"][side] and sum(where["groups"][side].values()) == pytest.approx(1)
        assert where["groups"][side]["matrix products"] > 0  # the profiler saw the matmuls
    assert set(where["phases"]) == set(sides[1:])
    assert "Where the time goes" in (tmp_path / "pretrain_throughput.md").read_text()


@pytest.mark.slow
def test_generation_bench_compares_cached_and_recomputed(tmp_path: Path) -> None:
    run_script("generation.py", "--random-init", "--tiny", "--lengths", "12", "20", "--repeat",
               "2", "--warmup", "0", "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "generation.json").read_text())
    assert [(r["total_length"], r["mode"]) for r in report["results"]] == [
        (12, "greedy"), (12, "sampled"), (20, "greedy"), (20, "sampled")
    ]  # fmt: skip
    prompt = report["settings"]["prompt_tokens"]
    for r in report["results"]:
        assert r["same_tokens"] and r["new_tokens"] == r["total_length"] - prompt
        assert len(r["last_output_ids"]) == r["total_length"]
        assert r["speedup"] == pytest.approx(
            r["median_tokens_per_s"]["cached"] / r["median_tokens_per_s"]["recompute"]
        )
    text = (tmp_path / "generation.md").read_text()
    assert "Random initialisation, not the shipped checkpoint" in text


def test_generation_bench_says_how_to_build_a_missing_checkpoint(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "generation.py"), "--checkpoint", str(tmp_path / "none"),
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2 and not (tmp_path / "generation.json").exists()
    assert "tasks.py build checkpoint" in result.stderr and "--random-init" in result.stderr


@pytest.mark.slow
def test_scaling_bench_trains_each_size_and_fits_the_power_law(tmp_path: Path) -> None:
    run_script("scaling.py", "--smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "scaling.json").read_text())
    results = report["results"]
    assert [r["size"]["name"] for r in results] == ["XS", "S", "M"]
    for r in results:
        assert r["tokens"] == 8 * 4 * 16 and r["non_embedding_parameters"] < r["parameters"]
        assert r["flops"] == 6 * r["parameters"] * r["tokens"]
        assert [row["step"] for row in r["curve"]] == [4, 8] and r["final_val_bpb"] > 0
    law = report["fits"]["power_law"]
    assert law["predicted"] == pytest.approx(
        [law["a"] * r["flops"] ** -law["b"] for r in results], rel=1e-9
    )
    assert "Scaling sweep" in (tmp_path / "scaling.md").read_text()


@pytest.mark.slow
def test_checkpoint_quality_bench_scores_the_model_and_both_baselines(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    subprocess.run(
        [sys.executable, str(BENCH.parent / "tools" / "build_checkpoint.py"), "--smoke",
         "--out", str(checkpoint), "--no-progress"],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    run_script("checkpoint_quality.py", "--checkpoint", str(checkpoint), "--max-tokens", "1500",
               "--out", str(tmp_path))  # fmt: skip
    report = json.loads((tmp_path / "checkpoint_quality.json").read_text())
    assert [r["split"] for r in report["rows"]] == ["val", "test", "ood"]
    for r in report["rows"]:
        assert r["n_tokens"] == 1500
        for name in ("gpt", "bigram", "unigram"):
            s = r[name]
            assert s["perplexity"] == pytest.approx(math.exp(s["nats_per_token"]))
            assert s["bits_per_byte"] == pytest.approx(
                s["nats_per_token"] * r["n_tokens"] / (r["n_bytes"] * math.log(2))
            )
        assert r["bigram"]["bits_per_byte"] < r["unigram"]["bits_per_byte"]
    assert "GPT / bigram" in (tmp_path / "checkpoint_quality.md").read_text()


def test_finetune_ladder_bench_runs_every_method_and_forgetting(tmp_path: Path) -> None:
    run_script("finetune_ladder.py", "--smoke", "--out", str(tmp_path))
    report = json.loads((tmp_path / "finetune_ladder.json").read_text())
    methods = ["scratch", "probe", "last_block", "full", "lora"]
    assert report["settings"]["smoke"] is True
    assert [r["method"] for r in report["rows"]] == methods
    assert [r["method"] for r in report["summary"]] == methods
    by = {r["method"]: r for r in report["rows"]}
    assert by["scratch"]["trainable_params"] == by["full"]["trainable_params"]
    assert by["probe"]["trainable_params"] < by["lora"]["trainable_params"]
    assert by["lora"]["trainable_params"] < by["full"]["trainable_params"]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in report["rows"])
    assert [r["method"] for r in report["forgetting"]][:2] == ["full", "lora"]
    for r in report["forgetting"]:
        assert r["lm_loss_increase"] == pytest.approx(r["lm_loss_after"] - r["lm_loss_before"])
    assert report["bag_of_tokens"] and "Smoke run" in (tmp_path / "finetune_ladder.md").read_text()
