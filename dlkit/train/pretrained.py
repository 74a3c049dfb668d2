"""The pretrained GPT that ships with dlkit, and how to load it.

``dlkit/assets/gpt_small/`` (:data:`PRETRAINED_DIR`) is written by
``python3 tasks.py build checkpoint`` (``tools/build_checkpoint.py``), which trains a small
:class:`dlkit.nn.gpt.GPT` on the shipped corpus's train split. It holds:

- ``model.safetensors``: the weights (float32, tied tensors once; no pickle);
- ``config.json``: ``{"model": GPTConfig.to_dict(), "training": LMTrainConfig.to_dict(),
  "tokenizer_sha256": {...}, ...}``;
- ``merges.txt``, ``vocab.json``: the corpus's BPE tokenizer;
- ``train_log.json``: the training history, wall time, tokens/s, the final validation /
  test / out-of-distribution loss and bits per byte, and the unigram and bigram baselines;
- ``MANIFEST.json``: SHA-256 and size of each of these files (:mod:`dlkit.data.manifest`).

:func:`load_pretrained_gpt` checks the files against the manifest first, so the numbers a
chapter prints are those of exactly the shipped files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlkit.data.manifest import verify_manifest
from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.nn.weights import load_weights, read_config
from dlkit.text import BPETokenizer
from dlkit.train.device import DeviceLike, get_device

__all__ = ["PRETRAINED_DIR", "load_pretrained_gpt", "pretrained_log"]

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "assets" / "gpt_small"
_BUILD = "python3 tasks.py build checkpoint"


def _verified(folder: str | Path) -> Path:
    folder = Path(folder)
    if not (folder / "MANIFEST.json").is_file():
        raise FileNotFoundError(
            f"no pretrained checkpoint in {folder} (MANIFEST.json missing); build it with "
            f"`{_BUILD}`"
        )
    verify_manifest(folder)  # ManifestError names the file that differs
    return folder


def load_pretrained_gpt(
    *, device: DeviceLike = "cpu", folder: str | Path = PRETRAINED_DIR
) -> tuple[GPT, BPETokenizer]:
    """The shipped GPT (in eval mode, on ``device``) and its tokenizer.

    ``folder`` defaults to :data:`PRETRAINED_DIR`; a folder written by
    ``tools/build_checkpoint.py --out DIR`` loads the same way. Raises
    ``FileNotFoundError`` when the folder holds no checkpoint and
    :class:`~dlkit.data.manifest.ManifestError` when a file differs from its manifest.
    """
    folder = _verified(folder)
    config = GPTConfig.from_dict(read_config(folder)["model"])
    model = GPT(config)
    load_weights(model, folder)
    tokenizer = BPETokenizer.load(folder)
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} ids but the model "
            f"{config.vocab_size}"
        )
    return model.to(get_device(device)).eval(), tokenizer


def pretrained_log(*, folder: str | Path = PRETRAINED_DIR) -> dict[str, Any]:
    """The build's ``train_log.json`` (history, timings, losses, bits per byte, baselines)."""
    folder = _verified(folder)
    return json.loads((folder / "train_log.json").read_text(encoding="utf-8"))
