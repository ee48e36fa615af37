"""The claims of the phase-change section (claims 12-18 of the report) and their verdicts.

Each verdict is a small pure function of plain numbers (``*_holds``), unit-tested on hand-made
values; each ``_claim_*`` function formats one claim's measurement from a
:class:`circuits.experiments.phase_change.Result`. Kept apart from :mod:`circuits.experiments.phase_change`
(which re-exports :func:`claims`) so that each module stays short.

Thresholds come from the In-context Learning paper's numbers and wording, fixed before any run
(module constants below, each with its source); intervals are 95% bootstrap intervals over
evaluation windows or probe sequences, shown beside every number a verdict reads.
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

#: |ICL| before the phase change: the paper's "< 0.15 nats"
BEFORE_MAX = 0.15
#: |ICL| after it: the paper's "≈ 0.4 nats", read as within a factor of 2 (at least 0.2 nats)
AFTER_MIN = 0.2
#: the share of the final ICL that forms in the window: the paper's "over 75%"
FORMED_MIN = 0.75
#: "then flat for the rest of training": after the window |ICL| changes by at most 10% of its final value
PLATEAU_MAX = 0.10
#: "almost all ICL removed": at least 90% of it
ALMOST_ALL = 0.90
#: "others leave it about unchanged / slightly increase it": each other head changes it by at most 10% of the clean score
ABOUT_UNCHANGED = 0.10
#: "the 1L control has no loss bump": its bump score is under half the main model's
BUMP_RATIO = 0.5
#: "≈ 0 before" for the log-index slope: under half the size of the slope after the phase change
FLAT_RATIO = 0.5


# ---- verdicts: pure functions of plain numbers ---------------------------------------------------
def phase_change_parts(icl_before: float, icl_final: float, formed: float, change_after: float) -> dict[str, bool]:
    """Claim 12's four parts: |ICL| < 0.15 before the window, >= 0.2 at the end, > 75% formed in the window, flat after it."""
    return {
        f"before < {BEFORE_MAX:g}": bool(icl_before < BEFORE_MAX),
        f"final >= {AFTER_MIN:g}": bool(icl_final >= AFTER_MIN),
        f"formed in the window > {FORMED_MIN:.0%}": bool(formed > FORMED_MIN),
        f"change after <= {PLATEAU_MAX:.0%}": bool(change_after <= PLATEAU_MAX),
    }


def phase_change_holds(icl_before: float, icl_final: float, formed: float, change_after: float) -> bool:
    """Claim 12: every part of :func:`phase_change_parts` holds (NaN fails)."""
    return all(phase_change_parts(icl_before, icl_final, formed, change_after).values())


def co_timing_holds(pm_final: float, threshold: float, prefix_matching_50: int | None, bump_step: float | None, pivot_step: int | None,
                    start: int | None, end: int | None, tolerance: float) -> bool:
    """Claim 13: an induction head forms (final prefix matching >= threshold), and its rise (50% step), the loss bump and the
    PCA turn all fall in the phase-change window ``[start, end]`` ± tolerance."""
    return bool(pm_final >= threshold) and all(traj.within(step, start, end, tolerance) for step in (prefix_matching_50, bump_step, pivot_step))


def control_holds(final_icl_control: float, prefix_matching_control: float, threshold: float, bump_control: float | None,
                  bump_main: float | None) -> bool:
    """Claim 14: the 1L control's final |ICL| stays under the paper's pre-phase-change 0.15 nats, it has no induction head, and its
    bump score is under half the main model's."""
    return bool(final_icl_control < BEFORE_MAX and prefix_matching_control < threshold and bump_control is not None
                and bump_main is not None and bump_control < BUMP_RATIO * bump_main)


def smeared_one_layer_learns(final_icl_smeared: float, prefix_matching_smeared: float, threshold: float) -> bool:
    """Claim 15, first part: the 1L smeared-key model reaches the post-phase-change |ICL| (>= 0.2 nats) and has an induction head."""
    return bool(final_icl_smeared >= AFTER_MIN and prefix_matching_smeared >= threshold)


def rises_earlier(t50: int | None, t50_reference: int | None) -> bool:
    """A curve reaches 50% of its rise at an earlier checkpoint than the reference curve (False when either never rises)."""
    return t50 is not None and t50_reference is not None and t50 < t50_reference


def smeared_key_holds(one_layer_learns: bool, earlier: bool | None) -> bool | None:
    """Claim 15: both parts hold; ``earlier=None`` (no 2L smeared model): False when the first part fails, else untested."""
    if earlier is None:
        return False if not one_layer_learns else None
    return bool(one_layer_learns and earlier)


