"""Building blocks (issue 8): Linear, LayerNorm and Activation in rows and features, the composites
built from them, and naming a library class (torch.nn) as an implementation without importing it.

Numbers are hand arithmetic at shapes DeepSeek-OCR runs (model.yaml, scope blocks): the decoder's
q projection is 8192 tokens of 1280 → 1280; SAM's tokens 4096 × 768; CLIP's MLP 257 × 4096. bf16 is 2 bytes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opdoc_testing import ROOT, keys_under, parameter_names

BF16 = 2


def test_linear_q_projection_at_prefill(evaluator):
    no_bias = evaluator.evaluate_at("Linear", "lm_prefill", "no_bias")
    assert no_bias["tensor_flops"] == 2 * 8192 * 1280 * 1280 == 26_843_545_600
    assert no_bias["cuda_flops"] == 0
    assert no_bias["parameters"] == 1280 * 1280 == 1_638_400
    # reads the (8192, 1280) input and the weight, writes the (8192, 1280) output
    assert no_bias["io_read_bytes"] == (8192 * 1280 + 1280 * 1280) * BF16 == 24_248_320
    assert no_bias["io_write_bytes"] == no_bias["peak"] == 8192 * 1280 * BF16 == 20_971_520
    bias = evaluator.evaluate_at("Linear", "lm_prefill", "bias")
    assert bias["cuda_flops"] == 8192 * 1280 == 10_485_760  # one add per output element
    assert bias["parameters"] == 1280 * 1280 + 1280 == 1_639_680


def test_activation_variants_on_clip_mlp(evaluator):
    elements = 257 * 4096
    quick = evaluator.evaluate_at("Activation", "clip_mlp_act", "quick_gelu")
    assert quick["cuda_flops"] == (1 + 4 + 1) * elements == 6_316_032  # scale, sigmoid, multiply
    # the sigmoid and the product are alive together (the scaled copy is freed by then), as are the
    # scaled copy and the sigmoid: two tensors of the input's size
    assert quick["peak"] == 2 * elements * BF16 == 4_210_688
    assert quick["activation_bytes"] == 3 * elements * BF16
    silu = evaluator.evaluate_at("Activation", "clip_mlp_act", "silu")
    assert silu["cuda_flops"] == 5 * elements and silu["peak"] == elements * BF16


def test_layer_norm_on_sam_tokens(evaluator):
    values = evaluator.evaluate_at("LayerNorm", "sam_tokens")
    # 7 per element (statistics, normalisation, gain, shift) and 4 per row
    assert values["cuda_flops"] == 7 * 4096 * 768 + 4 * 4096 == 22_036_480
    assert values["parameters"] == 2 * 768
    # output plus a mean and a 1/sigma per row
    assert values["peak"] == (4096 * 768 + 2 * 4096) * BF16 == 6_307_840


def test_composites_built_from_blocks_keep_their_numbers(evaluator):
    mlp = evaluator.evaluate_at("DeepseekV2MLP", "prefill")
    assert mlp["tensor_flops"] == 3 * 2 * 8192 * 1280 * 6848 == 430_838_906_880  # gate, up, down
    assert mlp["cuda_flops"] == (5 + 1) * 8192 * 6848 == 336_592_896  # SiLU and the gating multiply
    assert mlp["peak"] == 3 * 8192 * 6848 * BF16  # act, up and their product
    sam = evaluator.evaluate_at("MLPBlock", "base_view")
    assert sam["cuda_flops"] == 6 * 4096 * 3072 + 4096 * 768 == 78_643_200  # biases and GELU
    clip = evaluator.evaluate_at("NoTPFeedForward", "base_view")
    # 257 tokens: fc1 bias (1) + quick_gelu (6) per hidden element, fc2 bias per output element
    assert clip["cuda_flops"] == 7 * 257 * 4096 + 257 * 1024 == 7_631_872
    # inside quick_gelu: fc1's output, the scaled copy and the sigmoid
    assert clip["peak"] == 3 * 257 * 4096 * BF16 == 6_316_032


def test_composite_parameter_names_are_the_checkpoint_names(evaluator, index):
    # children contribute their parameters under the child's name, as torch's named_parameters does
    assert parameter_names(evaluator, "DeepseekV2MLP", with_children=True) == keys_under(index, "model.layers.0.mlp.")
    assert parameter_names(evaluator, "DeepseekV2MLP", with_children=True) == {
        "gate_proj.weight", "up_proj.weight", "down_proj.weight"}


def _library_source(op: str, cut: str) -> list[str]:
    """A fresh process's view of a library op's source: its file, its signature up to `cut`, and
    whether torch got imported on the way."""
    code = (
        "import sys\n"
        "from opdoc.pipeline import Paths, load\n"
        "from opdoc.source import class_source\n"
        "catalog, _ = load(Paths())\n"
        f"source = class_source(catalog.specs[{op!r}], catalog)\n"
        f"print(source.file, source.signature.split({cut!r})[0], 'torch' in sys.modules)\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def test_library_class_is_read_without_importing_it():
    assert _library_source("Linear", "(") == ["torch/nn/modules/linear.py", "def", "__init__", "False"]


def _tiny_copy(tmp_path):
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    return tmp_path / "specs" / "deepseek_ocr"


def _build(root) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "opdoc", "build", "--check", "--root", str(root),
                             "--site", str(root / "site")], cwd=ROOT, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("old, new, message", [
    # a library the model does not declare
    ("libraries: [torch.nn]", "libraries: []",
     "Linear.yaml:15: implementation: 'torch.nn.modules.linear.Linear' is outside the model package"),
    # harness arguments for a variant the op does not have
    ("    no_bias: {bias: false}", "    nobias: {bias: false}",
     "Linear.yaml:67: harness.variants.nobias: 'nobias' is not one of this op's variants (no_bias, bias)"),
])
def test_bad_block_declarations_are_reported(tmp_path, old, new, message):
    specs = _tiny_copy(tmp_path)
    target = specs / ("model.yaml" if old.startswith("libraries") else "Linear.yaml")
    text = target.read_text(encoding="utf-8")
    assert old in text
    target.write_text(text.replace(old, new, 1), encoding="utf-8")
    code, output = _build(tmp_path)
    assert code == 1 and "Traceback" not in output
    assert message in output


@pytest.mark.parametrize("op, cls", [("Linear", "torch.nn.Linear"), ("LayerNorm", "torch.nn.LayerNorm"),
                                     ("Conv2d", "torch.nn.Conv2d")])
def test_a_library_class_documents_exactly_its_constructor_parameters(op, cls):
    """The build never reads torch (the docs build without it), so the installed class's signature is
    compared with the spec's documented parameters here."""
    import importlib
    import inspect

    import yaml

    module, _, name = cls.rpartition(".")
    signature = inspect.signature(getattr(importlib.import_module(module), name).__init__)
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "specs" / "deepseek_ocr" / f"{op}.yaml").read_text())
    assert list(spec["constructor"]["parameters"]) == [p for p in signature.parameters if p != "self"]
    # the implementation names the module that defines the class (the build does not read it)
    where, _, defined = spec["implementation"].rpartition(".")
    assert getattr(importlib.import_module(where), defined) is getattr(importlib.import_module(module), name)


