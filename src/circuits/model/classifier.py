"""Turn a model into a classifier: the same body, a fresh classification head (for fine-tuning).

The head itself is part of :class:`circuits.Transformer` (``TransformerConfig.n_classes`` /
``pool``; see ``circuits.model.inputs``); this module only swaps it onto an existing model.
"""

from __future__ import annotations

import torch

from circuits.model.transformer import Transformer


def with_classifier_head(model: Transformer, n_classes: int, pool: str = "mean", seed: int = 0) -> Transformer:
    """A new model with ``model``'s weights (copied) and a fresh head ``W_U [d_model, n_classes]``, ``b_U``.

    ``pool="mean"`` averages the final residual over real positions (``attention_mask``; the class
    token excluded for images), ``"cls"`` reads position 0. The head's ``W_U`` is drawn from
    ``Normal(0, init_range)`` with ``seed``; ``b_U`` starts at zero. Tied embeddings are untied (the
    old unembedding is dropped). The result is in the mode ``model`` was in.
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"with_classifier_head expects a circuits.Transformer, got {type(model).__name__}")
    cfg = model.config.replace(n_classes=n_classes, pool=pool, tied_embeddings=False, d_vocab_out=None)
    new = Transformer(cfg)
    body = {name: value for name, value in model.state_dict().items() if not name.startswith("unembed.")}
    missing, unexpected = new.load_state_dict(body, strict=False)
    if unexpected or any(not name.startswith("unembed.") for name in missing):
        raise RuntimeError(f"with_classifier_head: weights did not transfer (missing {missing}, unexpected {unexpected})")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        new.unembed.W_U.copy_(torch.randn(new.unembed.W_U.shape, generator=generator) * cfg.init_range_)
        if new.unembed.b_U is not None:
            new.unembed.b_U.zero_()
    new.tokenizer = model.tokenizer
    param = next(model.parameters())
    return new.to(device=param.device, dtype=param.dtype).train(model.training)
