r"""How a language model chooses its next token: the distribution as bars, and samples.

A GPT gives logits :math:`z \in \mathbb{R}^V` for the token after the prompt. Sampling
divides them by the temperature :math:`\tau` and then removes tokens (top-k keeps the
:math:`k` largest, top-p the smallest most-probable set whose mass reaches :math:`p`),
so the token is drawn from

.. math:: q_i = \frac{p_i\,[i \in K]}{\sum_{j \in K} p_j}, \qquad
   p = \operatorname{softmax}(z / \tau),

with :math:`K` the kept set (:func:`dlkit.nn.sampling.next_token_distribution` computes
:math:`p` and :math:`q`; :math:`\tau = 0` is greedy decoding). :func:`plot_next_token_distribution`
draws :math:`p` for the :math:`n` most probable tokens, coloured where the token is kept
and grey where top-k / top-p removed it, with :math:`q` marked on the kept bars.
:func:`generation_explorer` is a widget around it: type a prompt, move the sliders, and
see the distribution and a few sampled continuations change.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from torch import Tensor, nn

from dlkit.nn.sampling import next_token_distribution
from dlkit.text import BPETokenizer
from dlkit.train.embedding_neighbours import token_label

__all__ = [
    "GenerationExplorer",
    "NextTokenCandidates",
    "draw_candidates",
    "generation_explorer",
    "next_token_candidates",
    "next_token_logits",
    "plot_next_token_distribution",
]

KEPT_COLOUR, REMOVED_COLOUR = "#1f77b4", "#c8c8c8"  # matplotlib blue, light grey
EOT = "<|endoftext|>"
MAX_SEED = 2**31 - 1


def _mathtext_safe(text: str) -> str:
    """Matplotlib reads ``$...$`` as mathematics; a token such as ``$x$`` must stay text."""
    return text.replace("$", r"\$")


def _prompt_ids(tokenizer: BPETokenizer, prompt: str | Sequence[int] | Tensor) -> list[int]:
    if isinstance(prompt, str):
        ids = tokenizer.encode(prompt)
    else:
        ids = torch.as_tensor(prompt).reshape(-1).tolist()
    if not ids:
        raise ValueError("the prompt is empty: the model needs at least one token to continue")
    return ids


def _max_len(model: nn.Module) -> int | None:
    return getattr(getattr(model, "config", None), "max_len", None)


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def next_token_logits(model: nn.Module, ids: Sequence[int]) -> Tensor:
    """The model's logits ``(V,)`` (float64, CPU) for the token after ``ids``.

    Runs in eval mode (restored afterwards); a prompt longer than the model's
    ``config.max_len`` is cut to its last ``max_len`` tokens, the most the model reads.
    """
    max_len = _max_len(model)
    ids = list(ids)[-max_len:] if max_len else list(ids)
    x = torch.tensor(ids, dtype=torch.long, device=_device(model))[None]  # (1, T)
    was_training = model.training
    model.eval()
    try:
        logits = model(x)  # (1, T, V)
    finally:
        model.train(was_training)
    if logits.ndim != 3 or logits.shape[:2] != x.shape:
        raise ValueError(
            f"the model must map ids (B, T) = {tuple(x.shape)} to logits (B, T, V), "
            f"got {tuple(logits.shape)}"
        )
    return logits[0, -1].detach().double().cpu()  # (V,)


@dataclass(frozen=True)
class NextTokenCandidates:
    """The ``n`` most probable next tokens under a temperature, and what filtering keeps.

    ``probs`` is :math:`p = \\mathrm{softmax}(z/\\tau)` (what the bars show), ``sampled``
    the distribution :math:`q` sampling draws from (0 where removed), ``kept`` whether
    :math:`q > 0`; all ``(n,)``, most probable first. ``n_kept`` and ``kept_mass``
    (:math:`\\sum_{i \\in K} p_i`) are over the whole vocabulary.
    """

    ids: list[int]
    labels: list[str]
    probs: np.ndarray
    sampled: np.ndarray
    kept: np.ndarray
    n_kept: int
    kept_mass: float
    vocab_size: int
    temperature: float
    top_k: int | None
    top_p: float | None

    @property
    def settings(self) -> str:
        k = "off" if self.top_k is None else self.top_k
        p = "off" if self.top_p is None else f"{self.top_p:g}"
        return f"T = {self.temperature:g}, top-k = {k}, top-p = {p}"


def next_token_candidates(
    model: nn.Module,
    tokenizer: BPETokenizer,
    prompt: str | Sequence[int] | Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    n: int = 20,
) -> NextTokenCandidates:
    """What :func:`plot_next_token_distribution` draws, as numbers (see its arguments)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n (the number of bars) must be a positive int, got {n!r}")
    logits = next_token_logits(model, _prompt_ids(tokenizer, prompt))  # (V,)
    V = logits.shape[0]
    if V != tokenizer.vocab_size:
        raise ValueError(
            f"the model predicts {V} tokens but the tokenizer has {tokenizer.vocab_size}"
        )
    probs = next_token_distribution(logits, temperature=temperature)  # (V,) p
    sampled = next_token_distribution(
        logits, temperature=temperature, top_k=top_k, top_p=top_p
    )  # (V,) q
    kept = sampled > 0  # (V,)
    order = torch.sort(probs, descending=True, stable=True).indices[: min(n, V)]  # (n,)
    ids = order.tolist()
    return NextTokenCandidates(
        ids=ids,
        labels=[token_label(tokenizer, i) for i in ids],
        probs=probs[order].numpy(),
        sampled=sampled[order].numpy(),
        kept=kept[order].numpy(),
        n_kept=int(kept.sum()),
        kept_mass=float(probs[kept].sum()),
        vocab_size=V,
        temperature=float(temperature),
        top_k=top_k,
        top_p=top_p,
    )


