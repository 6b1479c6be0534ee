"""Vision slice: PatchEmbed (SAM-B) and NoTPAttention (CLIP-L), evaluated quantities against hand arithmetic.

Every expected number is written out as the arithmetic that produces it, from the dimensions of
model.yaml: SAM-B patch 16, 3 input channels, width 768; CLIP-L width 1024, 16 heads of 64. The Base
view is 1024 px (a 64 x 64 SAM grid, and 16 x 16 SAM features + 1 class token = 257 CLIP tokens);
a Gundam tile is 640 px (a 40 x 40 grid; 10 x 10 + 1 = 101 CLIP tokens). bf16 is 2 bytes, fp32 4.
The last tests run the reference modules under the checker and compare what it counts with the specs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opdoc_testing import keys_under, load_weight_index, parameter_names

from opdoc.pipeline import Paths, load
from opdoc.models.deepseek_ocr.config import load_scope_config

REPO = Path(__file__).resolve().parents[1]
BF16, FP32 = 2, 4


@pytest.fixture(scope="module")
def evaluator():
    _, ev = load(Paths(root=REPO))
    return ev


# ---------------------------------------------------------------- PatchEmbed (SAM-B, scope sam)


def patch_embed_expected(side: int) -> dict[str, int]:
    """PatchEmbed on one square view of `side` pixels, B = 1."""
    grid = side // 16  # H_p = W_p = H_img / p
    return {
        # conv: 2 FLOPs x B*H_p*W_p output pixels x h channels x C_in*p*p window
        "tensor_flops": 2 * 1 * grid * grid * 768 * 3 * 16 * 16,
        # bias: one add per output element, B*H_p*W_p*h
        "cuda_flops": 1 * grid * grid * 768,
        # proj.weight h*C_in*p*p + proj.bias h
        "parameters": 768 * 3 * 16 * 16 + 768,
        "parameter_bytes": (768 * 3 * 16 * 16 + 768) * BF16,
        # the only activation: the (B, h, H_p, W_p) conv output, returned as a permuted view
        "activation_bytes": 1 * grid * grid * 768 * BF16,
        # reads: image B*C_in*H_img*W_img + weight + bias (the bias add is inside the conv call)
        "io_read_bytes": (1 * 3 * side * side + 768 * 3 * 16 * 16 + 768) * BF16,
        "io_write_bytes": 1 * grid * grid * 768 * BF16,
        # the peak is that output, whatever the attention kernel (there is none)
        "peak_fused": 1 * grid * grid * 768 * BF16,
        "peak_eager": 1 * grid * grid * 768 * BF16,
        "kv_cache_bytes": 0,
    }


def test_patch_embed_base_view_numbers_spelled_out(evaluator):
    values = evaluator.evaluate_at("PatchEmbed", "base_view")
    # 2 * 1 * 64 * 64 * 768 * 3 * 16 * 16
    assert values["tensor_flops"] == 4_831_838_208
    # 1 * 64 * 64 * 768
    assert values["cuda_flops"] == 3_145_728
    # 768 * 3 * 16 * 16 + 768 = 589,824 + 768
    assert values["parameters"] == 590_592
    # 64 * 64 * 768 * 2 bytes, equal to the image's 3 * 1024 * 1024 * 2 bytes since 768 = 3 * 16 * 16
    assert values["activation_bytes"] == values["peak_fused"] == 6_291_456
    # 6,291,456 (image) + 1,179,648 (weight) + 1,536 (bias)
    assert values["io_read_bytes"] == 7_472_640


@pytest.mark.parametrize("example, side", [("base_view", 1024), ("gundam_tile", 640)])
def test_patch_embed_quantities(evaluator, example, side):
    values = evaluator.evaluate_at("PatchEmbed", example)
    for quantity, expected in patch_embed_expected(side).items():
        assert values[quantity] == expected, quantity


def test_patch_embed_gundam_tile_numbers_spelled_out(evaluator):
    values = evaluator.evaluate_at("PatchEmbed", "gundam_tile")
    assert values["tensor_flops"] == 2 * 1 * 40 * 40 * 768 * 3 * 16 * 16 == 1_887_436_800
    assert values["cuda_flops"] == 40 * 40 * 768 == 1_228_800
    assert values["peak_fused"] == 40 * 40 * 768 * 2 == 2_457_600


# ---------------------------------------------------------------- NoTPAttention (CLIP-L, scope clip)


def attention_expected(tokens: int) -> dict[str, int]:
    """NoTPAttention over one view of `tokens` tokens (SAM features + class token), B = 1."""
    S, h, H, d = tokens, 1024, 16, 64
    qkv = S * 3 * h * BF16              # (B, S, 3h) projection output
    head = H * S * d                    # elements of one (B, H, S, d_h) tensor
    score = H * S * S                   # elements of one (B, H, S, S) tensor
    lse = H * S * FP32                  # fused kernel's fp32 log-sum-exp per score row
    out = S * h * BF16                  # (B, S, h)
    weights = (3 * h * h + 3 * h + h * h + h) * BF16
    fused_peak = qkv + head * BF16 + out  # at out_proj: qkv (held by the q, k, v views), attn, out
    # math path (fp32 upcast): q32, k32, v32 and the scaled q stay live; then either the softmax
    # (fp32 scores + fp32 probs) or P.V (fp32 probs + bf16 probs + fp32 attn + bf16 attn)
    eager_softmax = qkv + 4 * head * FP32 + 2 * score * FP32
    eager_pv = qkv + 4 * head * FP32 + score * FP32 + score * BF16 + head * FP32 + head * BF16
    return {
        # qkv_proj 2*B*S*h*3h + out_proj 2*B*S*h*h + Q.K^T and P.V 2 * 2*B*H*S*S*d_h
        "tensor_flops": 2 * S * h * 3 * h + 2 * S * h * h + 4 * H * S * S * d,
        # biases B*S*3h + B*S*h, then per score 1 scale + 5 softmax inside the fused kernel
        "cuda_flops": S * 3 * h + S * h + 6 * H * S * S,
        # qkv_proj.weight 3h*h + qkv_proj.bias 3h + out_proj.weight h*h + out_proj.bias h
        "parameters": 3 * h * h + 3 * h + h * h + h,
        "parameter_bytes": weights,
        # fused: qkv, attn (bf16), lse (fp32) and the output
        "activation_bytes": qkv + head * BF16 + lse + out,
        # x, weights and biases, qkv read by the kernel, attn read by out_proj
        "io_read_bytes": S * h * BF16 + weights + qkv + head * BF16,
        "io_write_bytes": qkv + head * BF16 + lse + out,
        "peak_fused": fused_peak,
        "peak_eager": max(eager_softmax, eager_pv, qkv + head * BF16 + 2 * out),
        "kv_cache_bytes": 0,
    }


def attention_eager_expected(tokens: int) -> dict[str, int]:
    """The math path's own totals (what runs on meta tensors or with SDPBackend.MATH)."""
    S, h, H, d = tokens, 1024, 16, 64
    head, score = H * S * d, H * S * S
    qkv, out = S * 3 * h * BF16, S * h * BF16
    weights = (4 * h * h + 4 * h) * BF16
    produced = (qkv                                  # qkv_proj
                + 3 * head * FP32                    # q32, k32, v32
                + 2 * head * FP32                    # scaled q and k^T
                + 2 * score * FP32                   # scores, fp32 probabilities
                + score * BF16                       # bf16 copy of the probabilities
                + head * FP32 + head * BF16          # P.V in fp32, then cast back
                + out                                # heads merged (a copy)
                + out)                               # out_proj
    return {
        "tensor_flops": 2 * S * h * 3 * h + 2 * S * h * h + 4 * H * S * S * d,
        # biases, then q and k^T scaled (B*H*S*d_h each) and the softmax (5 per score)
        "cuda_flops": S * 3 * h + S * h + 2 * head + 5 * score,
        "activation_bytes": produced,
        "io_write_bytes": produced,
        # x + weights; upcast reads qkv; scale reads q32, k32; Q.K^T reads both scaled;
        # softmax reads scores; downcast reads fp32 probs; P.V reads fp32 probs and v32;
        # downcast reads attn32; merge reads attn; out_proj reads the merged heads
        "io_read_bytes": (S * h * BF16 + weights + qkv + 2 * head * FP32 + 2 * head * FP32 + score * FP32
                          + score * FP32 + score * FP32 + head * FP32 + head * FP32 + head * BF16 + out),
    }


