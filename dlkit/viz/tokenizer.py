"""See how a BPE tokenizer cuts text: coloured token spans and an explorer widget.

:func:`show_tokens` renders the tokens of a text as coloured HTML spans, each with its id
(hover for its bytes). A token need not hold whole characters: byte-level BPE may cut a
multi-byte UTF-8 character (``"中"`` is ``E4 B8 AD``) between tokens; such a token is
shown as its bytes in hex, with a dotted border, and its tooltip names the character
the bytes belong to. :func:`tokenizer_explorer` is a widget: type text and see its
tokens, the token count and characters per token, and, for a chosen word, every merge
that :meth:`~dlkit.text.bpe.BPETokenizer.encode_steps` applies, step by step.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass

import ipywidgets as widgets
from IPython.display import HTML

from dlkit.text import BPETokenizer, EncodeStep, pretokenize

__all__ = ["TokenSpan", "TokenizerExplorer", "show_tokens", "token_spans", "tokenizer_explorer"]

# pastel backgrounds, cycled by position so neighbouring tokens always differ
PALETTE = ("#fde2a7", "#c8e6c9", "#bbdefb", "#f8bbd0", "#d1c4e9", "#ffccbc", "#b2ebf2")
SPECIAL_COLOUR = "#424242"
VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}  # whitespace made visible


@dataclass(frozen=True)
class TokenSpan:
    """One token of a text: its id, bytes, the label shown and whether it is whole text.

    ``complete`` is False when the bytes are not valid UTF-8 on their own (part of a
    multi-byte character); ``chars`` is the text of the characters the bytes touch.
    """

    id: int
    data: bytes
    label: str
    complete: bool
    special: bool
    chars: str


def token_spans(
    tokenizer: BPETokenizer, text: str, *, allowed_special: str | Iterable[str] = "all"
) -> list[TokenSpan]:
    """The tokens of ``text`` with what :func:`show_tokens` displays for each."""
    ids = tokenizer.encode(text, allowed_special=allowed_special)
    data = text.encode("utf-8")
    char_of_byte = [k for k, ch in enumerate(text) for _ in ch.encode("utf-8")]
    specials = set(tokenizer.special_tokens.values())
    spans, offset = [], 0
    for token_id in ids:
        piece = tokenizer.token_bytes(token_id)
        first, last = char_of_byte[offset], char_of_byte[offset + len(piece) - 1]
        chars = text[first : last + 1]
        try:
            decoded = piece.decode("utf-8")
            label, complete = "".join(VISIBLE.get(c, c) for c in decoded), True
        except UnicodeDecodeError:
            label, complete = " ".join(f"{b:02X}" for b in piece), False
        spans.append(TokenSpan(token_id, piece, label, complete, token_id in specials, chars))
        offset += len(piece)
    assert offset == len(data), "the tokens do not cover the text"  # encode is lossless
    return spans


def tokens_html(spans: Iterable[TokenSpan]) -> str:
    """The HTML of :func:`show_tokens` for already computed spans."""
    parts = []
    for k, span in enumerate(spans):
        hex_bytes = " ".join(f"{b:02X}" for b in span.data)
        if span.complete:
            tip = f"id {span.id}: {span.chars!r}, bytes {hex_bytes}"
        else:
            what = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in span.chars)
            tip = f"id {span.id}: bytes {hex_bytes}, part of {what}"
        style = (
            f"background:{SPECIAL_COLOUR};color:white;font-weight:bold"
            if span.special
            else f"background:{PALETTE[k % len(PALETTE)]}"
        )
        border = "" if span.complete else ";border:1px dotted #555;font-family:monospace"
        parts.append(
            f'<span class="dlkit-token" title="{html.escape(tip)}" style="{style}{border};'
            'padding:1px 2px;margin:1px;border-radius:3px;white-space:pre;line-height:2">'
            f"{html.escape(span.label)}<sub style='font-size:65%;color:#555'>{span.id}</sub>"
            "</span>"
        )
    return '<div style="font-family:monospace;word-wrap:break-word">' + "".join(parts) + "</div>"


def show_tokens(
    tokenizer: BPETokenizer, text: str, *, allowed_special: str | Iterable[str] = "all"
) -> HTML:
    """The tokens of ``text`` as coloured spans with their ids (displays in a notebook)."""
    return HTML(tokens_html(token_spans(tokenizer, text, allowed_special=allowed_special)))


class TokenizerExplorer:
    """Type text, see its tokens and statistics, and the merge steps of one of its words.

    After each :meth:`update`: ``ids`` (the encoding), ``spans``, ``chars_per_token``,
    and ``steps`` (the :meth:`~dlkit.text.bpe.BPETokenizer.encode_steps` of the chosen word).
    """

    def __init__(self, tokenizer: BPETokenizer, text: str) -> None:
        self.tokenizer = tokenizer
        self.text = widgets.Textarea(value=text, description="text", continuous_update=False,
                                     layout=widgets.Layout(width="95%", height="6em"))  # fmt: skip
        self.stats = widgets.HTML()
        self.tokens = widgets.HTML()
        self.word = widgets.Dropdown(description="word", options=[" "])
        self.merges = widgets.HTML()
        self.ids: list[int] = []
        self.spans: list[TokenSpan] = []
        self.chars_per_token = 0.0
        self.steps: list[EncodeStep] = []
        self.text.observe(self.update, names="value")
        self.word.observe(self.show_steps, names="value")
        self.widget = widgets.VBox([self.text, self.stats, self.tokens, self.word, self.merges])
        self.update()

    def update(self, change: object = None) -> None:
        """Re-encode the text; refresh the statistics, the tokens and the word list."""
        text = self.text.value
        self.spans = token_spans(self.tokenizer, text)
        self.ids = [span.id for span in self.spans]
        self.chars_per_token = len(text) / len(self.ids) if self.ids else 0.0
        self.stats.value = (
            f"<b>{len(self.ids)}</b> tokens for <b>{len(text)}</b> characters "
            f"({len(text.encode('utf-8'))} bytes): <b>{self.chars_per_token:.2f}</b> characters "
            f"per token; vocabulary of {self.tokenizer.vocab_size}"
        )
        self.tokens.value = tokens_html(self.spans)
        words = list(dict.fromkeys(pretokenize(text))) or [" "]
        longest = max(words, key=lambda w: len(w.encode("utf-8")))
        labels = [("".join(VISIBLE.get(c, c) for c in w), w) for w in words]
        self.word.options = labels
        self.word.value = longest  # triggers show_steps when it changes
        self.show_steps()

    def show_steps(self, change: object = None) -> None:
        """The merge steps of the chosen word, one row per merge."""
        word = self.word.value or " "
        self.steps = self.tokenizer.encode_steps(word)
        vocab = self.tokenizer.vocab
        rows = []
        for k, step in enumerate(self.steps):
            if step.pair is None:
                what = "bytes"
            else:
                a, b = step.pair
                what = html.escape(f"{vocab[a]!r} + {vocab[b]!r} → {step.new_id}")
            shown = " ".join(
                f"<span style='background:{PALETTE[j % len(PALETTE)]};padding:1px 3px'>"
                f"{html.escape(_label(vocab[i]))}</span>"
                for j, i in enumerate(step.ids)
            )
            rows.append(
                f"<tr><td>{k}</td><td>{what}</td><td style='font-family:monospace'>{shown}</td></tr>"
            )
        self.merges.value = (
            f"<b>{len(self.steps) - 1}</b> merges turn {len(word.encode('utf-8'))} bytes into "
            f"{len(self.steps[-1].ids)} tokens<table><tr><th>step</th><th>merge</th>"
            f"<th>tokens</th></tr>{''.join(rows)}</table>"
        )


def _label(data: bytes) -> str:
    try:
        return "".join(VISIBLE.get(c, c) for c in data.decode("utf-8"))
    except UnicodeDecodeError:
        return " ".join(f"{b:02X}" for b in data)


def tokenizer_explorer(
    tokenizer: BPETokenizer,
    text: str = "Tokenizers don't see words: they see bytes. 中文 and emoji 😀 take several.",
) -> widgets.Widget:
    """The tokenizer explorer as a widget, ready to display in a notebook."""
    return TokenizerExplorer(tokenizer, text).widget
