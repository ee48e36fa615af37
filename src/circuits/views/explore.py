"""``circuits explore PATH``: look at one model in the browser: tokens, per-token loss, every head's attention, logit lens and
direct logit attribution at a position, and the same with heads ablated.

:class:`Explorer` holds the one model loaded at start (a circuits checkpoint or run folder, or a
Hugging Face folder for ``load_hf`` with a ``tokenizer.json``) and answers analysis requests
(plain dicts, checked: :class:`RequestError` names the bad field and the fix). No request names a
file: the server never loads anything but the model it was started with. The HTTP side (the
standard library's ``http.server``, loopback only) is :mod:`circuits.views.server`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from circuits.analysis.activations.head_picks import per_token_loss
from circuits.analysis.activations.interventions import Ablation
from circuits.analysis.common import head_labels, parse_head
from circuits.views import builders
from circuits.views.from_model import attention_patterns, model_logit_attribution, model_logit_lens, str_tokens

__all__ = ["Explorer", "RequestError", "load_any", "add_arguments", "run", "MAX_CHARS", "FIELDS"]

#: the longest text a request may carry (characters); the context limit (n_ctx tokens) is checked after tokenizing
MAX_CHARS = 20_000
#: the fields of an analysis request: name -> what it is
FIELDS = {"text": "the text to analyse (required)", "position": "token index for the logit lens and attribution (default -1: the last)",
          "ablate": "head labels to zero-ablate, e.g. ['L0H1'] (default none)", "top_k": "tokens per layer in the logit lens (1-20, default 5)"}


class RequestError(ValueError):
    """A bad request (the message says which field and how to fix it); the server answers 400 with it."""


def load_any(path: str | Path):
    """The model at ``path`` with its tokenizer attached: a circuits checkpoint or run folder, else a Hugging Face folder."""
    from circuits.hf import load_hf
    from circuits.training.checkpoint import FORMAT, load

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; give a checkpoint folder, a run folder or a Hugging Face checkpoint folder")
    config = folder / "config.json"
    ours = not config.is_file() or json.loads(config.read_text(encoding="utf-8")).get("format") == FORMAT
    if ours:
        return load(folder)[0]
    model = load_hf(folder)
    if model.tokenizer is None:
        raise ValueError(f"{folder} has no tokenizer.json; the explorer needs one to turn typed text into tokens")
    return model


@dataclass
class Explorer:
    """One model and the analyses the explorer page asks for."""

    model: Any
    source: str

    @classmethod
    def open(cls, path: str | Path) -> "Explorer":
        return cls(load_any(path), str(path))

    def info(self) -> dict:
        cfg = self.model.config
        return {"source": self.source, "n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "n_ctx": cfg.n_ctx, "d_vocab": cfg.d_vocab,
                "heads": head_labels(self.model), "max_chars": MAX_CHARS, "fields": FIELDS}

    def tokens(self, text: Any) -> torch.Tensor:
        """``[1, pos]`` tokens of ``text`` (BOS first), or :class:`RequestError` when it is empty, not text, or longer than the context."""
        if not isinstance(text, str):
            raise RequestError(f"'text' must be a string, got {type(text).__name__}")
        if len(text) > MAX_CHARS:
            raise RequestError(f"the text has {len(text)} characters; the explorer takes at most {MAX_CHARS}: shorten it")
        ids = self.model.tokenizer.encode(text, bos=True)
        n_ctx = self.model.config.n_ctx
        if len(ids) > n_ctx:
            raise RequestError(f"the text is {len(ids)} tokens (with BOS) but the model's context holds {n_ctx}: shorten it")
        if len(ids) < 2:
            raise RequestError("type some text: the loss needs at least one token after BOS")
        return torch.tensor([ids], device=self.model.W_E.device)

    def ablation(self, heads: Any) -> Ablation | None:
        if heads in (None, [], ()):
            return None
        if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
            raise RequestError(f"'ablate' must be a list of head labels like ['L0H1'], got {heads!r}")
        for head in heads:
            try:
                parse_head(self.model, head)
            except (KeyError, ValueError, TypeError):
                labels = head_labels(self.model)
                raise RequestError(f"unknown head {head!r}: this model's heads are {labels[0]} .. {labels[-1]}") from None
        return Ablation(list(dict.fromkeys(heads)))

    def position(self, value: Any, n: int) -> int:
        if value is None:
            return n - 1
        if isinstance(value, bool) or not isinstance(value, int) or not -n <= value < n:
            raise RequestError(f"'position' {value!r} is outside the {n} tokens: give 0 .. {n - 1}, or -1 for the last")
        return value % n

    def analyze(self, request: Any) -> dict:
        """The views' data for one request (see :data:`FIELDS`); :class:`RequestError` for a bad one."""
        if not isinstance(request, dict):
            raise RequestError("the request must be a JSON object like {\"text\": \"...\"}")
        unknown = sorted(set(request) - set(FIELDS))
        if unknown:
            raise RequestError(f"unknown field(s) {unknown}; a request has {sorted(FIELDS)}")
        top_k = request.get("top_k", 5)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 20:
            raise RequestError(f"'top_k' must be an integer from 1 to 20, got {top_k!r}")
        tokens = self.tokens(request.get("text"))
        position = self.position(request.get("position"), tokens.shape[1])
        ablation = self.ablation(request.get("ablate"))
        return self.views(tokens, position, ablation, top_k)

    @torch.no_grad()
    def views(self, tokens: torch.Tensor, position: int, ablation: Ablation | None, top_k: int) -> dict:
        model, text = self.model, str_tokens(self.model, tokens)
        hooks = ablation.hooks(model, tokens) if ablation is not None else []
        clean = per_token_loss(model, tokens)[0]
        series = {"loss (nats)": builders.aligned_loss(clean)}
        if ablation is not None:
            ablated = per_token_loss(model, tokens, ablation)[0]
            series = {"loss change with ablation": builders.aligned_loss(ablated - clean), "loss ablated": builders.aligned_loss(ablated),
                      "loss clean": builders.aligned_loss(clean)}
        out = {"tokens": text, "position": position, "ablated": list(ablation.heads) if ablation else [],
               "loss": builders.token_values(text, series, diverging=[k for k in series if "change" in k]).data,
               "attention": builders.attention(text, attention_patterns(model, tokens, hooks), head_labels(model)).data}
        with model.hooks(fwd_hooks=hooks):
            out["lens"], out["lens_error"] = _part(lambda: model_logit_lens(model, tokens, position, top_k).data)
            out["attribution"], out["attribution_error"] = _part(lambda: model_logit_attribution(model, tokens, position).data)
        return out


def _part(make) -> tuple[dict | None, str | None]:
    """A view's data, or the reason this model has none (e.g. attribution on a post-norm model)."""
    try:
        return make(), None
    except ValueError as error:
        return None, str(error)


# ---- command line ---------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a checkpoint folder, a run folder (its newest checkpoint) or a Hugging Face folder (load_hf)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 picks a free one)")


def run(args: argparse.Namespace) -> int:
    from circuits.views.server import serve

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: give a port from 0 to 65535")
    serve(Explorer.open(args.path), port=args.port)
    return 0
