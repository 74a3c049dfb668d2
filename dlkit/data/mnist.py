"""MNIST from the original IDX files in a local folder (nothing is downloaded).

The IDX format (LeCun et al.) is a big-endian header followed by raw values:

====================  =============================================================
bytes 0-1             0, 0
byte 2                the value type: 0x08 unsigned byte (MNIST), 0x09 signed byte,
                      0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
byte 3                the number of dimensions ``d`` (3 for images, 1 for labels)
bytes 4 … 4 + 4d      each dimension as a big-endian uint32, e.g. 60000, 28, 28
then                  the values, row-major, ``prod(dims) · itemsize`` bytes
====================  =============================================================

So ``train-images-idx3-ubyte`` starts with ``00 00 08 03`` (the "magic number" 2051) and
``train-labels-idx1-ubyte`` with ``00 00 08 01`` (2049). Files may also be gzipped
(``.gz``, as distributed). The user downloads them by hand; see :data:`MNIST_SOURCES`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from dlkit.data.splits import ArraySplits, standardize_splits, with_validation_split

__all__ = [
    "MNIST_FILES",
    "MNIST_SOURCES",
    "load_mnist",
    "read_idx",
    "read_mnist",
]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_SOURCES = (
    "https://yann.lecun.com/exdb/mnist/ (the original site)",
    "https://ossci-datasets.s3.amazonaws.com/mnist/ (the mirror torchvision uses)",
)
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into an array of the shape its header states.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file and what is wrong: a bad magic number, an unknown type
            code, a header cut short, or a data size that disagrees with the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable gzip file ({exc}); re-download it") from exc
    if len(raw) < 4:
        raise ValueError(
            f"{path}: only {len(raw)} bytes, too short for an IDX header (4 bytes at least)"
        )
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        magic = int.from_bytes(raw[:4], "big")
        raise ValueError(
            f"{path}: bad magic number {magic} (bytes {raw[:4].hex(' ')}); an IDX file starts with "
            "00 00, a type code (08 for unsigned bytes) and the number of dimensions, e.g. 2051 "
            "for images and 2049 for labels. Is it an IDX file, and was it decompressed correctly?"
        )
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: truncated header: {ndim} dimensions need {header} bytes, the file has {len(raw)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        problem = "truncated" if actual < expected else "has extra bytes"
        raise ValueError(
            f"{path}: {problem}: the header says shape {dims} of {dtype.name} ({expected} bytes of "
            f"data) but the file holds {actual}; re-download it"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))
    )


def _find(root: Path, base: str) -> Path | None:
    """The file for ``base`` in ``root``: plain or .gz, with a '-' or '.' before 'idx'."""
    dotted = base.replace("-idx", ".idx")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def read_mnist(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four MNIST files in ``root`` as ``x_train, y_train, x_test, y_test``.

    Shapes (real MNIST): ``(60000, 28, 28)`` uint8, ``(60000,)`` uint8, ``(10000, 28, 28)``,
    ``(10000,)``. Any image size and count are accepted as long as the files agree.
    """
    root = Path(root).expanduser()
    found = {key: _find(root, base) for key, base in MNIST_FILES.items()}
    missing = [MNIST_FILES[key] for key, path in found.items() if path is None]
    if missing:
        where = "\n  ".join(MNIST_SOURCES)
        raise FileNotFoundError(
            f"MNIST file(s) missing in {root}: {', '.join(missing)} (plain or .gz). Nothing is "
            f"downloaded automatically: download the four files by hand from\n  {where}\n"
            f"and put them (gzipped or not) in {root}."
        )
    arrays = {key: read_idx(path) for key, path in found.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_file, label_file = found[f"{split}_images"], found[f"{split}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"{image_file}: expected unsigned-byte images of shape (N, H, W) (magic number "
                f"2051), got {images.dtype} of shape {images.shape}"
            )
        if labels.dtype != np.uint8:
            raise ValueError(
                f"{label_file}: expected unsigned-byte labels (magic number 2049), got {labels.dtype}"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{label_file}: expected {images.shape[0]} labels (one per image in "
                f"{image_file.name}), got an array of shape {labels.shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(
                f"{label_file}: labels must be digits 0-9, found {labels.min()}..{labels.max()}"
            )
    return (
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
    )


def load_mnist(
    root: str | Path, *, val_fraction: float = 1 / 12, seed: int = 0, standardize: bool = True
) -> ArraySplits:
    """MNIST from the IDX files in ``root`` as train / validation / test splits.

    The validation split is a stratified ``val_fraction`` of the official training set
    (5,000 images by default), the test split is the official test set. Shapes: ``x_*``
    ``(N, 1, 28, 28)`` float32, pixels scaled to [0, 1] and then, with ``standardize=True``,
    shifted and scaled by the training split's mean and standard deviation (about 0.13
    and 0.31 on real MNIST). ``.datasets()`` gives ``torch.utils.data.TensorDataset``s.
    """
    x_train, y_train, x_test, y_test = read_mnist(root)
    splits = with_validation_split(
        x_train[:, None] / np.float32(255.0),  # (N, 1, H, W) in [0, 1]
        y_train,
        x_test[:, None] / np.float32(255.0),
        y_test,
        num_classes=10,
        val_fraction=val_fraction,
        seed=seed,
    )
    return standardize_splits(splits) if standardize else splits
