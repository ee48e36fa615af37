"""The byte-level BPE: exact round trips, BOS handling, readable labels, save/load, clear errors."""

from __future__ import annotations

import pytest
import torch

from circuits import Tokenizer
from circuits.training.tokenizer import BOS, MIN_VOCAB_SIZE

TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "class Point:\n\tdef __init__(self, x, y):\n\t\tself.x = x\n\t\tself.y = y\n",
    "# comment with unicode: café, naïve, 東京\n" * 3,
    "for i in range(10):\n    print(i * i)\n" * 5,
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train(TEXTS, vocab_size=300)


def test_vocabulary_holds_bos_bytes_and_merges(tokenizer):
    assert tokenizer.bos_id == 0
    assert MIN_VOCAB_SIZE < tokenizer.vocab_size <= 300  # some merges were learned, never more than asked
    assert tokenizer.token_str(tokenizer.bos_id) == BOS


@pytest.mark.parametrize(
    "text",
    ["", "def f(x):\n    return x\n", "unseen: ∑ 😀 \x00 \r\n\ttabs", "   leading spaces", "东京 and Zürich", "a" * 500],
)
def test_round_trip_is_exact(tokenizer, text):
    ids = tokenizer.encode(text)
    assert ids[0] == tokenizer.bos_id
    assert tokenizer.decode(ids) == text
    assert tokenizer.encode(text, bos=False) == ids[1:]


def test_merges_compress_training_like_text(tokenizer):
    text = "for i in range(10):\n    print(i * i)\n"
    assert len(tokenizer.encode(text, bos=False)) < len(text.encode()) / 2


def test_encode_batch_matches_encode(tokenizer):
    texts = TEXTS + ["", "x"]
    assert tokenizer.encode_batch(texts) == [tokenizer.encode(text) for text in texts]
    assert tokenizer.encode_batch(texts, bos=False) == [tokenizer.encode(text, bos=False) for text in texts]


def test_token_str_makes_whitespace_visible(tokenizer):
    labels = tokenizer.str_tokens(tokenizer.encode("a b\n\tc", bos=False))
    joined = "".join(labels)
    assert joined == "a·b⏎⇥c"
    assert all(" " not in label and "\n" not in label for label in labels)


def test_token_str_shows_partial_utf8_bytes_as_escapes(tokenizer):
    # a byte token that is only the first byte of a multi-byte character
    ids = tokenizer.encode("😀", bos=False)
    labels = tokenizer.str_tokens(ids)
    assert "".join(labels) == "😀" or any("\\x" in label for label in labels)
    lone = [id for id in range(1, tokenizer.vocab_size) if tokenizer.decode([id]) == "\ufffd"]
    assert lone and all("\\x" in tokenizer.token_str(id) for id in lone)


def test_str_tokens_accepts_tensors(tokenizer):
    ids = tokenizer.encode("return x")
    assert tokenizer.str_tokens(torch.tensor(ids)) == tokenizer.str_tokens(ids)


def test_training_is_deterministic(tokenizer):
    assert Tokenizer.train(TEXTS, vocab_size=300).hash == tokenizer.hash


def test_save_load_round_trip(tokenizer, tmp_path):
    tokenizer.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.load(tmp_path / "tokenizer.json")
    assert loaded == tokenizer and loaded.hash == tokenizer.hash
    assert Tokenizer.load(tmp_path).encode("x = 1") == tokenizer.encode("x = 1")
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temporaries left behind


def test_vocab_smaller_than_byte_alphabet_is_an_error():
    with pytest.raises(ValueError, match=r"at least 257"):
        Tokenizer.train(TEXTS, vocab_size=200)


def test_empty_training_text_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        Tokenizer.train(["", ""], vocab_size=300)


def test_bad_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        Tokenizer.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"truncated": ')
    with pytest.raises(ValueError, match="not a valid tokenizers JSON"):
        Tokenizer.load(tmp_path / "bad.json")


def test_out_of_range_ids_raise(tokenizer):
    with pytest.raises(ValueError, match="out of range"):
        tokenizer.decode([tokenizer.vocab_size])
    with pytest.raises(TypeError):
        tokenizer.encode(["not", "a", "str"])