def icl_removed(clean_icl: float, icl_delta: float) -> float:
    """The fraction of the (negative) clean ICL score that an ablation removes (NaN when the clean model has no ICL)."""
    return icl_delta / -clean_icl if clean_icl < 0 else float("nan")


def ablation_holds(clean_icl: float, removed: float, other_deltas: list[float]) -> bool:
    """Claim 16: ablating the induction heads removes almost all (>= 90%) of the ICL; no other head changes it by over 10% of it."""
    return bool(clean_icl < 0 and removed >= ALMOST_ALL
                and (not other_deltas or max(abs(d) for d in other_deltas) <= ABOUT_UNCHANGED * -clean_icl))


def before_after_holds(induction_dots: list[float], other_dots: list[float]) -> bool:
    """Claim 17: every induction head's dot product is negative and below every other head's (the induction heads undo the
    phase change most)."""
    return bool(induction_dots and all(d < 0 for d in induction_dots) and (not other_dots or max(induction_dots) < min(other_dots)))


def log_index_holds(slope_before: float, slope_after: float, slope_after_hi: float, slope_end_hi: float) -> bool:
    """Claim 18: after the phase change the log-index slope is negative from the start index and over the context's last e-fold
    (95% intervals wholly below 0); before it, the slope is under half the size of the slope after."""
    return bool(slope_after_hi < 0 and slope_end_hi < 0 and abs(slope_before) < FLAT_RATIO * abs(slope_after))


# ---- claims ------------------------------------------------------------------------------------
def _data(r: Result, *names: str) -> str:
    """What the claim's models trained on, in words (one phrase when they share their data)."""
    labels = list(dict.fromkeys(r.data_labels.get(n, "") for n in names))
    return labels[0] if len(labels) == 1 else "; ".join(f"{n}: {r.data_labels.get(n, '')}" for n in names)


def _claim(r: Result, names: tuple[str, ...], **fields) -> Claim:
    return Claim(models=names, data=_data(r, *names), **fields)


def _tolerance(main: ModelTrajectory) -> float:
    return traj.window_tolerance(np.array(main.steps), main.window[0], main.window[1], main.total_steps)


def _ci(pair) -> str:
    """`` [lo, hi]`` of a 95% interval (``pair``), or a note that the bootstrap could not resolve it."""
    return f" [{fmt(pair[0])}, {fmt(pair[1])}]" if pair is not None else " [interval not resolved]"


def _step_ci(pair) -> str:
    """`` [lo, hi]`` of a 95% interval of a training step."""
    return f" [{round(pair[0])}, {round(pair[1])}]" if pair is not None else " [interval not resolved]"


def _claim_phase_change(r: Result, main: ModelTrajectory) -> Claim:
    p = r.phase
    parts = phase_change_parts(p.icl_start.value, p.icl_final.value, p.formed.value, p.change_after.value)
    return _claim(
        r, (r.main,), key="icl_phase_change", statement=(
            f"The {r.main} ICL score rises abruptly in a narrow window to a plateau: |ICL| < {BEFORE_MAX:g} nats before, at least "
            f"{AFTER_MIN:g} after (≈ 0.4 within a factor of 2), over {FORMED_MIN:.0%} of it formed within {p.width:.0%} of training, and "
            f"within {PLATEAU_MAX:.0%} of its final value after the window."),
        source=SOURCE, paper_value="< 0.15 -> ≈ 0.4 nats; > 75% of the final ICL forms in the window (2.5-5B of 10B tokens); flat after",
        measured=(f"densest {p.width:.0%} of training: steps {p.start_step}-{p.end_step}; |ICL| {p.icl_start.text()} at its start, "
                  f"{p.icl_end.text()} at its end, {p.icl_final.text()} final ({r.claim_windows} windows, 95% intervals); "
                  f"{p.formed.text(100)}% formed in the window, {p.change_after.text(100)}% change after it. "
                  + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in parts.items())),
        holds=all(parts.values()), value=p.formed.value,
    )


