"""Sparse autoencoders: the module, training on streamed activations, the metrics' definitions, feature pages, SAELens files."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_model

from circuits.analysis import sae_metrics as M
from circuits.analysis.sae_features import feature_pages
from circuits.model.sae import SAEConfig, SparseAutoencoder
from circuits.training.sae import SAETrainConfig, hook_activations, train_sae
from circuits.training.sae_checkpoint import CFG_FILENAME, WEIGHTS_FILENAME, load_sae, save_sae
from circuits.training.sae_data import PlantedFeatures

HOOK = "blocks.0.hook_resid_post"


# ---- metric definitions on hand-made inputs --------------------------------------------------------
def test_fvu_about_the_mean_and_about_zero_differ_on_an_offset_input():
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0]])  # mean (2, 10); variance about the mean 2, second moment 210
    x_hat = torch.tensor([[2.0, 10.0], [2.0, 10.0]])  # predicts the mean: explains nothing
    assert M.fvu(x, x_hat) == pytest.approx(1.0)
    assert M.fvu_about_zero(x, x_hat) == pytest.approx(2.0 / 210.0)
    assert M.fvu(x, x) == 0.0


def test_fvu_checks_shapes():
    with pytest.raises(ValueError, match="same shape"):
        M.fvu(torch.zeros(3, 2), torch.zeros(3, 3))


def test_l0_counts_nonzero_latents_per_input():
    acts = torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 0.5, 0.1]])
    assert M.l0(acts) == pytest.approx((2 + 0 + 3) / 3)


def test_dead_and_dense_latents():
    acts = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    freq = M.firing_frequency(acts)
    assert freq.tolist() == [0.0, 1.0, 0.0, 0.25]
    assert M.dead_fraction(freq) == 0.5
    assert M.dense_fraction(freq, 0.2) == 0.5 and M.dense_fraction(freq, 0.5) == 0.25


def test_ce_recovered():
    assert M.ce_recovered(2.0, 2.0, 4.0) == 1.0
    assert M.ce_recovered(2.0, 3.0, 4.0) == 0.5
    assert M.ce_recovered(2.0, 4.0, 4.0) == 0.0
    assert M.ce_recovered(2.0, 2.5, 2.0) != M.ce_recovered(2.0, 2.5, 2.0)  # NaN without a gap


def test_mean_max_cosine():
    true = torch.eye(3)
    dictionary = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 1.0]])
    assert M.mean_max_cosine(true, dictionary) == pytest.approx((1 + 1 + 2**-0.5) / 3)


def test_streaming_stats_equal_the_definitions():
    g = torch.Generator().manual_seed(0)
    x, x_hat = torch.randn(50, 4, generator=g) + 3, torch.randn(50, 4, generator=g)
    acts = torch.relu(torch.randn(50, 6, generator=g))
    stats = M.ReconstructionStats(4, 6)
    stats.add(x[:20], x_hat[:20], acts[:20])
    stats.add(x[20:], x_hat[20:], acts[20:])
    assert stats.fvu() == pytest.approx(M.fvu(x, x_hat)) and stats.fvu_about_zero() == pytest.approx(M.fvu_about_zero(x, x_hat))
    assert stats.l0() == pytest.approx(M.l0(acts))


# ---- the module ------------------------------------------------------------------------------------
def test_sae_initialisation_and_shapes():
    sae = SparseAutoencoder(SAEConfig(d_in=7, d_sae=11))
    assert sae.W_enc.shape == (7, 11) and sae.W_dec.shape == (11, 7) and sae.b_enc.shape == (11,) and sae.b_dec.shape == (7,)
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(11))
    torch.testing.assert_close(sae.W_enc, sae.W_dec.T)
    x = torch.randn(3, 5, 7)
    assert sae.encode(x).shape == (3, 5, 11) and sae(x).shape == (3, 5, 7)
    assert (sae.encode(x) >= 0).all()


def test_topk_keeps_at_most_k_latents():
    sae = SparseAutoencoder(SAEConfig(d_in=7, d_sae=13, architecture="topk", k=3))
    acts = sae.encode(torch.randn(20, 7))
    assert ((acts > 0).sum(-1) <= 3).all() and ((acts > 0).sum(-1) >= 1).any()


@pytest.mark.parametrize("kwargs, match", [
    (dict(d_in=0, d_sae=4), "d_in"), (dict(d_in=4, d_sae=4, architecture="gated"), "architecture"),
    (dict(d_in=4, d_sae=4, architecture="topk"), "k"), (dict(d_in=4, d_sae=4, k=2), "only for architecture='topk'"),
    (dict(d_in=4, d_sae=4, architecture="topk", k=5), "k"),
])
def test_bad_configs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SAEConfig(**kwargs)


def test_wrong_input_width_is_a_clear_error():
    sae = SparseAutoencoder(SAEConfig(d_in=7, d_sae=11, hook_name=HOOK))
    with pytest.raises(ValueError, match="d_in=7"):
        sae(torch.zeros(2, 8))


def test_input_normalisation_and_folding_keep_the_function():
    sae = SparseAutoencoder(SAEConfig(d_in=6, d_sae=9))
    x = 40 * torch.randn(100, 6) + 5
    scale = sae.set_input_scale_(x)
    assert (x * scale).norm(dim=-1).mean() == pytest.approx(6**0.5, rel=1e-4)
    with torch.no_grad():
        sae.b_dec.copy_(torch.randn(6))
        sae.b_enc.copy_(torch.randn(9))
    w = sae.folded_weights()
    acts = torch.relu((x - w["b_dec"]) @ w["W_enc"] + w["b_enc"])
    torch.testing.assert_close(acts, sae.encode(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(acts @ w["W_dec"] + w["b_dec"], sae(x), rtol=1e-4, atol=1e-3)


# ---- training --------------------------------------------------------------------------------------
def _planted_sae(architecture: str, steps: int = 400, seed: int = 0):
    data = PlantedFeatures(n_features=16, d_in=8, p=0.08, offset_norm=1.0, seed=0)
    topk = architecture == "topk"
    sae = SparseAutoencoder(SAEConfig(d_in=8, d_sae=16, architecture=architecture, k=3 if topk else None, seed=seed))
    cfg = SAETrainConfig(steps=steps, lr=3e-3, l1_coefficient=1.0, aux_k=4 if topk else None, resample_every=50, dead_window=40, log_every=50)
    log = train_sae(sae, data.batches(steps, 256), cfg)
    return data, sae, log


@pytest.mark.parametrize("architecture", ["standard", "topk"])
def test_sae_recovers_planted_features(architecture):
    data, sae, log = _planted_sae(architecture)
    x, _ = data.sample(2048, torch.Generator().manual_seed(9))
    r = M.planted_recovery(sae, data.directions(), x)
    assert r.mean_max_cosine >= 0.95, r.max_cosines
    assert r.dead_fraction <= 0.01
    assert r.fvu < 0.5 and r.fvu_about_zero < r.fvu  # the offset makes the about-zero number look better
    assert log.mse[-1] < log.mse[0] and log.n_activations == 400 * 256
    torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(16))


def test_training_is_deterministic():
    _, a, log_a = _planted_sae("standard", steps=60)
    _, b, log_b = _planted_sae("standard", steps=60)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert log_a.mse == log_b.mse


def test_dead_latents_are_resampled():
    data = PlantedFeatures(n_features=8, d_in=6, p=0.1, seed=0)
    sae = SparseAutoencoder(SAEConfig(d_in=6, d_sae=12))
    with torch.no_grad():
        sae.b_enc[:6] = -1e3  # half the latents can never fire
    cfg = SAETrainConfig(steps=20, resample_every=10, resample_until=1.0, dead_window=5, log_every=5)
    log = train_sae(sae, data.batches(20, 64), cfg)
    assert log.resampled and log.resampled[0][0] == 9 and log.resampled[0][1] >= 6
    assert (sae.b_enc[:6] > -1e3).all()


def test_training_errors():
    data = PlantedFeatures(n_features=8, d_in=6, p=0.1)
    sae = SparseAutoencoder(SAEConfig(d_in=6, d_sae=12))
    with pytest.raises(ValueError, match="ended after 3 batches"):
        train_sae(sae, data.batches(3, 16), SAETrainConfig(steps=5))
    with pytest.raises(ValueError, match="aux_k"):
        train_sae(sae, data.batches(3, 16), SAETrainConfig(steps=3, aux_k=2))
    with pytest.raises(ValueError, match="d_in=6"):
        train_sae(sae, iter([torch.zeros(4, 5)]), SAETrainConfig(steps=1))
    with pytest.raises(ValueError, match="lr"):
        SAETrainConfig(lr=0)


# ---- streaming from a model ------------------------------------------------------------------------
def test_hook_activations_are_the_cached_ones_without_bos():
    model = tiny_model(attn_only=True)
    tokens = torch.randint(0, 13, (4, 7), generator=torch.Generator().manual_seed(0))
    got = torch.cat(list(hook_activations(model, HOOK, tokens.split(2))))
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(got, cache[HOOK][:, 1:].reshape(-1, 11))
    assert not any(point._forward_hooks for point in model.hook_dict.values())  # stopping the forward pass removed the hook
    with pytest.raises(KeyError, match="no hook point"):
        next(hook_activations(model, "blocks.0.hook_resid_pots", tokens.split(2)))


def _identity_sae(d: int) -> SparseAutoencoder:
    """``x = ReLU(x) - ReLU(-x)``: an exact reconstruction with 2d latents."""
    sae = SparseAutoencoder(SAEConfig(d_in=d, d_sae=2 * d, hook_name=HOOK))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
    return sae.eval()


def test_evaluate_sae_with_an_exact_sae():
    model = tiny_model(attn_only=True)
    tokens = torch.randint(0, 13, (6, 7), generator=torch.Generator().manual_seed(1))
    ev = M.evaluate_sae(model, _identity_sae(11), tokens.split(3))
    assert ev.n_activations == 6 * 6 and ev.fvu == pytest.approx(0.0, abs=1e-10)
    assert ev.ce_spliced == pytest.approx(ev.ce_clean, abs=1e-5)  # splicing an exact reconstruction changes nothing
    assert ev.ce_zero_ablated != pytest.approx(ev.ce_clean)  # (a random model: zero-ablation may even help, so no CE recovered here)
    assert ev.l0 == pytest.approx(11.0, abs=0.5) and ev.firing_frequency.shape == (22,)


class _Labels:
    def token_str(self, id: int) -> str:
        return f"t{id}"


def test_feature_pages_mark_the_top_activating_token():
    model = tiny_model(attn_only=True)
    sae = _identity_sae(11)
    tokens = torch.randint(0, 13, (8, 7), generator=torch.Generator().manual_seed(2))
    pages = feature_pages(model, sae, tokens.split(4), _Labels(), features=[3], n_contexts=2, before=2, after=1, dense_threshold=0.99)
    _, cache = model.run_with_cache(tokens)
    acts = sae.encode(cache[HOOK][:, 1:])[..., 3].detach()  # [batch, pos - 1]
    best = int(acts.argmax())
    b, p = best // 6, best % 6 + 1
    page = pages[0]
    assert page.contexts[0].activation == pytest.approx(float(acts.max()))
    assert page.contexts[0].tokens[page.contexts[0].marked] == f"t{int(tokens[b, p])}"
    assert f"[[t{int(tokens[b, p])}]]" in page.contexts[0].text
    assert page.histogram_counts.sum() == int((acts > 0).sum())
    assert len(page.promoted) == 5 and page.promoted[0][1] >= page.promoted[-1][1] and page.suppressed[0][1] <= 0


# ---- SAELens files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["standard", "topk"])
def test_saelens_round_trip(tmp_path, architecture):
    sae = SparseAutoencoder(SAEConfig(d_in=6, d_sae=10, architecture=architecture, k=3 if architecture == "topk" else None,
                                      hook_name=HOOK, model_name="attn-only-1l", context_size=64))
    x = 7 * torch.randn(30, 6) + 2
    sae.set_input_scale_(x)
    with torch.no_grad():
        sae.b_dec.copy_(torch.randn(6))
    folder = save_sae(sae, tmp_path / "sae")
    assert sorted(p.name for p in folder.iterdir()) == sorted([CFG_FILENAME, WEIGHTS_FILENAME])
    cfg = json.loads((folder / CFG_FILENAME).read_text())
    assert cfg["d_in"] == 6 and cfg["d_sae"] == 10 and cfg["hook_name"] == HOOK and cfg["hook_layer"] == 0
    assert cfg["architecture"] == architecture and cfg["normalize_activations"] == "none" and cfg["apply_b_dec_to_input"] is True
    back = load_sae(folder)
    assert back.config.architecture == architecture and back.config.k == sae.config.k and float(back.input_scale) == 1.0
    torch.testing.assert_close(back.encode(x), sae.encode(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(back(x), sae(x), rtol=1e-5, atol=1e-4)
    again = save_sae(back, tmp_path / "again")
    assert (again / WEIGHTS_FILENAME).read_bytes() == (folder / WEIGHTS_FILENAME).read_bytes()


def test_loading_refuses_weights_that_do_not_match_the_config(tmp_path):
    folder = save_sae(SparseAutoencoder(SAEConfig(d_in=6, d_sae=10)), tmp_path / "sae")
    cfg = json.loads((folder / CFG_FILENAME).read_text())
    cfg["d_sae"] = 12
    (folder / CFG_FILENAME).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"W_enc has shape \(6, 10\), but cfg.json \(d_in=6, d_sae=12\) implies \(6, 12\)"):
        load_sae(folder)
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        load_sae(tmp_path / "nowhere")


def test_training_works_from_a_generator_that_yields_inside_no_grad():
    """A stream written as ``with torch.no_grad(): yield x`` leaves grad mode off between batches; train_sae must not care."""
    import torch

    from circuits.model.sae import SAEConfig, SparseAutoencoder
    from circuits.training.sae import SAETrainConfig, train_sae

    def stream():
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            while True:
                yield torch.randn(32, 8, generator=generator)

    sae = SparseAutoencoder(SAEConfig(d_in=8, d_sae=16, seed=0))
    log = train_sae(sae, stream(), SAETrainConfig(steps=5))
    assert log.n_activations == 5 * 32
