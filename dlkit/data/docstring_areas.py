r"""Which library area does a docstring come from? A text-classification task for fine-tuning.

Every docstring of the shipped corpus (:func:`dlkit.data.corpus.load_documents`) carries its
top-level package, ``Document.area`` (``"tkinter"``, ``"asyncio"``, ``"email"`` ...). The
task: read the first ``max_tokens`` BPE tokens of a docstring and predict its area among the
:data:`DEFAULT_CLASSES` (the seven areas with at least 200 docstrings). The classes are
imbalanced (tkinter 634 documents, xml 202), so the held-out sets are **stratified and
balanced**: chance accuracy is exactly :math:`1 / K`.

How the examples are built, deterministically:

1. Keep the docstrings (``source == "docstring"``) of the chosen areas; drop every text that
   occurs more than once (tkinter repeats ``"Return the ..."`` phrasings across widgets):
   an exact duplicate could sit in both the training and the test set, and a text shared by
   two areas has no single label.
2. Per class, shuffle the documents with ``numpy.random.default_rng(seed)`` (one generator,
   classes in order) and take ``n_test`` for **test**, the next ``n_val`` for **val** (for
   choosing hyper-parameters), the rest as the labelled **train pool**.
3. :func:`labels_per_class_subset` draws the fine-tuning sets: per class the first
   :math:`k` of one seeded permutation of the pool, so the subsets are **nested**
   (:math:`S_{10} \subset S_{100} \subset S_\text{all}` for a given seed).

Test documents are never used for fine-tuning. **But most of them were seen during
pretraining, unlabelled**: the shipped GPT (:func:`dlkit.train.pretrained.load_pretrained_gpt`)
was pretrained on the corpus's ``train`` split, and the corpus splits by *module*, so the
areas' val/test modules are few (logging has none, importlib one document, tkinter eleven).
Testing only on never-seen modules would leave some classes with almost no test documents,
so the split here is by document, over all corpus splits. The area label itself was never a
pretraining target; what pretraining saw is the text, as it sees the text of any downstream
task drawn from its own domain (semi-supervised transfer in the sense of Dai & Le, 2015).
:attr:`AreaSplits.test_unseen` says which test documents come from the val/test corpus
splits, so an accuracy can also be reported on those alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlkit.data.corpus import Document, load_documents, load_tokenizer

__all__ = [
    "DEFAULT_CLASSES",
    "AreaSplits",
    "area_counts",
    "labels_per_class_subset",
    "load_docstring_areas",
]

DEFAULT_CLASSES = ("tkinter", "distutils", "asyncio", "email", "importlib", "logging", "xml")


@dataclass(frozen=True)
class AreaSplits:
    """The docstring-area task: token ids and labels of the train pool, val and test.

    ``train_ids[i]`` is a list of at most ``max_tokens`` token ids (no padding; pad with
    :func:`dlkit.nn.lm_classifier.pad_batch`), ``y_train`` ``(N_train,)`` int64 labels in
    ``range(len(classes))``; likewise ``val_*`` and ``test_*``. ``*_documents`` are the
    :class:`~dlkit.data.corpus.Document` of each example (same order).
    """

    classes: tuple[str, ...]
    train_ids: list[list[int]]
    y_train: np.ndarray
    val_ids: list[list[int]]
    y_val: np.ndarray
    test_ids: list[list[int]]
    y_test: np.ndarray
    train_documents: tuple[Document, ...]
    val_documents: tuple[Document, ...]
    test_documents: tuple[Document, ...]
    max_tokens: int
    seed: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def test_unseen(self) -> np.ndarray:
        """``(N_test,)`` bool: True where the test document is from the corpus's val or test
        split (never seen in pretraining)."""
        return np.array([d.split != "train" for d in self.test_documents], dtype=bool)

    def describe(self) -> str:
        """One line: classes, sizes and how many test documents pretraining never saw."""
        pool = Counter(self.y_train.tolist())
        sizes = ", ".join(f"{c} {pool[i]}" for i, c in enumerate(self.classes))
        return (
            f"{self.num_classes} classes; train pool {len(self.y_train)} ({sizes}); "
            f"val {len(self.y_val)}, test {len(self.y_test)} (balanced; "
            f"{int(self.test_unseen.sum())} test documents from modules unseen in pretraining); "
            f"first {self.max_tokens} tokens"
        )


def area_counts(*, unique: bool = True) -> dict[str, int]:
    """Docstrings per area, largest first (``unique``: texts occurring once in the corpus)."""
    docs = [d for d in load_documents() if d.source == "docstring"]
    if unique:
        repeats = Counter(d.text for d in docs)
        docs = [d for d in docs if repeats[d.text] == 1]
    return dict(Counter(d.area for d in docs).most_common())


def load_docstring_areas(
    *,
    classes: Sequence[str] = DEFAULT_CLASSES,
    n_test: int = 50,
    n_val: int = 20,
    max_tokens: int = 32,
    seed: int = 0,
) -> AreaSplits:
    """The docstring-area task (module docstring): a balanced test and val set of ``n_test``
    and ``n_val`` documents per class, the rest of each class as the train pool.

    ``seed`` fixes the split (keep it fixed and vary :func:`labels_per_class_subset`'s seed
    across runs). Texts are encoded with the corpus tokenizer and cut to ``max_tokens``: the
    default 32 (about the summary line; the median docstring has 40 tokens) leaves fewer
    area keywords per example than 128, which is what lets pretraining matter at 100 labels
    per class (``bench/finetune_ladder.md``), and makes each run four times cheaper.
    """
    classes = tuple(classes)
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be at least 2 distinct areas, got {classes}")
    for name, value, low in (("n_test", n_test, 1), ("n_val", n_val, 0), ("max_tokens", max_tokens, 1)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    docs = [d for d in load_documents() if d.source == "docstring"]
    repeats = Counter(d.text for d in docs)
    by_class: list[list[Document]] = []
    for area in classes:
        members = [d for d in docs if d.area == area and repeats[d.text] == 1]  # corpus order
        if len(members) < n_test + n_val + 1:
            known = ", ".join(f"{a} ({n})" for a, n in list(area_counts().items())[:12])
            raise ValueError(
                f"area {area!r} has {len(members)} unique docstrings; need more than "
                f"n_test + n_val = {n_test + n_val}. Largest areas: {known}"
            )
        by_class.append(members)

    rng = np.random.default_rng(seed)
    parts: dict[str, list[tuple[Document, int]]] = {"train": [], "val": [], "test": []}
    for label, members in enumerate(by_class):
        order = rng.permutation(len(members))
        shuffled = [members[i] for i in order]
        parts["test"] += [(d, label) for d in shuffled[:n_test]]
        parts["val"] += [(d, label) for d in shuffled[n_test : n_test + n_val]]
        parts["train"] += [(d, label) for d in shuffled[n_test + n_val :]]

    tokenizer = load_tokenizer()

    def encode(part: list[tuple[Document, int]]) -> tuple[list[list[int]], np.ndarray]:
        ids = [tokenizer.encode(d.text)[:max_tokens] for d, _ in part]
        return ids, np.array([label for _, label in part], dtype=np.int64)

    (train_ids, y_train), (val_ids, y_val), (test_ids, y_test) = (
        encode(parts[k]) for k in ("train", "val", "test")
    )
    return AreaSplits(
        classes=classes,
        train_ids=train_ids,
        y_train=y_train,
        val_ids=val_ids,
        y_val=y_val,
        test_ids=test_ids,
        y_test=y_test,
        train_documents=tuple(d for d, _ in parts["train"]),
        val_documents=tuple(d for d, _ in parts["val"]),
        test_documents=tuple(d for d, _ in parts["test"]),
        max_tokens=max_tokens,
        seed=seed,
    )


def labels_per_class_subset(
    labels: np.ndarray | Sequence[int], k: int | str, *, seed: int
) -> np.ndarray:
    """Indices (sorted, int64) of ``k`` examples per class of ``labels`` ``(N,)``, or all of
    them for ``k == "all"``.

    Per class (in label order) one permutation by ``numpy.random.default_rng(seed)`` is cut
    at ``k``, so for one seed the subsets are nested: ``subset(10) ⊂ subset(100)``. A class
    with fewer than ``k`` examples is a ``ValueError`` (``"all"`` takes what there is).
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    if k != "all" and (not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1):
        raise ValueError(f"k must be a positive int or 'all', got {k!r}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)  # (n_c,)
        order = members[rng.permutation(len(members))]
        if k != "all" and len(members) < k:
            raise ValueError(f"class {int(c)} has {len(members)} examples, fewer than k={k}")
        chosen.append(order if k == "all" else order[: int(k)])
    return np.sort(np.concatenate(chosen)).astype(np.int64)
