"""CIFAR-10 from the "python version" batches in a local folder (nothing is downloaded).

The archive ``cifar-10-python.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html
unpacks to ``cifar-10-batches-py/`` with ``data_batch_1`` … ``data_batch_5`` (10,000
training images each), ``test_batch`` and ``batches.meta``. Each batch is a pickled dict
(written by Python 2, so keys are bytes): ``b"data"``, a uint8 array ``(10000, 3072)``
whose row holds the 1024 red, then 1024 green, then 1024 blue values of a 32×32 image
in row-major order, and ``b"labels"``, a list of 10,000 ints in 0–9. ``batches.meta``
holds ``b"label_names"``.

**Security.** Unpickling can run arbitrary code chosen by whoever wrote the file. Only
load files you downloaded yourself from the official page. As a second line of defence
this reader unpickles with an allow-list: only the few NumPy classes an array needs
can be loaded, and any other global in the file raises an error before it is used.
That narrows the risk; it does not make untrusted pickles safe.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from dlkit.data.splits import ArraySplits, with_validation_split

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_SOURCE",
    "load_cifar10",
    "read_cifar10",
    "read_cifar10_batch",
]

CIFAR10_SOURCE = 'https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 python version")'
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_FOLDER = "cifar-10-batches-py"
_PIXELS = 3 * 32 * 32
_ALLOWED_GLOBALS = {  # what pickled NumPy arrays need, in NumPy 1.x and 2.x spellings
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # Python 2 byte strings written with protocol 2
}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch only contains NumPy arrays, "
                "lists, bytes and numbers"
            )
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            content = _AllowListUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # truncated, not a pickle, or a refused global
        raise ValueError(
            f"{path}: cannot be read as a CIFAR-10 python batch ({type(exc).__name__}: {exc}); "
            f"re-download it from {CIFAR10_SOURCE}"
        ) from exc
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a pickled dict, found a {type(content).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in content.items()}


def read_cifar10_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` int64.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file and what is wrong (not a pickle, truncated, missing
            ``data``/``labels``, wrong shape or dtype, labels outside 0–9).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch {path} does not exist")
    batch = _unpickle(path)
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise ValueError(
            f"{path}: no {' or '.join(repr(k) for k in missing)} entry; found {sorted(batch)}"
        )
    data = batch["data"]
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _PIXELS
    ):
        got = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {_PIXELS}), got {got}")
    labels = np.asarray(batch["labels"])
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"{path}: expected {data.shape[0]} integer labels (one per image), got {labels.dtype} "
            f"of shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must lie in 0-9, found {labels.min()}..{labels.max()}")
    images = data.reshape(-1, 3, 32, 32)  # (N, 3072) → (N, C, H, W): R plane, G plane, B plane
    return images, labels.astype(np.int64)


def _batch_folder(root: Path) -> Path:
    """``root`` itself, or its ``cifar-10-batches-py`` subfolder if that holds the batches."""
    nested = root / _FOLDER
    return nested if not (root / "test_batch").exists() and nested.is_dir() else root


def read_cifar10(
    root: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """All of CIFAR-10 in ``root`` (or ``root/cifar-10-batches-py``).

    Returns ``x_train`` ``(50000, 3, 32, 32)`` uint8, ``y_train`` ``(50000,)`` int64, ``x_test``
    ``(10000, 3, 32, 32)``, ``y_test`` and the class names from ``batches.meta``.

    The batches are pickles: only load files from the official source (see the module
    docstring on why unpickling untrusted files is unsafe and what this reader refuses).
    """
    folder = _batch_folder(Path(root).expanduser())
    names = [*TRAIN_BATCHES, "test_batch", "batches.meta"]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 file(s) missing in {folder}: {', '.join(missing)}. Nothing is downloaded "
            f"automatically: download cifar-10-python.tar.gz by hand from {CIFAR10_SOURCE}, "
            f"unpack it (tar xzf cifar-10-python.tar.gz) and pass the folder {_FOLDER} it creates."
        )
    train = [read_cifar10_batch(folder / name) for name in TRAIN_BATCHES]
    x_test, y_test = read_cifar10_batch(folder / "test_batch")
    meta = _unpickle(folder / "batches.meta")
    label_names = meta.get("label_names")
    if not isinstance(label_names, list) or len(label_names) != 10:
        raise ValueError(f"{folder / 'batches.meta'}: expected 'label_names', a list of 10 names")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in label_names)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, classes


def load_cifar10(
    root: str | Path, *, val_fraction: float = 0.1, seed: int = 0, standardize: bool = True
) -> ArraySplits:
    r"""CIFAR-10 from ``root`` as train / validation / test splits.

    The validation split is a stratified ``val_fraction`` of the 50,000 training images,
    the test split is the official test batch. ``x_*`` ``(N, 3, 32, 32)`` float32 in [0, 1];
    with ``standardize=True`` each colour channel :math:`c` becomes
    :math:`(x_c - \mu_c) / \sigma_c` with :math:`\mu_c, \sigma_c` from the training split
    (the usual per-channel normalization; about (0.49, 0.48, 0.45) and (0.25, 0.24, 0.26)
    on the full set). ``.datasets()`` gives ``torch.utils.data.TensorDataset``s.
    """
    x_train, y_train, x_test, y_test, _ = read_cifar10(root)
    splits = with_validation_split(
        x_train / np.float32(255.0), y_train, x_test / np.float32(255.0), y_test,
        num_classes=10, val_fraction=val_fraction, seed=seed,
    )  # fmt: skip
    if not standardize:
        return splits
    mean = splits.x_train.mean(axis=(0, 2, 3), keepdims=True)  # (1, 3, 1, 1)
    std = splits.x_train.std(axis=(0, 2, 3), keepdims=True)  # (1, 3, 1, 1)
    if np.any(std == 0):
        raise ValueError(
            "a colour channel is constant in the training split; cannot standardize it"
        )

    def scale(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    return ArraySplits(
        scale(splits.x_train), splits.y_train, scale(splits.x_val), splits.y_val,
        scale(splits.x_test), splits.y_test, num_classes=10,
    )  # fmt: skip
