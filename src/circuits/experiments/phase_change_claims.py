"""The claims of the phase-change section (claims 12-18 of the report) and their verdicts.

Each verdict is a small pure function of plain numbers (``*_holds``), unit-tested on hand-made
values; each ``_claim_*`` function formats one claim's measurement from a
:class:`circuits.experiments.phase_change.Result`. Kept apart from :mod:`circuits.experiments.phase_change`
(which re-exports :func:`claims`) so that each module stays short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from circuits.analysis import trajectory as traj
from circuits.experiments.base import Claim
from circuits.experiments.util import fmt

if TYPE_CHECKING:
    from circuits.experiments.phase_change import AblationStudy, ModelTrajectory, Result

SOURCE = "In-context Learning paper, Argument 1"


# ---- verdicts: pure functions of plain numbers ---------------------------------------------------
def phase_change_holds(final_icl: float, window_width: float | None) -> bool:
    """Claim 12: a real ICL score (|ICL| >= 0.15 nats) that forms in a narrow window (10%-90% within 30% of training)."""
    return bool(window_width is not None and final_icl >= 0.15 and window_width <= 0.3)


def co_timing_holds(prefix_matching_50: int | None, bump_step: float | None, pivot_step: int | None,
                    t10: int | None, t90: int | None, tolerance: float) -> bool:
    """Claim 13: the prefix-matching rise, the loss bump and the PCA turn all fall in the window ``[t10, t90]`` ± tolerance."""
    return all(traj.within(step, t10, t90, tolerance) for step in (prefix_matching_50, bump_step, pivot_step))


def control_holds(final_icl_control: float, final_icl_main: float, prefix_matching_control: float, threshold: float,
                  bump_control: float | None, bump_main: float | None) -> bool:
    """Claim 14: the 1L control has under half the main model's ICL, no induction head and under half its bump score."""
    return bool(final_icl_control < 0.5 * final_icl_main and prefix_matching_control < threshold and bump_control is not None
                and bump_main is not None and bump_control < 0.5 * bump_main)


def smeared_one_layer_learns(final_icl_smeared: float, final_icl_main: float, prefix_matching_smeared: float, threshold: float) -> bool:
    """Claim 15, first part: the 1L smeared-key model reaches half the main model's ICL and has an induction head."""
    return bool(final_icl_smeared >= 0.5 * final_icl_main and prefix_matching_smeared >= threshold)


def rises_earlier(t50: int | None, t50_reference: int | None) -> bool:
    """Claim 15, second part: the 2L smeared-key model's ICL reaches 50% of its rise before the main model's."""
    return t50 is not None and t50_reference is not None and t50 < t50_reference


def smeared_key_holds(one_layer_learns: bool, earlier: bool | None) -> bool | None:
    """Claim 15: both parts hold; ``earlier=None`` (no 2L smeared model): False when the first part fails, else untested."""
    if earlier is None:
        return False if not one_layer_learns else None
    return bool(one_layer_learns and earlier)


def icl_removed(clean_icl: float, icl_delta: float) -> float:
    """The fraction of the (negative) clean ICL score that an ablation removes (NaN when the clean model has no ICL)."""
    return icl_delta / -clean_icl if clean_icl < 0 else float("nan")


def ablation_holds(clean_icl: float, induction_delta: float, other_deltas: list[float]) -> bool:
    """Claim 16: ablating the induction heads removes over half the ICL; no other head changes it by a quarter of it."""
    return bool(clean_icl < 0 and icl_removed(clean_icl, induction_delta) > 0.5
                and (not other_deltas or max(abs(d) for d in other_deltas) < 0.25 * -clean_icl))


def before_after_holds(induction_dots: list[float]) -> bool:
    """Claim 17: the before-and-after vector has a negative dot product with every induction head's ablation effect."""
    return bool(induction_dots and all(d < 0 for d in induction_dots))


