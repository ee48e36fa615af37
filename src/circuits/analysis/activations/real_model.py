"""A pretrained sentence encoder (all-MiniLM-L6-v2, a 6-layer BERT) studied with the workbench.

Three analyses, each a free function returning plain tensors with ``L{layer}H{head}`` labels:

:func:`head_taxonomy`
    Attention-pattern scores per head on real, padded text. ``A[q, k]`` is a head's attention from
    query position ``q`` to key position ``k``; every score averages over the real (non-padding)
    queries that the score applies to, in all sentences:

    ``previous_token``  ``A[q, q-1]``, queries ``q >= 1``
    ``next_token``      ``A[q, q+1]``, queries whose next position is a real token
    ``current_token``   ``A[q, q]``
    ``cls``             ``A[q, 0]`` (BERT puts ``[CLS]`` first)
    ``sep``             attention summed over ``[SEP]`` positions
    ``duplicate_token`` attention summed over *other* positions holding the same token (earlier
                        or later: the encoder is bidirectional), queries whose token repeats

    Unlike the causal scores of :mod:`circuits.analysis.activations.scores` (queries ``q >= 1``,
    earlier duplicates only), these count every real query and look both ways; they are accumulated
    with that module's streaming core (:func:`kind_targets` for
    :func:`~circuits.analysis.activations.scores.stream_pattern_scores`), and heads are labelled
    with :func:`circuits.analysis.common.head_label` (re-exported here).

:func:`ov_copying_scores`
    The Framework paper's copying score ``sum(lambda) / sum(|lambda|)`` of each head's full OV
    circuit ``W_E W_OV W_U`` (paper ``W_U W_OV W_E``). ``BertModel`` has no unembedding, so
    ``W_U = W_E^T`` (the tied word embeddings, which BERT's masked-LM head also uses). The
    non-zero eigenvalues of ``W_E W_V W_O W_E^T [d_vocab, d_vocab]`` are those of the small
    ``W_O W_E^T W_E W_V [d_head, d_head]``, which is what is diagonalised. In a post-norm model the
    residual stream a head reads is ``ln_embed``'s output, not ``W_E``; ``embedding="ln_embed"``
    uses the normalized embeddings ``LN(W_E + mean_p W_pos + W_token_type[0])`` on the input side.

:func:`embedding_contributions`
    How each component contributes to the sentence embedding (mean of the last block's output over
    real tokens, then L2-normalised), two ways:

    * **direct (linear) decomposition**: the residual stream is carried as a sum of components
      (``embed``, ``pos_embed``, ``token_type_embed``, each head, each ``mlp{l}``, ``bias``); each
      post-norm LayerNorm is applied to every part with its scale frozen at the value of the real
      forward pass (``LN(x) = centre(x) / scale * w + b``, ``b`` going to ``bias``). With frozen
      scales this is exact: the parts sum to the real output (``max_error`` reports the check).
      A part's share of the embedding is ``<pooled part, e> / |pooled sum|`` with ``e`` the unit
      embedding, so the shares of one sentence sum to 1. What is *not* exact is the reading: it is
      the direct path only (a head's effect through later heads' and MLPs' inputs is credited to
      those later components), and the frozen scales depend on every component.
    * **ablation**: ``1 - cos(e, e')`` where ``e'`` is the embedding with one head zero-ablated
      (its ``z`` set to 0, ``b_O`` kept), one attention layer's heads all zeroed (``attn{l}``), or
      one MLP's output zeroed (``mlp{l}``). It includes every indirect effect; it is not additive.

``SENTENCES`` are plain English sentences about Python (written here, so the analysis needs
nothing but the model); several repeat words so that duplicate-token heads have something to do.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal, Sequence

import einops
import torch
import torch.nn.functional as F
from jaxtyping import Complex, Float, Int
from torch import Tensor

from circuits.analysis.activations.scores import stream_pattern_scores
from circuits.analysis.common import head_label, head_labels

__all__ = [
    "SENTENCES", "PATTERN_KINDS", "head_label", "head_labels", "pattern_targets", "kind_targets", "pattern_scores", "HeadTaxonomy",
    "attention_patterns", "head_taxonomy", "most_repeated_sentence", "input_embeddings", "ov_eigenvalues", "ov_copying_scores",
    "sentence_embeddings", "mean_pool", "EmbeddingContributions", "direct_decomposition", "embedding_contributions", "ablation_drops",
]

SENTENCES: tuple[str, ...] = (
    "Python is an easy to learn, powerful programming language.",
    "It has efficient high-level data structures and a simple but effective approach to object-oriented programming.",
    "The Python interpreter is easily extended with new functions and data types implemented in C or C++.",
    "A list is a mutable sequence, and a tuple is an immutable sequence.",
    "The dictionary maps each key to a value, and every key must be hashable.",
    "When the loop finishes, the else clause of the loop runs unless the loop was stopped by a break statement.",
    "A function returns None when it reaches the end of its body without a return statement.",
    "Exceptions are raised when an error is detected, and they can be handled with a try statement.",
    "The garbage collector frees memory that is no longer reachable from the program.",
    "Modules let you split a large program into files, and a package is a directory of modules.",
    "Strings are immutable, so every method that changes a string returns a new string.",
    "The standard library offers a wide range of modules for files, networks, dates and text.",
)

PATTERN_KINDS: tuple[str, ...] = ("previous_token", "next_token", "current_token", "cls", "sep", "duplicate_token")


# ---- head taxonomy ----------------------------------------------------------------------------
def pattern_targets(
    tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"], sep_id: int | None
) -> tuple[Float[Tensor, "kind batch query_pos key_pos"], Float[Tensor, "kind batch query_pos"]]:
    """For each kind: which keys it counts for each query (``targets``) and which queries count (``queries``)."""
    batch, n_pos = tokens.shape
    real = attention_mask.bool()
    pos = torch.arange(n_pos, device=tokens.device)
    offset = pos[:, None] - pos[None, :]  # query_pos - key_pos
    both = real[:, :, None] & real[:, None, :]  # real query, real key
    diag = {k: (offset == o)[None] & both for k, o in (("previous_token", 1), ("next_token", -1), ("current_token", 0))}
    cls = (pos[None, :] == 0)[None].expand(batch, n_pos, n_pos) & both
    sep = (tokens == sep_id)[:, None, :].expand(batch, n_pos, n_pos) & both if sep_id is not None else torch.zeros_like(both)
    duplicate = (tokens[:, :, None] == tokens[:, None, :]) & (offset != 0)[None] & both
    targets = torch.stack([diag["previous_token"], diag["next_token"], diag["current_token"], cls, sep, duplicate]).float()
    queries = targets.amax(dim=-1)  # a query counts when it has a target key
    queries[3] = real.float()  # every real query can attend to [CLS]
    if sep_id is not None:
        queries[4] = real.float() * (tokens == sep_id).any(dim=-1, keepdim=True).float()
    return targets, queries


def pattern_scores(
    patterns: Float[Tensor, "layer batch head query_pos key_pos"],
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    sep_id: int | None,
) -> Float[Tensor, "kind layer head"]:
    """Mean over counted queries of the attention on each kind's target keys (see the module docstring), from patterns
    already computed on a padded batch; :func:`head_taxonomy` gets the same scores streamed (:func:`kind_targets`)."""
    targets, queries = pattern_targets(tokens, attention_mask, sep_id)
    mass = einops.einsum(patterns, targets, "layer batch head q k, kind batch q k -> kind layer head batch q")
    total = einops.einsum(mass, queries, "kind layer head batch q, kind batch q -> kind layer head")
    count = queries.sum(dim=(1, 2))  # [kind]
    return total / count.clamp_min(1.0)[:, None, None]


def kind_targets(sep_id: int | None) -> dict[str, Callable[[Tensor], tuple[Tensor, int]]]:
    """The pattern kinds as targets of :func:`circuits.analysis.activations.scores.stream_pattern_scores`:
    ``kind -> (tokens -> (target keys [batch, query_pos, key_pos], counted queries))`` for batches without padding."""

    def target(index: int) -> Callable[[Tensor], tuple[Tensor, int]]:
        def make(tokens: Tensor) -> tuple[Tensor, int]:
            targets, queries = pattern_targets(tokens, torch.ones_like(tokens), sep_id)
            return targets[index], int(queries[index].sum())

        return make

    return {kind: target(i) for i, kind in enumerate(PATTERN_KINDS)}


@dataclass
class HeadTaxonomy:
    """Pattern scores of every head (``scores[kind, layer, head]``) with an example pattern per kind.

    ``examples[kind]`` is ``(label, pattern [query_pos, key_pos])`` of the head scoring highest on
    that kind, on sentence ``example_index`` (real tokens only; ``example_tokens`` label its axes).
    ``dominant[i]`` is the kind with the highest score for head ``labels[i]``.
    """

    kinds: list[str]
    labels: list[str]
    scores: Float[Tensor, "kind layer head"]
    dominant: list[str]
    examples: dict[str, tuple[str, Tensor]]
    example_tokens: list[str]
    example_index: int = 0

    def table(self) -> list[tuple[str, str, float]]:
        """``(label, dominant kind, its score)`` per head, layer-major."""
        flat = self.scores.flatten(1)  # [kind, layer*head]
        return [(label, kind, float(flat[self.kinds.index(kind), i])) for i, (label, kind) in enumerate(zip(self.labels, self.dominant))]


def attention_patterns(
    model, tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"], token_type_ids: Tensor | None = None
) -> Float[Tensor, "layer batch head query_pos key_pos"]:
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(model.config.n_layers)]
    kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, attention_mask=attention_mask, names_filter=names, **kwargs)
    return torch.stack([cache[name] for name in names])


def head_taxonomy(
    model,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    *,
    sep_id: int | None,
    str_tokens: Sequence[str] | None = None,
    example_index: int = 0,
) -> HeadTaxonomy:
    """Score every head on each pattern kind (module docstring) on a padded batch of real text.

    Each sentence runs on its real tokens alone (padding dropped) and the scores are accumulated
    sentence by sentence (:func:`~circuits.analysis.activations.scores.stream_pattern_scores`), so
    no attention pattern is kept but the example sentence's. A kind no query qualifies for scores 0.
    """
    sentences = [row[real.bool()][None] for row, real in zip(tokens, attention_mask)]
    counted = pattern_targets(tokens, attention_mask, sep_id)[1].sum(dim=(1, 2)) > 0  # [kind]
    targets = {kind: make for (kind, make), keep in zip(kind_targets(sep_id).items(), counted) if keep}
    streamed = stream_pattern_scores(model, sentences, targets)
    zeros = model.W_E.new_zeros(model.config.n_layers, model.config.n_heads)
    scores = torch.stack([streamed.get(kind, zeros) for kind in PATTERN_KINDS])
    labels = head_labels(model)
    flat = scores.flatten(1)
    dominant = [PATTERN_KINDS[int(i)] for i in flat.argmax(dim=0)]
    example = sentences[example_index]
    patterns = attention_patterns(model, example, torch.ones_like(example))  # [layer, 1, head, query_pos, key_pos]
    examples = {}
    for k, kind in enumerate(PATTERN_KINDS):
        best = int(flat[k].argmax())
        layer, head = divmod(best, model.config.n_heads)
        examples[kind] = (labels[best], patterns[layer, 0, head].clone())
    example_tokens = list(str_tokens) if str_tokens is not None else [str(int(t)) for t in example[0]]
    return HeadTaxonomy(list(PATTERN_KINDS), labels, scores, dominant, examples, example_tokens, example_index)


def most_repeated_sentence(tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"], special: Collection[int] = ()) -> int:
    """The index of the sentence with the most repeated real tokens (tokens in ``special``, e.g. [CLS], [SEP] and
    padding, not counted; the first on ties): the example where duplicate-token heads have the most to show."""
    repeats = []
    for row, real in zip(tokens.tolist(), attention_mask.tolist()):
        ids = [t for t, keep in zip(row, real) if keep and t not in special]
        repeats.append(len(ids) - len(set(ids)))
    if not repeats:
        raise ValueError("most_repeated_sentence needs at least one sentence, got an empty batch")
    return max(range(len(repeats)), key=repeats.__getitem__)


# ---- OV copying -------------------------------------------------------------------------------
def input_embeddings(model, embedding: Literal["raw", "ln_embed"]) -> Float[Tensor, "d_vocab d_model"]:
    """The token directions a layer-0 head reads: ``W_E``, or ``ln_embed(W_E + mean W_pos + W_token_type[0])``."""
    W_E = model.W_E
    if embedding == "raw":
        return W_E
    if embedding != "ln_embed":
        raise ValueError(f"embedding={embedding!r} is not one of 'raw', 'ln_embed'")
    if model.ln_embed is None:
        raise ValueError("embedding='ln_embed' needs a post-norm model (one with an ln_embed); use embedding='raw'")
    x = W_E
    if getattr(model, "pos_embed", None) is not None and model.config.positions_in_residual:
        x = x + model.pos_embed.W_pos.mean(dim=0)
    if model.token_type_embed is not None:
        x = x + model.token_type_embed.W_token_type[0]
    return model.ln_embed(x[None])[0]


def ov_eigenvalues(model, *, embedding: Literal["raw", "ln_embed"] = "raw") -> Complex[Tensor, "layer head d_head"]:
    """Eigenvalues (complex) of each head's ``W_O W_E^T E W_V`` ``[d_head, d_head]``, i.e. the non-zero
    eigenvalues of the full OV circuit ``E W_V W_O W_E^T`` (``E`` the input embeddings, ``W_U = W_E^T``)."""
    with torch.no_grad():
        E = input_embeddings(model, embedding)
        gram = model.W_E.T @ E  # [d_model, d_model]: W_U = W_E^T on the output side
        small = einops.einsum(
            model.W_O, gram, model.W_V,
            "layer head d_head_out d_model_out, d_model_out d_model_in, layer head d_model_in d_head_in -> layer head d_head_out d_head_in",
        )
        from circuits.model.finite import checked_eigvals  # NaN/inf input would crash LAPACK (oneMKL), not raise

        return checked_eigvals(small, lambda i: f"the OV circuit of head L{i[0]}H{i[1]}", "ov_eigenvalues", model)


def ov_copying_scores(model, *, embedding: Literal["raw", "ln_embed"] = "raw") -> tuple[list[str], Float[Tensor, "layer head"]]:
    """``(labels, sum(lambda).real / sum(|lambda|))`` per head (+1: copies its input token; -1: suppresses it)."""
    lam = ov_eigenvalues(model, embedding=embedding)
    scores = lam.sum(dim=-1).real / lam.abs().sum(dim=-1)
    return head_labels(model), scores.float()


# ---- contributions to the sentence embedding --------------------------------------------------
def sentence_embeddings(
    model, tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"], hooks: Sequence = ()
) -> Float[Tensor, "batch d_model"]:
    """Mean of the last block's output over real tokens, L2-normalised (sentence-transformers' recipe)."""
    name = f"blocks.{model.config.n_layers - 1}.hook_resid_post"
    store = {}

    def keep(value, hook):
        store["resid"] = value
        raise _StopForward  # the unembedding (vocab-sized logits) is not needed and dominates the cost

    with torch.no_grad(), model.hooks(fwd_hooks=[(name, keep), *hooks]):
        try:
            model(tokens, attention_mask=attention_mask)
        except _StopForward:
            pass
    return F.normalize(mean_pool(store["resid"], attention_mask), dim=-1)


class _StopForward(Exception):
    """Raised by :func:`sentence_embeddings`'s hook once it has the last block's output."""


def mean_pool(x: Float[Tensor, "... batch pos d_model"], attention_mask: Int[Tensor, "batch pos"]) -> Float[Tensor, "... batch d_model"]:
    weights = attention_mask.to(x.dtype)
    return (x * weights[..., None]).sum(dim=-2) / weights.sum(dim=-1, keepdim=True).clamp_min(1.0)


@dataclass
class EmbeddingContributions:
    """Contributions of components to the sentence embedding (see the module docstring).

    ``direct[component]``: mean over sentences of each part's share of the embedding (sums to 1);
    ``direct_per_sentence [component, batch]``; ``max_error``: largest ``|sum of parts - real
    output|`` before pooling. ``ablation[ablation_labels]``: mean ``1 - cos`` drop per ablation.
    """

    labels: list[str]
    direct: Float[Tensor, "component"]
    direct_per_sentence: Float[Tensor, "component batch"]
    max_error: float
    ablation_labels: list[str] = field(default_factory=list)
    ablation: Tensor = field(default_factory=lambda: torch.empty(0))

    def head_direct(self, n_layers: int, n_heads: int) -> Float[Tensor, "layer head"]:
        idx = [self.labels.index(head_label(l, h)) for l in range(n_layers) for h in range(n_heads)]
        return self.direct[idx].reshape(n_layers, n_heads)


def _frozen_norm(parts: Tensor, bias_index: int, norm, scale: Tensor) -> Tensor:
    """Apply a LayerNorm with its scale frozen to every part; its bias ``b`` goes to the ``bias`` part."""
    centred = parts - parts.mean(dim=-1, keepdim=True)
    out = centred / scale[None] * norm.w
    out[bias_index] = out[bias_index] + norm.b
    return out


def direct_decomposition(
    model, tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"]
) -> tuple[list[str], Float[Tensor, "component batch pos d_model"], float]:
    """The last block's output as a sum of components through frozen-scale post-norms (exact sum)."""
    cfg = model.config
    if cfg.norm_position != "post" or cfg.normalization != "layernorm" or cfg.attn_only or model.token_type_embed is None:
        raise ValueError(
            "direct_decomposition follows a BERT-style model (post-norm LayerNorm, MLPs, token types); "
            f"got normalization={cfg.normalization!r}, norm_position={cfg.norm_position!r}, attn_only={cfg.attn_only}"
        )
    names = ["hook_embed", "hook_pos_embed", "hook_token_type_embed", "ln_embed.hook_scale"]
    for l in range(cfg.n_layers):
        names += [f"blocks.{l}.attn.hook_result", f"blocks.{l}.ln1.hook_scale", f"blocks.{l}.hook_mlp_out", f"blocks.{l}.ln2.hook_scale"]
    names.append(f"blocks.{cfg.n_layers - 1}.hook_resid_post")
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, attention_mask=attention_mask, names_filter=names)
        labels = ["embed", "pos_embed", "token_type_embed", "bias"]
        parts = torch.stack([cache["hook_embed"], cache["hook_pos_embed"], cache["hook_token_type_embed"]])
        parts = torch.cat([parts, torch.zeros_like(parts[:1])])
        bias = 3
        parts = _frozen_norm(parts, bias, model.ln_embed, cache["ln_embed.hook_scale"])
        for l, block in enumerate(model.blocks):
            result = einops.rearrange(cache[f"blocks.{l}.attn.hook_result"], "batch pos head d_model -> head batch pos d_model")
            if block.attn.b_O is not None:
                parts[bias] = parts[bias] + block.attn.b_O
            parts = torch.cat([parts, result])
            labels += [head_label(l, h) for h in range(cfg.n_heads)]
            parts = _frozen_norm(parts, bias, block.ln1, cache[f"blocks.{l}.ln1.hook_scale"])
            mlp_out = cache[f"blocks.{l}.hook_mlp_out"]
            if block.mlp.b_out is not None:
                mlp_out = mlp_out - block.mlp.b_out
                parts[bias] = parts[bias] + block.mlp.b_out
            parts = torch.cat([parts, mlp_out[None]])
            labels.append(f"mlp{l}")
            parts = _frozen_norm(parts, bias, block.ln2, cache[f"blocks.{l}.ln2.hook_scale"])
        whole = cache[f"blocks.{cfg.n_layers - 1}.hook_resid_post"]
        real = attention_mask.bool()
        max_error = float((parts.sum(dim=0) - whole)[real].abs().max())
    return labels, parts, max_error


