"""The shipped pretrained GPT (``dlkit/assets/gpt_small/``) and the script that builds it.

The build script's smoke mode and the loader run here on their own. The checks of the shipped
folder skip until it has been built (``python3 tasks.py build checkpoint``); from then on
they check its files against the manifest, that it loads and generates, and that the logged
bits per byte (recomputed here on validation) beat the bigram baseline.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dlkit.data.corpus import CORPUS_DIR, TOKENIZER_FILES, corpus_stats, load_tokens
from dlkit.data.manifest import ManifestError, sha256_file, verify_manifest, write_manifest
from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.nn.weights import read_config, save_weights
from dlkit.train.lm_metrics import bits_per_byte, evaluate_lm
from dlkit.train.pretrained import PRETRAINED_DIR, load_pretrained_gpt, pretrained_log

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "tools" / "build_checkpoint.py"
FILES = {"MANIFEST.json", "config.json", "model.safetensors", "train_log.json", *TOKENIZER_FILES}
MAX_BYTES = 10 * 2**20

needs_checkpoint = pytest.mark.skipif(
    not (PRETRAINED_DIR / "MANIFEST.json").is_file(),
    reason="dlkit/assets/gpt_small/ is not built yet: run `python3 tasks.py build checkpoint`",
)


# ---------------------------------------------------------------- the shipped checkpoint
@needs_checkpoint
def test_shipped_files_match_their_manifest_and_size_limit() -> None:
    meta = verify_manifest(PRETRAINED_DIR)
    assert {p.name for p in PRETRAINED_DIR.iterdir()} == FILES
    for path in PRETRAINED_DIR.iterdir():
        assert path.stat().st_size <= MAX_BYTES, path.name
    assert meta["smoke"] is False
    config = read_config(PRETRAINED_DIR)
    for name in TOKENIZER_FILES:  # the corpus's tokenizer, byte for byte
        assert config["tokenizer_sha256"][name] == sha256_file(CORPUS_DIR / name)
        assert sha256_file(PRETRAINED_DIR / name) == sha256_file(CORPUS_DIR / name)
    assert config["corpus_manifest_sha256"] == sha256_file(CORPUS_DIR / "MANIFEST.json")


@needs_checkpoint
def test_shipped_model_loads_and_generates() -> None:
    model, tokenizer = load_pretrained_gpt()
    assert not model.training
    assert model.config.vocab_size == tokenizer.vocab_size == 2048
    prompt = tokenizer.encode("Return the number of")
    first = model.generate(prompt, 24, temperature=0.8, top_k=40, seed=0)
    again = model.generate(prompt, 24, temperature=0.8, top_k=40, seed=0)
    assert torch.equal(first, again)
    assert first.shape == (1, len(prompt) + 24)
    assert tokenizer.decode(first[0].tolist()).startswith("Return the number of")
    greedy = model.generate(prompt, 16, temperature=0.0)
    assert torch.equal(greedy, model.generate(prompt, 16, temperature=0.0, use_cache=False))


@needs_checkpoint
def test_shipped_model_beats_the_bigram_baseline_as_logged() -> None:
    log = pretrained_log()
    for split, margin in (("val", 0.95), ("test", 0.95), ("ood", 1.0)):
        ours, base = log["final"][split]["bits_per_byte"], log["baselines"][split]
        # clearly better in distribution (5% fewer bits), better on the reference prose
        assert ours < margin * base["bigram"]["bits_per_byte"], split
        assert base["bigram"]["bits_per_byte"] < base["unigram"]["bits_per_byte"], split
    # the logged validation number is the one the shipped weights give (same evaluation)
    model, _ = load_pretrained_gpt()
    context = read_config(PRETRAINED_DIR)["training"]["context"]
    nats = evaluate_lm(model, load_tokens("val"), context)
    stats = corpus_stats("val")
    recomputed = bits_per_byte(nats, stats["n_tokens"], stats["n_bytes"])
    assert recomputed == pytest.approx(log["final"]["val"]["bits_per_byte"], rel=1e-5)
    assert log["history"] and log["best_step"] in [row["step"] for row in log["history"]]


# ---------------------------------------------------------------- the loader
def _tiny_folder(folder: Path) -> GPT:
    """A checkpoint folder as the build writes it, for a tiny untrained model."""
    torch.manual_seed(0)
    model = GPT(GPTConfig.gpt2(2048, 16, 1, 2, 16))
    save_weights(model, folder, config={"model": model.config.to_dict()})
    for name in TOKENIZER_FILES:
        shutil.copyfile(CORPUS_DIR / name, folder / name)
    (folder / "train_log.json").write_text(json.dumps({"history": []}) + "\n", "utf-8")
    write_manifest(folder, meta={"smoke": True})
    return model


def test_loader_reads_a_folder_and_checks_its_manifest(tmp_path: Path) -> None:
    model = _tiny_folder(tmp_path)
    loaded, tokenizer = load_pretrained_gpt(folder=tmp_path)
    assert tokenizer.vocab_size == 2048 and not loaded.training
    ids = torch.tensor([tokenizer.encode("def f(x): return x")])
    with torch.no_grad():
        assert torch.equal(loaded(ids), model.eval()(ids))
    assert pretrained_log(folder=tmp_path) == {"history": []}
    (tmp_path / "train_log.json").write_text('{"history": [1]}\n', "utf-8")  # tampered
    with pytest.raises(ManifestError, match=r"train_log\.json"):
        load_pretrained_gpt(folder=tmp_path)


def test_loader_says_how_to_build_a_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tasks\.py build checkpoint"):
        load_pretrained_gpt(folder=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"MANIFEST\.json missing"):
        pretrained_log(folder=tmp_path / "nowhere")


# ---------------------------------------------------------------- the build script
def _smoke(out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(BUILD), "--smoke", "--out", str(out), "--no-progress"]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.slow  # two smoke builds: about 10 s each on a loaded 2-core machine
def test_smoke_build_writes_a_loadable_folder_deterministically(tmp_path: Path) -> None:
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        done = _smoke(folder)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "bpb" in done.stdout
    a, b = folders
    assert {p.name for p in a.iterdir()} == FILES
    meta = verify_manifest(a)
    assert meta["smoke"] is True and meta["n_parameters"] > 0
    for name in ("model.safetensors", "config.json"):  # same seed and versions: same bytes
        assert sha256_file(a / name) == sha256_file(b / name), name
    model, tokenizer = load_pretrained_gpt(folder=a)
    assert model.generate(tokenizer.encode("The"), 5, seed=1).shape == (1, 6)
    log = pretrained_log(folder=a)
    assert [row["step"] for row in log["history"]] == [3, 6]
    assert set(log["final"]) == {"val", "test", "ood"}
    assert (
        log["baselines"]["val"]["bigram"]["bits_per_byte"]
        < (log["baselines"]["val"]["unigram"]["bits_per_byte"])
    )


def _build_module():
    spec = importlib.util.spec_from_file_location("build_checkpoint", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    build = _build_module()
    (tmp_path / "notes.txt").write_text("keep me", "utf-8")
    with pytest.raises(SystemExit, match=r"refusing to replace .* other files \['notes\.txt'\]"):
        build.main(["--smoke", "--out", str(tmp_path)])
    assert (tmp_path / "notes.txt").read_text("utf-8") == "keep me"
    build._check_out(tmp_path / "new")  # a folder that does not exist yet is fine


def test_build_configs_are_consistent() -> None:
    build = _build_module()
    for smoke in (False, True):
        spec, config = build.run_config(smoke, None)
        model_config = build.gpt_config(spec, 2048)
        assert model_config.max_len >= config.context
        assert config.steps % config.eval_every == 0 and config.threads == 1
    _, short = build.run_config(False, 7)
    assert (short.steps, short.eval_every, short.warmup_steps) == (7, 7, 6)
    n = GPT(build.gpt_config(build.MODEL, 2048)).num_parameters()
    assert 0.5e6 < n < 2.6e6  # fp32 weights well under the 10 MB limit
