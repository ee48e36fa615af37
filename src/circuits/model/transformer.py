"""Transformer: tokens -> logits, every activation behind a TransformerLens hook point.

``Transformer(cfg)`` subclasses TransformerLens's ``HookedRootModule``: ``run_with_hooks``,
``run_with_cache`` (returning a TransformerLens ``ActivationCache``) and the ``hooks(...)``
context manager work as in TransformerLens, with two differences that catch mistakes early:
an unknown hook name raises ``KeyError`` with close matches, and a ``names_filter`` that matches
no hook point raises ``ValueError`` instead of returning an empty cache.
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence, no_type_check

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn
from transformer_lens import ActivationCache, HookedRootModule

from circuits.config import TransformerConfig
from circuits.model._hooks import is_hooked
from circuits.model.block import make_block
from circuits.model.cache import CacheableHookPoint, Keep, LazyActivations, SavedLikeTransformerLens, detached, filling
from circuits.model.embed import TiedUnembed, TokenTypeEmbed, Unembed
from circuits.model.inputs import input_kind, make_head
from circuits.model.masks import AttentionContext, build_context, make_mask
from circuits.model.norm import make_norm
from circuits.model.positional import positional_scheme
from circuits.model.stacked import StackedWeightsMixin
from circuits.model.tl_config import TLConfigView

ReturnType = Literal["logits", "loss", "per_token_loss"]
NamesFilter = str | Sequence[str] | Callable[[str], bool] | None


class Transformer(StackedWeightsMixin, HookedRootModule):
    """A decoder (or encoder) transformer built from a :class:`TransformerConfig`.

    ``forward(tokens, return_type="logits")`` returns ``[batch, pos, d_vocab_out]`` logits;
    ``"loss"`` the mean next-token cross-entropy; ``"per_token_loss"`` the ``[batch, pos - 1]``
    losses (position ``i`` predicts token ``i + 1``). The mean of no terms is undefined, so
    ``"loss"`` raises ``ValueError`` for an empty batch and for an ``attention_mask`` that leaves
    no (input, target) pair of real tokens.

    Keyword arguments of ``forward``: ``attention_mask [batch, pos]`` (1 = real token, 0 =
    padding: padded keys are hidden, padded targets leave the loss), ``prefix_len`` (int or
    ``[batch]``, only for ``mask="prefix"``), ``token_type_ids [batch, pos]`` (only with
    ``n_token_types > 0``), ``labels [batch]`` (class ids; only for a classification head).

    With a classification head (``n_classes``) the logits are ``[batch, n_classes]`` and the losses
    are cross-entropies against ``labels``; with ``input="patches"`` the first argument is an image
    batch ``[batch, n_channels, image_size, image_size]`` (see ``circuits.model.inputs``).
    """

    @no_type_check
    def __init__(self, cfg: TransformerConfig):
        if not isinstance(cfg, TransformerConfig):
            raise TypeError(f"Transformer expects a TransformerConfig, got {type(cfg).__name__}")
        super().__init__()
        self.config = cfg
        self.tokenizer = None  # set by circuits.load(); only used by to_tokens(str)

        self.positional = positional_scheme(cfg)  # resolved once; forward asks it, never the string
        self.input = input_kind(cfg)  # tokens or image patches (model/inputs.py), resolved once
        self.embed = self.input.embed(cfg)
        self.hook_embed = CacheableHookPoint()  # [batch, pos, d_model]
        self.pos_embed: nn.Module | None = self.positional.pos_embed(cfg)
        if self.positional.hook_name is not None:  # hook_pos_embed, or hook_shortformer_pos_embed (not in the stream)
            setattr(self, self.positional.hook_name, CacheableHookPoint())  # [batch, pos, d_model]
        self.token_type_embed = TokenTypeEmbed(cfg.n_token_types, cfg.d_model) if cfg.n_token_types else None
        if self.token_type_embed is not None:
            self.hook_token_type_embed = CacheableHookPoint()  # [batch, pos, d_model]
        self.ln_embed = make_norm(cfg.normalization, cfg.d_model, cfg.norm_eps) if cfg.norm_position == "post" else None

        self.blocks = nn.ModuleList([make_block(cfg) for _ in range(cfg.n_layers)])
        final_norm = cfg.norm_position == "pre" and cfg.n_layers > 0
        self.ln_final = make_norm(cfg.normalization if final_norm else "none", cfg.d_model, cfg.norm_eps)
        self.unembed = (
            TiedUnembed(self.embed, cfg.use_bias) if cfg.tied_embeddings else Unembed(cfg.d_model, cfg.d_vocab_out_, cfg.use_bias)
        )
        self.head = make_head(cfg)  # logits per position, or a pooled classification head
        if self.head.classifies:
            self.hook_pooled = CacheableHookPoint()  # [batch, d_model]
        self.mask = make_mask(cfg.mask, cfg.window)
        self.position_bias = self.positional.attention_bias(cfg)  # ALiBi's score bias, or None
        self.init_weights()
        self.setup()

    # ---- TransformerLens interface ---------------------------------------------------------
    @property
    def cfg(self) -> TLConfigView:
        """The config under TransformerLens's attribute names (see ``circuits.model.tl_config``)."""
        return TLConfigView(self)

    def init_weights(self) -> None:
        """Normal(0, init_range) for every matrix, ones for norm gains, zeros for biases, seeded by ``cfg.seed``."""
        generator = torch.Generator(device="cpu").manual_seed(self.config.seed)
        std = self.config.init_range_
        with torch.no_grad():
            for name, param in self.named_parameters():
                leaf = name.rsplit(".", 1)[-1]
                if leaf.startswith("W_"):
                    param.copy_(torch.randn(param.shape, generator=generator) * std)
                elif leaf == "w":
                    param.fill_(1.0)
                else:  # biases, smeared-key alpha
                    param.zero_()

    # ---- forward ---------------------------------------------------------------------------
    # Public entry points validate their inputs themselves (check_tokens and friends) so users get
    # messages that name the fix; @no_type_check keeps test-time jaxtyping instrumentation from
    # pre-empting those messages. The annotations still document the shapes.
    @no_type_check
    def forward(
        self,
        tokens: Int[Tensor, "batch pos"],
        *,
        return_type: ReturnType = "logits",
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        prefix_len: int | Int[Tensor, "batch"] | None = None,
        token_type_ids: Int[Tensor, "batch pos"] | None = None,
        labels: Int[Tensor, "batch"] | None = None,
    ) -> Tensor:
        if return_type not in ("logits", "loss", "per_token_loss"):
            raise ValueError(f"return_type={return_type!r} is not one of 'logits', 'loss', 'per_token_loss'")
        tokens = self.input.check(self, tokens)  # token ids, or images for input='patches'
        if attention_mask is not None and not self.input.takes_attention_mask:
            raise ValueError(f"attention_mask is for token input; this model reads input={self.config.input!r}")
        attention_mask = self._check_attention_mask(attention_mask, tokens)
        if token_type_ids is not None and self.token_type_embed is None:
            raise ValueError("token_type_ids given, but this model has n_token_types=0 (no token-type embeddings)")
        if self.token_type_embed is not None:
            token_type_ids = self._check_token_types(token_type_ids, tokens)
        if labels is not None and not self.head.classifies:
            raise ValueError("labels= is for a classification head (n_classes); a language model's loss reads the tokens")
        logits = self.logits_of(tokens, attention_mask, prefix_len, token_type_ids)
        if self.head.classifies:  # [batch, n_classes]; the loss needs labels
            return self.head.output(logits, return_type, labels)
        n_pos = tokens.shape[1]
        if return_type == "logits":
            return logits
        if n_pos < 2:
            raise ValueError(f"return_type={return_type!r} needs at least 2 tokens per sequence (got {n_pos})")
        per_token = lm_cross_entropy(logits, tokens, attention_mask)
        if return_type == "per_token_loss":
            return per_token
        return _masked_mean(per_token, attention_mask)

    def logits_of(
        self,
        tokens: Int[Tensor, "batch pos"] | Float[Tensor, "batch channel height width"],
        attention_mask: Tensor | None = None,
        prefix_len: int | Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Float[Tensor, "batch pos d_vocab_out"] | Float[Tensor, "batch d_vocab_out"]:
        """The forward pass on inputs :meth:`forward` has already checked (no host reads: it compiles whole).

        ``tokens`` are images for ``input="patches"``; a classification head returns ``[batch, n_classes]``."""
        resid = self.hook_embed(self.embed(tokens))  # [batch, pos, d_model]
        batch, n_pos = resid.shape[:2]
        qk_pos = None
        if self.pos_embed is not None:
            positions = self.input.position_ids(tokens, n_pos)  # the tokens themselves, for token input
            pos_embed = getattr(self, self.positional.hook_name)(self.pos_embed(positions))  # [batch, pos, d_model]
            resid, qk_pos = self.positional.place(resid, pos_embed)
        if self.token_type_embed is not None:
            resid = resid + self.hook_token_type_embed(self.token_type_embed(token_type_ids))
        if self.ln_embed is not None:
            resid = self.ln_embed(resid)
        ctx = self.attention_context(n_pos, resid.dtype, tokens.device, attention_mask, prefix_len, batch)
        ctx.qk_pos = qk_pos
        for block in self.blocks:
            resid = block(resid, ctx)
        normalized = self.ln_final(resid)
        if self.head.classifies:
            normalized = self.hook_pooled(self.head.pool(normalized, attention_mask))  # [batch, d_model]
        return self.unembed(normalized)  # [batch, pos, d_vocab_out], or [batch, n_classes] for a classifier

    def next_token_loss(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, ""]:
        """``forward(tokens, return_type="loss")`` for a batch the caller has checked (ids in range, >= 2 positions).

        The same operations, so the same bits, without the input checks that read the tokens on
        the host: the training step ``circuits.train`` runs (and compiles).
        """
        return lm_cross_entropy(self.logits_of(tokens), tokens).mean()

    def attention_context(
        self,
        n_pos: int,
        dtype: torch.dtype,
        device: torch.device,
        attention_mask: Tensor | None = None,
        prefix_len: int | Tensor | None = None,
        batch: int = 1,
    ) -> AttentionContext:
        """The mask/bias/rotary tables every layer shares for one forward pass."""
        if self.mask.needs_prefix:
            if prefix_len is None:
                raise ValueError("this model has mask='prefix': pass prefix_len=<int or [batch] tensor> to forward")
            prefix = torch.as_tensor(prefix_len, device=device)
            if prefix.ndim == 0:
                prefix = prefix.expand(batch)
            if prefix.shape != (batch,) or prefix.dtype.is_floating_point:
                raise ValueError(f"prefix_len must be an int or an integer tensor of shape [{batch}], got {prefix_len!r}")
        elif prefix_len is not None:
            raise ValueError(f"prefix_len={prefix_len!r} given, but this model has mask={self.config.mask!r} (only 'prefix' uses it)")
        else:
            prefix = None
        bias = self.position_bias(n_pos) if self.position_bias is not None else None
        ctx = build_context(self.mask, n_pos, device, dtype, attention_mask, prefix, bias)
        if self.positional.rotates_qk and self.blocks:
            ctx.rotary_cos, ctx.rotary_sin = self.blocks[0].attn.rotary.table(n_pos)
        return ctx

    # ---- input checks ----------------------------------------------------------------------
    def check_tokens(self, tokens: Any) -> Int[Tensor, "batch pos"]:
        """Validate a token batch: an integer tensor ``[batch, pos]`` with ids in ``[0, d_vocab)``."""
        if not isinstance(tokens, Tensor):
            raise TypeError(
                f"tokens must be a torch integer tensor [batch, pos], got {type(tokens).__name__}; "
                "use torch.tensor(ids)[None] for one sequence"
            )
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool or tokens.dtype.is_complex:
            raise ValueError(f"tokens must be integers, got dtype {tokens.dtype}; convert with tokens.long()")
        if tokens.ndim != 2:
            hint = " (add a batch axis: tokens[None])" if tokens.ndim == 1 else ""
            raise ValueError(f"tokens must have shape [batch, pos], got shape {tuple(tokens.shape)}{hint}")
        if tokens.shape[1] == 0:
            raise ValueError("tokens has zero positions; give at least one token")
        if tokens.numel():
            low, high = int(tokens.min()), int(tokens.max())
            if low < 0 or high >= self.config.d_vocab:
                bad = low if low < 0 else high
                raise ValueError(f"token id {bad} is out of range for d_vocab={self.config.d_vocab} (ids must be in [0, {self.config.d_vocab}))")
        if tokens.shape[1] > self.config.n_ctx and self.positional.limits_n_ctx:
            raise ValueError(
                f"sequence length {tokens.shape[1]} exceeds n_ctx={self.config.n_ctx} "
                f"(positional={self.config.positional!r} has one embedding per position); truncate to {self.config.n_ctx} tokens"
            )
        return tokens

    def _check_attention_mask(self, attention_mask: Tensor | None, tokens: Tensor) -> Tensor | None:
        if attention_mask is None:
            return None
        if not isinstance(attention_mask, Tensor) or attention_mask.shape != tokens.shape:
            shape = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
            raise ValueError(f"attention_mask must be a tensor of shape {tuple(tokens.shape)} (like tokens), got {shape}")
        if not ((attention_mask == 0) | (attention_mask == 1)).all():
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
        return attention_mask.to(tokens.device)

    def _check_token_types(self, token_type_ids: Tensor | None, tokens: Tensor) -> Tensor:
        if token_type_ids is None:
            return torch.zeros_like(tokens)
        if token_type_ids.shape != tokens.shape:
            raise ValueError(f"token_type_ids must have shape {tuple(tokens.shape)}, got {tuple(token_type_ids.shape)}")
        if int(token_type_ids.min()) < 0 or int(token_type_ids.max()) >= self.config.n_token_types:
            raise ValueError(f"token_type_ids must be in [0, {self.config.n_token_types})")
        return token_type_ids

    # ---- hooks -----------------------------------------------------------------------------
    def hook_name_error(self, name: str) -> KeyError:
        close = difflib.get_close_matches(name, list(self.hook_dict), n=3, cutoff=0.5)
        hint = f"; did you mean {close}?" if close else f"; see model.hook_dict for the {len(self.hook_dict)} hook names"
        return KeyError(f"no hook point named {name!r} in this model{hint}")

    def resolve_names(self, names_filter: NamesFilter) -> list[str]:
        """The hook names a filter selects. Unknown names raise ``KeyError``; an empty selection raises ``ValueError``."""
        if names_filter is None:
            return list(self.hook_dict)
        if isinstance(names_filter, str):
            names_filter = [names_filter]
        if callable(names_filter):
            names = [name for name in self.hook_dict if names_filter(name)]
            if not names:
                raise ValueError("names_filter matched no hook point; list the names with model.hook_dict.keys()")
            return names
        names = list(names_filter)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"names_filter entries must be hook names (str), got {name!r}")
            if name not in self.hook_dict:
                raise self.hook_name_error(name)
        if not names:
            raise ValueError("names_filter is an empty list: it would cache nothing")
        return names

    def _check_hook_specs(self, specs: Iterable[tuple[Any, Callable]]) -> list[tuple[Any, Callable]]:
        specs = list(specs)
        for name, fn in specs:
            if isinstance(name, str):
                if name not in self.hook_dict:
                    raise self.hook_name_error(name)
            elif callable(name):
                if not any(name(n) for n in self.hook_dict):
                    raise ValueError(f"hook filter {name!r} matches no hook point; list the names with model.hook_dict.keys()")
            else:
                raise TypeError(f"a hook is (name or filter function, hook function), got name {name!r}")
            if not callable(fn):
                raise TypeError(f"hook function for {name!r} is not callable: {fn!r}")
        return specs

    @contextmanager
    def hooks(
        self,
        fwd_hooks: Iterable[tuple[Any, Callable]] = (),
        bwd_hooks: Iterable[tuple[Any, Callable]] = (),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
    ) -> Iterator["Transformer"]:
        """Attach hooks for the duration of a ``with`` block; they are removed even if the block raises."""
        fwd = self._check_hook_specs(fwd_hooks)
        bwd = self._check_hook_specs(bwd_hooks)
        with super().hooks(fwd, bwd, reset_hooks_end, clear_contexts) as model:
            yield model

    def add_hook(self, name, hook, dir="fwd", is_permanent=False, level=None, prepend=False) -> None:
        self._check_hook_specs([(name, hook)])
        super().add_hook(name, hook, dir=dir, is_permanent=is_permanent, level=level, prepend=prepend)

    @no_type_check
    def run_with_cache(
        self,
        *model_args: Any,
        names_filter: NamesFilter = None,
        device: Any = None,
        remove_batch_dim: bool = False,
        incl_bwd: bool = False,
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        pos_slice: Any = None,
        **model_kwargs: Any,
    ) -> tuple[Tensor, ActivationCache]:
        """Run the model and return ``(output, ActivationCache)`` holding the selected activations.

        Keyword arguments are those of TransformerLens's ``run_with_cache`` (``device``,
        ``remove_batch_dim``, ``incl_bwd``, ``pos_slice``, ...) plus the model's forward arguments.
        Per-head results, attention scores and patterns, norm scales and MLP activations that
        no hook observes are computed on first access, bitwise equal to the values the forward
        pass would have produced (:mod:`circuits.model.cache`); the keys are the same either way.
        """
        names = self.resolve_names(names_filter)
        if remove_batch_dim and model_args and isinstance(model_args[0], Tensor) and model_args[0].ndim and model_args[0].shape[0] != 1:
            raise ValueError(f"remove_batch_dim=True needs a batch of one sequence, got {model_args[0].shape[0]}")
        store = LazyActivations()
        # Points no hook observes fill the cache themselves (no hook needed; derivable ones on first
        # access); observed points get TransformerLens's caching hook after the user's, which sees edits.
        lazy = not incl_bwd and reset_hooks_end  # gradients, or hooks that stay after the call, need real caching hooks
        sinks, hooked = [], []
        for name in names:
            point = self.hook_dict[name]
            if lazy and isinstance(point, CacheableHookPoint) and not is_hooked(point):
                sinks.append(point)
            else:
                hooked.append(name)
        fwd, bwd = [], []
        if hooked:
            _, fwd, bwd = self.get_caching_hooks(hooked, incl_bwd, device, remove_batch_dim=remove_batch_dim, cache=store, pos_slice=pos_slice)
        keep = self._keep(names[0], device, remove_batch_dim, pos_slice)
        with filling(store, sinks, keep):
            if not (fwd or bwd or clear_contexts):  # nothing to attach: skip the hook bookkeeping
                return self(*model_args, **model_kwargs), ActivationCache(store, self, has_batch_dim=not remove_batch_dim)
            with self.hooks(fwd_hooks=fwd, bwd_hooks=bwd, reset_hooks_end=reset_hooks_end, clear_contexts=clear_contexts):
                out = self(*model_args, **model_kwargs)
                if incl_bwd:
                    out.backward()
        return out, ActivationCache(store, self, has_batch_dim=not remove_batch_dim)

    def _keep(self, name: str, device: Any, remove_batch_dim: bool, pos_slice: Any) -> Keep:
        """What the cache keeps of a tensor: the tensor detached, or moved and sliced as TransformerLens's save hook does."""
        if device is None and not remove_batch_dim and pos_slice is None:
            return detached
        scratch: dict[str, Tensor] = {}
        save = self.get_caching_hooks([name], False, device, remove_batch_dim=remove_batch_dim, cache=scratch, pos_slice=pos_slice)[1][0][1]
        return SavedLikeTransformerLens(save, scratch)

    # ---- helpers TransformerLens's tools call ----------------------------------------------
    @no_type_check
    def to_tokens(
        self, input: Any, prepend_bos: bool | None = None, truncate: bool = True, **_: Any
    ) -> Int[Tensor, "batch pos"]:
        """Tokens as a ``[batch, pos]`` tensor. Strings need a tokenizer (``circuits.load`` attaches one).

        As in TransformerLens, ``truncate=True`` keeps the first ``n_ctx`` tokens of a string.
        """
        if isinstance(input, str):
            if self.tokenizer is None:
                raise TypeError(
                    "this model has no tokenizer attached, so it cannot encode a string; pass token ids, "
                    "or load the model with circuits.load(path), which attaches its tokenizer"
                )
            input = torch.tensor(self.tokenizer.encode(input, bos=prepend_bos is not False))
            if truncate:
                input = input[: self.config.n_ctx]
        if isinstance(input, (list, tuple)):
            input = torch.tensor(input)
        if isinstance(input, Tensor) and input.ndim == 1:
            input = input[None]
        return self.check_tokens(input).to(self.W_E.device)

    def to_single_token(self, string: str) -> int:
        if self.tokenizer is None:
            raise TypeError("this model has no tokenizer attached; pass token ids instead of strings")
        ids = self.tokenizer.encode(string, bos=False)
        if len(ids) != 1:
            raise ValueError(f"{string!r} is {len(ids)} tokens, not one: {ids}")
        return ids[0]

    def tokens_to_residual_directions(self, tokens: int | Tensor) -> Float[Tensor, "... d_model"]:
        """The residual direction whose dot product with the normalized final residual gives each token's logit.

        That is the column of ``W_U`` scaled by the final norm's gain ``ln_final.w`` (so direct
        logit attributions are exact on trained models; the constant ``ln_final.b @ W_U + b_U``
        is not attributed to any component).
        """
        if isinstance(tokens, str):
            tokens = self.to_single_token(tokens)
        W_U = self.W_U
        gain = getattr(self.ln_final, "w", None)
        if gain is not None:
            W_U = gain[:, None] * W_U
        directions = W_U[:, tokens]  # [d_model, ...]
        return directions.movedim(0, -1)

    def accumulated_bias(self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True) -> Float[Tensor, "d_model"]:
        """Sum of the output biases (``b_O``, and ``b_out`` if asked) written to the residual stream before ``layer``."""
        total = torch.zeros(self.config.d_model, device=self.W_E.device, dtype=self.W_E.dtype)
        for i, block in enumerate(self.blocks[: layer + (1 if mlp_input else 0)]):
            if block.attn.b_O is not None:
                total = total + block.attn.b_O
            if i < layer and include_mlp_biases and hasattr(block, "mlp") and block.mlp.b_out is not None:
                total = total + block.mlp.b_out
        return total


