"""The hookable transformer. This docstring is the glossary used everywhere in ``circuits``.

Axis names (in every jaxtyping annotation and einops string; no synonyms)
    ``batch``        sequences in a batch
    ``pos``          token positions when query and key positions coincide
    ``query_pos``    position of the query (destination) inside attention
    ``key_pos``      position of the key (source) inside attention
    ``layer``        block index
    ``head``         query head; ``kv_head`` key/value head (grouped-query attention)
    ``d_model``      residual stream width; ``d_head`` per-head width; ``d_mlp`` MLP width
    ``d_vocab``      input vocabulary; ``d_vocab_out`` output vocabulary
    ``component``    the stacked axis of a decomposition (its labels say what each entry is)
    ``query_token`` / ``key_token``      rows / columns of a vocabulary-by-vocabulary QK circuit
    ``input_token`` / ``output_token``   rows / columns of a vocabulary-by-vocabulary OV circuit

Orientation
    Weights right-multiply row vectors, as in TransformerLens: ``q = x @ W_Q``. Hence
    ``W_QK = W_Q W_K^T`` and ``W_OV = W_V W_O`` (the paper, with column vectors, writes
    ``W_Q^T W_K`` and ``W_O W_V``). The full OV circuit is ``W_E W_OV W_U``
    ``[input_token, output_token]`` (paper ``W_U W_OV W_E``); the full QK circuit is
    ``W_E W_QK W_E^T`` ``[query_token, key_token]`` (paper ``W_E^T W_QK W_E``).

Parameters (TransformerLens names and shapes)
    ``embed.W_E [d_vocab, d_model]``, ``pos_embed.W_pos [n_ctx, d_model]``,
    ``blocks.{l}.attn.W_Q [head, d_model, d_head]``, ``W_K``/``W_V [kv_head, d_model, d_head]``,
    ``W_O [head, d_head, d_model]``, ``b_Q [head, d_head]``, ``b_K``/``b_V [kv_head, d_head]``,
    ``b_O [d_model]``, ``blocks.{l}.mlp.W_in [d_model, d_mlp]`` (``W_gate`` too for SwiGLU),
    ``W_out [d_mlp, d_model]``, ``b_in``, ``b_out``, norms ``ln1``/``ln2``/``ln_final``
    (``w``, ``b``), ``unembed.W_U [d_model, d_vocab_out]``, ``b_U``.

Hook names (module paths; every hook point that exists fires)
    ``hook_embed``, ``hook_pos_embed`` (learned/sinusoidal; shortformer models have
    ``hook_shortformer_pos_embed`` instead, since those positions never enter the residual
    stream), ``hook_token_type_embed``,
    ``blocks.{l}.hook_resid_pre``, ``blocks.{l}.ln1.hook_scale``/``hook_normalized``,
    ``blocks.{l}.attn.hook_q``/``hook_k``/``hook_v`` (``hook_smeared_k`` with smeared keys,
    ``hook_rot_q``/``hook_rot_k`` with rotary), ``hook_attn_scores`` (pre-softmax, masked
    entries ``-inf``), ``hook_pattern``, ``hook_z``, ``hook_result`` (per-head output
    ``[batch, pos, head, d_model]``), ``blocks.{l}.hook_attn_out``, ``blocks.{l}.hook_resid_mid``,
    ``blocks.{l}.mlp.hook_pre``/``hook_pre_linear``/``hook_post``, ``blocks.{l}.hook_mlp_out``,
    ``blocks.{l}.hook_resid_post``, ``ln_final.hook_scale``/``hook_normalized``, and with a
    classification head ``hook_pooled`` (the pooled final residual ``[batch, d_model]``).
    ``run_with_cache`` derives ``hook_attn_scores``, ``hook_pattern``, ``hook_result``, the norms'
    ``hook_scale`` and ``mlp.hook_post`` on first read when no hook observes them, bitwise equal
    to the forward's values (``model/cache.py``); hooks that leave a tensor unchanged change no number.

Choices made once at build time
    ``model.positional`` is the positional scheme object (``model/positional.py``: one class per
    scheme, answering whether positions enter the residual stream or only the query/key input,
    whether there is a position table, how q/k rotate, what attention bias is added);
    ``model.mask`` is the mask object (``model/masks.py``); ``model.input`` reads token ids or image
    patches and ``model.head`` gives logits per position or pools them for a classifier
    (``model/inputs.py``; patch input: ``embed.W_E [n_channels * patch_size**2, d_model]``,
    ``embed.b_E``, class token ``embed.W_cls``). ``forward`` asks these objects and never
    compares config strings.

Labels
    Heads ``L{layer}H{head}``; virtual heads ``L0H7->L1H4``; other components ``embed``,
    ``pos_embed``, ``mlp{layer}``, ``bias``.
"""

from circuits.model.transformer import Transformer, lm_cross_entropy

__all__ = ["Transformer", "lm_cross_entropy"]
