"""Byte-level BPE tokenizer with a beginning-of-sequence token, trained with Hugging Face ``tokenizers``.

Byte level means every UTF-8 text round-trips exactly (``decode(encode(text)) == text``) and no
input is ever "unknown": the first 256 ids after the special token are the byte alphabet, the
rest are learned merges. ``BOS`` (``<|bos|>``, id 0) starts every training window, and
``encode`` prepends it unless ``bos=False``.

For figure axes, ``token_str(id)`` gives a readable label with whitespace made visible
(``'·'`` for a space, ``'⏎'`` for a newline, ``'⇥'`` for a tab) and bytes that are not a whole
UTF-8 character written as ``\\xNN``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers
from torch import Tensor

from circuits.atomic import atomic_write_text

BOS = "<|bos|>"
N_BYTES = 256
#: The smallest vocabulary a byte-level BPE can have: the 256 bytes plus ``BOS``.
MIN_VOCAB_SIZE = N_BYTES + 1

VISIBLE_WHITESPACE = {" ": "·", "\n": "⏎", "\t": "⇥", "\r": "␍"}


class Tokenizer:
    """A trained byte-level BPE. Build one with :meth:`train` or :meth:`load`."""

    def __init__(self, hf_tokenizer: HFTokenizer):
        if not isinstance(hf_tokenizer, HFTokenizer):
            raise TypeError(f"Tokenizer wraps a tokenizers.Tokenizer, got {type(hf_tokenizer).__name__}")
        bos_id = hf_tokenizer.token_to_id(BOS)
        if bos_id is None:
            raise ValueError(f"this tokenizer has no {BOS!r} token; train one with circuits.Tokenizer.train(...)")
        self._hf = hf_tokenizer
        self.bos_id: int = bos_id
        self.vocab_size: int = hf_tokenizer.get_vocab_size(with_added_tokens=True)
        self._byte_of_char = _unicode_to_bytes()
        self._labels: dict[int, str] = {}

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2) -> "Tokenizer":
        """Learn a byte-level BPE of (at most) ``vocab_size`` tokens, ``BOS`` and the 256 bytes included.

        The result is deterministic for a given sequence of texts. On a small corpus BPE may
        run out of pairs seen ``min_frequency`` times, giving fewer than ``vocab_size`` tokens.
        """
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
        if vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the byte alphabet: a byte-level BPE needs at least "
                f"{MIN_VOCAB_SIZE} tokens (256 bytes + {BOS}); use vocab_size >= {MIN_VOCAB_SIZE} (e.g. 2048)"
            )
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=[BOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        seen = _CountingIterator(texts)
        hf.train_from_iterator(seen, trainer=trainer)
        if seen.n_chars == 0:
            raise ValueError("cannot train a tokenizer on empty text: the corpus has no characters")
        return cls(hf)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokenizer":
        """Load a ``tokenizer.json`` written by :meth:`save` (or a folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}; expected a tokenizer.json written by Tokenizer.save")
        try:
            hf = HFTokenizer.from_str(path.read_text(encoding="utf-8"))
        except Exception as error:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"{path} is not a valid tokenizers JSON file ({error}); was it truncated or written by another tool?") from None
        return cls(hf)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` atomically (temp file + rename)."""
        atomic_write_text(Path(path), self.to_json())

    def to_json(self) -> str:
        return self._hf.to_str(pretty=True)

    @property
    def hash(self) -> str:
        """SHA-256 of the serialised tokenizer: equal hashes mean identical tokenization."""
        return hashlib.sha256(self._hf.to_str().encode("utf-8")).hexdigest()

    # ---- encoding --------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Token ids of ``text``, with ``bos_id`` first unless ``bos=False``."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}; use encode_batch for a list of texts")
        ids = self._hf.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if bos else ids

    def encode_batch(self, texts: Sequence[str], bos: bool = True) -> list[list[int]]:
        """``encode`` for many texts at once, in parallel (the library's Rust batch encoder)."""
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TypeError("encode_batch expects a list of str; use encode for a single text")
        encodings = self._hf.encode_batch(list(texts), add_special_tokens=False)
        prefix = [self.bos_id] if bos else []
        return [prefix + encoding.ids for encoding in encodings]

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The text of ``ids`` (``BOS`` tokens are dropped), so ``decode(encode(text)) == text``."""
        return self._hf.decode(self._check_ids(ids), skip_special_tokens=True)

    # ---- labels ----------------------------------------------------------------------------
    def token_str(self, id: int) -> str:
        """A readable label for one token: ``'·'`` space, ``'⏎'`` newline, ``'⇥'`` tab, ``\\xNN`` partial bytes."""
        (id,) = self._check_ids([id])
        label = self._labels.get(id)
        if label is None:
            label = self._labels[id] = self._make_label(id)
        return label

    def str_tokens(self, ids: Iterable[int] | Tensor) -> list[str]:
        """``token_str`` of each id (accepts a list or a 1-d tensor)."""
        return [self.token_str(id) for id in self._check_ids(ids)]

    def _make_label(self, id: int) -> str:
        piece = self._hf.id_to_token(id)
        if id == self.bos_id or piece is None:
            return BOS if id == self.bos_id else f"<unused {id}>"
        raw = bytes(self._byte_of_char[char] for char in piece)
        text = raw.decode("utf-8", errors="backslashreplace")
        return "".join(VISIBLE_WHITESPACE.get(char, char if char.isprintable() or char == "\\" else f"\\x{ord(char):02x}") for char in text)

    def _check_ids(self, ids: Iterable[int] | Tensor) -> list[int]:
        return check_token_ids(ids, self.vocab_size)

    def __repr__(self) -> str:
        return f"Tokenizer(vocab_size={self.vocab_size}, bos_id={self.bos_id}, hash={self.hash[:12]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.hash == other.hash

    def __hash__(self) -> int:
        return hash(self.hash)


class _CountingIterator:
    def __init__(self, texts: Iterable[str]):
        self._texts = iter(texts)
        self.n_chars = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            if not isinstance(text, str):
                raise TypeError(f"Tokenizer.train expects texts (str), got {type(text).__name__}")
            self.n_chars += len(text)
            yield text


def _unicode_to_bytes() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-printable-character table, used by the ``ByteLevel`` pre-tokenizer."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(N_BYTES):
        if byte not in printable:
            printable.append(byte)
            codes.append(N_BYTES + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes)}


def check_token_ids(ids: Iterable[int] | Tensor | int, vocab_size: int) -> list[int]:
    """``ids`` (an int, an iterable of ints or a 1-d tensor) as a list, each checked to lie in ``[0, vocab_size)``."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    if isinstance(ids, int):
        ids = [ids]
    out = []
    for id in ids:
        if isinstance(id, bool) or not isinstance(id, int):
            raise TypeError(f"token ids must be ints, got {id!r}")
        if not 0 <= id < vocab_size:
            raise ValueError(f"token id {id} is out of range for this tokenizer (ids are in [0, {vocab_size}))")
        out.append(id)
    return out
