"""The two fine-tuning tasks of the ``fine_tuning`` section, each run end to end and diffed (no downloads).

- :func:`lm_task`: a zoo preset (trained on the standard library's ``*.py``) fine-tuned as a
  language model on other local text (default: the stdlib's plain-text docs, ``idlelib/*.txt``)
  with :func:`circuits.training.finetune.finetune`; the new text's and the old corpus's held-out
  losses before and after, and :func:`circuits.analysis.model_diff.model_diff` of the two models.
- :func:`classification_task`: the real pretrained all-MiniLM-L6-v2 with a fresh classification
  head (:func:`circuits.model.classifier.with_classifier_head`) for "which stdlib package does
  this docstring come from?". Stage 1 trains the head alone on the frozen encoder (a linear
  probe: the accuracy *before* fine-tuning); stage 2 starts from it and also trains the top
  ``ft_layers`` blocks (the accuracy *after*). The diff compares stage 1 with stage 2 (same
  architecture, same head), ablations on the classification loss of the held-out split.

Fine-tune runs live under ``<zoo root>/fine_tuning/`` keyed by their settings and the parent's
folder; a complete run is reused (``resume=True``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from circuits.analysis.model_diff import ModelDiff, model_diff
from circuits.analysis.probes import prefixed_repeats, probe_scores, probe_token_ids
from circuits.experiments import base
from circuits.model import Transformer
from circuits.training import checkpoint as ckpt
from circuits.training.data import eval_windows, find_corpus, get_tokens
from circuits.training.finetune import finetune, finetune_config
from circuits.training.text_tasks import TextClassificationTask, classify_accuracy, docstring_split, encode_texts, stdlib_text_docs
from circuits.training.zoo import Zoo, digest

#: freeze patterns of a BERT body (everything but blocks and the head)
BERT_EMBEDDINGS = ("embed.*", "pos_embed.*", "token_type_embed.*", "ln_embed.*")


@dataclass(frozen=True, kw_only=True)
class Diff(base.Result):
    """A :class:`~circuits.analysis.model_diff.ModelDiff` as arrays (``[layer, head]`` each)."""

    weight_change: dict[str, np.ndarray]
    scores_before: dict[str, np.ndarray]
    scores_after: dict[str, np.ndarray]
    pattern_change: np.ndarray
    ablation_before: np.ndarray | None
    ablation_after: np.ndarray | None


def to_diff(diff: ModelDiff) -> Diff:
    arr = lambda t: None if t is None else t.detach().double().cpu().numpy()  # noqa: E731
    return Diff(
        weight_change={k: arr(v) for k, v in diff.weight_change.items()}, scores_before={k: arr(v) for k, v in diff.scores_before.items()},
        scores_after={k: arr(v) for k, v in diff.scores_after.items()}, pattern_change=arr(diff.pattern_change),
        ablation_before=arr(diff.ablation_before), ablation_after=arr(diff.ablation_after),
    )


# ---- language modelling on new text -------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LMTask(base.Result):
    preset: str
    corpus: str  #: the new text (a path or glob)
    corpus_bytes: int
    steps: int
    lr: float
    freeze: tuple[str, ...]
    tokens_seen: int
    new_loss_before: float  #: held-out loss on the new text
    new_loss_after: float
    old_loss_before: float  #: held-out loss on the parent's own corpus (forgetting)
    old_loss_after: float
    seconds: float  #: fine-tuning wall time recorded by the run
    probe_layout: str  #: the two_layer section's natural-prefix induction probe, in words
    probe_induction_before: np.ndarray  #: [layer, head] induction scores on that probe (the claim's)
    probe_induction_after: np.ndarray
    diff: Diff


def natural_prefix_induction(zoo: Zoo, preset: str, tokenizer, models, *, n_sequences: int = 20, seed: int = 0):
    """Induction scores of ``models`` on the two_layer section's probe: [BOS] + natural stdlib prefix + R + R (R of length min(50, (n_ctx-1)//3))."""
    data = get_tokens(zoo.corpus, tokenizer, val_fraction=zoo.configs(preset)[1].val_fraction, cache_dir=zoo.cache_dir)
    n_ctx, d_vocab = models[0].config.n_ctx, models[0].config.d_vocab
    allowed = probe_token_ids(data.train, d_vocab, data.bos_id)
    probe = prefixed_repeats(allowed, data.val, min(50, (n_ctx - 1) // 3), 2, n_ctx=n_ctx, batch=n_sequences, seed=seed, bos=data.bos_id)
    return probe.describe(), [probe_scores(m, probe).induction.double().numpy() for m in models]


def _mean_loss(model: Transformer, windows: torch.Tensor) -> float:
    with torch.no_grad():
        return float(model(windows, return_type="loss"))


def lm_task(zoo: Zoo, preset: str, *, corpus: str | None, steps: int, lr: float | None, freeze: tuple[str, ...], n_windows: int) -> LMTask:
    """Fine-tune ``preset`` on ``corpus`` (None: :func:`stdlib_text_docs`) and diff it against its parent."""
    parent_dir = zoo.ensure(preset)
    parent, tokenizer = zoo.model(preset)
    new = find_corpus(corpus or stdlib_text_docs())
    train_cfg = finetune_config(zoo.configs(preset)[1], steps=steps, lr=lr)  # in the key: a change of the defaults never reuses a run
    key = digest({"parent": str(ckpt.resolve_checkpoint(parent_dir)), "corpus": new.fingerprint, "train": train_cfg.to_dict(), "freeze": list(freeze)})
    out = zoo.root / "fine_tuning" / f"{preset}-lm-{key}"
    result = finetune(parent_dir, out_dir=out, corpus=new, steps=steps, lr=lr, freeze=freeze, resume=True, cache_dir=zoo.cache_dir,
                      progress=False, device="cpu")
    child, _ = ckpt.load(result.checkpoint)
    n_ctx = parent.config.n_ctx
    new_val = eval_windows(get_tokens(new, tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=zoo.cache_dir).val, n_ctx, n_windows, tokenizer.bos_id)
    old_val = eval_windows(get_tokens(zoo.corpus, tokenizer, val_fraction=train_cfg.val_fraction, cache_dir=zoo.cache_dir).val, n_ctx, n_windows, tokenizer.bos_id)
    diff = model_diff(parent, child, new_val)
    record = ckpt.read_config(result.checkpoint)
    layout, (ind_before, ind_after) = natural_prefix_induction(zoo, preset, tokenizer, [parent, child])
    return LMTask(
        preset=preset, corpus=new.source, corpus_bytes=new.n_bytes, steps=steps, lr=float(record["train"]["lr"]), freeze=tuple(freeze),
        tokens_seen=int(record["tokens_seen"]), new_loss_before=_mean_loss(parent, new_val), new_loss_after=_mean_loss(child, new_val),
        old_loss_before=_mean_loss(parent, old_val), old_loss_after=_mean_loss(child, old_val), seconds=float(result.elapsed_s),
        probe_layout=layout, probe_induction_before=ind_before, probe_induction_after=ind_after, diff=to_diff(diff),
    )


# ---- a classification head on MiniLM --------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ClassificationTask(base.Result):
    classes: tuple[str, ...]
    n_train: int
    n_test: int
    max_len: int
    probe_steps: int
    ft_steps: int
    ft_layers: tuple[int, ...]  #: the blocks trained in stage 2
    loss_probe: float  #: held-out cross-entropy after stage 1 (head only)
    accuracy_probe: float  #: held-out accuracy after stage 1: before fine-tuning the encoder
    loss_finetuned: float
    accuracy_finetuned: float  #: after stage 2
    accuracy_chance: float
    seconds: float
    diff: Diff


def _load_run(cfg, folder, tokenizer) -> Transformer:
    model = Transformer(cfg)
    ckpt.load_weights(model, ckpt.resolve_checkpoint(folder))
    model.tokenizer = tokenizer
    return model.eval()


def _stage(model, out, task, steps, lr, freeze, batch_size) -> tuple[Transformer, float]:
    changes = dict(n_log_checkpoints=0, n_linear_checkpoints=0, weight_decay=0.0, log_every=max(1, steps // 4))
    out = out.with_name(out.name + "-" + digest(finetune_config(None, steps=steps, lr=lr, batch_size=batch_size, **changes).to_dict()))
    result = finetune(model, out_dir=out, steps=steps, task=task, freeze=freeze, lr=lr, batch_size=batch_size, train_changes=changes,
                      resume=True, progress=False, device="cpu")
    return _load_run(model.config, result.run_dir, model.tokenizer), float(result.elapsed_s)


def classification_task(root, minilm_folder, cfg) -> ClassificationTask:
    """Stage 1 (head on the frozen encoder) and stage 2 (top blocks too) on the docstring task; the diff of the two."""
    from circuits.hf import load_hf
    from circuits.model.classifier import with_classifier_head

    split = docstring_split(cfg.packages, cfg.n_train, cfg.n_test, seed=cfg.seed)
    bert = load_hf(minilm_folder)
    clf = with_classifier_head(bert, len(split.classes), pool="mean", seed=cfg.seed)
    task = TextClassificationTask(split, bert.tokenizer, max_len=cfg.max_len)
    n_layers = clf.config.n_layers
    top = tuple(range(n_layers - cfg.ft_layers, n_layers))
    key = digest({"split": repr(split), "max_len": cfg.max_len, "seed": cfg.seed})
    base_dir = root / "fine_tuning" / f"minilm-docstrings-{key}"
    body = BERT_EMBEDDINGS + ("blocks.*",)
    probe, t1 = _stage(clf, base_dir / f"probe-{cfg.probe_steps}-{cfg.probe_lr}", task, cfg.probe_steps, cfg.probe_lr, body, cfg.batch_size)
    lower = BERT_EMBEDDINGS + tuple(f"blocks.{l}.*" for l in range(n_layers) if l not in top)
    ft_dir = base_dir / f"ft-{cfg.probe_steps}-{cfg.probe_lr}-{cfg.ft_steps}-{cfg.ft_lr}-{cfg.ft_layers}"
    tuned, t2 = _stage(probe, ft_dir, task, cfg.ft_steps, cfg.ft_lr, lower, cfg.batch_size)
    tokens, mask, labels = task.test
    loss_fn = lambda model: classify_accuracy(model, tokens, mask, labels)[0]  # noqa: E731
    heads = [f"L{l}H{h}" for l in top for h in range(clf.config.n_heads)[: cfg.ablation_heads]]
    diff = model_diff(probe, tuned, tokens, attention_mask=mask, loss_fn=loss_fn, ablation_heads=heads, induction={"batch": 4})
    (lp, ap), (lf, af) = classify_accuracy(probe, tokens, mask, labels), classify_accuracy(tuned, tokens, mask, labels)
    return ClassificationTask(
        classes=split.classes, n_train=len(split.train_texts), n_test=len(split.test_texts), max_len=cfg.max_len, probe_steps=cfg.probe_steps,
        ft_steps=cfg.ft_steps, ft_layers=top, loss_probe=lp, accuracy_probe=ap, loss_finetuned=lf, accuracy_finetuned=af,
        accuracy_chance=1 / len(split.classes), seconds=t1 + t2, diff=to_diff(diff),
    )


__all__ = ["Diff", "LMTask", "ClassificationTask", "lm_task", "classification_task", "to_diff", "encode_texts"]
