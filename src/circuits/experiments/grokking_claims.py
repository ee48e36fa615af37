"""Claims 20 and 21 of papers.md §6 (grokking), each verdict a small pure function of the run's numbers.

Claim 20 has three checkable parts, one claim each: the phases (memorise, then generalise much
later), the progress measures moving before the test loss falls, and a sparse Fourier embedding.
Claim 21 is the weight-decay control. Thresholds are fixed in :class:`~circuits.experiments.grokking.Config`
from the paper's numbers: memorisation by ~1.4k epochs and grokking near 10k (a delay of ~7x; we
ask for ``delay_factor`` = 2x), "a handful (3-6)" key frequencies, no grokking without weight decay.
"""

from __future__ import annotations

from circuits.experiments.base import Claim
from circuits.experiments.util import fmt

SOURCE = "Nanda et al. 2023, Progress measures for grokking (papers.md §6, claims 20-21)"

__all__ = ["delayed_generalisation_holds", "measures_lead_holds", "sparse_fourier_holds", "weight_decay_needed_holds", "claims"]


def delayed_generalisation_holds(memorised: int | None, grokked: int | None, test_accuracy_at_memorised: float | None,
                                 delay_factor: float) -> bool:
    """The run memorised (train accuracy reached the threshold at ``memorised``) while its test accuracy was below 50%, and
    reached the test threshold at ``grokked`` >= ``delay_factor`` x ``memorised``. A run that never memorised or never grokked fails."""
    if memorised is None or grokked is None or test_accuracy_at_memorised is None:
        return False
    return bool(test_accuracy_at_memorised < 0.5 and grokked >= delay_factor * max(memorised, 1))


def measures_lead_holds(restricted_onset: int | None, excluded_onset: int | None, cleanup_start: int | None) -> bool:
    """The restricted loss starts falling and the excluded loss starts rising strictly before the test loss starts falling
    (all three onsets found; a missing one fails)."""
    if None in (restricted_onset, excluded_onset, cleanup_start):
        return False
    return bool(restricted_onset < cleanup_start and excluded_onset < cleanup_start)


def sparse_fourier_holds(n_keys: int, key_share: float, key_range: tuple[int, int], min_share: float) -> bool:
    """Between ``key_range[0]`` and ``key_range[1]`` key frequencies (inclusive), holding at least ``min_share`` of the embedding's power."""
    return bool(key_range[0] <= n_keys <= key_range[1] and key_share >= min_share)


def weight_decay_needed_holds(grokked_with_decay: bool, control_train_accuracy: float, control_test_accuracy: float,
                              threshold: float) -> bool | None:
    """With weight decay the run grokked; without it the same run memorised (train accuracy >= ``threshold``) but its test
    accuracy stayed below ``threshold`` at the end of its budget. Untested (None) when the weight-decayed run did not grok."""
    if not grokked_with_decay:
        return None
    return bool(control_train_accuracy >= threshold and control_test_accuracy < threshold)


# ---- the claims -------------------------------------------------------------------------------
def _setup(r) -> str:
    return f"p = {r.p}, {r.train_fraction:g} train, lr {r.lr:g}, wd {r.weight_decay:g}, d_model {r.d_model}/d_mlp {r.d_mlp}"


def _claim(r, **fields) -> Claim:
    data = f"a + b mod {r.p}: {r.n_train} of {r.p ** 2} pairs, full batch, seeded split"
    return Claim(source=SOURCE, models=(f"grokking 1L p={r.p}",), data=data, **fields)


