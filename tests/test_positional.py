"""Positional schemes: one object per ``TransformerConfig.positional`` string, resolved once at build time.

Each scheme's answers are checked against what the model it builds actually does: the table and
hook it has, where the positions enter (residual stream or query/key input), the rotation, the
score bias, the ``n_ctx`` limit, TransformerLens's name, and which weight circuits exist.
"""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from torch import Tensor

from circuits import full_qk_circuit, positional_qk_circuit, rotary_qk_circuit
from circuits.config import Positional
from circuits.model.embed import PosEmbed, SinusoidalPosEmbed
from circuits.model.positional import (
    SCHEMES,
    AlibiBias,
    AlibiPositions,
    LearnedPositions,
    NoPositions,
    PositionalScheme,
    Rotary,
    RotaryPositions,
    ShortformerPositions,
    SinusoidalPositions,
    alibi_bias,
    alibi_slopes,
    positional_scheme,
)
from conftest import tiny_config, tiny_model

NAMES = list(get_args(Positional))


def config(name: str, **overrides):
    """A tiny config with this scheme (``d_head=6``: rotary rotates pairs of channels)."""
    return tiny_config(positional=name, d_head=6, **overrides)


def model_with(name: str, **overrides):
    return tiny_model(positional=name, d_head=6, **overrides)
#: every fact each scheme states, written out by hand
EXPECTED = {
    "learned": dict(cls=LearnedPositions, tl_name="standard", has_table=True, table_parameter="pos_embed.W_pos",
                    hook_name="hook_pos_embed", in_residual=True, qk_only=False, limits_n_ctx=True, rotates_qk=False),
    "sinusoidal": dict(cls=SinusoidalPositions, tl_name="standard", has_table=True, table_parameter=None,
                       hook_name="hook_pos_embed", in_residual=True, qk_only=False, limits_n_ctx=True, rotates_qk=False),
    "shortformer": dict(cls=ShortformerPositions, tl_name="shortformer", has_table=True, table_parameter="pos_embed.W_pos",
                        hook_name="hook_shortformer_pos_embed", in_residual=False, qk_only=True, limits_n_ctx=True, rotates_qk=False),
    "rotary": dict(cls=RotaryPositions, tl_name="rotary", has_table=False, table_parameter=None,
                   hook_name=None, in_residual=False, qk_only=False, limits_n_ctx=False, rotates_qk=True),
    "alibi": dict(cls=AlibiPositions, tl_name="alibi", has_table=False, table_parameter=None,
                  hook_name=None, in_residual=False, qk_only=False, limits_n_ctx=False, rotates_qk=False),
    "none": dict(cls=NoPositions, tl_name="none", has_table=False, table_parameter=None,
                 hook_name=None, in_residual=False, qk_only=False, limits_n_ctx=False, rotates_qk=False),
}


def test_every_config_choice_has_exactly_one_scheme():
    assert sorted(SCHEMES) == sorted(NAMES) == sorted(EXPECTED)
    for name, scheme in SCHEMES.items():
        assert isinstance(scheme, PositionalScheme) and scheme.name == name


@pytest.mark.parametrize("name", NAMES)
def test_scheme_states_its_facts(name):
    scheme = positional_scheme(config(name))
    facts = dict(EXPECTED[name])
    assert type(scheme) is facts.pop("cls")
    assert {key: getattr(scheme, key) for key in facts} == facts


@pytest.mark.parametrize("name", NAMES)
def test_model_resolves_the_scheme_once_and_keeps_the_string(name):
    cfg = config(name)
    model = model_with(name)
    assert model.positional is positional_scheme(cfg) is SCHEMES[name]
    assert model.config.positional == name and cfg.to_dict()["positional"] == name  # the public API is the string


def test_unknown_name_raises_with_the_choices():
    cfg = tiny_config()
    object.__setattr__(cfg, "positional", "relative")  # past validation, which rejects it first
    with pytest.raises(ValueError, match=r"positional='relative' is not one of \['learned'"):
        positional_scheme(cfg)


@pytest.mark.parametrize("name", NAMES)
def test_table_and_hook_match_the_model(name):
    model = model_with(name)
    scheme = model.positional
    assert (model.pos_embed is not None) == scheme.has_table
    if scheme.has_table:
        assert isinstance(model.pos_embed, SinusoidalPosEmbed if name == "sinusoidal" else PosEmbed)
        assert model.W_pos.shape == (model.config.n_ctx, model.config.d_model)
    else:
        with pytest.raises(AttributeError):  # nn.Module's __getattr__ replaces the property's message
            model.W_pos
    position_hooks = {h for h in model.hook_dict if "pos_embed" in h}
    assert position_hooks == ({scheme.hook_name} if scheme.hook_name else set())
    params = set(model.state_dict())
    assert {p for p in params if p.startswith("pos_embed.")} == ({scheme.table_parameter} if scheme.table_parameter else set())


