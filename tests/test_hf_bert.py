"""BERT encoders (post-norm, bidirectional, token types): every hidden state equals transformers' BertModel."""

from __future__ import annotations

import json

import pytest
import torch

from hf_helpers import ATOL, max_error_on, padded_batch, randomize_, transformers

from circuits import load_hf
from circuits.hf import UnsupportedCheckpointError

SIZES = dict(
    vocab_size=29, hidden_size=15, num_attention_heads=3, intermediate_size=17, num_hidden_layers=2,
    max_position_embeddings=11, type_vocab_size=2, layer_norm_eps=1e-12,
)


def hf_bert(tmp_path, seed=0, **overrides):
    model = randomize_(transformers.BertModel(transformers.BertConfig(**{**SIZES, **overrides})), seed).eval()
    model.save_pretrained(tmp_path)
    return model


@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_hidden_states_match_with_padding_and_token_types(tmp_path, act):
    hf = hf_bert(tmp_path, hidden_act=act)
    ours = load_hf(tmp_path)
    cfg = ours.config
    assert (cfg.norm_position, cfg.mask, cfg.n_token_types) == ("post", "bidirectional", 2)
    tokens, mask = padded_batch(SIZES["vocab_size"], SIZES["max_position_embeddings"])
    token_types = (torch.arange(tokens.shape[1]) >= 5).long().expand_as(tokens).contiguous()
    with torch.no_grad():
        out = hf(tokens, attention_mask=mask, token_type_ids=token_types, output_hidden_states=True)
        names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(cfg.n_layers)]
        _, cache = ours.run_with_cache(tokens, attention_mask=mask, token_type_ids=token_types, names_filter=names)
    assert len(out.hidden_states) == len(names)
    for name, expected in zip(names, out.hidden_states):
        assert max_error_on(cache[name], expected, mask) < ATOL, name
    assert max_error_on(cache[names[-1]], out.last_hidden_state, mask) < ATOL


def test_token_types_matter(tmp_path):
    """The comparison above would pass with token types ignored only if they had no effect: check they do."""
    hf_bert(tmp_path)
    ours = load_hf(tmp_path)
    tokens, _ = padded_batch(SIZES["vocab_size"], 7)
    with torch.no_grad():
        assert (ours(tokens) - ours(tokens, token_type_ids=torch.ones_like(tokens))).abs().max() > 1e-2


def test_unsupported_bert_options(tmp_path):
    hf_bert(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key, value in (("position_embedding_type", "relative_key"), ("is_decoder", True)):
        (tmp_path / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(UnsupportedCheckpointError, match=key):
            load_hf(tmp_path)
