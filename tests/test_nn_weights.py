"""dlkit.nn.weights: safetensors round trip bit for bit, tied tensors stored once and tied again
after loading, readable mismatch errors before anything is copied, the file format (no
pickle), config.json and metadata round trips, dtype conversion on load."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_model
from torch import nn

from dlkit.nn import DecoderOnlyLM, TransformerStackConfig
from dlkit.nn.weights import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    WeightsMismatchError,
    load_weights,
    read_config,
    read_metadata,
    save_weights,
)


def _lm(seed: int, *, tie: bool = True, vocab: int = 11, d_ff: int = 32) -> DecoderOnlyLM:
    torch.manual_seed(seed)
    config = TransformerStackConfig(
        d_model=16, n_heads=2, n_layers=2, d_ff=d_ff, max_len=8, positions="learned"
    )
    return DecoderOnlyLM(config, vocab, tie_weights=tie)


class _WithBuffers(nn.Module):
    """Parameters in bfloat16 and float64, a BatchNorm with an int64 buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3).to(torch.bfloat16)
        self.bn = nn.BatchNorm1d(3).double()
        self.bn.running_mean.normal_()
        self.bn.num_batches_tracked.fill_(7)


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa
    )


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    model = _lm(0)
    path = save_weights(model, tmp_path / "ckpt")
    assert path == tmp_path / "ckpt" / WEIGHTS_FILE
    other = _lm(1)
    assert not _same_state(model, other)
    assert load_weights(other, tmp_path / "ckpt") == ([], [])
    assert _same_state(model, other)
    ids = torch.randint(0, 11, (2, 6))
    assert torch.equal(model(ids), other(ids))
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]


def test_round_trip_keeps_dtypes_and_buffers(tmp_path: Path) -> None:
    model = _WithBuffers()
    save_weights(model, tmp_path)
    torch.manual_seed(5)
    other = _WithBuffers()
    load_weights(other, tmp_path / WEIGHTS_FILE)  # the file itself works too
    assert _same_state(model, other)
    assert other.fc.weight.dtype == torch.bfloat16 and int(other.bn.num_batches_tracked) == 7


def test_tied_tensor_stored_once_and_tie_restored(tmp_path: Path) -> None:
    model = _lm(0)
    save_weights(model, tmp_path)
    with safe_open(tmp_path / WEIGHTS_FILE, framework="pt") as f:
        keys = set(f.keys())
    assert "decoder.embed.tok_emb.weight" in keys and "decoder.head.weight" not in keys
    assert keys == set(model.state_dict()) - {"decoder.head.weight"}
    other = _lm(1)
    load_weights(other, tmp_path)
    emb, head = other.decoder.embed.tok_emb, other.decoder.head
    assert head.weight is emb.weight  # still one Parameter
    assert torch.equal(head.weight, model.decoder.head.weight)
    with torch.no_grad():
        emb.weight[0, 0] += 1.0
    assert head.weight[0, 0] == emb.weight[0, 0]


def test_tied_file_into_untied_model_fills_both(tmp_path: Path) -> None:
    save_weights(_lm(0), tmp_path)
    untied = _lm(1, tie=False)
    load_weights(untied, tmp_path)
    emb, head = untied.decoder.embed.tok_emb.weight, untied.decoder.head.weight
    assert head is not emb and torch.equal(head, emb)
    assert torch.equal(emb, _lm(0).decoder.embed.tok_emb.weight)


def test_untied_file_with_different_values_does_not_fit_a_tied_model(tmp_path: Path) -> None:
    save_weights(_lm(0, tie=False), tmp_path)
    tied = _lm(1)
    before = {k: v.clone() for k, v in tied.state_dict().items()}
    with pytest.raises(WeightsMismatchError, match="tied in the model but different") as err:
        load_weights(tied, tmp_path)
    assert err.value.tie_conflicts == [["decoder.embed.tok_emb.weight", "decoder.head.weight"]]
    assert all(torch.equal(before[k], v) for k, v in tied.state_dict().items())  # untouched


def test_file_from_safetensors_save_model_loads_with_the_tie(tmp_path: Path) -> None:
    model = _lm(0)
    save_model(model, str(tmp_path / "hf.safetensors"))  # drops the alias, notes it in metadata
    other = _lm(1)
    load_weights(other, tmp_path / "hf.safetensors")
    assert (
        _same_state(model, other)
        and other.decoder.head.weight is other.decoder.embed.tok_emb.weight
    )


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path: Path) -> None:
    save_weights(_lm(0), tmp_path)
    torch.manual_seed(0)
    config = TransformerStackConfig(
        d_model=16, n_heads=2, n_layers=1, d_ff=24, max_len=8, positions="learned"
    )
    model = DecoderOnlyLM(config, 12)
    model.extra = nn.Linear(2, 2)  # names the file lacks
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsMismatchError) as err:
        load_weights(model, tmp_path)
    e = err.value
    assert isinstance(e, ValueError)
    assert e.missing == ["extra.weight", "extra.bias"]
    assert "decoder.blocks.1.norm1.weight" in e.unexpected and len(e.unexpected) == 12
    assert ("decoder.embed.tok_emb.weight", (11, 16), (12, 16)) in e.shape_mismatches
    text = str(e)
    assert "missing in the checkpoint (2):\n    extra.weight\n    extra.bias" in text
    assert "unexpected in the checkpoint (not in the model) (12):" in text
    assert "decoder.embed.tok_emb.weight: saved (11, 16) vs model (12, 16)" in text
    assert "decoder.blocks.0.mlp.linear1.bias: saved (32,) vs model (24,)" in text
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


