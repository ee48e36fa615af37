"""Circuits over image patches: what a vision transformer's heads read, and what each patch adds to a class logit.

For a model with ``input="patches"`` and a classification head (``circuits.config.vit_config``).
Positions: 0 is the class token when the model has one, then the patches row by row
(``model.config.n_patches`` of them, a ``grid x grid`` square). The *readout* is what the head
pools: the class token's position (``pool="cls"``) or the mean over patches (``pool="mean"``);
``model.head.weights`` gives each position's weight.

- :func:`readout_attention`: each head's attention from the readout over the key positions.
- :func:`positional_scores`: how much of each head's attention position alone predicts, as the
  share of the pattern's structure (its departure from uniform attention) that the image-averaged
  pattern explains: ``1 - sum ||A_image - mean_images A||^2 / sum ||A_image - uniform||^2`` over
  images and queries. 1: every image gets the same pattern (set by position alone); 0: the average
  pattern is no better than uniform attention (the pattern follows the content).
- :func:`class_logit_attribution`: the direct path of the class logit, split into the embedding,
  the positions, every head *and source patch* (``pattern[q, k] * v_k W_O``, sent through the
  final norm with its scale frozen), every head's ``b_O``, every MLP and the constant biases.
  The terms sum to the logit (checked, ``max_error``).
- :func:`patch_patching`: copy one patch's residual stream (at ``blocks.{l}.hook_resid_pre``)
  from a source image into a target image and measure the change of
  ``logit[source class] - logit[target class]``; at layer 0 this is swapping the pixels.
- :func:`embedding_pixel_components`: principal components of the embedded patches over a set of
  images, each drawn as the image whose embedding moves along it (the gradient of the component's
  score with respect to the pixels: the patch embedding is linear).
"""

from __future__ import annotations

from dataclasses import dataclass

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.activations.attribution import final_norm_bias, final_norm_linear
from circuits.analysis.common import check_sum
from circuits.model.inputs import check_images

__all__ = [
    "check_vision_model", "patch_grid", "readout_attention", "positional_scores", "positional_score_of", "attention_entropy", "average_patch_attention",
    "ClassLogitAttribution", "class_logit_attribution", "patch_patching", "embedding_pixel_components",
]


def check_vision_model(model) -> None:
    """``ValueError`` unless ``model`` reads image patches through a classification head."""
    cfg = model.config
    if cfg.input != "patches" or cfg.n_classes is None:
        raise ValueError(
            f"this analysis needs a vision model (input='patches' with a classification head); got input={cfg.input!r}, "
            f"n_classes={cfg.n_classes}. Build one with circuits.config.vit_config"
        )


def patch_grid(values: Float[Tensor, "... patch"], model) -> Float[Tensor, "... grid_h grid_w"]:
    """Per-patch values laid out as the image's patch grid (row by row)."""
    side = model.config.image_size // model.config.patch_size
    return einops.rearrange(values, "... (h w) -> ... h w", h=side, w=side)


def _first_patch(model) -> int:
    return int(model.config.class_token)


def _patterns(model, images: Tensor) -> tuple[Tensor, object]:
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.config.n_layers)]
    with torch.no_grad():
        logits, cache = model.run_with_cache(images, names_filter=names)
    return torch.stack([cache[name] for name in names], dim=1), logits  # [batch, layer, head, query_pos, key_pos]


def readout_attention(model, images: Float[Tensor, "batch channel height width"]) -> Float[Tensor, "batch layer head key_pos"]:
    """Attention of the readout (the class token, or the pooled positions' weighted mean) over the key positions."""
    check_vision_model(model)
    images = check_images(images, model.config)
    patterns, _ = _patterns(model, images)
    weights = model.head.weights(patterns.shape[-1]).to(patterns)[0]  # [query_pos]
    return einops.einsum(patterns, weights, "batch layer head query_pos key_pos, query_pos -> batch layer head key_pos")


def positional_scores(model, images: Float[Tensor, "batch channel height width"]) -> Float[Tensor, "layer head"]:
    """Share of each head's attention structure that position alone predicts (see the module docstring)."""
    check_vision_model(model)
    images = check_images(images, model.config)
    if images.shape[0] < 2:
        raise ValueError("positional_scores needs at least 2 images (it compares each image's pattern with the average)")
    patterns, _ = _patterns(model, images)
    return positional_score_of(patterns)


