"""Time bounds against hand arithmetic, the executed-work model against a brute-force tile count, and
every closed-form answer plugged back into hand-written formulas.

Configuration (DeepSeek-OCR's language model): h=1280, H=10, d_h=128, d_ff=6848, d_e=896, E=64, k=6,
E_s=2, V=129280, L=12 (1 dense layer, 11 MoE layers); bf16 weights and activations.
"""

import math
from fractions import Fraction

import pytest
import sympy

from opdoc_testing import ROOT
from opdoc.pipeline import Paths, load
from opdoc.roofline import ANSWERS, build_pages, causal_tiles, load_answers, load_roofline

CATALOG, EV = load(Paths(root=ROOT))
R = load_roofline(CATALOG, EV)
load_answers(CATALOG)  # the model package registers its closed-form answers
H100, H200 = R.hardware.gpu("H100"), R.hardware.gpu("H200")
EXPERT = 3 * 1280 * 896 * 2  # one routed expert's three bf16 matrices: 6,881,280 bytes
SHARED = 3 * 1280 * 1792 * 2  # the shared experts as one MLP of width 2 × 896: 13,762,560 bytes
GATE = 64 * 1280 * 2  # router weight: 163,840 bytes


def tile_pairs(S: int, P: int, b: int) -> int:
    """Brute force: the query-key pairs in every b × b tile holding at least one unmasked pair.

    Keys are the P cached positions then the S new ones; query i (0-based among the new) sees keys
    0 .. P + i. Tiles are laid over the S queries and the P + S keys from position 0.
    """
    pairs = 0
    for q0 in range(0, S, b):
        rows = min(b, S - q0)
        for k0 in range(0, P + S, b):
            cols = min(b, P + S - k0)
            if k0 <= P + q0 + rows - 1:  # the tile's first key is visible to its last query
                pairs += rows * cols
    return pairs


@pytest.mark.parametrize("S, P, b", [(8192, 0, 128), (200, 0, 128), (100, 0, 128), (1, 8191, 128),
                                     (256, 256, 64), (300, 0, 64)])
def test_causal_tile_model_matches_a_brute_force_count(S, P, b):
    fraction = causal_tiles(sympy.Integer(S), sympy.Integer(P), sympy.Integer(b))
    assert fraction == sympy.Rational(tile_pairs(S, P, b), S * (P + S))


def test_causal_tiles_at_the_examples():
    # prefill: n = 8192/128 = 64 blocks, n(n+1)/2 of n² tiles = 65/128
    assert causal_tiles(sympy.Integer(8192), sympy.Integer(0), sympy.Integer(128)) == sympy.Rational(65, 128)
    # decode: one query sees every key, nothing to skip
    assert causal_tiles(sympy.Integer(1), sympy.Integer(8191), sympy.Integer(128)) == 1
    # S = 200 with b = 128: 2 blocks, r = 72 rows in the last: 128²·1 + 72·200 = 30,784 of 40,000 pairs
    assert causal_tiles(sympy.Integer(200), sympy.Integer(0), sympy.Integer(128)) == sympy.Rational(30784, 40000)


def test_attention_prefill_executes_about_half_of_the_counted_products():
    p = R.point("LlamaFlashAttention2", "per_layer", "prefill")
    projections = 8 * 8192 * 1280 * 1280  # q, k, v, o: 107,374,182,400
    products = 4 * 10 * 8192 * 8192 * 128  # QKᵀ and PV over the full square: 343,597,383,680
    rotary = 2 * 64 * 8192  # the layer's own rotary angles: a (1, 64, 1) @ (1, 1, S) bmm, 1,048,576
    assert p.counted_tensor == projections + products + rotary
    assert p.executed_tensor == projections + products * 65 // 128 + rotary == 281_858_277_376


def test_fused_bytes_of_an_moe_decode_step():
    p = R.point("DeepseekV2MoE", None, "decode")
    # router + the k = 6 experts that run + the shared experts, and x in and out (1280 bf16 each)
    assert p.fused_bytes == GATE + 6 * EXPERT + SHARED + 2 * 1280 * 2 == 55_219_200


