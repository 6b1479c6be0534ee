"""CLIP-L specs (issue 11): evaluated quantities against hand arithmetic, parameters against the checkpoint.

Dimensions from model.yaml's clip scope: width h = 1024, 16 heads of 64, FFN 4096, 24 blocks, a position
table for 16 x 16 cells plus the class token. CLIP reads SAM's features, one per 64 x 64 pixels: a Base
view (1024 px) gives 16 x 16 + 1 = 257 tokens, a 640 px tile 10 x 10 + 1 = 101. bf16 is 2 bytes.
"""

from __future__ import annotations



from opdoc_testing import keys_under, parameter_names


BF16, FP32 = 2, 4
ATTENTION_257 = 8 * 257 * 1024 * 1024 + 4 * 16 * 257 * 257 * 64   # NoTPAttention's GEMMs at 257 tokens
MLP_257 = 4 * 257 * 1024 * 4096                                     # NoTPFeedForward's two GEMMs


def test_feed_forward_base_view_spelled_out(evaluator):
    values = evaluator.evaluate_at("NoTPFeedForward", "base_view")
    assert values["tensor_flops"] == MLP_257 == 4_311_744_512
    # fc1 bias, quick_gelu (multiply 1, sigmoid 4, multiply 1) per hidden element, fc2 bias
    assert values["cuda_flops"] == 7 * 257 * 4096 + 257 * 1024 == 7_631_872
    # inside quick_gelu: three (1, 257, 4096) tensors at once
    assert values["peak"] == 3 * 257 * 4096 * BF16 == 6_316_032


def test_block_base_view_spelled_out(evaluator):
    values = evaluator.evaluate_at("NoTPTransformerBlock", "base_view")
    assert values["tensor_flops"] == ATTENTION_257 + MLP_257 == 6_738_153_472
    # two layer norms (7 per element, 4 per token) and two residual adds, beside the children's work
    children = (evaluator.evaluate_at("NoTPAttention", "base_view")["cuda_flops"]
                + evaluator.evaluate_at("NoTPFeedForward", "base_view")["cuda_flops"])
    assert values["cuda_flops"] == 2 * (7 * 257 * 1024 + 4 * 257) + 2 * 257 * 1024 + children
    # the MLP's peak on top of the kept attention output, h1 and the normalised h1
    assert values["peak"] == 3 * 257 * 1024 * BF16 + 6_316_032


def test_get_abs_pos_resizes_the_grid_and_keeps_the_class_row(evaluator):
    tile = evaluator.evaluate_at("get_abs_pos", "gundam_tile")
    # 16 -> 10 cells per side: ceil(4 * 16 / 10) = 7 taps per axis, 2 FLOPs per tap, 1024 x 10 x 10 outputs
    assert tile["cuda_flops"] == 2 * 7 * 7 * 1024 * 10 * 10 == 10_035_200
    # at the bicubic step: the fp32 grid copy (1024 x 16 x 16), the fp32 output and its bf16 cast (1024 x 10 x 10)
    assert tile["peak"] == 1024 * 256 * FP32 + 1024 * 100 * (FP32 + BF16) == 1_662_976
    assert evaluator.evaluate_at("get_abs_pos", "base_view")["peak"] == 0  # 16 x 16: returned as it is


def test_vit_model_base_view(evaluator):
    values = evaluator.evaluate_at("VitModel", "base_view")
    assert values["tensor_flops"] == 24 * (ATTENTION_257 + MLP_257) == 161_715_683_328
    # 24 blocks of (4 h^2 + 4 h) + (2 h d_ff + d_ff + h) + 4 h, the embeddings (class token, the unused
    # 3 x 14 x 14 patch convolution, 257 positions) and the pre-LayerNorm
    block = (4 * 1024 * 1024 + 4 * 1024) + (2 * 1024 * 4096 + 4096 + 1024) + 4 * 1024
    embeddings = 1024 + 1024 * 3 * 14 * 14 + 257 * 1024
    assert values["parameters"] == 24 * block + embeddings + 2 * 1024 == 303_177_728


def test_clip_parameters_match_checkpoint(evaluator, index):
    prefix = "model.vision_model."
    assert parameter_names(evaluator, "CLIPVisionEmbeddings") == keys_under(index, prefix + "embeddings.")
    assert parameter_names(evaluator, "VitModel") == {f"pre_layrnorm.{k}" for k in keys_under(index, prefix + "pre_layrnorm.")}
    block = parameter_names(evaluator, "NoTPTransformerBlock")
    block |= {f"self_attn.{n}" for n in parameter_names(evaluator, "NoTPAttention", with_children=True)}
    block |= {f"mlp.{n}" for n in parameter_names(evaluator, "NoTPFeedForward", with_children=True)}
    layers = {key.split(".")[1] for key in keys_under(index, prefix + "transformer.")}
    assert layers == {str(i) for i in range(24)}
    for layer in layers:
        assert block == keys_under(index, f"{prefix}transformer.layers.{layer}.")


def test_vision_parameters_are_the_checkpoint_minus_the_language_model(evaluator, index):
    """SAM-B, CLIP-L, the projector and the two learned separator vectors are exactly what the checkpoint
    holds beyond the language model: the weight index's total size, at 2 bytes per bf16 parameter."""
    sam = evaluator.evaluate_at("ImageEncoderViT", "base_view")["parameters"]
    clip = evaluator.evaluate_at("VitModel", "base_view")["parameters"]
    projector = evaluator.evaluate_at("MlpProjector", "base_view", variant="linear")["parameters"]
    assert projector == 2048 * 1280 + 1280 == 2_622_720
    language = evaluator.evaluate_at("DeepseekV2ForCausalLM", "prefill")["parameters"]
    separators = 2 * 1280  # model.image_newline and model.view_seperator, one hidden-size vector each
    assert {k for k in index["weight_map"] if k in ("model.image_newline", "model.view_seperator")} == \
        {"model.image_newline", "model.view_seperator"}
    assert sam + clip + projector + separators + language == index["metadata"]["total_size"] // 2
    linear = {t.name for t in evaluator.catalog.specs["MlpProjector"].spec.tensors
              if t.role == "parameter" and t.only in (None, "linear")}  # the type OCR loads
    assert linear == {f"layers.{k}" for k in keys_under(index, "model.projector.layers.")}


def test_projector_variants(evaluator):
    """The types OCR does not load, at depth 2, mlp_ratio 1 and downsample_ratio 2 (Base view: 16 x 16 tokens)."""
    tokens, d_in, h = 256, 2048, 1280
    mlp = evaluator.evaluate_at("MlpProjector", "base_view", variant="mlp_gelu")
    assert mlp["tensor_flops"] == 2 * tokens * d_in * h + 2 * tokens * h * h
    assert mlp["parameters"] == d_in * h + h + h * h + h
    down = evaluator.evaluate_at("MlpProjector", "base_view", variant="downsample_mlp_gelu")
    merged = tokens // 4  # 2 x 2 blocks: 8 x 8 tokens left
    # the first layer reads 4 * d_in per merged token: as many FLOPs as one layer over all 256 tokens
    assert down["tensor_flops"] == 2 * merged * 4 * d_in * h + 2 * merged * h * h
    assert down["parameters"] == 4 * d_in * h + h + h * h + h
    identity = evaluator.evaluate_at("MlpProjector", "base_view", variant="identity")
    assert identity["forward_flops"] == identity["peak"] == identity["parameters"] == 0