def positional_score_of(patterns: Float[Tensor, "batch *head query_pos key_pos"]) -> Float[Tensor, "*head"]:
    """``1 - sum ||A_b - mean_b A||^2 / sum ||A_b - uniform||^2`` over images ``b`` and queries (1 when every row is uniform)."""
    mean = patterns.mean(dim=0, keepdim=True)
    uniform = torch.full_like(patterns, 1.0 / patterns.shape[-1])
    unexplained = ((patterns - mean) ** 2).sum(dim=(-1, -2)).sum(dim=0)
    structure = ((patterns - uniform) ** 2).sum(dim=(-1, -2)).sum(dim=0)
    return 1.0 - unexplained / structure.clamp_min(1e-20)


def attention_entropy(model, images: Float[Tensor, "batch channel height width"]) -> Float[Tensor, "layer head"]:
    """Mean entropy (nats) of each head's attention rows; ``log(n_ctx)`` is uniform attention (a diffuse head also scores
    high on :func:`positional_scores`, so read the two together)."""
    check_vision_model(model)
    patterns, _ = _patterns(model, check_images(images, model.config))
    return -(patterns * patterns.clamp_min(1e-30).log()).sum(-1).mean(dim=(0, 3))


def average_patch_attention(model, images: Float[Tensor, "batch channel height width"]) -> Float[Tensor, "layer head grid_h grid_w"]:
    """The readout's attention to each patch, averaged over the images, on the patch grid (class-token share left out)."""
    attention = readout_attention(model, images)[..., _first_patch(model) :].mean(dim=0)
    return patch_grid(attention, model)


@dataclass(frozen=True)
class ClassLogitAttribution:
    """Direct contributions to ``logits[b]`` (the logit of ``classes[b]``); every field's terms sum to ``logits``.

    ``head_sources[b, l, h, k]`` is head ``L{l}H{h}``'s contribution through key position ``k``
    (0 = the class token when there is one); ``heads`` sums it over ``k``. ``bias`` holds the
    final norm's ``b`` and ``b_U``; ``head_bias`` each layer's ``b_O``; ``mlps`` each MLP's
    output including ``b_out``.
    """

    embed: Float[Tensor, "batch"]
    pos_embed: Float[Tensor, "batch"]
    head_sources: Float[Tensor, "batch layer head key_pos"]
    head_bias: Float[Tensor, "batch layer"]
    mlps: Float[Tensor, "batch layer"]
    bias: Float[Tensor, "batch"]
    logits: Float[Tensor, "batch"]
    max_error: float

    @property
    def heads(self) -> Float[Tensor, "batch layer head"]:
        return self.head_sources.sum(dim=-1)

    def total(self) -> Float[Tensor, "batch"]:
        return self.embed + self.pos_embed + self.heads.sum(dim=(1, 2)) + self.head_bias.sum(1) + self.mlps.sum(1) + self.bias


def class_logit_attribution(
    model, images: Float[Tensor, "batch channel height width"], classes: Int[Tensor, "batch"]
) -> ClassLogitAttribution:
    """Split each image's logit of ``classes[b]`` into direct contributions (see :class:`ClassLogitAttribution`)."""
    check_vision_model(model)
    images = check_images(images, model.config)
    classes = torch.as_tensor(classes, device=images.device)
    if classes.shape != images.shape[:1] or classes.dtype.is_floating_point:
        raise ValueError(f"classes must be an integer tensor of shape [{images.shape[0]}], got {tuple(classes.shape)}")
    with torch.no_grad():
        logits, cache = model.run_with_cache(images)
        readout = model.head.weights(cache["hook_embed"].shape[1], batch=images.shape[0]).to(logits)  # [batch, pos]
        scale = cache["ln_final.hook_scale"] if "ln_final.hook_scale" in cache else None
        direction = model.W_U[:, classes].T  # [batch, d_model]

        def read(x: Tensor) -> Tensor:  # x [batch, pos, ..., d_model] -> [batch, ...]: pooled, normalized, unembedded
            s = None if scale is None else scale.reshape(*scale.shape[:2], *([1] * (x.ndim - 2)))
            normed = final_norm_linear(model, x, s)
            pooled = einops.einsum(normed, readout, "batch pos ... d_model, batch pos -> batch ... d_model")
            return einops.einsum(pooled, direction, "batch ... d_model, batch d_model -> batch ...")

        pos_embed = read(cache["hook_pos_embed"]) if model.positional.in_residual else torch.zeros_like(logits[:, 0])
        sources, head_bias, mlps = [], [], []
        for l, block in enumerate(model.blocks):
            v_out = einops.einsum(
                block.attn.expand_kv(cache[f"blocks.{l}.attn.hook_v"]), block.attn.W_O,
                "batch key_pos head d_head, head d_head d_model -> batch key_pos head d_model",
            )
            per_source = einops.einsum(
                cache[f"blocks.{l}.attn.hook_pattern"], v_out,
                "batch head query_pos key_pos, batch key_pos head d_model -> batch query_pos head key_pos d_model",
            )
            sources.append(read(per_source))
            b_O = torch.zeros(model.config.d_model) if block.attn.b_O is None else block.attn.b_O
            head_bias.append(read(b_O.expand_as(cache["hook_embed"])))
            mlps.append(read(cache[f"blocks.{l}.hook_mlp_out"]) if hasattr(block, "mlp") else torch.zeros_like(logits[:, 0]))
        b = final_norm_bias(model)
        bias = model.b_U[classes] if b is None else model.b_U[classes] + direction @ b
        target = logits.gather(1, classes[:, None])[:, 0]
        result = dict(
            embed=read(cache["hook_embed"]), pos_embed=pos_embed, head_sources=torch.stack(sources, dim=1),
            head_bias=torch.stack(head_bias, dim=1), mlps=torch.stack(mlps, dim=1), bias=bias, logits=target,
        )
    partial = ClassLogitAttribution(**result, max_error=0.0)
    error = check_sum(partial.total(), target, "class-logit attribution terms vs the model's logit")
    return ClassLogitAttribution(**result, max_error=error)


