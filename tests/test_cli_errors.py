"""One ``circuits <command>: error: ...`` line (exit status 2) for every user or environment error; tracebacks only for bugs.

Issue 20, item 8: read-only or full file systems under ``--out``/``--cache-dir``, ``report --out``
pointing at a file (noticed only after computing everything), config.json with wrong inner
types, ``circuits info`` on a config without ``"model"`` (it said only ``error: model``), and
``load_hf`` on a truncated file or an index.json entry that leaves the folder.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest

import circuits
from circuits.cli import error_message, main
from circuits.training.checkpoint import CONFIG_FILE, FORMAT, FORMAT_VERSION

TRAIN = ["train", "--preset", "attn-only-1l", "--steps", "3", "--device", "cpu", "--no-progress"]


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"circuits {command}: error: "), err
    return err


@pytest.fixture
def no_training(monkeypatch):
    """Training or the report's experiments starting would mean the up-front checks came too late."""

    def fail(*args, **kwargs):
        raise AssertionError("work started before the output folders were checked")

    monkeypatch.setattr("circuits.training.loop.train", fail)
    monkeypatch.setattr("circuits.report.make.run_experiments", fail)


# ---- output folders ------------------------------------------------------------------------
def test_report_out_pointing_at_a_file_fails_before_any_work(tmp_path, capsys, no_training):
    page = tmp_path / "report.html"
    page.write_text("not a folder")
    runs = tmp_path / "runs"
    assert main(["report", "--quick", "--out", str(page), "--runs", str(runs), "--only", "zero_layer"]) == 2
    err = _one_error_line(capsys, "report")
    assert f"--out {page} is a file, not a folder" in err
    assert main(["report", "--quick", "--out", str(page / "sub"), "--runs", str(runs)]) == 2
    assert f"lies inside {page}, which is a file" in _one_error_line(capsys, "report")
    assert not runs.exists()


def test_report_out_on_a_file_in_a_fresh_process(tmp_path):
    (tmp_path / "figures").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "circuits", "report", "--quick", "--out", "figures", "--runs", "runs", "--only", "zero_layer"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "circuits report: error: --out figures is a file, not a folder; give a folder path (it is created if missing)\n"


