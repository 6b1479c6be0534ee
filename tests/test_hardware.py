"""The GPU table and the runtime counts: published figures read exactly, and located errors for bad files."""

import shutil
from pathlib import Path

import pytest
import sympy

from opdoc_testing import ROOT, TINY
from opdoc.cli import main
from opdoc.hardware import load_hardware, load_runtime
from opdoc.pipeline import Paths, load
from opdoc.spec import SpecError

HARDWARE = ROOT / "specs" / "hardware.yaml"
RUNTIME = ROOT / "specs" / "runtime.yaml"


def test_published_figures_are_read_exactly():
    hw = load_hardware(HARDWARE, "specs/hardware.yaml")
    h100, h200 = hw.gpu("H100"), hw.gpu("H200")
    # H100 datasheet: BF16 Tensor Core 1,979 TFLOPS with sparsity; dense is half: 989.5 TFLOPS, exactly
    assert h100.tensor_flops == sympy.Rational(1979, 2) * 10**12 == 989_500_000_000_000
    assert h100.bandwidth == 3_350_000_000_000  # 3.35 TB/s
    assert h200.bandwidth == 4_800_000_000_000  # 4.8 TB/s: same chip, faster HBM3e
    assert h200.tensor_flops == h100.tensor_flops
    assert h200.capacity == 141 * 10**9 and h100.capacity == 80 * 10**9
    # the ridge point (FLOP per byte where compute and bandwidth take equally long): 989.5 / 3.35 = 295.37
    assert float(h100.tensor_flops / h100.bandwidth) == pytest.approx(295.37, abs=0.01)
    assert hw.launch_seconds == sympy.Rational(5, 10**6) and hw.sync_seconds == sympy.Rational(10, 10**6)


def test_every_listed_gpu_cites_a_public_source():
    hw = load_hardware(HARDWARE, "specs/hardware.yaml")
    assert {g.name for g in hw.gpus} >= {"H100", "H200", "A100", "B200", "L40S", "RTX4090"}
    for gpu in hw.gpus:
        for figure in (gpu.table.tensor_tflops, gpu.table.cuda_tflops, gpu.table.bandwidth_tbs, gpu.table.memory_gb):
            source = hw.table.sources[figure.source]
            assert source.url.startswith("https://") and source.title


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hardware.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = HARDWARE.read_text(encoding="utf-8")


@pytest.mark.parametrize("old, new, expected", [
    ("    title: H200 SXM 141 GB\n", "    title: H200 SXM 141 GB\n    tdp_w: 700\n",
     "gpus.H200.tdp_w: unknown key; remove it or check its spelling"),
    ("{value: 4.8, source: h200_page", "{value: 4.8, source: h200_pgae",
     "gpus.H200.bandwidth_tbs.source: unknown source 'h200_pgae'"),
    ("{value: 3.35, source: h100_datasheet", "{value: -3.35, source: h100_datasheet",
     "gpus.H100.bandwidth_tbs.value: Input should be greater than 0"),
    ("url: https://www.nvidia.com/en-us/data-center/h200/", "url: www.nvidia.com/en-us/data-center/h200/",
     "sources.h200_page.url: expected a public https:// address"),
    ("    memory_gb: {value: 24, source: ada_whitepaper}\n", "",
     "gpus.RTX4090.memory_gb: required field is missing"),
])
def test_bad_hardware_table_gives_a_located_error(tmp_path, old, new, expected):
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(SpecError) as error:
        load_hardware(path, "specs/hardware.yaml")
    message = str(error.value)
    assert expected in message
    line = message.split(":")[1]
    changed = GOOD.replace(old, new, 1).splitlines()
    # the reported line holds the offending key (or, for a missing field, its parent GPU)
    field = expected.split(":")[0].split(".")[-1]
    assert field in changed[int(line) - 1] or field == "memory_gb"


def test_build_with_a_broken_hardware_table_exits_1_without_traceback(tmp_path, capsys):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    table = tmp_path / "specs" / "hardware.yaml"
    table.write_text(table.read_text(encoding="utf-8").replace("bandwidth_tbs:", "bandwith_tbs:"), encoding="utf-8")
    code = main(["build", "--root", str(tmp_path), "--site", str(tmp_path / "site")])
    output = "".join(capsys.readouterr())
    assert code == 1
    assert "Traceback" not in output
    assert "specs/hardware.yaml:" in output and "bandwith_tbs: unknown key" in output


CATALOG, EV = load(Paths(root=ROOT))


def runtime_with(tmp_path: Path, old: str, new: str):
    text = RUNTIME.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "runtime.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_runtime(path, "specs/runtime.yaml", CATALOG.symbols, CATALOG.specs, {"causal_tiles"}, "deepseek_ocr")


@pytest.mark.parametrize("old, new, expected", [
    ("  DeepseekV2MLP:\n", "  DeepseekV2MPL:\n", "ops.DeepseekV2MPL: no spec for op 'DeepseekV2MPL'"),
    ("flash_softmax: causal_tiles", "flash_softmx: causal_tiles", "'flash_softmx' is not an operation of LlamaFlashAttention2"),
    ("flash_softmax: causal_tiles", "flash_softmax: causal_tile", "unknown kernel model 'causal_tile'"),
    ("launches: 14\n", "launches: 14 + E_runn\n", "ops.DeepseekV2MoE.launches: unknown symbol 'E_runn'"),
    ("past_v: counted", "past_vv: counted", "'past_vv' is not an input tensor of LlamaFlashAttention2"),
    ("model: deepseek_ocr", "model: tiny", "written for model 'tiny'"),
])
def test_bad_runtime_table_gives_a_located_error(tmp_path, old, new, expected):
    with pytest.raises(SpecError) as error:
        runtime_with(tmp_path, old, new)
    assert expected in str(error.value)
    assert str(error.value).startswith("specs/runtime.yaml:")


def test_runtime_counts_parse_into_formulas():
    runtime = load_runtime(RUNTIME, "specs/runtime.yaml", CATALOG.symbols, CATALOG.specs, {"causal_tiles"},
                           "deepseek_ocr")
    P, S = CATALOG.symbols["P"], CATALOG.symbols["S"]
    attention = runtime.ops["LlamaFlashAttention2"].launches
    # 15 always; 2 cache concatenations once a cache exists; 3 position checks at prefill only
    assert attention.xreplace({P: 8191, S: 1}) == 17
    assert attention.xreplace({P: 0, S: 8192}) == 18
    assert runtime.ops["LlamaRotaryEmbedding"].launches == 9  # the table every layer rebuilds, its own op