@pytest.mark.parametrize("name", NAMES)
def test_positions_enter_where_the_scheme_says(name, tokens):
    model = model_with(name, normalization="none")
    scheme = model.positional
    names = ["hook_embed", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_q"] + ([scheme.hook_name] if scheme.hook_name else [])
    _, cache = model.run_with_cache(tokens, names_filter=names)
    embed, resid = cache["hook_embed"], cache["blocks.0.hook_resid_pre"]
    if scheme.in_residual:
        torch.testing.assert_close(resid, embed + cache[scheme.hook_name], rtol=0, atol=0)
    else:
        torch.testing.assert_close(resid, embed, rtol=0, atol=0)
    if scheme.qk_only:  # the queries read token + position; the values would not
        attn = model.blocks[0].attn
        q = torch.einsum("bpd,hde->bphe", embed + cache[scheme.hook_name], attn.W_Q) + attn.b_Q
        torch.testing.assert_close(cache["blocks.0.attn.hook_q"], q)


def test_place_hand_values():
    resid, pos = torch.ones(1, 2, 3), torch.full((1, 2, 3), 2.0)
    for scheme in (SCHEMES["learned"], SCHEMES["sinusoidal"]):
        new_resid, qk_pos = scheme.place(resid, pos)
        assert torch.equal(new_resid, torch.full((1, 2, 3), 3.0)) and qk_pos is None
    new_resid, qk_pos = SCHEMES["shortformer"].place(resid, pos)
    assert new_resid is resid and qk_pos is pos
    for name in ("rotary", "alibi", "none"):
        with pytest.raises(NotImplementedError, match="no position table"):
            SCHEMES[name].place(resid, pos)


@pytest.mark.parametrize("name", NAMES)
def test_rotation_and_bias_modules_match_the_scheme(name):
    model = model_with(name, mask="bidirectional")  # the score bias is then ALiBi's alone
    scheme = model.positional
    for block in model.blocks:
        assert isinstance(block.attn.rotary, Rotary) == scheme.rotates_qk
        assert ("hook_rot_q" in dict(block.attn.named_children())) == scheme.rotates_qk
    assert isinstance(model.position_bias, AlibiBias) == (name == "alibi")
    ctx = model.attention_context(5, torch.float32, torch.device("cpu"))
    assert (ctx.rotary_cos is not None) == scheme.rotates_qk
    if name == "alibi":
        assert torch.equal(ctx.bias, alibi_bias(alibi_slopes(3), 5))
    assert model.cfg.positional_embedding_type == scheme.tl_name
    assert model.cfg.rotary_dim == (6 if scheme.rotates_qk else None)


def test_alibi_bias_module_follows_dtype():
    bias = AlibiBias(3).to(torch.float64)
    assert bias.slopes.dtype == torch.float64
    assert torch.equal(bias(4), alibi_bias(alibi_slopes(3).double(), 4))
    assert "slopes" not in bias.state_dict()  # derived from n_heads: never saved


@pytest.mark.parametrize("name", NAMES)
def test_sequence_length_limit(name):
    model = model_with(name)
    long = torch.zeros(1, model.config.n_ctx + 3, dtype=torch.long)
    if model.positional.limits_n_ctx:
        with pytest.raises(ValueError, match=f"exceeds n_ctx=7 \\(positional='{name}' has one embedding per position\\)"):
            model(long)
    else:
        assert model(long).shape == (1, 10, model.config.d_vocab)


@pytest.mark.parametrize("name", NAMES)
def test_weight_circuits_exist_where_the_scheme_says(name):
    model = model_with(name)
    scheme = model.positional
    assert (scheme.positional_qk_missing is None) == scheme.has_table
    if scheme.positional_qk_missing is None:
        assert positional_qk_circuit(model, 0, 1).AB.shape == (7, 7)
    else:
        with pytest.raises(ValueError, match=f"not defined for positional='{name}'"):
            positional_qk_circuit(model, 0, 1)
    assert (scheme.token_qk_missing is None) == (not scheme.rotates_qk)
    if scheme.token_qk_missing is None:
        assert full_qk_circuit(model, 0, 1).AB.shape == (13, 13)
        with pytest.raises(ValueError, match="use full_qk_circuit for non-rotary models"):
            rotary_qk_circuit(model, 0, 1, 2)
    else:
        with pytest.raises(ValueError, match="full_qk_circuit: a rotary model has no single token QK matrix"):
            full_qk_circuit(model, 0, 1)
        assert rotary_qk_circuit(model, 0, 1, 2).AB.shape == (13, 13)


def test_a_new_scheme_is_one_class():
    """A scheme written outside the registry plugs into the same questions (here: a constant score bias)."""

    class ConstantBias(torch.nn.Module):
        def forward(self, n_pos: int) -> Tensor:
            return torch.full((1, 1, n_pos, n_pos), 0.5)

    class ConstantPositions(PositionalScheme):
        name = "constant"
        tl_name = "none"
        positional_qk_missing = "a constant bias carries no position"

        def attention_bias(self, cfg):
            return ConstantBias()

    scheme = ConstantPositions()
    assert scheme.pos_embed(tiny_config()) is None and scheme.rotary(tiny_config()) is None
    assert torch.equal(scheme.attention_bias(tiny_config())(3), torch.full((1, 1, 3, 3), 0.5))
    assert repr(scheme) == "ConstantPositions()"
