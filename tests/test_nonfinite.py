"""Non-finite weights and degenerate inputs: clear errors or documented NaN, never a crash or a misleading number.

Issue 20, items 1 and 7: one NaN in ``W_V`` (or inf in ``W_E``) used to kill the process inside
``torch.linalg.eigvals`` (oneMKL); ``diagonal_accuracy`` said 1.0 for a dead head, a NaN circuit
and any ``k > d_vocab``; ``copying_eval_scores`` said -1.0 for an all-zero model; the loss of an
empty batch was NaN and of an all-padding mask 0.0.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

import circuits
from circuits.analysis.weights.eigen import diagonal_accuracy, induction_qk_positivity, qk_eigenvalues
from circuits.model.finite import check_finite, checked_eigvals, nonfinite_parameters
from conftest import tiny_model
from weights_helpers import dense_folded, randomized


def _poison(model, name: str, index: tuple[int, ...], value: float):
    with torch.no_grad():
        dict(model.named_parameters())[name][index] = value
    return model


# ---- item 1: non-finite weights --------------------------------------------------------------
def test_nan_weights_raise_in_copying_scores_instead_of_crashing_the_process():
    """In a fresh interpreter (a crash in LAPACK would kill pytest itself): NaN in W_V, inf in W_E."""
    script = textwrap.dedent(
        """
        import torch, circuits
        cfg = circuits.TransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=4, d_vocab=50, n_ctx=8,
                                         attn_only=True, normalization="none", use_bias=False, positional="shortformer")
        for name, index, value in (("blocks.0.attn.W_V", (1, 0, 0), float("nan")), ("embed.W_E", (3, 0), float("inf"))):
            model = circuits.Transformer(cfg)
            with torch.no_grad():
                dict(model.named_parameters())[name][index] = value
            try:
                circuits.copying_scores(model)
            except ValueError as error:
                print("ValueError:", error)
            else:
                print("no error")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode} (139 = segfault, 134 = abort): {done.stderr[-2000:]}"
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("ValueError:") for line in lines), done.stdout
    assert "'blocks.0.attn.W_V'" in lines[0] and "head L0H1" in lines[0] and "--lr" in lines[0]
    assert "'embed.W_E'" in lines[1] and "NaN or inf" in lines[1]


def test_every_eigenvalue_statistic_names_the_bad_head():
    model = _poison(randomized(seed=3, normalization="none"), "blocks.1.attn.W_Q", (2, 0, 0), float("nan"))
    with pytest.raises(ValueError, match=r"qk_eigenvalues: the matrix of the QK circuit of head L1H2 has NaN"):
        qk_eigenvalues(model)
    with pytest.raises(ValueError, match=r"QK circuit of head L1H2 .*'blocks.1.attn.W_Q'"):
        qk_eigenvalues(model, layer=1, head=2)
    with pytest.raises(ValueError, match=r"K-composition term L0H0 -> L1H2"):
        induction_qk_positivity(model)
    assert torch.isfinite(circuits.copying_scores(model)).all()  # the OV circuits do not read W_Q


def test_overflowing_finite_weights_are_refused_too():
    model = randomized(seed=4, normalization="none", attn_only=True)
    with torch.no_grad():
        model.blocks[0].attn.W_V.mul_(1e30)
        model.blocks[0].attn.W_O.mul_(1e30)
    assert nonfinite_parameters(model) == []
    with pytest.raises(ValueError, match="finite but their product overflows"):
        circuits.copying_scores(model)


def test_check_finite_names_the_parameter_and_the_fix():
    model = tiny_model()
    check_finite(model)  # a healthy model passes
    _poison(model, "blocks.0.attn.W_V", (1, 2, 3), float("nan"))
    _poison(model, "unembed.W_U", (0, 0), float("-inf"))
    assert nonfinite_parameters(model) == ["blocks.0.attn.W_V", "unembed.W_U"]
    with pytest.raises(ValueError) as info:
        check_finite(model, source="runs/x/checkpoints/step_000010")
    message = str(info.value)
    assert message.startswith("runs/x/checkpoints/step_000010: parameter 'blocks.0.attn.W_V' (3, 11, 5) holds 1 NaN and 0 inf")
    assert "[1, 2, 3]" in message and "'unembed.W_U'" in message and "earlier checkpoint" in message


def test_checked_eigvals_matches_torch_on_finite_input():
    matrices = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    got = checked_eigvals(matrices, lambda i: str(i), "test")
    assert got.dtype == torch.complex128 and torch.equal(got, torch.linalg.eigvals(matrices.double()))
    matrices[1, 2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"test: the matrix of \(1, 2\) has NaN or inf"):
        checked_eigvals(matrices, lambda i: str(i), "test")


