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


def test_library_class_is_read_without_importing_it():
    code = (
        "import sys\n"
        "from opdoc.pipeline import Paths, load\n"
        "from opdoc.source import class_source\n"
        "catalog, _ = load(Paths())\n"
        "source = class_source(catalog.specs['Linear'], catalog)\n"
        "print(source.file, source.signature.split('(')[0], 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["torch/nn/modules/linear.py", "def", "__init__", "False"]


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