def draw_candidates(candidates: NextTokenCandidates, ax: Axes, *, prompt: str = "") -> Axes:
    """Horizontal bars of ``candidates.probs`` (most probable on top), kept ones coloured,
    removed ones grey, a dot at each kept token's renormalised probability :math:`q`."""
    c = candidates
    y = np.arange(len(c.ids))
    colours = [KEPT_COLOUR if k else REMOVED_COLOUR for k in c.kept]
    ax.barh(y, c.probs, color=colours, height=0.8)
    ax.plot(c.sampled[c.kept], y[c.kept], "o", color="black", markersize=4)
    for yi, p in zip(y, c.probs, strict=True):
        ax.text(p, yi, f" {p:.1%}", va="center", fontsize=7)
    ax.set_yticks(y, [_mathtext_safe(label) for label in c.labels], fontsize=8,
                  fontfamily="monospace")  # fmt: skip
    ax.invert_yaxis()  # most probable on top
    top = max(float(c.probs.max()), float(c.sampled.max()), 1e-12)
    ax.set_xlim(0, 1.15 * top)
    ax.set(xlabel="probability", ylabel="next token")
    title = f"{c.settings}: {c.n_kept} of {c.vocab_size} tokens kept ({c.kept_mass:.1%} of p)"
    if prompt:
        tail = prompt if len(prompt) <= 40 else "…" + prompt[-39:]
        title = f"after {_mathtext_safe(repr(tail))}\n{title}"
    ax.set_title(title, fontsize=9)
    handles = [
        Patch(color=KEPT_COLOUR, label="kept: p = softmax(z / T)"),
        Patch(color=REMOVED_COLOUR, label="removed by top-k / top-p"),
        Line2D([], [], marker="o", ls="", color="black", ms=4, label="q: what is sampled"),
    ]
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    return ax


def plot_next_token_distribution(
    model: nn.Module,
    tokenizer: BPETokenizer,
    prompt: str | Sequence[int] | Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    n: int = 20,
    ax: Axes | None = None,
) -> Axes:
    """Bars of the ``n`` most probable next tokens after ``prompt`` under ``temperature``.

    Args:
        model: ids ``(B, T)`` → logits ``(B, T, V)``, ``V`` the tokenizer's vocabulary size.
        tokenizer: turns the prompt (a string) into ids and the tokens into labels
            (:func:`~dlkit.train.embedding_neighbours.token_label`: ``␣`` a space, ``\\n``
            a newline).
        prompt: text, or token ids.
        temperature, top_k, top_p: as :func:`dlkit.nn.sampling.next_token_distribution`
            (``None``: no top-k / top-p).
        n: number of bars (all tokens if ``n`` exceeds the vocabulary).
        ax: where to draw (a new figure if ``None``).

    The title gives the settings and how many tokens (and how much of :math:`p`) are
    kept. Returns the axes.
    """
    c = next_token_candidates(model, tokenizer, prompt, temperature=temperature, top_k=top_k,
                              top_p=top_p, n=n)  # fmt: skip
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 0.25 * len(c.ids) + 1.5))
    text = prompt if isinstance(prompt, str) else tokenizer.decode(_prompt_ids(tokenizer, prompt))
    return draw_candidates(c, ax, prompt=text)


