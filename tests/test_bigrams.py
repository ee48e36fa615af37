"""Bigram statistics (circuits.analysis.bigrams) on hand-counted tables."""

from __future__ import annotations

import math

import pytest
import torch

from circuits.analysis.bigrams import (
    add_one_unigram, conditional_probabilities, entropy, entropy_gap_closed, smoothed_bigram_cross_entropy, top1_agreement,
    unigram_cross_entropy,
)

# current token (row) -> next token (column): token 0 is followed by 1 three times and by 2 once; token 1 by 0 twice; token 2 never current
COUNTS = torch.tensor([[0, 3, 1], [2, 0, 0], [0, 0, 0]])


def test_entropy_by_hand():
    assert entropy(torch.tensor([1, 1, 0, 2])) == pytest.approx(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)))
    assert entropy(torch.tensor([0, 5])) == 0.0


def test_conditional_probabilities_by_hand():
    expected = torch.tensor([[0, 0.75, 0.25], [1, 0, 0], [0, 0, 0]], dtype=torch.float64)
    torch.testing.assert_close(conditional_probabilities(COUNTS), expected)


def test_add_one_unigram_by_hand():
    # next-token counts [2, 3, 1] plus one each, over 6 + 3
    torch.testing.assert_close(add_one_unigram(COUNTS), torch.tensor([3 / 9, 4 / 9, 2 / 9], dtype=torch.float64))


def test_smoothed_bigram_cross_entropy():
    # a tiny prior: the train table itself; on its own bigrams that is H(next | current)
    h_cond = -(3 * math.log(0.75) + math.log(0.25) + 2 * math.log(1.0)) / 6
    assert smoothed_bigram_cross_entropy(COUNTS, COUNTS, 1e-9) == pytest.approx(h_cond)
    # by hand with beta = 2 on one held-out bigram 1 -> 1: (0 + 2 * 4/9) / (2 + 2)
    val = torch.zeros(3, 3, dtype=torch.long)
    val[1, 1] = 1
    assert smoothed_bigram_cross_entropy(COUNTS, val, 2.0) == pytest.approx(-math.log(2 * 4 / 9 / 4))
    # a huge prior gives the unigram
    assert smoothed_bigram_cross_entropy(COUNTS, COUNTS, 1e12) == pytest.approx(unigram_cross_entropy(COUNTS, COUNTS), rel=1e-6)
    for beta in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="beta"):
            smoothed_bigram_cross_entropy(COUNTS, COUNTS, beta)


def test_unigram_cross_entropy_by_hand():
    p = [3 / 9, 4 / 9, 2 / 9]
    assert unigram_cross_entropy(COUNTS, COUNTS) == pytest.approx(-(2 * math.log(p[0]) + 3 * math.log(p[1]) + math.log(p[2])) / 6)


def test_top1_agreement_weights_current_tokens_by_frequency():
    agree = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).log_softmax(-1)
    assert top1_agreement(agree, COUNTS) == 1.0
    disagree_on_0 = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).log_softmax(-1)
    assert top1_agreement(disagree_on_0, COUNTS) == pytest.approx(2 / 6)  # token 0 is current 4 times out of 6
    with pytest.raises((ValueError, TypeError)):  # TypeError: jaxtyping's shape check, when it is on
        top1_agreement(agree[:2], COUNTS[:2].T)


def test_entropy_gap_closed():
    assert entropy_gap_closed(4.0, 2.0, 2.0) == 1.0  # at the bigram floor
    assert entropy_gap_closed(4.0, 2.0, 4.0) == 0.0  # no better than the unigram
    assert entropy_gap_closed(4.0, 2.0, 5.0) == -0.5  # worse than the unigram
    assert math.isnan(entropy_gap_closed(2.0, 2.0, 1.0))  # no gap
