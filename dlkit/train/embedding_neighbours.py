r"""What a language model learned about its tokens: nearest neighbours in embedding space.

Row :math:`e_i \in \mathbb{R}^C` of the token embedding :math:`E \in \mathbb{R}^{V \times C}`
is the vector the model reads for token :math:`i`. Tokens used in similar contexts get
similar rows; similarity is measured by the cosine of the angle between them,

.. math:: \cos(e_i, e_j) = \frac{e_i \cdot e_j}{\max(\lVert e_i \rVert, \varepsilon)\,
   \max(\lVert e_j \rVert, \varepsilon)}, \qquad \varepsilon = 10^{-8},

which ignores the rows' lengths (a frequent token's row tends to be longer, not more
similar). The clamp is :func:`torch.nn.functional.cosine_similarity`'s: an all-zero row
(a padding row, say) has cosine 0 with everything instead of a NaN.

:func:`nearest_tokens` ranks all :math:`V - 1` other tokens by that cosine;
:func:`token_neighbours_table` does it for a few words and labels every token readably
(:func:`token_label`: a space is ``␣``, a newline ``\n``), ready to print.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from dlkit.text import BPETokenizer

__all__ = [
    "NeighbourRow",
    "format_neighbours_table",
    "nearest_tokens",
    "token_embedding",
    "token_label",
    "token_neighbours_table",
]

EPS = 1e-8  # as torch.nn.functional.cosine_similarity
ESCAPES = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def token_label(tokenizer: BPETokenizer, token_id: int) -> str:
    r"""One token as readable text: a space is ``␣``; newline, tab, carriage return and a
    backslash are written as in Python (``\n``, ``\t``, ``\r``, ``\\``); other control
    characters and bytes that are not whole UTF-8 characters as ``\xHH``. A special
    token is its own text (``<|endoftext|>``)."""
    data = tokenizer.token_bytes(token_id)
    if token_id in tokenizer.special_tokens.values():
        return data.decode("utf-8")
    parts = []
    for ch in data.decode("utf-8", errors="surrogateescape"):
        if "\udc80" <= ch <= "\udcff":  # a byte that is not (all of) a UTF-8 character
            parts.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch in ESCAPES:
            parts.append(ESCAPES[ch])
        elif not ch.isprintable():
            parts.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            parts.append(ch)
    return "".join(parts)


def _as_matrix(embedding: object) -> Tensor:
    if isinstance(embedding, np.ndarray):
        embedding = torch.from_numpy(embedding)
    if not isinstance(embedding, Tensor):
        raise TypeError(
            f"embedding must be a (V, C) tensor or array, got {type(embedding).__name__}"
        )
    if embedding.ndim != 2 or not embedding.is_floating_point():
        raise ValueError(
            f"embedding must be a floating-point (V, C) matrix, got shape "
            f"{tuple(embedding.shape)} and dtype {embedding.dtype}"
        )
    if not bool(torch.isfinite(embedding).all()):
        raise ValueError("embedding holds NaN or infinite values")
    return embedding.detach()


@torch.no_grad()
def nearest_tokens(embedding: object, token_id: int, k: int = 8) -> list[tuple[int, float]]:
    """The ``k`` tokens whose embedding rows have the largest cosine with row ``token_id``.

    Args:
        embedding: ``(V, C)`` tensor or array, one row per token.
        token_id: the query token, in ``[0, V)``; it is never its own neighbour.
        k: how many neighbours, in ``[1, V - 1]``.

    Returns ``[(id, cosine), ...]``, most similar first; equal cosines in increasing id.
    Computed in float64. Raises a ``ValueError`` if the query row is all zeros (its
    cosine with anything is undefined).
    """
    E = _as_matrix(embedding).double()  # (V, C)
    V = E.shape[0]
    token_id = operator.index(token_id)
    if not 0 <= token_id < V:
        raise ValueError(
            f"token_id must lie in [0, {V}) for an embedding of {V} rows, got {token_id}"
        )
    if not isinstance(k, int) or not 1 <= k <= V - 1:
        raise ValueError(f"k must be an int in [1, V - 1] = [1, {V - 1}], got {k!r}")
    norms = E.norm(dim=1)  # (V,)
    if float(norms[token_id]) == 0.0:
        raise ValueError(f"the embedding row of token {token_id} is all zeros: no cosine exists")
    cosine = (E @ E[token_id]) / (norms.clamp_min(EPS) * norms[token_id].clamp_min(EPS))  # (V,)
    cosine[token_id] = -torch.inf  # not its own neighbour
    order = torch.sort(cosine, descending=True, stable=True).indices[:k]  # (k,) ties: lower id
    return [(int(i), float(cosine[i])) for i in order]


def token_embedding(model_or_embedding: object, vocab_size: int | None = None) -> Tensor:
    """The ``(V, C)`` token embedding of a model (or the matrix itself, checked).

    For a module: the ``weight`` of its first embedding layer (any submodule with a
    ``num_embeddings`` attribute and a 2-D ``weight``, such as ``torch.nn.Embedding`` and
    :class:`dlkit.nn.layers.Embedding`) with ``vocab_size`` rows (any number if ``None``).
    """
    if isinstance(model_or_embedding, nn.Module):
        for module in model_or_embedding.modules():
            weight = getattr(module, "weight", None)
            if (
                hasattr(module, "num_embeddings")
                and isinstance(weight, Tensor)
                and weight.ndim == 2
                and (vocab_size is None or weight.shape[0] == vocab_size)
            ):
                return _as_matrix(weight)
        raise ValueError(
            f"{type(model_or_embedding).__name__} has no embedding layer with "
            f"{vocab_size if vocab_size is not None else 'any number of'} rows"
        )
    E = _as_matrix(model_or_embedding)
    if vocab_size is not None and E.shape[0] != vocab_size:
        raise ValueError(f"embedding has {E.shape[0]} rows, the tokenizer {vocab_size} tokens")
    return E


@dataclass(frozen=True)
class NeighbourRow:
    """One word's token and its nearest tokens: ``neighbours`` is ``((id, label, cosine), ...)``."""

    word: str | int
    token_id: int
    token: str
    neighbours: tuple[tuple[int, str, float], ...]

    @property
    def neighbours_text(self) -> str:
        """``"label (cosine), ..."``, cosines to two decimals."""
        return ", ".join(f"{label} ({cos:.2f})" for _, label, cos in self.neighbours)

    def __str__(self) -> str:
        return f"{self.token} → {self.neighbours_text}"


