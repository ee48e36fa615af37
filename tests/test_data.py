"""Corpus discovery, the split, the tokenizer and token caches, and training windows."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from circuits import Tokenizer
from circuits.training.data import (
    STDLIB_EXCLUDED_DIRS,
    check_stream,
    copy_spans,
    eval_windows,
    find_corpus,
    get_tokenizer,
    get_tokens,
    sample_windows,
    split_corpus,
    split_texts,
    step_generator,
)

from training_helpers import write_corpus


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus")


def test_folder_corpus_is_sorted_and_skips_hidden_files(corpus_dir):
    (corpus_dir / ".hidden.py").write_text("secret = 1\n")
    (corpus_dir / "__pycache__").mkdir()
    (corpus_dir / "__pycache__" / "x.py").write_text("cached = 1\n")
    corpus = find_corpus(corpus_dir)
    assert list(corpus.files) == sorted(corpus.files)
    assert len(corpus.files) == 24
    assert not any(".hidden" in f or "__pycache__" in f for f in corpus.files)
    assert corpus.n_bytes == sum((corpus_dir / f).stat().st_size for f in corpus.files)


def test_fingerprint_follows_content(corpus_dir):
    before = find_corpus(corpus_dir).fingerprint
    assert find_corpus(corpus_dir).fingerprint == before
    (corpus_dir / "pkg0" / "mod00.py").write_text("changed = True\n")
    assert find_corpus(corpus_dir).fingerprint != before


def test_glob_and_single_file(corpus_dir):
    by_glob = find_corpus(str(corpus_dir / "pkg1" / "*.py"))
    assert len(by_glob.files) == 8 and all(f.startswith("mod") for f in by_glob.files)
    single = find_corpus(corpus_dir / "pkg0" / "mod00.py")
    assert single.files == ("mod00.py",)


def test_stdlib_corpus_excludes_tests_and_site_packages():
    corpus = find_corpus()
    root = Path(sysconfig.get_paths()["stdlib"])
    assert corpus.root == root.resolve() and corpus.source == "stdlib"
    assert len(corpus.files) > 300 and corpus.n_bytes > 5_000_000
    assert all(f.endswith(".py") for f in corpus.files)
    assert not any(STDLIB_EXCLUDED_DIRS.intersection(f.split("/")[:-1]) for f in corpus.files)
    assert "os.py" in corpus.files and "json/decoder.py" in corpus.files


@pytest.mark.parametrize("kind", ["missing", "empty-folder", "empty-files", "binary", "no-glob-match"])
def test_bad_corpora_raise_clear_errors(tmp_path, kind):
    if kind == "missing":
        spec, match = tmp_path / "nope", "not a file, folder or glob"
    elif kind == "empty-folder":
        (tmp_path / "empty").mkdir()
        spec, match = tmp_path / "empty", "holds no files"
    elif kind == "empty-files":
        (tmp_path / "blank").mkdir()
        (tmp_path / "blank" / "a.txt").write_text("")
        spec, match = tmp_path / "blank", "empty"
    elif kind == "binary":
        write_corpus(tmp_path / "mixed", 2)
        (tmp_path / "mixed" / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
        spec, match = tmp_path / "mixed", r"image\.png is not UTF-8"
    else:
        spec, match = str(tmp_path / "*.nothing"), "matches no files"
    with pytest.raises(ValueError, match=match):
        find_corpus(spec)


def test_unreadable_file_is_named(corpus_dir, monkeypatch):
    original = Path.read_bytes

    def read_bytes(self):
        if self.name == "mod03.py":
            raise PermissionError(13, "Permission denied")
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(ValueError, match=r"cannot read corpus file .*mod03\.py.*Permission denied"):
        find_corpus(corpus_dir)


def test_split_by_file_is_deterministic_and_disjoint(corpus_dir):
    corpus = find_corpus(corpus_dir)
    split = split_corpus(corpus, 0.25)
    assert split.method == "by-file"
    assert split == split_corpus(corpus, 0.25)
    assert set(split.train_files).isdisjoint(split.val_files)
    assert set(split.train_files) | set(split.val_files) == set(corpus.files)
    # the split of a file depends on its path only, not on the other files
    smaller = find_corpus(str(corpus_dir / "pkg0" / "*.py"))
    assert split_corpus(smaller, 0.25).method in ("by-file", "file-tail")


def test_single_file_is_split_inside_the_file(corpus_dir):
    corpus = find_corpus(corpus_dir / "pkg0" / "mod00.py")
    split = split_corpus(corpus, 0.3)
    assert split.method == "file-tail"
    (train,), (val,) = split_texts(corpus, split)
    assert train + val == corpus.read("mod00.py")
    assert train.endswith("\n") and 0 < len(val) < len(train)


def test_bad_val_fraction(corpus_dir):
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_corpus(find_corpus(corpus_dir), 1.0)


def test_token_cache_is_built_once_and_keyed_by_tokenizer(corpus_dir, tmp_path, monkeypatch):
    corpus = find_corpus(corpus_dir)
    tokenizer = get_tokenizer(corpus, 300, val_fraction=0.25, cache_dir=tmp_path / "cache")
    assert get_tokenizer(corpus, 300, val_fraction=0.25, cache_dir=tmp_path / "cache") == tokenizer  # from the cache
    data = get_tokens(corpus, tokenizer, val_fraction=0.25, cache_dir=tmp_path / "cache")
    assert data.train.dtype == np.uint16 and isinstance(data.train, np.memmap)
    # the streams are the documents, each after a BOS, in split order
    split = split_corpus(corpus, 0.25)
    train_texts, val_texts = split_texts(corpus, split)
    expected = [id for text in train_texts for id in tokenizer.encode(text)]
    assert data.train.tolist() == expected
    assert data.val.tolist() == [id for text in val_texts for id in tokenizer.encode(text)]

    def no_encoding(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(Tokenizer, "encode_batch", no_encoding)
    again = get_tokens(corpus, tokenizer, val_fraction=0.25, cache_dir=tmp_path / "cache")
    assert again.path == data.path and np.array_equal(again.train, data.train)
    monkeypatch.undo()

    other = Tokenizer.train(train_texts, vocab_size=280)
    assert get_tokens(corpus, other, val_fraction=0.25, cache_dir=tmp_path / "cache").path != data.path
    leftovers = [p.name for p in (tmp_path / "cache" / "tokens").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []


def test_damaged_token_cache_is_reported(corpus_dir, tmp_path):
    corpus = find_corpus(corpus_dir)
    tokenizer = get_tokenizer(corpus, 300, cache_dir=tmp_path)
    data = get_tokens(corpus, tokenizer, cache_dir=tmp_path)
    with open(data.path / "train.bin", "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(ValueError, match="damaged"):
        get_tokens(corpus, tokenizer, cache_dir=tmp_path)


def test_windows_start_with_bos_and_are_slices_of_the_stream():
    stream = np.arange(1, 1001, dtype=np.uint16)
    batch = sample_windows(stream, 9, 6, step_generator(0, 5), bos_id=0)
    assert batch.shape == (6, 9) and batch.dtype == torch.long
    assert (batch[:, 0] == 0).all()
    assert (batch[:, 2:] - batch[:, 1:-1] == 1).all()  # consecutive tokens of the stream
    again = sample_windows(stream, 9, 6, step_generator(0, 5), bos_id=0)
    assert torch.equal(batch, again)
    assert not torch.equal(batch, sample_windows(stream, 9, 6, step_generator(0, 6), bos_id=0))
    assert not torch.equal(batch, sample_windows(stream, 9, 6, step_generator(1, 5), bos_id=0))


def test_repeated_span_windows():
    """A copied span window[a:a+L] -> window[b:b+L] at random offsets after natural text; everything else untouched."""
    stream = np.arange(1, 100_001, dtype=np.uint32)
    n_ctx, batch_size = 65, 40
    batch = sample_windows(stream, n_ctx, batch_size, step_generator(0, 3), bos_id=0, repeat_fraction=0.5)
    plain = sample_windows(stream, n_ctx, batch_size, step_generator(0, 3), bos_id=0)
    assert (batch[:, 0] == 0).all()
    assert torch.equal(batch[20:], plain[20:])  # only the first round(0.5 * 40) windows are changed
    generator = step_generator(0, 3)
    torch.randint(0, len(stream) - (n_ctx - 1) + 1, (batch_size,), generator=generator)  # the window starts, drawn first
    spans = copy_spans(20, n_ctx, generator).tolist()
    sources, copies = set(), set()
    for row, original, (a, length, b) in zip(batch[:20], plain[:20], spans):
        assert 1 <= a and a + length <= b and b + length <= n_ctx and 64 // 16 <= length <= 64 // 3
        assert torch.equal(row[b : b + length], original[a : a + length])  # the copy is where it should be
        assert torch.equal(row[:b], original[:b]) and torch.equal(row[b + length :], original[b + length :])  # natural text elsewhere
        assert (row[1:] != original[1:]).sum() == length  # stream tokens are distinct: every copied token differs
        sources.add(a)
        copies.add(b - a)
    assert len(sources) > 5 and min(sources) > 1  # sources start at varying offsets, not only right after BOS
    assert len(copies) > 5  # the copy's distance varies, so no fixed-offset head can predict it
    again = sample_windows(stream, n_ctx, batch_size, step_generator(0, 3), bos_id=0, repeat_fraction=0.5)
    assert torch.equal(batch, again)  # a pure function of (seed, step)
    assert not torch.equal(batch, sample_windows(stream, n_ctx, batch_size, step_generator(0, 4), bos_id=0, repeat_fraction=0.5))
    assert not torch.equal(batch, sample_windows(stream, n_ctx, batch_size, step_generator(1, 3), bos_id=0, repeat_fraction=0.5))


def test_copy_spans_cover_the_allowed_layouts():
    n_ctx = 17  # 16 text tokens: L in [2, 5]
    spans = copy_spans(4000, n_ctx, torch.Generator().manual_seed(0))
    a, length, b = spans.unbind(1)
    assert (a >= 1).all() and (a + length <= b).all() and (b + length <= n_ctx).all()
    assert set(length.tolist()) == {2, 3, 4, 5}
    assert a.min() == 1 and int((a + length).max()) == n_ctx - 2  # the source may start right after BOS, or late
    assert int((b + length).max()) == n_ctx and int((b - a - length).min()) == 0  # the copy may end the window or follow its source at once
    assert copy_spans(3, 4, torch.Generator().manual_seed(0)).shape == (0, 3)  # too short for a span of 2: none


def test_eval_windows_are_fixed_and_non_overlapping():
    stream = np.arange(1, 101, dtype=np.uint16)
    windows = eval_windows(stream, 11, 50, bos_id=0)
    assert windows.shape == (10, 11)  # only 10 non-overlapping windows of 10 tokens fit
    assert len(set(windows[:, 1:].flatten().tolist())) == 100


def test_n_ctx_larger_than_data():
    with pytest.raises(ValueError, match=r"n_ctx=64 is larger than the data: the validation split has only 10 tokens"):
        check_stream(np.zeros(10, dtype=np.uint16), 64, "validation")
