"""Reference modules: checkpoint-exact parameter names and counts, full-size meta forwards, small real-tensor maths."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from opdoc_testing import keys_under, load_weight_index
import torch
from torch import nn

from opdoc.models.deepseek_ocr.config import ClipConfig, DeepseekV2Config, ProjectorConfig, SamConfig, load_scope_config
from opdoc.models.deepseek_ocr.deepencoder import (
    Attention,
    Block,
    CLIPVisionEmbeddings,
    ImageEncoderViT,
    LayerNorm2d,
    MLPBlock,
    MlpProjector,
    NoTPAttention,
    NoTPFeedForward,
    NoTPTransformerBlock,
    PatchEmbed,
    VitModel,
    build_sam_vit_b,
)
from opdoc.models.deepseek_ocr.deepseek_v2 import (
    DeepseekV2DecoderLayer,
    DeepseekV2ForCausalLM,
    DeepseekV2MLP,
    DeepseekV2MoE,
    DeepseekV2RMSNorm,
    KVCache,
    LlamaAttention,
    LlamaFlashAttention2,
    LlamaRotaryEmbedding,
    MoEGate,
    attention_class,
    causal_mask_4d,
    positions_ascend,
    tokens_per_expert,
)

REPO = Path(__file__).resolve().parents[1]
S_FULL = 8192  # max_position_embeddings: the prefill example of model.yaml


@pytest.fixture(scope="module")
def index() -> dict:
    return load_weight_index()


def names(module: nn.Module) -> set[str]:
    return {n for n, _ in module.named_parameters()}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def cfg() -> DeepseekV2Config:
    return DeepseekV2Config.from_scope()


def small_cfg(**overrides) -> DeepseekV2Config:
    """A tiny language config with the released structure (dense layer 0, MoE after), fp32-friendly sizes."""
    base = dict(hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4, vocab_size=50, n_routed_experts=8, num_experts_per_tok=3)
    return DeepseekV2Config.from_scope(**{**base, **overrides})


# ---------------------------------------------------------------- configuration


def test_config_comes_from_model_yaml(cfg):
    assert cfg.hidden_size == load_scope_config("language")["hidden_size"] == 1280
    assert (cfg.n_routed_experts, cfg.num_experts_per_tok, cfg.n_shared_experts) == (64, 6, 2)
    assert cfg._attn_implementation == "eager" and cfg.use_mla is False
    assert SamConfig.from_scope().global_attn_indexes == [2, 5, 8, 11]
    assert ClipConfig.from_scope().num_layers == 24 and ProjectorConfig.from_scope().input_dim == 2048
    with pytest.raises(KeyError):
        load_scope_config("no_such_scope")


# ---------------------------------------------------------------- names and counts against the checkpoint


def test_checkpoint_total(index):
    assert index["metadata"]["total_size"] // 2 == 3_336_106_240  # bf16: 2 bytes per parameter


@pytest.mark.parametrize(
    "build, prefix, expected",
    [
        (lambda c: DeepseekV2RMSNorm(c.hidden_size, c.rms_norm_eps), "model.norm.", 1280),
        (lambda c: DeepseekV2MLP(c), "model.layers.0.mlp.", 26_296_320),  # 3 * 1280 * 6848
        (lambda c: MoEGate(c), "model.layers.1.mlp.gate.", 81_920),  # 64 * 1280
        # 64 experts * 3 * 1280 * 896 = 220_200_960; shared 3 * 1280 * 1792 = 6_881_280; gate 81_920
        (lambda c: DeepseekV2MoE(c), "model.layers.1.mlp.", 227_164_160),
        (lambda c: DeepseekV2MLP(c, intermediate_size=c.moe_intermediate_size * c.n_shared_experts),
         "model.layers.1.mlp.shared_experts.", 6_881_280),
        (lambda c: LlamaAttention(c, 0), "model.layers.0.self_attn.", 6_553_600),  # 4 * 1280 * 1280
        # attention 6_553_600 + dense MLP 26_296_320 + two norms 2 * 1280
        (lambda c: DeepseekV2DecoderLayer(c, 0), "model.layers.0.", 32_852_480),
        # attention 6_553_600 + MoE 227_164_160 + two norms 2 * 1280
        (lambda c: DeepseekV2DecoderLayer(c, 11), "model.layers.11.", 233_720_320),
    ],
    ids=["rmsnorm", "dense_mlp", "gate", "moe", "shared_experts", "attention", "dense_layer", "moe_layer"],
)
def test_language_names_and_counts(index, cfg, build, prefix, expected):
    with torch.device("meta"):
        module = build(cfg)
    assert names(module) == keys_under(index, prefix)
    assert count(module) == expected


CLIP_LAYER = "model.vision_model.transformer.layers."


def language_keys(index: dict) -> set[str]:
    roots = ("model.layers.", "model.embed_tokens.", "model.norm.", "lm_head.")
    return {k for k in index["weight_map"] if k.startswith(roots)}


def test_causal_lm_names_and_count(index, cfg):
    with torch.device("meta"):
        lm = DeepseekV2ForCausalLM(cfg)
    assert names(lm) == language_keys(index)
    assert isinstance(lm.model.layers[0].mlp, DeepseekV2MLP)
    assert all(isinstance(layer.mlp, DeepseekV2MoE) for layer in lm.model.layers[1:])
    # embeddings + lm_head 2 * 129280 * 1280 = 330_956_800; 12 * (attention 6_553_600 + norms 2_560) =
    # 78_673_920; dense MLP 26_296_320; 11 MoE * 227_164_160 = 2_498_805_760; final norm 1_280
    assert count(lm) == 2_934_734_080


@pytest.mark.parametrize(
    "build, prefix, expected",
    [
        (lambda: PatchEmbed(), "model.sam_model.patch_embed.", 590_592),  # 768 * 3 * 16 * 16 + 768
        (lambda: MLPBlock(768, 3072), "model.sam_model.blocks.0.mlp.", 4_722_432),  # 2 * 768 * 3072 + 3072 + 768
        (lambda: LayerNorm2d(256), "model.sam_model.neck.1.", 512),
        # qkv 768 * 2304 + 2304; proj 768 * 768 + 768; rel_pos 2 * 27 * 64 (14x14 window)
        (lambda: Attention(768, 12, True, True, input_size=(14, 14)), "model.sam_model.blocks.0.attn.", 2_365_824),
        # global block on the 64x64 grid: rel_pos 2 * 127 * 64 = 16_256; the rest 7_087_872
        (lambda: Block(768, 12, use_rel_pos=True, window_size=0, input_size=(64, 64)),
         "model.sam_model.blocks.2.", 7_104_128),
        # patch 590_592; pos 64 * 64 * 768 = 3_145_728; 12 blocks 85_054_464 + rel_pos 8 * 3_456 + 4 * 16_256;
        # neck 196_608 + 512 + 589_824 + 512; net_2 256 * 512 * 9 = 1_179_648; net_3 512 * 1024 * 9 = 4_718_592
        (lambda: build_sam_vit_b(), "model.sam_model.", 95_569_152),
        (lambda: NoTPAttention(ClipConfig.from_scope()), f"{CLIP_LAYER}0.self_attn.", 4_198_400),  # 4*1024² + 4*1024
        (lambda: NoTPFeedForward(ClipConfig.from_scope(), 1024, 4096), f"{CLIP_LAYER}0.mlp.", 8_393_728),
        # attention 4_198_400 + feed-forward 8_393_728 + two LayerNorms 4 * 1024
        (lambda: NoTPTransformerBlock(ClipConfig.from_scope(), 1), f"{CLIP_LAYER}23.", 12_596_224),
        # class 1024 + patch conv 1024 * 3 * 14 * 14 = 602_112 + positions 257 * 1024 = 263_168
        (lambda: CLIPVisionEmbeddings(), "model.vision_model.embeddings.", 866_304),
        # embeddings 866_304 + pre-LN 2_048 + 24 * 12_596_224
        (lambda: VitModel(), "model.vision_model.", 303_177_728),
        (lambda: MlpProjector(), "model.projector.", 2_622_720),  # 2048 * 1280 + 1280
    ],
    ids=["patch_embed", "sam_mlp", "layernorm2d", "sam_attention", "sam_global_block", "sam", "clip_attention",
         "clip_mlp", "clip_block", "clip_embeddings", "clip", "projector"],
)
def test_vision_names_and_counts(index, build, prefix, expected):
    with torch.device("meta"):
        module = build()
    assert names(module) == keys_under(index, prefix)
    assert count(module) == expected


def test_whole_checkpoint_is_covered(index, cfg):
    with torch.device("meta"):
        parts = {"": DeepseekV2ForCausalLM(cfg), "model.sam_model.": build_sam_vit_b(),
                 "model.vision_model.": VitModel(), "model.projector.": MlpProjector()}
    ours = {prefix + n for prefix, m in parts.items() for n in names(m)}
    ours |= {"model.image_newline", "model.view_seperator"}
    assert ours == set(index["weight_map"])
    # image_newline and view_seperator are 1280 values each
    assert sum(count(m) for m in parts.values()) + 2 * 1280 == 3_336_106_240


# ---------------------------------------------------------------- full-size forwards on the meta device


def test_meta_forward_mlp_and_moe(cfg):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        x = torch.empty(1, S_FULL, cfg.hidden_size, dtype=torch.bfloat16)
        assert DeepseekV2MLP(cfg).to(torch.bfloat16)(x).shape == x.shape
        moe = DeepseekV2MoE(cfg).to(torch.bfloat16)
        with FlopCounterMode(display=False) as fc:
            y = moe(x)
    assert y.shape == x.shape and y.dtype == torch.bfloat16
    S, h, E, k, d_e, E_s = S_FULL, cfg.hidden_size, 64, 6, cfg.moe_intermediate_size, 2
    # gate 2*S*h*E + routed 3 matmuls over S*k slots + shared 3 matmuls of width E_s*d_e: exact, as FLOPs are linear
    assert fc.get_total_flops() == 2 * S * h * E + 2 * 3 * S * k * h * d_e + 2 * 3 * S * h * E_s * d_e


def test_meta_even_split_is_exact():
    idx = torch.empty(8192, 6, dtype=torch.long, device="meta")  # 8192 tokens choosing 6 experts each
    hits, counts = tokens_per_expert(idx, 64)
    assert counts == [768] * 64  # 8192 * 6 / 64 = 768
    assert hits.shape == (8192, 64)  # upstream's (tokens, experts) table of hits
    _, odd = tokens_per_expert(torch.empty(5, 2, dtype=torch.long, device="meta"), 4)
    assert odd == [3, 3, 2, 2] and sum(odd) == 10  # 10 slots = 4 * 2 + 2: the first two experts take one more


@pytest.mark.parametrize("kernel", ["eager", "flash_attention_2"])
def test_meta_forward_attention(cfg, kernel):
    cfg = dataclasses.replace(cfg, _attn_implementation=kernel)
    with torch.device("meta"):
        attn = attention_class(cfg)(cfg, 0).to(torch.bfloat16)
        x = torch.empty(1, S_FULL, cfg.hidden_size, dtype=torch.bfloat16)
        pos = torch.arange(S_FULL)[None]
        mask = causal_mask_4d(1, S_FULL, 0, x.dtype, x.device) if kernel == "eager" else None
        out, weights, present = attn(x, mask, pos, use_cache=True, output_attentions=True)  # own rotary tables
        assert out.shape == x.shape
        assert present[0].shape == present[1].shape == (1, 10, S_FULL, 128)
        assert (weights is None) == (kernel != "eager")
        if kernel == "eager":
            assert weights.shape == (1, 10, S_FULL, S_FULL)
        # decode at position 8192 - 1 reading 8191 cached keys and values; tables passed in this time
        past = tuple(t[:, :, : S_FULL - 1] for t in present)
        step = x[:, :1]
        rope1 = LlamaRotaryEmbedding(cfg)(step, pos[:, -1:])
        out1, _, present1 = attn(step, None, None, past, use_cache=True, position_embeddings=rope1)
    assert out1.shape == (1, 1, cfg.hidden_size) and present1[0].shape == (1, 10, S_FULL, 128)


def test_attention_classes_follow_upstream(cfg):
    """ATTENTION_CLASSES of the vendor file offers eager and flash_attention_2 only (no sdpa)."""
    assert attention_class(dataclasses.replace(cfg, _attn_implementation="eager")) is LlamaAttention
    assert attention_class(dataclasses.replace(cfg, _attn_implementation="flash_attention_2")) is LlamaFlashAttention2
    with pytest.raises(ValueError, match="sdpa"):
        attention_class(dataclasses.replace(cfg, _attn_implementation="sdpa"))
    with torch.device("meta"):
        layer = DeepseekV2DecoderLayer(dataclasses.replace(cfg, _attn_implementation="flash_attention_2"), 0)
    assert type(layer.self_attn) is LlamaFlashAttention2


def test_rotary_tables_by_hand():
    """cos/sin of position p, pair i: angle p * theta^(-2i/d), the same for dimension i and i + d/2."""
    cfg = small_cfg()  # head width 32 / 4 = 8, theta 10000
    pos = torch.tensor([[0, 3, 7], [5, 6, 7]])  # two rows: B_pos = 2
    cos, sin = LlamaRotaryEmbedding(cfg)(torch.empty(1, dtype=torch.float32), pos)
    assert cos.shape == sin.shape == (2, 3, 8)
    # pair 1 of 4: inverse frequency 10000 ** (-2/8) = 0.1; position 7 -> angle 0.7
    assert cos[0, 2, 1].item() == pytest.approx(math.cos(0.7), rel=1e-6)
    assert sin[1, 0, 5].item() == pytest.approx(math.sin(0.5), rel=1e-6)  # dimension 5 = pair 1 again, position 5
    assert torch.equal(cos[0, 2], cos[1, 2])  # the same position gives the same row in either batch row


def test_rotary_tables_match_transformers():
    modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    c = small_cfg()
    theirs = modeling_llama.LlamaRotaryEmbedding(LlamaConfig(hidden_size=c.hidden_size, num_attention_heads=c.num_attention_heads,
                                                             rope_theta=c.rope_theta, max_position_embeddings=64))
    x, pos = torch.randn(2, 4, 5, 8), torch.arange(3, 8)[None].expand(2, -1)
    for ours, expected in zip(LlamaRotaryEmbedding(c)(x, pos), theirs(x, pos)):
        torch.testing.assert_close(ours, expected)


def test_causal_mask_4d_by_hand():
    """3 new queries over 2 cached keys: query i (position 2 + i) sees keys 0 .. 2 + i; one query gets no mask."""
    mask = causal_mask_4d(4, 3, 2, torch.float32, "cpu")
    low = torch.finfo(torch.float32).min
    expected = torch.tensor([[0, 0, 0, low, low], [0, 0, 0, 0, low], [0, 0, 0, 0, 0]])
    assert mask.shape == (4, 1, 3, 5) and mask.stride(0) == 0  # one table, viewed over the batch
    assert torch.equal(mask[2, 0], expected)
    assert causal_mask_4d(4, 1, 9, torch.float32, "cpu") is None


def test_positions_ascend():
    assert positions_ascend(torch.tensor([[4, 5, 6], [0, 1, 2]]))
    assert not positions_ascend(torch.tensor([[0, 1, 0, 1]]))  # two packed sequences restart at 0
    assert positions_ascend(torch.empty(2, 7, dtype=torch.long, device="meta"))  # no data: taken as ordered


@pytest.mark.parametrize("layer_idx", [0, 1])
def test_meta_forward_decoder_layer(cfg, layer_idx):
    with torch.device("meta"):
        layer = DeepseekV2DecoderLayer(cfg, layer_idx).to(torch.bfloat16)
        x = torch.empty(1, S_FULL, cfg.hidden_size, dtype=torch.bfloat16)
        mask = causal_mask_4d(1, S_FULL, 0, x.dtype, x.device)
        y, _, present = layer(x, mask, torch.arange(S_FULL)[None], use_cache=True)  # the layer builds its tables
    assert y.shape == x.shape and present[0].shape == (1, 10, S_FULL, 128)


def test_meta_forward_causal_lm_decode(cfg):
    with torch.device("meta"):
        lm = DeepseekV2ForCausalLM(dataclasses.replace(cfg, num_hidden_layers=2)).to(torch.bfloat16)
        cache = KVCache()
        _, logits, cache = lm(torch.zeros(1, 16, dtype=torch.long), past_key_values=cache, use_cache=True)
        _, step, cache = lm(torch.zeros(1, 1, dtype=torch.long), past_key_values=cache, use_cache=True)
    assert logits.shape == (1, 16, cfg.vocab_size) and logits.dtype == torch.float32
    assert step.shape == (1, 1, cfg.vocab_size) and cache.get_seq_length(1) == 17


@pytest.mark.parametrize("side, grid", [(1024, 16), (640, 10)])
def test_meta_forward_vision(side, grid):
    with torch.device("meta"):
        sam, vit, proj = build_sam_vit_b(), VitModel(), MlpProjector()
        image = torch.empty(1, 3, side, side)
        features = sam(image)
        clip = vit(image, features)
        merged = torch.cat([clip[:, 1:], features.flatten(2).transpose(1, 2)], dim=-1)
        tokens = proj(merged)
    assert features.shape == (1, 1024, grid, grid)
    assert clip.shape == (1, grid * grid + 1, 1024)
    assert tokens.shape == (1, grid * grid, 1280)


def test_fake_tensor_moe_has_one_symbol_per_expert():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    from torch.utils.flop_counter import FlopCounterMode

    c = small_cfg()
    with FakeTensorMode(shape_env=ShapeEnv()):
        moe = DeepseekV2MoE(c)
        x = torch.randn(1, 64, c.hidden_size)
        with FlopCounterMode(display=False) as fc:
            y = moe(x)
    assert y.shape == x.shape
    flops = fc.get_total_flops().node.expr  # a SymInt: its sympy expression
    assert len(flops.free_symbols) == c.n_routed_experts  # an unbacked token count u_e per expert
    # routed slots sum to S*k: substitute an even spread to recover the meta device's exact total
    total = flops.subs({s: 64 * 3 // 8 for s in flops.free_symbols})
    assert total == 2 * 64 * 32 * 8 + 2 * 3 * 64 * 3 * 32 * 16 + 2 * 3 * 64 * 32 * 2 * 16


# ---------------------------------------------------------------- small real tensors: the maths


def naive_moe(moe: DeepseekV2MoE, x: torch.Tensor) -> torch.Tensor:
    """Per-token loop over the chosen experts: the definition the dispatch must reproduce."""
    idx, weight, _ = moe.gate(x)
    flat = x.reshape(-1, x.shape[-1])
    rows = []
    for t in range(flat.shape[0]):
        rows.append(sum(weight[t, j] * moe.experts[int(idx[t, j])](flat[t]) for j in range(idx.shape[1])))
    return torch.stack(rows).view(x.shape) + moe.shared_experts(x)


@pytest.mark.parametrize("topk_method, norm", [("greedy", False), ("greedy", True), ("group_limited_greedy", False)])
def test_moe_matches_per_token_loop(topk_method, norm):
    torch.manual_seed(0)
    c = small_cfg(topk_method=topk_method, norm_topk_prob=norm, n_group=2, topk_group=1, routed_scaling_factor=1.5)
    moe = DeepseekV2MoE(c).eval()
    x = torch.randn(2, 7, c.hidden_size)
    with torch.no_grad():
        torch.testing.assert_close(moe(x), naive_moe(moe, x), rtol=1e-5, atol=1e-5)


def test_moe_each_token_visits_exactly_k_experts():
    torch.manual_seed(1)
    c = small_cfg()
    moe = DeepseekV2MoE(c).eval()
    x = torch.randn(1, 20, c.hidden_size)
    seen: list[tuple[int, int]] = []  # (token, expert) pairs, recovered from the rows each expert received
    flat = x.reshape(-1, c.hidden_size)

    def hook(e):
        def record(_module, args):
            for row in args[0]:
                seen.append((int(torch.nonzero((flat == row).all(dim=1))[0]), e))
        return record

    for e, expert in enumerate(moe.experts):
        expert.register_forward_pre_hook(hook(e))
    with torch.no_grad():
        moe(x)
        idx = moe.gate(x)[0]
    assert len(seen) == 20 * c.num_experts_per_tok  # no expert runs on a token it was not chosen for
    assert sorted(seen) == sorted((t, int(e)) for t in range(20) for e in idx[t])
    assert all(len(set(idx[t].tolist())) == c.num_experts_per_tok for t in range(20))


def test_moe_training_adds_aux_loss_gradient():
    torch.manual_seed(2)
    c = small_cfg()
    moe = DeepseekV2MoE(c).train()
    x = torch.randn(2, 5, c.hidden_size)
    idx, weight, aux = moe.gate(x)
    assert aux is not None and aux.ndim == 0 and aux > 0
    y = moe(x)
    torch.testing.assert_close(y, moe.eval()(x))
    moe.train()(x).sum().backward()
    assert moe.gate.weight.grad is not None and moe.experts[int(idx[0, 0])].up_proj.weight.grad is not None


def test_rmsnorm_definition():
    torch.manual_seed(3)
    norm = DeepseekV2RMSNorm(8, eps=1e-6)
    nn.init.normal_(norm.weight)
    x = torch.randn(3, 8, dtype=torch.bfloat16)
    xf = x.float()
    expected = norm.weight * (xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)
    torch.testing.assert_close(norm(x), expected)


def small_attention(kernel: str = "eager") -> LlamaAttention:
    torch.manual_seed(4)
    cfg = small_cfg(_attn_implementation=kernel)
    return attention_class(cfg)(cfg, layer_idx=0).eval()


def small_call(attn: LlamaAttention, x: torch.Tensor, past: int, cache=None, **kw):
    """What DeepSeek-OCR's model hands a layer: positions past .. past+S-1 and, for eager, its 4-D mask."""
    B, S = x.shape[:2]
    mask = causal_mask_4d(B, S, past, x.dtype, x.device) if type(attn) is LlamaAttention else None
    return attn(x, mask, torch.arange(past, past + S)[None], cache, use_cache=True, **kw)


