"""A tiny 2-layer attention-only model trained on repeated random tokens grows the induction circuit.

The slow test trains long enough for the circuit to form and checks it with the activation tools:
a layer-0 previous-token head, a layer-1 induction head, a drop in loss on the second repeat, and
ablating the previous-token head removing the induction head's score. The quick variant trains a
few steps and checks that the same pipeline runs and the loss goes down.
"""

import pytest
import torch

import circuits

SEQ_LEN, VOCAB = 12, 23


def _train(steps: int, seed: int = 0) -> circuits.Transformer:
    cfg = circuits.TransformerConfig(
        n_layers=2, d_model=32, n_heads=4, d_head=8, d_vocab=VOCAB, n_ctx=2 * SEQ_LEN + 1,
        attn_only=True, normalization="layernorm", positional="shortformer", seed=seed,
    )
    model = circuits.Transformer(cfg)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        tokens = circuits.repeated_tokens(VOCAB, SEQ_LEN, 2, batch=32, seed=1000 + step)
        loss = model(tokens, return_type="loss")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _evaluate(model):
    prev = circuits.previous_token_scores(model, circuits.random_tokens(VOCAB, 2 * SEQ_LEN, batch=16, seed=1))
    ind_kwargs = dict(seq_len=SEQ_LEN, n_repeats=2, batch=16, seed=2)
    ind = circuits.induction_scores(model, **ind_kwargs)
    loss = circuits.repeated_tokens_loss(model, **ind_kwargs)
    return prev, ind, loss, ind_kwargs


def test_quick_training_runs_the_pipeline():
    untrained = _train(0)
    model = _train(10)
    _, _, before, _ = _evaluate(untrained)
    prev, ind, after, kwargs = _evaluate(model)
    assert after.per_repeat.mean() < before.per_repeat.mean()
    head = int(prev[0].argmax())
    ablated = circuits.induction_scores(model, **kwargs, hooks_for_batch=circuits.Ablation([(0, head)]).for_model(model))
    assert ablated.shape == ind.shape == (2, 4)


@pytest.mark.slow
def test_trained_model_has_an_induction_circuit():
    model = _train(600)
    prev, ind, loss, kwargs = _evaluate(model)
    prev_head = int(prev[0].argmax())
    ind_head = int(ind[1].argmax())
    assert prev[0, prev_head] > 0.5
    assert ind[1, ind_head] > 0.5
    assert loss.per_repeat[1] < 0.5 * loss.per_repeat[0]
    ablated = circuits.induction_scores(model, **kwargs, hooks_for_batch=circuits.Ablation([(0, prev_head)]).for_model(model))
    assert ablated[1, ind_head] < 0.5 * ind[1, ind_head]