def test_fused_bytes_of_an_attention_decode_step():
    p = R.point("LlamaFlashAttention2", "per_layer", "decode")
    weights = 4 * 1280 * 1280 * 2  # 13,107,200
    io = 1280 * 2 + 8 + 2 * 128 * 2 + 1280 * 2  # x, the int64 position id, cos and sin rows, out
    kv_read = 2 * 10 * 8191 * 128 * 2  # keys and values of 8191 cached positions: 41,937,920
    kv_write = 2 * 10 * 1 * 128 * 2  # this step's key and value
    assert p.fused_bytes == weights + io + kv_read + kv_write == 55_055_880


DECODE_BYTES = (
    1280 * 2  # one embedding row
    + 12 * 4 * 1280 * 1280 * 2  # attention projections of 12 layers
    + 25 * 1280 * 2  # 2 norms per layer and the final norm
    + 3 * 1280 * 6848 * 2  # the dense MLP of layer 0
    + 11 * (GATE + 6 * EXPERT + SHARED)  # 11 MoE layers, 6 experts running each
    + 129280 * 1280 * 2  # lm_head
    + 8 + 129280 * 4  # the token id (int64) in, fp32 logits out
    + 12 * 2 * 10 * 8191 * 128 * 2  # KV cache read
    + 12 * 2 * 10 * 1 * 128 * 2  # KV cache written
)


def test_whole_model_decode_is_bandwidth_bound_and_launch_bound():
    p = R.point("DeepseekV2ForCausalLM", None, "decode")
    assert p.fused_bytes == DECODE_BYTES == 1_652_090_888
    t = R.times(p, H100)
    assert t.binds == "memory"
    assert t.bound == sympy.Rational(DECODE_BYTES) / (335 * 10**10)  # 493.16 µs
    # launches: dense layer 2·8 + 26 + 2 + 5 = 49; MoE layer 16 + 26 + 2 + 9 + 14 + 6·5 + 5 = 102;
    # model 4 + final norm 8; head 2
    assert p.launches == 49 + 11 * 102 + 12 + 2 == 1185
    assert p.syncs == 11 + 1  # one .cpu() per MoE layer, one mask check per pass
    assert p.loops == 11 * 64 + 12  # the expert loop in each MoE layer, the layer loop
    assert t.floor == sympy.Rational(1185 * 5 + 12 * 10, 10**6)  # 6.045 ms, 12× the roofline bound
    assert t.floor > 12 * t.bound


def test_whole_model_prefill_is_tensor_bound():
    p = R.point("DeepseekV2ForCausalLM", None, "prefill")
    # each layer also builds its own rotary angles: a (1, 64, 1) @ (1, 1, S) bmm, 2 · 64 · 8192
    attention = 8 * 8192 * 1280 * 1280 + 4 * 10 * 8192**2 * 128 + 2 * 64 * 8192
    moe = 8192 * (2 * 1280 * 64 + 6 * 6 * 1280 * 896 + 6 * 1280 * 1792)
    counted = 2 * 8192 * 1280 * 129280 + 12 * attention + 11 * moe + 6 * 8192 * 1280 * 6848
    assert p.counted_tensor == counted == 13_529_159_565_312
    skipped = 12 * 4 * 10 * 8192**2 * 128 * 63 // 128  # causal tiles skip 63/128 of the products
    assert p.executed_tensor == counted - skipped
    for gpu in (H100, H200):
        t = R.times(p, gpu)
        assert t.binds == "tensor cores"
        assert t.bound == sympy.Rational(counted - skipped) / (sympy.Rational(9895, 10) * 10**12)  # 11.62 ms


def test_each_answer_is_registered_for_an_existing_page():
    pages = build_pages(CATALOG, EV)
    for op in ANSWERS:
        assert pages.get(op).answers, op