@pytest.mark.parametrize("kernel", ["eager", "flash_attention_2"])
@pytest.mark.parametrize("cache_kind", ["tuple", "KVCache"])
def test_attention_kv_cache_decode_equals_full(kernel, cache_kind):
    attn = small_attention(kernel)
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        full, _, _ = small_call(attn, x, 0)
        cache = KVCache() if cache_kind == "KVCache" else None
        _, _, cache = small_call(attn, x[:, :6], 0, cache)  # prefill 6
        chunk, _, cache = small_call(attn, x[:, 6:8], 6, cache)  # chunked prefill: P=6, S=2
        step, _, cache = small_call(attn, x[:, 8:], 8, cache)  # decode: P=8, S=1
    torch.testing.assert_close(chunk, full[:, 6:8], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(step, full[:, 8:], rtol=1e-5, atol=1e-5)
    keys = cache[0] if cache_kind == "tuple" else cache.key_cache[0]
    assert keys.shape == (2, 4, 9, 8)


def test_attention_classes_agree():
    """The eager class and the flash class share weights and give the same output; the tables a layer
    builds itself equal the ones passed in."""
    eager, flash = small_attention("eager"), small_attention("flash_attention_2")
    x = torch.randn(1, 11, 32)
    with torch.no_grad():
        a, weights, _ = small_call(eager, x, 0, output_attentions=True)
        b, none, _ = small_call(flash, x, 0, output_attentions=True)
        tables = LlamaRotaryEmbedding(eager.config)(x, torch.arange(11)[None])
        c, _, _ = small_call(flash, x, 0, position_embeddings=tables)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b, c)
    assert none is None and torch.allclose(weights.sum(-1), torch.ones(1, 4, 11))
    assert torch.all(weights.triu(diagonal=1) == 0)  # causal: no query sees a later key


