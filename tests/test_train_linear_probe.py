"""Linear probes on frozen features (dlkit.train.linear_probe)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlkit.nn.gpt import GPT, GPTConfig
from dlkit.nn.lm_classifier import LMClassifier, pad_batch
from dlkit.train.linear_probe import extract_features, fit_linear_probe


def _blobs(n: int = 300, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
    y = torch.arange(n) % 3
    x = centers[y] + torch.randn(n, 3, generator=g)
    x = x * torch.tensor([100.0, 0.01, 1.0]) + 7.0  # very different feature scales
    return x, y


def test_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = _blobs()
    xt, yt = _blobs(seed=1)
    lam = 1e-2
    head = fit_linear_probe(x, y, 3, weight_decay=lam, steps=300)
    scaler = StandardScaler().fit(x.numpy().astype(np.float64))
    sk = LogisticRegression(C=1.0 / (lam * len(x)), tol=1e-10, max_iter=5000)
    sk.fit(scaler.transform(x.numpy().astype(np.float64)), y.numpy())
    with torch.no_grad():
        ours = head(xt).argmax(dim=1).numpy()
        probs = F.softmax(head(xt).double(), dim=1).numpy()
    theirs = sk.predict(scaler.transform(xt.numpy().astype(np.float64)))
    sk_probs = sk.predict_proba(scaler.transform(xt.numpy().astype(np.float64)))
    assert (ours == yt.numpy()).mean() >= 0.95  # separable: both near perfect
    assert (ours == theirs).mean() >= 0.99
    np.testing.assert_allclose(probs, sk_probs, atol=2e-3)  # the same optimum


def test_returned_layer_takes_raw_features_and_is_the_minimizer():
    x, y = _blobs(n=120)
    lam = 0.05
    head = fit_linear_probe(x, y, 3, weight_decay=lam, steps=300)
    assert isinstance(head, nn.Linear) and head.weight.shape == (3, 3)
    mu, sigma = x.double().mean(0), x.double().std(0, unbiased=False)
    W = (head.weight.double() * sigma).detach().requires_grad_(True)  # back in standardized units
    b = (head.bias.double() + head.weight.double() @ mu).detach().requires_grad_(True)
    u = (x.double() - mu) / sigma
    loss = F.cross_entropy(u @ W.T + b, y) + 0.5 * lam * W.square().sum()
    gW, gb = torch.autograd.grad(loss, [W, b])
    assert gW.abs().max() < 1e-5 and gb.abs().max() < 1e-5  # stationary point of the objective


def test_more_decay_gives_smaller_weights():
    x, y = _blobs(n=120)
    small = fit_linear_probe(x, y, 3, weight_decay=1e-3)
    large = fit_linear_probe(x, y, 3, weight_decay=1.0)
    norm = lambda h: (h.weight * x.std(0, unbiased=False)).norm()  # noqa: E731
    assert norm(large) < 0.5 * norm(small)


def test_probe_errors():
    x, y = _blobs(n=30)
    with pytest.raises(ValueError, match="labels must lie"):
        fit_linear_probe(x, y + 1, 3)
    with pytest.raises(ValueError, match="int64"):
        fit_linear_probe(x, y.float(), 3)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        fit_linear_probe(x[:, 0], y, 3)
    with pytest.raises(ValueError, match="weight_decay"):
        fit_linear_probe(x, y, 3, weight_decay=-1.0)


def test_extract_features_batches_and_restores_order():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.modern(vocab_size=40, d_model=16, n_layers=1, n_heads=2, max_len=16))
    model = LMClassifier(gpt, 3, pad_id=0).train()
    ids = [[5, 6, 7, 8, 9], [3], [4, 4, 4], [9, 8]]
    feats = extract_features(model, ids, batch_size=2)
    assert model.training  # mode restored
    with torch.no_grad():
        for i, seq in enumerate(ids):
            torch.testing.assert_close(
                feats[i], model.features(pad_batch([seq], 0, 16))[0], atol=1e-5, rtol=1e-5
            )
    cnn = _Featurizer()
    x = torch.randn(7, 1, 2, 2)
    torch.testing.assert_close(extract_features(cnn, x, 3), cnn.features(x).detach())


class _Featurizer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))

    def features(self, x):
        return self.body(x)
