"""TransformerConfig: validation at construction, resolved defaults, JSON round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from circuits import TransformerConfig

BASE = dict(n_layers=2, d_model=12, n_heads=3, d_vocab=13, n_ctx=7)


def test_defaults_resolve_without_mutating():
    cfg = TransformerConfig(**BASE)
    assert cfg.d_head is None and cfg.d_head_ == 4
    assert cfg.n_kv_heads_ == 3 and cfg.d_vocab_out_ == 13 and cfg.d_mlp_ == 48
    assert cfg.init_range_ == pytest.approx(0.8 / 12**0.5)


def test_frozen_and_keyword_only():
    cfg = TransformerConfig(**BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_model = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        TransformerConfig(2, 12, 3, 13, 7)  # type: ignore[misc]


def test_json_round_trip():
    cfg = TransformerConfig(**BASE, positional="rotary", rotary_dim=2, n_kv_heads=1, act_fn="swiglu", seed=4)
    again = TransformerConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["positional"] == "rotary"


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown fields.*'n_layer'"):
        TransformerConfig.from_dict({**BASE, "n_layer": 3})


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(d_model=10), "d_model=10 is not divisible by n_heads=3"),
        (dict(n_kv_heads=2), "n_kv_heads=2 must divide n_heads=3"),
        (dict(positional="rotary", d_head=5), "rotary_dim=5 must be even"),
        (dict(positional="rotary", rotary_dim=3), "rotary_dim=3 must be even"),
        (dict(positional="rotary", rotary_dim=6), "at most d_head=4"),
        (dict(rotary_dim=2), "rotary_dim=2 is only used with positional='rotary'"),
        (dict(positional="relative"), "positional='relative' is not one of"),
        (dict(act_fn="tanh"), "act_fn='tanh' is not one of"),
        (dict(normalization="LN"), "normalization='LN' is not one of"),
        (dict(mask="sliding_window"), "needs window"),
        (dict(window=3), "window=3 is only used with mask='sliding_window'"),
        (dict(n_layers=-1), "n_layers=-1 must be >= 0"),
        (dict(d_model=12.0), "d_model must be an int"),
        (dict(attn_only=1), "attn_only must be True or False"),
        (dict(attn_only=True, d_mlp=8), "d_mlp=8 is meaningless"),
        (dict(tied_embeddings=True, d_vocab_out=5), "tied_embeddings=True needs d_vocab_out == d_vocab"),
        (dict(norm_position="post", normalization="none"), "norm_position='post' with normalization='none'"),
        (dict(norm_eps=0.0), "norm_eps=0.0 must be a positive"),
    ],
)
def test_invalid_configs_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field.replace("(", r"\(").replace(")", r"\)")):
        TransformerConfig(**{**BASE, **overrides})


def test_zero_layer_config_is_valid():
    cfg = TransformerConfig(**{**BASE, "n_layers": 0})
    assert cfg.n_layers == 0
