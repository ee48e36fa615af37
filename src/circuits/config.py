"""TransformerConfig: the architecture of a model, validated on construction, JSON round trip.

One frozen, keyword-only dataclass. Every choice is a ``Literal``; ``__post_init__`` only
validates (each check in ``_VALIDATORS`` raises ``ValueError`` naming the field and the fix) and
never mutates. The choices stay strings here; the model resolves them to objects once when it
is built (``circuits.model.positional.positional_scheme``, ``circuits.model.masks.make_mask``). Values that
follow from others (``d_head`` when not given, ``n_kv_heads``, ``d_vocab_out``, ``init_range``,
``rotary_dim``) are resolved through the ``*_`` properties below, so the stored config is exactly
what the user wrote and ``from_dict(to_dict())`` is the identity.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args, no_type_check

ActFn = Literal["gelu", "gelu_new", "relu", "silu", "swiglu"]
Normalization = Literal["none", "layernorm", "rmsnorm"]
NormPosition = Literal["pre", "post"]
Positional = Literal["learned", "shortformer", "rotary", "alibi", "sinusoidal", "none"]
MaskKind = Literal["causal", "bidirectional", "sliding_window", "prefix"]
InputKind = Literal["tokens", "patches"]
Pool = Literal["cls", "mean"]


@no_type_check  # validated by __post_init__ with clear messages, not by test-time type instrumentation
@dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    """Architecture of a :class:`circuits.Transformer`.

    Sizes use the TransformerLens names. ``n_layers=0`` is the zero-layer model (embed then
    unembed, the bigram model of the Framework paper).

    Choices:
      - ``attn_only``: blocks without MLPs (the Framework paper's models).
      - ``act_fn``: MLP nonlinearity; ``"swiglu"`` is the gated SiLU MLP of LLaMA.
      - ``normalization`` / ``norm_position``: ``"pre"`` normalizes each sublayer's input
        (GPT-2, with a final norm before the unembedding); ``"post"`` normalizes after each
        residual addition (BERT, with a norm on the embeddings and no final norm).
      - ``positional``: ``"learned"`` and ``"sinusoidal"`` add a position embedding to the
        residual stream; ``"shortformer"`` adds a learned one only to the query and key inputs
        (the Framework paper's setup: positions never enter the residual stream); ``"rotary"``
        rotates queries and keys (``rotary_dim`` channels of each head, base ``rotary_base``);
        ``"alibi"`` adds Press et al.'s linear distance bias to the scores; ``"none"``.
      - ``n_kv_heads``: grouped-query attention (``None`` means ``n_heads``; 1 is multi-query).
      - ``mask``: ``"causal"``, ``"bidirectional"``, ``"sliding_window"`` (each query sees the
        last ``window`` keys including itself) or ``"prefix"`` (prefix-LM; the prefix length is
        given to ``forward``).
      - ``smear_key``: the In-context Learning paper's smeared key: each head's key becomes
        ``sigmoid(alpha) k_j + (1 - sigmoid(alpha)) k_{j-1}`` with a trainable ``alpha`` per head.
      - ``n_token_types``: BERT-style token-type (segment) embeddings; 0 means none.
      - ``input``: ``"tokens"`` (ids ``[batch, pos]``) or ``"patches"`` (images ``[batch,
        n_channels, image_size, image_size]`` cut into ``patch_size`` patches and embedded by a
        linear map ``W_E [n_channels * patch_size**2, d_model]``, a ViT). For patches,
        ``d_vocab`` is the patch length ``n_channels * patch_size**2`` and ``n_ctx`` the number
        of patches (+1 with ``class_token``); :func:`vit_config` fills both in.
      - ``n_classes`` / ``pool``: a classification head: the final residual is pooled (``"cls"``:
        position 0, the class token or BERT's [CLS]; ``"mean"``: the mean over real positions,
        class token excluded) and unembedded to ``[batch, n_classes]`` logits (``W_U [d_model,
        n_classes]``).
    """

    # sizes
    n_layers: int
    d_model: int
    n_heads: int
    d_vocab: int
    n_ctx: int
    d_head: int | None = None
    d_mlp: int | None = None
    d_vocab_out: int | None = None
    n_kv_heads: int | None = None
    # architecture choices
    attn_only: bool = False
    act_fn: ActFn = "gelu"
    normalization: Normalization = "layernorm"
    norm_position: NormPosition = "pre"
    norm_eps: float = 1e-5
    positional: Positional = "learned"
    rotary_dim: int | None = None
    rotary_base: float = 10000.0
    mask: MaskKind = "causal"
    window: int | None = None
    smear_key: bool = False
    n_token_types: int = 0
    use_bias: bool = True
    tied_embeddings: bool = False
    # input and head (omitted from to_dict at their defaults, so existing configs serialise as before)
    input: InputKind = "tokens"
    image_size: int | None = None
    patch_size: int | None = None
    n_channels: int | None = None
    class_token: bool = False
    n_classes: int | None = None
    pool: Pool | None = None
    # initialisation
    init_range: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for check in _VALIDATORS:
            check(self)

    # ---- resolved values -------------------------------------------------------------------
    @property
    def d_head_(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_heads

    @property
    def d_mlp_(self) -> int:
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    @property
    def d_vocab_out_(self) -> int:
        if self.n_classes is not None:
            return self.n_classes
        return self.d_vocab_out if self.d_vocab_out is not None else self.d_vocab

    @property
    def n_patches(self) -> int:
        """Patches per image (0 for token input)."""
        return (self.image_size // self.patch_size) ** 2 if self.input == "patches" else 0

    @property
    def n_kv_heads_(self) -> int:
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def rotary_dim_(self) -> int:
        return self.rotary_dim if self.rotary_dim is not None else self.d_head_

    @property
    def init_range_(self) -> float:
        """Standard deviation of the normal initialisation (default 0.8 / sqrt(d_model), as GPT-2 in TransformerLens)."""
        return self.init_range if self.init_range is not None else 0.8 / math.sqrt(self.d_model)

    @property
    def has_mlp(self) -> bool:
        return not self.attn_only

    @property
    def positions_in_residual(self) -> bool:
        """True when a position embedding is added to the residual stream.

        The model layer answers this and every other positional question through the scheme
        object (``model.positional.in_residual``, see ``circuits.model.positional``); prefer that.
        """
        return self.positional in ("learned", "sinusoidal")

    # ---- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name, default in _OMITTED_AT_DEFAULT.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TransformerConfig":
        if not isinstance(data, dict):
            raise TypeError(f"TransformerConfig.from_dict expects a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TransformerConfig.from_dict: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TransformerConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> "TransformerConfig":
        """A copy with some fields changed (validated like a new config)."""
        return dataclasses.replace(self, **changes)


#: fields added after configs were first stored: left out of ``to_dict`` at their defaults (stored
#: run identities and checkpoints of token models stay byte-identical)
_OMITTED_AT_DEFAULT: dict[str, Any] = {
    "input": "tokens", "image_size": None, "patch_size": None, "n_channels": None,
    "class_token": False, "n_classes": None, "pool": None,
}


def vit_config(
    *, image_size: int, patch_size: int, n_classes: int, n_channels: int = 1, class_token: bool = True,
    pool: str | None = None, **kwargs: Any,
) -> TransformerConfig:
    """A vision-transformer config: patch input, bidirectional attention, learned positions, a classification head.

    ``d_vocab`` (patch length) and ``n_ctx`` (patches, +1 for the class token) are derived;
    ``pool`` defaults to ``"cls"`` with a class token and ``"mean"`` without. Other fields
    (``n_layers``, ``d_model``, ``n_heads``, ...) are passed through.
    """
    if not (isinstance(patch_size, int) and isinstance(image_size, int) and patch_size > 0 and image_size > 0):
        raise ValueError(f"vit_config: image_size={image_size!r} and patch_size={patch_size!r} must be positive ints")
    if image_size % patch_size:
        raise ValueError(f"vit_config: image_size={image_size} is not divisible by patch_size={patch_size}; pick a patch_size dividing it")
    fields = dict(
        input="patches", image_size=image_size, patch_size=patch_size, n_channels=n_channels, class_token=class_token,
        n_classes=n_classes, pool=pool or ("cls" if class_token else "mean"), mask="bidirectional", positional="learned",
        d_vocab=n_channels * patch_size**2, n_ctx=(image_size // patch_size) ** 2 + int(class_token),
    )
    fields.update(kwargs)
    return TransformerConfig(**fields)


_CHOICES: dict[str, tuple[str, ...]] = {
    "act_fn": get_args(ActFn),
    "normalization": get_args(Normalization),
    "norm_position": get_args(NormPosition),
    "positional": get_args(Positional),
    "mask": get_args(MaskKind),
    "input": get_args(InputKind),
}


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"TransformerConfig.{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"TransformerConfig.{name}={value} must be >= {minimum}")


# ---- validation: each check raises ValueError naming the field and the fix; run in this order ----


def _check_types(cfg: TransformerConfig) -> None:
    for name in ("n_layers", "d_model", "n_heads", "d_vocab", "n_ctx", "n_token_types", "seed"):
        _check_int(name, getattr(cfg, name), minimum=0 if name in ("n_layers", "n_token_types", "seed") else 1)
    for name in ("d_head", "d_mlp", "d_vocab_out", "n_kv_heads", "rotary_dim", "window"):
        if getattr(cfg, name) is not None:
            _check_int(name, getattr(cfg, name), minimum=1)
    for name in ("attn_only", "smear_key", "use_bias", "tied_embeddings", "class_token"):
        if not isinstance(getattr(cfg, name), bool):
            raise ValueError(f"TransformerConfig.{name} must be True or False, got {getattr(cfg, name)!r}")
    for name, choices in _CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ValueError(f"TransformerConfig.{name}={getattr(cfg, name)!r} is not one of {list(choices)}")


def _check_heads(cfg: TransformerConfig) -> None:
    if cfg.d_head is None and cfg.d_model % cfg.n_heads != 0:
        raise ValueError(
            f"TransformerConfig: d_model={cfg.d_model} is not divisible by n_heads={cfg.n_heads}; "
            "give d_head explicitly or change d_model/n_heads"
        )
    if cfg.n_heads % cfg.n_kv_heads_ != 0:
        raise ValueError(
            f"TransformerConfig.n_kv_heads={cfg.n_kv_heads} must divide n_heads={cfg.n_heads} "
            "(each key/value head serves a whole group of query heads)"
        )
    if cfg.n_kv_heads is not None and cfg.n_kv_heads > cfg.n_heads:
        raise ValueError(f"TransformerConfig.n_kv_heads={cfg.n_kv_heads} exceeds n_heads={cfg.n_heads}")


def _check_rotary(cfg: TransformerConfig) -> None:
    if cfg.positional == "rotary":
        if cfg.rotary_dim_ % 2 != 0 or cfg.rotary_dim_ > cfg.d_head_:
            raise ValueError(
                f"TransformerConfig.rotary_dim={cfg.rotary_dim_} must be even and at most "
                f"d_head={cfg.d_head_} (rotary embeddings rotate pairs of channels); "
                f"set rotary_dim to an even number <= {cfg.d_head_}"
            )
        if not cfg.rotary_base > 0:
            raise ValueError(f"TransformerConfig.rotary_base={cfg.rotary_base} must be positive")
    elif cfg.rotary_dim is not None:
        raise ValueError(
            f"TransformerConfig.rotary_dim={cfg.rotary_dim} is only used with positional='rotary' "
            f"(got positional={cfg.positional!r}); remove it"
        )


def _check_window(cfg: TransformerConfig) -> None:
    if cfg.mask == "sliding_window":
        if cfg.window is None:
            raise ValueError("TransformerConfig: mask='sliding_window' needs window=<keys per query>")
    elif cfg.window is not None:
        raise ValueError(
            f"TransformerConfig.window={cfg.window} is only used with mask='sliding_window' "
            f"(got mask={cfg.mask!r}); remove it"
        )


def _check_layout(cfg: TransformerConfig) -> None:
    if cfg.attn_only and cfg.d_mlp is not None:
        raise ValueError(f"TransformerConfig.d_mlp={cfg.d_mlp} is meaningless with attn_only=True; remove it")
    if cfg.tied_embeddings and cfg.d_vocab_out_ != cfg.d_vocab:
        raise ValueError(
            f"TransformerConfig: tied_embeddings=True needs d_vocab_out == d_vocab "
            f"(got {cfg.d_vocab_out} vs {cfg.d_vocab})"
        )
    if cfg.norm_position == "post" and cfg.normalization == "none":
        raise ValueError(
            "TransformerConfig: norm_position='post' with normalization='none' has no norm to "
            "place; use norm_position='pre' (the default) or choose a normalization"
        )


def _check_floats(cfg: TransformerConfig) -> None:
    if not (isinstance(cfg.norm_eps, (int, float)) and cfg.norm_eps > 0):
        raise ValueError(f"TransformerConfig.norm_eps={cfg.norm_eps!r} must be a positive number")
    if cfg.init_range is not None and not (isinstance(cfg.init_range, (int, float)) and cfg.init_range > 0):
        raise ValueError(f"TransformerConfig.init_range={cfg.init_range!r} must be a positive number")


def _check_head(cfg: TransformerConfig) -> None:
    if cfg.n_classes is None:
        if cfg.pool is not None:
            raise ValueError(f"TransformerConfig.pool={cfg.pool!r} needs n_classes=<number of classes> (the classification head)")
        return
    _check_int("n_classes", cfg.n_classes, minimum=1)
    if cfg.pool not in get_args(Pool):
        raise ValueError(f"TransformerConfig.pool={cfg.pool!r}: a classification head (n_classes) needs pool='cls' or 'mean'")
    if cfg.d_vocab_out is not None or cfg.tied_embeddings:
        raise ValueError("TransformerConfig: n_classes sets the head's width; remove d_vocab_out and tied_embeddings=True")


def _check_patches(cfg: TransformerConfig) -> None:
    image_fields = {"image_size": cfg.image_size, "patch_size": cfg.patch_size, "n_channels": cfg.n_channels}
    if cfg.input == "tokens":
        given = [name for name, value in image_fields.items() if value is not None] + (["class_token"] if cfg.class_token else [])
        if given:
            raise ValueError(f"TransformerConfig: {given} only apply to input='patches' (got input='tokens'); remove them")
        return
    for name, value in image_fields.items():
        _check_int(name, value, minimum=1)
    if cfg.image_size % cfg.patch_size:
        raise ValueError(f"TransformerConfig: image_size={cfg.image_size} is not divisible by patch_size={cfg.patch_size}")
    expected = {"d_vocab": cfg.n_channels * cfg.patch_size**2, "n_ctx": cfg.n_patches + int(cfg.class_token)}
    wrong = {name: value for name, value in expected.items() if getattr(cfg, name) != value}
    if wrong:
        raise ValueError(
            f"TransformerConfig: input='patches' needs {wrong} (d_vocab = n_channels * patch_size**2, "
            f"n_ctx = patches + class token), got d_vocab={cfg.d_vocab}, n_ctx={cfg.n_ctx}; build it with circuits.config.vit_config"
        )
    if cfg.mask != "bidirectional" or cfg.positional not in ("learned", "none"):
        raise ValueError(
            f"TransformerConfig: input='patches' needs mask='bidirectional' and positional='learned' or 'none' "
            f"(got mask={cfg.mask!r}, positional={cfg.positional!r})"
        )
    if cfg.pool == "cls" and not cfg.class_token:
        raise ValueError("TransformerConfig: pool='cls' on patches needs class_token=True (else use pool='mean')")
    if cfg.n_token_types or cfg.tied_embeddings:
        raise ValueError("TransformerConfig: input='patches' has no token types and no tied embeddings (there is no token vocabulary)")


_VALIDATORS = (_check_types, _check_heads, _check_rotary, _check_window, _check_layout, _check_floats, _check_head, _check_patches)