def token_neighbours_table(
    model_or_embedding: object,
    tokenizer: BPETokenizer,
    words: Sequence[str | int],
    k: int = 8,
) -> list[NeighbourRow]:
    """Nearest tokens of each word, one :class:`NeighbourRow` per word.

    ``words`` holds token ids or strings that the tokenizer encodes as exactly one token
    (GPT-style BPE attaches a leading space to a word: ``" return"`` is usually one token
    where ``"return"`` at the start of a text is another). A string that is several tokens
    raises a ``ValueError`` listing its pieces. ``model_or_embedding`` is a model (its
    token embedding is found by :func:`token_embedding`) or a ``(V, C)`` matrix.
    """
    E = token_embedding(model_or_embedding, tokenizer.vocab_size)  # (V, C)
    rows = []
    for word in words:
        if isinstance(word, str):
            ids = tokenizer.encode(word)
            if len(ids) != 1:
                pieces = [token_label(tokenizer, i) for i in ids]
                raise ValueError(
                    f"{word!r} is {len(ids)} tokens {pieces}, not one: pick a single-token "
                    "word (try it with or without a leading space) or pass a token id"
                )
            token_id = ids[0]
        else:
            token_id = operator.index(word)
        near = nearest_tokens(E, token_id, k)
        rows.append(
            NeighbourRow(
                word,
                token_id,
                token_label(tokenizer, token_id),
                tuple((i, token_label(tokenizer, i), cos) for i, cos in near),
            )
        )
    return rows


def format_neighbours_table(rows: Sequence[NeighbourRow]) -> str:
    """The rows as aligned text lines: token, then its neighbours with their cosines."""
    width = max((len(row.token) for row in rows), default=0)
    return "\n".join(f"{row.token:<{width}} → {row.neighbours_text}" for row in rows)
