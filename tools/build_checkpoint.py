"""Build ``dlkit/assets/gpt_small/``: train the shipped GPT on the shipped corpus.

Run from the repository root (``python3 tasks.py build checkpoint`` does this)::

    python tools/build_checkpoint.py                 # the shipped checkpoint (tens of minutes)
    python tools/build_checkpoint.py --smoke         # a few steps of a tiny model, seconds
    python tools/build_checkpoint.py --work build/ckpt --resume   # continue a killed build

What it does, deterministically for a given seed and package versions (one CPU thread):

1. reads the corpus (``dlkit/assets/pycorpus/``, verified against its manifest);
2. fits the unigram and bigram baselines on the train tokens (the bigram's add-alpha chosen
   on validation from a small grid, which can only flatter the baseline) and scores them on
   val / test / ood in nats per token, perplexity and bits per byte;
3. trains :data:`MODEL` with :data:`TRAIN` through :func:`dlkit.train.lm_training.train_lm`,
   validating every ``eval_every`` steps and keeping the weights of the best validation;
4. scores the model on val / test / ood and writes, into a fresh folder that then replaces
   ``--out``: ``model.safetensors`` + ``config.json`` (:func:`dlkit.nn.weights.save_weights`),
   the tokenizer (``merges.txt``, ``vocab.json``, copied from the corpus),
   ``train_log.json`` and ``MANIFEST.json`` (:func:`dlkit.data.manifest.write_manifest`);
5. reloads the folder with :func:`dlkit.train.pretrained.load_pretrained_gpt` and checks the
   loaded model gives the same logits, and that each file is at most 10 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout

from dlkit.data.corpus import (  # noqa: E402
    CORPUS_DIR,
    TOKENIZER_FILES,
    corpus_meta,
    corpus_stats,
    load_tokens,
)
from dlkit.data.manifest import MANIFEST_NAME, sha256_file, write_manifest  # noqa: E402
from dlkit.nn.gpt import GPT, GPTConfig  # noqa: E402
from dlkit.nn.weights import save_weights  # noqa: E402
from dlkit.scratch.ngram import BigramLM, UnigramLM  # noqa: E402
from dlkit.train.lm_metrics import bits_per_byte, evaluate_lm, perplexity  # noqa: E402
from dlkit.train.lm_training import LMTrainConfig, train_lm  # noqa: E402
from dlkit.train.pretrained import PRETRAINED_DIR, load_pretrained_gpt  # noqa: E402
from dlkit.train.seed import seed_everything  # noqa: E402

SEED = 0
MAX_FILE_BYTES = 10 * 2**20
BIGRAM_ALPHAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
EVAL_SPLITS = ("val", "test", "ood")

# The shipped model and its run, chosen by short measurements on this corpus (1 thread):
# - speed: d_model 128, 4 layers, context 128, batch 16 ran 5,000-6,700 tokens/s (GPT-2
#   style) on an idle core and 2,000-3,800 with the machine loaded; the modern design is about
#   15% slower per token; d_model 160 / 192 or 6 layers cost 1.4-2x more per token.
# - quality: after the same 300 steps (full cosine) the modern design reached a validation
#   loss of 5.03 nats/token against 5.17 for GPT-2 style; lr 2e-3 / 3e-3 / 6e-3 gave 5.07 /
#   5.03 / 5.16. GPT-2 style after 800 steps: 4.59 (2.23 bpb; the bigram is 2.29).
# - overfitting: on 1/8 of the train tokens, validation bottomed out after about 7 epochs;
#   2,400 steps here are 10.8 epochs of the full train split, so the run validates every
#   200 steps and keeps the best weights (KEEP_BEST).
# 2,400 steps x 2,048 tokens = 4.9 M tokens: about 16 minutes at 5,000 tokens/s, 27 at 3,000.
MODEL = {"style": "modern", "d_model": 128, "n_layers": 4, "n_heads": 4, "max_len": 128,
         "dropout": 0.1}  # fmt: skip
TRAIN = LMTrainConfig(steps=2400, batch_size=16, context=128, lr=3e-3, warmup_steps=200,
                      eval_every=200, min_lr_ratio=0.1, weight_decay=0.1, seed=SEED)  # fmt: skip
KEEP_BEST = True

# --smoke: the same pipeline at a toy size, a few seconds
SMOKE_MODEL = {"style": "modern", "d_model": 32, "n_layers": 1, "n_heads": 2, "max_len": 32,
               "dropout": 0.1}  # fmt: skip
SMOKE_TRAIN = LMTrainConfig(steps=6, batch_size=4, context=32, lr=1e-3, warmup_steps=2,
                            eval_every=3, eval_tokens=1024, seed=SEED)  # fmt: skip
SMOKE_EVAL_TOKENS = 1024


def gpt_config(spec: dict[str, Any], vocab_size: int) -> GPTConfig:
    """``GPTConfig.gpt2(...)`` or ``GPTConfig.modern(...)`` from a spec like :data:`MODEL`."""
    spec = dict(spec)
    factory = {"gpt2": GPTConfig.gpt2, "modern": GPTConfig.modern}[spec.pop("style")]
    sizes = [spec.pop(name) for name in ("d_model", "n_layers", "n_heads", "max_len")]
    return factory(vocab_size, *sizes, **spec)


def scores(nats: float, split: str) -> dict[str, float]:
    """Nats per token, perplexity and bits per byte of a mean loss on ``split``."""
    stats = corpus_stats(split)
    bpb = bits_per_byte(nats, stats["n_tokens"], stats["n_bytes"])
    return {"nats_per_token": nats, "perplexity": perplexity(nats), "bits_per_byte": bpb}


def baselines(train: np.ndarray, vocab_size: int) -> dict[str, Any]:
    """Unigram and bigram scores on each split's targets ``tokens[1:]`` (the model's targets).

    The bigram's alpha is the grid value with the lowest validation loss.
    """
    unigram = UnigramLM(vocab_size, alpha=1.0).fit(train)
    val = load_tokens("val")
    by_alpha = {}
    for alpha in BIGRAM_ALPHAS:
        by_alpha[alpha] = float(-BigramLM(vocab_size, alpha).fit(train).log_prob(val)[1:].mean())
    best = min(by_alpha, key=by_alpha.__getitem__)
    bigram = BigramLM(vocab_size, best).fit(train)
    out: dict[str, Any] = {
        "unigram_alpha": 1.0,
        "bigram_alpha": best,
        "bigram_val_nats_by_alpha": {str(a): v for a, v in by_alpha.items()},
    }
    for split in EVAL_SPLITS:
        ids = load_tokens(split)
        out[split] = {
            "unigram": scores(float(-unigram.log_prob(ids[1:]).mean()), split),
            "bigram": scores(float(-bigram.log_prob(ids)[1:].mean()), split),
        }
    return out


def versions() -> dict[str, str]:
    """The package versions the build's numbers depend on."""
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