def log_index_holds(slope_before: float, slope_after: float) -> bool:
    """Claim 18: after the window loss keeps falling with ln(index) (slope < -0.03), before it the slope is under half that."""
    return bool(slope_after < -0.03 and abs(slope_before) < 0.5 * abs(slope_after))


# ---- claims ------------------------------------------------------------------------------------
def _tolerance(main: ModelTrajectory) -> float:
    return traj.window_tolerance(np.array(main.steps), main.icl_rise.t10, main.icl_rise.t90, main.total_steps)


def _claim_phase_change(r: Result, main: ModelTrajectory) -> Claim:
    t10, t90 = main.icl_rise.t10, main.icl_rise.t90
    width = (t90 - t10) / main.total_steps if t10 is not None and t90 is not None else None
    icl_before = -main.icl[main.steps.index(main.before_step)]
    return Claim(
        key="icl_phase_change", statement=f"The {r.main} ICL score rises abruptly in a narrow window to a plateau.",
        source=SOURCE, paper_value="< 0.15 -> ≈ 0.4 nats; > 75% of the final ICL forms in the window",
        measured=(f"|ICL| {fmt(icl_before)} (step {main.before_step}) -> {fmt(main.final_icl)} (final); 10%-90% rise between steps "
                  f"{t10} and {t90} ({fmt(100 * width) if width is not None else 'n/a'}% of training)"),
        holds=phase_change_holds(main.final_icl, width),
    )


def _claim_co_timing(r: Result, main: ModelTrajectory) -> Claim:
    t10, t90, tol = main.icl_rise.t10, main.icl_rise.t90, _tolerance(main)
    pm50, bump_step, pivot_step = main.pm_rise.t50, main.bump.step, main.pivot_step
    parts = {"prefix matching": pm50, "loss bump": bump_step, "PCA turn": pivot_step}
    gap = f" (fastest divergence from {r.control} at {fmt(r.loss_gap.fastest_step)})" if r.loss_gap else ""
    return Claim(
        key="icl_co_timing", statement=("The window coincides with the rise of the induction heads' prefix-matching score, a bump in "
                                        "the loss and a pivot of the per-token-loss PCA trajectory."),
        source=SOURCE, paper_value="all in the same narrow window",
        measured=(f"window {t10}-{t90} (± {fmt(tol)} steps); prefix matching 50% at {pm50}, loss bump at {fmt(bump_step)}{gap}, PCA turn at "
                  f"{pivot_step}: " + ", ".join(f"{k} {'inside' if traj.within(s, t10, t90, tol) else 'outside'}" for k, s in parts.items())),
        holds=co_timing_holds(pm50, bump_step, pivot_step, t10, t90, tol),
    )


def _claim_control(r: Result, main: ModelTrajectory, control: ModelTrajectory) -> Claim:
    fc, fm, pmc = control.final_icl, main.final_icl, control.pm_max[-1]
    bc, bm = control.bump.score, main.bump.score
    return Claim(
        key="icl_1l_control", statement=f"The 1L control ({r.control}) shows no ICL jump, no induction heads and no loss bump.",
        source="In-context Learning paper, Arguments 1-2", paper_value="1L never develops much ICL",
        measured=f"final |ICL| {fmt(fc)} vs {fmt(fm)} for {r.main}; max prefix matching {fmt(pmc)}; bump score {fmt(bc)} vs {fmt(bm)}",
        holds=control_holds(fc, fm, pmc, r.induction_threshold, bc, bm),
    )


