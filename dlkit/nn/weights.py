r"""Saving and loading a model's weights with safetensors and a JSON config: no pickle.

``torch.save`` writes a pickle, and loading a pickle runs whatever code the file asks for.
A **safetensors** file is data only: an 8-byte little-endian header length :math:`n`, a JSON
header of :math:`n` bytes (each tensor's name, dtype, shape and byte range, plus a
``__metadata__`` map of strings), then the raw tensor bytes. Reading it cannot execute code,
and the header alone says what is inside. A folder written by :func:`save_weights` holds

* ``model.safetensors``: the ``state_dict`` (parameters and persistent buffers), bit for bit;
* ``config.json``: the model's configuration (sorted keys, indent 2), so that the folder alone
  rebuilds the model: ``GPT(GPTConfig.from_dict(read_config(folder)))``, then
  :func:`load_weights`.

**Tied tensors.** A head tied to the token embedding is one tensor under two names
(``head.weight is tok_emb.weight``). safetensors refuses to store one buffer twice, and
storing two copies would double the file and lose the tie. So each group of names for the
same tensor is stored **once**, under its first name in ``state_dict()`` order (for dlkit's
language models the embedding's), and the header's metadata key ``dlkit.tied`` (a JSON map
alias → stored name) records the others. Loading fills every name of a group from the one
stored tensor; a tie in the model stays a tie (values are copied *into* the model's tensors,
never replacing them). Files written by ``safetensors.torch.save_model``, which records a
dropped alias as ``{alias: kept name}`` in the metadata, load the same way.

**Checks before loading.** :func:`load_weights` reads the header first and compares names and
shapes with the model's ``state_dict``; on any difference it raises
:class:`WeightsMismatchError` listing the missing names, the unexpected names and each shape
mismatch (``name: saved (a, b) vs model (c, d)``), before a single value is copied. Values are
converted to each model tensor's dtype and device (``Tensor.copy_``): loading float32 weights
into a bfloat16 model rounds them; with equal dtypes the round trip is exact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "LoadReport",
    "WeightsMismatchError",
    "load_weights",
    "read_config",
    "read_metadata",
    "save_weights",
]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_TIED_KEY = "dlkit.tied"  # metadata: JSON {alias: stored name}
_RESERVED = "dlkit."  # metadata keys starting with this belong to this module
_SHOWN = 20  # names listed per section of an error message


class WeightsMismatchError(ValueError):
    """A checkpoint's tensors do not fit the model: names and shapes listed.

    Attributes: ``missing`` (names the model has and the file lacks), ``unexpected`` (names
    in the file the model lacks), ``shape_mismatches`` (``(name, saved shape, model shape)``),
    ``tie_conflicts`` (groups the model ties but the file stores with different values).
    """

    def __init__(
        self,
        source: str,
        model_name: str,
        *,
        missing: list[str],
        unexpected: list[str],
        shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        tie_conflicts: list[list[str]],
    ) -> None:
        self.missing, self.unexpected = missing, unexpected
        self.shape_mismatches, self.tie_conflicts = shape_mismatches, tie_conflicts
        lines = [f"the weights in {source} do not fit the {model_name}:"]
        sections = [
            ("missing in the checkpoint", missing),
            ("unexpected in the checkpoint (not in the model)", unexpected),
            (
                "shape mismatches",
                [f"{n}: saved {_shape(s)} vs model {_shape(m)}" for n, s, m in shape_mismatches],
            ),
            (
                "tied in the model but different in the checkpoint",
                [" = ".join(group) for group in tie_conflicts],
            ),
        ]
        for title, items in sections:
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines += [f"    {item}" for item in items[:_SHOWN]]
                if len(items) > _SHOWN:
                    lines.append(f"    ... and {len(items) - _SHOWN} more")
        super().__init__("\n".join(lines))


class LoadReport(NamedTuple):
    """What :func:`load_weights` could not match (both empty after a strict load)."""

    missing: list[str]
    unexpected: list[str]


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))  # (a, b); (a,) for a vector


def _alias_groups(state: Mapping[str, Tensor]) -> list[list[str]]:
    """Names of ``state`` grouped by tensor identity (same storage, offset, shape, strides,
    dtype), in ``state`` order; a name that shares with nothing is a group of one."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, t in state.items():
        key = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.stride(), t.dtype)  # fmt: skip
        if t.numel() == 0:
            key = (name,)  # empty tensors own no memory: never tied
        groups.setdefault(key, []).append(name)
    return list(groups.values())


def _weights_path(folder_or_file: str | os.PathLike[str]) -> Path:
    path = Path(folder_or_file)
    path = path / WEIGHTS_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f"no weights file at {path} (expected a folder holding {WEIGHTS_FILE})"
        )
    return path


