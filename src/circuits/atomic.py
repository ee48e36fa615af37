"""Atomic writes: a file or folder appears complete under its final name, or not at all.

Each writer fills a temporary sibling (same directory, so the final ``os.replace`` is a rename on
one file system), flushes it to disk, then renames. Killing the process at any moment leaves
either the old content or the new, never a half-written file.

JSON has no NaN or infinity, so every JSON this package writes (:func:`json_text`,
:func:`json_line`, :func:`atomic_write_json`) encodes a non-finite float as ``null``: other
readers never meet a bare ``NaN``/``Infinity`` token, and a reader of ours gets ``None`` where a
value was not a number (the same rule as the experiments' cached results).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

TMP_PREFIX = ".tmp-"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def finite_json(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, +-inf) replaced by ``None``, in nested dicts, lists and tuples."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_json(value) for value in data]
    return data


def json_text(data: Any) -> str:
    """Indented, key-sorted JSON ending in a newline; non-finite floats become ``null``."""
    return json.dumps(finite_json(data), indent=2, sort_keys=True, allow_nan=False) + "\n"


def json_line(data: Any) -> str:
    """One compact JSON line (a ``.jsonl`` record, newline included); non-finite floats become ``null``."""
    return json.dumps(finite_json(data), allow_nan=False) + "\n"


def atomic_write_json(path: Path, data: Any) -> None:
    """Write :func:`json_text` of ``data`` atomically (non-finite floats as ``null``)."""
    atomic_write_text(path, json_text(data))


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it is renamed to ``path`` (which must not exist)."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; refusing to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent))
    try:
        yield tmp
        for child in tmp.iterdir():
            _fsync_file(child)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries left by a killed writer (anything named ``.tmp-*`` directly in ``folder``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for child in folder.glob(TMP_PREFIX + "*"):
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
