"""The toy-scale induction section: its claims' verdicts on hand-made numbers, its Result's JSON round trip, its section
from a hand-made Result, and a quick run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from experiment_helpers import check_section

from circuits.experiments import induction_synthetic as exp
from circuits.experiments.base import build_section

CLAIMS = {"synthetic_smeared_one_layer", "synthetic_smeared_earlier", "synthetic_previous_token_ablation"}


def round_trip(result: exp.Result) -> exp.Result:
    """``result`` as the runner's cache gives it back (strict JSON: no NaN), checked to be stable."""
    data = result.to_json()
    back = exp.Result.from_json(json.loads(json.dumps(data, allow_nan=False)))
    assert back.to_json() == data
    return back


def curves(**induction) -> dict[str, exp.Curve]:
    return {label: exp.Curve(step=(50, 100, 150), induction=np.array(scores), loss_first=np.full(3, 4.2), loss_second=np.full(3, 4.0),
                             train_loss=np.full(3, 4.0), induction_bos=np.array(scores) + 0.05, loss_first_bos=np.full(3, 4.2),
                             loss_second_bos=np.full(3, 3.9))
            for label, scores in induction.items()}


FORMED = curves(**{"1L": [0.05, 0.08, 0.09], "1L smeared": [0.1, 0.5, 0.6], "2L": [0.1, 0.1, 0.5], "2L smeared": [0.1, 0.5, 0.7]})
NEVER = curves(**{"1L": [0.05] * 3, "1L smeared": [0.1] * 3, "2L": [0.1] * 3, "2L smeared": [0.1] * 3})
ABLATION = exp.PreviousTokenAblation(prev_head="L0H1", prev_score=0.4, ind_head="L1H2", ind_score=0.6, ablated=0.02, other_ablations_min=0.55,
                                     near_zero=0.045, ind_score_bos=0.65, ablated_bos=0.03, near_zero_bos=0.053)
LAYOUT = "[BOS] + P held-out synthetic tokens + R + R (T = 12, P drawn per sequence, 1..7 here)"


def hand_made(curves: dict[str, exp.Curve] = FORMED, ablation: exp.PreviousTokenAblation = ABLATION) -> exp.Result:
    return exp.Result(curves=curves, ablation=ablation, threshold=0.3, steps=150, batch_size=64, d_vocab=64, n_ctx=32, d_model=64,
                      n_heads=4, seq_len=12, n_eval=16, layout=LAYOUT)


# ---- verdicts ----------------------------------------------------------------------------------
def test_onset():
    assert exp.onset((50, 100, 150), (0.1, 0.1, 0.5), 0.3) == 150
    assert exp.onset((50, 100, 150), (0.1, 0.3, 0.2), 0.3) is None  # strictly above
    assert exp.onset((), (), 0.3) is None


def test_one_layer_claim_verdict():
    assert exp.smear_lets_one_layer_induct(0.09, 0.6, 0.3) is True
    assert exp.smear_lets_one_layer_induct(0.09, 0.3, 0.3) is True  # the smeared model at the threshold counts
    assert exp.smear_lets_one_layer_induct(0.4, 0.6, 0.3) is False  # plain one layer formed one too
    assert exp.smear_lets_one_layer_induct(0.09, 0.1, 0.3) is False  # neither formed one


def test_earlier_claim_verdict():
    assert exp.smear_forms_earlier(onset_plain=150, onset_smeared=100) is True
    assert exp.smear_forms_earlier(onset_plain=100, onset_smeared=100) is False
    assert exp.smear_forms_earlier(onset_plain=100, onset_smeared=150) is False
    assert exp.smear_forms_earlier(onset_plain=None, onset_smeared=100) is None  # untested
    assert exp.smear_forms_earlier(onset_plain=100, onset_smeared=None) is None


@pytest.mark.parametrize(
    "ind_score, ablated, other_min, holds",
    [
        (0.6, 0.02, 0.55, True),
        (0.6, 0.045, 0.55, True),  # exactly the uniform-attention level counts as about 0
        (0.6, 0.02, None, True),  # no other layer-0 head
        (0.2, 0.02, 0.19, False),  # no induction head to begin with
        (0.6, 0.06, 0.55, False),  # above the uniform-attention level (the old rule, "below half", passed this)
        (0.6, 0.35, 0.55, False),  # ablating the previous-token head keeps more than half
        (0.6, 0.02, 0.25, False),  # another layer-0 head matters as much
    ],
)
def test_ablation_claim_verdict(ind_score, ablated, other_min, holds):
    assert exp.previous_token_ablation_holds(ind_score, ablated, other_min, threshold=0.3, near_zero=0.045) is holds


# ---- result and section from hand-made numbers ---------------------------------------------------
def test_result_round_trips_through_json():
    back = round_trip(hand_made(ablation=exp.PreviousTokenAblation(**{**ABLATION.__dict__, "other_ablations_min": None})))
    assert back.ablation.other_ablations_min is None and back.curves["2L"].step == (50, 100, 150)
    assert isinstance(back.curves["2L"].induction, np.ndarray)
    with pytest.raises(ValueError, match="unknown fields"):
        exp.Result.from_json({**hand_made().to_json(), "extra": 1})


def test_claims_follow_the_measurements():
    claims = {c.key: c for c in exp.claims(round_trip(hand_made()))}
    assert all(c.holds is True for c in claims.values())
    assert "2L smeared step 100, 2L step 150" in claims["synthetic_smeared_earlier"].measured
    assert claims["synthetic_smeared_earlier"].value == 50.0 and claims["synthetic_previous_token_ablation"].value == 0.02
    for claim in claims.values():
        assert claim.models and all(m.startswith("synthetic ") for m in claim.models) and claim.data.startswith("synthetic:")
        assert LAYOUT in claim.measured and "BOS + R + R" in claim.measured
    failed = exp.PreviousTokenAblation(**{**ABLATION.__dict__, "ablated": 0.5})
    claims = {c.key: c for c in exp.claims(round_trip(hand_made(NEVER, failed)))}
    assert claims["synthetic_smeared_one_layer"].holds is False
    assert claims["synthetic_smeared_earlier"].holds is None and "untested" in claims["synthetic_smeared_earlier"].measured
    assert claims["synthetic_previous_token_ablation"].holds is False


def test_section_from_a_hand_made_result():
    section = build_section(exp, round_trip(hand_made()))
    check_section(section, "induction_synthetic", {"induction_synthetic_curves"}, CLAIMS)
    assert "First step above 0.3 (natural prefix / right after BOS): 1L never / never, 1L smeared step 100 / step 100" in section.figures[0].caption
    assert "ln 63 = 4.14 nats" in section.notes[0] and "same 150 batches of 64 windows" in section.intro


# ---- quick run ---------------------------------------------------------------------------------
def test_induction_synthetic_quick():
    cfg = exp.Config.quick()
    result = round_trip(exp.compute(cfg, None))
    assert set(result.curves) == {"1L", "1L smeared", "2L", "2L smeared"}
    for curve in result.curves.values():
        assert curve.step == (20, 40, 60)
        assert all(0 <= score <= 1 for score in curve.induction) and len(curve.induction_bos) == 3
    assert result.ablation.prev_head.startswith("L0H") and result.ablation.ind_head.startswith("L1H")
    assert 0 < result.ablation.near_zero < result.ablation.near_zero_bos < 1 and "held-out synthetic tokens" in result.layout
    section = build_section(exp, result)
    check_section(section, "induction_synthetic", {"induction_synthetic_curves"}, CLAIMS)
    assert "Synthetic data, not the corpus" in section.intro
