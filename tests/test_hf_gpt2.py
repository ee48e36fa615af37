"""GPT-2 checkpoints: our logits equal transformers' (float32, 1e-5), padding, sharding, export round trip, errors."""

from __future__ import annotations

import json

import pytest
import torch

from hf_helpers import ATOL, max_error_on, padded_batch, randomize_, transformers

import circuits
from circuits import Transformer, TransformerConfig, export_hf, load_hf
from circuits.hf import UnsupportedCheckpointError, UnsupportedExportError

SIZES = dict(vocab_size=29, n_embd=15, n_head=3, n_layer=2, n_positions=11, n_inner=17)


def hf_gpt2(tmp_path, seed=0, **overrides):
    config = transformers.GPT2Config(**{**SIZES, "bos_token_id": 0, "eos_token_id": 0, **overrides})
    model = randomize_(transformers.GPT2LMHeadModel(config), seed).eval()
    model.save_pretrained(tmp_path)
    return model


@pytest.mark.parametrize("overrides", [{}, {"tie_word_embeddings": False, "activation_function": "relu"}], ids=["tied", "untied-relu"])
def test_logits_match_with_padding(tmp_path, overrides):
    hf = hf_gpt2(tmp_path, **overrides)
    ours = load_hf(tmp_path)
    assert ours.config.tied_embeddings == overrides.get("tie_word_embeddings", True)
    tokens, mask = padded_batch(SIZES["vocab_size"], SIZES["n_positions"])
    with torch.no_grad():
        expected = hf(tokens, attention_mask=mask).logits
        got = ours(tokens, attention_mask=mask)
    assert expected.abs().max() > 0.5  # not a near-zero comparison
    assert max_error_on(got, expected, mask) < ATOL


def test_sharded_checkpoint(tmp_path):
    hf = hf_gpt2(tmp_path / "one")
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="2KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    a, b = load_hf(tmp_path / "one"), load_hf(tmp_path / "sharded")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_export_round_trip(tmp_path):
    cfg = TransformerConfig(n_layers=2, d_model=15, n_heads=3, d_vocab=29, n_ctx=11, d_mlp=17, act_fn="gelu_new", seed=3)
    ours = Transformer(cfg).eval()
    folder = export_hf(ours, tmp_path / "export")
    hf = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    tokens, mask = padded_batch(29, 11, seed=1)
    with torch.no_grad():
        assert max_error_on(ours(tokens, attention_mask=mask), hf(tokens, attention_mask=mask).logits, mask) < ATOL
    again = load_hf(folder)
    assert again.config == cfg.replace(seed=0)
    for name, value in ours.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name


def test_unsupported_options_are_named(tmp_path):
    hf_gpt2(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "scale_attn_by_inverse_layer_idx": True}))
    with pytest.raises(UnsupportedCheckpointError, match="scale_attn_by_inverse_layer_idx"):
        load_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2ForSequenceClassification"]}))
    with pytest.raises(UnsupportedCheckpointError, match="GPT2ForSequenceClassification"):
        load_hf(tmp_path)


def test_extra_tensors_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    hf_gpt2(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["score.weight"] = torch.zeros(2, 15)
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="score.weight"):
        load_hf(tmp_path)


def test_export_refuses_what_gpt2_cannot_express(tmp_path):
    cfg = TransformerConfig(n_layers=1, d_model=11, n_heads=3, d_head=6, d_vocab=13, n_ctx=7, positional="rotary", mask="bidirectional")
    with pytest.raises(UnsupportedExportError) as error:
        export_hf(Transformer(cfg), tmp_path / "x", architecture="gpt2")
    for field in ("positional='rotary'", "mask='bidirectional'", "n_heads * d_head"):
        assert field in str(error.value)
    assert not (tmp_path / "x").exists()
    model = Transformer(cfg.replace(positional="learned", mask="causal", d_head=None, d_model=12))
    with torch.no_grad():
        model.unembed.b_U[0] = 1.0
    with pytest.raises(UnsupportedExportError, match="b_U"):
        export_hf(model, tmp_path / "y")


def test_public_api():
    assert {"load_hf", "export_hf", "HFTokenizer"} <= set(circuits.__all__)
