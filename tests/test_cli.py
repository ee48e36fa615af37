"""The ``circuits`` command: train, info, presets, errors, and adding a subcommand."""

from __future__ import annotations

import json
import sys

import pytest

from circuits import PRESETS, load
from circuits.cli import COMMANDS, Command, main

from training_helpers import write_corpus


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """``circuits train`` on a small corpus: the default preset's model for 3 steps."""
    root = tmp_path_factory.mktemp("cli")
    corpus = write_corpus(root / "corpus", n_files=40)
    out = root / "run"
    code = main(["train", "--preset", "attn-only-1l", "--steps", "3", "--batch-size", "2", "--corpus", str(corpus), "--out", str(out),
                 "--cache-dir", str(root / "cache"), "--seed", "5", "--device", "cpu", "--no-progress"])
    assert code == 0
    return out


def test_train_then_info(trained_run, capsys):
    model, tokenizer = load(trained_run)
    assert model.config.n_layers == 1 and model.config.seed == 5
    capsys.readouterr()
    assert main(["info", str(trained_run)]) == 0
    text = capsys.readouterr().out
    assert "step         3 of 3 (final)" in text
    assert "losses       train " in text and "validation " in text
    assert "git " in text and "torch " in text
    assert main(["info", str(trained_run / "checkpoints" / "step_000000"), "--json"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["step"] == 0 and config["train"]["steps"] == 3 and config["train"]["seed"] == 5


def test_resume_flag_on_a_finished_run(trained_run, capsys, tmp_path):
    code = main(["train", "--preset", "attn-only-1l", "--steps", "3", "--batch-size", "2", "--corpus", str(trained_run.parent / "corpus"),
                 "--out", str(trained_run), "--cache-dir", str(trained_run.parent / "cache"), "--seed", "5", "--device", "cpu", "--no-progress", "--resume"])
    assert code == 0
    assert "step 3" in capsys.readouterr().out


def test_unknown_preset_suggests_close_names(capsys):
    assert main(["train", "--preset", "attn-only-2L", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'attn-only-2L'" in err and "attn-only-2l" in err
    assert err.startswith("circuits train: error:") and "Traceback" not in err


def test_info_on_a_folder_that_is_not_a_checkpoint(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "neither a circuits checkpoint" in capsys.readouterr().err


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out and preset.purpose in out for name, preset in PRESETS.items())


def test_no_or_unknown_subcommand_prints_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["frobnicate"])
    assert "invalid choice" in capsys.readouterr().err


def test_a_lazy_subcommand_is_imported_on_use(tmp_path, monkeypatch, capsys):
    (tmp_path / "hello_cmd.py").write_text(
        "def add_arguments(parser):\n    parser.add_argument('--name', default='world')\n\n"
        "def run(args):\n    print('hello', args.name)\n    return 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(COMMANDS, "hello", Command.lazy("hello_cmd", "say hello"))
    assert "hello_cmd" not in sys.modules
    assert main(["hello", "--name", "circuits"]) == 0
    assert capsys.readouterr().out == "hello circuits\n"