def _claim_co_timing(r: Result, main: ModelTrajectory) -> Claim:
    (start, end), tol = main.window, _tolerance(main)
    pm50, bump_step, pivot_step, pm_final = main.pm_rise.t50, main.bump.step, main.pivot_step, float(main.pm_max[-1])
    parts = {"prefix matching": pm50, "loss bump": bump_step, "PCA turn": pivot_step}
    inside = {k: traj.within(s, start, end, tol) for k, s in parts.items()}
    gap = f" (fastest divergence from {r.control} at {fmt(r.loss_gap.fastest_step)})" if r.loss_gap else ""
    return _claim(
        r, (r.main,), key="icl_co_timing", statement=(
            "The window coincides with the rise of the induction heads' prefix-matching score, a bump in the loss and a pivot of the "
            "per-token-loss PCA trajectory."),
        source=SOURCE, paper_value="all in the same narrow window",
        measured=(f"window {start}-{end} (± {fmt(tol)} steps); final max prefix matching {fmt(pm_final)}{_ci(main.pm_ci[-1])} "
                  f"(induction head: >= {r.induction_threshold:g}); prefix matching 50% at {pm50}{_step_ci(main.pm_t50_ci)}, loss bump at "
                  f"{fmt(bump_step)}{gap}, PCA turn at {pivot_step}: " + ", ".join(f"{k} {'inside' if v else 'outside'}" for k, v in inside.items())),
        holds=co_timing_holds(pm_final, r.induction_threshold, pm50, bump_step, pivot_step, start, end, tol), value=float(sum(inside.values())),
    )


def _claim_control(r: Result, main: ModelTrajectory, control: ModelTrajectory) -> Claim:
    fc, pmc = control.final_icl_claim, float(control.pm_max[-1])
    bc, bm = control.bump.score, main.bump.score
    return _claim(
        r, (r.control, r.main), key="icl_1l_control", statement=(
            f"The 1L control ({r.control}) shows no ICL jump (final |ICL| under the paper's pre-phase-change {BEFORE_MAX:g} nats), no "
            f"induction heads and no loss bump (bump score under {BUMP_RATIO:g} x the 2L model's)."),
        source="In-context Learning paper, Arguments 1-2", paper_value="1L never develops much ICL",
        measured=(f"final |ICL| {fc.text()} vs {main.final_icl_claim.text()} for {r.main}; max prefix matching {fmt(pmc)}"
                  f"{_ci(control.pm_ci[-1])}; bump score {fmt(bc)} vs {fmt(bm)}"),
        holds=control_holds(fc.value, pmc, r.induction_threshold, bc, bm), value=fc.value,
    )


def _claim_smeared(r: Result, main: ModelTrajectory, s1: ModelTrajectory, s2: ModelTrajectory | None) -> Claim:
    f1, pm1 = s1.final_icl_claim, float(s1.pm_max[-1])
    measured = f"{r.smeared_1l}: final |ICL| {f1.text()}, max prefix matching {fmt(pm1)}{_ci(s1.pm_ci[-1])}"
    earlier = None
    if s2 is not None:
        earlier = rises_earlier(s2.icl_rise.t50, main.icl_rise.t50) and rises_earlier(s2.pm_rise.t50, main.pm_rise.t50)
        measured += (f"; 50% steps of the ICL and prefix-matching rises: {r.smeared_2l} {s2.icl_rise.t50}{_step_ci(s2.icl_t50_ci)} and "
                     f"{s2.pm_rise.t50}{_step_ci(s2.pm_t50_ci)}, {r.main} {main.icl_rise.t50}{_step_ci(main.icl_t50_ci)} and "
                     f"{main.pm_rise.t50}{_step_ci(main.pm_t50_ci)}")
    names = (r.smeared_1l, r.smeared_2l, r.main) if s2 is not None else (r.smeared_1l, r.main)
    return _claim(
        r, names, key="icl_smeared_key", statement=(
            f"A 1L smeared-key model develops ICL (final |ICL| >= {AFTER_MIN:g} nats) and induction heads; a 2L smeared-key model gets "
            "both (the 50% points of its ICL and prefix-matching rises) earlier than its control."),
        source="In-context Learning paper, Argument 2", paper_value="1L smeared gets the phase change; 2L smeared earlier",
        measured=measured, holds=smeared_key_holds(smeared_one_layer_learns(f1.value, pm1, r.induction_threshold), earlier),
        value=f1.value,
    )


def _other_heads(ab: AblationStudy) -> list[float]:
    """ICL changes of the single heads that are neither induction heads nor the previous-token head."""
    prev = "L{}H{}".format(*ab.previous_token_head)
    return [float(d) for lab, d in zip(ab.labels, ab.icl_delta) if lab.startswith("L") and lab not in ab.induction_labels and lab != prev]