def _phases_claim(r) -> Claim:
    threshold = f"{r.accuracy_threshold:.0%}"
    return _claim(
        r, key="grokking_phases",
        statement=(f"Grokking: the model memorises first (train accuracy >= {threshold} while test accuracy < 50%) and reaches "
                   f"{threshold} test accuracy only at least {r.delay_factor:g}x as many epochs later."),
        paper_value="memorised by ~1.4k epochs, test accuracy ~100% near 10k (p = 113, lr 1e-3)",
        measured=(f"{_setup(r)}: memorised at epoch {fmt(r.memorised)} (test accuracy then {fmt(r.test_accuracy_at_memorised)}), "
                  f"test accuracy >= {threshold} at epoch {fmt(r.grokked)}"
                  + (f" ({r.grokked / max(r.memorised, 1):.1f}x)" if r.grokked and r.memorised else "")
                  + f"; final test accuracy {fmt(r.curve.test_accuracy[-1])} after {r.epochs:,} epochs"),
        holds=delayed_generalisation_holds(r.memorised, r.grokked, r.test_accuracy_at_memorised, r.delay_factor),
        value=None if not (r.grokked and r.memorised) else r.grokked / max(r.memorised, 1),
    )


def _measures_claim(r) -> Claim:
    return _claim(
        r, key="grokking_progress_measures",
        statement=("Restricted loss starts falling and excluded loss starts rising before the test loss starts falling "
                   "(each onset: 10% of its change on a log scale, at the checkpoints)."),
        paper_value="circuit formation (restricted down, excluded up) precedes cleanup (test loss drop)",
        measured=(f"{_setup(r)}, keys {list(r.key_freqs)}: restricted loss falls from epoch {fmt(r.restricted_onset)}, excluded loss "
                  f"rises from epoch {fmt(r.excluded_onset)}, test loss falls from epoch {fmt(r.cleanup_start)} "
                  f"(90% of its fall at {fmt(r.cleanup_end)}); {len(r.progress.step)} checkpoints"),
        holds=measures_lead_holds(r.restricted_onset, r.excluded_onset, r.cleanup_start),
        value=None if None in (r.restricted_onset, r.cleanup_start) else float(r.cleanup_start - r.restricted_onset),
    )


def _sparse_claim(r) -> Claim:
    lo, hi = r.key_range
    return _claim(
        r, key="grokking_sparse_fourier",
        statement=(f"The trained embedding is sparse in the Fourier basis: {lo}-{hi} key frequencies hold at least "
                   f"{r.min_key_share:.0%} of its power."),
        paper_value="5 key frequencies {14, 35, 41, 42, 52} (other seeds 3-4); logits ~ sum_k cos(w_k(a+b-c)) explain 95%",
        measured=(f"{_setup(r)}: {len(r.key_freqs)} key frequencies {list(r.key_freqs)} with {r.key_share:.1%} of the embedding power; "
                  f"the cos(w_k(a+b-c)) fit explains {r.logit_explained:.1%} of the logit variance"),
        holds=sparse_fourier_holds(len(r.key_freqs), r.key_share, r.key_range, r.min_key_share), value=r.key_share,
    )


def _control_claim(r) -> Claim:
    threshold = r.accuracy_threshold
    grokked = r.grokked is not None
    return _claim(
        r, key="grokking_needs_weight_decay",
        statement=(f"Without weight decay the same model memorises but does not generalise within {r.control_multiple:g}x the epochs "
                   f"the weight-decayed run needed to reach {threshold:.0%} test accuracy."),
        paper_value="wd 0: no grokking within 40k epochs; wd 1: grokking at ~10k",
        measured=((f"{_setup(r)}; control wd 0 for {r.control_epochs:,} epochs ({r.control_multiple:g}x {fmt(r.grokked)}): "
                   f"train accuracy {fmt(r.control.train_accuracy[-1])}, test accuracy {fmt(r.control.test_accuracy[-1])} "
                   f"(tested instead of the paper's 40k epochs)")
                  if grokked else f"{_setup(r)}: the weight-decayed run did not grok within {r.epochs:,} epochs, so there is no contrast"),
        holds=weight_decay_needed_holds(grokked, float(r.control.train_accuracy[-1]), float(r.control.test_accuracy[-1]), threshold),
        value=float(r.control.test_accuracy[-1]),
    )


def claims(result) -> list[Claim]:
    return [_phases_claim(result), _measures_claim(result), _sparse_claim(result), _control_claim(result)]
