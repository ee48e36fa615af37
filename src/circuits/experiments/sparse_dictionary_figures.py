"""Figures and tables of the ``sparse_dictionary`` section (built from its ``Result``; drawn with the shared plot builders)."""

from __future__ import annotations

import numpy as np

from circuits.experiments import plots
from circuits.experiments.base import Figure, Table

__all__ = ["figures", "tables", "planted_label"]


def _arch_label(architecture: str) -> str:
    return "ReLU + L1" if architecture == "standard" else "TopK"


def planted_label(r) -> str:
    """``"synthetic, ReLU + L1"``, ``"toy model, TopK"``, ... for one known-feature SAE."""
    return f"{r.source}, {_arch_label(r.architecture)}"


def figures(result) -> list[Figure]:
    return [recovery_figure(result), planted_training_figure(result), model_training_figure(result), density_figure(result),
            loss_figure(result), histograms_figure(result)]


def recovery_figure(result) -> Figure:
    panels = {}
    for r in result.planted:
        panels.setdefault(f"{r.source} ({r.n_features} features in {r.d_in} dims)", {})[_arch_label(r.architecture)] = (
            list(range(1, len(r.max_cosines) + 1)), r.max_cosines)
    reference = {panel: {"threshold": result.min_mean_max_cosine} for panel in panels}
    return Figure(
        key="planted_recovery",
        title="Known features found: best cosine with a dictionary direction",
        caption=(
            "Each true direction's largest cosine similarity with any of the SAE's dictionary directions, sorted; "
            f"dotted: the claim's threshold on the mean ({result.min_mean_max_cosine}). "
            + "; ".join(f"{planted_label(r)}: mean {r.mean_max_cosine:.3f}, L0 {r.l0:.2f}, FVU {r.fvu:.3f}" for r in result.planted) + "."
        ),
        fig=plots.line_panels(panels, title="Known features: max cosine similarity", x_title="true feature (sorted)", y_title="max cosine",
                              reference=reference),
    )


def planted_training_figure(result) -> Figure:
    panels = {
        "MSE (normalised)": {planted_label(r): (r.curve.steps, r.curve.mse) for r in result.planted},
        "L0": {planted_label(r): (r.curve.steps, r.curve.l0) for r in result.planted},
    }
    resampled = ", ".join(f"{planted_label(r)} {r.n_resampled}" for r in result.planted)
    return Figure(
        key="planted_training",
        title="Training on known features",
        caption=f"Reconstruction error and L0 by step for every known-feature SAE. Latents resampled (dead since the last resampling): {resampled}.",
        fig=plots.line_panels(panels, title="SAE training on known features", x_title="step"),
    )


def model_training_figure(result) -> Figure:
    m = result.model_sae
    panels = {"MSE (normalised)": {"SAE": (m.curve.steps, m.curve.mse)}, "L0": {"SAE": (m.curve.steps, m.curve.l0)},
              "dead fraction": {"SAE": (m.curve.steps, m.curve.dead_fraction)}}
    return Figure(
        key="model_training",
        title=f"Training the SAE on {m.preset} {m.hook_name}",
        caption=(
            f"Reconstruction MSE (inputs scaled to mean norm sqrt(d_model)), L0 and the share of latents that did not fire in the last window, by step; "
            f"{m.n_train_activations:,} activations streamed through run_with_hooks ("
            + (f"TopK, k = {m.k})." if m.k else f"ReLU, L1 coefficient {m.l1_coefficient}).")
        ),
        fig=plots.line_panels(panels, title="SAE training on the residual stream", x_title="step"),
    )


def density_figure(result) -> Figure:
    m = result.model_sae
    values = m.log10_frequency[np.isfinite(m.log10_frequency)]
    edges = np.linspace(-5, 0, 21)
    counts, _ = np.histogram(np.clip(values, -5, 0), bins=edges)
    labels = [f"{lo:.2f}" for lo in edges[:-1]]
    return Figure(
        key="feature_density",
        title="How often each latent fires",
        caption=(
            f"Histogram of log10 firing frequency over {m.n_eval_activations:,} validation activations ({m.d_sae} latents): "
            f"{100 * m.dead_fraction:.1f}% never fire (not shown), {100 * m.dense_fraction:.1f}% fire on more than {100 * m.dense_threshold:.0f}% of tokens."
        ),
        fig=plots.bars(labels, {"latents": counts}, title="Feature density", x_title="log10 firing frequency (bin start)", y_title="latents"),
    )


