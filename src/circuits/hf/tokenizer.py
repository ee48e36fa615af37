"""A checkpoint's own tokenizer (``tokenizer.json``), with the methods of :class:`circuits.Tokenizer`.

``HFTokenizer`` wraps a ``tokenizers.Tokenizer`` read from a checkpoint folder (WordPiece for
BERT/MiniLM, byte-level BPE for GPT-2, ...) and answers ``encode(text, bos=...)``, ``decode``,
``token_str(id)`` and ``str_tokens(ids)`` like our own tokenizer, so ``model.to_tokens("...")``
and the analysis code work the same on a loaded checkpoint.

``bos`` means "frame the text the way the model was trained": when the tokenizer's
post-processor adds special tokens (BERT: ``[CLS] text [SEP]``; LLaMA: ``<s> text``),
``bos=True`` adds them and ``bos=False`` gives the bare pieces; otherwise ``bos=True`` prepends
the ``bos_token`` named in ``tokenizer_config.json`` / ``special_tokens_map.json`` (GPT-2:
``<|endoftext|>``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from jaxtyping import Int
from tokenizers import Tokenizer as RustTokenizer
from tokenizers import decoders
from torch import Tensor

from circuits.training.tokenizer import VISIBLE_WHITESPACE, check_token_ids

_SPECIAL_NAMES = ("bos_token", "eos_token", "pad_token", "cls_token", "sep_token", "unk_token", "mask_token")


class HFTokenizer:
    """A Hugging Face ``tokenizer.json`` with ``circuits.Tokenizer``'s interface. Build with :meth:`from_folder`."""

    def __init__(self, tokenizer: RustTokenizer, special_tokens: dict[str, str] | None = None):
        if not isinstance(tokenizer, RustTokenizer):
            raise TypeError(f"HFTokenizer wraps a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        # A tokenizer.json may switch on fixed-length padding or truncation (sentence-transformers
        # checkpoints do); HF's AutoTokenizer ignores those unless asked per call, and so do we:
        # padding is `batch`'s job, and a too-long text is an error at the model, not a silent cut.
        tokenizer = RustTokenizer.from_str(tokenizer.to_str())
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._hf = tokenizer
        self.special_tokens = dict(special_tokens or {})
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)
        ids = {name: tokenizer.token_to_id(token) for name, token in self.special_tokens.items()}
        self.bos_id: int | None = ids.get("bos_token", ids.get("cls_token"))
        self.pad_id: int = ids.get("pad_token") if ids.get("pad_token") is not None else 0
        self._post_processor_adds = len(tokenizer.encode("a", add_special_tokens=True).ids) > len(
            tokenizer.encode("a", add_special_tokens=False).ids
        )
        self._byte_level = isinstance(tokenizer.decoder, decoders.ByteLevel)

    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> "HFTokenizer":
        """Read ``tokenizer.json`` and the special-token names from a checkpoint folder."""
        folder = Path(path)
        file = folder / "tokenizer.json"
        if not file.is_file():
            raise FileNotFoundError(
                f"{folder} has no tokenizer.json; only fast-tokenizer files are read (vocab.txt / merges.txt alone are not)"
            )
        tokenizer = RustTokenizer.from_file(str(file))
        special: dict[str, str] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            special.update(_special_tokens(folder / name))
        return cls(tokenizer, special)

    def to_json(self) -> str:
        return self._hf.to_str(pretty=True)

    # ---- encoding --------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Token ids of ``text``; ``bos=True`` adds the model's special tokens (see the module docstring)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}; use encode_batch for a list of texts")
        return self.encode_batch([text], bos=bos)[0]

    def encode_batch(self, texts: Sequence[str], bos: bool = True) -> list[list[int]]:
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TypeError("encode_batch expects a list of str; use encode for a single text")
        if self._post_processor_adds:
            return [e.ids for e in self._hf.encode_batch(list(texts), add_special_tokens=bos)]
        ids = [e.ids for e in self._hf.encode_batch(list(texts), add_special_tokens=False)]
        if not bos:
            return ids
        if self.bos_id is None:
            raise ValueError("this tokenizer names no bos_token (tokenizer_config.json); encode with bos=False")
        return [[self.bos_id, *row] for row in ids]

    def batch(self, texts: Sequence[str], bos: bool = True) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
        """``(tokens, attention_mask)``: the texts encoded and right-padded with ``pad_id`` (mask 0 on padding)."""
        rows = self.encode_batch(texts, bos=bos)
        n_pos = max(len(row) for row in rows)
        tokens = torch.full((len(rows), n_pos), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), n_pos), dtype=torch.long)
        for i, row in enumerate(rows):
            tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return tokens, mask

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The text of ``ids``, special tokens dropped (as ``circuits.Tokenizer.decode`` drops BOS)."""
        return self._hf.decode(self._check_ids(ids), skip_special_tokens=True)

    # ---- labels ----------------------------------------------------------------------------
    def token_str(self, id: int) -> str:
        """A readable label for one token: the vocabulary entry (``'##ing'`` for WordPiece continuations);
        for byte-level BPE the decoded text with ``'·'`` for a space and ``'⏎'`` for a newline."""
        (id,) = self._check_ids([id])
        piece = self._hf.id_to_token(id)
        if piece is None:
            return f"<unused {id}>"
        if self._byte_level and piece not in self.special_tokens.values():
            text = self._hf.decode([id], skip_special_tokens=False)
            return "".join(VISIBLE_WHITESPACE.get(char, char) for char in text)
        return piece

    def str_tokens(self, ids: Iterable[int] | Tensor) -> list[str]:
        """``token_str`` of each id (a list or a 1-d tensor)."""
        return [self.token_str(id) for id in self._check_ids(ids)]

    def _check_ids(self, ids: Iterable[int] | Tensor | int) -> list[int]:
        return check_token_ids(ids, self.vocab_size)

    def __repr__(self) -> str:
        return f"HFTokenizer(vocab_size={self.vocab_size}, bos_id={self.bos_id}, specials={sorted(self.special_tokens)})"


def _special_tokens(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        data: Any = json.load(handle)
    out = {}
    for name in _SPECIAL_NAMES:
        value = data.get(name) if isinstance(data, dict) else None
        if isinstance(value, dict):  # {"content": "<s>", ...}
            value = value.get("content")
        if isinstance(value, str):
            out[name] = value
    return out
