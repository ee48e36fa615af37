"""Transformer blocks: the residual stream in a few lines, one class per arrangement.

Pre-norm (GPT-2)::           Post-norm (BERT)::
    resid_mid  = resid_pre + attn_out            resid_mid  = ln1(resid_pre + attn_out)
    resid_post = resid_mid + mlp_out             resid_post = ln2(resid_mid + mlp_out)

Attention-only blocks drop the MLP (and ``resid_mid``).
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from circuits.config import TransformerConfig
from circuits.model.cache import CacheableHookPoint
from circuits.model.attention import Attention
from circuits.model.masks import AttentionContext
from circuits.model.mlp import make_mlp
from circuits.model.norm import make_norm

Resid = Float[Tensor, "batch pos d_model"]


class _BlockBase(nn.Module):
    #: TransformerLens's logit lens needs this marker on each block.
    hook_out_is_single_residual_stream = True

    def __init__(self, cfg: TransformerConfig, with_mlp: bool):
        super().__init__()
        self.ln1 = make_norm(cfg.normalization, cfg.d_model, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.hook_resid_pre = CacheableHookPoint()  # [batch, pos, d_model]
        self.hook_attn_out = CacheableHookPoint()  # [batch, pos, d_model]
        if with_mlp:
            self.ln2 = make_norm(cfg.normalization, cfg.d_model, cfg.norm_eps)
            self.mlp = make_mlp(cfg)
            self.hook_resid_mid = CacheableHookPoint()  # [batch, pos, d_model]
            self.hook_mlp_out = CacheableHookPoint()  # [batch, pos, d_model]
        self.hook_resid_post = CacheableHookPoint()  # [batch, pos, d_model]


class PreNormBlock(_BlockBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg, with_mlp=True)

    def forward(self, resid_pre: Resid, ctx: AttentionContext) -> Resid:
        resid_pre = self.hook_resid_pre(resid_pre)
        attn_out = self.hook_attn_out(self.attn(self.ln1(resid_pre), ctx))
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(resid_mid)))
        return self.hook_resid_post(resid_mid + mlp_out)


class PreNormAttnOnlyBlock(_BlockBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg, with_mlp=False)

    def forward(self, resid_pre: Resid, ctx: AttentionContext) -> Resid:
        resid_pre = self.hook_resid_pre(resid_pre)
        attn_out = self.hook_attn_out(self.attn(self.ln1(resid_pre), ctx))
        return self.hook_resid_post(resid_pre + attn_out)


class PostNormBlock(_BlockBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg, with_mlp=True)

    def forward(self, resid_pre: Resid, ctx: AttentionContext) -> Resid:
        resid_pre = self.hook_resid_pre(resid_pre)
        attn_out = self.hook_attn_out(self.attn(resid_pre, ctx))
        resid_mid = self.hook_resid_mid(self.ln1(resid_pre + attn_out))
        mlp_out = self.hook_mlp_out(self.mlp(resid_mid))
        return self.hook_resid_post(self.ln2(resid_mid + mlp_out))


class PostNormAttnOnlyBlock(_BlockBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg, with_mlp=False)

    def forward(self, resid_pre: Resid, ctx: AttentionContext) -> Resid:
        resid_pre = self.hook_resid_pre(resid_pre)
        attn_out = self.hook_attn_out(self.attn(resid_pre, ctx))
        return self.hook_resid_post(self.ln1(resid_pre + attn_out))


def make_block(cfg: TransformerConfig) -> nn.Module:
    table = {
        ("pre", False): PreNormBlock,
        ("pre", True): PreNormAttnOnlyBlock,
        ("post", False): PostNormBlock,
        ("post", True): PostNormAttnOnlyBlock,
    }
    return table[(cfg.norm_position, cfg.attn_only)](cfg)
