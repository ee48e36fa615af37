"""Copying / same-matching eigenvalue scores, diagonal accuracy and the induction eigen-corner against dense references."""

from __future__ import annotations

import pytest
import torch

import circuits
from circuits.analysis.weights.eigen import (
    diagonal_accuracy,
    eigenvalue_positivity,
    induction_qk_positivity,
    ov_eigenvalues,
    prefix_matching_qk_trace,
    qk_positivity,
)
from conftest import tiny_model
from weights_helpers import dense_folded, randomized


def _dense_positivity(matrix: torch.Tensor) -> float:
    lam = torch.linalg.eigvals(matrix.double())
    return (lam.sum().real / lam.abs().sum()).item()


@pytest.mark.parametrize("overrides", [dict(), dict(normalization="none", attn_only=True, n_kv_heads=1), dict(normalization="rmsnorm")])
def test_copying_scores_equal_dense_eigendecomposition(overrides):
    model = randomized(seed=21, **overrides)
    w = dense_folded(model)
    scores = circuits.copying_scores(model)
    assert scores.shape == (2, 3)
    for l in range(2):
        for h in range(3):
            dense = w["E"] @ w["V"][l, h] @ w["O"][l, h] @ w["U"]  # [d_vocab, d_vocab]: fine at d_vocab=13
            assert scores[l, h].item() == pytest.approx(_dense_positivity(dense), abs=1e-5)
            # the d_head eigenvalues are the non-zero eigenvalues of the dense circuit
            lam = ov_eigenvalues(model, l, h)
            dense_lam = torch.linalg.eigvals(dense.double())
            top = dense_lam[dense_lam.abs().argsort(descending=True)[: lam.shape[-1]]]
            torch.testing.assert_close(lam.abs().sort().values, top.abs().sort().values, atol=1e-5, rtol=1e-5)


def test_qk_positivity_equals_dense():
    model = randomized(seed=22)
    w = dense_folded(model)
    scores = qk_positivity(model)
    for l in range(2):
        for h in range(3):
            dense = w["E"] @ w["Q"][l, h] @ w["K"][l, h].T @ w["E"].T
            assert scores[l, h].item() == pytest.approx(_dense_positivity(dense), abs=1e-5)


def _set_ov(model, layer, head, W_V, W_O):
    with torch.no_grad():
        model.blocks[layer].attn.W_V[head].copy_(W_V)
        model.blocks[layer].attn.W_O[head].copy_(W_O)


def test_identity_ov_copies_and_negated_anticopies():
    """Hand-built heads with W_U = W_E^T (tied) and W_OV = +-I: the full OV circuit is +-W_E W_E^T (PSD / NSD)."""
    model = tiny_model(attn_only=True, normalization="none", d_head=11, tied_embeddings=True)
    with torch.no_grad():  # unit rows: each token's own entry <e_a, e_a> = 1 beats every <e_a, e_b> (Cauchy-Schwarz)
        model.embed.W_E.div_(model.embed.W_E.norm(dim=-1, keepdim=True))
    eye = torch.eye(11)
    _set_ov(model, 0, 0, eye, eye)  # W_OV = I, full OV = W_E W_E^T: positive semi-definite
    _set_ov(model, 0, 1, eye, -eye)
    scores = circuits.copying_scores(model)
    assert scores[0, 0].item() == pytest.approx(1.0, abs=1e-6)
    assert scores[0, 1].item() == pytest.approx(-1.0, abs=1e-6)
    assert diagonal_accuracy(model, 1, layer=0, head=0).item() == 1.0  # own entry is the row maximum
    assert diagonal_accuracy(model, 1, layer=0, head=1).item() == 0.0


