"""SAM-B specs (issue 11): evaluated quantities against hand arithmetic, parameters against the checkpoint.

Dimensions from model.yaml's sam scope: width h = 768, 12 heads of 64, MLP 3072, neck C = 256 channels,
window 14, patch 16. The Base view is 1024 px (a 64 x 64 patch grid), a Gundam tile 640 px (40 x 40).
bf16 is 2 bytes, fp32 4. `opdoc check` compares the same formulas with the reference modules; these
tests pin the numbers to arithmetic a reader can redo by hand.
"""

from __future__ import annotations


import pytest

from opdoc_testing import keys_under, parameter_names


BF16, FP32 = 2, 4


# ---------------------------------------------------------------- LayerNorm2d


def test_layer_norm_2d_base_view_spelled_out(evaluator):
    values = evaluator.evaluate_at("LayerNorm2d", "base_view")
    full, pixels = 256 * 64 * 64, 64 * 64  # one (1, 256, 64, 64) map; one (1, 1, 64, 64) statistic
    assert full == 1_048_576 and pixels == 4_096
    # mean (N + n), x - u (N), square (N), mean (N + n), x - u (N), + eps (n), sqrt (n), divide, gain, shift (3N)
    assert values["cuda_flops"] == 8 * full + 4 * pixels == 8_404_992
    assert values["tensor_flops"] == 0
    # six full-size maps and four statistics are created
    assert values["activation_bytes"] == (6 * full + 4 * pixels) * BF16 == 12_615_680
    # at the bias add: u and s, the normalised map, the gained map and the output
    assert values["peak"] == (3 * full + 2 * pixels) * BF16 == 6_307_840
    # reads: x three times, (x - u), its square, the second (x - u), the normalised and gained maps (8N);
    # u twice, s, s + eps, std (5n); weight and bias once each (2 * 256)
    assert values["io_read_bytes"] == (8 * full + 5 * pixels + 2 * 256) * BF16 == 16_819_200
    assert values["io_write_bytes"] == (6 * full + 4 * pixels) * BF16
    assert values["parameters"] == 2 * 256


def test_layer_norm_2d_gundam_tiles(evaluator):
    values = evaluator.evaluate_at("LayerNorm2d", "gundam_tiles_2")
    full, pixels = 2 * 256 * 40 * 40, 2 * 40 * 40  # two (256, 40, 40) maps
    assert values["cuda_flops"] == 8 * full + 4 * pixels == 6_566_400
    assert values["peak"] == (3 * full + 2 * pixels) * BF16 == 4_928_000


def test_layer_norm_2d_parameters_match_checkpoint(evaluator, index):
    names = parameter_names(evaluator, "LayerNorm2d")
    for position in (1, 3):  # neck.1 and neck.3 of SAM's neck
        assert names == keys_under(index, f"model.sam_model.neck.{position}.")


# ---------------------------------------------------------------- MLPBlock


def test_mlp_block_base_view_spelled_out(evaluator):
    values = evaluator.evaluate_at("MLPBlock", "base_view")
    tokens = 64 * 64
    # lin1 and lin2: 2 * 2 * tokens * 768 * 3072
    assert values["tensor_flops"] == 4 * tokens * 768 * 3072 == 38_654_705_664
    # lin1 bias (tokens * 3072) + GELU (5 * tokens * 3072) + lin2 bias (tokens * 768)
    assert values["cuda_flops"] == 6 * tokens * 3072 + tokens * 768 == 78_643_200
    # the GELU's input and output, each (1, 64, 64, 3072) bf16
    assert values["peak"] == 2 * tokens * 3072 * BF16 == 50_331_648
    assert values["parameters"] == 2 * 768 * 3072 + 3072 + 768 == 4_722_432


def test_mlp_block_parameters_match_checkpoint(evaluator, index):
    names = parameter_names(evaluator, "MLPBlock", with_children=True)
    for block in range(12):
        assert names == keys_under(index, f"model.sam_model.blocks.{block}.mlp.")


# ---------------------------------------------------------------- get_rel_pos


def test_get_rel_pos_base_view_needs_no_resize(evaluator):
    values = evaluator.evaluate_at("get_rel_pos", "base_view")
    side = 64  # the table was built for 64 patches: 2 * 64 - 1 = 127 rows, as the call needs
    # two coordinate scalings (side each), the pairwise difference and the shift (side**2 each)
    assert values["cuda_flops"] == 2 * side + 2 * side * side == 8_320
    # gathered output (64, 64, 64) bf16 + index maps (64, 64) in fp32 and int64 + two (64,) fp32 coordinates
    assert values["peak"] == side * side * 64 * BF16 + side * side * (FP32 + 8) + 2 * side * FP32 == 573_952


