"""Corpus discovery, train/validation split, tokenizer and token caches, and training batches.

The default corpus is the Python standard library that ships with the running interpreter
(``sysconfig.get_paths()["stdlib"]``): every ``*.py`` file outside test folders and
``site-packages``, in sorted order (about 12 MB of real text). Any folder, glob or single text
file can be given instead.

Split: each file goes to validation when the hash of its relative path falls below
``val_fraction`` (deterministic, recorded with the dataset). A corpus too small for that to put
files on both sides (a single file, a handful of files) is split inside each file instead: the
last ``val_fraction`` of every file, cut at a line break, is validation.

Caches (under :func:`default_cache_dir`, keyed by content so that they never go stale):
``tokenizers/<corpus fingerprint>-v<vocab>.json`` and ``tokens/<key>/{train,val}.bin`` (flat
uint16/uint32 token streams read back as numpy memmaps, each document preceded by ``BOS``),
keyed by (corpus fingerprint, tokenizer hash, split).
"""

from __future__ import annotations

import glob as globlib
import hashlib
import json
import math
import os
import shutil
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from collections.abc import Callable

import numpy as np
import torch
from jaxtyping import Int
from torch import Tensor

from circuits.atomic import TMP_PREFIX, atomic_write_text
from circuits.training.tokenizer import Tokenizer

STDLIB = "stdlib"
#: Folders skipped in the standard library (tests are not "real" library text; site-packages is not the stdlib).
STDLIB_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$CIRCUITS_CACHE`` if set, else ``$XDG_CACHE_HOME/circuits``, else ``~/.cache/circuits``."""
    if os.environ.get("CIRCUITS_CACHE"):
        return Path(os.environ["CIRCUITS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "circuits"


# ---- corpus -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Corpus:
    """A sorted list of UTF-8 text files under ``root``, identified by a content fingerprint."""

    source: str  # "stdlib", or the path / glob the user gave
    root: Path
    files: tuple[str, ...]  # relative paths (POSIX separators), sorted
    n_bytes: int
    fingerprint: str  # SHA-256 over (relative path, content) of every file

    def read(self, relpath: str) -> str:
        return _read_text(self.root / relpath)

    def texts(self) -> Iterator[str]:
        for relpath in self.files:
            yield self.read(relpath)

    def describe(self) -> dict:
        """What a checkpoint records about its data."""
        return {
            "source": self.source,
            "root": str(self.root),
            "n_files": len(self.files),
            "n_bytes": self.n_bytes,
            "fingerprint": self.fingerprint,
        }


def find_corpus(spec: str | os.PathLike | None = None) -> Corpus:
    """The corpus named by ``spec``: ``None``/``"stdlib"``, a folder, a glob (``dir/**/*.txt``) or one file.

    Raises ``ValueError`` for nothing found, no files, empty text, unreadable or non-UTF-8 files.
    """
    if spec is None or str(spec) == STDLIB:
        root = Path(sysconfig.get_paths()["stdlib"])
        files = sorted(
            path.relative_to(root).as_posix()
            for path in root.rglob("*.py")
            if not STDLIB_EXCLUDED_DIRS.intersection(path.relative_to(root).parts[:-1]) and path.is_file()
        )
        source = STDLIB
    else:
        source = str(spec)
        path = Path(spec).expanduser()
        if path.is_dir():
            root = path
            files = sorted(
                child.relative_to(root).as_posix()
                for child in root.rglob("*")
                if child.is_file() and not _hidden(child.relative_to(root).parts)
            )
        elif path.is_file():
            root, files = path.parent, [path.name]
        elif any(char in source for char in "*?["):
            matches = [Path(match) for match in globlib.glob(os.path.expanduser(source), recursive=True)]
            matches = [match.resolve() for match in matches if match.is_file()]
            if not matches:
                raise ValueError(f"corpus glob {source!r} matches no files; check the pattern (use ** for sub-folders)")
            root = Path(os.path.commonpath([match.parent for match in matches]))
            files = sorted(match.relative_to(root).as_posix() for match in matches)
        else:
            raise ValueError(f"corpus {source!r} is not a file, folder or glob that exists; give a path to text, or omit it for the stdlib")
    if not files:
        raise ValueError(f"corpus {source!r} ({root}) holds no files; point --corpus at a folder, glob or file with text")
    digest = hashlib.sha256()
    n_bytes = 0
    for relpath in files:
        data = _read_bytes(root / relpath)
        _decode(data, root / relpath)
        n_bytes += len(data)
        digest.update(f"{relpath}\0{len(data)}\0".encode())
        digest.update(data)
    if n_bytes == 0:
        raise ValueError(f"corpus {source!r} is empty: its {len(files)} file(s) hold no text; give a corpus with text in it")
    return Corpus(source=source, root=root.resolve(), files=tuple(files), n_bytes=n_bytes, fingerprint=digest.hexdigest())


def _hidden(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in parts)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read corpus file {path} ({error.strerror or error}); fix its permissions or leave it out of the corpus") from None


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"corpus file {path} is not UTF-8 text (bad byte at offset {error.start}); "
            "leave binary files out, e.g. with a glob such as 'DIR/**/*.txt'"
        ) from None


def _read_text(path: Path) -> str:
    return _decode(_read_bytes(path), path)


# ---- split --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """Which text is training and which validation; ``method`` is ``"by-file"`` or ``"file-tail"``."""

    method: str
    val_fraction: float
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]

    def describe(self) -> dict:
        return {
            "method": self.method,
            "val_fraction": self.val_fraction,
            "n_train_files": len(self.train_files),
            "n_val_files": len(self.val_files),
            "val_files_sha256": hashlib.sha256("\n".join(self.val_files).encode()).hexdigest(),
        }


def split_corpus(corpus: Corpus, val_fraction: float) -> Split:
    """Deterministic split by the hash of each relative path (see the module docstring for small corpora)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction} must be strictly between 0 and 1 (e.g. 0.05)")
    val = tuple(relpath for relpath in corpus.files if _unit_hash(relpath) < val_fraction)
    train = tuple(relpath for relpath in corpus.files if _unit_hash(relpath) >= val_fraction)
    if val and train:
        return Split("by-file", val_fraction, train, val)
    return Split("file-tail", val_fraction, corpus.files, corpus.files)


