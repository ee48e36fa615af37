"""Skip-trigram tables and singular directions: a hand-built head, and brute force over every triple."""

from __future__ import annotations

import pytest
import torch

import circuits
from circuits.analysis.weights.trigrams import top_singular_directions
from conftest import tiny_model
from weights_helpers import StubTokenizer, dense_folded, randomized


def _hand_built():
    """d_model = d_vocab = 13 with W_E = W_U = I: destination t3 attends to source t7, which raises t9."""
    model = tiny_model(n_layers=1, attn_only=True, normalization="none", d_model=13, positional="shortformer")
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.W_E.copy_(torch.eye(13))
        model.unembed.W_U.copy_(torch.eye(13))
        attn = model.blocks[0].attn
        attn.W_Q[0, 3, 0], attn.W_K[0, 7, 0] = 3.0, 3.0
        attn.W_V[0, 7, 0], attn.W_O[0, 0, 9] = 2.0, 2.0
    return model


def test_hand_built_skip_trigram():
    table = circuits.skip_trigrams(_hand_built(), StubTokenizer(), 0, 0, k=5)
    assert table.head == "L0H0"
    assert len(table) == 1  # every other triple has zero strength
    (tri,) = table
    assert (tri.source, tri.destination, tri.output) == (7, 3, 9)
    assert str(tri) == "t7 ... t3 -> t9"
    assert tri.qk == pytest.approx(9.0) and tri.ov == pytest.approx(4.0) and tri.strength == pytest.approx(36.0)


@pytest.mark.parametrize("chunk", [2**22, 20])
def test_skip_trigrams_equal_brute_force(chunk, monkeypatch):
    import circuits.analysis.weights.trigrams as trigrams

    monkeypatch.setattr(trigrams, "_CHUNK_ELEMENTS", chunk)  # 20 -> one source per chunk
    model = randomized(seed=41, n_layers=1, attn_only=True)
    w = dense_folded(model)
    layer, head, k = 0, 1, 15
    qk = (w["E"] @ w["Q"][layer, head] @ w["K"][layer, head].T @ w["E"].T).double()  # [destination, source]
    ov = (w["E"] @ w["V"][layer, head] @ w["O"][layer, head] @ w["U"]).double()  # [source, output]
    strength = qk.clamp_min(0).T[:, :, None] * ov.clamp_min(0)[:, None, :]  # [source, destination, output]
    top = strength.flatten().topk(k)
    table = circuits.skip_trigrams(model, StubTokenizer(), layer, head, k=k)
    assert len(table) == k
    torch.testing.assert_close(torch.tensor([t.strength for t in table], dtype=torch.float64), top.values, atol=1e-5, rtol=1e-5)
    expected = [tuple(int(i) for i in torch.unravel_index(j, strength.shape)) for j in top.indices]
    assert [(t.source, t.destination, t.output) for t in table] == expected
    for t in table:
        assert t.qk == pytest.approx(qk[t.destination, t.source].item(), abs=1e-5)
        assert t.ov == pytest.approx(ov[t.source, t.output].item(), abs=1e-5)
        assert t.source_str == f"t{t.source}"


def test_singular_directions():
    hand = top_singular_directions(_hand_built(), StubTokenizer(), 0, 0, n_directions=1, k=1)
    assert hand[0].rows_top == ("t7",) and hand[0].cols_top == ("t9",) and hand[0].singular_value == pytest.approx(4.0)

    model = randomized(seed=42, normalization="none")
    dense = (model.W_E @ model.W_V[1, 2] @ model.W_O[1, 2] @ model.W_U).detach().double()
    U, S, Vh = torch.linalg.svd(dense)
    dirs = top_singular_directions(model, StubTokenizer(), 1, 2, n_directions=3, k=4)
    for i, d in enumerate(dirs):
        assert d.singular_value == pytest.approx(S[i].item(), rel=1e-5)
        u, v = U[:, i], Vh[i]
        sign = torch.sign(u[u.abs().argmax()])
        assert d.rows_top == tuple(f"t{j}" for j in (u * sign).topk(4).indices.tolist())
        assert d.cols_top == tuple(f"t{j}" for j in (v * sign).topk(4).indices.tolist())
        assert d.rows_bottom == tuple(f"t{j}" for j in (-u * sign).topk(4).indices.tolist())
    qk_dirs = top_singular_directions(model, StubTokenizer(), 1, 2, circuit="qk", n_directions=1, k=2)
    assert qk_dirs[0].circuit == "qk" and qk_dirs[0].head == "L1H2"


def test_trigram_errors():
    model = randomized()
    with pytest.raises(TypeError, match="token_str"):
        circuits.skip_trigrams(model, object(), 0, 0)
    with pytest.raises((TypeError, ValueError)):  # the annotation says int (beartype in tests); ValueError otherwise
        circuits.skip_trigrams(model, StubTokenizer(), 0, None)
    with pytest.raises(ValueError, match="out of range"):
        circuits.skip_trigrams(model, StubTokenizer(), 0, 3)
    with pytest.raises(ValueError, match="offset"):
        circuits.skip_trigrams(randomized(positional="rotary", rotary_dim=4), StubTokenizer(), 0, 0)
    with pytest.raises(ValueError, match="n_directions"):
        top_singular_directions(model, StubTokenizer(), 0, 0, n_directions=6)
    with pytest.raises(ValueError, match="tokens per end"):
        top_singular_directions(model, StubTokenizer(), 0, 0, k=14)
