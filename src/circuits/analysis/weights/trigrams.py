"""Skip-trigram tables and top singular directions of a head's full circuits, decoded to token strings.

A one-layer attention-only model is a bigram table plus, per head, skip-trigrams
"``[source] ... [destination] -> [output]``" (Framework paper, "Interpretation as Skip-Trigrams"):
the destination token attends to the source through the full QK circuit
``QK[destination, source]`` and attending to the source changes the output logits through the
full OV circuit ``OV[source, output]``. In deeper models the same tables describe each head's
direct path only.

Tokens are decoded with ``tokenizer.token_str(id)`` (any object with that method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from transformer_lens import FactoredMatrix

from circuits.model import Transformer
from circuits.analysis.weights.qkov import full_ov_circuit, full_qk_circuit, head_ranges, require_vocabulary

__all__ = ["SkipTrigram", "SkipTrigramTable", "SingularDirection", "skip_trigrams", "top_singular_directions"]

#: Largest number of circuit entries skip_trigrams materialises at once.
_CHUNK_ELEMENTS = 2**22


@dataclass(frozen=True)
class SkipTrigram:
    """One skip-trigram ``source ... destination -> output`` of a head.

    ``qk`` is the full QK circuit entry ``[destination, source]`` (attention logit before the
    ``1/sqrt(d_head)`` scale), ``ov`` the full OV entry ``[source, output]`` (logit change), and
    ``strength = max(qk, 0) * max(ov, 0)``: large only when the destination attends to the
    source *and* the source raises the output; unchanged in ranking if either circuit is rescaled.
    """

    source: int
    destination: int
    output: int
    source_str: str
    destination_str: str
    output_str: str
    qk: float
    ov: float
    strength: float

    def __str__(self) -> str:
        return f"{self.source_str} ... {self.destination_str} -> {self.output_str}"


@dataclass(frozen=True)
class SkipTrigramTable:
    """The strongest skip-trigrams of head ``head`` (label ``L{layer}H{head}``), strongest first."""

    head: str
    triples: tuple[SkipTrigram, ...]

    def __len__(self) -> int:
        return len(self.triples)

    def __iter__(self) -> Iterator[SkipTrigram]:
        return iter(self.triples)

    def __getitem__(self, index: int) -> SkipTrigram:
        return self.triples[index]


@dataclass(frozen=True)
class SingularDirection:
    """One singular direction ``s u v^T`` of a full circuit, with the tokens at both ends of ``u`` and ``v``.

    ``u`` indexes rows (input/query tokens), ``v`` columns (output/key tokens). The sign is fixed
    so that ``u``'s largest-magnitude entry is positive; since ``s u v^T`` is unchanged when both
    flip, the ``*_top`` tokens go together (rows in ``rows_top`` raise columns in ``cols_top``),
    and so do the ``*_bottom`` tokens.
    """

    head: str
    circuit: str
    index: int
    singular_value: float
    rows_top: tuple[str, ...]
    cols_top: tuple[str, ...]
    rows_bottom: tuple[str, ...]
    cols_bottom: tuple[str, ...]


def skip_trigrams(model: Transformer, tokenizer, layer: int, head: int, k: int = 20) -> SkipTrigramTable:
    """The ``k`` strongest skip-trigrams of head ``(layer, head)``, read from its full QK and OV circuits.

    Ranked by ``strength = max(QK[destination, source], 0) * max(OV[source, output], 0)`` over
    all ``d_vocab^3`` triples, exactly: for each source only its top-``k`` destinations and
    top-``k`` outputs can take part, so the search costs two passes over ``d_vocab x d_vocab``
    in chunks, never the whole matrix. Fewer than ``k`` rows when fewer triples have positive
    strength. Folded weights (see :mod:`circuits.analysis.weights.qkov`); rotary models raise ``ValueError``.
    """
    require_vocabulary(model, "skip_trigrams")
    _check_tokenizer(tokenizer)
    if layer is None or head is None:
        raise ValueError("skip_trigrams needs one head: give layer=<int> and head=<int>")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"skip_trigrams: k must be a positive int, got {k!r}")
    qk = full_qk_circuit(model, layer, head)  # [destination (query), source (key)]
    ov = full_ov_circuit(model, layer, head)  # [source, output]
    d_vocab, d_out = qk.ldim, ov.rdim
    n_dest, n_out = min(k, d_vocab), min(k, d_out)
    chunk = max(1, _CHUNK_ELEMENTS // max(d_vocab, d_out))
    best = torch.empty(0, dtype=torch.float64)
    best_idx = torch.empty(0, 3, dtype=torch.long)
    for start in range(0, d_vocab, chunk):
        sources = torch.arange(start, min(start + chunk, d_vocab))
        qk_cols = (qk.A @ qk.B[:, sources]).T.double()  # [chunk, destination]
        ov_rows = (ov.A[sources] @ ov.B).double()  # [chunk, output]
        q_val, q_idx = qk_cols.topk(n_dest, dim=-1)
        o_val, o_idx = ov_rows.topk(n_out, dim=-1)
        strength = q_val.clamp_min(0)[:, :, None] * o_val.clamp_min(0)[:, None, :]  # [chunk, n_dest, n_out]
        src = sources[:, None, None].expand_as(strength)
        dst = q_idx[:, :, None].expand_as(strength)
        out = o_idx[:, None, :].expand_as(strength)
        cand = torch.cat([best, strength.reshape(-1)])
        cand_idx = torch.cat([best_idx, torch.stack([src, dst, out], -1).reshape(-1, 3)])
        keep = cand.topk(min(k, len(cand))).indices
        best, best_idx = cand[keep], cand_idx[keep]
    label = f"L{layer}H{head}"
    triples = []
    for value, (s, d, o) in zip(best.tolist(), best_idx.tolist()):
        if value <= 0:
            break
        qk_value = float(qk.A[d] @ qk.B[:, s])
        ov_value = float(ov.A[s] @ ov.B[:, o])
        triples.append(
            SkipTrigram(s, d, o, tokenizer.token_str(s), tokenizer.token_str(d), tokenizer.token_str(o), qk_value, ov_value, value)
        )
    return SkipTrigramTable(label, tuple(triples))


def top_singular_directions(
    model: Transformer, tokenizer, layer: int, head: int, *, circuit: str = "ov", n_directions: int = 3, k: int = 10
) -> list[SingularDirection]:
    """The ``n_directions`` largest singular directions of a head's full OV (or QK) circuit, decoded to ``k`` tokens per end.

    From the factored SVD (``FactoredMatrix.svd``: ``O(d_vocab d_head^2)``, never
    ``d_vocab x d_vocab``). ``circuit="ov"``: rows are input tokens, columns output tokens;
    ``"qk"``: rows are query tokens, columns key tokens.
    """
    require_vocabulary(model, "top_singular_directions")
    _check_tokenizer(tokenizer)
    if circuit not in ("ov", "qk"):
        raise ValueError(f"top_singular_directions: circuit must be 'ov' or 'qk', got {circuit!r}")
    if layer is None or head is None:
        raise ValueError("top_singular_directions needs one head: give layer=<int> and head=<int>")
    head_ranges(model, layer, head)
    fm: FactoredMatrix = full_ov_circuit(model, layer, head) if circuit == "ov" else full_qk_circuit(model, layer, head)
    U, S, V = fm.svd()
    if isinstance(n_directions, bool) or not isinstance(n_directions, int) or not 1 <= n_directions <= S.shape[-1]:
        raise ValueError(f"n_directions must be an int in [1, {S.shape[-1]}] (the circuit's rank is at most d_head), got {n_directions!r}")
    n_tokens = min(U.shape[0], V.shape[0])
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_tokens:
        raise ValueError(f"k (tokens per end) must be an int in [1, {n_tokens}], got {k!r}")
    directions = []
    for i in range(n_directions):
        u, v = U[:, i], V[:, i]
        sign = torch.sign(u[u.abs().argmax()]).item() or 1.0
        u, v = u * sign, v * sign
        decode = lambda ids: tuple(tokenizer.token_str(int(t)) for t in ids)  # noqa: E731
        directions.append(
            SingularDirection(
                head=f"L{layer}H{head}",
                circuit=circuit,
                index=i,
                singular_value=float(S[i]),
                rows_top=decode(u.topk(k).indices),
                cols_top=decode(v.topk(k).indices),
                rows_bottom=decode((-u).topk(k).indices),
                cols_bottom=decode((-v).topk(k).indices),
            )
        )
    return directions


def _check_tokenizer(tokenizer: object) -> None:
    if not callable(getattr(tokenizer, "token_str", None)):
        raise TypeError(
            f"tokenizer must have a token_str(id) -> str method (e.g. circuits' Tokenizer), got {type(tokenizer).__name__}"
        )