def test_attention_matches_transformers_llama():
    modeling_llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    ours = small_attention("eager")
    c = ours.config
    theirs_cfg = LlamaConfig(hidden_size=c.hidden_size, num_attention_heads=c.num_attention_heads,
                             num_key_value_heads=c.num_key_value_heads, rope_theta=c.rope_theta,
                             attention_bias=False, max_position_embeddings=64)
    theirs_cfg._attn_implementation = "eager"
    theirs = modeling_llama.LlamaAttention(theirs_cfg, layer_idx=0).eval()
    theirs.load_state_dict(ours.state_dict())
    x, pos = torch.randn(2, 7, 32), torch.arange(7)[None].expand(2, -1)
    mask = torch.full((7, 7), float("-inf")).triu(1)[None, None]
    with torch.no_grad():
        expected = theirs(x, modeling_llama.LlamaRotaryEmbedding(theirs_cfg)(x, pos), mask)[0]
        # ours builds its own tables from the two rows of position ids, as DeepSeek-OCR's layers do
        torch.testing.assert_close(ours(x, causal_mask_4d(2, 7, 0, x.dtype, x.device), pos)[0], expected,
                                   rtol=1e-5, atol=1e-5)


def test_causal_lm_cached_generation_equals_full():
    torch.manual_seed(5)
    lm = DeepseekV2ForCausalLM(small_cfg(num_hidden_layers=3)).eval()
    ids = torch.randint(0, 50, (1, 10))
    with torch.no_grad():
        _, full, _ = lm(ids)
        _, _, cache = lm(ids[:, :9], use_cache=True)
        _, step, cache = lm(ids[:, 9:], past_key_values=cache, use_cache=True)
        loss, _, _ = lm(ids, labels=ids)
    torch.testing.assert_close(step[:, -1], full[:, -1], rtol=1e-4, atol=1e-4)
    assert cache.get_seq_length(2) == 10 and loss.ndim == 0


