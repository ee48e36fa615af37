"""What the model reads and what it outputs, resolved once when the model is built (as masks and positions are).

Input (``TransformerConfig.input``; the model keeps the object as ``model.input``):

====================== ==========================================================================
:class:`TokenInput`    token ids ``[batch, pos]`` -> ``W_E[token]`` (``embed.W_E [d_vocab, d_model]``)
:class:`PatchInput`    images ``[batch, n_channels, image_size, image_size]`` -> patches
                       ``[batch, patch, n_channels * patch_size**2]`` (channel, row, column order
                       inside a patch; patches row by row) -> ``patch @ W_E + b_E``
                       (``embed.W_E [n_channels * patch_size**2, d_model]``), with the learned
                       class token ``embed.W_cls [d_model]`` first when ``class_token``
====================== ==========================================================================

``hook_embed`` is the embedded input (for images: class token and embedded patches,
``[batch, pos, d_model]``). ``vocabulary_missing`` says why token-vocabulary circuits (full OV/QK
circuits, skip-trigrams, the direct path) do not exist for an input (``None`` for tokens).

Head (``TransformerConfig.n_classes`` / ``pool``; ``model.head``): :class:`SequenceHead` returns the
unembedding of every position ``[batch, pos, d_vocab_out]`` (language models); :class:`ClassifierHead`
pools the normalized final residual (``"cls"``: position 0; ``"mean"``: the mean over real
positions, class token excluded) into ``hook_pooled [batch, d_model]`` and unembeds it to
``[batch, n_classes]``. Pooling is linear, so direct logit attribution stays exact.
"""

from __future__ import annotations

from typing import Any

import einops
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from circuits.config import TransformerConfig
from circuits.model._hooks import affine
from circuits.model.embed import Embed


class PatchEmbed(nn.Module):
    """Linear patch embedding ``patch @ W_E + b_E`` (Hugging Face ViT's stride-``patch_size`` convolution), then the class token."""

    W_E: Float[Tensor, "d_patch d_model"]

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.patch_size = cfg.patch_size
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.b_E = nn.Parameter(torch.zeros(cfg.d_model))
        self.W_cls = nn.Parameter(torch.empty(cfg.d_model)) if cfg.class_token else None

    def forward(self, images: Float[Tensor, "batch channel height width"]) -> Float[Tensor, "batch pos d_model"]:
        embedded = affine(patches_of(images, self.patch_size), self.W_E, self.b_E)  # one fused addmm
        if self.W_cls is None:
            return embedded
        cls = self.W_cls.expand(embedded.shape[0], 1, -1)
        return torch.cat([cls, embedded], dim=1)


def patches_of(images: Float[Tensor, "batch channel height width"], patch_size: int) -> Float[Tensor, "batch patch d_patch"]:
    """Cut images into ``patch_size`` squares, row by row; each flattened in (channel, row, column) order."""
    return einops.rearrange(images, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=patch_size, pw=patch_size)


class InputKind:
    """What ``forward`` takes as its first argument."""

    name: str = "tokens"
    vocabulary_missing: str | None = None
    takes_attention_mask: bool = True

    def embed(self, cfg: TransformerConfig) -> nn.Module:
        raise NotImplementedError

    def check(self, model: Any, x: Any) -> Tensor:
        """Validate an input batch, raising ``TypeError``/``ValueError`` that name the fix."""
        raise NotImplementedError

    def position_ids(self, x: Tensor, n_pos: int) -> Int[Tensor, "batch pos"]:
        """A ``[batch, pos]`` integer tensor the position embedding reads its shape from."""
        return x


class TokenInput(InputKind):
    name = "tokens"

    def embed(self, cfg):
        return Embed(cfg.d_vocab, cfg.d_model)

    def check(self, model, x):
        return model.check_tokens(x)


class PatchInput(InputKind):
    name = "patches"
    takes_attention_mask = False
    vocabulary_missing = (
        "this model reads image patches, not tokens: there is no token vocabulary, so circuits over "
        "input/output tokens (full OV/QK circuits, skip-trigrams, the direct path) are undefined; "
        "use the d_model-space circuits (circuits.ov_circuit / qk_circuit) or circuits.analysis.vision"
    )

    def embed(self, cfg):
        return PatchEmbed(cfg)

    def check(self, model, x):
        return check_images(x, model.config)

    def position_ids(self, x, n_pos):
        return torch.zeros((), dtype=torch.long, device=x.device).expand(x.shape[0], n_pos)


