"""Training layer: everything that turns a corpus into trained checkpoints (imports only ``config``, ``atomic`` and ``model``).

- ``data``: corpus discovery, train/validation split, token caches, batch sampling
- ``tokenizer``: byte-level BPE with a BOS token
- ``config``: :class:`TrainConfig`
- ``loop``: :func:`train`, the training loop (checkpoints, resume, evaluation, divergence stop)
- ``task``: what a run learns from (:class:`~circuits.training.task.Task`: batches, loss, evaluation;
  :class:`~circuits.training.task.LanguageModelTask` is the default)
- ``init``: ``train(init_from=..., freeze=...)``: a parent's weights with their provenance, frozen parameters
- ``run_folder``: what a run folder may hold, where a resumed run starts, what resuming cleans up
- ``lock``: exclusive folder locks (one writer per run folder, or per report runs folder)
- ``checkpoint``: safetensors + JSON checkpoints, :func:`load`
- ``distributed``: data-parallel training
- ``presets``: the named model + training settings the report uses
- ``zoo``: trained presets by name, trained on first use and reused (``parallel``: several at once)
"""
