"""Figures, table, intro and notes of the phase-change section (re-exported by :mod:`circuits.experiments.phase_change`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from circuits.experiments import plots
from circuits.experiments.base import Figure, Table
from circuits.experiments.util import fmt

if TYPE_CHECKING:
    from circuits.experiments.phase_change import AblationStudy, Result


def _colours(r: Result) -> dict[str, str]:
    return plots.series_colours(r.names)


def _tokens_per_step(r: Result) -> float:
    m = r.models.get(r.main) or r.models[r.names[0]]
    return m.tokens[1] / max(m.steps[1], 1) if len(m.steps) > 1 else 1


def _band(r: Result) -> tuple[float, float] | None:
    """The main model's phase-change window in training tokens (at least one step wide), or ``None`` without a main model."""
    main = r.models.get(r.main)
    if main is None:
        return None
    tps, (start, end) = _tokens_per_step(r), main.window
    return start * tps, max(end, start + 1) * tps


def _shown(r: Result) -> list[str]:
    """The models of the loss-by-index figures: the main model and its 1L control."""
    return [n for n in (r.main, r.control) if n in r.models] or r.names[:1]


def _figure_icl(r: Result) -> Figure:
    M, colours = r.models, _colours(r)
    fig = plots.curves(
        {n: (M[n].tokens, -M[n].icl) for n in r.names}, steps={n: M[n].steps for n in r.names}, colours=colours,
        title="In-context learning score over training", x_title="training tokens", y_title="-(L(late) - L(early)) (nats)", x_format=",",
    )
    shaded = [n for n in (r.main, r.corpus_control) if n in M]
    for n in shaded:
        plots.add_interval(fig, M[n].tokens, M[n].icl_ci[:, 0], M[n].icl_ci[:, 1], colour=colours[n], name=n)
    main = M.get(r.main)
    half = f" (±{fmt((main.icl_ci[-1, 1] - main.icl_ci[-1, 0]) / 2)} nats for {r.main} at the last checkpoint)" if main else ""
    return Figure(
        key="phase_change_icl", title="In-context learning score over training",
        caption=(f"ICL score of every checkpoint on {r.eval_windows} windows; shaded around {' and '.join(shaded)}: 95% bootstrap intervals "
                 f"over those windows{half} (the same windows at every checkpoint, so the curves' shapes are surer than their levels). Red "
                 f"band: the phase-change window of {r.main} (the quarter of training over which its ICL gains most: steps "
                 f"{main.window[0] if main else 'n/a'}-{main.window[1] if main else 'n/a'}). Final |ICL| on {r.claim_windows} windows: "
                 + ", ".join(f"{n} {M[n].final_icl_claim.text()}" for n in r.names) + "."),
        fig=plots.add_band(fig, _band(r)),
    )


def _figure_prefix_matching(r: Result) -> Figure:
    panels = {n.replace("attn-only-", ""): (r.models[n].tokens, r.models[n].prefix_matching) for n in r.names}
    fig = plots.head_curve_panels(panels, title="Prefix-matching score per head (blue L0, green L1, red L2)",
                                  x_title="tokens", y_title="prefix-matching score")
    M = r.models
    return Figure(
        key="phase_change_prefix_matching", title="Prefix-matching score of each head over training",
        caption=(f"Attention from each token of repeats 2-4 of a random sequence to the tokens after its earlier copies ({r.probe_layout}, "
                 f"{r.probe_sequences} sequences at every checkpoint). Final maximum with its 95% interval over the sequences: "
                 + ", ".join(f"{n} {fmt(M[n].pm_max[-1])} [{fmt(M[n].pm_ci[-1, 0])}, {fmt(M[n].pm_ci[-1, 1])}]" for n in r.names) + "."),
        fig=plots.add_band(fig, _band(r), row="all", col="all"),
    )


