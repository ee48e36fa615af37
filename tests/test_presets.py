"""Presets: the names the issue asks for, the Framework paper's architecture, one shared data setup."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from circuits import PRESETS, Transformer, get_preset
from circuits.training.presets import Preset

REQUIRED = [
    "attn-only-0l", "attn-only-1l", "attn-only-2l", "attn-only-3l",
    "attn-only-1l-smeared", "attn-only-2l-smeared", "attn-only-2l-corpus",
    "attn-only-2l-learned", "attn-only-2l-rotary", "attn-only-2l-alibi", "attn-only-2l-nopos", "attn-only-2l-gqa",
]


def test_required_presets_exist_with_purposes():
    assert set(REQUIRED) <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert preset.purpose.endswith(".") and 20 < len(preset.purpose) < 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["attn-only-2l"].name = "x"


@pytest.mark.parametrize("name", ["attn-only-0l", "attn-only-1l", "attn-only-2l", "attn-only-3l"])
def test_framework_models(name):
    cfg = get_preset(name).model
    assert cfg.attn_only and cfg.normalization == "none" and not cfg.use_bias and cfg.positional == "shortformer"
    assert cfg.n_layers == int(name[-2])


def test_variants_differ_from_attn_only_2l_in_one_choice():
    base = get_preset("attn-only-2l").model.to_dict()
    expected = {
        "attn-only-2l-smeared": {"smear_key": True},
        "attn-only-2l-learned": {"positional": "learned"},
        "attn-only-2l-rotary": {"positional": "rotary"},
        "attn-only-2l-alibi": {"positional": "alibi"},
        "attn-only-2l-nopos": {"positional": "none"},
    }
    for name, change in expected.items():
        diff = {k: v for k, v in get_preset(name).model.to_dict().items() if base[k] != v}
        assert diff == change, name
    gqa = get_preset("attn-only-2l-gqa").model
    assert 1 <= gqa.n_kv_heads_ < gqa.n_heads


def test_presets_share_data_settings():
    """One tokenizer and one token cache for all; the same batches in the same order."""
    keys = {(p.model.d_vocab, p.model.n_ctx, p.train.seed, p.train.batch_size, p.train.val_fraction, p.train.tokenizer_train_chars) for p in PRESETS.values()}
    assert len(keys) == 1


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_and_runs(name):
    preset = get_preset(name)
    assert isinstance(preset, Preset)
    model = Transformer(preset.model)
    tokens = torch.randint(0, preset.model.d_vocab, (1, 9), generator=torch.Generator().manual_seed(0))
    assert model(tokens, return_type="loss").isfinite()


def test_unknown_preset_lists_close_matches():
    with pytest.raises(KeyError, match="unknown preset 'attn-only-2'; did you mean .*attn-only-2l"):
        get_preset("attn-only-2")
    with pytest.raises(KeyError, match="known presets: attn-only-0l"):
        get_preset("gpt-5")


def test_sections_say_what_the_corpus_models_trained_on(tmp_path):
    from circuits.experiments.util import training_data_note
    from circuits.training.zoo import Zoo, ZooSettings

    zoo = Zoo(tmp_path / "runs", ZooSettings())
    note = training_data_note(zoo, "attn-only-2l")
    train_cfg = get_preset("attn-only-2l").train
    assert f"repeat_fraction={train_cfg.repeat_fraction:g}" in note and f"{train_cfg.steps} steps" in note
    assert training_data_note(None, "attn-only-2l") is None

    class PlainZoo(Zoo):
        def configs(self, name):
            model_cfg, train_cfg = super().configs(name)
            return model_cfg, dataclasses.replace(train_cfg, repeat_fraction=0.0)

    assert "plain corpus windows" in training_data_note(PlainZoo(tmp_path / "runs", ZooSettings()), "attn-only-2l")


def test_corpus_control_differs_from_attn_only_2l_in_the_data_only():
    base, control = get_preset("attn-only-2l"), get_preset("attn-only-2l-corpus")
    assert control.model == base.model
    assert control.train == dataclasses.replace(base.train, repeat_fraction=0.0) and base.train.repeat_fraction > 0


def test_training_data_label():
    from circuits.training.presets import training_data_label

    assert training_data_label(get_preset("attn-only-2l").train) == "stdlib corpus; 50% of windows with a copied span at random offsets (augmented)"
    assert training_data_label(get_preset("attn-only-2l-corpus").train) == "stdlib corpus only"
    assert training_data_label(get_preset("attn-only-2l").train.replace(repeat_fraction=0.25), "my texts") == (
        "my texts corpus; 25% of windows with a copied span at random offsets (augmented)")
    with pytest.raises(TypeError, match="TrainConfig"):
        training_data_label(get_preset("attn-only-2l").model)