def save_weights(
    model: nn.Module,
    folder: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``folder/model.safetensors`` (the model's ``state_dict``, tied tensors once) and
    ``folder/config.json`` (``config``, ``{}`` when None); returns the weights file's path.

    ``config`` must be JSON-serializable (``GPTConfig.to_dict()``, for example). ``metadata``
    (``str`` → ``str``, keys not starting with ``"dlkit."``) goes into the safetensors header;
    :func:`read_metadata` gives it back. The folder is created if needed; each file is written
    to a temporary name and then renamed, so a crash never leaves half a file.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"save_weights expects an nn.Module, got {type(model).__name__}")
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(
            f"config must be a dict (e.g. GPTConfig.to_dict()), got {type(config).__name__}"
        )
    user_meta = dict(metadata or {})
    for key, value in user_meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str, got {key!r}: {value!r}")
        if key.startswith(_RESERVED):
            raise ValueError(f"metadata key {key!r}: keys starting with {_RESERVED!r} are reserved")
    try:
        config_text = json.dumps(dict(config or {}), sort_keys=True, indent=2) + "\n"
    except (TypeError, ValueError) as err:
        raise TypeError(f"config must be JSON-serializable: {err}") from None

    state = model.state_dict()
    tensors: dict[str, Tensor] = {}
    tied: dict[str, str] = {}
    for group in _alias_groups(state):
        stored, *aliases = group
        tensors[stored] = state[stored].detach().contiguous()
        tied.update(dict.fromkeys(aliases, stored))
    header = {**user_meta, _TIED_KEY: json.dumps(tied, sort_keys=True)}

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights, cfg = folder / WEIGHTS_FILE, folder / CONFIG_FILE
    save_file(tensors, weights.with_name(WEIGHTS_FILE + ".tmp"), metadata=header)
    os.replace(weights.with_name(WEIGHTS_FILE + ".tmp"), weights)
    cfg.with_name(CONFIG_FILE + ".tmp").write_text(config_text, encoding="utf-8")
    os.replace(cfg.with_name(CONFIG_FILE + ".tmp"), cfg)
    return weights


def _read_header(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
    """(name -> shape, metadata) from the file's header, without reading the tensors."""
    try:
        with safe_open(path, framework="pt") as f:
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
            meta = dict(f.metadata() or {})
    except SafetensorError as err:
        raise ValueError(
            f"{path} is not a safetensors file ({err}); dlkit never reads pickled weights"
        ) from None
    return shapes, meta


def read_metadata(folder_or_file: str | os.PathLike[str]) -> dict[str, str]:
    """The ``metadata`` given to :func:`save_weights` (without this module's own keys)."""
    _, meta = _read_header(_weights_path(folder_or_file))
    return {k: v for k, v in meta.items() if not k.startswith(_RESERVED)}


def read_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``folder/config.json`` as a dict (``folder`` may also be that file or the weights file)."""
    path = Path(folder)
    if path.is_dir():
        path = path / CONFIG_FILE
    elif path.suffix != ".json":
        path = path.with_name(CONFIG_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"no config at {path}")
    config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def load_weights(
    model: nn.Module, folder_or_file: str | os.PathLike[str], *, strict: bool = True
) -> LoadReport:
    """Copy the weights of a :func:`save_weights` folder (or ``.safetensors`` file) into ``model``.

    Names and shapes are checked against ``model.state_dict()`` first; nothing is copied
    unless they fit. ``strict=True``: any missing or unexpected name raises
    :class:`WeightsMismatchError`; ``strict=False`` loads the common names and returns them
    in the :class:`LoadReport`. Shape mismatches, and a tie in the model whose names the file
    stores with different values, always raise. Values are converted to the model's dtype and
    device; a tied group in the model receives its one stored value (the tie stays).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"load_weights expects an nn.Module, got {type(model).__name__}")
    path = _weights_path(folder_or_file)
    shapes, meta = _read_header(path)
    # aliases: ours, and safetensors.torch.save_model's ({dropped name: kept name} in metadata)
    tied = {k: v for k, v in meta.items() if not k.startswith(_RESERVED) and k not in shapes}
    tied.update(json.loads(meta.get(_TIED_KEY, "{}")))
    source = {name: name for name in shapes}  # every name the file provides -> stored name
    source.update({alias: stored for alias, stored in tied.items() if stored in shapes})

    state = model.state_dict()
    groups = _alias_groups(state)
    for group in groups:  # one stored tensor fills every name the model ties to it
        present = [n for n in group if n in source]
        for name in group if present else ():
            source.setdefault(name, source[present[0]])

    missing = [n for n in state if n not in source]
    unexpected = [n for n in source if n not in state]
    mismatches = [
        (n, shapes[source[n]], tuple(state[n].shape))
        for n in state
        if n in source and shapes[source[n]] != tuple(state[n].shape)
    ]
    with safe_open(path, framework="pt") as f:
        conflicts = []
        for group in groups:
            stored = sorted({source[n] for n in group if n in source})
            if len(stored) > 1 and not all(
                torch.equal(f.get_tensor(stored[0]), f.get_tensor(s)) for s in stored[1:]
            ):
                conflicts.append([n for n in group if n in source])
        if mismatches or conflicts or (strict and (missing or unexpected)):
            raise WeightsMismatchError(
                str(path), f"{type(model).__name__}'s state_dict",
                missing=missing, unexpected=unexpected,
                shape_mismatches=mismatches, tie_conflicts=conflicts,
            )  # fmt: skip
        tensors = {
            stored: f.get_tensor(stored) for stored in {source[n] for n in state if n in source}
        }
    # load_state_dict copies into the model's tensors in place (Tensor.copy_: converts dtype
    # and device, keeps ties) and runs any loading hooks the modules define
    model.load_state_dict({n: tensors[source[n]] for n in state if n in source}, strict=False)
    return LoadReport(missing=missing, unexpected=unexpected)
