"""Fine-tuning (circuits.training.finetune and `circuits finetune`): parent tokenizer, freezing, resume, provenance, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from circuits import load, train
from circuits.training import checkpoint as ckpt
from circuits.training.finetune import FINETUNE_LR_FACTOR, ParentTokenizerTask, finetune, finetune_config
from training_helpers import state_dicts_equal, tiny_model_config, tiny_train_config, write_corpus


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def new_text(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    for i in range(12):
        (root / f"page{i:02d}.md").write_text(f"# Page {i}\n\nSome *markdown* text, number {i}, with `code` and a [link](x).\n" * 4)
    return root


@pytest.fixture(scope="module")
def parent(tmp_path_factory, cache) -> Path:
    corpus = write_corpus(tmp_path_factory.mktemp("corpus"))
    out = tmp_path_factory.mktemp("runs") / "parent"
    train(tiny_model_config(), tiny_train_config(), out_dir=out, corpus=corpus, cache_dir=cache, progress=False, device="cpu")
    return out


def tune(parent, out, new_text, cache, **kwargs):
    kwargs.setdefault("steps", 8)
    return finetune(parent, out_dir=out, corpus=new_text, cache_dir=cache, progress=False, device="cpu", **kwargs)


def test_finetune_reads_the_new_text_with_the_parents_tokenizer(parent, new_text, cache, tmp_path):
    result = tune(parent, tmp_path / "ft", new_text, cache)
    before, tokenizer = load(parent)
    after, after_tokenizer = load(result.checkpoint)
    assert after_tokenizer.hash == tokenizer.hash
    assert not state_dicts_equal(before.state_dict(), after.state_dict())
    record = json.loads((tmp_path / "ft" / "run.json").read_text())
    parent_folder = ckpt.resolve_checkpoint(parent)
    assert record["init_from"]["path"] == str(parent_folder)
    import hashlib

    assert record["init_from"]["sha256"] == hashlib.sha256((parent_folder / ckpt.MODEL_FILE).read_bytes()).hexdigest()
    assert record["tokenizer_hash"] == tokenizer.hash
    assert record["train"]["lr"] == pytest.approx(tiny_train_config().lr * FINETUNE_LR_FACTOR)
    # step 0 of the fine-tune is the parent itself
    start, _ = load(tmp_path / "ft" / "checkpoints" / "step_000000")
    assert state_dicts_equal(start.state_dict(), before.state_dict())


def test_frozen_parameters_stay_bitwise_equal(parent, new_text, cache, tmp_path):
    result = tune(parent, tmp_path / "ft", new_text, cache, freeze=["embed.*", "blocks.0.*"], lr=0.05)
    before, _ = load(parent)
    after, _ = load(result.checkpoint)
    b, a = before.state_dict(), after.state_dict()
    frozen = [n for n in b if n.startswith(("embed.", "blocks.0."))]
    assert frozen and all(torch.equal(a[n], b[n]) for n in frozen)
    assert not torch.equal(a["blocks.1.attn.W_Q"], b["blocks.1.attn.W_Q"])


class Interrupt(Exception):
    pass


class StopAt(ParentTokenizerTask):
    stop_at: int | None = None

    def batch(self, step, train_cfg):
        if self.stop_at is not None and step == self.stop_at:
            raise Interrupt(step)
        return super().batch(step, train_cfg)


def test_resumed_finetune_is_bitwise_the_uninterrupted_one(parent, new_text, cache, tmp_path):
    _, tokenizer = load(parent)
    kwargs = dict(steps=12, progress=False, device="cpu", freeze=["embed.*"], cache_dir=cache)
    whole = finetune(parent, out_dir=tmp_path / "whole", task=StopAt(new_text, tokenizer), **kwargs)
    task = StopAt(new_text, tokenizer)
    task.stop_at = 9  # dies after the checkpoint of step 8 (checkpoints at 0, 1, 2, 3, 5, 6, 8, 9, 12 ...)
    with pytest.raises(Interrupt):
        finetune(parent, out_dir=tmp_path / "split", task=task, **kwargs)
    assert ckpt.list_checkpoints(tmp_path / "split")[-1][0] < 12
    resumed = finetune(parent, out_dir=tmp_path / "split", task=StopAt(new_text, tokenizer), resume=True, **kwargs)
    a, _ = load(whole.checkpoint)
    b, _ = load(resumed.checkpoint)
    assert state_dicts_equal(a.state_dict(), b.state_dict())
    lines = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 12


def test_finetune_is_deterministic(parent, new_text, cache, tmp_path):
    one = tune(parent, tmp_path / "one", new_text, cache, steps=4)
    two = tune(parent, tmp_path / "two", new_text, cache, steps=4)
    assert state_dicts_equal(load(one.checkpoint)[0].state_dict(), load(two.checkpoint)[0].state_dict())


def test_finetune_config_defaults():
    parent = tiny_train_config()
    cfg = finetune_config(parent, steps=100)
    assert (cfg.steps, cfg.warmup_steps, cfg.repeat_fraction, cfg.batch_size) == (100, 5, 0.0, parent.batch_size)
    assert cfg.lr == pytest.approx(parent.lr * FINETUNE_LR_FACTOR)
    assert finetune_config(parent, steps=10, lr=3e-4, batch_size=2).lr == 3e-4


# ---- bad input ----------------------------------------------------------------------------
def test_missing_parent_is_a_clear_error(new_text, tmp_path):
    with pytest.raises(FileNotFoundError, match="parent checkpoint .*does not exist"):
        finetune(tmp_path / "nowhere", out_dir=tmp_path / "ft", steps=2, corpus=new_text)
    assert not (tmp_path / "ft").exists()


def test_freeze_pattern_matching_nothing_is_a_clear_error(parent, new_text, cache, tmp_path):
    with pytest.raises(ValueError, match="freeze pattern 'blocks.7.*' matches no parameter"):
        tune(parent, tmp_path / "ft", new_text, cache, freeze=["blocks.7.*"])
    assert not (tmp_path / "ft").exists()


def test_bad_parent_type(tmp_path):
    with pytest.raises(TypeError, match="parent"):
        finetune(42, out_dir=tmp_path / "ft", steps=2)


# ---- the command and Hugging Face parents -----------------------------------------------------
def test_cli_finetune(parent, new_text, cache, tmp_path, capsys):
    from circuits.cli import main

    out = tmp_path / "cli"
    code = main(["finetune", "--from", str(parent), "--corpus", str(new_text), "--steps", "4", "--freeze", "embed.*", "--lr", "1e-3",
                 "--out", str(out), "--cache-dir", str(cache), "--device", "cpu", "--no-progress"])
    assert code == 0
    assert "fine-tuned" in capsys.readouterr().out
    record = json.loads((out / "run.json").read_text())
    assert record["freeze"] == ["embed.*"] and record["train"]["lr"] == 1e-3 and record["complete"]


@pytest.mark.parametrize("argv, message", [
    (["--from", "{tmp}/missing", "--steps", "2"], "parent checkpoint .*missing does not exist"),
    (["--from", "{parent}", "--steps", "2", "--freeze", "nothing.*"], "freeze pattern 'nothing.\\*' matches no parameter"),
])
def test_cli_errors(parent, new_text, cache, tmp_path, capsys, argv, message):
    import re

    from circuits.cli import main

    argv = [a.format(tmp=tmp_path, parent=parent) for a in argv]
    code = main(["finetune", *argv, "--corpus", str(new_text), "--out", str(tmp_path / "o"), "--cache-dir", str(cache), "--device", "cpu", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("circuits finetune: error:") and re.search(message, err), err


def test_finetune_a_hugging_face_folder(new_text, cache, tmp_path):
    from circuits import Tokenizer, Transformer, TransformerConfig, export_hf, load_hf
    from circuits.hf.finetune import finetune_path, is_hf_folder

    tokenizer = Tokenizer.train([p.read_text() for p in sorted(new_text.iterdir())], vocab_size=300)
    cfg = TransformerConfig(n_layers=1, d_model=16, n_heads=2, d_head=8, d_vocab=tokenizer.vocab_size, n_ctx=9, d_mlp=20, positional="learned", use_bias=False)
    folder = export_hf(Transformer(cfg).eval(), tmp_path / "gpt2", tokenizer=tokenizer)
    assert is_hf_folder(folder) and not is_hf_folder(tmp_path)
    result = finetune_path(folder, out_dir=tmp_path / "ft", steps=3, corpus=new_text, lr=1e-2, batch_size=2, cache_dir=cache, progress=False, device="cpu")
    record = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert record["finetune_parent"]["path"] == str(folder.resolve()) and len(record["init_from"]["sha256"]) == 64
    back = load_hf(tmp_path / "ft" / "hf")  # written back as a Hugging Face folder
    tuned, _ = load(result.checkpoint)
    assert state_dicts_equal(back.state_dict(), tuned.state_dict())
