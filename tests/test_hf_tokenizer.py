"""HFTokenizer on small in-memory ``tokenizers`` objects (no checkpoint needed)."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from circuits import HFTokenizer


def wordpiece(padding: bool) -> Tokenizer:
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "it": 4, "works": 5, "##s": 6, "a": 7, "long": 8, "text": 9}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    if padding:  # as sentence-transformers checkpoints ship their tokenizer.json
        tok.enable_padding(length=12, pad_id=0, pad_token="[PAD]")
        tok.enable_truncation(max_length=4)
    return tok


@pytest.mark.parametrize("padding", [False, True])
def test_special_tokens_framing_and_batch_padding(padding):
    tok = HFTokenizer(wordpiece(padding), {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"})
    assert tok.encode("it works") == [2, 4, 5, 3]
    assert tok.encode("it works", bos=False) == [4, 5]
    assert tok.encode("a long text it works") == [2, 7, 8, 9, 4, 5, 3]  # the file's truncation is not applied
    tokens, mask = tok.batch(["it works", "a long text"])
    assert tokens.tolist() == [[2, 4, 5, 3, 0], [2, 7, 8, 9, 3]]  # padded to the longest text, not to the file's 12
    assert torch.equal(mask, torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]))
    assert tok.str_tokens([2, 4, 3]) == ["[CLS]", "it", "[SEP]"]


def test_bad_ids_name_the_range():
    tok = HFTokenizer(wordpiece(False), {"cls_token": "[CLS]"})
    with pytest.raises(ValueError, match=r"token id 99 is out of range .*\[0, 10\)"):
        tok.decode([2, 99])
    with pytest.raises(TypeError, match="must be ints"):
        tok.str_tokens(torch.tensor([1.5]))
