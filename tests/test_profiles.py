"""Report profiles (``circuits report --profile``): what each one trains, keys, and refused combinations."""

from __future__ import annotations

import pytest

from circuits.cli import main
from circuits.runner import zoo_key
from circuits.training.presets import get_preset
from circuits.training.profiles import FULL_TOKEN_MULTIPLIER, PROFILES, get_profile
from circuits.training.zoo import Zoo, ZooSettings


def test_the_default_profile_trains_the_presets_as_defined(tmp_path):
    zoo = Zoo(tmp_path, ZooSettings())
    preset = get_preset("attn-only-2l")
    assert zoo.configs("attn-only-2l") == (preset.model, preset.train)


def test_the_full_profile_trains_on_the_corpus_alone_at_more_tokens(tmp_path):
    default, full = Zoo(tmp_path, ZooSettings()), Zoo(tmp_path, ZooSettings(profile="full"))
    (model_d, train_d), (model_f, train_f) = default.configs("attn-only-2l"), full.configs("attn-only-2l")
    assert model_f == model_d
    assert train_f.repeat_fraction == 0.0 and train_d.repeat_fraction > 0
    assert train_f.steps == FULL_TOKEN_MULTIPLIER * train_d.steps
    assert train_f.warmup_steps == FULL_TOKEN_MULTIPLIER * train_d.warmup_steps
    assert train_f.batch_size == train_d.batch_size and train_f.lr == train_d.lr
    assert full.run_dir("attn-only-2l") != default.run_dir("attn-only-2l")
    assert full.data_label("attn-only-2l") == "stdlib corpus only"
    assert full.describe()["profile"] == {"name": "full", "description": PROFILES["full"].description, "token_multiplier": FULL_TOKEN_MULTIPLIER}


def test_the_default_profile_keeps_cache_keys_from_before_profiles(tmp_path):
    settings = ZooSettings()
    assert "profile" not in settings.key_fields()
    assert "profile" in ZooSettings(profile="full").key_fields()
    assert zoo_key(Zoo(tmp_path, settings)) != zoo_key(Zoo(tmp_path, ZooSettings(profile="full")))


def test_unknown_profiles_and_quick_with_full_are_refused():
    with pytest.raises(ValueError, match="unknown profile 'ful'.*did you mean 'full'"):
        get_profile("ful")
    with pytest.raises(ValueError, match="unknown profile"):
        ZooSettings(profile="huge")
    with pytest.raises(ValueError, match="cannot be combined with quick"):
        ZooSettings(quick=True, profile="full")


def test_the_report_command_refuses_quick_with_full(tmp_path, capsys):
    assert main(["report", "--quick", "--profile", "full", "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]) == 2
    assert "--profile full cannot be combined with --quick" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
