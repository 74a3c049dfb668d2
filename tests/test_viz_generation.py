"""The next-token bars and the generation explorer, headless (Agg): the bars are the
sampling module's probabilities, the grey bars exactly the tokens top-k / top-p remove,
and the explorer's samples are the model's own, reproducible for a seed."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba

matplotlib.use("Agg")
import ipywidgets as widgets
import matplotlib.pyplot as plt

from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.nn.sampling import next_token_distribution
from dlkit.text import BPETokenizer, train_bpe
from dlkit.train.embedding_neighbours import token_label
from dlkit.viz.generation import (
    KEPT_COLOUR,
    REMOVED_COLOUR,
    GenerationExplorer,
    generation_explorer,
    next_token_candidates,
    plot_next_token_distribution,
)

TEXT = "def f(x):\n    return x + 1  # the cat sat on the mat, $x$ costs $2\n" * 20
PROMPT = "def f(x):\n    return"


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return train_bpe(TEXT, 256 + 24, special_tokens=["<|endoftext|>"])


@pytest.fixture(scope="module")
def model(tokenizer: BPETokenizer) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(tokenizer.vocab_size, 16, 2, 2, 32, 24)
    gpt = GPT(config).eval()
    # a random model's logits are nearly equal; scale the final norm (logits are linear in
    # its weight and bias) to a standard deviation of 3, so that top-p keeps few tokens
    final_norm = [m for m in gpt.modules() if "norm" in type(m).__name__.lower()][-1]
    with torch.no_grad():
        scale = 3.0 / float(_logits(gpt, tokenizer, PROMPT).std())
        for p in final_norm.parameters():
            p.mul_(scale)
    assert float(_logits(gpt, tokenizer, PROMPT).std()) == pytest.approx(3.0)
    return gpt


def _logits(model: GPT, tokenizer: BPETokenizer, prompt: str) -> torch.Tensor:
    ids = torch.tensor(tokenizer.encode(prompt))[None]  # (1, T)
    with torch.no_grad():
        return model(ids)[0, -1].double()  # (V,)


def _bars(ax) -> tuple[np.ndarray, list[bool]]:
    widths = np.array([p.get_width() for p in ax.patches])
    grey = [p.get_facecolor() == to_rgba(REMOVED_COLOUR) for p in ax.patches]
    assert all(
        g or p.get_facecolor() == to_rgba(KEPT_COLOUR)
        for g, p in zip(grey, ax.patches, strict=True)
    )
    return widths, grey


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.6), (0.5, 8, 0.9), (2.0, 3, 0.3)],
)
def test_bars_are_the_distribution_and_grey_is_what_filtering_removes(
    model, tokenizer, temperature, top_k, top_p
) -> None:
    ax = plot_next_token_distribution(model, tokenizer, PROMPT, temperature=temperature,
                                      top_k=top_k, top_p=top_p, n=15)  # fmt: skip
    logits = _logits(model, tokenizer, PROMPT)
    p = torch.softmax(logits / temperature, dim=-1)  # (V,) what the bars show
    np.testing.assert_allclose(p, next_token_distribution(logits, temperature=temperature))
    order = torch.argsort(p, descending=True, stable=True)[:15]
    widths, grey = _bars(ax)
    np.testing.assert_allclose(widths, p[order].numpy(), rtol=1e-12, atol=0)
    # the kept set, derived here from p alone: top-k on p, then the smallest nucleus >= top_p
    q = next_token_distribution(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    ranked = torch.argsort(p, descending=True, stable=True)
    kept = ranked[: top_k or len(p)]
    if top_p is not None:
        mass = torch.cumsum(p[kept] / p[kept].sum(), 0)
        kept = kept[: int((mass < top_p).sum()) + 1]
    assert set(torch.nonzero(q).flatten().tolist()) == set(kept.tolist())
    removed = set(order.tolist()) - set(kept.tolist())
    assert {i for i, g in zip(order.tolist(), grey, strict=True) if g} == removed
    assert 0 < len(removed) < 15 or (top_k is None and top_p is None)
    # the dots are q on the kept bars, the labels the tokens, the title the settings
    dots = ax.lines[0]
    shown_kept = [i for i in order.tolist() if i not in removed]
    np.testing.assert_allclose(dots.get_xdata(), q[shown_kept].numpy(), rtol=1e-12)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [token_label(tokenizer, i).replace("$", r"\$") for i in order.tolist()]
    title = ax.get_title()
    assert f"T = {temperature:g}" in title and f"top-k = {top_k or 'off'}" in title
    assert f"{len(kept)} of {tokenizer.vocab_size} tokens kept" in title
    assert f"({float(p[kept].sum()):.1%} of p)" in title
    plt.close(ax.figure)


def test_candidates_from_ids_equal_candidates_from_text(model, tokenizer) -> None:
    a = next_token_candidates(model, tokenizer, PROMPT, temperature=0.8, top_k=4, n=6)
    b = next_token_candidates(model, tokenizer, tokenizer.encode(PROMPT), temperature=0.8,
                              top_k=4, n=6)  # fmt: skip
    assert a.ids == b.ids and a.n_kept == 4 and int(a.kept.sum()) == 4
    np.testing.assert_array_equal(a.probs, b.probs)
    assert np.all(np.diff(a.probs) <= 0)  # most probable first
    greedy = next_token_candidates(model, tokenizer, PROMPT, temperature=0.0, n=3)
    assert greedy.ids[0] == int(_logits(model, tokenizer, PROMPT).argmax()) and greedy.n_kept == 1


class _Fixed(torch.nn.Module):
    """Ignores the ids: the same logits at every position (a space, a newline, then '$')."""

    def __init__(self, tokenizer: BPETokenizer) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(tokenizer.vocab_size))
        with torch.no_grad():
            self.bias[[ord(" "), ord("\n"), ord("$")]] = torch.tensor([5.0, 4.0, 3.0])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(*ids.shape, -1)  # (B, T, V)


def test_labels_show_whitespace_and_keep_dollars_as_text(tokenizer) -> None:
    ax = plot_next_token_distribution(_Fixed(tokenizer), tokenizer, "x", n=3)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["␣", "\\n", r"\$"]  # \$: matplotlib would read $...$ as mathematics
    ax.figure.canvas.draw()  # renders: every glyph exists and no label is parsed as math
    plt.close(ax.figure)


def test_bad_arguments(model, tokenizer) -> None:
    with pytest.raises(ValueError, match="prompt is empty"):
        next_token_candidates(model, tokenizer, "")
    with pytest.raises(ValueError, match=r"n \(the number of bars\) must be a positive int"):
        next_token_candidates(model, tokenizer, "x", n=0)
    with pytest.raises(ValueError, match="temperature"):
        next_token_candidates(model, tokenizer, "x", temperature=-1.0)
    small = train_bpe(TEXT, 256 + 3)
    with pytest.raises(ValueError, match=f"predicts {tokenizer.vocab_size} tokens"):
        next_token_candidates(model, small, "x")
    with pytest.raises(ValueError, match="max_new_tokens=24 leaves no room"):
        GenerationExplorer(model, tokenizer, prompt="x", max_new_tokens=24)
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        GenerationExplorer(model, tokenizer, prompt="x", n_samples=0)
    with pytest.raises(ValueError, match="seed must be"):
        GenerationExplorer(model, tokenizer, prompt="x", seed=-1)
    with pytest.raises(ValueError, match=r"top_p must lie in \[0.05, 1.0\]"):
        GenerationExplorer(model, tokenizer, prompt="x", top_p=0.01)
    with pytest.raises(ValueError, match=r"temperature must lie in \[0.0, 2.0\]"):
        GenerationExplorer(model, tokenizer, prompt="x", temperature=3.0)
    with pytest.raises(TypeError, match="has no generate"):
        GenerationExplorer(_Fixed(tokenizer), tokenizer, prompt="x")


def _explorer(model, tokenizer, **kw) -> GenerationExplorer:
    return GenerationExplorer(model, tokenizer, prompt=PROMPT, max_new_tokens=8, n=10, **kw)


def _expected_samples(model, tokenizer, explorer: GenerationExplorer) -> torch.Tensor:
    prompt = torch.tensor(tokenizer.encode(PROMPT))[None].repeat(3, 1)  # (3, T)
    return model.generate(prompt, 8, stop=tokenizer.special_tokens["<|endoftext|>"],
                          seed=explorer.seed.value, **explorer.settings())  # fmt: skip


def test_explorer_follows_the_sliders(model, tokenizer) -> None:
    explorer = _explorer(model, tokenizer)
    logits = _logits(model, tokenizer, PROMPT)
    for control, value in ((explorer.temperature, 0.5), (explorer.top_k, 6), (explorer.top_p, 0.5)):
        control.value = value  # each change redraws and resamples
        settings = explorer.settings()
        assert explorer.candidates.temperature == 0.5
        widths, grey = _bars(explorer.figure.axes[0])
        p = next_token_distribution(logits, temperature=0.5)
        np.testing.assert_allclose(widths, np.sort(p.numpy())[::-1][:10], rtol=1e-12)
        q = next_token_distribution(logits, **settings)
        assert explorer.candidates.n_kept == int((q > 0).sum())
        assert sum(grey) == sum(q[i] == 0 for i in explorer.candidates.ids)
        torch.testing.assert_close(
            explorer.sample_ids, _expected_samples(model, tokenizer, explorer)
        )
    assert explorer.settings() == {"temperature": 0.5, "top_k": 6, "top_p": 0.5}
    assert explorer.candidates.n_kept <= 6
    explorer.top_k.value, explorer.top_p.value = 0, 1.0  # both off
    assert explorer.settings() == {"temperature": 0.5, "top_k": None, "top_p": None}
    assert explorer.candidates.n_kept == tokenizer.vocab_size
    assert "3 samples</b>, seed 0, T = 0.5, top-k = off, top-p = off" in explorer.samples_html.value
    explorer.prompt.value = "the cat"
    assert explorer.prompt_used == tokenizer.encode("the cat")
    assert (
        explorer.sample_ids[:, : len(explorer.prompt_used)].tolist() == [explorer.prompt_used] * 3
    )


def test_samples_are_reproducible_for_a_seed(model, tokenizer) -> None:
    explorer = _explorer(model, tokenizer, seed=5)
    first = list(explorer.samples)
    assert len(first) == 3 and len(set(first)) > 1  # three different continuations
    for row, text in zip(explorer.sample_ids.tolist(), first, strict=True):
        new = row[len(tokenizer.encode(PROMPT)) :]
        eot = tokenizer.special_tokens["<|endoftext|>"]
        assert text == tokenizer.decode(new[: new.index(eot)] if eot in new else new)
    explorer.button.click()  # the next seed
    assert explorer.seed.value == 6 and explorer.samples != first
    torch.testing.assert_close(explorer.sample_ids, _expected_samples(model, tokenizer, explorer))
    explorer.seed.value = 5
    assert explorer.samples == first
    assert _explorer(model, tokenizer, seed=5).samples == first  # a new explorer too
    explorer.temperature.value = 0.0  # greedy: every row the same
    assert len(set(explorer.samples)) == 1


def test_long_and_empty_prompts(model, tokenizer) -> None:
    explorer = _explorer(model, tokenizer)
    long = "the cat sat on the mat " * 10
    explorer.prompt.value = long
    ids = tokenizer.encode(long)
    assert explorer.prompt_used == ids[-(24 - 8) :]  # room for the 8 new tokens
    assert f"the first {len(ids) - 16} dropped" in explorer.status.value
    assert explorer.sample_ids.shape == (3, 24)
    explorer.prompt.value = ""
    assert "Type a prompt" in explorer.status.value and explorer.samples == []
    assert explorer.candidates is None


def test_generation_explorer_is_a_vbox(model, tokenizer) -> None:
    box = generation_explorer(model, tokenizer, prompt=PROMPT, max_new_tokens=4, top_k=10)
    assert isinstance(box, widgets.VBox)
    assert box.children[0].value == PROMPT
    assert [c.description for c in box.children[1].children] == [
        "temperature", "top-k (0 = off)", "top-p (1 = off)"
    ]  # fmt: skip
    assert box.children[1].children[1].value == 10
    assert model.training is False


class _EndsSoon(GPT):
    """The test GPT with a push towards <|endoftext|>: rows stop early, at random steps."""

    def forward(self, idx: torch.Tensor, cache=None) -> torch.Tensor:
        logits = super().forward(idx, cache=cache)  # (B, T, V)
        logits[..., -1] += 6.0  # <|endoftext|> is the last id
        return logits


def test_samples_stop_at_end_of_text(model, tokenizer) -> None:
    eot = tokenizer.special_tokens["<|endoftext|>"]
    assert eot == tokenizer.vocab_size - 1
    ends = _EndsSoon(model.config)
    ends.load_state_dict(model.state_dict())
    explorer = GenerationExplorer(ends.eval(), tokenizer, prompt=PROMPT, max_new_tokens=8,
                                  n_samples=4, seed=1)  # fmt: skip
    assert any(explorer.stopped)
    T = len(tokenizer.encode(PROMPT))
    for row, text, stopped in zip(
        explorer.sample_ids.tolist(), explorer.samples, explorer.stopped, strict=True
    ):
        new = row[T:]
        assert stopped == (eot in new)
        if stopped:  # cut before the stop id; generate repeats it to the end of the row
            first = new.index(eot)
            assert text == tokenizer.decode(new[:first]) and set(new[first:]) == {eot}
    assert explorer.samples_html.value.count("&lt;|endoftext|&gt;") == sum(explorer.stopped)
