import pytest
import torch

from circuits import random_tokens, repeated_tokens
from circuits.analysis.tasks import allowed_token_ids


def test_layout_bos_then_identical_repeats():
    tokens = repeated_tokens(13, 5, 3, batch=4, seed=0, bos=0)
    assert tokens.shape == (4, 1 + 15) and tokens.dtype == torch.long
    assert (tokens[:, 0] == 0).all()
    body = tokens[:, 1:].reshape(4, 3, 5)
    assert (body == body[:, :1]).all()


def test_no_bos_option():
    tokens = repeated_tokens(13, 5, 2, batch=2, seed=0, bos=None)
    assert tokens.shape == (2, 10)
    assert (tokens[:, :5] == tokens[:, 5:]).all()


def test_seed_determines_tokens():
    a = repeated_tokens(101, 20, 2, batch=3, seed=7)
    assert torch.equal(a, repeated_tokens(101, 20, 2, batch=3, seed=7))
    assert not torch.equal(a, repeated_tokens(101, 20, 2, batch=3, seed=8))


def test_bos_and_excluded_ids_never_drawn():
    tokens = repeated_tokens(13, 50, 1, batch=40, seed=1, bos=3, exclude=[0, 12])
    body = tokens[:, 1:]
    assert not torch.isin(body, torch.tensor([0, 3, 12])).any()
    assert (tokens[:, 0] == 3).all()
    # every other id does appear in 2000 uniform draws
    assert set(body.unique().tolist()) == set(range(13)) - {0, 3, 12}


def test_distinct_draws_without_replacement():
    tokens = random_tokens(13, 12, batch=20, seed=0, distinct=True)
    for row in tokens[:, 1:]:
        assert row.unique().numel() == 12


@pytest.mark.parametrize(
    "kwargs",
    [dict(bos=13), dict(exclude=[20]), dict(distinct=True, seq_len=13), dict(seed=1.5), dict(seq_len=0)],
)
def test_bad_arguments_raise(kwargs):
    args = dict(d_vocab=13, seq_len=4, n_repeats=2, batch=2, seed=0)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError)):
        repeated_tokens(**args)


def test_nothing_left_to_draw_raises():
    with pytest.raises(ValueError, match="no token ids left"):
        allowed_token_ids(2, bos=0, exclude=[1])