def lm_cross_entropy(
    logits: Float[Tensor, "batch pos d_vocab_out"], tokens: Int[Tensor, "batch pos"], attention_mask: Tensor | None = None
) -> Float[Tensor, "batch pos_minus_1"]:
    """Per-token next-token loss: entry ``i`` is ``-log p(tokens[i + 1] | tokens[:i + 1])``.

    Where ``attention_mask`` marks padding, entries whose target or input is padding are 0
    (and excluded from the mean by ``forward``).
    """
    batch, n_pos, d_vocab_out = logits.shape
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, d_vocab_out).float(), tokens[:, 1:].reshape(-1), reduction="none"
    ).reshape(batch, n_pos - 1)
    if attention_mask is not None:
        loss = loss * _target_mask(attention_mask)
    return loss


def _target_mask(attention_mask: Tensor) -> Tensor:
    return (attention_mask[:, 1:] * attention_mask[:, :-1]).float()


def _masked_mean(per_token: Tensor, attention_mask: Tensor | None) -> Tensor:
    if per_token.shape[0] == 0:
        raise ValueError("return_type='loss' of an empty batch (0 sequences) is undefined; give at least one sequence")
    if attention_mask is None:
        return per_token.mean()
    weights = _target_mask(attention_mask)
    if not bool(weights.any()):
        raise ValueError(
            "return_type='loss': attention_mask leaves no next-token pair of real tokens (every pair has a padding side), "
            "so the mean loss is undefined; check the mask (1 = real token, 0 = padding), or use return_type='per_token_loss'"
        )
    return per_token.sum() / weights.sum().clamp_min(1.0)