def test_attention_base_view_numbers_spelled_out(evaluator):
    values = evaluator.evaluate_at("NoTPAttention", "base_view")
    # qkv 2*257*1024*3072 = 1,616,904,192; out 2*257*1024*1024 = 538,968,064; attention 4*16*257*257*64 = 270,536,704
    assert values["tensor_flops"] == 1_616_904_192 + 538_968_064 + 270_536_704 == 2_426_408_960
    # biases 257*3072 + 257*1024 = 1,052,672; scale + softmax 6*16*257*257 = 6,340,704
    assert values["cuda_flops"] == 1_052_672 + 6_340_704 == 7_393_376
    # 3*1024*1024 + 3*1024 + 1024*1024 + 1024
    assert values["parameters"] == 4_198_400
    # qkv 1,579,008 + attn 526,336 + out 526,336
    assert values["peak_fused"] == 2_631_680
    # qkv 1,579,008 + 4 fp32 heads 4*1,052,672 + fp32 scores and probs 2*4,227,136
    assert values["peak_eager"] == 14_243_968


@pytest.mark.parametrize("example, tokens", [("base_view", 16 * 16 + 1), ("gundam_tile", 10 * 10 + 1)])
def test_attention_quantities(evaluator, example, tokens):
    values = evaluator.evaluate_at("NoTPAttention", example)
    for quantity, expected in attention_expected(tokens).items():
        assert values[quantity] == expected, quantity