def loss_figure(result) -> Figure:
    m = result.model_sae
    names = ["clean", "SAE spliced in", "zero-ablated"]
    return Figure(
        key="spliced_loss",
        title="Cross-entropy with the SAE's reconstruction spliced in",
        caption=(
            f"Next-token cross-entropy (nats) on validation windows: clean {m.ce_clean:.3f}, with {m.hook_name} replaced by the SAE's reconstruction "
            f"{m.ce_spliced:.3f}, replaced by zeros {m.ce_zero_ablated:.3f}: {100 * m.ce_recovered:.1f}% of the zero-ablation loss recovered."
        ),
        fig=plots.bars(names, {"cross-entropy": [m.ce_clean, m.ce_spliced, m.ce_zero_ablated]}, title="Spliced-in loss", x_title="", y_title="nats"),
    )


def histograms_figure(result) -> Figure:
    m = result.model_sae
    panels = {}
    for page in m.pages:
        nonzero = np.nonzero(page.histogram_counts)[0]
        lo, hi = (int(nonzero.min()), int(nonzero.max()) + 1) if nonzero.size else (0, 1)
        labels = [f"{page.histogram_edges[i]:.3g}" for i in range(lo, hi)]
        panels[f"latent {page.feature}"] = (labels, page.histogram_counts[lo:hi])
    return Figure(
        key="feature_histograms",
        title="Activation histograms of the top latents",
        caption="For each paged latent, the count of its non-zero activations per log-spaced bin (bin start shown); the feature pages table lists its contexts and logit effects.",
        fig=plots.bar_charts(panels, title="Activation histograms", y_title="activations"),
    )


def tables(result) -> list[Table]:
    return [metrics_table(result), pages_table(result)]


def metrics_table(result) -> Table:
    m = result.model_sae
    rows = [[planted_label(r), len(r.max_cosines), round(r.l0, 2), round(r.fvu, 4), round(r.fvu_about_zero, 4),
             round(100 * r.dead_fraction, 1), "", ""] for r in result.planted]
    rows.append([f"{m.preset} {m.hook_name}", m.d_sae, round(m.l0, 2), round(m.fvu, 4), round(m.fvu_about_zero, 4), round(100 * m.dead_fraction, 1),
                 round(100 * m.dense_fraction, 1), round(100 * m.ce_recovered, 1)])
    return Table(
        key="sae_metrics", title="SAE metrics",
        columns=["SAE", "latents", "L0", "FVU (about mean)", "FVU (about zero)", "dead %", "dense %", "CE recovered %"],
        rows=rows,
        caption="FVU about the mean is the one to read; about zero is shown because it looks better whenever the activations have a mean. Dense: firing on more than 10% of tokens.",
    )


def pages_table(result) -> Table:
    m = result.model_sae
    rows = []
    for page in m.pages:
        contexts = " | ".join(f"{text} ({a:.2f})" for text, a in zip(page.contexts, page.context_activations))
        rows.append([page.feature, round(page.firing_frequency, 4), round(page.max_activation, 3), contexts,
                     ", ".join(f"{t} {v:+.2f}" for t, v in page.promoted), ", ".join(f"{t} {v:+.2f}" for t, v in page.suppressed)])
    return Table(
        key="feature_pages", title="Feature pages: top latents by summed activation",
        columns=["latent", "frequency", "max act", "top contexts ([[activating token]], activation)", "promoted logits", "suppressed logits"],
        rows=rows,
        caption="Latents that fire on at most 10% of tokens, ranked by summed activation; logit effects are the unit decoder direction through W_U (direct path).",
    )