def test_load_hf_refuses_non_finite_weights(tmp_path):
    cfg = circuits.TransformerConfig(n_layers=2, d_model=15, n_heads=3, d_vocab=29, n_ctx=11, d_mlp=17, act_fn="gelu_new")
    model = _poison(circuits.Transformer(cfg), "blocks.1.attn.W_V", (0, 0, 0), float("nan"))
    folder = circuits.export_hf(model, tmp_path / "nan", architecture="gpt2")
    with pytest.raises(ValueError, match=r"nan: parameter 'blocks.1.attn.W_V' .* holds 1 NaN"):
        circuits.load_hf(folder)


# ---- item 7: scores that must not mislead ------------------------------------------------------
def test_diagonal_accuracy_of_a_dead_head_is_nan():
    model = randomized(seed=5, normalization="none", attn_only=True)
    with torch.no_grad():
        model.blocks[0].attn.W_V[1] = 0.0  # head L0H1 moves nothing
    acc = diagonal_accuracy(model, 1)
    assert torch.isnan(acc[0, 1]) and torch.isfinite(acc[0, [0, 2]]).all() and torch.isfinite(acc[1]).all()
    assert torch.isnan(diagonal_accuracy(model, 3, layer=0, head=1))
    assert torch.isnan(diagonal_accuracy(model, 13, layer=0, head=1))  # even k = d_vocab: no answer


def test_diagonal_accuracy_of_a_non_finite_circuit_is_nan():
    model = _poison(randomized(seed=6, normalization="none", attn_only=True), "blocks.1.attn.W_O", (2, 0, 0), float("nan"))
    acc = diagonal_accuracy(model, 1)
    assert torch.isnan(acc[1, 2]) and int(torch.isnan(acc).sum()) == 1
    assert torch.isfinite(diagonal_accuracy(model, 1, circuit="qk")).all()  # QK does not read W_O


def test_diagonal_accuracy_k_beyond_d_vocab_raises():
    model = randomized(seed=7)
    with pytest.raises(ValueError, match=r"k=14 exceeds d_vocab=13"):
        diagonal_accuracy(model, 14)
    assert torch.equal(diagonal_accuracy(model, 13), torch.ones(2, 3))  # every token is in its own top d_vocab


def test_diagonal_accuracy_ties_are_misses():
    """Tokens 0 and 1 get identical embeddings and unembeddings: each row's own entry ties with its twin's."""
    model = randomized(seed=8, normalization="none", attn_only=True)
    with torch.no_grad():
        model.embed.W_E[1] = model.embed.W_E[0]
        model.unembed.W_U[:, 1] = model.unembed.W_U[:, 0]
    w = dense_folded(model)
    for k in (1, 2, 4):
        acc = diagonal_accuracy(model, k)
        for l in range(2):
            for h in range(3):
                ov = w["E"] @ w["V"][l, h] @ w["O"][l, h] @ w["U"]
                own = ov.diagonal()
                others_at_least = (ov >= own[:, None]).sum(-1) - 1
                assert others_at_least[:2].min() >= 1  # the twins tie
                assert acc[l, h].item() == pytest.approx((others_at_least < k).float().mean().item())
    assert (diagonal_accuracy(model, 1) <= 11 / 13).all()  # the twins never count at k = 1


def test_copying_eval_scores_of_an_all_zero_model_is_nan():
    model = tiny_model(seed=9)
    scores = circuits.copying_eval_scores(model, seq_len=5, batch=2)
    assert torch.isfinite(scores).all()
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
    assert torch.isnan(circuits.copying_eval_scores(model, seq_len=5, batch=2)).all()


def test_copying_eval_scores_nan_only_for_the_dead_head():
    model = tiny_model(seed=10)
    with torch.no_grad():
        model.blocks[1].attn.W_O[0] = 0.0
    scores = circuits.copying_eval_scores(model, seq_len=5, batch=2)
    assert torch.isnan(scores[1, 0]) and int(torch.isnan(scores).sum()) == 1


def test_loss_of_an_empty_batch_raises():
    model = tiny_model()
    empty = torch.zeros(0, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"empty batch \(0 sequences\)"):
        model(empty, return_type="loss")
    assert model(empty, return_type="per_token_loss").shape == (0, 4)
    with pytest.raises(ValueError, match="no sequences"):
        circuits.per_position_loss(model, [empty])


def test_loss_of_an_all_padding_mask_raises():
    model = tiny_model()
    tokens = torch.randint(0, 13, (2, 5), generator=torch.Generator().manual_seed(0))
    one_real_token_each = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    for mask in (torch.zeros_like(tokens), one_real_token_each):
        with pytest.raises(ValueError, match="leaves no next-token pair of real tokens"):
            model(tokens, return_type="loss", attention_mask=mask)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    per_token = model(tokens, return_type="per_token_loss", attention_mask=mask)
    expected = per_token.sum() / 5  # 1 + 4 real (input, target) pairs
    assert model(tokens, return_type="loss", attention_mask=mask).item() == pytest.approx(expected.item())
