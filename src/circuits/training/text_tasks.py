"""Local text for fine-tuning tasks (no downloads): stdlib docstrings by package, a text-classification task, plain-text docs.

- :func:`stdlib_docstrings` reads the docstrings of the functions and classes of some packages
  of the running interpreter's standard library (test folders left out), in a fixed order;
  :func:`docstring_split` turns them into a seeded, class-balanced train / held-out split for the
  question "which standard-library package does this docstring come from?".
- :class:`TextClassificationTask` trains a classifier (``TransformerConfig.n_classes``) on
  ``(text, label)`` pairs through :func:`circuits.train`: minibatches drawn as epochs of seeded
  permutations (a pure function of the seed and the step), texts truncated to ``max_len`` tokens
  (the last token, e.g. BERT's ``[SEP]``, kept) and right-padded; the evaluation reports the
  held-out loss and accuracy.
- :func:`stdlib_text_docs` is the glob of the standard library's own plain-text documentation
  (``idlelib/*.txt``: IDLE's README, NEWS and help texts), English prose that a model trained on
  the library's ``*.py`` files never saw: a new corpus for language-model fine-tuning.
"""

from __future__ import annotations

import ast
import hashlib
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from circuits.training.config import TrainConfig
from circuits.training.data import STDLIB_EXCLUDED_DIRS, step_generator
from circuits.training.finetune import ForeignTokenizer
from circuits.training.task import Task
from circuits.training.tokenizer import Tokenizer

__all__ = ["TextSplit", "stdlib_docstrings", "docstring_split", "TextClassificationTask", "encode_texts", "classify_accuracy", "stdlib_text_docs"]


def stdlib_text_docs() -> str:
    """The glob of the standard library's plain-text docs (``<stdlib>/idlelib/*.txt``), a corpus spec for ``--corpus``."""
    return str(Path(sysconfig.get_paths()["stdlib"]) / "idlelib" / "*.txt")


def _first_paragraph(doc: str, max_words: int) -> str:
    paragraph = doc.strip().split("\n\n")[0]
    return " ".join(paragraph.split()[:max_words])