# ------------------------------------------------------------------ scaled-dot-product attention (scope sdpa)
FP32 = 4


def _sdpa(evaluator, example, variant, kernel, **overrides):
    binding = evaluator.binding("sdpa", example, overrides or None)
    return evaluator.evaluate("scaled_dot_product_attention", binding, variant, kernel).totals


def test_sdpa_on_clip_view_both_kernels(evaluator):
    # CLIP's Base view: B=1, 16 heads of 64, 257 queries and 257 keys
    heads, scores = 16 * 257 * 64, 16 * 257 * 257  # elements of one (B, H, S, d_h) and one (B, H, S, S_k) tensor
    fused = _sdpa(evaluator, "clip_view", "packed_qkv", "fused")
    assert fused["tensor_flops"] == 4 * 1 * 16 * 257 * 257 * 64 == 270_536_704  # Q·Kᵀ and P·V
    assert fused["cuda_flops"] == 6 * scores == 6_340_704  # scale and softmax per score
    # the output and the fp32 log-sum-exp of each row: 526,336 + 16,448
    assert fused["peak"] == heads * BF16 + 16 * 257 * FP32 == 542_784
    assert fused["io_read_bytes"] == 3 * heads * BF16 == 1_579_008  # q, k and v once
    eager = _sdpa(evaluator, "clip_view", "packed_qkv", "eager")
    assert eager["tensor_flops"] == fused["tensor_flops"]
    # q and kᵀ each scaled by d_h^(-1/4) instead of the scores, then the softmax: 526,336 + 5,283,920
    assert eager["cuda_flops"] == 2 * heads + 5 * scores == 5_810_256
    # softmax moment: fp32 q, k, v, scaled q (4 × 1,052,672) and fp32 scores and probabilities (2 × 4,227,136)
    assert eager["peak"] == 4 * heads * FP32 + 2 * scores * FP32 == 12_664_960


