"""Checkpoint folders: exact round trips, safetensors + JSON only, atomic writes, clear errors on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from circuits import Tokenizer, Transformer, load
from circuits.atomic import atomic_directory, atomic_write_text
from circuits.training.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    load_optimizer_state,
    read_config,
    resolve_checkpoint,
    save_checkpoint,
)
from circuits.training.loop import make_optimizer

from training_helpers import state_dicts_equal, tiny_model_config, tiny_train_config

TEXTS = ["def f(x):\n    return x + 1\n" * 4, "class A:\n    pass\n" * 4]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(TEXTS, vocab_size=263)


def trained_pair(**changes) -> tuple[Transformer, torch.optim.Optimizer]:
    model = Transformer(tiny_model_config(**changes))
    optimizer = make_optimizer(model, tiny_train_config())
    tokens = torch.randint(0, 263, (2, 7), generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        model(tokens, return_type="loss").backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


@pytest.mark.parametrize("changes", [{}, dict(smear_key=True, positional="rotary", rotary_dim=4), dict(attn_only=False, normalization="layernorm", use_bias=True, d_mlp=13, tied_embeddings=True, n_kv_heads=1)])
def test_round_trip_is_exact_and_attaches_the_tokenizer(tmp_path, tokenizer, changes):
    model, optimizer = trained_pair(**changes)
    save_checkpoint(tmp_path / "step_000002", model, tokenizer, {"step": 2}, optimizer=optimizer, training_state={"step": 2})
    loaded, loaded_tokenizer = load(tmp_path / "step_000002")
    assert state_dicts_equal(loaded.state_dict(), model.state_dict())
    assert loaded.config == model.config and not loaded.training
    assert loaded_tokenizer == tokenizer and loaded.tokenizer is loaded_tokenizer
    tokens = loaded.to_tokens("def f(x):")
    assert tokens[0, 0] == tokenizer.bos_id
    assert torch.equal(loaded(tokens), model.eval()(tokens))


def test_files_are_safetensors_and_json_only(tmp_path, tokenizer):
    model, optimizer = trained_pair()
    folder = save_checkpoint(tmp_path / "ckpt", model, tokenizer, {"step": 2}, optimizer=optimizer, training_state={"step": 2})
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["config.json", "model.safetensors", "optimizer.safetensors", "tokenizer.json", "training_state.json"]
    for name in names:
        data = (folder / name).read_bytes()
        assert not data.startswith(b"\x80")  # no pickle protocol header
        if name.endswith(".json"):
            json.loads(data)
        else:  # safetensors: 8-byte little-endian header length, then a JSON header
            header_len = int.from_bytes(data[:8], "little")
            json.loads(data[8 : 8 + header_len])


def test_optimizer_state_round_trip(tmp_path, tokenizer):
    model, optimizer = trained_pair()
    folder = save_checkpoint(tmp_path / "ckpt", model, tokenizer, {}, optimizer=optimizer)
    fresh = Transformer(model.config)
    fresh.load_state_dict(model.state_dict())
    restored = make_optimizer(fresh, tiny_train_config())
    load_optimizer_state(folder, restored, fresh)
    names = {id(p): n for n, p in model.named_parameters()}
    fresh_params = dict(fresh.named_parameters())
    for param, state in optimizer.state.items():
        other = restored.state[fresh_params[names[id(param)]]]
        assert state.keys() == other.keys()
        assert all(torch.equal(state[key], other[key]) for key in state)


def test_load_accepts_a_run_folder(tmp_path, tokenizer):
    model, _ = trained_pair()
    save_checkpoint(tmp_path / "checkpoints" / "step_000001", model, tokenizer, {"step": 1})
    save_checkpoint(tmp_path / "checkpoints" / "step_000010", model, tokenizer, {"step": 10})
    assert resolve_checkpoint(tmp_path).name == "step_000010"
    assert read_config(tmp_path)["step"] == 10


def test_foreign_truncated_and_mismatched_files_raise(tmp_path, tokenizer):
    model, _ = trained_pair()
    good = save_checkpoint(tmp_path / "good", model, tokenizer, {})

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a circuits checkpoint"):
        load(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / CONFIG_FILE).write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match="not a circuits checkpoint config"):
        load(foreign)

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for child in good.iterdir():
        (truncated / child.name).write_bytes(child.read_bytes())
    data = (good / MODEL_FILE).read_bytes()
    (truncated / MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load(truncated)

    mismatched = tmp_path / "mismatched"
    mismatched.mkdir()
    for child in good.iterdir():
        (mismatched / child.name).write_bytes(child.read_bytes())
    config = json.loads((good / CONFIG_FILE).read_text())
    config["model"]["d_model"] = 13
    (mismatched / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match="shape"):
        load(mismatched)

    (mismatched / MODEL_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load(mismatched)


def test_atomic_directory_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "ckpt") as tmp:
            (tmp / "half").write_text("written")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(tmp_path / "ckpt") as tmp:
        (tmp / "whole").write_text("written")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    with pytest.raises(FileExistsError):
        with atomic_directory(tmp_path / "ckpt"):
            pass


def test_atomic_write_replaces_whole_files(tmp_path):
    atomic_write_text(tmp_path / "a.json", "old")
    atomic_write_text(tmp_path / "a.json", "new")
    assert (tmp_path / "a.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_optimizer_file_only_when_given(tmp_path, tokenizer):
    model, _ = trained_pair()
    folder = save_checkpoint(tmp_path / "ckpt", model, tokenizer, {})
    assert not (folder / OPTIMIZER_FILE).exists()
    assert Path(folder / MODEL_FILE).is_file()


def test_optimizer_state_of_a_parameter_without_gradient_stays_absent(tmp_path, tokenizer):
    """A zero-layer shortformer model never uses ``pos_embed.W_pos``: AdamW keeps no state for it, and neither does the restore."""
    model, optimizer = trained_pair(n_layers=0)
    params = dict(model.named_parameters())
    assert params["pos_embed.W_pos"] not in optimizer.state and len(optimizer.state) == len(params) - 1
    folder = save_checkpoint(tmp_path / "ckpt", model, tokenizer, {}, optimizer=optimizer)
    fresh = Transformer(model.config)
    restored = make_optimizer(fresh, tiny_train_config())
    load_optimizer_state(folder, restored, fresh)
    fresh_params = dict(fresh.named_parameters())
    assert {name for name, p in fresh_params.items() if p in restored.state} == {name for name, p in params.items() if p in optimizer.state}
    for name, param in params.items():
        if param in optimizer.state:
            assert all(torch.equal(optimizer.state[param][k], restored.state[fresh_params[name]][k]) for k in optimizer.state[param])


def test_optimizer_state_of_another_model_is_refused_and_changes_nothing(tmp_path, tokenizer):
    model, optimizer = trained_pair()
    folder = save_checkpoint(tmp_path / "ckpt", model, tokenizer, {}, optimizer=optimizer)
    other = Transformer(tiny_model_config(n_layers=1))
    other_optimizer = make_optimizer(other, tiny_train_config())
    with pytest.raises(ValueError, match="holds the optimizer of other parameters"):
        load_optimizer_state(folder, other_optimizer, other)
    assert len(other_optimizer.state) == 0
    (folder / OPTIMIZER_FILE).write_bytes(b"truncated")
    with pytest.raises(ValueError, match="not a readable"):
        load_optimizer_state(folder, make_optimizer(model, tiny_train_config()), model)
