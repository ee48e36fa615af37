"""LLaMA checkpoints (RMSNorm, rotary, grouped-query attention, SwiGLU): parity with transformers, export, errors."""

from __future__ import annotations

import json

import pytest
import torch

from hf_helpers import ATOL, max_error_on, padded_batch, randomize_, transformers

from circuits import Transformer, TransformerConfig, export_hf, load_hf
from circuits.hf import UnsupportedCheckpointError, UnsupportedExportError

# 6 query heads sharing 2 key/value heads; head_dim 10 with n_heads * head_dim = 60 != hidden 18.
SIZES = dict(
    vocab_size=29, hidden_size=18, num_attention_heads=6, num_key_value_heads=2, head_dim=10,
    intermediate_size=17, num_hidden_layers=2, max_position_embeddings=11, rms_norm_eps=1e-5,
    bos_token_id=0, eos_token_id=0,
)


def hf_llama(tmp_path, seed=0, **overrides):
    config = transformers.LlamaConfig(**{**SIZES, "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}, **overrides})
    model = randomize_(transformers.LlamaForCausalLM(config), seed).eval()
    model.save_pretrained(tmp_path)
    return model


@pytest.mark.parametrize("overrides", [{}, {"attention_bias": True, "tie_word_embeddings": True}], ids=["plain", "bias-tied"])
def test_logits_match_with_padding(tmp_path, overrides):
    hf = hf_llama(tmp_path, **overrides)
    ours = load_hf(tmp_path)
    cfg = ours.config
    assert (cfg.n_kv_heads_, cfg.d_head_, cfg.positional, cfg.rotary_base) == (2, 10, "rotary", 500.0)
    tokens, mask = padded_batch(SIZES["vocab_size"], SIZES["max_position_embeddings"])
    with torch.no_grad():
        expected = hf(tokens, attention_mask=mask).logits
        got = ours(tokens, attention_mask=mask)
    assert expected.abs().max() > 0.5
    assert max_error_on(got, expected, mask) < ATOL


def test_export_round_trip_gqa(tmp_path):
    cfg = TransformerConfig(
        n_layers=2, d_model=18, n_heads=6, n_kv_heads=2, d_head=10, d_vocab=29, n_ctx=11, d_mlp=17, act_fn="swiglu",
        normalization="rmsnorm", positional="rotary", rotary_base=300.0, use_bias=False, seed=5,
    )
    ours = Transformer(cfg).eval()
    folder = export_hf(ours, tmp_path / "export")
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    hf = transformers.LlamaForCausalLM.from_pretrained(folder).eval()
    tokens, mask = padded_batch(29, 11, seed=2)
    with torch.no_grad():
        assert max_error_on(ours(tokens, attention_mask=mask), hf(tokens, attention_mask=mask).logits, mask) < ATOL
    assert load_hf(folder).config == cfg.replace(seed=0)


def test_export_with_biases(tmp_path):
    cfg = TransformerConfig(
        n_layers=1, d_model=16, n_heads=4, n_kv_heads=2, d_vocab=23, n_ctx=9, d_mlp=13, act_fn="swiglu",
        normalization="rmsnorm", positional="rotary", use_bias=True,
    )
    ours = Transformer(cfg).eval()
    with torch.no_grad():
        for name, param in ours.named_parameters():
            if ".b_" in name and "b_U" not in name:
                param.normal_(0, 0.5)
    hf = transformers.LlamaForCausalLM.from_pretrained(export_hf(ours, tmp_path / "e")).eval()
    tokens, _ = padded_batch(23, 9)
    with torch.no_grad():
        assert max_error_on(ours(tokens), hf(tokens).logits) < ATOL


def test_rope_scaling_is_refused(tmp_path):
    hf_llama(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "linear", "rope_theta": 500.0, "factor": 2.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedCheckpointError, match="rope_type='linear'"):
        load_hf(tmp_path)
    config["rope_parameters"] = None
    config["rope_scaling"] = {"type": "dynamic", "factor": 2.0}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedCheckpointError, match="dynamic"):
        load_hf(tmp_path)


def test_legacy_rope_theta_is_read(tmp_path):
    hf_llama(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["rope_parameters"]
    config["rope_theta"] = 123.0
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_hf(tmp_path).config.rotary_base == 123.0


def test_export_refuses_partial_rotary(tmp_path):
    cfg = TransformerConfig(
        n_layers=1, d_model=12, n_heads=4, d_vocab=23, n_ctx=9, act_fn="swiglu", normalization="rmsnorm",
        positional="rotary", rotary_dim=2,
    )
    with pytest.raises(UnsupportedExportError, match="rotary_dim=2"):
        export_hf(Transformer(cfg), tmp_path / "x", architecture="llama")