@pytest.mark.parametrize("example, tokens", [("base_view", 257), ("gundam_tile", 101)])
def test_attention_eager_kernel_quantities(evaluator, example, tokens):
    values = evaluator.evaluate_at("NoTPAttention", example, kernel="eager")
    for quantity, expected in attention_eager_expected(tokens).items():
        assert values[quantity] == expected, quantity


def test_attention_eager_peak_moment_depends_on_length():
    # The softmax moment wins when S > 3 * d_h = 192: the Base view, not a Gundam tile.
    base, tile = attention_expected(257), attention_expected(101)
    assert base["peak_eager"] == 1_579_008 + 4 * 1_052_672 + 2 * 4_227_136
    # 101 tokens: qkv 620,544 + 4 fp32 heads 1,654,784 + fp32 probs 652,864 + bf16 probs 326,432
    #             + attn32 413,696 + attn 206,848
    assert tile["peak_eager"] == 620_544 + 1_654_784 + 652_864 + 326_432 + 413_696 + 206_848 == 3_875_168


# ---------------------------------------------------------------- parameters against the checkpoint


@pytest.fixture(scope="module")
def index() -> dict:
    return load_weight_index()


def spec_parameter_names(evaluator, op: str) -> set[str]:
    """The op's parameters, its children's under the child's name (as named_parameters gives them)."""
    return parameter_names(evaluator, op, with_children=True)


