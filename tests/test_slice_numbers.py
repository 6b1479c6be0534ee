"""The language-model slice evaluated at DeepSeek-OCR's configuration, against hand arithmetic and published totals.

Configuration (config.json of deepseek-ai/DeepSeek-OCR): h=1280, d_ff=6848, d_e=896, E=64, k=6, E_s=2, H=10, d_h=128, V=129280, L=12.
"""

import json
import pytest

from opdoc_testing import ROOT
from opdoc.pipeline import Paths, load
from opdoc.spec import in_variant

CATALOG, EV = load(Paths(root=ROOT))
INDEX = ROOT / "specs" / "deepseek_ocr" / "facts" / "model.safetensors.index.json"


def at(op, example="prefill", variant=None, kernel=None):
    return EV.evaluate_at(op, example, variant, kernel)


def test_dense_mlp_at_prefill():
    v = at("DeepseekV2MLP")
    assert v["tensor_flops"] == 6 * 8192 * 1280 * 6848  # three projections, 2 FLOPs per MAC = 430,838,906,880
    assert v["cuda_flops"] == 6 * 8192 * 6848  # silu (5) + gate multiply (1) per inner element
    assert v["parameters"] == 3 * 1280 * 6848 == 26_296_320
    assert v["parameter_bytes"] == 2 * 26_296_320  # bf16


def test_rmsnorm_cuda_flops_follow_the_code():
    # square, mean (read + divide per row), add eps, rsqrt, normalise, gain over 8192 × 1280 elements
    assert at("DeepseekV2RMSNorm")["cuda_flops"] == 4 * 8192 * 1280 + 3 * 8192


def test_moe_counts_shared_experts_once():
    v = at("DeepseekV2MoE")
    router = 2 * 8192 * 1280 * 64
    routed = 6 * 8192 * 6 * 1280 * 896  # each token through k=6 experts of width 896
    shared = 6 * 8192 * 1280 * (2 * 896)  # one MLP of width E_s × d_e, every token once
    assert v["tensor_flops"] == router + routed + shared
    assert v["parameters"] == 64 * 1280 + 64 * 3 * 1280 * 896 + 3 * 1280 * 1792 == 227_164_160
    # active per token: router + k experts + shared
    assert v["active_parameters"] == 64 * 1280 + 6 * 3 * 1280 * 896 + 3 * 1280 * 1792


def test_attention_prefill_and_decode():
    prefill, decode = at("LlamaAttention", variant="per_layer"), at("LlamaAttention", "decode", "per_layer")
    # q, k, v, o projections 4 × 2 × S × h × h; QKᵀ and PV 2 × 2 × H × S × (P+S) × d_h; and the layer's
    # own rotary angles: a bmm (1, 64, 1) @ (1, 1, S), 2 × 64 × S (one row of position ids)
    assert prefill["tensor_flops"] == 8 * 8192 * 1280 * 1280 + 4 * 10 * 8192 * 8192 * 128 + 2 * 64 * 8192
    assert decode["tensor_flops"] == 8 * 1 * 1280 * 1280 + 4 * 10 * 1 * 8192 * 128 + 2 * 64 * 1
    # keys and values of 8192 positions, 10 heads × 128, bf16
    assert prefill["kv_cache_bytes"] == decode["kv_cache_bytes"] == 2 * 8192 * 10 * 128 * 2 == 41_943_040
    # the eager class holds bf16 scores and two fp32 score-sized tensors; the flash class holds none
    flash = at("LlamaFlashAttention2", variant="per_layer")
    assert prefill["peak"] > 10 * 10 * 8192 * 8192 > flash["peak"]
    assert flash["tensor_flops"] == prefill["tensor_flops"]


def test_rotary_tables_cost_per_layer():
    rope = at("LlamaRotaryEmbedding")
    # one row of 8192 positions × 128 table columns: bmm 2 × 64 × 8192; cos, sin and two × 1.0 multiplies
    assert rope["tensor_flops"] == 2 * 64 * 8192 == 1_048_576
    assert rope["cuda_flops"] == 4 * 8192 * 128 == 4_194_304
    shared = at("LlamaAttention", variant="shared_tables")
    own = at("LlamaAttention", variant="per_layer")
    assert own["forward_flops"] - shared["forward_flops"] == 1_048_576 + 4_194_304


def test_decoder_layer_variants():
    moe, dense = at("DeepseekV2DecoderLayer", variant="moe"), at("DeepseekV2DecoderLayer", variant="dense")
    attention, norms = 4 * 1280 * 1280, 2 * 1280
    assert dense["parameters"] == attention + 3 * 1280 * 6848 + norms == 32_852_480
    assert moe["parameters"] == attention + 227_164_160 + norms == 233_720_320


def test_language_model_matches_the_checkpoint_and_the_paper():
    v = at("DeepseekV2ForCausalLM")
    # 1 dense + 11 MoE layers, embedding and untied head 129280 × 1280 each, final norm
    assert v["parameters"] == 32_852_480 + 11 * 233_720_320 + 2 * 129280 * 1280 + 1280 == 2_934_734_080
    # The paper's "A570M": active parameters per token, input embedding excluded (one row counted here)
    assert abs(v["active_parameters"] - 570e6) / 570e6 < 0.01
    assert v["kv_cache_bytes"] == 12 * 41_943_040


# Where each spec's own parameters sit in the checkpoint (layer 0 is dense, layer 1 an MoE layer), and
# which names under that prefix belong to something else: the vision side shares DeepSeek-OCR's `model.`.
VISION = ("sam_model.", "vision_model.", "projector.", "image_newline", "view_seperator")
CHECKPOINT_PREFIX = {
    "DeepseekV2RMSNorm": ("model.layers.0.input_layernorm.", ()),
    "DeepseekV2MLP": ("model.layers.0.mlp.", ()),
    "MoEGate": ("model.layers.1.mlp.gate.", ()),
    "LlamaAttention": ("model.layers.0.self_attn.", ()),
    "DeepseekV2Model": ("model.", VISION),
    "DeepseekV2ForCausalLM": ("", ("model.",)),
}


@pytest.mark.parametrize("op", sorted(CHECKPOINT_PREFIX))
def test_spec_parameter_names_are_the_checkpoint_names(op):
    index = json.loads(INDEX.read_text(encoding="utf-8"))
    prefix, others = CHECKPOINT_PREFIX[op]
    spec = CATALOG.specs[op].spec
    # A spec lists only its own parameters; its children's sit under the children's names.
    elsewhere = tuple(f"{child.name}." for child in spec.children) + others
    own = {name[len(prefix):] for name in index["weight_map"] if name.startswith(prefix)}
    own = {name for name in own if not name.startswith(elsewhere)}
    # The checkpoint is DeepSeek-OCR's configuration, each op's first variant (MoEGate: greedy, which has
    # no noaux_tc correction bias).
    first = next(iter(spec.variants), None)
    assert {t.name for t in spec.tensors if t.role == "parameter" and in_variant(t.only, first)} == own