def embedding_contributions(
    model,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    *,
    ablations: bool = True,
) -> EmbeddingContributions:
    """Direct shares of each component in the sentence embedding, and (``ablations=True``) zero-ablation drops."""
    labels, parts, max_error = direct_decomposition(model, tokens, attention_mask)
    pooled = mean_pool(parts, attention_mask)  # [component, batch, d_model]
    total = pooled.sum(dim=0)  # [batch, d_model]
    unit = F.normalize(total, dim=-1)
    shares = einops.einsum(pooled, unit, "component batch d_model, batch d_model -> component batch") / total.norm(dim=-1)
    result = EmbeddingContributions(labels, shares.mean(dim=1), shares, max_error)
    if ablations:
        result.ablation_labels, result.ablation = ablation_drops(model, tokens, attention_mask)
    return result


def ablation_drops(
    model, tokens: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"]
) -> tuple[list[str], Float[Tensor, "component"]]:
    """Mean ``1 - cos(e, e')`` over sentences for each zero-ablation: each head, each attention layer, each MLP."""
    clean = sentence_embeddings(model, tokens, attention_mask)
    labels, drops = [], []

    def zero_heads(heads):
        def hook(z, hook):
            z = z.clone()
            z[:, :, heads] = 0.0
            return z

        return hook

    def zero(value, hook):
        return torch.zeros_like(value)

    for l in range(model.config.n_layers):
        runs = [(head_label(l, h), [(f"blocks.{l}.attn.hook_z", zero_heads([h]))]) for h in range(model.config.n_heads)]
        runs.append((f"attn{l}", [(f"blocks.{l}.attn.hook_z", zero_heads(list(range(model.config.n_heads))))]))
        if model.config.has_mlp:
            runs.append((f"mlp{l}", [(f"blocks.{l}.hook_mlp_out", zero)]))
        for label, hooks in runs:
            ablated = sentence_embeddings(model, tokens, attention_mask, hooks)
            labels.append(label)
            drops.append(1.0 - (clean * ablated).sum(dim=-1).mean())
    return labels, torch.stack(drops)