def stdlib_docstrings(packages: Sequence[str], *, min_words: int = 4, max_words: int = 40) -> dict[str, list[str]]:
    """``{package: [first paragraph of each docstring, ...]}`` for functions and classes of ``packages`` (sorted files, source order).

    Docstrings shorter than ``min_words`` words are skipped; each is cut to ``max_words`` words.
    A package that does not exist or has no docstring raises ``ValueError``.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    out: dict[str, list[str]] = {}
    for package in packages:
        folder = root / package
        if not folder.is_dir():
            raise ValueError(f"{package!r} is not a package folder of the standard library at {root}; pick e.g. 'email', 'asyncio'")
        texts = []
        for path in sorted(folder.rglob("*.py")):
            if STDLIB_EXCLUDED_DIRS.intersection(path.relative_to(root).parts[:-1]):
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    doc = ast.get_docstring(node)
                    if doc and len(doc.split()) >= min_words:
                        texts.append(_first_paragraph(doc, max_words))
        if not texts:
            raise ValueError(f"the standard library package {package!r} has no docstring of {min_words}+ words")
        out[package] = texts
    return out


@dataclass(frozen=True)
class TextSplit:
    """Texts and integer labels (index into ``classes``) of a training and a held-out split."""

    classes: tuple[str, ...]
    train_texts: tuple[str, ...]
    train_labels: tuple[int, ...]
    test_texts: tuple[str, ...]
    test_labels: tuple[int, ...]


def docstring_split(packages: Sequence[str], n_train: int, n_test: int, *, seed: int = 0) -> TextSplit:
    """``n_train`` + ``n_test`` distinct docstrings per package (seeded shuffle, duplicates dropped), for "which package?"."""
    by_package = stdlib_docstrings(packages)
    train, test = [], []
    for label, package in enumerate(packages):
        texts = sorted(set(by_package[package]))
        random.Random(f"{seed}:{package}").shuffle(texts)
        if len(texts) < n_train + n_test:
            raise ValueError(f"package {package!r} has {len(texts)} distinct docstrings; n_train + n_test = {n_train + n_test} is too many")
        train += [(text, label) for text in texts[:n_train]]
        test += [(text, label) for text in texts[n_train : n_train + n_test]]
    random.Random(seed).shuffle(train)
    return TextSplit(tuple(packages), *(tuple(x) for x in zip(*train)), *(tuple(x) for x in zip(*test)))


def encode_texts(tokenizer: Any, texts: Sequence[str], max_len: int) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """``(tokens, attention_mask)``: each text encoded (with its special tokens), cut to ``max_len`` keeping its last token, right-padded."""
    rows = [ids if len(ids) <= max_len else ids[: max_len - 1] + ids[-1:] for ids in tokenizer.encode_batch(list(texts))]
    n_pos = max(len(row) for row in rows)
    pad = getattr(tokenizer, "pad_id", 0) or 0
    tokens = torch.full((len(rows), n_pos), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), n_pos), dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return tokens, mask


@torch.no_grad()
def classify_accuracy(model, tokens: Tensor, mask: Tensor, labels: Tensor, batch_size: int = 64) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of a classifier on ``(tokens, mask, labels)``."""
    losses, correct = [], 0
    for start in range(0, len(tokens), batch_size):
        t, m, y = (x[start : start + batch_size] for x in (tokens, mask, labels))
        logits = model(t, attention_mask=m)
        losses.append(torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
    return float(torch.stack(losses).sum() / len(tokens)), correct / len(tokens)


class TextClassificationTask(Task):
    """Classify texts: minibatches of ``(tokens, attention_mask, labels)``; the evaluation is the held-out loss and accuracy."""

    name = "text_classification"

    def __init__(self, split: TextSplit, tokenizer: Any, *, max_len: int = 32):
        self.split, self.max_len = split, max_len
        self.tokenizer = tokenizer if isinstance(tokenizer, Tokenizer) else ForeignTokenizer(tokenizer)  # saved with each checkpoint
        self.train = (*encode_texts(tokenizer, split.train_texts, max_len), torch.tensor(split.train_labels))
        self.test = (*encode_texts(tokenizer, split.test_texts, max_len), torch.tensor(split.test_labels))

    def check_model(self, model_cfg) -> None:
        if model_cfg.n_classes != len(self.split.classes):
            raise ValueError(f"the task has {len(self.split.classes)} classes but model_cfg.n_classes={model_cfg.n_classes}; give the model a head of that width")

    def identity(self) -> dict[str, Any]:
        digest = hashlib.sha256(repr((self.split, self.max_len)).encode()).hexdigest()
        return {"task": self.name, "classes": list(self.split.classes), "data_sha256": digest}

    def data_info(self) -> dict[str, Any]:
        return {"task": self.name, "classes": list(self.split.classes), "n_train": len(self.split.train_texts), "n_test": len(self.split.test_texts), "max_len": self.max_len}

    def batch(self, step: int, train_cfg: TrainConfig) -> tuple[Tensor, Tensor, Tensor]:
        n, size = len(self.train[2]), train_cfg.batch_size
        perms: dict[int, Tensor] = {}
        rows = []
        for index in range(step * size, (step + 1) * size):  # epochs of seeded permutations
            epoch, position = divmod(index, n)
            if epoch not in perms:
                perms[epoch] = torch.randperm(n, generator=step_generator(train_cfg.seed, epoch))
            rows.append(int(perms[epoch][position]))
        return tuple(x[rows] for x in self.train)

    def loss(self, model, batch) -> Tensor:
        tokens, mask, labels = batch
        return model(tokens, attention_mask=mask, return_type="loss", labels=labels)

    def evaluate(self, model, device: torch.device) -> dict[str, Any]:
        loss, accuracy = classify_accuracy(model, *(x.to(device) for x in self.test))
        return {"val_loss": loss, "val_accuracy": accuracy}

    def tokens_per_step(self, model_cfg, train_cfg: TrainConfig) -> int:
        return train_cfg.batch_size * int(self.train[0].shape[1])