def run_config(smoke: bool, steps: int | None) -> tuple[dict[str, Any], LMTrainConfig]:
    """The model spec and training config, with ``steps`` overriding the step count."""
    spec, config = (SMOKE_MODEL, SMOKE_TRAIN) if smoke else (MODEL, TRAIN)
    if steps is not None:
        change = {
            "steps": steps,
            "eval_every": min(config.eval_every, steps),
            "warmup_steps": min(config.warmup_steps, steps - 1),
        }
        config = LMTrainConfig(**(config.to_dict() | change))
    return spec, config


def build(
    out: Path, *, smoke: bool, steps: int | None, work: Path | None, resume: bool, progress: bool
) -> dict[str, Any]:
    """Train, evaluate and write the checkpoint folder ``out``; returns the training log."""
    start = time.perf_counter()
    _check_out(out)  # before the long part
    vocab_size = int(corpus_meta()["vocab_size"])  # verifies the corpus files
    spec, config = run_config(smoke, steps)
    torch.set_num_threads(config.threads or 1)  # the evaluations too: same numbers every build
    train, val = load_tokens("train"), load_tokens("val")
    base = baselines(train, vocab_size)
    bigram = base["val"]["bigram"]["bits_per_byte"]
    print(f"bigram baseline (alpha {base['bigram_alpha']}): {bigram:.4f} bpb on val", flush=True)

    seed_everything(config.seed)
    model_config = gpt_config(spec, vocab_size)
    model = GPT(model_config)
    n_params = model.num_parameters()
    print(f"{n_params:,} parameters, {config.steps} steps of {config.tokens_per_step} tokens")
    run = train_lm(
        model,
        train,
        val,
        config,
        bytes_per_token=corpus_stats("val")["n_bytes"] / corpus_stats("val")["n_tokens"],
        keep_best=KEEP_BEST,
        checkpoint=work,
        resume=resume,
        progress=progress,
        live_plot=True,  # outside a notebook: one printed line per validation
        device="cpu",
    )
    limit = SMOKE_EVAL_TOKENS if smoke else None
    final = {}
    for split in EVAL_SPLITS:
        nats = evaluate_lm(model, load_tokens(split), config.context, max_tokens=limit)
        final[split] = scores(nats, split)
        print(f"{split}: {final[split]['bits_per_byte']:.4f} bpb "
              f"(bigram {base[split]['bigram']['bits_per_byte']:.4f})")  # fmt: skip

    corpus_sha = sha256_file(CORPUS_DIR / MANIFEST_NAME)
    config_json = {
        "model": model_config.to_dict(),
        "training": config.to_dict(),
        "keep_best": KEEP_BEST,
        "tokenizer_sha256": {name: sha256_file(CORPUS_DIR / name) for name in TOKENIZER_FILES},
        "corpus_manifest_sha256": corpus_sha,
        "smoke": smoke,
    }
    log = {
        "history": run.history,
        "step_history": run.step_history,
        "best_step": run.best_step,
        "best_val_loss": run.best_val_loss,
        "final": final,
        "baselines": base,
        "n_parameters": n_params,
        "n_parameters_non_embedding": model.num_parameters(non_embedding=True),
        "tokens_per_second": run.tokens_per_second,
        "train_seconds": run.wall_seconds,
        "build_seconds": None,  # set just before writing
        "build": {"threads": config.threads, "device": "cpu", "versions": versions()},
    }
    manifest_meta = {
        "name": "gpt_small",
        "description": "a small GPT pretrained on dlkit's pycorpus (train split)",
        "n_parameters": n_params,
        "seed": config.seed,
        "smoke": smoke,
        "val_bits_per_byte": final["val"]["bits_per_byte"],
        "bigram_val_bits_per_byte": bigram,
        "corpus_manifest_sha256": corpus_sha,
        "versions": versions(),
        "command": "python3 tasks.py build checkpoint",
    }
    write_folder(out, model, config_json, log, manifest_meta, start)
    return log


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that holds anything but a checkpoint's files."""
    if not out.exists():
        return
    known = {"model.safetensors", "config.json", "train_log.json", MANIFEST_NAME, *TOKENIZER_FILES}
    other = sorted(p.name for p in out.iterdir() if p.name not in known) if out.is_dir() else []
    if not out.is_dir() or other:
        what = "is not a folder" if not out.is_dir() else f"holds other files {other[:5]}"
        raise SystemExit(f"refusing to replace {out}: it {what}; choose another --out")