def answer(op):
    return ANSWERS[op](R)[0].values


def test_moe_decode_threshold_plugged_back_in():
    per_token = 2 * 1280 * 64 + 6 * 6 * 1280 * 896 + 6 * 1280 * 1792  # 55,214,080 tensor FLOPs per token
    for gpu in R.hardware.gpus:
        peak, bandwidth = Fraction(int(gpu.tensor_flops)), Fraction(int(gpu.bandwidth))

        def tensor_time(B):
            return B * per_token / peak

        def memory_time(B):
            running = min(64, 6 * B)  # E_run = min(E, B·k)
            return (GATE + running * EXPERT + SHARED + 2 * B * 1280 * 2) / bandwidth

        def cuda_time(B):  # per token at most 60,050 + 6·ceil(log2(6B)) CUDA-core FLOPs (MoE spec)
            return B * (60_050 + 6 * math.ceil(math.log2(6 * B))) / Fraction(int(gpu.cuda_flops))

        n = answer("DeepseekV2MoE")[(gpu.name, "B")]
        assert tensor_time(n) > memory_time(n), gpu.name
        assert tensor_time(n - 1) <= memory_time(n - 1) and cuda_time(n - 1) <= memory_time(n - 1), gpu.name
    assert answer("DeepseekV2MoE")[("H100", "B")] == 2499  # 989.5e12 · 454,328,320 / (3.35e12 · 55,214,080 − 4 · 1280 · 989.5e12)


def test_attention_overtakes_feed_forward_plugged_back_in():
    values = answer("DeepseekV2DecoderLayer")

    def attention(S, executed):
        pairs = tile_pairs(S, 0, 128) if executed else S * S
        return 8 * S * 1280 * 1280 + 4 * 10 * 128 * pairs + 2 * 64 * S  # and the layer's rotary bmm

    for variant, per_token in (("dense", 6 * 1280 * 6848), ("moe", 2 * 1280 * 64 + 6 * 6 * 1280 * 896 + 6 * 1280 * 1792)):
        for kind in ("counted", "executed"):
            n = values[(variant, kind)]
            executed = kind == "executed"
            assert attention(n, executed) > per_token * n, (variant, kind)
            assert attention(n - 1, executed) <= per_token * (n - 1), (variant, kind)
    # dense, counted: 5120·S + 13,107,200 + 128 (the rotary bmm) passes 52,592,640 at S > 7711.98
    assert values[("dense", "counted")] == 7712


def test_largest_batch_that_fits_plugged_back_in():
    parameters = (2 * 129280 * 1280 + 12 * 4 * 1280 * 1280 + 25 * 1280 + 3 * 1280 * 6848
                  + 11 * (64 * 1280 + 64 * 3 * 1280 * 896 + 3 * 1280 * 1792))
    weights = 2 * parameters  # bf16: 5,869,468,160 bytes
    kv = 4 * 10 * 12 * 8192 * 128  # keys and values of 8192 positions in 12 layers: 503,316,480 bytes
    values = answer("DeepseekV2ForCausalLM")
    for gpu in R.hardware.gpus:
        n = values[(gpu.name, "kv")]
        assert weights + n * kv <= gpu.capacity < weights + (n + 1) * kv, gpu.name
        assert values[(gpu.name, "peak")] <= n
    assert values[("H100", "kv")] == 147 and values[("H200", "kv")] == 268  # (80e9 − 5.87e9) / 503.3e6 = 147.3


GPUS = [("H100 SXM5 80 GB", 989.5e12, 3.35e12), ("H200 SXM 141 GB", 989.5e12, 4.8e12)]
POINTS = [("DeepseekV2MoE", "prefill", 912.4, 9.0e14), ("DeepseekV2MoE", "decode", 1.0, 3.35e12)]