def patch_patching(
    model,
    source: Float[Tensor, "batch channel height width"],
    target: Float[Tensor, "batch channel height width"],
    source_classes: Int[Tensor, "batch"],
    target_classes: Int[Tensor, "batch"],
) -> Float[Tensor, "layer patch"]:
    """Mean change of ``logit[source class] - logit[target class]`` of the target image when one patch's
    residual stream at ``blocks.{l}.hook_resid_pre`` is copied from the paired source image."""
    check_vision_model(model)
    cfg = model.config
    source, target = check_images(source, cfg), check_images(target, cfg)
    if source.shape != target.shape:
        raise ValueError(f"source and target must be paired image batches of one shape, got {tuple(source.shape)} and {tuple(target.shape)}")
    rows = torch.arange(len(source))

    def gap(logits: Tensor) -> Tensor:
        return logits[rows, source_classes] - logits[rows, target_classes]

    names = [f"blocks.{l}.hook_resid_pre" for l in range(cfg.n_layers)]
    first = _first_patch(model)
    out = torch.zeros(cfg.n_layers, cfg.n_patches)
    with torch.no_grad():
        _, source_cache = model.run_with_cache(source, names_filter=names)
        clean = gap(model(target))
        for l, name in enumerate(names):
            for patch in range(cfg.n_patches):
                position = first + patch

                def swap(resid: Tensor, hook, position=position, name=name) -> Tensor:
                    resid = resid.clone()
                    resid[:, position] = source_cache[name][:, position]
                    return resid

                out[l, patch] = (gap(model.run_with_hooks(target, fwd_hooks=[(name, swap)])) - clean).mean()
    return out


def embedding_pixel_components(
    model, images: Float[Tensor, "batch channel height width"], k: int = 4
) -> tuple[Float[Tensor, "component channel height width"], Float[Tensor, "component"]]:
    """The top ``k`` principal components of the embedded patches (concatenated over the image) and their
    explained-variance fractions; each component drawn in pixel space (``W_E`` applied patch by patch)."""
    check_vision_model(model)
    cfg = model.config
    images = check_images(images, cfg)
    n_features = cfg.n_patches * cfg.d_model
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= min(len(images), n_features):
        raise ValueError(f"k must be an int in [1, {min(len(images), n_features)}] (images, patches * d_model), got {k!r}")
    with torch.no_grad():
        _, cache = model.run_with_cache(images, names_filter="hook_embed")
        embedded = cache["hook_embed"][:, _first_patch(model) :].flatten(1).double()  # [batch, patch * d_model]
        centered = embedded - embedded.mean(dim=0)
        _, singular, vh = torch.linalg.svd(centered, full_matrices=False)
        explained = singular**2 / (singular**2).sum()
        components = einops.rearrange(vh[:k].float(), "k (patch d_model) -> k patch d_model", d_model=cfg.d_model)
        pixels = einops.einsum(model.embed.W_E, components, "d_patch d_model, k patch d_model -> k patch d_patch")
    side, p = cfg.image_size // cfg.patch_size, cfg.patch_size
    pictures = einops.rearrange(pixels, "k (h w) (c ph pw) -> k c (h ph) (w pw)", h=side, w=side, c=cfg.n_channels, ph=p, pw=p)
    return pictures, explained[:k].float()