def test_get_rel_pos_gundam_tile_resizes(evaluator):
    values = evaluator.evaluate_at("get_rel_pos", "gundam_tile")
    side, rows = 40, 2 * 40 - 1  # 127 table rows interpolated to 79
    # + linear interpolation: 2 taps x 2 FLOPs x 64 channels x 79 rows
    assert values["cuda_flops"] == 2 * side + 2 * side * side + 4 * 64 * rows == 23_504
    # the fp32 copy of the table (127 x 64 x 4) and the resized bf16 table (79 x 64 x 2) stay alive
    assert values["peak"] == (127 * 64 * FP32 + rows * 64 * BF16 + side * side * 64 * BF16
                              + side * side * (FP32 + 8) + 2 * side * FP32) == 266_944


# ---------------------------------------------------------------- add_decomposed_rel_pos


def window_call(evaluator, op: str, example: str = "base_windows", kernel: str | None = None) -> dict:
    """An op called the way a windowed block calls attention: the 25 windows of a Base view (or the 18
    of two Gundam tiles), 14 x 14 patches each, tables built for 14."""
    binding = evaluator.binding("sam", example)
    assert {s.name: int(v) for s, v in binding.items() if s.name in ("H_p", "W_p", "G_p")} == \
        {"H_p": 14, "W_p": 14, "G_p": 14}
    return evaluator.evaluate(op, binding, kernel=kernel).totals


def test_add_decomposed_rel_pos_base_view_spelled_out(evaluator):
    values = evaluator.evaluate_at("add_decomposed_rel_pos", "base_view")
    heads, tokens, side, head_dim = 12, 64 * 64, 64, 64
    # row and column products: 2 * (B*H) * S * side * d_h each
    assert values["tensor_flops"] == 2 * 2 * heads * tokens * side * head_dim == 805_306_368
    table_rows = side * side * head_dim * BF16          # R_h, R_w: (64, 64, 64) each
    q_copy = heads * tokens * head_dim * BF16            # a copy of q
    term = heads * tokens * side * BF16                  # one rel_h- or rel_w-sized tensor
    # one image: the column product holds its own copy of q beside the row term and its output;
    # it ties with the reshape moment (three terms) because d_h = side = 64
    assert values["peak"] == 2 * table_rows + q_copy + 2 * term == 2 * table_rows + 3 * term == 19_922_944


def test_add_decomposed_rel_pos_windowed_call(evaluator):
    values = window_call(evaluator, "add_decomposed_rel_pos")
    rows, tokens, side, head_dim = 25 * 12, 14 * 14, 14, 64
    assert values["tensor_flops"] == 2 * 2 * rows * tokens * side * head_dim == 210_739_200
    # contiguous q: the row product and its copy of q is the peak (d_h = 64 > 2 * 14)
    assert values["peak"] == (2 * side * side * head_dim + rows * tokens * head_dim + rows * tokens * side) * BF16 \
        == 9_222_976


# ---------------------------------------------------------------- window_partition / window_unpartition


@pytest.mark.parametrize("example, side, padded", [
    ("base_view", 64, 70),    # 64 patches: 5 windows of 14 = 70, six padded rows and columns
    ("gundam_tile", 40, 42),  # 40: 3 windows = 42
    ("tiny_view", 32, 42),    # 32: 3 windows = 42, ten padded
    ("large_view", 80, 84),   # 80: 6 windows = 84
])
def test_window_round_trip_copies_the_padded_grid(evaluator, example, side, padded):
    grid, padded_grid = side * side * 768 * BF16, padded * padded * 768 * BF16
    split = evaluator.evaluate_at("window_partition", example)
    assert split["cuda_flops"] == split["tensor_flops"] == 0
    # pad (reads the grid, writes the padded grid), then the window-order copy of the padded grid
    assert split["io_read_bytes"] == grid + padded_grid
    assert split["io_write_bytes"] == split["peak"] == 2 * padded_grid
    merge = evaluator.evaluate_at("window_unpartition", example)
    # row-order copy of the padded grid, then the crop copies the unpadded tokens
    assert merge["io_write_bytes"] == merge["peak"] == padded_grid + grid


def test_window_partition_base_view_spelled_out(evaluator):
    values = evaluator.evaluate_at("window_partition", "base_view")
    assert values["peak"] == 2 * 70 * 70 * 768 * BF16 == 15_052_800


# ---------------------------------------------------------------- Attention