def test_copying_score_near_zero_at_random_init():
    """At initialisation the score's law is symmetric: W_O -> -W_O flips its sign and leaves Normal(0, s) unchanged,
    so its mean is exactly 0. We check the mean over 40 models x 6 heads lies within 4 standard errors of 0
    (standard error estimated from the same 240 scores; a wrong score, e.g. one computed from |lambda| or
    from a PSD matrix, sits many standard errors away)."""
    scores = torch.cat([circuits.copying_scores(tiny_model(seed=s, attn_only=True)).flatten() for s in range(40)]).double()
    stderr = scores.std() / scores.numel() ** 0.5
    assert abs(scores.mean()) < 4 * stderr
    assert scores.std() > 0.05  # not degenerate: individual random heads do vary


def test_diagonal_accuracy_equals_dense_topk(monkeypatch):
    import circuits.analysis.weights.eigen as eigen

    monkeypatch.setattr(eigen, "_CHUNK_ELEMENTS", 50)  # several chunks even at d_vocab=13
    model = randomized(seed=23, normalization="none")
    w = dense_folded(model)
    for k in (1, 5):
        acc = diagonal_accuracy(model, k)
        acc_qk = diagonal_accuracy(model, k, circuit="qk")
        for l in range(2):
            for h in range(3):
                ov = w["E"] @ w["V"][l, h] @ w["O"][l, h] @ w["U"]
                qk = w["E"] @ w["Q"][l, h] @ w["K"][l, h].T @ w["E"].T
                for got, dense in ((acc[l, h], ov), (acc_qk[l, h], qk)):
                    top = dense.topk(k, dim=-1).indices
                    expected = (top == torch.arange(13)[:, None]).any(-1).float().mean()
                    assert got.item() == pytest.approx(expected.item())


def test_induction_qk_positivity_equals_dense():
    model = randomized(seed=24, n_layers=3)
    w = dense_folded(model)
    pos = induction_qk_positivity(model)
    assert pos.shape == (3, 3, 3, 3)
    for l1 in range(3):
        for l2 in range(3):
            for h1 in range(3):
                for h2 in range(3):
                    if l1 >= l2:
                        assert torch.isnan(pos[l1, h1, l2, h2])
                        continue
                    ov1 = w["V"][l1, h1] @ w["O"][l1, h1]
                    dense = w["E"] @ w["Q"][l2, h2] @ w["K"][l2, h2].T @ ov1.T @ w["E"].T
                    assert pos[l1, h1, l2, h2].item() == pytest.approx(_dense_positivity(dense), abs=1e-5)


def test_prefix_matching_qk_trace_equals_dense():
    model = randomized(seed=25, n_layers=3)
    w = dense_folded(model)
    s = torch.rand(3, 3, generator=torch.Generator().manual_seed(0))
    got = prefix_matching_qk_trace(model, s)
    assert torch.isnan(got[0]).all()
    for l2 in range(1, 3):
        for h2 in range(3):
            total = sum(
                s[l1, h1] * (w["E"] @ w["Q"][l2, h2] @ w["K"][l2, h2].T @ (w["V"][l1, h1] @ w["O"][l1, h1]).T @ w["E"].T)
                for l1 in range(l2)
                for h1 in range(3)
            )
            assert got[l2, h2].item() == pytest.approx(torch.trace(total).item(), rel=1e-4, abs=1e-4)


def test_eigen_errors():
    model = randomized()
    with pytest.raises(ValueError, match=r"\[n_layers, n_heads\]"):
        prefix_matching_qk_trace(model, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="finite"):
        prefix_matching_qk_trace(model, torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="d_vocab_out"):
        circuits.copying_scores(randomized(d_vocab_out=17))
    with pytest.raises(ValueError, match="offset"):
        qk_positivity(randomized(positional="rotary", rotary_dim=4))
    with pytest.raises(ValueError, match="positive int"):
        diagonal_accuracy(model, 0)
    with pytest.raises(ValueError, match="'ov' or 'qk'"):
        diagonal_accuracy(model, 1, circuit="vo")


def test_eigenvalue_positivity_of_zero_is_nan():
    assert torch.isnan(eigenvalue_positivity(torch.zeros(4, dtype=torch.complex64)))