def test_patch_embed_parameters_match_checkpoint(evaluator, index):
    assert spec_parameter_names(evaluator, "PatchEmbed") == keys_under(index, "model.sam_model.patch_embed.")
    cfg = load_scope_config("sam")
    # proj.weight (embed_dim, in_chans, patch, patch) + proj.bias (embed_dim)
    from_config = cfg["embed_dim"] * cfg["in_chans"] * cfg["patch_size"] ** 2 + cfg["embed_dim"]
    assert evaluator.evaluate_at("PatchEmbed", "base_view")["parameters"] == from_config == 590_592


def test_attention_parameters_match_checkpoint(evaluator, index):
    cfg = load_scope_config("clip")
    names = spec_parameter_names(evaluator, "NoTPAttention")
    for layer in range(cfg["num_layers"]):
        assert names == keys_under(index, f"model.vision_model.transformer.layers.{layer}.self_attn."), layer
    width = cfg["hidden_size"]
    # qkv_proj.weight (3h, h) + bias (3h); out_proj.weight (h, h) + bias (h)
    from_config = 3 * width * width + 3 * width + width * width + width
    assert evaluator.evaluate_at("NoTPAttention", "gundam_tile")["parameters"] == from_config == 4_198_400


# ---------------------------------------------------------------- the checker agrees with the specs


def _measure(module_factory, shape, device: str | None):
    """Measure a bf16 forward: under FakeTensorMode (the fused CPU kernel) or on meta (SDPA math path)."""
    torch = pytest.importorskip("torch")
    from torch._subclasses.fake_tensor import FakeTensorMode

    from opdoc.check import measure

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        if device == "meta":
            module = module_factory().to("meta").eval()
            return measure(module, torch.randn(*shape, device="meta"))
        with FakeTensorMode():
            module = module_factory().eval()
            return measure(module, torch.randn(*shape))
    finally:
        torch.set_default_dtype(previous)


def _assert_matches(values: dict, m) -> None:
    assert m.ok, m.unknown_ops
    assert m.tensor_flops == values["tensor_flops"]
    assert m.cuda_flops == values["cuda_flops"]
    assert m.io_read_bytes == values["io_read_bytes"]
    assert m.io_write_bytes == values["io_write_bytes"]
    assert m.activation_total_bytes == values["activation_bytes"]
    assert m.activation_peak_bytes == values["peak"]


@pytest.mark.parametrize("example, side", [("base_view", 1024), ("gundam_tile", 640)])
def test_checker_agrees_on_patch_embed(evaluator, example, side):
    from opdoc.models.deepseek_ocr.config import SamConfig
    from opdoc.models.deepseek_ocr.deepencoder import PatchEmbed

    cfg = SamConfig.from_scope()
    patch = (cfg.patch_size, cfg.patch_size)
    m = _measure(lambda: PatchEmbed(patch, patch, in_chans=cfg.in_chans, embed_dim=cfg.embed_dim),
                 (1, cfg.in_chans, side, side), device=None)
    _assert_matches(evaluator.evaluate_at("PatchEmbed", example), m)


@pytest.mark.parametrize("kernel, device", [("fused", None), ("eager", "meta")])
@pytest.mark.parametrize("example, tokens", [("base_view", 257), ("gundam_tile", 101)])
def test_checker_agrees_on_attention(evaluator, example, tokens, kernel, device):
    from opdoc.models.deepseek_ocr.config import ClipConfig
    from opdoc.models.deepseek_ocr.deepencoder import NoTPAttention

    cfg = ClipConfig.from_scope()
    m = _measure(lambda: NoTPAttention(cfg), (1, tokens, cfg.hidden_size), device=device)
    expected_kernel = "_scaled_dot_product_flash_attention_for_cpu" if kernel == "fused" else "math:"
    assert any(expected_kernel in name for name in m.attention_kernels), m.attention_kernels
    _assert_matches(evaluator.evaluate_at("NoTPAttention", example, kernel=kernel), m)


# ---------------------------------------------------------------- the math path with more than one view