def import_sam_image_encoder():
    """segment_anything's image_encoder.py alone (its package __init__ needs torchvision): the checker's loader."""
    from opdoc.models.deepseek_ocr.independent import Missing, segment_anything_image_encoder

    try:
        return segment_anything_image_encoder()
    except Missing as exc:
        pytest.skip(str(exc))


def test_sam_matches_segment_anything():
    sam_image_encoder = import_sam_image_encoder()
    from functools import partial

    # an 8x8 grid cut into 3x3 windows exercises the padding; block 1 is global
    kw = dict(img_size=128, patch_size=16, embed_dim=32, depth=3, num_heads=2, out_chans=16, use_rel_pos=True,
              window_size=3, global_attn_indexes=(1,), norm_layer=partial(nn.LayerNorm, eps=1e-6))
    torch.manual_seed(6)
    theirs = sam_image_encoder.ImageEncoderViT(**kw).eval()
    for p in theirs.parameters():  # zero-initialised tables would hide position bugs
        nn.init.normal_(p, std=0.2)
    ours = ImageEncoderViT(**kw, downsample_channels=(8, 8)).eval()
    missing = ours.load_state_dict(theirs.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["net_2.weight", "net_3.weight"]
    ours.net_2, ours.net_3 = nn.Identity(), nn.Identity()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


def test_clip_attention_definition():
    torch.manual_seed(7)
    cfg = dataclasses.replace(ClipConfig.from_scope(), hidden_size=32, num_attention_heads=4)
    attn = NoTPAttention(cfg).eval()
    x = torch.randn(2, 5, 32)
    q, k, v = attn.qkv_proj(x).view(2, 5, 3, 4, 8).permute(2, 0, 3, 1, 4)
    w = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    expected = attn.out_proj((w @ v).transpose(1, 2).reshape(2, 5, 32))
    with torch.no_grad():
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_position_tables_resize_only_when_needed():
    from opdoc.models.deepseek_ocr.deepencoder import get_abs_pos, get_abs_pos_sam

    sam_table = torch.full((1, 64, 64, 8), 0.5)
    assert get_abs_pos_sam(sam_table, 64) is sam_table
    resized = get_abs_pos_sam(sam_table, 40)  # a 640 px tile: 40x40 patches
    assert resized.shape == (1, 40, 40, 8)
    torch.testing.assert_close(resized, torch.full_like(resized, 0.5))  # a constant table stays constant
    clip_table = torch.cat([torch.zeros(1, 1, 8), torch.ones(1, 256, 8)], dim=1)
    assert get_abs_pos(clip_table, 257) is clip_table
    small = get_abs_pos(clip_table, 101)  # 10x10 grid + class token
    assert small.shape == (1, 101, 8) and torch.all(small[:, 0] == 0)
    torch.testing.assert_close(small[:, 1:], torch.ones(1, 100, 8))