def _figure_loss(r: Result) -> Figure:
    tps, control, main = _tokens_per_step(r), r.models.get(r.control), r.models.get(r.main)
    titles = ("validation loss at each checkpoint (train loss thin)", "rate of decrease -dL/dstep (nats per 1k steps)", f"loss gap {r.control} - model")
    rows: dict[str, dict] = {t: {} for t in titles}
    train = {n: (np.asarray(r.models[n].train_steps) * tps, r.models[n].train_loss) for n in r.names}
    for n in r.names:
        m = r.models[n]
        rows[titles[0]][n] = (m.tokens, m.loss)
        if len(m.bump.rate):
            rows[titles[1]][n] = (m.bump.rate_steps * tps, m.bump.rate * 1000)
        if control is not None and control.steps == m.steps and n != r.control:
            rows[titles[2]][n] = (m.tokens, control.loss - m.loss)
    fig = plots.curve_rows(rows, title="Loss, its rate of decrease and the gap to the 1L control", x_title="training tokens",
                           colours=_colours(r), faint={titles[0]: train})
    return Figure(key="phase_change_loss", title="The loss bump",
                  caption=(f"A bump is a place where the loss starts falling faster again (the rate of decrease rises). Largest rise for "
                           f"{r.main} at step {fmt(main.bump.step if main else None)} (score {fmt(main.bump.score if main else None)}); "
                           f"for {r.control} score {fmt(control.bump.score if control else None)}."),
                  fig=plots.add_band(fig, _band(r), row="all", col=1))


def _figure_pca(r: Result) -> Figure:
    M, ev = r.models, r.pca_explained
    marks = {n: (*M[n].pca[M[n].steps.index(M[n].pivot_step)], f"{n} pivot, step {M[n].pivot_step}") for n in r.names
             if M[n].pivot_step is not None}
    fig = plots.curves(
        {n: (M[n].pca[:, 0], M[n].pca[:, 1]) for n in r.names}, steps={n: M[n].steps for n in r.names}, marks=marks, colours=_colours(r),
        title="Per-token loss PCA trajectories (×: sharpest turn)", x_title=f"PC1 ({100 * ev[0]:.0f}% of variance)",
        y_title=f"PC2 ({100 * ev[1]:.0f}%)", height=480,
    )
    return Figure(key="phase_change_pca", title="Per-token loss PCA trajectories",
                  caption=("Each checkpoint's losses on a fixed sample of (example, index) pairs, projected on the two top principal "
                           "components of all checkpoints of all models. Sharpest turn: "
                           + ", ".join(f"{n} step {M[n].pivot_step}" for n in r.names) + "."),
                  fig=fig)


def _figure_loss_by_index(r: Result) -> Figure:
    M = r.models
    panels = {n: (M[n].per_position_loss, np.arange(1, M[n].per_position_loss.shape[1] + 1), M[n].steps) for n in _shown(r)}
    fig = plots.heatmap_panels(panels, title="Loss by context index and training step", x_title="token index (log)",
                               y_title="training step", value="loss (nats)", log_x=True)
    first = r.log_index.first if r.log_index else r.early[0]
    return Figure(key="phase_change_loss_by_index", title="Loss by context index and training step",
                  caption=("Mean loss of the token at each index, for each checkpoint. Slope of loss against ln(index) beyond index "
                           f"{first}: " + ", ".join(f"{n} {fmt(M[n].slope_before)} (step {M[n].before_step}, before the prefix-matching "
                                                   f"rise) -> {fmt(M[n].slope_after)} (final)" for n in _shown(r)) + " nats per e-fold."),
                  fig=fig)


def _figure_loss_by_log_index(r: Result) -> Figure:
    colours, series, line_colours, dashes = _colours(r), {}, {}, {}
    for n in _shown(r):
        m = r.models[n]
        for which, row, dash in (("before", m.steps.index(m.before_step), "dot"), ("final", -1, "solid")):
            label = f"{n} {which} (step {m.steps[row]})"
            series[label] = (np.arange(1, m.per_position_loss.shape[1] + 1), m.per_position_loss[row])
            line_colours[label], dashes[label] = colours[n], dash
    fig = plots.curves(series, colours=line_colours, dashes=dashes, title="Loss against log index, before and after the phase change",
                       x_title="token index (log)", y_title="loss (nats)", log_x=True, mode="lines")
    return Figure(key="phase_change_loss_by_log_index", title="Loss against log index before and after",
                  caption=("Dotted: the last checkpoint before the prefix-matching rise; solid: the final checkpoint. After the phase change "
                           "the 2L model keeps improving with context out to the end; the 1L model flattens early."),
                  fig=fig)