def attention_at_batch(evaluator, example: str, batch: int, kernel: str) -> dict:
    """The spec's quantities at a named example with B overridden (S stays the example's)."""
    quantities = evaluator.quantities("NoTPAttention", None, kernel)
    binding = evaluator.binding("clip", example, overrides={"B": batch})
    return {name: expr.xreplace(binding) for name, expr in quantities.derived().items()}


@pytest.mark.parametrize("example, tokens", [("base_view", 257), ("gundam_tile", 101)])
def test_attention_eager_batch_copies(evaluator, example, tokens):
    # With B > 1 bmm cannot fold (B, H) into one batch axis as a view, so the math path copies the
    # scaled q, the scaled k^T and v32 to contiguous fp32: 3 * B*H*S*d_h * 4 = 12*B*S*h more bytes,
    # written once and read once. At B = 1 those copies are views and cost nothing.
    S, h = tokens, 1024
    one = attention_at_batch(evaluator, example, 1, "eager")
    two = attention_at_batch(evaluator, example, 2, "eager")
    assert one["activation_bytes"] == attention_eager_expected(S)["activation_bytes"]
    copies = 12 * 2 * S * h
    for quantity in ("activation_bytes", "io_write_bytes"):
        assert two[quantity] == 2 * one[quantity] + copies, quantity
    # the weights are read once whatever B is
    weights = (4 * h * h + 4 * h) * BF16
    assert two["io_read_bytes"] == 2 * (one["io_read_bytes"] - weights) + weights + copies


def test_attention_eager_batch_peak_moments(evaluator):
    h, H, d, B = 1024, 16, 64, 2
    def moments(S):
        head, score = B * H * S * d * FP32, B * H * S * S * FP32
        held = B * S * 3 * h * BF16 + 4 * head  # qkv, q32, k32, v32 and the scaled q
        return {
            "q.k": held + head + 2 * head + score,           # scaled k^T, copies of q and k^T, scores
            "softmax": held + 2 * score,                      # scores and fp32 probs
            "p.v": held + score + score // 2 + head + head,   # probs fp32 + bf16, copy of v, attn32
        }
    # Two Gundam tiles: S = 101 < 2 * d_h, the Q.K^T moment with the operand copies is the largest:
    # qkv 1,241,088 + 7 fp32 heads 7 * 827,392 + scores 1,305,728
    tile = moments(101)
    assert max(tile, key=tile.get) == "q.k"
    assert tile["q.k"] == 1_241_088 + 7 * 827_392 + 1_305_728 == 8_338_560
    assert attention_at_batch(evaluator, "gundam_tile", B, "eager")["peak"] == 8_338_560
    # Two Base views: S = 257 > 4 * d_h, the softmax moment, as for one view but twice the size
    base = moments(257)
    assert max(base, key=base.get) == "softmax"
    assert attention_at_batch(evaluator, "base_view", B, "eager")["peak"] == base["softmax"] == 2 * 14_243_968
    # In between (2 * d_h < S < 4 * d_h) the P.V moment holding the copy of v is the largest
    mid = moments(193)
    assert max(mid, key=mid.get) == "p.v"


@pytest.mark.parametrize("kernel, device", [("fused", None), ("eager", "meta")])
@pytest.mark.parametrize("example, tokens", [("base_view", 257), ("gundam_tile", 101)])
def test_checker_agrees_on_attention_two_views(evaluator, example, tokens, kernel, device):
    from opdoc.models.deepseek_ocr.config import ClipConfig
    from opdoc.models.deepseek_ocr.deepencoder import NoTPAttention

    cfg = ClipConfig.from_scope()
    m = _measure(lambda: NoTPAttention(cfg), (2, tokens, cfg.hidden_size), device=device)
    if kernel == "eager":
        # the three contiguous operand copies exist only because B > 1
        assert m.per_op["aten.clone"].calls == 4, m.per_op["aten.clone"]
    _assert_matches(attention_at_batch(evaluator, example, 2, kernel), m)
