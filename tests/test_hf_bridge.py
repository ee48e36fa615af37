"""Round trip: our random model -> export_hf -> TransformerLens's TransformerBridge: same logits and activations."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from hf_helpers import ATOL, max_error_on

from circuits import HFTokenizer, Transformer, TransformerConfig, export_hf

bridge_module = pytest.importorskip("transformer_lens.model_bridge", reason="needs transformer-lens >= 4 (TransformerBridge)")

HOOKS = ("hook_resid_pre", "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_post")

CONFIGS = {
    "gpt2": dict(n_layers=2, d_model=15, n_heads=3, d_vocab=29, n_ctx=11, d_mlp=17, act_fn="gelu_new", seed=7),
    "llama": dict(
        n_layers=2, d_model=18, n_heads=6, n_kv_heads=2, d_head=10, d_vocab=29, n_ctx=11, d_mlp=17, act_fn="swiglu",
        normalization="rmsnorm", positional="rotary", use_bias=False, seed=8,
    ),
}


def word_tokenizer(d_vocab: int) -> HFTokenizer:
    """A word-level tokenizer over ``<bos> w1 ... w{d_vocab-1}``, so the exported folder is self-contained."""
    vocab = {"<bos>": 0, **{f"w{i}": i for i in range(1, d_vocab)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<bos>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return HFTokenizer(tok, {"bos_token": "<bos>"})


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_bridge_matches_logits_and_hooks(tmp_path, kind):
    cfg = TransformerConfig(**CONFIGS[kind])
    ours = Transformer(cfg).eval()
    with torch.no_grad():  # O(1) activations, so 1e-5 is a real test
        for name, param in ours.named_parameters():
            if name.rsplit(".", 1)[-1].startswith("W_"):
                param.mul_(0.3 / cfg.init_range_)
    tokenizer = word_tokenizer(cfg.d_vocab)
    folder = export_hf(ours, tmp_path / kind, tokenizer=tokenizer)
    bridge = bridge_module.TransformerBridge.boot_transformers(str(folder), device="cpu")
    bridge.eval()

    tokens = torch.randint(0, cfg.d_vocab, (2, cfg.n_ctx), generator=torch.Generator().manual_seed(0))
    names = [f"blocks.{l}.{hook}" for l in range(cfg.n_layers) for hook in HOOKS]
    with torch.no_grad():
        ours_logits, ours_cache = ours.run_with_cache(tokens, names_filter=names)
        bridge_logits, bridge_cache = bridge.run_with_cache(tokens, names_filter=lambda name: name in names)
    assert ours_logits.abs().max() > 0.5
    assert max_error_on(ours_logits, bridge_logits) < ATOL
    for name in names:
        assert ours_cache[name].shape == bridge_cache[name].shape, name
        assert max_error_on(ours_cache[name], bridge_cache[name]) < ATOL, name
    assert bridge.to_tokens("w3 w5", prepend_bos=True).tolist() == [[0, 3, 5]]