def _figure_ablation(r: Result, ab: AblationStudy) -> Figure:
    fig = plots.bar_panels(ab.labels, {"change in ICL score (+ = less ICL)": ab.icl_delta, "dot with the before-and-after vector": ab.dot},
                           title=f"Pattern-preserving ablations, final {r.main}")
    plots.mark_bars(fig, [lab in ab.induction_labels or lab.startswith("induction") for lab in ab.labels])
    fig.update_layout(margin_t=90)  # the title above the subplot titles
    return Figure(key="phase_change_ablation", title="Ablating the induction heads removes in-context learning",
                  caption=(f"Clean ICL score {ab.clean_icl.text()} nats on {ab.windows} windows. Red: induction heads "
                           f"({', '.join(sorted(ab.induction_labels))}). The before-and-after vector is the per-token loss change from step "
                           f"{ab.phase_steps[0]} to step {ab.phase_steps[1]} (the phase-change window), unit length."),
                  fig=fig)


def figures(result: Result) -> list[Figure]:
    r = result
    out = [_figure_icl(r), _figure_prefix_matching(r), _figure_loss(r), _figure_pca(r), _figure_loss_by_index(r), _figure_loss_by_log_index(r)]
    return out + ([_figure_ablation(r, r.ablation)] if r.ablation else [])


# ---- table and text ----------------------------------------------------------------------------
def tables(result: Result) -> list[Table]:
    M = result.models
    return [Table(
        key="phase_change_summary", title="Phase-change timing per model (steps)",
        columns=["model", "trained on", f"final |ICL| ({result.claim_windows} windows, 95%)", "densest quarter", "ICL 10%", "ICL 50%",
                 "ICL 90%", "prefix-matching 50%", "final max prefix matching", "loss bump at", "bump score", "PCA turn at"],
        rows=[[n, result.data_labels.get(n, ""), M[n].final_icl_claim.text(), f"{M[n].window[0]}-{M[n].window[1]}", M[n].icl_rise.t10,
               M[n].icl_rise.t50, M[n].icl_rise.t90, M[n].pm_rise.t50, fmt(M[n].pm_max[-1]), fmt(M[n].bump.step), fmt(M[n].bump.score),
               M[n].pivot_step] for n in result.names],
    )]


def intro(result: Result) -> str:
    r = result
    return (
        "Every checkpoint of " + ", ".join(r.names) + " (same data order) is evaluated on the same "
        f"{r.eval_windows} validation windows of {r.n_pos} tokens and on the same {r.probe_sequences} random repeated sequences. "
        f"{r.corpus_control} is {r.main} trained on the corpus alone: beside it, the figures show what the copied-span augmentation "
        f"of the other models changes. The phase-change window is the quarter of training over which the ICL score of {r.main} gains "
        f"most. The numbers the claims read are measured again on {r.claim_windows} windows, with 95% bootstrap intervals. "
        f"Evaluation took {fmt(r.seconds)} s."
    )


def _corpus_note(r: Result) -> str | None:
    main, corpus = r.models.get(r.main), r.models.get(r.corpus_control)
    if main is None or corpus is None:
        return None
    def say(n, m):
        return (f"{n} ({r.data_labels.get(n, '')}): final |ICL| {m.final_icl_claim.text()}, best prefix-matching head "
                f"{fmt(m.pm_max[-1])} [{fmt(m.pm_ci[-1, 0])}, {fmt(m.pm_ci[-1, 1])}], prefix matching 50% at step {m.pm_rise.t50}")
    return "What the augmentation changes: " + say(r.main, main) + "; " + say(r.corpus_control, corpus) + "."


def notes(result: Result) -> list[str]:
    r = result
    out = [r.band_note,
           f"Prefix matching uses the +1 offset (the token after each earlier copy) on {r.probe_layout}; {r.probe_rule}.",
           (f"Uncertainty: 95% percentile bootstrap intervals, over the {r.claim_windows} evaluation windows for ICL scores, slopes and "
            f"ablation effects, over the {r.probe_sequences} probe sequences for prefix-matching scores; the 50% steps of a rise are "
            "bootstrapped the same way (the whole curve resampled)."),
           _corpus_note(r)]
    if r.quick:
        out.append("Quick mode: tiny models trained for a few dozen steps with few checkpoints; the claims are not expected to hold.")
    return [n for n in out + [r.data_note] if n]
