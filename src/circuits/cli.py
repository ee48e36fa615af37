"""The ``circuits`` command (also ``python -m circuits``).

Subcommands live in :data:`COMMANDS`: name -> :class:`Command` (help line, ``add_arguments(parser)``,
``run(args) -> exit code``). To add one, define ``add_arguments`` and ``run`` in your module and
add a line ``"name": Command.lazy("circuits.your_module", "one-line help")`` to ``COMMANDS``; the
module is imported only when that subcommand runs.

User errors (bad paths, unknown presets, invalid settings, damaged files) and the environment's
refusals (``OSError``: a read-only or full file system, no permission, a run folder locked by
another process) print one ``circuits <command>: error: ...`` line and exit with status 2;
anything else is a bug and keeps its traceback. Output folders (``--out``, ``--runs``,
``--cache-dir``) are checked to be writable folders before any work starts.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    run: Callable[[argparse.Namespace], int | None] | None = None
    module: str | None = field(default=None)

    @classmethod
    def lazy(cls, module: str, help: str) -> "Command":
        """A subcommand whose ``add_arguments``/``run`` are functions of ``module``, imported on use."""
        return cls(help=help, module=module)

    def resolve(self) -> tuple[Callable, Callable]:
        if self.module is None:
            return self.add_arguments, self.run
        module = importlib.import_module(self.module)
        return module.add_arguments, module.run


# ---- train --------------------------------------------------------------------------------
def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="attn-only-2l", help="preset name (default attn-only-2l; `circuits presets` lists them)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    parser.add_argument("--batch-size", type=int, help="global batch in windows (default: the preset's)")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    parser.add_argument("--seed", type=int, help="seed for both the initialisation and the batches (default: the preset's)")
    parser.add_argument("--corpus", help="folder, glob or text file to train on (default: the Python standard library)")
    parser.add_argument("--out", help="run folder (default: runs/<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda; bfloat16 autocast on GPU")
    parser.add_argument("--cache-dir", help="tokenizer and token cache (default: $CIRCUITS_CACHE or ~/.cache/circuits)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _train_run(args: argparse.Namespace) -> int:
    from circuits.training.presets import get_preset
    from circuits.training.loop import train

    preset = get_preset(args.preset)
    model_cfg, train_cfg = preset.model, preset.train
    changes = {key: value for key, value in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr), ("seed", args.seed)) if value is not None}
    if "steps" in changes and train_cfg.warmup_steps > changes["steps"]:
        changes["warmup_steps"] = changes["steps"] // 20
    train_cfg = train_cfg.replace(**changes)
    if args.seed is not None:
        model_cfg = model_cfg.replace(seed=args.seed)
    out = Path(args.out) if args.out else Path("runs") / preset.name
    check_writable_folder(out, "--out")
    result = train(
        model_cfg,
        train_cfg,
        out_dir=out,
        corpus=args.corpus,
        resume=args.resume,
        device=args.device,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        print(
            f"trained {preset.name}: step {result.step}, train loss {_fmt(result.train_loss)}, val loss {_fmt(result.val_loss)}, "
            f"{result.tokens_per_s:,.0f} tokens/s, {result.elapsed_s:.1f} s; checkpoint {result.checkpoint}"
        )
    return 0


# ---- info ---------------------------------------------------------------------------------
def _info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a checkpoint folder, or a run folder (its newest checkpoint)")
    parser.add_argument("--json", action="store_true", help="print config.json as JSON")


def _info_run(args: argparse.Namespace) -> int:
    from circuits.training.checkpoint import list_checkpoints, read_config, resolve_checkpoint

    folder = resolve_checkpoint(args.path)
    config = read_config(folder)
    if args.json:
        print(json.dumps(config, indent=2, sort_keys=True))
        return 0
    _check_info_config(config, folder / "config.json")
    model, train, metrics = config["model"], config.get("train", {}), config.get("metrics", {})
    data, prov = config.get("data", {}), config.get("provenance", {})
    corpus = data.get("corpus", {})
    lines = [
        f"checkpoint   {folder}",
        f"step         {config.get('step')} of {train.get('steps')}{' (final)' if config.get('final') else ''}, {_count(config.get('tokens_seen', 0))} tokens",
        f"losses       train {_fmt(metrics.get('train_loss'))}, validation {_fmt(metrics.get('val_loss'))}",
        "model        " + ", ".join(f"{key}={value}" for key, value in sorted(model.items())),
        "training     " + ", ".join(f"{key}={value}" for key, value in sorted(train.items())),
        f"corpus       {corpus.get('source')} ({corpus.get('n_files')} files, {_count(corpus.get('n_bytes', 0))} bytes, fingerprint {str(corpus.get('fingerprint'))[:16]})",
        f"split        {data.get('split', {}).get('method')}: {_count(data.get('n_train_tokens', 0))} training / {_count(data.get('n_val_tokens', 0))} validation tokens",
        f"tokenizer    {data.get('tokenizer_vocab_size')} tokens, hash {str(data.get('tokenizer_hash'))[:16]}",
        f"provenance   circuits {prov.get('circuits')}, torch {prov.get('torch')}, python {prov.get('python')}, "
        f"git {str(prov.get('git_commit'))[:12]}{' (dirty)' if prov.get('git_dirty') else ''}, {prov.get('created')}",
        f"run          {config.get('run', {}).get('device')}, {config.get('run', {}).get('world_size')} process(es), {config.get('run', {}).get('elapsed_s')} s",
    ]
    run_dir = folder.parent.parent
    checkpoints = list_checkpoints(run_dir)
    if checkpoints and folder.parent.name == "checkpoints":
        steps = [step for step, _ in checkpoints]
        lines.append(f"checkpoints  {len(steps)} in {run_dir}: steps {steps[0]} .. {steps[-1]}")
    print("\n".join(lines))
    return 0


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


#: Sections of a checkpoint's config.json that ``circuits info`` reads, as (path of keys); each must be a JSON object.
_INFO_SECTIONS = (("model",), ("train",), ("metrics",), ("data",), ("data", "corpus"), ("data", "split"), ("provenance",), ("run",))


def _check_info_config(config: dict, path: Path) -> None:
    """``ValueError`` naming the key and the file when ``config`` lacks ``"model"`` or a section is not a JSON object."""
    if "model" not in config:
        raise ValueError(
            f'{path} has no "model" key (the model settings every circuits checkpoint records); '
            "the file is incomplete or hand-edited: restore it, or point at a checkpoint written by `circuits train`"
        )
    for keys in _INFO_SECTIONS:
        value: object = config
        for key in keys:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        if not isinstance(value, dict):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise ValueError(
                f'{path}: "{".".join(keys)}" must be a JSON object, got {type(value).__name__} {shown}; '
                "the file is damaged or hand-edited: restore it, or point at a checkpoint written by `circuits train`"
            )


# ---- presets ------------------------------------------------------------------------------
def _presets_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _presets_run(args: argparse.Namespace) -> int:
    from circuits.training.presets import PRESETS

    width = max(len(name) for name in PRESETS)
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.purpose}")
    return 0


COMMANDS: dict[str, Command] = {
    "train": Command("train a preset on the embedded corpus (or --corpus) and write checkpoints", _train_arguments, _train_run),
    "info": Command("print a checkpoint's config, step, losses and provenance", _info_arguments, _info_run),
    "presets": Command("list the presets and their purposes", _presets_arguments, _presets_run),
    "report": Command.lazy("circuits.report", "train what is needed, run the experiments and write figures/report.html"),
    "explore": Command.lazy("circuits.views.explore", "serve a page on 127.0.0.1 to look at a checkpoint's tokens, loss, attention, logit lens and attribution"),
    "finetune": Command.lazy("circuits.hf.finetune", "fine-tune a checkpoint or Hugging Face folder (--from) on --corpus, optionally freezing parameters"),
}


# ---- errors and output folders -------------------------------------------------------------------
#: Arguments naming folders a command writes into, checked up front by :func:`main`: (attribute, flag,
#: must be writable). A cache may be a complete read-only one, so only its being a folder is checked.
OUTPUT_FOLDERS = (("out", "--out", True), ("runs", "--runs", True), ("cache_dir", "--cache-dir", False))

#: Exceptions that are the user's or the environment's doing: one ``error:`` line, exit status 2.
USER_ERRORS = (ValueError, KeyError, TypeError, OSError)


def check_writable_folder(path: str | os.PathLike, flag: str, writable: bool = True) -> None:
    """``ValueError`` unless ``path`` is a folder this process can write into, or one it can create.

    Checked before any work, so a bad ``--out`` fails in a second, not after the computation.
    ``writable=False`` checks only that ``path`` is (or can become) a folder, not a file.
    """
    path = Path(path)
    probe = path
    while not probe.exists() and probe.parent != probe:  # the nearest existing folder, where mkdir would start
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"lies inside {probe}, which is a file"
        raise ValueError(f"{flag} {path} {where}, not a folder; give a folder path (it is created if missing)")
    if writable and not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == path else f" (its nearest existing parent {probe})"
        raise ValueError(
            f"{flag} {path}{where} is not writable (a read-only file system or no permission); choose a folder you can write to"
        )


def error_message(error: BaseException) -> str:
    """The one line printed for a user error: the message, a bare ``KeyError`` key spelled out, an ``OSError`` with its path."""
    if isinstance(error, KeyError):
        key = error.args[0] if error.args else None
        return key if isinstance(key, str) and " " in key else f"missing key {key!r}"
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        target = f"{error.filename}" + (f" -> {error.filename2}" if error.filename2 is not None else "")
        hint = {
            errno.EACCES: "; choose a folder you can write to (--out, --runs, --cache-dir)",
            errno.EPERM: "; choose a folder you can write to (--out, --runs, --cache-dir)",
            errno.EROFS: "; choose a folder on a writable file system (--out, --runs, --cache-dir)",
            errno.ENOSPC: "; free some space or choose a folder on another disk",
        }.get(error.errno, "")
        return f"{error.strerror}: {target}{hint}"
    return str(error)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="circuits", description="A mechanistic interpretability workbench.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.help, description=command.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Only the chosen subcommand's module is imported: parse its name first, then its arguments.
    if argv and argv[0] in COMMANDS:
        command = COMMANDS[argv[0]]
        add_arguments, run = command.resolve()
        sub = argparse.ArgumentParser(prog=f"circuits {argv[0]}", description=command.help)
        add_arguments(sub)
        args = sub.parse_args(argv[1:])
        try:
            for name, flag, writable in OUTPUT_FOLDERS:
                if getattr(args, name, None):
                    check_writable_folder(getattr(args, name), flag, writable)
            code = run(args)
        except USER_ERRORS as error:
            print(f"circuits {argv[0]}: error: {error_message(error)}", file=sys.stderr)
            return 2
        return int(code or 0)
    parser.parse_args(argv)  # prints usage / help, exits
    return 2
