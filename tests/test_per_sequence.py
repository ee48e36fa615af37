"""Each probe row's induction and prefix-matching scores (circuits.analysis.activations.per_sequence): their mean is probe_scores'."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_model

from circuits.analysis.activations.per_sequence import probe_seq_len, row_scores, row_targets
from circuits.analysis.probes import bos_repeats, prefixed_repeats, probe_scores

N_CTX = 16


@pytest.fixture
def model16():
    return tiny_model(n_ctx=N_CTX, attn_only=True, normalization="none", positional="shortformer", use_bias=False)


@pytest.mark.parametrize("layout", ["bos", "prefix"])
def test_the_mean_over_rows_is_probe_scores(model16, layout):
    if layout == "bos":
        probe = bos_repeats(torch.arange(1, 13), seq_len=4, n_repeats=3, batch=7, seed=1, bos=0)
    else:
        probe = prefixed_repeats(torch.arange(1, 13), np.arange(1, 13).repeat(20), seq_len=3, n_repeats=3, batch=7, seed=1, bos=0, n_ctx=N_CTX)
    rows = row_scores(model16, row_targets(probe), batch_size=3)
    mean = probe_scores(model16, probe)
    assert rows["induction"].shape == (7, 2, 3) and rows["prefix_matching"].shape == (7, 2, 3)
    torch.testing.assert_close(rows["induction"].mean(0).float(), mean.induction)
    torch.testing.assert_close(rows["prefix_matching"].mean(0).float(), mean.prefix_matching)
    assert not torch.allclose(rows["induction"][0], rows["induction"][1])  # rows differ: there is a spread to bootstrap


def test_each_row_is_its_own_probe_score(model16):
    probe = prefixed_repeats(torch.arange(1, 13), np.arange(1, 13).repeat(20), seq_len=4, n_repeats=2, batch=4, seed=0, bos=0, n_ctx=N_CTX)
    rows = row_scores(model16, row_targets(probe, ("induction",)))
    assert set(rows) == {"induction"}
    for b in range(4):
        single = type(probe)(probe.tokens[b : b + 1], probe.starts[b : b + 1], probe.seq_len, probe.n_repeats, probe.layout)
        torch.testing.assert_close(rows["induction"][b].float(), probe_scores(model16, single).induction)


def test_probe_seq_len_leaves_room_for_a_prefix():
    assert probe_seq_len(64, 2, 50) == 21 and probe_seq_len(64, 4, 25) == 12 and probe_seq_len(64, 4, 5) == 5
    assert probe_seq_len(48, 2, 20) == 15
    with pytest.raises(ValueError, match="n_repeats"):
        probe_seq_len(64, 1, 5)


def test_errors(model16):
    probe = bos_repeats([1, 2, 3], seq_len=10, n_repeats=2, batch=2, seed=0, bos=0)  # 21 tokens > n_ctx 16
    with pytest.raises(ValueError, match="unknown score kinds"):
        row_targets(probe, ("copying",))
    with pytest.raises(ValueError, match="exceed the model's n_ctx"):
        row_scores(model16, row_targets(probe))
