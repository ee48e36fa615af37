"""Patch input and the classification head of ``circuits.Transformer`` (issue 16).

The patch embedding is checked against a hand-written ``F.unfold`` + matmul, the whole ViT
forward against a naive reference written here, and the hook machinery (``run_with_cache``,
ablation, attribution) on a ViT.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from circuits import Transformer, TransformerConfig
from circuits.analysis import vision
from circuits.analysis.activations.interventions import Ablation
from circuits.analysis.weights.qkov import direct_path, full_ov_circuit, full_qk_circuit, ov_circuit
from circuits.analysis.weights.trigrams import skip_trigrams
from circuits.config import vit_config
from circuits.model.classifier import with_classifier_head
from tests.conftest import tiny_config


def tiny_vit(**overrides) -> Transformer:
    base = dict(image_size=6, patch_size=2, n_channels=3, n_classes=5, n_layers=2, d_model=12, n_heads=3, d_mlp=10, seed=1)
    base.update(overrides)
    model = Transformer(vit_config(**base)).eval()
    with torch.no_grad():  # biases and the class token away from their zero/init values, so the test sees them
        for name, param in model.named_parameters():
            if not name.endswith(".w"):
                param.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))) * 0.2)
    return model


def images(n: int = 4, channels: int = 3, size: int = 6) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(0))


# ---- patch embedding --------------------------------------------------------------------------
def test_patch_embedding_equals_unfold_matmul():
    model = tiny_vit()
    x = images()
    cols = F.unfold(x, kernel_size=2, stride=2)  # [batch, c * p * p, patches], channel-major as a conv kernel
    expected = cols.transpose(1, 2) @ model.embed.W_E + model.embed.b_E
    _, cache = model.run_with_cache(x, names_filter="hook_embed")
    torch.testing.assert_close(cache["hook_embed"][:, 1:], expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(cache["hook_embed"][:, 0], model.embed.W_cls.expand(4, -1), rtol=0, atol=0)


def test_patch_embedding_equals_convolution():
    model = tiny_vit(class_token=False)
    x = images()
    weight = model.embed.W_E.T.reshape(12, 3, 2, 2)
    conv = F.conv2d(x, weight, model.embed.b_E, stride=2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(model.embed(x), conv, rtol=0, atol=1e-6)


# ---- naive reference --------------------------------------------------------------------------
def naive_vit(model: Transformer, x: torch.Tensor) -> torch.Tensor:
    cfg, p = model.config, dict(model.named_parameters())
    batch, size, ps = x.shape[0], cfg.image_size, cfg.patch_size
    out = torch.zeros(batch, cfg.n_classes)
    for b in range(batch):
        rows = []
        if cfg.class_token:
            rows.append(p["embed.W_cls"])
        for i in range(size // ps):
            for j in range(size // ps):
                patch = x[b, :, i * ps : (i + 1) * ps, j * ps : (j + 1) * ps].reshape(-1)
                rows.append(patch @ p["embed.W_E"] + p["embed.b_E"])
        h = torch.stack(rows) + p["pos_embed.W_pos"]
        for l in range(cfg.n_layers):
            q = f"blocks.{l}."
            a = _ln(h, p[q + "ln1.w"], p[q + "ln1.b"], cfg.norm_eps)
            attn = torch.zeros_like(h)
            for head in range(cfg.n_heads):
                Q = a @ p[q + "attn.W_Q"][head] + p[q + "attn.b_Q"][head]
                K = a @ p[q + "attn.W_K"][head] + p[q + "attn.b_K"][head]
                V = a @ p[q + "attn.W_V"][head] + p[q + "attn.b_V"][head]
                pattern = torch.softmax(Q @ K.T / math.sqrt(cfg.d_head_), dim=-1)  # every query sees every key
                attn = attn + pattern @ V @ p[q + "attn.W_O"][head]
            h = h + attn + p[q + "attn.b_O"]
            m = _ln(h, p[q + "ln2.w"], p[q + "ln2.b"], cfg.norm_eps) @ p[q + "mlp.W_in"] + p[q + "mlp.b_in"]
            h = h + 0.5 * m * (1 + torch.erf(m / math.sqrt(2))) @ p[q + "mlp.W_out"] + p[q + "mlp.b_out"]
        h = _ln(h, p["ln_final.w"], p["ln_final.b"], cfg.norm_eps)
        pooled = h[0] if cfg.pool == "cls" else h[int(cfg.class_token) :].mean(0)
        out[b] = pooled @ p["unembed.W_U"] + p["unembed.b_U"]
    return out


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps) * w + b


@pytest.mark.parametrize("class_token,pool", [(True, "cls"), (True, "mean"), (False, "mean")])
def test_vit_forward_equals_naive_reference(class_token, pool):
    model = tiny_vit(class_token=class_token, pool=pool)
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(model(x), naive_vit(model, x), rtol=1e-5, atol=1e-5)


def test_classifier_loss_needs_labels_and_matches_cross_entropy():
    model = tiny_vit()
    x, y = images(), torch.tensor([0, 1, 2, 4])
    with torch.no_grad():
        assert torch.allclose(model(x, return_type="loss", labels=y), F.cross_entropy(model(x), y))
        assert model(x, return_type="per_token_loss", labels=y).shape == (4,)
    with pytest.raises(ValueError, match="needs labels"):
        model(x, return_type="loss")
    with pytest.raises(ValueError, match=r"class ids in \[0, 5\)"):
        model(x, return_type="loss", labels=torch.tensor([0, 1, 2, 5]))


# ---- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.rand(2, 6, 6), "add the channel axis|shape"),
        (torch.rand(2, 1, 6, 6), "1 channels, the model expects n_channels=3"),
        (torch.rand(2, 3, 7, 7), "not divisible by patch_size=2"),
        (torch.rand(2, 3, 8, 8), "built for 6x6"),
        (torch.randint(0, 2, (2, 3, 6, 6)), "floating point"),
        ([[0.0]], "float tensor"),
    ],
)
def test_bad_images_are_refused(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tiny_vit()(bad)


def test_grey_images_hint_channel_axis():
    with pytest.raises(ValueError, match=r"images\[:, None\]"):
        tiny_vit(n_channels=1)(torch.rand(2, 6, 6))


@pytest.mark.parametrize(
    "changes,match",
    [
        (dict(patch_size=4), "not divisible by patch_size"),
        (dict(n_ctx=9), "n_ctx"),
        (dict(mask="causal"), "bidirectional"),
        (dict(pool="cls", class_token=False, n_ctx=9), "class_token=True"),
        (dict(pool="max"), "pool"),
    ],
)
def test_bad_vit_configs_are_refused(changes, match):
    cfg = vit_config(image_size=6, patch_size=2, n_classes=5, n_layers=1, d_model=8, n_heads=2)
    fields = {**cfg.to_dict(), **changes}
    with pytest.raises(ValueError, match=match):
        TransformerConfig(**fields)


def test_vit_config_refuses_indivisible_image():
    with pytest.raises(ValueError, match="not divisible by patch_size=3"):
        vit_config(image_size=8, patch_size=3, n_classes=10, n_layers=1, d_model=8, n_heads=2)


def test_image_fields_on_token_models_are_refused():
    with pytest.raises(ValueError, match="only apply to input='patches'"):
        tiny_config(image_size=8)


def test_token_config_serialises_as_before():
    data = tiny_config().to_dict()
    assert not {"input", "image_size", "patch_size", "n_channels", "class_token", "n_classes", "pool"} & set(data)
    cfg = vit_config(image_size=6, patch_size=2, n_classes=5, n_layers=1, d_model=8, n_heads=2)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg


def test_vocabulary_circuits_refuse_images():
    model = tiny_vit()
    for fn in (lambda: full_ov_circuit(model, 0, 0), lambda: full_qk_circuit(model, 0, 0), lambda: direct_path(model)):
        with pytest.raises(ValueError, match="reads image patches, not tokens"):
            fn()
    with pytest.raises(ValueError, match="skip_trigrams: this model reads image patches"):
        skip_trigrams(model, None, 0, 0)
    assert ov_circuit(model, 0, 0).AB.shape == (12, 12)  # d_model-space circuits still work


# ---- hooks, ablation, attribution on a ViT ----------------------------------------------------
def test_run_with_cache_on_vit():
    model = tiny_vit()
    x = images()
    logits, cache = model.run_with_cache(x)
    torch.testing.assert_close(logits, model(x), rtol=0, atol=0)
    assert cache["blocks.1.attn.hook_pattern"].shape == (4, 3, 10, 10)
    assert cache["hook_pooled"].shape == (4, 12)
    torch.testing.assert_close(cache["blocks.0.attn.hook_pattern"].sum(-1), torch.ones(4, 3, 10))
    torch.testing.assert_close(cache["hook_pooled"], cache["ln_final.hook_normalized"][:, 0], rtol=0, atol=0)


def test_zero_ablation_on_vit_changes_logits_and_matches_manual_hook():
    model = tiny_vit()
    x = images()
    ablated = model.run_with_hooks(x, fwd_hooks=Ablation(["L1H2"]).hooks(model, x))

    def zero(z, hook):
        z = z.clone()
        z[:, :, 2] = 0
        return z

    manual = model.run_with_hooks(x, fwd_hooks=[("blocks.1.attn.hook_z", zero)])
    torch.testing.assert_close(ablated, manual, rtol=0, atol=0)
    assert not torch.allclose(ablated, model(x))


@pytest.mark.parametrize("class_token,pool", [(True, "cls"), (False, "mean")])
def test_class_logit_attribution_sums_to_logit(class_token, pool):
    model = tiny_vit(class_token=class_token, pool=pool)
    x, y = images(), torch.tensor([0, 1, 2, 4])
    attribution = vision.class_logit_attribution(model, x, y)
    with torch.no_grad():
        expected = model(x)[torch.arange(4), y]
    torch.testing.assert_close(attribution.total(), expected, rtol=0, atol=1e-5)
    assert attribution.max_error < 1e-5
    assert attribution.head_sources.shape == (4, 2, 3, model.config.n_ctx)


def test_positional_score_is_one_for_a_content_blind_head():
    model = tiny_vit()
    with torch.no_grad():  # layer-0 head 0: zero query and key weights -> uniform attention for every image
        model.blocks[0].attn.W_Q[0].zero_()
        model.blocks[0].attn.b_Q[0].zero_()
    scores = vision.positional_scores(model, images(6))
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert vision.attention_entropy(model, images(6))[0, 0] == pytest.approx(math.log(10), abs=1e-5)  # uniform over 10 positions
    assert scores.shape == (2, 3) and bool((scores <= 1 + 1e-6).all())


def test_positional_score_on_hand_made_patterns():
    fixed = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    same = fixed.expand(5, 2, 3)  # every image the same pattern: position explains everything
    assert vision.positional_score_of(same).item() == pytest.approx(1.0)
    one_hot = torch.eye(3)[torch.tensor([0, 1, 2])][:, None].expand(3, 2, 3)  # each image attends elsewhere; the mean is uniform
    assert vision.positional_score_of(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    half = torch.stack([torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.5, 0.5, 0.0]])])  # key 2 never read: partly positional
    assert 0.0 < vision.positional_score_of(half).item() < 1.0


def test_patch_patching_at_layer0_equals_pixel_swap():
    model = tiny_vit(n_layers=1)
    x = images(4)
    source, target = x[:2], x[2:]
    sc, tc = torch.tensor([0, 1]), torch.tensor([2, 3])
    change = vision.patch_patching(model, source, target, sc, tc)
    swapped = target.clone()
    swapped[:, :, 0:2, 2:4] = source[:, :, 0:2, 2:4]  # patch 1 (row 0, column 1)
    with torch.no_grad():
        before, after = model(target), model(swapped)
    gap = lambda logits: logits[torch.arange(2), sc] - logits[torch.arange(2), tc]  # noqa: E731
    assert change[0, 1].item() == pytest.approx((gap(after) - gap(before)).mean().item(), abs=1e-5)


def test_embedding_components_are_pixel_gradients():
    model = tiny_vit()
    x = images(8)
    pictures, explained = vision.embedding_pixel_components(model, x, 2)
    assert pictures.shape == (2, 3, 6, 6) and float(explained.sum()) <= 1.0
    assert explained[0] >= explained[1]


# ---- token classifier (the head issue 17 fine-tunes) --------------------------------------------
def test_token_classifier_mean_pools_real_tokens():
    cfg = tiny_config(mask="bidirectional", n_classes=3, pool="mean", norm_position="post")
    model = Transformer(cfg).eval()
    tokens = torch.randint(0, 13, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 4:] = 0
    with torch.no_grad():
        padded = model(tokens, attention_mask=mask)
        alone = model(tokens[1:, :4])
    assert padded.shape == (2, 3)
    torch.testing.assert_close(padded[1], alone[0], rtol=1e-5, atol=1e-5)


def test_with_classifier_head_keeps_the_body():
    lm = Transformer(tiny_config(mask="bidirectional", tied_embeddings=True)).eval()
    clf = with_classifier_head(lm, n_classes=4, pool="cls")
    assert clf.config.n_classes == 4 and not clf.config.tied_embeddings
    tokens = torch.randint(0, 13, (2, 7))
    _, lm_cache = lm.run_with_cache(tokens, names_filter="blocks.1.hook_resid_post")
    _, clf_cache = clf.run_with_cache(tokens, names_filter="blocks.1.hook_resid_post")
    torch.testing.assert_close(lm_cache["blocks.1.hook_resid_post"], clf_cache["blocks.1.hook_resid_post"], rtol=0, atol=0)
    assert clf(tokens).shape == (2, 4)


def test_labels_on_a_language_model_are_refused():
    with pytest.raises(ValueError, match="labels= is for a classification head"):
        Transformer(tiny_config())(torch.zeros(1, 3, dtype=torch.long), labels=torch.zeros(1, dtype=torch.long))
