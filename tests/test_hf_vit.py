"""Hugging Face ViT (``ViTForImageClassification``, ``ViTModel``): logits and every block's output equal transformers', in and out."""

from __future__ import annotations

import json

import pytest
import torch

from hf_helpers import ATOL, randomize_, transformers

from circuits import Transformer, load_hf
from circuits.config import vit_config
from circuits.hf import UnsupportedCheckpointError, UnsupportedExportError, export_hf

SIZES = dict(
    image_size=12, patch_size=4, num_channels=3, hidden_size=15, num_attention_heads=3, intermediate_size=17,
    num_hidden_layers=2, layer_norm_eps=1e-12,
)


def hf_vit(tmp_path, cls_name="ViTForImageClassification", seed=0, **overrides):
    config = transformers.ViTConfig(**{**SIZES, "num_labels": 7, **overrides})
    kwargs = {"add_pooling_layer": True} if cls_name == "ViTModel" else {}
    model = randomize_(getattr(transformers, cls_name)(config, **kwargs), seed).eval()
    model.save_pretrained(tmp_path)
    return model


def pixels(n=3, channels=3, size=12):
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(1))


def _compare(hf, ours, x, output_name):
    with torch.no_grad():
        out = hf(pixel_values=x, output_hidden_states=True)
        names = [f"blocks.{l}.hook_resid_post" for l in range(ours.config.n_layers)]
        logits, cache = ours.run_with_cache(x, names_filter=names + ["hook_embed", "hook_pos_embed"])
    assert (logits - getattr(out, output_name)).abs().max() < ATOL
    assert (cache["hook_embed"] + cache["hook_pos_embed"] - out.hidden_states[0]).abs().max() < ATOL
    for l, name in enumerate(names):
        assert (cache[name] - out.hidden_states[l + 1]).abs().max() < ATOL, name


@pytest.mark.parametrize("act", ["gelu", "gelu_pytorch_tanh"])
def test_image_classifier_matches_logits_and_blocks(tmp_path, act):
    hf = hf_vit(tmp_path, hidden_act=act)
    ours = load_hf(tmp_path)
    cfg = ours.config
    assert (cfg.input, cfg.class_token, cfg.pool, cfg.n_classes, cfg.mask) == ("patches", True, "cls", 7, "bidirectional")
    _compare(hf, ours, pixels(), "logits")


def test_vit_model_matches_last_hidden_state(tmp_path):
    hf = hf_vit(tmp_path, "ViTModel", seed=2, num_channels=1)
    ours = load_hf(tmp_path)  # the pooler is not loaded; the identity unembedding returns last_hidden_state
    assert ours.config.n_classes is None and ours.config.d_vocab_out == SIZES["hidden_size"]
    _compare(hf, ours, pixels(channels=1), "last_hidden_state")


def test_export_round_trip_classifier(tmp_path):
    hf = hf_vit(tmp_path / "in")
    ours = load_hf(tmp_path / "in")
    folder = export_hf(ours, tmp_path / "out")
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["ViTForImageClassification"]
    again = transformers.ViTForImageClassification.from_pretrained(folder).eval()
    x = pixels()
    with torch.no_grad():
        assert (again(pixel_values=x).logits - hf(pixel_values=x).logits).abs().max() == 0


def test_export_our_vit_and_reload(tmp_path):
    model = Transformer(vit_config(image_size=8, patch_size=2, n_channels=1, n_classes=10, n_layers=1, d_model=8, n_heads=2, seed=3)).eval()
    randomize_(model, 4)
    folder = export_hf(model, tmp_path / "vit", architecture="vit")
    hf = transformers.ViTForImageClassification.from_pretrained(folder).eval()
    x = pixels(channels=1, size=8)
    with torch.no_grad():
        assert (hf(pixel_values=x).logits - model(x)).abs().max() < ATOL
    assert (load_hf(folder)(x) - model(x)).abs().max() == 0


def test_export_refuses_what_vit_cannot_express(tmp_path):
    mean_pooled = Transformer(vit_config(image_size=8, patch_size=2, n_classes=3, n_layers=1, d_model=8, n_heads=2, pool="mean"))
    with pytest.raises(UnsupportedExportError, match="pool='mean'"):
        export_hf(mean_pooled, tmp_path / "a", architecture="vit")
    no_cls = Transformer(vit_config(image_size=8, patch_size=2, n_classes=3, n_layers=1, d_model=8, n_heads=2, class_token=False))
    with pytest.raises(UnsupportedExportError, match="class_token"):
        export_hf(no_cls, tmp_path / "b")
    with pytest.raises(UnsupportedExportError, match="input='patches'"):
        export_hf(mean_pooled, tmp_path / "c", architecture="gpt2")


@pytest.mark.parametrize(
    "key,value", [("qkv_bias", False), ("hidden_act", "quick_gelu"), ("image_size", [12, 8]), ("patch_size", [4, 2])]
)
def test_unsupported_vit_options(tmp_path, key, value):
    hf_vit(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(UnsupportedCheckpointError, match=key):
        load_hf(tmp_path)


def test_unknown_tensor_is_refused(tmp_path):
    """A masked-image-modelling checkpoint has a mask token the classifier path does not know: refused, not dropped."""
    hf_vit(tmp_path, "ViTModel")
    from safetensors.torch import load_file, save_file

    tensors = load_file(tmp_path / "model.safetensors")
    tensors["embeddings.mask_token"] = torch.zeros(1, 1, SIZES["hidden_size"])
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="mask_token"):
        load_hf(tmp_path)