def test_non_strict_loads_the_common_names_but_never_wrong_shapes(tmp_path: Path) -> None:
    source = _lm(0)
    save_weights(source, tmp_path)
    model = _lm(1)
    model.extra = nn.Linear(2, 2)
    report = load_weights(model, tmp_path, strict=False)
    assert report.missing == ["extra.weight", "extra.bias"] and report.unexpected == []
    assert torch.equal(model.decoder.norm.weight, source.decoder.norm.weight)
    with pytest.raises(WeightsMismatchError, match=r"saved \(11, 16\) vs model \(13, 16\)"):
        load_weights(_lm(1, vocab=13), tmp_path, strict=False)


def test_file_format_is_safetensors_not_pickle(tmp_path: Path) -> None:
    model = _lm(0)
    path = save_weights(model, tmp_path, metadata={"note": "hi"})
    raw = path.read_bytes()
    assert raw[:1] != b"\x80"  # a pickle (torch.save) starts with the PROTO opcode 0x80
    (n,) = struct.unpack("<Q", raw[:8])  # little-endian u64 header length
    header = json.loads(raw[8 : 8 + n])
    assert header["__metadata__"]["note"] == "hi"
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    state = model.state_dict()
    for name, entry in tensors.items():
        assert entry["shape"] == list(state[name].shape) and entry["dtype"] == "F32"
    data_bytes = sum(state[k].numel() * 4 for k in tensors)
    assert max(v["data_offsets"][1] for v in tensors.values()) == data_bytes
    assert len(raw) == 8 + n + data_bytes  # nothing else in the file
    pickled = tmp_path / "pickle.pt"
    torch.save(model.state_dict(), pickled)
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_weights(model, pickled)


def test_config_json_sorted_indented_and_read_back(tmp_path: Path) -> None:
    config = {"vocab_size": 11, "d_model": 16, "name": "tiny", "betas": [0.9, 0.95]}
    save_weights(_lm(0), tmp_path, config=config)
    text = (tmp_path / CONFIG_FILE).read_text(encoding="utf-8")
    assert text == json.dumps(config, sort_keys=True, indent=2) + "\n"
    assert text.index('"betas"') < text.index('"d_model"') < text.index('"vocab_size"')
    assert read_config(tmp_path) == config
    assert read_config(tmp_path / WEIGHTS_FILE) == config == read_config(tmp_path / CONFIG_FILE)
    save_weights(_lm(0), tmp_path / "plain")
    assert read_config(tmp_path / "plain") == {}


def test_metadata_round_trip(tmp_path: Path) -> None:
    meta = {"tokenizer_sha256": "ab" * 32, "step": "1200", "ünïcode": "ok ✓"}
    save_weights(_lm(0), tmp_path, metadata=meta)
    assert read_metadata(tmp_path) == meta  # the tie record is not shown
    save_weights(_lm(0), tmp_path / "none")
    assert read_metadata(tmp_path / "none") == {}


def test_load_converts_to_the_models_dtype(tmp_path: Path) -> None:
    model = _lm(0)
    save_weights(model, tmp_path)
    half = _lm(1).to(torch.bfloat16)
    load_weights(half, tmp_path)
    for name, value in model.state_dict().items():
        got = half.state_dict()[name]
        assert got.dtype == torch.bfloat16 and torch.equal(got, value.to(torch.bfloat16)), name
    assert half.decoder.head.weight is half.decoder.embed.tok_emb.weight


def test_save_overwrites_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_weights(_lm(0), tmp_path, config={"a": 1})
    save_weights(_lm(1), tmp_path, config={"a": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    other = _lm(2)
    load_weights(other, tmp_path)
    assert _same_state(other, _lm(1)) and read_config(tmp_path) == {"a": 2}


def test_bad_arguments(tmp_path: Path) -> None:
    model = _lm(0)
    with pytest.raises(TypeError, match="JSON-serializable"):
        save_weights(model, tmp_path, config={"dtype": torch.float32})
    with pytest.raises(TypeError, match="config must be a dict"):
        save_weights(model, tmp_path, config=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metadata must map str to str"):
        save_weights(model, tmp_path, metadata={"step": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="reserved"):
        save_weights(model, tmp_path, metadata={"dlkit.tied": "{}"})
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_weights(model, tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no config"):
        read_config(tmp_path / "nowhere")
    with pytest.raises(TypeError, match=r"nn\.Module"):
        save_weights(model.state_dict(), tmp_path)  # type: ignore[arg-type]
