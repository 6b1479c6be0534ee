"""Multi-head latent attention and DeepSeek-V2's rotary classes (reference modules, small real tensors).

The eager class (latent cached, up-projection absorbed) and the flash class (keys and values expanded
and padded) are two algorithms for one function: their outputs must agree with each other and with
transformers' own DeepseekV2Attention, a third implementation nobody here wrote.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from opdoc.models.deepseek_ocr.config import MlaConfig
from opdoc.models.deepseek_ocr.deepseek_v2 import KVCache, causal_mask_4d
from opdoc.models.deepseek_ocr.mla import (
    DeepseekV2Attention,
    DeepseekV2FlashAttention2,
    DeepseekV2RotaryEmbedding,
    DeepseekV2YarnRotaryEmbedding,
    yarn_mscale,
)


def small(**overrides) -> MlaConfig:
    """V2-Lite's structure at a testable size: values narrower than the query head (so padding runs)."""
    base = dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16,
                qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6, max_position_embeddings=64,
                rope_scaling={"type": "yarn", "factor": 4, "original_max_position_embeddings": 16, "beta_fast": 32,
                              "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707})
    return MlaConfig.from_scope(**{**base, **overrides})


def pair(cfg: MlaConfig) -> tuple[DeepseekV2Attention, DeepseekV2FlashAttention2]:
    torch.manual_seed(7)
    eager = DeepseekV2Attention(cfg, layer_idx=0).eval()
    flash = DeepseekV2FlashAttention2(cfg, layer_idx=0).eval()
    flash.load_state_dict(eager.state_dict())
    return eager, flash


def call(attn, x: torch.Tensor, past: int, cache):
    """As a layer is called: positions past .. past+S-1; the eager class needs a mask even for one query."""
    B, S = x.shape[:2]
    mask = None
    if type(attn) is DeepseekV2Attention:
        mask = causal_mask_4d(B, S, past, x.dtype, x.device)
        if mask is None:
            mask = torch.zeros(B, 1, 1, past + S)
    return attn(x, mask, torch.arange(past, past + S)[None], cache, use_cache=True)


@pytest.mark.parametrize("q_lora_rank", [None, 12])
def test_absorbed_and_expanded_attention_agree(q_lora_rank):
    eager, flash = pair(small(q_lora_rank=q_lora_rank))
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        a, _, cache_a = call(eager, x, 0, KVCache())
        b, _, cache_b = call(flash, x, 0, KVCache())
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # what each class caches per position: latent + rotary key (16 + 4), or keys and padded values 2·4·(8 + 4)
    assert cache_a.key_cache[0].shape == (2, 1, 9, 4) and cache_a.value_cache[0].shape == (2, 1, 9, 16)
    assert cache_b.key_cache[0].shape == cache_b.value_cache[0].shape == (2, 4, 9, 12)


@pytest.mark.parametrize("cls", [DeepseekV2Attention, DeepseekV2FlashAttention2])
def test_cached_steps_equal_the_full_forward(cls):
    torch.manual_seed(8)
    attn = cls(small(), layer_idx=0).eval()
    x = torch.randn(1, 7, 32)
    with torch.no_grad():
        full, _, _ = call(attn, x, 0, KVCache())
        cache = KVCache()
        call(attn, x[:, :5], 0, cache)
        chunk, _, cache = call(attn, x[:, 5:6], 5, cache)
        step, _, cache = call(attn, x[:, 6:], 6, cache)
    torch.testing.assert_close(chunk, full[:, 5:6], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(step, full[:, 6:], rtol=1e-4, atol=1e-5)


def test_eager_class_asserts_a_mask():
    eager, _ = pair(small())
    with pytest.raises(ValueError, match="needs an additive mask"):
        eager(torch.randn(1, 1, 32), None, torch.tensor([[0]]), KVCache(), use_cache=True)


def test_rotary_table_is_rebuilt_whenever_it_grows():
    rope = DeepseekV2RotaryEmbedding(4, max_position_embeddings=64, base=10000)
    assert rope.max_seq_len_cached is None and rope.cos_cached.shape == (64, 4)  # built, then marked stale
    x = torch.randn(1, 2, 3, 4)
    rope(x, seq_len=5)
    assert rope.max_seq_len_cached == 5 and rope.cos_cached.shape == (5, 4)  # the 64-row table is gone
    table = rope.cos_cached
    rope(x, seq_len=5)
    assert rope.cos_cached is table  # long enough: reused
    rope(x, seq_len=6)
    assert rope.cos_cached.shape == (6, 4) and rope.cos_cached is not table  # one more position: rebuilt whole


def test_yarn_tables_by_hand():
    """V2-Lite's rotary settings: pair 0 turns fast (kept), the last pair slowly (divided by the factor)."""
    rope = DeepseekV2YarnRotaryEmbedding(64, max_position_embeddings=163840, base=10000, scaling_factor=40,
                                         original_max_position_embeddings=4096, beta_fast=32, beta_slow=1,
                                         mscale=0.707, mscale_all_dim=0.707)
    cos, sin = rope(torch.empty(1, dtype=torch.float32), seq_len=3)
    # pair 0: inverse frequency 10000^0 = 1 (kept); position 2: cos(2)
    assert cos[2, 0].item() == pytest.approx(math.cos(2.0), rel=1e-6)
    # pair 31: 10000^(-62/64) / 40, fully interpolated; position 2
    slow = 10000 ** (-62 / 64) / 40
    assert sin[2, 31].item() == pytest.approx(math.sin(2 * slow), rel=1e-5)
    assert yarn_mscale(40, 0.707) == pytest.approx(0.1 * 0.707 * math.log(40) + 1)


def test_yarn_frequencies_match_transformers():
    """transformers' own YaRN inverse frequencies at the same settings (an implementation nobody here wrote)."""
    pytest.importorskip("transformers.models.deepseek_v2.modeling_deepseek_v2")
    from transformers import DeepseekV2Config
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    theirs_cfg = DeepseekV2Config(hidden_size=2048, num_attention_heads=16, qk_rope_head_dim=64, qk_nope_head_dim=128,
                                  v_head_dim=128, kv_lora_rank=512, max_position_embeddings=163840,
                                  rope_parameters={"rope_type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                                                   "beta_fast": 32, "beta_slow": 1, "mscale": 0.707,
                                                   "mscale_all_dim": 0.707, "rope_theta": 10000})
    theirs, _ = ROPE_INIT_FUNCTIONS["yarn"](theirs_cfg, "cpu")
    ours = DeepseekV2YarnRotaryEmbedding(64, max_position_embeddings=163840, base=10000, scaling_factor=40,
                                         original_max_position_embeddings=4096, beta_fast=32, beta_slow=1,
                                         mscale=0.707, mscale_all_dim=0.707)
    ours(torch.empty(1), seq_len=1)  # the first call computes the blended frequencies
    torch.testing.assert_close(ours.inv_freq, theirs.float(), rtol=1e-6, atol=0)


def test_attention_matches_transformers_deepseek_v2():
    """transformers' DeepseekV2Attention (expands the cached latent per call) computes the same function."""
    modeling = pytest.importorskip("transformers.models.deepseek_v2.modeling_deepseek_v2")
    from transformers import DeepseekV2Config

    cfg = small(rope_scaling=None)
    eager, _ = pair(cfg)
    theirs_cfg = DeepseekV2Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16,
                                  q_lora_rank=None, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6,
                                  max_position_embeddings=64, rope_parameters={"rope_type": "default", "rope_theta": 10000})
    theirs_cfg._attn_implementation = "eager"
    theirs = modeling.DeepseekV2Attention(theirs_cfg, layer_idx=0).eval()
    theirs.load_state_dict(eager.state_dict())
    x, pos = torch.randn(1, 5, 32), torch.arange(5)[None]
    mask = causal_mask_4d(1, 5, 0, x.dtype, x.device)
    with torch.no_grad():
        expected = theirs(x, attention_mask=mask, position_embeddings=modeling.DeepseekV2RotaryEmbedding(theirs_cfg)(x, pos))[0]
        torch.testing.assert_close(eager(x, mask, pos, KVCache(), use_cache=True)[0], expected, rtol=1e-4, atol=1e-5)


def test_config_comes_from_model_yaml():
    cfg = MlaConfig.from_scope()
    # DeepSeek-V2-Lite's config.json: latent 512 + rotary 64 per position, 16 heads of 128 + 64
    assert (cfg.kv_lora_rank, cfg.qk_rope_head_dim, cfg.num_attention_heads, cfg.qk_nope_head_dim) == (512, 64, 16, 128)
    assert cfg.q_lora_rank is None and cfg.v2_q_lora_rank == 1536 and cfg.rope_scaling["type"] == "yarn"
    assert dataclasses.replace(cfg, q_lora_rank=cfg.v2_q_lora_rank).q_lora_rank == 1536