def check_images(images: Any, cfg: TransformerConfig) -> Float[Tensor, "batch channel height width"]:
    """Validate an image batch against a patch-input config: a float tensor ``[batch, n_channels, image_size, image_size]``."""
    want = f"[batch, {cfg.n_channels}, {cfg.image_size}, {cfg.image_size}]"
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a float tensor {want}, got {type(images).__name__}")
    if not images.dtype.is_floating_point:
        raise ValueError(f"images must be floating point, got dtype {images.dtype}; convert with images.float()")
    if images.ndim == 3 and cfg.n_channels == 1:
        raise ValueError(f"images must have shape {want}, got {tuple(images.shape)}; add the channel axis: images[:, None]")
    if images.ndim != 4:
        raise ValueError(f"images must have shape {want}, got shape {tuple(images.shape)}")
    if images.shape[1] != cfg.n_channels:
        raise ValueError(f"images have {images.shape[1]} channels, the model expects n_channels={cfg.n_channels} (shape {want})")
    height, width = images.shape[2:]
    if height % cfg.patch_size or width % cfg.patch_size:
        raise ValueError(f"image size {height}x{width} is not divisible by patch_size={cfg.patch_size}")
    if (height, width) != (cfg.image_size, cfg.image_size):
        raise ValueError(
            f"images are {height}x{width}, the model was built for {cfg.image_size}x{cfg.image_size} "
            "(one learned position per patch); resize the images"
        )
    return images


def input_kind(cfg: TransformerConfig) -> InputKind:
    """The input object for ``cfg.input`` (the model resolves it once, as ``model.input``)."""
    kinds = {"tokens": TokenInput, "patches": PatchInput}
    if cfg.input not in kinds:
        raise ValueError(f"input={cfg.input!r} is not one of {list(kinds)}")
    return kinds[cfg.input]()


# ---- heads -----------------------------------------------------------------------------------
class SequenceHead:
    """Logits at every position (language models)."""

    classifies = False

    def pool(self, normalized: Tensor, attention_mask: Tensor | None) -> Tensor:
        return normalized


class ClassifierHead:
    """Pool the normalized final residual to one vector per input; the unembedding maps it to class logits."""

    classifies = True

    def __init__(self, pool: str, skip_first: bool):
        self.kind = pool
        self.skip_first = skip_first  # mean pooling leaves out the class token

    def pool(
        self, normalized: Float[Tensor, "batch pos d_model"], attention_mask: Int[Tensor, "batch pos"] | None
    ) -> Float[Tensor, "batch d_model"]:
        if self.kind == "cls":
            return normalized[:, 0]
        if self.skip_first:
            normalized = normalized[:, 1:]
            attention_mask = None if attention_mask is None else attention_mask[:, 1:]
        return masked_mean(normalized, attention_mask)

    def output(self, logits: Float[Tensor, "batch n_classes"], return_type: str, labels: Tensor | None) -> Tensor:
        """``"logits"``; ``"loss"`` (mean cross-entropy against ``labels [batch]``) or ``"per_token_loss"`` (per input)."""
        if return_type == "logits":
            return logits
        if labels is None:
            raise ValueError(f"return_type={return_type!r} of a classifier needs labels=<[batch] class ids>")
        if not isinstance(labels, Tensor) or labels.shape != logits.shape[:1] or labels.dtype.is_floating_point:
            raise ValueError(f"labels must be an integer tensor of shape [{logits.shape[0]}], got {labels!r}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= logits.shape[-1]):
            raise ValueError(f"labels must be class ids in [0, {logits.shape[-1]}) (n_classes={logits.shape[-1]})")
        per_input = torch.nn.functional.cross_entropy(logits.float(), labels.to(logits.device), reduction="none")
        return per_input if return_type == "per_token_loss" else per_input.mean()

    def weights(self, n_pos: int, attention_mask: Tensor | None = None, batch: int = 1) -> Float[Tensor, "batch pos"]:
        """How much each position's normalized residual counts in the pooled vector (rows sum to 1)."""
        weights = torch.zeros(batch, n_pos)
        if self.kind == "cls":
            weights[:, 0] = 1.0
            return weights
        start = int(self.skip_first)
        real = torch.ones(batch, n_pos - start) if attention_mask is None else attention_mask[:, start:].float().cpu()
        weights[:, start:] = real / real.sum(dim=1, keepdim=True).clamp_min(1.0)
        return weights


def masked_mean(x: Float[Tensor, "batch pos d_model"], attention_mask: Tensor | None) -> Float[Tensor, "batch d_model"]:
    """Mean over positions; with ``attention_mask`` (1 = real, 0 = padding) over the real positions only."""
    if attention_mask is None:
        return x.mean(dim=1)
    weights = attention_mask.to(x.dtype)[..., None]
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def make_head(cfg: TransformerConfig) -> SequenceHead | ClassifierHead:
    if cfg.n_classes is None:
        return SequenceHead()
    return ClassifierHead(cfg.pool, skip_first=cfg.class_token)