def test_unwritable_out_or_runs_fails_before_any_work(tmp_path, capsys, monkeypatch, no_training):
    """A read-only file system (or no permission): ``os.access`` says no for every folder."""
    monkeypatch.setattr("circuits.cli.os.access", lambda path, mode: False)
    assert main([*TRAIN, "--out", str(tmp_path / "new" / "run")]) == 2
    err = _one_error_line(capsys, "train")
    assert f"--out {tmp_path / 'new' / 'run'} (its nearest existing parent {tmp_path}) is not writable" in err
    assert main(["report", "--quick", "--out", str(tmp_path), "--runs", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is not writable (a read-only file system or no permission)" in _one_error_line(capsys, "report")


def test_cache_dir_on_a_file_is_refused_but_a_read_only_cache_is_not_checked(tmp_path, capsys, monkeypatch, no_training):
    (tmp_path / "cache").write_text("")
    assert main([*TRAIN, "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "--cache-dir" in _one_error_line(capsys, "train")
    # a complete cache may live on a read-only disk: only writes that really fail are errors (next test)
    (tmp_path / "ro-cache").mkdir()
    monkeypatch.setattr("circuits.cli.os.access", lambda path, mode: not str(path).endswith("ro-cache"))
    with pytest.raises(AssertionError, match="work started"):
        main([*TRAIN, "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "ro-cache")])


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/cache/tokens"), "Read-only file system: /mnt/ro/cache/tokens; choose a folder on a writable"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/run/metrics.jsonl"), "Permission denied: /data/run/metrics.jsonl; choose a folder you can write to"),
        (OSError(errno.ENOSPC, "No space left on device", "/data/run/x"), "No space left on device: /data/run/x; free some space"),
        (BlockingIOError("run folder r is in use by process 123 (pid 123, see r/.lock); wait for it"), "run folder r is in use by process 123"),
        (FileExistsError("r/checkpoints/step_000000 exists"), "r/checkpoints/step_000000 exists"),
    ],
)
def test_os_errors_during_the_run_are_one_line(tmp_path, capsys, monkeypatch, error, expected):
    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr("circuits.training.loop.train", refuse)
    assert main([*TRAIN, "--out", str(tmp_path / "run")]) == 2
    assert expected in _one_error_line(capsys, "train")


def test_bugs_keep_their_traceback(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        return None.steps

    monkeypatch.setattr("circuits.training.loop.train", bug)
    with pytest.raises(AttributeError):
        main([*TRAIN, "--out", str(tmp_path / "run")])


def test_a_bare_key_error_is_spelled_out():
    assert error_message(KeyError("model")) == "missing key 'model'"
    assert error_message(KeyError("unknown preset 'x'; did you mean 'y'?")) == "unknown preset 'x'; did you mean 'y'?"


# ---- circuits info on damaged config.json ------------------------------------------------------
def _checkpoint(tmp_path, **config):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    base = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": 3, "model": {"n_layers": 1}, "train": {"steps": 3}}
    (folder / CONFIG_FILE).write_text(json.dumps({key: value for key, value in {**base, **config}.items() if value is not None}))
    return folder


def test_info_on_a_config_without_model_names_the_key_and_the_file(tmp_path, capsys):
    folder = _checkpoint(tmp_path, model=None)
    assert main(["info", str(folder)]) == 2
    err = _one_error_line(capsys, "info")
    assert f'{folder / CONFIG_FILE} has no "model" key' in err


@pytest.mark.parametrize(("change", "key"), [({"train": "x"}, '"train"'), ({"model": [1]}, '"model"'), ({"data": {"corpus": 3}}, '"data.corpus"'), ({"run": "r"}, '"run"')])
def test_info_on_a_config_with_wrong_inner_types(tmp_path, capsys, change, key):
    folder = _checkpoint(tmp_path, **change)
    assert main(["info", str(folder)]) == 2
    err = _one_error_line(capsys, "info")
    assert f"{folder / CONFIG_FILE}: {key} must be a JSON object" in err


def test_info_prints_odd_leaf_values_as_they_are(tmp_path, capsys):
    folder = _checkpoint(tmp_path, tokens_seen="many", metrics={"train_loss": "n/a?"})
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "many tokens" in out and "train 'n/a?'" in out


# ---- load_hf on damaged or escaping checkpoints -------------------------------------------------
@pytest.fixture
def hf_folder(tmp_path):
    cfg = circuits.TransformerConfig(n_layers=1, d_model=8, n_heads=2, d_vocab=17, n_ctx=6, d_mlp=12, act_fn="gelu_new")
    return circuits.export_hf(circuits.Transformer(cfg), tmp_path / "hf", architecture="gpt2")


def test_load_hf_on_a_truncated_file_raises_value_error_naming_it(hf_folder):
    weights = hf_folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"{weights} is not a readable safetensors file .* truncated"):
        circuits.load_hf(hf_folder)


def test_load_hf_on_invalid_json_names_the_file(hf_folder):
    (hf_folder / "config.json").write_text('{"architectures": [')
    with pytest.raises(ValueError, match=r"config.json is not valid JSON"):
        circuits.load_hf(hf_folder)


@pytest.mark.parametrize("escape", ["../outside/model.safetensors", "ABSOLUTE", "sub/../../outside/model.safetensors", "..\\outside\\x"])
def test_load_hf_refuses_index_entries_outside_the_folder(hf_folder, tmp_path, escape):
    outside = tmp_path / "outside"
    outside.mkdir()
    (hf_folder / "model.safetensors").rename(outside / "model.safetensors")
    shard = str(outside / "model.safetensors") if escape == "ABSOLUTE" else escape
    from safetensors import safe_open

    with safe_open(str(outside / "model.safetensors"), "pt") as handle:
        names = list(handle.keys())
    (hf_folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {name: shard for name in names}}))
    with pytest.raises(ValueError, match=r"a path outside the checkpoint folder; refusing to read it"):
        circuits.load_hf(hf_folder)


def test_load_hf_reads_shards_inside_the_folder_and_symlinked_ones(hf_folder, tmp_path):
    """Shards named relative to the folder load; a symlink to a blob elsewhere (the Hugging Face cache layout) is fine."""
    reference = circuits.load_hf(hf_folder)
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (hf_folder / "model.safetensors").rename(blobs / "abc123")
    (hf_folder / "shards").mkdir()
    (hf_folder / "shards" / "model-00001-of-00001.safetensors").symlink_to(blobs / "abc123")
    from safetensors import safe_open

    with safe_open(str(blobs / "abc123"), "pt") as handle:
        names = list(handle.keys())
    (hf_folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {name: "shards/model-00001-of-00001.safetensors" for name in names}})
    )
    loaded = circuits.load_hf(hf_folder)
    assert all((a == b).all() for a, b in zip(reference.state_dict().values(), loaded.state_dict().values()))
