"""Named (model, training) configurations: the Framework and In-context Learning papers' toy models, sized for a laptop.

All presets share one vocabulary and context length, so they share one tokenizer and one token
cache, and train on the same batches in the same order (same ``seed``): differences between
their checkpoints come from the architecture alone. Sizes are the smallest that
``benchmarks/calibrate_presets.py`` found to form an induction head in the two-layer model on
the standard library within about a minute of training on 2 CPU cores (README, "Presets"):
``d_model=128`` (at 64 or 96 no induction head formed within 16M tokens), 5000 steps of 16
windows, and half of the training windows given a copied span of themselves (``repeat_fraction=0.5``:
a stretch of the window's own text copied to a later offset, source and copy at random places after
natural text, :func:`circuits.training.data.sample_windows`). ``attn-only-2l-corpus`` is the same
two-layer model on the corpus alone, the control that shows what the augmentation changes; the
report says what every model saw (:func:`training_data_label`). The purposes below say what each
model is for; the report measures whether it happened.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from circuits.config import TransformerConfig
from circuits.training.config import TrainConfig

#: Shared by every preset (one tokenizer, one token cache).
VOCAB_SIZE = 512
N_CTX = 64
D_MODEL = 128
N_HEADS = 4
D_HEAD = 32
STEPS = 5000
BATCH_SIZE = 16
LR = 6e-3
REPEAT_FRACTION = 0.5
SEED = 0

#: The Framework paper's attention-only models: no MLPs, no normalization, no biases,
#: positions added only to the query and key inputs (never to the residual stream).
_FRAMEWORK = dict(attn_only=True, normalization="none", use_bias=False, positional="shortformer")
_SIZES = dict(d_model=D_MODEL, n_heads=N_HEADS, d_head=D_HEAD, d_vocab=VOCAB_SIZE, n_ctx=N_CTX, seed=SEED)


@dataclass(frozen=True, kw_only=True)
class Preset:
    """A named pair of configs with a one-sentence ``purpose``."""

    name: str
    purpose: str
    model: TransformerConfig
    train: TrainConfig


def _attn_only(n_layers: int, **changes) -> TransformerConfig:
    return TransformerConfig(n_layers=n_layers, **{**_SIZES, **_FRAMEWORK, **changes})


def _train(**changes) -> TrainConfig:
    return TrainConfig(**{**dict(steps=STEPS, batch_size=BATCH_SIZE, lr=LR, warmup_steps=STEPS // 20, repeat_fraction=REPEAT_FRACTION, seed=SEED), **changes})


def _presets() -> dict[str, Preset]:
    return {preset.name: preset for preset in _depth_presets() + _variant_presets()}


def _depth_presets() -> list[Preset]:
    """The Framework paper's attention-only models by depth, and the standard block that checks them."""
    return [
        Preset(
            name="attn-only-0l",
            purpose="Zero-layer model (embed then unembed): learns the bigram table, the direct path of every deeper model.",
            model=_attn_only(0),
            train=_train(),
        ),
        Preset(
            name="attn-only-1l",
            purpose="One attention-only layer: bigrams plus skip-trigrams and copying heads, and the control that forms no induction head.",
            model=_attn_only(1),
            train=_train(),
        ),
        Preset(
            name="attn-only-2l",
            purpose="Two attention-only layers: a layer-0 previous-token head K-composes with a layer-1 induction head in a visible phase change.",
            model=_attn_only(2),
            train=_train(),
        ),
        Preset(
            name="attn-only-3l",
            purpose="Three attention-only layers: where induction heads form (the last layer) when there is more depth than needed.",
            model=_attn_only(3),
            train=_train(),
        ),
    ]


def _variant_presets() -> list[Preset]:
    """One- and two-layer attention-only models with one architectural change each (keys, positions, heads)."""
    return [
        Preset(
            name="attn-only-1l-smeared",
            purpose="One layer with smeared keys (each key mixed with the previous one): induction becomes possible in a single layer.",
            model=_attn_only(1, smear_key=True),
            train=_train(),
        ),
        Preset(
            name="attn-only-2l-corpus",
            purpose="attn-only-2l trained on the corpus alone (repeat_fraction=0): the control that shows what the copied-span augmentation changes.",
            model=_attn_only(2),
            train=_train(repeat_fraction=0.0),
        ),
        Preset(
            name="attn-only-2l-smeared",
            purpose="Two layers with smeared keys: the induction phase change should come earlier than in attn-only-2l.",
            model=_attn_only(2, smear_key=True),
            train=_train(),
        ),
        Preset(
            name="attn-only-2l-learned",
            purpose="attn-only-2l with learned positions added to the residual stream (GPT-2 style) instead of shortformer ones.",
            model=_attn_only(2, positional="learned"),
            train=_train(),
        ),
        Preset(
            name="attn-only-2l-rotary",
            purpose="attn-only-2l with rotary position embeddings: relative positions inside the QK circuit only.",
            model=_attn_only(2, positional="rotary"),
            train=_train(),
        ),
        Preset(
            name="attn-only-2l-alibi",
            purpose="attn-only-2l with ALiBi distance biases instead of position embeddings.",
            model=_attn_only(2, positional="alibi"),
            train=_train(),
        ),
        Preset(
            name="attn-only-2l-nopos",
            purpose="attn-only-2l without any positional information, to see whether a previous-token head can form from the causal mask alone.",
            model=_attn_only(2, positional="none"),
            train=_train(),
        ),
        Preset(
            name="attn-only-2l-gqa",
            purpose="attn-only-2l with grouped-query attention (two query heads per key/value head): induction with shared keys.",
            model=_attn_only(2, n_kv_heads=N_HEADS // 2),
            train=_train(),
        ),
    ]


PRESETS: dict[str, Preset] = _presets()


def training_data_label(train_cfg: TrainConfig, corpus: str = "stdlib") -> str:
    """What a model trained with ``train_cfg`` saw, in words, for claim rows and table headers.

    ``"stdlib corpus; 50% of windows with a copied span at random offsets (augmented)"`` or
    ``"stdlib corpus only"``; ``corpus`` names the text (the zoo's corpus source).
    """
    if not isinstance(train_cfg, TrainConfig):
        raise TypeError(f"training_data_label expects a TrainConfig, got {type(train_cfg).__name__}; pass zoo.configs(name)[1]")
    if train_cfg.repeat_fraction <= 0:
        return f"{corpus} corpus only"
    return f"{corpus} corpus; {train_cfg.repeat_fraction:.0%} of windows with a copied span at random offsets (augmented)"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises ``KeyError`` listing close matches and all names."""
    if not isinstance(name, str):
        raise TypeError(f"preset name must be a str, got {type(name).__name__}")
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, list(PRESETS), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise KeyError(f"unknown preset {name!r}; {hint}known presets: {', '.join(PRESETS)}")