class GenerationExplorer:
    """Prompt, temperature, top-k, top-p and seed in; next-token bars and samples out.

    Every change of a control redraws the distribution and resamples ``n_samples``
    continuations with the same seed, so what changes is the settings' doing; the
    **Sample** button moves to the next seed for new samples. After each :meth:`update`:
    ``candidates`` (:class:`NextTokenCandidates`), ``figure``, ``sample_ids``
    (``(n_samples, T + n)`` from ``model.generate``, ``n <= max_new_tokens``), ``samples``
    (the decoded continuations, each up to its ``<|endoftext|>``) and ``stopped`` (which
    rows emitted ``<|endoftext|>``).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: BPETokenizer,
        *,
        prompt: str,
        max_new_tokens: int = 40,
        seed: int = 0,
        n_samples: int = 3,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        n: int = 20,
    ) -> None:
        for name, value in (("max_new_tokens", max_new_tokens), ("n_samples", n_samples),
                            ("n", n)):  # fmt: skip
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an int in [0, {MAX_SEED}], got {seed!r}")
        top_k_max = min(100, tokenizer.vocab_size)
        ranges = ((temperature, 0.0, 2.0, "temperature"), (top_k or 0, 0, top_k_max, "top_k"),
                  (1.0 if top_p is None else top_p, 0.05, 1.0, "top_p"))  # fmt: skip
        for value, low, high, name in ranges:  # the sliders' ranges: they would clip silently
            if not low <= value <= high:
                raise ValueError(f"{name} must lie in [{low}, {high}] (or None), got {value!r}")
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if not callable(getattr(model, "generate", None)):
            raise TypeError(
                f"{type(model).__name__} has no generate(prompt, max_new_tokens, ...) method "
                "(use dlkit.nn.gpt.GPT)"
            )
        max_len = _max_len(model)
        if max_len is not None and max_new_tokens >= max_len:
            raise ValueError(
                f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the "
                f"model's context of max_len={max_len} tokens"
            )
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.n_samples, self.n = max_new_tokens, n_samples, n
        self.stop = tokenizer.special_tokens.get(EOT)
        style = {"description_width": "initial"}
        self.prompt = widgets.Textarea(value=prompt, description="prompt", continuous_update=False,
                                       layout=widgets.Layout(width="95%", height="4em"))  # fmt: skip
        self.temperature = widgets.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.05,
                                               description="temperature", style=style,
                                               continuous_update=False)  # fmt: skip
        self.top_k = widgets.IntSlider(value=top_k or 0, min=0, max=top_k_max,
                                       description="top-k (0 = off)", style=style,
                                       continuous_update=False)  # fmt: skip
        self.top_p = widgets.FloatSlider(value=1.0 if top_p is None else top_p, min=0.05, max=1.0,
                                         step=0.05, description="top-p (1 = off)", style=style,
                                         continuous_update=False)  # fmt: skip
        self.seed = widgets.BoundedIntText(value=seed, min=0, max=MAX_SEED, description="seed",
                                           layout=widgets.Layout(width="160px"))  # fmt: skip
        self.button = widgets.Button(description="Sample", tooltip="new samples (next seed)")
        self.status = widgets.HTML()
        self.output = widgets.Output()
        self.samples_html = widgets.HTML()
        self.candidates: NextTokenCandidates | None = None
        self.figure: Figure | None = None
        self.sample_ids: Tensor | None = None
        self.samples: list[str] = []
        self.stopped: list[bool] = []
        self.prompt_used: list[int] = []
        for control in (self.prompt, self.temperature, self.top_k, self.top_p, self.seed):
            control.observe(self.update, names="value")
        self.button.on_click(self.next_seed)
        self.widget = widgets.VBox([
            self.prompt,
            widgets.HBox([self.temperature, self.top_k, self.top_p]),
            widgets.HBox([self.seed, self.button]),
            self.status,
            self.output,
            self.samples_html,
        ])  # fmt: skip
        self.update()

    def settings(self) -> dict[str, float | int | None]:
        """The sampling arguments the controls stand for (0 top-k and 1 top-p are off)."""
        return {
            "temperature": float(self.temperature.value),
            "top_k": int(self.top_k.value) or None,
            "top_p": None if self.top_p.value >= 1.0 else float(self.top_p.value),
        }

    def next_seed(self, button: object = None) -> None:
        """The Sample button: the next seed (which resamples)."""
        self.seed.value += 1

    def update(self, change: object = None) -> None:
        """Recompute the distribution, redraw the bars and resample the continuations."""
        ids = self.tokenizer.encode(self.prompt.value)
        if not ids:
            self.status.value = "<b>Type a prompt:</b> the model needs at least one token."
            self.candidates, self.sample_ids, self.samples, self.stopped = None, None, [], []
            self.output.clear_output()
            self.samples_html.value = ""
            return
        max_len = _max_len(self.model)
        room = None if max_len is None else max_len - self.max_new_tokens
        self.prompt_used = ids[-room:] if room is not None else ids
        cut = len(ids) - len(self.prompt_used)
        settings = self.settings()
        self.candidates = next_token_candidates(self.model, self.tokenizer, self.prompt_used,
                                                n=self.n, **settings)  # fmt: skip
        self.status.value = f"prompt: {len(ids)} tokens" + (
            f" (the first {cut} dropped: the model reads {max_len} tokens, "
            f"{self.max_new_tokens} of them are kept for the samples)"
            if cut
            else ""
        )
        self._draw()
        self._sample(settings)

    def _draw(self) -> None:
        if self.figure is not None:
            plt.close(self.figure)
        c = self.candidates
        self.figure, ax = plt.subplots(figsize=(7.0, 0.25 * len(c.ids) + 1.5))
        draw_candidates(c, ax, prompt=self.tokenizer.decode(self.prompt_used))
        self.figure.tight_layout()
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)
        plt.close(self.figure)

    @torch.no_grad()
    def _sample(self, settings: dict[str, float | int | None]) -> None:
        prompt = torch.tensor(self.prompt_used, dtype=torch.long, device=_device(self.model))
        prompt = prompt[None].repeat(self.n_samples, 1)  # (S, T)
        was_training = self.model.training
        self.model.eval()
        try:
            out = self.model.generate(prompt, self.max_new_tokens, stop=self.stop,
                                      seed=int(self.seed.value), **settings)  # fmt: skip
        finally:
            self.model.train(was_training)
        self.sample_ids = out.cpu()  # (S, T + new)
        T = prompt.shape[1]
        self.samples, self.stopped = [], []
        for row in self.sample_ids[:, T:].tolist():
            stopped = self.stop is not None and self.stop in row
            self.samples.append(
                self.tokenizer.decode(row[: row.index(self.stop)] if stopped else row)
            )
            self.stopped.append(stopped)
        self._show_samples()

    def _show_samples(self) -> None:
        head = html.escape(self.tokenizer.decode(self.prompt_used))
        rows = []
        for k, (text, stopped) in enumerate(zip(self.samples, self.stopped, strict=True)):
            body = html.escape(text)
            end = f" <span style='color:#888'>{html.escape(EOT)}</span>" if stopped else ""
            rows.append(
                f"<div style='white-space:pre-wrap;font-family:monospace;margin:4px 0;"
                f"border-left:3px solid {KEPT_COLOUR};padding-left:6px'>"
                f"<span style='color:#888'>{k + 1}.</span> <span style='color:#666'>{head}</span>"
                f"<b>{body}</b>{end}</div>"
            )
        c = self.candidates
        self.samples_html.value = (
            f"<b>{self.n_samples} samples</b>, seed {self.seed.value}, {html.escape(c.settings)} "
            f"(up to {self.max_new_tokens} new tokens, in bold)" + "".join(rows)
        )


def generation_explorer(
    model: nn.Module,
    tokenizer: BPETokenizer,
    *,
    prompt: str = "Return the",
    max_new_tokens: int = 40,
    seed: int = 0,
    n_samples: int = 3,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> widgets.Widget:
    """The generation explorer as a widget (a ``VBox``), ready to display in a notebook.

    ``model`` is a :class:`dlkit.nn.gpt.GPT` (anything with its ``generate``); see
    :class:`GenerationExplorer` (its ``widget``) for what the controls do.
    """
    return GenerationExplorer(
        model, tokenizer, prompt=prompt, max_new_tokens=max_new_tokens, seed=seed,
        n_samples=n_samples, temperature=temperature, top_k=top_k, top_p=top_p,
    ).widget  # fmt: skip
