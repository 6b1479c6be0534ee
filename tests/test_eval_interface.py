"""`opdoc eval`, `export`, `list` and `opdoc.api`: right numbers under any override, clear errors otherwise.

Each expected number carries its arithmetic from DeepSeek-OCR's configuration (config.json of
deepseek-ai/DeepSeek-OCR): h=1280, d_e=896, E=64, k=6, E_s=2; SAM-B patch 16, width 768, 3 channels.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opdoc import api
from opdoc.cli import main as run
from opdoc.spec import SpecError
from opdoc_testing import ROOT


def test_an_overridden_view_size_rederives_the_patch_grid():
    """`--set H_img=640 --set W_img=640` at base_view is the 640 px view everywhere (FLOPs and I/O alike)."""
    values = api.evaluate("PatchEmbed", "base_view", H_img=640, W_img=640)
    # grid 640/16 = 40 per side, 1600 patches; conv FLOPs 2 × B × C_in × p² × h × patches
    assert values["tensor_flops"] == 2 * 1 * 3 * 16 * 16 * 768 * 1600 == 1_887_436_800
    # the output (B, 1600, 768) bf16 is written once by the conv and read by the permute (and more):
    # at least its 1600 × 768 × 2 bytes, and not the 1024 px view's 4096 × 768 × 2
    assert values["io_write_bytes"] < 2 * 4096 * 768 * 2


def test_a_batched_moe_decode_rederives_the_experts_that_run():
    """B=32 decode: min(E, B·S·k) = min(64, 32 × 1 × 6 = 192) = 64 experts run, so every expert's weights are read."""
    one = api.evaluate("DeepseekV2MoE", "decode")
    batched = api.evaluate("DeepseekV2MoE", "decode", B=32)
    expert_weights = 3 * 1280 * 896 * 2  # gate, up and down of one expert, bf16: 6,881,280 bytes
    assert batched["io_read_bytes"] - one["io_read_bytes"] > (64 - 6) * expert_weights  # B=1 runs k=6 experts
    assert batched["io_read_bytes"] > 400_000_000  # not the 62.73 MB of a B=1 routing


@pytest.mark.parametrize("value, says", [
    ("-5", "must be a whole number >= 1; got -5"),
    ("1.5", "must be a whole number >= 1; got 3/2"),
    ("0", "must be a whole number >= 1; got 0"),
    ("8193", "P + S = 8193 exceeds max_position_embeddings = 8192"),
])
def test_sizes_that_make_no_sense_are_errors(value, says, capsys):
    assert run(["eval", "DeepseekV2MLP", "--root", str(ROOT), "--example", "prefill", "--set", f"S={value}"]) == 1
    err = capsys.readouterr().err
    assert says in err and "no file was changed" not in err


def test_beyond_the_trained_context_only_on_request():
    # 2 × B × S × h × d_ff per projection, three projections: 6 × 1 × 8193 × 1280 × 6848
    values = api.evaluate("DeepseekV2MLP", "prefill", S=8193, beyond_limits=True)
    assert values["tensor_flops"] == 6 * 8193 * 1280 * 6848
    with pytest.raises(SpecError, match="exceeds max_position_embeddings"):
        api.evaluate("DeepseekV2MLP", "prefill", S=8193)


def test_a_configuration_override_rederives_the_symbols_and_keeps_heads_whole(capsys):
    # hidden_size 2560 with 10 heads: h = 2560, d_h = 256; MLP 6 × B × S × h × d_ff at S=16
    values = api.evaluate("DeepseekV2MLP", "prefill", hidden_size=2560, S=16)
    assert values["tensor_flops"] == 6 * 16 * 2560 * 6848
    with pytest.raises(SpecError, match="H \\* d_h = 2040 differs from h = 2048"):
        api.evaluate("DeepseekV2MLP", "prefill", hidden_size=2048)


def test_eval_json_holds_exact_integers_the_binding_and_units(capsys):
    assert run(["eval", "DeepseekV2MLP", "--root", str(ROOT), "--example", "prefill", "--set", "S=4096",
                "--format", "json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["binding"]["S"] == 4096 and record["binding"]["h"] == 1280
    # 6 × B × S × h × d_ff = 6 × 4096 × 1280 × 6848 = 215,419,453,440
    assert record["quantities"]["tensor_flops"] == {"value": 215_419_453_440, "unit": "FLOPs",
                                                   "formula": "6 × B × S × d_ff × h"}
    assert record["quantities"]["parameters"]["unit"] == "parameters"


def test_a_closed_pipe_is_not_an_error():
    """`opdoc eval X | head -3` ends quietly, without a BrokenPipeError traceback."""
    shell = f"{sys.executable} -m opdoc eval DeepseekV2MoE --root {ROOT} | head -3"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, cwd=ROOT)
    assert len(result.stdout.splitlines()) == 3
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_list_names_every_op_with_variants_and_examples(capsys):
    assert run(["list", "--root", str(ROOT), "--format", "json"]) == 0
    entries = {e["op"]: e for e in json.loads(capsys.readouterr().out)}
    assert set(entries["DeepseekV2DecoderLayer"]["variants"]) == {"dense", "moe"}
    assert {"base_view", "gundam_tile"} <= set(entries["PatchEmbed"]["examples"])


def test_export_filters_by_op_example_and_override(capsys):
    assert run(["export", "--root", str(ROOT), "--op", "DeepseekV2RMSNorm", "--example", "decode",
                "--set", "B=4"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    # RMSNorm per token: square h, mean h + 1, add eps 1, rsqrt 1, normalise h, gain h = 4h + 3;
    # decode S=1, B=4: 4 × (4 × 1280 + 3) = 20,492
    assert record["quantities"]["cuda_flops"]["value"] == 20_492


def test_api_formula_is_the_sympy_expression():
    import sympy

    B, S, h, d_ff = sympy.symbols("B S h d_ff", positive=True)
    assert sympy.expand(api.formula("DeepseekV2MLP", "tensor_flops") - 6 * B * S * h * d_ff) == 0


def test_the_api_never_imports_torch():
    code = "import sys; from opdoc import api; api.evaluate('DeepseekV2MLP'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_the_dtype_is_a_binding_and_bytes_follow_it():
    """LlamaAttention at decode keeps K and V for P + S = 8192 positions: 2 × B × H × 8192 × d_h elements."""
    elements = 2 * 1 * 10 * 8192 * 128  # 20,971,520
    assert api.evaluate("LlamaAttention", "decode")["kv_cache_bytes"] == elements * 2  # bf16
    assert api.evaluate("LlamaAttention", "decode", dtype="float32")["kv_cache_bytes"] == elements * 4
    with pytest.raises(SpecError, match="dtype=int3: expected one of bfloat16, float16, float32"):
        api.evaluate("LlamaAttention", "decode", dtype="int3")


def test_a_float32_model_builds(tmp_path, capsys):
    import shutil

    shutil.copytree(ROOT / "specs" / "deepseek_ocr", tmp_path / "specs" / "deepseek_ocr")
    model = tmp_path / "specs" / "deepseek_ocr" / "model.yaml"
    text = model.read_text(encoding="utf-8").replace("dtype: bfloat16", "dtype: float32", 1)
    model.write_text(text, encoding="utf-8")
    assert run(["build", "--root", str(tmp_path), "--site", str(tmp_path / "site")]) == 0
    page = (tmp_path / "site" / "op-DeepseekV2RMSNorm.md").read_text(encoding="utf-8")
    # the gain vector: h = 1280 fp32 elements, 4 bytes each = 5,120 bytes
    assert "5,120" in page and "fp32" in page
