"""The bilingual glossary and the Chinese chapter summaries: coverage of every chapter, data
hygiene, canonical translations, and the loader's errors on malformed files."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest

from dlkit.glossary import (
    Term,
    _load_summaries,
    _load_terms,
    chapter_summaries_zh,
    terms,
    terms_for,
)
from dlkit.instructor.course import Course

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")  # torch.nn.RNN, log-sum-exp: one word
MIN_TERMS_PER_CHAPTER = 6
MAX_DEFINITION = 200

# The standard translations of mainland Chinese textbooks and papers, checked exactly.
CANONICAL = {
    "backpropagation": "反向传播",
    "computational graph": "计算图",
    "chain rule": "链式法则",
    "automatic differentiation": "自动微分",
    "gradient descent": "梯度下降",
    "learning rate": "学习率",
    "activation function": "激活函数",
    "vanishing gradient": "梯度消失",
    "exploding gradient": "梯度爆炸",
    "loss function": "损失函数",
    "cross-entropy": "交叉熵",
    "maximum likelihood estimation": "极大似然估计",
    "stochastic gradient descent": "随机梯度下降",
    "momentum": "动量",
    "weight decay": "权重衰减",
    "learning rate schedule": "学习率调度",
    "overfitting": "过拟合",
    "regularization": "正则化",
    "cross-validation": "交叉验证",
    "dropout": "暂退法",
    "batch normalization": "批量归一化",
    "layer normalization": "层归一化",
    "data augmentation": "数据增强",
    "convolutional neural network": "卷积神经网络",
    "convolution": "卷积",
    "pooling": "池化",
    "residual connection": "残差连接",
    "recurrent neural network": "循环神经网络",
    "backpropagation through time": "随时间反向传播",
    "long short-term memory": "长短期记忆网络",
    "gated recurrent unit": "门控循环单元",
    "attention mechanism": "注意力机制",
    "self-attention": "自注意力",
    "multi-head attention": "多头注意力",
    "positional encoding": "位置编码",
    "rotary position embedding": "旋转位置编码",
    "KV cache": "键值缓存",
    "byte-pair encoding": "字节对编码",
    "pretraining": "预训练",
    "causal language model": "因果语言模型",
    "masked language model": "掩码语言模型",
    "perplexity": "困惑度",
    "fine-tuning": "微调",
    "linear probe": "线性探测",
    "low-rank adaptation": "低秩适配",
    "catastrophic forgetting": "灾难性遗忘",
    "supervised fine-tuning": "监督微调",
    "knowledge distillation": "知识蒸馏",
    "temperature": "温度",
    "pruning": "剪枝",
    "quantization": "量化",
    "mixed precision": "混合精度",
    "gradient accumulation": "梯度累积",
    "data parallelism": "数据并行",
}

GOOD_RECORD = {
    "english": "backpropagation",
    "chinese": "反向传播",
    "definition": "The chain rule applied in reverse topological order.",
    "definition_zh": "按逆拓扑序应用链式法则。",
    "chapter": "01_backprop",
}


def _by_english() -> dict[str, Term]:
    return {t.english: t for t in terms()}


def test_every_chapter_has_a_summary_and_terms(course: Course) -> None:
    chapters = course.chapters()
    assert chapters, "found no chapters in course/source"
    summaries = chapter_summaries_zh()
    missing = [c for c in chapters if c not in summaries]
    assert not missing, f"chapters without a Chinese summary: {missing}"
    thin = {c: n for c in chapters if (n := len(terms_for(c))) < MIN_TERMS_PER_CHAPTER}
    assert not thin, f"chapters with fewer than {MIN_TERMS_PER_CHAPTER} glossary terms: {thin}"


def test_entries_and_summaries_name_existing_chapters(course: Course) -> None:
    chapters = set(course.chapters())
    strays = sorted({t.chapter for t in terms()} - chapters)
    assert not strays, f"glossary entries name chapters that do not exist: {strays}"
    orphans = sorted(set(chapter_summaries_zh()) - chapters)
    assert not orphans, f"summaries for chapters that do not exist: {orphans}"


def test_no_duplicate_english_terms() -> None:
    seen: dict[str, str] = {}
    duplicates = []
    for term in terms():
        key = term.english.casefold()
        if key in seen:
            duplicates.append((seen[key], term.english))
        seen[key] = term.english
    assert not duplicates, f"duplicate English terms: {duplicates}"


def test_terms_are_sorted_and_filtered_by_chapter() -> None:
    everything = terms()
    assert everything == sorted(everything, key=lambda t: (t.chapter, t.english.casefold()))
    for chapter in {t.chapter for t in everything}:
        assert terms_for(chapter) == [t for t in everything if t.chapter == chapter]
    assert terms_for("99_nothing_here") == []
    with pytest.raises(ValueError, match="chapter name"):
        terms_for("backprop")


def test_chinese_fields_contain_cjk() -> None:
    bad = [
        (t.english, name, value)
        for t in terms()
        for name, value in (("chinese", t.chinese), ("definition_zh", t.definition_zh))
        if not CJK.search(value)
    ]
    assert not bad, f"Chinese fields without a single CJK character: {bad}"


def test_summaries_are_one_paragraph_of_mostly_chinese() -> None:
    for chapter, text in chapter_summaries_zh().items():
        assert "\n" not in text, f"the summary of {chapter} must be one paragraph"
        sentences = text.count("。")
        assert 3 <= sentences <= 6, f"the summary of {chapter} has {sentences} sentences, not 3-6"
        # One unit per Chinese character and per Latin word (code, names, terms in parentheses).
        cjk, words = len(CJK.findall(text)), len(LATIN_WORD.findall(text))
        assert cjk >= 0.8 * (cjk + words), (
            f"the summary of {chapter} is not mostly Chinese: {cjk} CJK characters, {words} Latin words"
        )


def test_definitions_are_one_short_line() -> None:
    for t in terms():
        for name in ("definition", "definition_zh"):
            value = getattr(t, name)
            assert "\n" not in value, f"{t.english!r}: {name} spans several lines"
            assert len(value) <= MAX_DEFINITION, (
                f"{t.english!r}: {name} has {len(value)} characters, more than {MAX_DEFINITION}"
            )
        assert not CJK.search(t.definition), f"{t.english!r}: the English definition contains CJK"


@pytest.mark.parametrize(("english", "chinese"), sorted(CANONICAL.items()))
def test_canonical_translation(english: str, chinese: str) -> None:
    entries = _by_english()
    assert english in entries, f"the glossary lacks {english!r}"
    assert entries[english].chinese == chinese, (
        f"{english!r} is translated {entries[english].chinese!r}, the standard term is {chinese!r}"
    )


def test_dropout_mentions_the_other_translation() -> None:
    assert "丢弃法" in _by_english()["dropout"].definition_zh


def test_packaged_files_are_written_stably() -> None:
    """The JSON files are indented UTF-8 with CJK kept as characters, in the order ``terms()`` gives,
    so a diff of a change reads as the change."""
    folder = Path(__file__).resolve().parents[1] / "dlkit" / "glossary"
    glossary = json.loads((folder / "glossary.json").read_text(encoding="utf-8"))
    assert glossary == [asdict(t) for t in terms()]
    for name in ("glossary.json", "summaries_zh.json"):
        text = (folder / name).read_text(encoding="utf-8")
        assert "\\u" not in text, f"{name} must be written with ensure_ascii=False"
        assert text == json.dumps(json.loads(text), ensure_ascii=False, indent=2) + "\n", name


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_loader_reads_a_good_file(tmp_path: Path) -> None:
    assert _load_terms(_write(tmp_path, [GOOD_RECORD])) == [Term(**GOOD_RECORD)]
    assert _load_summaries(_write(tmp_path, {"01_backprop": "本章实现反向传播。"})) == {
        "01_backprop": "本章实现反向传播。"
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"definition": None}, r"missing fields \['definition'\]"),
        ({"chinese": ""}, "field 'chinese' is empty"),
        ({"definition_zh": "   "}, "field 'definition_zh' is empty"),
        ({"definition": "First line.\nSecond line."}, "field 'definition' spans several lines"),
        ({"chapter": "backprop"}, "not a chapter name"),
        ({"english": 3}, "field 'english' must be a string"),
        ({"extra": "x"}, r"unknown fields \['extra'\]"),
    ],
)
def test_loader_names_the_malformed_entry(tmp_path: Path, change: dict, message: str) -> None:
    merged = {**GOOD_RECORD, "english": "broken term", **change}
    bad = {k: v for k, v in merged.items() if v is not None}  # None: leave the field out
    path = _write(tmp_path, [GOOD_RECORD, bad])
    with pytest.raises(ValueError, match=message) as err:
        _load_terms(path)
    assert "glossary entry 1" in str(err.value)
    if isinstance(bad["english"], str):
        assert repr(bad["english"]) in str(err.value)


def test_loader_rejects_duplicates_and_bad_json(tmp_path: Path) -> None:
    twin = {**GOOD_RECORD, "english": "Backpropagation"}
    with pytest.raises(ValueError, match=r"entry 1 \('Backpropagation'\) repeats .* entry 0"):
        _load_terms(_write(tmp_path, [GOOD_RECORD, twin]))
    with pytest.raises(ValueError, match="JSON list"):
        _load_terms(_write(tmp_path, {"english": "x"}))
    path = tmp_path / "broken.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        _load_terms(path)


def test_summary_loader_names_the_malformed_chapter(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="summary of '01_backprop' spans several lines"):
        _load_summaries(_write(tmp_path, {"01_backprop": "第一段。\n\n第二段。"}))
    with pytest.raises(ValueError, match="summary of '02_activations' is empty"):
        _load_summaries(_write(tmp_path, {"02_activations": ""}))
    with pytest.raises(ValueError, match="'intro' is not a chapter name"):
        _load_summaries(_write(tmp_path, {"intro": "介绍。"}))
