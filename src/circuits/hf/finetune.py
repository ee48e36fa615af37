"""Fine-tune a checkpoint of ours *or* a Hugging Face folder: :func:`finetune_path` and the ``circuits finetune`` command.

A folder is a Hugging Face checkpoint when its ``config.json`` is not a circuits checkpoint
config (no ``"format": "circuits-checkpoint"``) and there is no ``run.json``; it is loaded with
:func:`circuits.load_hf` and fine-tuned from its weights with its own tokenizer (the folder's path
and the SHA-256 of its weights go into ``run.json``). Its unembedding bias, a zero placeholder for
architectures without one, is frozen. After the run, a GPT-2 or LLaMA parent is also written back
as a Hugging Face folder (``OUT/hf``, :func:`circuits.export_hf`).

    circuits finetune --from runs/attn-only-2l --corpus 'docs/**/*.md' --steps 500 [--freeze 'embed.*' ...] [--lr 6e-4] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from circuits.hf import export_hf, load_hf
from circuits.training import checkpoint as ckpt
from circuits.training.finetune import finetune
from circuits.training.loop import TrainResult

__all__ = ["is_hf_folder", "finetune_path", "add_arguments", "run"]


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Hugging Face checkpoint folder (a ``config.json`` that is not ours, no ``run.json``)."""
    folder = Path(path)
    config = folder / "config.json"
    if not config.is_file() or (folder / ckpt.RUN_FILE).is_file():
        return False
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") != ckpt.FORMAT and ("architectures" in data or "model_type" in data)


def finetune_path(path: str | os.PathLike, *, out_dir: str | os.PathLike, steps: int, **kwargs: Any) -> TrainResult:
    """:func:`circuits.training.finetune.finetune` from a checkpoint/run folder of ours or a Hugging Face folder (see the module docstring)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"finetune: the parent checkpoint {path} does not exist; give a checkpoint or run folder, or a Hugging Face folder")
    if not is_hf_folder(path):
        return finetune(path, out_dir=out_dir, steps=steps, **kwargs)
    model = load_hf(path)
    b_U = getattr(model.unembed, "b_U", None)
    if b_U is not None and not b_U.any():  # a placeholder: GPT-2 and LLaMA have no unembedding bias, so it stays 0 (and exportable)
        kwargs["freeze"] = tuple(kwargs.get("freeze", ())) + ("unembed.b_U",)
    result = finetune(model, out_dir=out_dir, steps=steps, parent_path=Path(path).resolve(), **kwargs)
    if model.config.mask == "causal":
        tuned = type(model)(model.config)
        ckpt.load_weights(tuned, result.checkpoint)
        export_hf(tuned.eval(), Path(out_dir) / "hf", tokenizer=model.tokenizer, overwrite=True)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="parent", required=True, help="parent: a checkpoint or run folder of ours, or a Hugging Face folder")
    parser.add_argument("--corpus", help="folder, glob or text file to fine-tune on (default: the Python standard library)")
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps")
    parser.add_argument("--freeze", nargs="+", default=[], metavar="PATTERN", help="fnmatch patterns of parameters to keep fixed, e.g. 'embed.*' 'blocks.0.*'")
    parser.add_argument("--lr", type=float, help="peak learning rate (default: a tenth of the parent's)")
    parser.add_argument("--batch-size", type=int, help="windows per step (default: the parent's)")
    parser.add_argument("--seed", type=int, help="seed of the batches (default: the parent's)")
    parser.add_argument("--out", help="run folder (default: runs/finetune-<parent folder name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--cache-dir", help="token cache (default: $CIRCUITS_CACHE or ~/.cache/circuits)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path("runs") / f"finetune-{Path(args.parent).resolve().name}"
    result = finetune_path(
        args.parent, out_dir=out, steps=args.steps, corpus=args.corpus, freeze=args.freeze, lr=args.lr, batch_size=args.batch_size,
        seed=args.seed, resume=args.resume, device=args.device, cache_dir=args.cache_dir, progress=not args.no_progress,
    )
    record = json.loads((out / ckpt.RUN_FILE).read_text(encoding="utf-8"))
    parent = record.get("init_from", {})
    print(
        f"fine-tuned {args.parent}: step {result.step}, val loss {result.val_loss:.4g}, {result.tokens_per_s:,.0f} tokens/s, "
        f"{result.elapsed_s:.1f} s; checkpoint {result.checkpoint}; parent sha256 {str(parent.get('sha256'))[:12]}"
        + (f"; Hugging Face folder {out / 'hf'}" if (out / "hf").is_dir() else "")
    )
    return 0