def test_attention_global_base_view_spelled_out(evaluator):
    values = evaluator.evaluate_at("Attention", "base_view")
    S, h, H, d = 64 * 64, 768, 12, 64
    # qkv 6*S*h^2 + proj 2*S*h^2, Q.K^T and P.V 4*H*S^2*d, bias terms 2*H*S*(64 + 64)*d
    assert values["tensor_flops"] == 8 * S * h * h + 4 * H * S * S * d + 2 * H * S * 128 * d == 71_672_266_752
    bias = H * S * S * BF16  # the dense (1, 12, 4096, 4096) bf16 mask
    assert bias == 402_653_184
    # fused: qkv (S, 3h), rel_h and rel_w (H, S, 64 each), the bias, the head outputs and the projection
    assert values["peak"] == S * 3 * h * BF16 + 2 * H * S * 64 * BF16 + bias + H * S * d * BF16 + S * h * BF16 \
        == 446_693_376
    # biases of qkv and proj, the dense bias sum, and per score: scale, bias add, softmax (7)
    rel = evaluator.evaluate_at("add_decomposed_rel_pos", "base_view")["cuda_flops"]
    assert values["cuda_flops"] == 3 * S * h + S * h + H * S * S + 7 * H * S * S + rel
    # the parameters of a global block's attention (tables built for the 64-patch grid)
    assert values["parameters"] == 3 * h * h + 3 * h + h * h + h + 2 * 127 * d == 2_378_624


def test_attention_windowed_call_spelled_out(evaluator):
    values = window_call(evaluator, "Attention")
    B, S, h, H, d = 25, 14 * 14, 768, 12, 64
    assert values["tensor_flops"] == 8 * B * S * h * h + 4 * B * H * S * S * d + 2 * B * H * S * 28 * d \
        == 26_282_188_800
    # several windows: qkv is copied to fold the heads; the merged heads are a copy too (same size as attn)
    qkv, rel, bias = B * S * 3 * h * BF16, 2 * B * H * S * 14 * BF16, B * H * S * S * BF16
    assert values["peak"] == 2 * qkv + rel + bias + B * H * S * d * BF16 + B * S * h * BF16 == 86_553_600
    assert values["parameters"] == 3 * h * h + 3 * h + h * h + h + 2 * 27 * d == 2_365_824


def test_attention_math_path_holds_two_fp32_score_tensors(evaluator):
    fused = evaluator.evaluate_at("Attention", "base_view", kernel="fused")
    eager = evaluator.evaluate_at("Attention", "base_view", kernel="eager")
    S, H = 64 * 64, 12
    # at the bias add: fp32 q, k, v and scaled q (4 * H*S*64*4; the scaled kT was freed after Q.K^T) and the
    # scores and biased scores (2 * H*S*S*4), in place of the fused path's head outputs and projection
    extra = 4 * H * S * 64 * FP32 + 2 * H * S * S * FP32 - (H * S * 64 + S * 768) * BF16
    assert eager["peak"] - fused["peak"] == extra


def test_attention_parameters_match_checkpoint(evaluator, index):
    names = parameter_names(evaluator, "Attention", with_children=True)  # qkv and proj are Linear children
    for block in range(12):
        assert names == keys_under(index, f"model.sam_model.blocks.{block}.attn.")


# ---------------------------------------------------------------- Block


def test_block_variants_at_the_base_view(evaluator):
    windowed = evaluator.evaluate_at("Block", "base_view", variant="windowed")
    global_ = evaluator.evaluate_at("Block", "base_view", variant="global")
    mlp = 4 * 4096 * 768 * 3072  # the MLP's two GEMMs over the 64 x 64 patches
    # windowed: the attention of the 25 padded windows (see the Attention test) plus the MLP
    assert windowed["tensor_flops"] == 26_282_188_800 + mlp == 64_936_894_464
    # global: the attention over all 4,096 patches plus the MLP
    assert global_["tensor_flops"] == 71_672_266_752 + mlp == 110_326_972_416
    # peaks: the attention's own peak on top of its input, the windows (25 x 196 x 768) or norm1's grid
    assert windowed["peak"] == 25 * 196 * 768 * BF16 + 86_553_600 == 94_080_000
    assert global_["peak"] == 4096 * 768 * BF16 + 446_693_376 == 452_984_832


def test_block_norms_and_residuals(evaluator):
    values = evaluator.evaluate_at("Block", "gundam_tile", variant="global")
    tokens, h = 40 * 40, 768
    attn = evaluator.evaluate_at("Attention", "gundam_tile")["cuda_flops"]
    mlp = evaluator.evaluate_at("MLPBlock", "gundam_tile")["cuda_flops"]
    # two layer norms (7 per element + 4 per token each) and two residual adds (1 per element each)
    assert values["cuda_flops"] == 2 * (7 * tokens * h + 4 * tokens) + 2 * tokens * h + attn + mlp