def test_sdpa_copies_strided_inputs_only_for_several_images(evaluator):
    # B=2 Base views of CLIP: token-major q, k, v do not fold (B, H) into one bmm axis as a view
    heads, scores = 2 * 16 * 257 * 64, 2 * 16 * 257 * 257
    packed = _sdpa(evaluator, "clip_view", "packed_qkv", "eager", B=2)
    # created: q32, k32, v32, q_scaled, k_scaled (5), the copies of q, kᵀ and v (3), attn32 — fp32 head tensors;
    # scores and probs32 in fp32, probs in bf16; the bf16 output
    assert (packed["activation_bytes"] == 9 * heads * FP32 + 2 * scores * FP32 + scores * BF16 + heads * BF16
            == 41_136_448)
    one = _sdpa(evaluator, "clip_view", "packed_qkv", "eager")  # B=1: the copies have no elements
    assert one["activation_bytes"] == 6 * (heads // 2) * FP32 + 2 * (scores // 2) * FP32 + (scores // 2) * BF16 \
        + (heads // 2) * BF16 == 17_410_208
    assert packed["cuda_flops"] == 2 * one["cuda_flops"]  # copies are no arithmetic


def test_sdpa_with_a_dense_mask_on_sam_global(evaluator):
    # SAM's global block on a Base view: 12 heads of 64 over 4096 patches, the bias as a bf16 float mask
    heads, scores = 12 * 4096 * 64, 12 * 4096 * 4096
    fused = _sdpa(evaluator, "sam_global", "bias_mask", "fused")
    assert fused["tensor_flops"] == 4 * 12 * 4096 * 4096 * 64 == 51_539_607_552
    assert fused["cuda_flops"] == 7 * scores == 1_409_286_144  # scale, mask add, softmax (5)
    assert fused["io_read_bytes"] == 3 * heads * BF16 + scores * BF16 == 421_527_552  # q, k, v and the mask
    eager = _sdpa(evaluator, "sam_global", "bias_mask", "eager")
    # mask-add moment: fp32 q, k, v, scaled q (4 × 12,582,912) and fp32 scores plus masked scores (2 × 805,306,368)
    assert eager["peak"] == 4 * heads * FP32 + 2 * scores * FP32 == 1_660_944_384
    # scale q and kᵀ (2 × 3,145,728), the mask add (1) and the softmax (5) per score
    assert eager["cuda_flops"] == 2 * heads + scores + 5 * scores == 1_214_251_008


# ------------------------------------------------------------------ RMSNorm (torch.nn.RMSNorm)


def test_rms_norm_on_the_decoders_tokens(evaluator):
    values = evaluator.evaluate_at("RMSNorm", "lm_tokens")
    rows, elements = 8192, 8192 * 1280
    # square (1), mean (1 per element read, 1 divide per row), eps (1 per row), rsqrt (1 per row),
    # normalise (1), gain (1)
    assert values["cuda_flops"] == 4 * elements + 3 * rows == 41_967_616
    assert values["parameters"] == 1280
    # gain multiply: fp32 copy, fp32 normalised values, their fp32 product and the fp32 1/RMS per row
    assert values["peak"] == 3 * elements * FP32 + rows * FP32 == 125_861_888
    # the vendor's norm: same FLOPs, but it casts back before the gain, so its peak is the fp32 copy, the
    # fp32 normalised values and two per-row statistics
    vendor = evaluator.evaluate_at("DeepseekV2RMSNorm", "prefill")
    assert vendor["cuda_flops"] == values["cuda_flops"]
    assert vendor["peak"] == 2 * elements * FP32 + 2 * rows * FP32 == 83_951_616 < values["peak"]


# ------------------------------------------------------------------ composites built on the SDPA block


def test_attention_composites_on_the_sdpa_block_keep_their_numbers(evaluator):
    # CLIP, Base view: 257 tokens of width 1024, 16 heads of 64
    clip = evaluator.evaluate_at("NoTPAttention", "base_view")
    assert clip["tensor_flops"] == 8 * 257 * 1024**2 + 4 * 16 * 257**2 * 64 == 2_426_408_960
    # the two biases (3h + h per token) and SDPA's scale and softmax
    assert clip["cuda_flops"] == 4 * 257 * 1024 + 6 * 16 * 257**2 == 7_393_376
    # fused: qkv (257 × 3072), the head outputs and the projected output, all bf16
    assert clip["peak"] == (257 * 3072 + 257 * 1024 + 257 * 1024) * BF16 == 2_631_680
    clip_eager = evaluator.evaluate_at("NoTPAttention", "base_view", kernel="eager")
    assert clip_eager["peak"] == 257 * 3072 * BF16 + 12_664_960 == 14_243_968  # qkv under SDPA's math peak
    # SAM, a global block on the Base view: 4096 tokens of width 768, 12 heads of 64, a 64 × 64 grid
    sam = evaluator.evaluate_at("Attention", "base_view")
    assert (sam["tensor_flops"] == 8 * 4096 * 768**2 + 4 * 12 * 4096**2 * 64 + 2 * 12 * 4096 * (64 + 64) * 64
            == 71_672_266_752)
    assert sam["parameters"] == 4 * 768**2 + 4 * 768 + 2 * 127 * 64 == 2_378_624  # qkv, proj, two tables
    # fused: qkv, the two bias terms (12 × 4096 × 64 each), the dense bias, the head outputs and the output
    kept = 4096 * 2304 * BF16 + 2 * 12 * 4096 * 64 * BF16 + 12 * 4096**2 * BF16
    assert sam["peak"] == kept + 2 * 4096 * 768 * BF16 == 446_693_376
    sam_eager = evaluator.evaluate_at("Attention", "base_view", kernel="eager")
    assert sam_eager["peak"] == kept + 1_660_944_384 == 2_095_054_848  # SDPA's mask-add moment on top


def test_sdpa_and_rms_norm_document_exactly_their_library_signatures():
    """The build never reads torch, so the spec's parameters are compared with torch here: the function's
    from its documented signature (a C++ operator has no Python signature), the class's from __init__."""
    import inspect
    import re

    import torch.nn
    import torch.nn.functional as F
    import yaml

    folder = Path(__file__).resolve().parents[1] / "specs" / "deepseek_ocr"
    sdpa = yaml.safe_load((folder / "scaled_dot_product_attention.yaml").read_text(encoding="utf-8"))
    first = re.match(r"scaled_dot_product_attention\(([^)]*)\)", " ".join(F.scaled_dot_product_attention.__doc__.split()))
    documented = [part.split("=")[0].strip() for part in first.group(1).split(",")]
    assert list(sdpa["constructor"]["parameters"]) == documented
    rms = yaml.safe_load((folder / "RMSNorm.yaml").read_text(encoding="utf-8"))
    signature = inspect.signature(torch.nn.RMSNorm.__init__)
    assert list(rms["constructor"]["parameters"]) == [p for p in signature.parameters if p != "self"]


def test_a_library_function_is_named_as_a_function_without_importing_it():
    assert _library_source("scaled_dot_product_attention", ",") == [
        "torch/nn/functional.py", "def", "scaled_dot_product_attention(query", "False"]


@pytest.mark.parametrize("op, kind", [("Linear", "class"), ("scaled_dot_product_attention", "function")])
def test_a_library_op_page_says_whether_torch_defines_a_class_or_a_function(op, kind):
    # torch.nn.Linear is a class; torch.nn.functional.scaled_dot_product_attention is a function
    page = (ROOT / "site" / f"op-{op}.md").read_text(encoding="utf-8")
    assert f"opdoc profiles the library's own {kind}, unchanged" in page
