"""DeepseekV2ForSequenceClassification's pooling and AddAuxiliaryLoss, on small real tensors."""

from __future__ import annotations

import pytest
import torch

from opdoc.models.deepseek_ocr.config import DeepseekV2Config
from opdoc.models.deepseek_ocr.deepseek_v2 import AddAuxiliaryLoss, DeepseekV2ForSequenceClassification
from opdoc.pipeline import Paths, load
from opdoc_testing import ROOT

SMALL = dict(hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, vocab_size=50, n_routed_experts=4, num_experts_per_tok=2, num_labels=3,
             _attn_implementation="eager")


def test_each_sequence_is_read_before_its_first_pad():
    torch.manual_seed(0)
    model = DeepseekV2ForSequenceClassification(DeepseekV2Config.from_scope(pad_token_id=1, **SMALL)).eval()
    ids = torch.randint(2, 50, (2, 6))
    ids[0, 4:] = 1  # row 0: four real tokens, then padding; row 1: no pad at all
    with torch.no_grad():
        _, pooled, _ = model(ids)
        hidden, _ = model.model(ids)
    scores = model.score(hidden)
    assert torch.equal(pooled[0], scores[0, 3]) and torch.equal(pooled[1], scores[1, 5])


def test_without_a_pad_token_only_one_sequence_is_accepted():
    model = DeepseekV2ForSequenceClassification(DeepseekV2Config.from_scope(**SMALL)).eval()
    with torch.no_grad():
        _, pooled, _ = model(torch.randint(2, 50, (1, 5)))
        assert pooled.shape == (1, 3)
        with pytest.raises(ValueError, match="need a pad_token_id"):
            model(torch.randint(2, 50, (2, 5)))


def test_the_head_adds_one_skinny_product_to_the_decoder():
    _, ev = load(Paths(root=ROOT))
    classifier = ev.evaluate_at("DeepseekV2ForSequenceClassification", "prefill", None, None)
    decoder = ev.evaluate_at("DeepseekV2Model", "prefill", None, None)
    assert classifier["tensor_flops"] - decoder["tensor_flops"] == 2 * 8192 * 1280 * 2  # (S × h) by (h × 2 classes)
    # the pad search: a comparison and an argmax step per token, and the - 1 (B = 1)
    assert classifier["cuda_flops"] - decoder["cuda_flops"] == 8192 + 8192 + 1
    assert classifier["parameters"] - decoder["parameters"] == 2 * 1280


def test_the_auxiliary_loss_gets_a_gradient_of_one():
    y = torch.randn(2, 3, 4, requires_grad=True)
    aux = torch.tensor(0.25, requires_grad=True)
    out = AddAuxiliaryLoss.apply(y, aux)
    assert torch.equal(out, y) and out.data_ptr() == y.data_ptr()  # forward: the same storage
    (3 * out.sum()).backward()
    assert torch.equal(y.grad, torch.full_like(y, 3.0)) and aux.grad.item() == 1.0
