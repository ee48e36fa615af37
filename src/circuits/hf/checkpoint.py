"""Reading and writing Hugging Face checkpoint folders: ``config.json`` + safetensors (no pickle).

A folder holds either ``model.safetensors`` or shards listed by ``model.safetensors.index.json``
(``{"weight_map": {tensor name: shard file}}``). ``pytorch_model.bin`` files are pickles and are
never opened. A shard must be a relative path inside the folder: an index entry that is absolute
or climbs out with ``..`` is refused (symlinked files, as in the Hugging Face cache, are fine).
Unreadable files (truncated downloads, invalid JSON) raise ``ValueError`` naming the file.

:class:`Weights` hands tensors out by name and, at the end, insists that every tensor of the
checkpoint was used (or is on the importer's list of known leftovers such as BERT's pooler), so a
checkpoint whose layout differs from what the importer expects fails loudly instead of loading
half its weights.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterable

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from circuits.atomic import atomic_write_json

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def checkpoint_folder(path: str | os.PathLike) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a folder; load_hf expects a local Hugging Face checkpoint folder holding "
            f"config.json and {SINGLE_FILE} (or {INDEX_FILE} with its shards)"
        )
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; is it a Hugging Face checkpoint folder (save_pretrained output)?")
    return folder


def read_config(folder: Path) -> dict[str, Any]:
    config = _read_json(folder / "config.json")
    if not isinstance(config, dict):
        raise ValueError(f"{folder / 'config.json'} holds {type(config).__name__}, expected a JSON object")
    return config


def read_tensors(folder: Path) -> dict[str, Tensor]:
    """Every tensor of the checkpoint by name, from one safetensors file or from shards."""
    if (folder / INDEX_FILE).is_file():
        index = _read_json(folder / INDEX_FILE)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{folder / INDEX_FILE} has no 'weight_map' {{tensor name: shard file}}")
        tensors: dict[str, Tensor] = {}
        for shard in sorted(set(weight_map.values()), key=str):
            shard_path = _shard_path(folder, shard)
            if not shard_path.is_file():
                raise FileNotFoundError(f"shard {shard} listed in {INDEX_FILE} is missing from {folder}")
            tensors.update(_load_safetensors(shard_path))
        missing = sorted(set(weight_map) - set(tensors))
        if missing:
            raise ValueError(f"{INDEX_FILE} lists tensors that no shard holds: {missing[:5]}")
        return tensors
    if (folder / SINGLE_FILE).is_file():
        return _load_safetensors(folder / SINGLE_FILE)
    pickles = [name for name in ("pytorch_model.bin", "pytorch_model.bin.index.json") if (folder / name).exists()]
    hint = (
        f"; it has {pickles[0]}, a pickle, which circuits never loads: convert it once with transformers "
        "(from_pretrained(...).save_pretrained(folder, safe_serialization=True))"
        if pickles
        else ""
    )
    raise FileNotFoundError(f"{folder} has neither {SINGLE_FILE} nor {INDEX_FILE}{hint}")


def _shard_path(folder: Path, shard: Any) -> Path:
    """``folder / shard`` for an index entry that names a file inside ``folder``; ``ValueError`` for anything else."""
    if not isinstance(shard, str) or not shard.strip():
        raise ValueError(f"{folder / INDEX_FILE}: weight_map value {shard!r} is not a shard file name")
    posix, windows = PurePosixPath(shard), PureWindowsPath(shard)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts or ".." in windows.parts:
        raise ValueError(
            f"{folder / INDEX_FILE} lists shard {shard!r}, a path outside the checkpoint folder; refusing to read it. "
            f"Shards must be files inside {folder} named relative to it (e.g. model-00001-of-00002.safetensors)"
        )
    return folder / shard


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return load_file(path)
    except SafetensorError as error:
        raise ValueError(
            f"{path} is not a readable safetensors file ({error}); it may be truncated (an interrupted download or copy): "
            "fetch or export it again"
        ) from None


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it may be truncated or not a Hugging Face file") from None


def write_checkpoint(folder: Path, config: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    """Write ``config.json`` and ``model.safetensors`` into ``folder``, each atomically (temp file + rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SINGLE_FILE
    tmp = folder / f".tmp-{SINGLE_FILE}.{os.getpid()}"
    try:
        save_file({name: t.detach().contiguous().cpu() for name, t in tensors.items()}, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_json(folder / "config.json", config)


class Weights:
    """A checkpoint's tensors, handed out once each; :meth:`finish` rejects anything left over.

    ``prefix`` is stripped from every name that has it (``"transformer."`` for GPT-2 saved with a
    head, ``"model."`` for LLaMA, ``"bert."`` for BERT saved from a task model).
    ``ignore`` are regular expressions for tensors that carry no weights of the model we build
    (causal-mask buffers, rotary caches, BERT's pooler); they are dropped with a record in
    :attr:`ignored`.
    """

    def __init__(self, tensors: dict[str, Tensor], architecture: str, prefixes: Iterable[str] = (), ignore: Iterable[str] = ()):
        self.architecture = architecture
        self._tensors: dict[str, Tensor] = {}
        for name, tensor in tensors.items():
            for prefix in prefixes:
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
            self._tensors[name] = tensor
        patterns = [re.compile(p) for p in ignore]
        self.ignored = sorted(name for name in self._tensors if any(p.fullmatch(name) for p in patterns))
        for name in self.ignored:
            del self._tensors[name]

    def __contains__(self, name: str) -> bool:
        return name in self._tensors

    def take(self, name: str, shape: tuple[int, ...] | None = None) -> Tensor:
        if name not in self._tensors:
            raise KeyError(
                f"{self.architecture} checkpoint has no tensor {name!r} (names after prefix stripping; "
                f"first present: {sorted(self._tensors)[:6]}); the checkpoint's layout is not the one this importer reads"
            )
        tensor = self._tensors.pop(name)
        if shape is not None and tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"{self.architecture} tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(shape)} from config.json")
        return tensor

    def finish(self) -> None:
        if self._tensors:
            left = sorted(self._tensors)
            raise ValueError(
                f"{self.architecture} checkpoint has {len(left)} tensors the importer does not know: {left[:8]}; "
                "they would be silently dropped, so this checkpoint is not the supported architecture"
            )
