"""Views computed from a model: its attention on a text, per-token loss, logit lens and direct logit attribution at a position,
a head's QK/OV circuit on chosen tokens, and the composition scores.

Text is tokenized with the model's tokenizer (``circuits.load`` and ``load_hf`` attach it) and
cut to the context; token tensors are ``[pos]`` or ``[1, pos]``. The numbers come from
:mod:`circuits.analysis` (``direct_logit_attribution``, ``logit_lens``, ``composition_scores``,
``full_qk_circuit``/``full_ov_circuit``, ``Ablation``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from circuits.analysis.activations.attribution import direct_logit_attribution, logit_lens
from circuits.analysis.activations.head_picks import per_token_loss
from circuits.analysis.common import check_model, head_labels, parse_head
from circuits.analysis.weights.circuit_views import token_block
from circuits.analysis.weights.composition import COMPOSITION_KINDS, composition_scores
from circuits.analysis.weights.qkov import full_ov_circuit, full_qk_circuit
from circuits.views import builders
from circuits.views.page import View

__all__ = ["as_tokens", "str_tokens", "attention_patterns", "model_attention", "model_loss", "model_logit_attribution", "model_logit_lens",
           "model_circuit", "model_composition", "attribution_target"]


def as_tokens(model, text_or_tokens: str | Sequence[int] | Tensor) -> Int[Tensor, "1 pos"]:
    """``[1, pos]`` token ids from a string (the model's tokenizer, BOS first, cut to ``n_ctx``) or ids (checked)."""
    check_model(model)
    tokens = model.to_tokens(text_or_tokens)
    if tokens.shape[0] != 1:
        raise ValueError(f"views show one sequence; got a batch of {tokens.shape[0]} (pass tokens[i])")
    return tokens


def str_tokens(model, tokens: Int[Tensor, "1 pos"]) -> list[str]:
    """Each token as text (the tokenizer's ``str_tokens``), or ``#id`` without a tokenizer."""
    tok = getattr(model, "tokenizer", None)
    return list(tok.str_tokens(tokens[0])) if tok is not None else [f"#{int(t)}" for t in tokens[0]]


@torch.no_grad()
def attention_patterns(model, tokens: Int[Tensor, "1 pos"], hooks=()) -> Float[Tensor, "layer head query_pos key_pos"]:
    """Every head's attention pattern on one sequence (``hooks``: forward hooks applied during the run, e.g. an ablation's)."""
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.config.n_layers)]
    with model.hooks(fwd_hooks=list(hooks)):
        _, cache = model.run_with_cache(tokens, names_filter=names)
    return torch.stack([cache[n][0] for n in names]).float()


def model_attention(model, text_or_tokens, *, selected: int | str = 0, title: str = "") -> View:
    """:func:`~circuits.views.builders.attention` of every head of ``model`` on a text or token ids."""
    tokens = as_tokens(model, text_or_tokens)
    return builders.attention(str_tokens(model, tokens), attention_patterns(model, tokens), head_labels(model), selected=selected, title=title)


def model_loss(model, text_or_tokens, *, title: str = "") -> View:
    """Per-token next-token loss of ``model`` as coloured text (shown on the predicted token)."""
    tokens = as_tokens(model, text_or_tokens)
    loss = per_token_loss(model, tokens)[0]
    return builders.token_values(str_tokens(model, tokens), {"loss (nats)": builders.aligned_loss(loss)}, title=title)


def attribution_target(model, tokens: Int[Tensor, "1 pos"], position: int, target: int | None, logits: Tensor) -> int:
    """The token whose logit is attributed: ``target``, else the actual next token, else (at the last position) the top prediction."""
    if target is not None:
        if not 0 <= int(target) < logits.shape[-1]:
            raise ValueError(f"target token {target} is outside the vocabulary [0, {logits.shape[-1]})")
        return int(target)
    return int(tokens[0, position + 1]) if position + 1 < tokens.shape[1] else int(logits[0, position].argmax())


def check_position(tokens: Tensor, position: int) -> int:
    n = tokens.shape[1]
    if isinstance(position, bool) or not isinstance(position, int) or not -n <= position < n:
        raise ValueError(f"position {position!r} is outside the {n} tokens (give 0..{n - 1}, or -1 for the last)")
    return position % n


def model_logit_attribution(model, text_or_tokens, position: int = -1, target: int | None = None, *, title: str = "") -> View:
    """Direct logit attribution at ``position`` for ``target`` (default: the next token; the top prediction at the last position)."""
    tokens = as_tokens(model, text_or_tokens)
    position = check_position(tokens, position)
    dla = direct_logit_attribution(model, tokens)
    target = attribution_target(model, tokens, position, target, dla.logits)
    values = dla.terms[:, 0, position, target]
    text = str_tokens(model, tokens)
    name = model.tokenizer.token_str(target) if getattr(model, "tokenizer", None) is not None else f"#{target}"
    return builders.logit_attribution(dla.labels, values, float(dla.logits[0, position, target]), position=position, token=text[position],
                                      target=name, title=title)


def model_logit_lens(model, text_or_tokens, position: int = -1, k: int = 5, *, title: str = "") -> View:
    """The logit lens at ``position``: the top ``k`` tokens (probabilities) read from each residual stream."""
    tokens = as_tokens(model, text_or_tokens)
    position = check_position(tokens, position)
    lens = logit_lens(model, tokens)
    probs = lens.log_probs()[:, 0, position].exp()
    top = probs.topk(min(k, probs.shape[-1]), dim=-1)
    tok = getattr(model, "tokenizer", None)
    name = (lambda i: tok.token_str(i)) if tok is not None else (lambda i: f"#{i}")
    rows = [[(name(int(i)), float(p)) for p, i in zip(ps, ids)] for ps, ids in zip(top.values, top.indices)]
    return builders.logit_lens_table(lens.labels, rows, position=position, token=str_tokens(model, tokens)[position], title=title)


def model_circuit(model, head: str | tuple[int, int], kind: str, token_ids: Sequence[int], *, title: str = "") -> View:
    """A head's full ``"QK"`` (``W_E W_QK W_E^T``, query x key tokens) or ``"OV"`` (``W_E W_OV W_U``, source x output tokens) circuit on ``token_ids``."""
    layer, index = parse_head(model, head)
    if kind not in ("QK", "OV"):
        raise ValueError(f"kind={kind!r}: give 'QK' or 'OV'")
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    circuit = (full_qk_circuit if kind == "QK" else full_ov_circuit)(model, layer, index)
    block = token_block(circuit, ids)
    tok = getattr(model, "tokenizer", None)
    names = tok.str_tokens(ids) if tok is not None else [f"#{int(i)}" for i in ids]
    rows, cols = ("query token", "key token") if kind == "QK" else ("source token", "output token")
    return builders.circuit_matrix(block, names, names, row_title=rows, col_title=cols,
                                   title=title or f"L{layer}H{index} full {kind} circuit on {len(names)} tokens")


def model_composition(model, *, baseline: dict[str, float] | None = None, title: str = "") -> View:
    """Q-, K- and V-composition scores between every pair of heads in different layers, with a click-through to each pair."""
    if model.config.n_layers < 2:
        raise ValueError(f"composition needs at least 2 layers; this model has {model.config.n_layers}")
    scores = {k: composition_scores(model, k) for k in COMPOSITION_KINDS}
    return builders.composition(scores, head_labels(model), baseline=baseline, title=title)