def split_texts(corpus: Corpus, split: Split) -> tuple[list[str], list[str]]:
    """The training and validation documents of ``corpus`` under ``split``."""
    if split.method == "by-file":
        return [corpus.read(f) for f in split.train_files], [corpus.read(f) for f in split.val_files]
    train, val = [], []
    for text in corpus.texts():
        cut = _tail_cut(text, split.val_fraction)
        train.append(text[:cut])
        val.append(text[cut:])
    return train, val


def _tail_cut(text: str, val_fraction: float) -> int:
    cut = int(len(text) * (1 - val_fraction))
    newline = text.rfind("\n", 0, cut)
    return newline + 1 if newline > 0 else cut


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


# ---- tokenizer and token caches -----------------------------------------------------------
def get_tokenizer(
    corpus: Corpus, vocab_size: int, *, val_fraction: float = 0.05, max_train_chars: int | None = None, cache_dir: Path | None = None
) -> Tokenizer:
    """The BPE for ``corpus``, trained on its training split (at most ``max_train_chars`` characters, taken
    from evenly spaced files) and cached by content."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    split = split_corpus(corpus, val_fraction)
    key = _key(corpus.fingerprint, json.dumps(split.describe(), sort_keys=True), vocab_size, max_train_chars)
    path = cache_dir / "tokenizers" / f"{key}-v{vocab_size}.json"
    if path.is_file():
        try:
            return Tokenizer.load(path)
        except ValueError:
            path.unlink(missing_ok=True)  # a corrupt cache entry is rebuilt
    train_texts, _ = split_texts(corpus, split)
    tokenizer = Tokenizer.train(_subset(train_texts, max_train_chars), vocab_size)
    tokenizer.save(path)
    return tokenizer


def _subset(texts: list[str], max_chars: int | None) -> list[str]:
    """Every k-th document, k chosen so that about ``max_chars`` characters remain (all of them if fewer)."""
    total = sum(len(text) for text in texts)
    if max_chars is None or total <= max_chars:
        return texts
    return texts[:: math.ceil(total / max_chars)]


@dataclass(frozen=True)
class TokenData:
    """Training and validation token streams (numpy memmaps) of one corpus under one tokenizer."""

    train: np.ndarray
    val: np.ndarray
    bos_id: int
    path: Path
    meta: dict


def get_tokens(
    corpus: Corpus, tokenizer: Tokenizer, *, val_fraction: float = 0.05, cache_dir: Path | None = None, batch_docs: int = 256
) -> TokenData:
    """Encode ``corpus`` with ``tokenizer`` (parallel batch encoder), cached on disk; a second call reuses the cache."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    split = split_corpus(corpus, val_fraction)
    key = _key(corpus.fingerprint, tokenizer.hash, json.dumps(split.describe(), sort_keys=True), CACHE_FORMAT)
    folder = cache_dir / "tokens" / key
    if not (folder / "meta.json").is_file():
        _build_token_cache(folder, corpus, split, tokenizer, batch_docs)
    meta = json.loads((folder / "meta.json").read_text())
    dtype = np.dtype(meta["dtype"])
    arrays = {}
    for name in ("train", "val"):
        expected = meta[f"n_{name}_tokens"]
        size = (folder / f"{name}.bin").stat().st_size
        if size != expected * dtype.itemsize:
            raise ValueError(f"token cache {folder} is damaged ({name}.bin has {size} bytes, expected {expected * dtype.itemsize}); delete the folder to rebuild it")
        arrays[name] = np.memmap(folder / f"{name}.bin", dtype=dtype, mode="r", shape=(expected,))
    return TokenData(train=arrays["train"], val=arrays["val"], bos_id=tokenizer.bos_id, path=folder, meta=meta)


