"""Offline datasets as NumPy arrays and ``torch.utils.data.Dataset`` objects.

Nothing here downloads: data is generated from a seed, read from files that ship
inside installed packages (scikit-learn's digits, the standard library's text), or
loaded from a local folder the user points to. Importing this package does not
import torch; :meth:`ArraySplits.datasets` does, when asked.
"""

from dlkit.data.cifar import CIFAR10_CLASSES, load_cifar10, read_cifar10, read_cifar10_batch
from dlkit.data.corpus import (
    CORPUS_DIR,
    SPLITS,
    Document,
    bytes_per_token,
    corpus_meta,
    corpus_stats,
    corpus_text,
    load_documents,
    load_tokenizer,
    load_tokens,
)
from dlkit.data.digits import load_digits
from dlkit.data.manifest import ManifestError, sha256_file, verify_manifest, write_manifest
from dlkit.data.masking import IGNORE_INDEX, mask_tokens
from dlkit.data.mnist import MNIST_FILES, load_mnist, read_idx, read_mnist
from dlkit.data.seq2seq import Seq2SeqTask, exact_match, make_seq2seq_task
from dlkit.data.sequences import (
    DatasetSplits,
    adding_problem,
    copy_task,
    noisy_sine,
    reverse_task,
    sequence_splits,
)
from dlkit.data.shapes import SHAPE_CLASSES, load_shapes, make_shapes, render_shape, shape_polygon
from dlkit.data.splits import ArraySplits, split_arrays, standardize_splits
from dlkit.data.text import CharBlocks, CharVocab, char_splits, stdlib_corpus
from dlkit.data.token_windows import EvalWindows, TokenWindows, eval_windows, random_window_loader

__all__ = [
    "CIFAR10_CLASSES",
    "CORPUS_DIR",
    "IGNORE_INDEX",
    "MNIST_FILES",
    "SHAPE_CLASSES",
    "SPLITS",
    "ArraySplits",
    "CharBlocks",
    "CharVocab",
    "DatasetSplits",
    "Document",
    "EvalWindows",
    "ManifestError",
    "Seq2SeqTask",
    "TokenWindows",
    "adding_problem",
    "bytes_per_token",
    "char_splits",
    "copy_task",
    "corpus_meta",
    "corpus_stats",
    "corpus_text",
    "eval_windows",
    "exact_match",
    "load_cifar10",
    "load_digits",
    "load_documents",
    "load_mnist",
    "load_shapes",
    "load_tokenizer",
    "load_tokens",
    "make_seq2seq_task",
    "make_shapes",
    "mask_tokens",
    "noisy_sine",
    "random_window_loader",
    "read_cifar10",
    "read_cifar10_batch",
    "read_idx",
    "read_mnist",
    "render_shape",
    "reverse_task",
    "sequence_splits",
    "sha256_file",
    "shape_polygon",
    "split_arrays",
    "standardize_splits",
    "stdlib_corpus",
    "verify_manifest",
    "write_manifest",
]
