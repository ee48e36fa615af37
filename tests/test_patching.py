import pytest
import torch
from activation_models import induction_model
from conftest import tiny_model

import circuits


def _tokens(batch=3, pos=7, seed=0):
    return torch.randint(0, 13, (batch, pos), generator=torch.Generator().manual_seed(seed))


def _logit_diff_metric(tokens):
    def metric(logits):
        return logits[:, -1].gather(-1, tokens[:, -1:]).mean() - logits[:, -1].mean()

    return metric


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_residual_and_head_sweeps_agree_with_transformer_lens(model):
    from transformer_lens import patching

    clean, corrupted = _tokens(seed=0), _tokens(seed=1)
    metric = _logit_diff_metric(clean)
    _, clean_cache = model.run_with_cache(clean)
    ours = circuits.patch_residual(model, clean, corrupted, metric)
    tl = patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric)
    torch.testing.assert_close(ours.values, tl.float(), atol=1e-5, rtol=1e-5)
    assert ours.row_labels == ["resid_pre0", "resid_pre1"] and ours.col_labels[-1] == "pos6"
    heads = circuits.patch_heads(model, clean, corrupted, metric)
    tl_heads = patching.get_act_patch_attn_head_out_all_pos(model, corrupted, clean_cache, metric)
    torch.testing.assert_close(heads.values, tl_heads.float(), atol=1e-5, rtol=1e-5)
    assert heads.clean_metric == pytest.approx(float(metric(model(clean))))
    assert heads.corrupted_metric == pytest.approx(float(metric(model(corrupted))))


def test_patching_the_only_differing_position_restores_the_clean_run(model):
    clean = _tokens(seed=0)
    corrupted = clean.clone()
    corrupted[:, 3] = (clean[:, 3] + 1) % 13
    result = circuits.patch_residual(model, clean, corrupted, _logit_diff_metric(clean))
    assert result.values[0, 3].item() == pytest.approx(result.clean_metric, abs=1e-5)
    torch.testing.assert_close(result.values[0, :3], torch.full((3,), result.corrupted_metric))
    torch.testing.assert_close(result.normalized()[0, 3], torch.tensor(1.0), atol=1e-4, rtol=0)


def test_identical_inputs_give_the_clean_metric_everywhere(model):
    tokens = _tokens()
    metric = _logit_diff_metric(tokens)
    result = circuits.path_patch_senders(model, tokens, tokens, "L1H0", metric)
    assert torch.isnan(result.values[1]).all()
    torch.testing.assert_close(result.values[0], torch.full((3,), result.clean_metric), atol=1e-5, rtol=1e-5)


def test_path_patching_in_the_hand_built_induction_circuit():
    model = induction_model()
    clean = circuits.repeated_tokens(11, 6, 2, batch=4, seed=0, distinct=True)
    corrupted = circuits.repeated_tokens(11, 6, 2, batch=4, seed=1, distinct=True)
    corrupted[:, 7:] = clean[:, 7:]  # same second half, different first half: induction fails on corrupted

    def metric(logits):  # log prob of the clean next token over the second repeat
        return logits[:, 7:-1].log_softmax(-1).gather(-1, clean[:, 8:, None]).mean()

    head_patch = circuits.patch_heads(model, clean, corrupted, metric)
    assert head_patch.clean_metric > -0.01 and head_patch.corrupted_metric < head_patch.clean_metric - 1.0
    # L1H0's query reads only tokens, never L0H0's output: the q path does nothing
    assert circuits.path_patch(model, clean, corrupted, "L0H0", "L1H0", metric, "q") == pytest.approx(head_patch.corrupted_metric)
    # all of L0H0's effect goes to L1H0 (the other layer-1 heads write nothing), so q+k+v path patching
    # equals patching L0H0's output
    qkv = circuits.path_patch(model, clean, corrupted, "L0H0", "L1H0", metric, "qkv")
    assert qkv == pytest.approx(head_patch.values[0, 0].item(), abs=1e-5)
    assert circuits.path_patch(model, clean, corrupted, "L0H0", "L1H0", metric, "k") == pytest.approx(qkv, abs=1e-5)
    senders = circuits.path_patch_senders(model, clean, corrupted, (1, 0), metric, "k")
    assert senders.values[0, 0] == pytest.approx(qkv, abs=1e-5)
    assert senders.values[0, 1] == pytest.approx(senders.corrupted_metric, abs=1e-5)


def test_patching_errors(model):
    tokens = _tokens()
    metric = _logit_diff_metric(tokens)
    with pytest.raises((ValueError, TypeError)):  # TypeError: shape mismatch caught by the runtime type checks
        circuits.patch_heads(model, tokens, tokens[:2], metric)
    with pytest.raises(ValueError, match="earlier layer"):
        circuits.path_patch(model, tokens, tokens, "L1H0", "L0H0", metric)
    with pytest.raises(ValueError, match="receiver_input"):
        circuits.path_patch(model, tokens, tokens, "L0H0", "L1H0", metric, "x")
    with pytest.raises(ValueError, match="scalar"):
        circuits.patch_heads(model, tokens, tokens, lambda logits: logits[:, -1, 0])
    with pytest.raises(ValueError, match="grouped-query"):
        circuits.path_patch(tiny_model(n_kv_heads=1), tokens, tokens, "L0H0", "L1H0", metric, "k")