def _claim_smeared(r: Result, main: ModelTrajectory, s1: ModelTrajectory, s2: ModelTrajectory | None) -> Claim:
    f1, fm = s1.final_icl, main.final_icl
    measured = f"{r.smeared_1l}: final |ICL| {fmt(f1)} (vs {fmt(fm)}), max prefix matching {fmt(s1.pm_max[-1])}"
    earlier = None
    if s2 is not None:
        earlier = rises_earlier(s2.icl_rise.t50, main.icl_rise.t50)
        measured += f"; ICL 50% at step {s2.icl_rise.t50} for {r.smeared_2l} vs {main.icl_rise.t50} for {r.main}"
    return Claim(
        key="icl_smeared_key", statement=("A 1L smeared-key model develops ICL and induction heads; a 2L smeared-key model gets them "
                                          "earlier than its control."),
        source="In-context Learning paper, Argument 2", paper_value="1L smeared gets the phase change; 2L smeared earlier",
        measured=measured, holds=smeared_key_holds(smeared_one_layer_learns(f1, fm, s1.pm_max[-1], r.induction_threshold), earlier),
    )


def _other_heads(ab: AblationStudy) -> list[float]:
    """ICL changes of the single heads that are neither induction heads nor the previous-token head."""
    prev = "L{}H{}".format(*ab.previous_token_head)
    return [float(d) for lab, d in zip(ab.labels, ab.icl_delta) if lab.startswith("L") and lab not in ab.induction_labels and lab != prev]


def _claim_ablation(ab: AblationStudy) -> Claim:
    d_ind = float(ab.icl_delta[ab.labels.index("induction heads")])
    others = _other_heads(ab)
    return Claim(
        key="icl_ablation", statement=("Pattern-preserving ablation of the induction heads removes most of the ICL score; ablating "
                                       "other heads leaves it about unchanged."),
        source="In-context Learning paper, Argument 3", paper_value="almost all ICL removed; others slightly increase it",
        measured=(f"ICL {fmt(ab.clean_icl)} nats; ablating {', '.join(sorted(ab.induction_labels))} changes it by {fmt(d_ind)} "
                  f"({fmt(100 * icl_removed(ab.clean_icl, d_ind))}% removed); other heads: mean change "
                  f"{fmt(float(np.mean(others)) if others else None)}, largest {fmt(max(others, key=abs) if others else None)}"),
        holds=ablation_holds(ab.clean_icl, d_ind, others),
    )


def _claim_before_after(ab: AblationStudy) -> Claim:
    dots = {lab: float(d) for lab, d in zip(ab.labels, ab.dot) if lab in ab.induction_labels}
    return Claim(
        key="icl_before_after", statement=("The before-and-after vector of the phase change has a negative dot product with each "
                                           "induction head's ablation effect."),
        source="In-context Learning paper, 'Analyses'", paper_value="negative for induction heads",
        measured=", ".join(f"{k} {fmt(v)}" for k, v in sorted(dots.items())) + f" (steps {ab.phase_steps[0]} -> {ab.phase_steps[1]})",
        holds=before_after_holds(list(dots.values())),
    )


def _claim_log_index(r: Result, main: ModelTrajectory) -> Claim:
    return Claim(
        key="icl_loss_by_log_index", statement=("Before the phase change dLoss/d ln(index) is about 0 beyond the early index; after it, "
                                                "it stays negative to the end of the context."),
        source=SOURCE, paper_value="≈ 0 beyond token 50 before; negative to the end after",
        measured=(f"slope beyond index {r.early[0]}: {fmt(main.slope_before)} at step {main.before_step}, {fmt(main.slope_after)} at the end "
                  "(nats per e-fold)"),
        holds=log_index_holds(main.slope_before, main.slope_after),
    )


def claims(result: Result) -> list[Claim]:
    r, out = result, []
    main, control = r.models.get(r.main), r.models.get(r.control)
    s1, s2 = r.models.get(r.smeared_1l), r.models.get(r.smeared_2l)
    if main:
        out += [_claim_phase_change(r, main), _claim_co_timing(r, main)]
    if control and main:
        out.append(_claim_control(r, main, control))
    if s1 and main:
        out.append(_claim_smeared(r, main, s1, s2))
    if r.ablation:
        out += [_claim_ablation(r.ablation), _claim_before_after(r.ablation)]
    if main:
        out.append(_claim_log_index(r, main))
    return out