def test_block_parameters_match_checkpoint(evaluator, index):
    for block in range(12):
        variant = "global" if block in (2, 5, 8, 11) else "windowed"
        names = {t.name for t in evaluator.catalog.specs["Block"].spec.tensors if t.role == "parameter"}
        names |= {f"attn.{n}" for n in parameter_names(evaluator, "Attention", with_children=True)}
        names |= {f"mlp.{n}" for n in parameter_names(evaluator, "MLPBlock", with_children=True)}
        assert names == keys_under(index, f"model.sam_model.blocks.{block}.")
        # windowed blocks hold tables of 2 * 14 - 1 rows, global ones of 2 * 64 - 1 (64 wide each)
        rows = 127 if variant == "global" else 27
        count = evaluator.evaluate_at("Block", "base_view", variant=variant)["parameters"]
        assert count == 4 * 768 + (4 * 768 * 768 + 4 * 768 + 2 * rows * 64) + (2 * 768 * 3072 + 3072 + 768)


# ---------------------------------------------------------------- get_abs_pos_sam


@pytest.mark.parametrize("example, side, taps", [
    ("gundam_tile", 40, 7),   # shrinking 64 -> 40: ceil(4 * 64 / 40) = ceil(6.4) = 7 taps per axis
    ("tiny_view", 32, 8),     # 64 -> 32: ceil(4 * 2) = 8
    ("large_view", 80, 4),    # enlarging: the plain 4-tap bicubic filter
])
def test_get_abs_pos_sam_resizes_bicubically(evaluator, example, side, taps):
    values = evaluator.evaluate_at("get_abs_pos_sam", example)
    # 2 FLOPs per tap, taps x taps per output value, 768 channels x side x side outputs
    assert values["cuda_flops"] == 2 * taps * taps * 768 * side * side
    # the fp32 copy of the 64 x 64 table, the fp32 resize and its bf16 cast
    assert values["peak"] == 768 * 64 * 64 * FP32 + 768 * side * side * (FP32 + BF16)


def test_get_abs_pos_sam_base_view_is_free(evaluator):
    values = evaluator.evaluate_at("get_abs_pos_sam", "base_view")
    assert values["cuda_flops"] == values["peak"] == values["io_read_bytes"] == 0


# ---------------------------------------------------------------- ImageEncoderViT


def spec_parameter_names(evaluator, op: str, variant: str | None = None) -> list[str]:
    """Every parameter name the spec tree declares, children prefixed by their name; a repeated child
    (the blocks) appears once per instance, its index written as '*'."""
    item = evaluator.catalog.specs[op]
    names = [t.name for t in item.spec.tensors if t.role == "parameter"]
    for index, child in evaluator.active_children(item, variant):
        times = int(evaluator.at(item, item.exprs[f"children.{index}.count"], item.spec.examples[0], "count"))
        prefix = f"{child.name}.*." if times > 1 else f"{child.name}."
        names += [prefix + name for name in spec_parameter_names(evaluator, child.op, child.variant)] * times
    return names


def test_sam_encoder_parameters_match_checkpoint(evaluator, index):
    names = spec_parameter_names(evaluator, "ImageEncoderViT")
    stored = [key[len("model.sam_model."):] for key in index["weight_map"] if key.startswith("model.sam_model.")]
    starred = [".".join("*" if part.isdigit() and key.startswith("blocks.") and n == 1 else part
                        for n, part in enumerate(key.split("."))) for key in stored]
    assert sorted(names) == sorted(starred)  # same names, and as many of each (12 blocks' worth)
    values = evaluator.evaluate_at("ImageEncoderViT", "base_view")
    block_windowed = 4 * 768 + (4 * 768 * 768 + 4 * 768 + 2 * 27 * 64) + (2 * 768 * 3072 + 3072 + 768)
    block_global = block_windowed + 2 * (127 - 27) * 64
    expected = (768 * 3 * 16 * 16 + 768       # patch_embed
                + 64 * 64 * 768               # pos_embed
                + 8 * block_windowed + 4 * block_global
                + 256 * 768 + 256 * 256 * 9 + 2 * 2 * 256   # neck convolutions and two LayerNorm2d
                + 512 * 256 * 9 + 1024 * 512 * 9)           # net_2, net_3
    assert values["parameters"] == expected == 95_569_152


def test_sam_encoder_base_view(evaluator):
    values = evaluator.evaluate_at("ImageEncoderViT", "base_view")
    blocks = 8 * 64_936_894_464 + 4 * 110_326_972_416          # the Block test's figures
    patch = 2 * 64 * 64 * 768 * 3 * 16 * 16
    neck = 2 * 64 * 64 * 256 * 768 + 2 * 64 * 64 * 256 * 256 * 9
    extra = 2 * 32 * 32 * 512 * 256 * 9 + 2 * 16 * 16 * 1024 * 512 * 9
    assert values["tensor_flops"] == blocks + patch + neck + extra
    # the peak: a global block's, on top of the block's input (the 64 x 64 x 768 stream)
    assert values["peak"] == 4096 * 768 * BF16 + 452_984_832
