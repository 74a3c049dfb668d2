"""The docstring-area task: balanced held-out sets, no leakage, nested seeded label subsets."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dlkit.data.corpus import load_documents, load_tokenizer
from dlkit.data.docstring_areas import (
    DEFAULT_CLASSES,
    AreaSplits,
    area_counts,
    labels_per_class_subset,
    load_docstring_areas,
)


@pytest.fixture(scope="module")
def splits() -> AreaSplits:
    return load_docstring_areas(max_tokens=32)


def test_classes_are_the_largest_areas_and_the_held_out_sets_balanced(splits: AreaSplits) -> None:
    counts = area_counts()
    assert set(DEFAULT_CLASSES) == set(list(counts)[: len(DEFAULT_CLASSES)])
    assert min(counts[c] for c in DEFAULT_CLASSES) >= 200
    assert splits.classes == DEFAULT_CLASSES and splits.num_classes == 7
    K = splits.num_classes
    assert np.bincount(splits.y_test, minlength=K).tolist() == [50] * K
    assert np.bincount(splits.y_val, minlength=K).tolist() == [20] * K
    pool = np.bincount(splits.y_train, minlength=K)
    assert pool.min() >= 100  # the 100-labels budget exists for every class
    assert pool.sum() + 70 * K == sum(counts[c] for c in DEFAULT_CLASSES)


def test_labels_match_areas_and_no_text_is_shared_between_parts(splits: AreaSplits) -> None:
    parts = {
        "train": (splits.train_documents, splits.y_train),
        "val": (splits.val_documents, splits.y_val),
        "test": (splits.test_documents, splits.y_test),
    }
    texts = {}
    for name, (docs, y) in parts.items():
        assert [splits.classes[i] for i in y] == [d.area for d in docs]
        assert all(d.source == "docstring" for d in docs)
        texts[name] = {d.text for d in docs}
        assert len(texts[name]) == len(docs)  # duplicates were dropped
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["val"]
    assert not texts["val"] & texts["test"]
    # and no dropped duplicate hides elsewhere in the corpus under another id
    repeats = Counter(d.text for d in load_documents() if d.source == "docstring")
    assert all(repeats[t] == 1 for t in texts["test"])


def test_ids_are_the_corpus_tokenizers_cut_to_max_tokens(splits: AreaSplits) -> None:
    tok = load_tokenizer()
    for ids, doc in zip(splits.test_ids[:40], splits.test_documents[:40], strict=True):
        assert ids == tok.encode(doc.text)[:32]
    assert max(len(x) for x in splits.train_ids) == 32 and min(len(x) for x in splits.train_ids) > 0
    assert splits.test_unseen.dtype == bool and splits.test_unseen.shape == splits.y_test.shape
    assert splits.test_unseen.tolist() == [d.split != "train" for d in splits.test_documents]
    assert "7 classes" in splits.describe()


def test_the_split_is_deterministic_and_depends_on_the_seed(splits: AreaSplits) -> None:
    again = load_docstring_areas(max_tokens=32)
    assert [d.id for d in again.test_documents] == [d.id for d in splits.test_documents]
    other = load_docstring_areas(max_tokens=32, seed=1)
    assert [d.id for d in other.test_documents] != [d.id for d in splits.test_documents]


def test_label_subsets_are_nested_seeded_and_per_class() -> None:
    y = np.repeat(np.arange(3), [30, 50, 120])  # (200,)
    ten = labels_per_class_subset(y, 10, seed=0)
    twenty = labels_per_class_subset(y, 20, seed=0)
    everything = labels_per_class_subset(y, "all", seed=0)
    assert np.bincount(y[ten]).tolist() == [10, 10, 10]
    assert set(ten) < set(twenty) < set(everything)
    assert everything.tolist() == list(range(200))
    assert labels_per_class_subset(y, 10, seed=0).tolist() == ten.tolist()
    assert labels_per_class_subset(y, 10, seed=1).tolist() != ten.tolist()
    assert ten.dtype == np.int64 and (np.diff(ten) > 0).all()


def test_bad_arguments_raise_clearly() -> None:
    y = np.repeat(np.arange(2), 5)
    with pytest.raises(ValueError, match="fewer than k=6"):
        labels_per_class_subset(y, 6, seed=0)
    with pytest.raises(ValueError, match="positive int or 'all'"):
        labels_per_class_subset(y, 0, seed=0)
    with pytest.raises(ValueError, match="1-D integer"):
        labels_per_class_subset(y.astype(float), 2, seed=0)
    with pytest.raises(ValueError, match="unique docstrings"):
        load_docstring_areas(classes=("tkinter", "ipaddress"))
    with pytest.raises(ValueError, match="at least 2 distinct"):
        load_docstring_areas(classes=("tkinter",))
    with pytest.raises(ValueError, match="max_tokens"):
        load_docstring_areas(max_tokens=0)