def test_roofline_chart_is_byte_identical_and_names_what_it_shows():
    from xml.etree import ElementTree

    from opdoc import plots

    svg = plots.roofline_svg("DeepseekV2MoE", GPUS, POINTS, "H100 SXM5 80 GB")
    assert svg == plots.roofline_svg("DeepseekV2MoE", GPUS, POINTS, "H100 SXM5 80 GB")
    texts = {"".join(t.itertext()) for t in ElementTree.fromstring(svg.encode()).iter("{http://www.w3.org/2000/svg}text")}
    assert {"H100 SXM5 80 GB", "H200 SXM 141 GB", "DeepseekV2MoE (prefill)", "DeepseekV2MoE (decode)"} <= texts


def test_roofline_chart_refuses_points_a_log_axis_cannot_show():
    from opdoc import plots

    with pytest.raises(ValueError, match="must be positive"):
        plots.roofline_svg("X", GPUS, [("X", "decode", 0.0, 1e12)], "H100 SXM5 80 GB")


def test_runtime_counts_describe_only_the_variants_they_name():
    """runtime.yaml counts DeepSeek-OCR's greedy router; the vendor file's other routing methods launch
    other kernels, so their launches are left uncounted rather than borrowed."""
    assert R.point("MoEGate", "greedy", "decode").launches == 9
    for variant in ("sigmoid", "group_limited_greedy", "noaux_tc", "training"):
        assert R.point("MoEGate", variant, "decode").launches is None
    # the fused bytes of a variant read only its own tensors: noaux_tc adds its bf16 bias (64 × 2 bytes)
    greedy, noaux = R.point("MoEGate", "greedy", "decode"), R.point("MoEGate", "noaux_tc", "decode")
    assert noaux.fused_bytes - greedy.fused_bytes == 64 * 2


def test_solve_for_gives_the_roots_of_the_equations_answers_ask_match_sympys_solve():
    from opdoc.roofline import solve_for

    x, a, b = sympy.symbols("x a b", positive=True)
    # 3x - 6 = 0 -> x = 2; a·x - b = 0 -> x = b/a (solved by hand, not by solve)
    assert solve_for(3 * x - 6, x) == [2]
    assert sympy.simplify(solve_for(a * x - b, x)[0] - b / a) == 0
    # 2x² - 8x = x(2x - 8) -> 0 and 4; a·x² + b·x -> 0 and -b/a
    assert solve_for(2 * x**2 - 8 * x, x) == [0, 4]
    assert sympy.simplify(solve_for(a * x**2 + b * x, x)[1] + b / a) == 0
    # no root in x; and y² - 2 (a constant term) is left to solve: ±√2 (x, positive, would keep √2 only)
    assert solve_for(a + 0 * x, x) == []
    y = sympy.Symbol("y")
    assert sorted(solve_for(y**2 - 2, y), key=float) == [-sympy.sqrt(2), sympy.sqrt(2)]


def test_each_subtree_is_walked_once_and_a_walk_is_what_a_fresh_one_gives():
    """A walk reads each (op, variant) of its tree once, and a later walk of a subtree (the OCR model's
    inside the request's, as its own page asks for it) reads nothing again and gives a fresh walk's."""
    from opdoc.roofline import tree_variants, walk

    catalog, evaluator = load(Paths(root=ROOT), checks=False)
    r = load_roofline(catalog, evaluator)
    weights = r._weights_read
    read = []

    def counting(op, variant):
        read.append((op, variant))
        return weights(op, variant)

    memo: dict = {}
    assert walk(r.model, "DeepseekOCRForCausalLM", "prefill", counting, memo) == \
        walk(r.model, "DeepseekOCRForCausalLM", "prefill", weights)
    assert sorted(read) == sorted(tree_variants(r.model, "DeepseekOCRForCausalLM", "prefill"))
    inner = next(child for child in r.model.children("DeepseekOCRForCausalLM", "prefill")
                 if child.op == "DeepseekOCRModel")
    before = len(read)
    assert walk(r.model, inner.op, inner.variant, counting, memo) == walk(r.model, inner.op, inner.variant, weights)
    assert len(read) == before