def _claim_ablation(r: Result, ab: AblationStudy) -> Claim:
    i = ab.labels.index("induction heads")
    others = _other_heads(ab)
    largest = max(others, key=abs) if others else None
    share = abs(largest) / abs(ab.clean_icl.value) if largest is not None and ab.clean_icl.value else None
    return _claim(
        r, (r.main,), key="icl_ablation", statement=(
            f"Pattern-preserving ablation of the induction heads removes almost all (>= {ALMOST_ALL:.0%}) of the ICL score; ablating "
            f"any other head (not the previous-token head) changes it by at most {ABOUT_UNCHANGED:.0%} of it."),
        source="In-context Learning paper, Argument 3", paper_value="almost all ICL removed; others slightly increase it",
        measured=(f"ICL {ab.clean_icl.text()} nats ({ab.windows} windows); ablating {', '.join(sorted(ab.induction_labels))} changes it by "
                  f"{fmt(ab.icl_delta[i])} [{fmt(ab.icl_delta_ci[i][0])}, {fmt(ab.icl_delta_ci[i][1])}]: {ab.removed.text(100)}% removed; "
                  f"other heads: largest change {fmt(largest)} ({fmt(100 * share if share is not None else None)}% "
                  f"of the clean score), mean {fmt(float(np.mean(others)) if others else None)}"),
        holds=ablation_holds(ab.clean_icl.value, ab.removed.value, others), value=ab.removed.value,
    )


def _claim_before_after(r: Result, ab: AblationStudy) -> Claim:
    prev = "L{}H{}".format(*ab.previous_token_head)
    singles = {lab: float(d) for lab, d in zip(ab.labels, ab.dot) if lab.startswith("L")}
    induction = {k: v for k, v in singles.items() if k in ab.induction_labels}
    others = {k: v for k, v in singles.items() if k not in ab.induction_labels and k != prev}
    lowest_other = min(others, key=others.get) if others else None
    return _claim(
        r, (r.main,), key="icl_before_after", statement=(
            "The before-and-after vector of the phase change has a negative dot product with each induction head's ablation effect, "
            "lower than every other head's (the previous-token head aside): ablating the induction heads undoes the phase change most."),
        source="In-context Learning paper, 'Analyses'", paper_value="negative for induction heads",
        measured=(", ".join(f"{k} {fmt(v)}" for k, v in sorted(induction.items())) + f" (steps {ab.phase_steps[0]} -> {ab.phase_steps[1]}); "
                  f"lowest other head {lowest_other} {fmt(others.get(lowest_other))}; previous-token head {prev} {fmt(singles.get(prev))}"),
        holds=before_after_holds(list(induction.values()), list(others.values())), value=max(induction.values()) if induction else None,
    )


def _claim_log_index(r: Result) -> Claim:
    li = r.log_index
    ratio = abs(li.slope_before.value) / abs(li.slope_after.value) if li.slope_after.value else float("nan")
    return _claim(
        r, (r.main,), key="icl_loss_by_log_index", statement=(
            f"Before the phase change (the last checkpoint before the prefix-matching rise) dLoss/d ln(index) is about 0 {li.first_note} "
            f"(under {FLAT_RATIO:g} x its size after); after it, it is negative, also over the context's last e-fold (indices "
            f"{li.last_efold}+), 95% intervals below 0."),
        source=SOURCE, paper_value="≈ 0 beyond token 50 before; negative to the end after",
        measured=(f"slope from index {li.first}: {li.slope_before.text()} at step {li.before_step}, {li.slope_after.text()} at the end; "
                  f"from index {li.last_efold} at the end: {li.slope_after_end.text()} (nats per e-fold, {r.claim_windows} windows); "
                  f"|before| / |after| = {fmt(ratio)}"),
        holds=log_index_holds(li.slope_before.value, li.slope_after.value, li.slope_after.hi, li.slope_after_end.hi), value=ratio,
    )


def claims(result: Result) -> list[Claim]:
    r, out = result, []
    main, control = r.models.get(r.main), r.models.get(r.control)
    s1, s2 = r.models.get(r.smeared_1l), r.models.get(r.smeared_2l)
    if main and r.phase:
        out += [_claim_phase_change(r, main), _claim_co_timing(r, main)]
    if control and main:
        out.append(_claim_control(r, main, control))
    if s1 and main:
        out.append(_claim_smeared(r, main, s1, s2))
    if r.ablation:
        out += [_claim_ablation(r, r.ablation), _claim_before_after(r, r.ablation)]
    if main and r.log_index:
        out.append(_claim_log_index(r))
    return out