def _build_token_cache(folder: Path, corpus: Corpus, split: Split, tokenizer: Tokenizer, batch_docs: int) -> None:
    dtype = np.dtype(np.uint16 if tokenizer.vocab_size <= 2**16 else np.uint32)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + folder.name + ".", dir=folder.parent))
    try:
        train_texts, val_texts = split_texts(corpus, split)
        counts = {}
        for name, texts in (("train", train_texts), ("val", val_texts)):
            n = 0
            with open(tmp / f"{name}.bin", "wb") as handle:
                for start in range(0, len(texts), batch_docs):
                    for ids in tokenizer.encode_batch(texts[start : start + batch_docs], bos=True):
                        np.asarray(ids, dtype=dtype).tofile(handle)
                        n += len(ids)
                handle.flush()
                os.fsync(handle.fileno())
            counts[f"n_{name}_tokens"] = n
        meta = {
            "format": CACHE_FORMAT,
            "dtype": dtype.name,
            "corpus": corpus.describe(),
            "split": split.describe(),
            "tokenizer_hash": tokenizer.hash,
            "vocab_size": tokenizer.vocab_size,
            "bos_id": tokenizer.bos_id,
            **counts,
        }
        atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2, sort_keys=True))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # another process won the race only if it finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _key(*parts: object) -> str:
    return hashlib.sha256("\0".join(str(part) for part in parts).encode()).hexdigest()[:20]


# ---- batches ------------------------------------------------------------------------------
def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator that draws step ``step``'s batch: a pure function of ``(seed, step)``, so resuming needs no RNG state."""
    mixed = int.from_bytes(hashlib.sha256(f"circuits-batch:{seed}:{step}".encode()).digest()[:8], "big") >> 1
    return torch.Generator().manual_seed(mixed)


def check_stream(stream: np.ndarray, n_ctx: int, name: str) -> None:
    if len(stream) < n_ctx:
        raise ValueError(
            f"n_ctx={n_ctx} is larger than the data: the {name} split has only {len(stream)} tokens; "
            f"use a larger corpus or a smaller n_ctx (at most {max(len(stream), 2)})"
        )


def sample_windows(
    stream: np.ndarray, n_ctx: int, batch_size: int, generator: torch.Generator, bos_id: int, repeat_fraction: float = 0.0,
    *, spans: "Callable[[int, int, torch.Generator], Tensor] | None" = None,
) -> Int[Tensor, "batch pos"]:
    """``batch_size`` random windows: ``BOS`` then ``n_ctx - 1`` consecutive tokens of ``stream``.

    With ``repeat_fraction > 0`` the first ``round(repeat_fraction * batch_size)`` windows each
    get a *copied span* of their own text: ``window[a:a+L]`` is copied over ``window[b:b+L]``,
    with ``1 <= a``, ``a + L <= b`` and ``b + L <= n_ctx``, and ``a``, ``L``, ``b`` drawn per
    window from ``generator`` (:func:`copy_spans`). Both the source and the copy start at random
    offsets after natural text, so the layout is not that of ``[BOS] + R + R`` probes (whose first
    copy starts right after ``BOS``), and the copy's distance varies, so a positional "look back
    k tokens" head cannot predict it; only an in-context mechanism that matches content (an
    induction head) can. Everything outside ``window[b:b+L]`` is the corpus's own text.
    Deterministic per generator state, i.e. per ``(seed, step)`` with :func:`step_generator`.
    ``spans`` draws the ``(a, L, b)`` rows (default :func:`copy_spans`; the synthetic-data
    experiment passes :func:`copy_spans_from_start`, its stated layout).
    """
    check_stream(stream, n_ctx, "training")
    starts = torch.randint(0, len(stream) - (n_ctx - 1) + 1, (batch_size,), generator=generator).numpy()
    windows = _windows(stream, starts, n_ctx, bos_id)
    n_repeat = round(repeat_fraction * batch_size)
    if n_repeat:
        for row, (a, length, b) in enumerate((spans or copy_spans)(n_repeat, n_ctx, generator).tolist()):
            windows[row, b : b + length] = windows[row, a : a + length]
    return windows