def write_folder(
    out: Path,
    model: GPT,
    config_json: dict[str, Any],
    log: dict[str, Any],
    manifest_meta: dict[str, Any],
    start: float,
) -> None:
    """Write everything into a staging folder next to ``out``, check it, then swap it in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        # no safetensors metadata of our own: the header's metadata map is written in hash
        # order, so more than one key (save_weights adds its own) changes bytes between runs
        save_weights(model, staging, config=config_json)
        for name in TOKENIZER_FILES:
            shutil.copyfile(CORPUS_DIR / name, staging / name)
        log["build_seconds"] = time.perf_counter() - start
        (staging / "train_log.json").write_text(json.dumps(log, indent=1) + "\n", "utf-8")
        write_manifest(staging, meta=manifest_meta)
        staging.chmod(0o755)  # mkdtemp makes folders private; shipped files are readable
        for path in staging.iterdir():
            path.chmod(0o644)
        check_folder(staging, model)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def check_folder(folder: Path, model: GPT) -> None:
    """Each file within the size limit, and the folder reloads into the same function."""
    for path in folder.iterdir():
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RuntimeError(f"{path.name} is {path.stat().st_size:,} bytes, over 10 MB")
    loaded, tokenizer = load_pretrained_gpt(folder=folder)
    ids = torch.tensor([tokenizer.encode("Return the number of items in the list.")])
    model.eval()
    with torch.no_grad():
        if not torch.equal(loaded(ids), model(ids)):
            raise RuntimeError(f"the weights written to {folder} do not reload to the same model")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default = PRETRAINED_DIR.relative_to(REPO)
    parser.add_argument("--out", type=Path, help=f"output folder (default {default}; "
                        "with --smoke a new temporary folder)")  # fmt: skip
    parser.add_argument("--steps", type=int, help="override the number of training steps")
    parser.add_argument("--smoke", action="store_true", help="a tiny model for a few steps")
    parser.add_argument("--work", type=Path, help="keep a resumable last.pt in this folder")
    parser.add_argument("--resume", action="store_true", help="continue from --work/last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = parser.parse_args(argv)
    if args.resume and args.work is None:
        parser.error("--resume needs --work DIR")
    out = args.out
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="gpt_small_smoke_")) if args.smoke else PRETRAINED_DIR
    log = build(out.resolve(), smoke=args.smoke, steps=args.steps, work=args.work,
                resume=args.resume, progress=not args.no_progress)  # fmt: skip
    val, bigram = log["final"]["val"], log["baselines"]["val"]["bigram"]
    print(
        f"wrote {out} in {log['build_seconds']:.0f} s ({log['tokens_per_second']:.0f} tokens/s): "
        f"val {val['bits_per_byte']:.4f} bpb, bigram {bigram['bits_per_byte']:.4f}, "
        f"best step {log['best_step']}"
    )
    return 0 if math.isfinite(val["bits_per_byte"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