def copy_spans(n_rows: int, n_ctx: int, generator: torch.Generator) -> Int[Tensor, "row 3"]:
    """``(a, L, b)`` per row: copy ``window[a:a+L]`` to ``window[b:b+L]`` (window positions, ``BOS`` at 0).

    ``L`` is uniform between a sixteenth (at least 2) and a third of the window's ``n_ctx - 1``
    text tokens; the source start ``a`` is uniform in ``[1, n_ctx - 2L]``; the copy start ``b`` is
    uniform in ``[a + L, n_ctx - L]`` (the copy follows its source without overlapping it and ends
    inside the window). A window too short for a span of 2 gets none (an empty result).
    """
    n_body = n_ctx - 1
    lo, hi = max(2, n_body // 16), n_body // 3
    if n_rows <= 0 or hi < lo:
        return torch.zeros((0, 3), dtype=torch.long)
    lengths = torch.randint(lo, hi + 1, (n_rows,), generator=generator)
    u = torch.rand(n_rows, 2, generator=generator, dtype=torch.float64)
    a = 1 + (u[:, 0] * (n_ctx - 2 * lengths)).long()  # n_ctx - 2L choices: 1 .. n_ctx - 2L
    b = a + lengths + (u[:, 1] * (n_ctx - 2 * lengths - a + 1)).long()  # a + L .. n_ctx - L
    return torch.stack([a, lengths, b], dim=1)


def copy_spans_from_start(n_rows: int, n_ctx: int, generator: torch.Generator) -> Int[Tensor, "row 3"]:
    """``(a, L, b)`` per row with the source at the window's start: ``a = 1`` (right after ``BOS``).

    The layout the corpus presets used before copied spans moved to random offsets, kept for the
    synthetic-data experiment, whose windows are random tokens: ``L`` is uniform between a
    sixteenth (at least 2) and a third of the ``n_ctx - 1`` text tokens, and the copy starts
    ``L .. n_ctx - 1 - L`` tokens after the source (drawn as ``float32``, so the draws are those of
    the earlier code, bitwise). On random tokens a 2L model forms its induction circuit with this
    layout and not, within 3000 steps, with :func:`copy_spans` (README, "induction_synthetic").
    """
    n_body = n_ctx - 1
    lo, hi = max(2, n_body // 16), n_body // 3
    if n_rows <= 0 or hi < lo:
        return torch.zeros((0, 3), dtype=torch.long)
    lengths = torch.randint(lo, hi + 1, (n_rows,), generator=generator)
    offsets = torch.rand(n_rows, generator=generator)
    rows = [(1, length, 1 + length + int(offset * (n_body - 2 * length + 1))) for length, offset in zip(lengths.tolist(), offsets.tolist())]
    return torch.tensor(rows, dtype=torch.long)


def eval_windows(stream: np.ndarray, n_ctx: int, n_windows: int, bos_id: int) -> Int[Tensor, "batch pos"]:
    """A fixed evaluation set: up to ``n_windows`` evenly spaced, non-overlapping windows (``BOS`` first)."""
    check_stream(stream, n_ctx, "validation")
    body = n_ctx - 1
    n = max(1, min(n_windows, len(stream) // body))
    starts = np.linspace(0, len(stream) - body, n).astype(np.int64)
    return _windows(stream, starts, n_ctx, bos_id)


def _windows(stream: np.ndarray, starts: np.ndarray, n_ctx: int, bos_id: int) -> Tensor:
    index = starts[:, None] + np.arange(n_ctx - 1)[None, :]
    body = torch.from_numpy(np.asarray(stream[index], dtype=np.int64))
    bos = torch.full((len(starts), 1), bos_id, dtype=torch.long)
    return torch.cat([bos, body], dim=1)
