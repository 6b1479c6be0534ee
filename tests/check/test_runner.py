"""`opdoc check`: the runner's plan, comparisons, report and command line (the full run is the CI gate
`opdoc check` in scripts/gate.sh; here a few ops run with --quick)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sympy
import torch

from opdoc.check import RULES
from opdoc.check.harness import HarnessError, HarnessRegistry, build, harness, load_model_harness
from opdoc.check.runner import (
    TOLERANCES, Point, Report, compare, format_table, plan, point_binding, points_for, run, run_check,
)
from opdoc.pipeline import Paths, load

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loaded():
    catalog, ev = load(Paths(root=ROOT))
    load_model_harness(catalog)
    return catalog, ev


def by_name(binding: dict) -> dict[str, int]:
    return {s.name: int(v) for s, v in binding.items()}


# ---------------------------------------------------------------- the plan


def test_every_spec_has_a_harness(loaded):
    catalog, _ = loaded
    assert [op for op in catalog.specs if op not in harness] == []


def test_default_points_cover_the_polynomials(loaded):
    """At least three S (the full example among them), B in {1, 2}, P zero and not; vision at both views and B=2."""
    _, ev = loaded
    language = [by_name(point_binding(ev, "language", p)) for p in points_for(ev, "LlamaAttention", quick=False)]
    assert len({v["S"] for v in language}) >= 3 and 8192 in {v["S"] for v in language}
    assert {v["B"] for v in language} == {1, 2}
    assert 0 in {v["P"] for v in language} and any(v["P"] > 0 and v["S"] > 1 for v in language)
    vision = [by_name(point_binding(ev, "sam", p)) for p in points_for(ev, "PatchEmbed", quick=False)]
    assert {(v["H_img"], v["B"]) for v in vision} >= {(1024, 1), (640, 1), (1024, 2), (640, 2)}


def test_plan_checks_both_kernels_and_every_variant(loaded):
    _, ev = loaded
    tasks = plan(ev, ["LlamaAttention", "DeepseekV2DecoderLayer", "DeepseekV2MLP"], quick=False)
    kinds = {(t.op, t.variant, t.kernel) for t in tasks}
    # LlamaAttention is one path (the eager class): each variant once, with the model's kernel
    assert {("LlamaAttention", v, "fused") for v in ("per_layer", "shared_tables")} == \
        {k for k in kinds if k[0] == "LlamaAttention"}
    assert {("DeepseekV2DecoderLayer", v, k) for v in ("dense", "moe") for k in ("eager", "fused")} <= kinds
    assert {k for op, _, k in kinds if op == "DeepseekV2MLP"} == {"fused"}  # the kernel does not matter there
    # both kernels run under FakeTensorMode (CPU semantics; the harness picks the math path for eager);
    # real routing on cpu
    assert {t.device for t in tasks if t.kernel == "eager"} == {"fake"}
    assert {t.device for t in tasks if t.kernel == "fused"} >= {"fake", "cpu"}


def test_point_binding_recomputes_dependent_symbols(loaded):
    _, ev = loaded
    tiny = by_name(point_binding(ev, "sam", Point.at("base_view", H_img=512, W_img=512)))
    assert (tiny["H_p"], tiny["S"]) == (32, 1024)
    # num_key_value_heads follows the heads: 4 query heads cannot share 10 key/value heads (a limit)
    small = by_name(point_binding(ev, "language", Point.at("prefill", config={"hidden_size": 64,
                                                                              "num_attention_heads": 4,
                                                                              "num_key_value_heads": 4})))
    assert (small["h"], small["d_h"]) == (64, 16)


# ---------------------------------------------------------------- harness


def test_harness_registry_refuses_a_second_builder():
    registry = HarnessRegistry()
    registry("Op")(lambda ctx: None)
    with pytest.raises(HarnessError, match="duplicate harness for Op"):
        registry("Op")(lambda ctx: None)
    with pytest.raises(HarnessError, match="no harness for Other"):
        registry.get("Other")


def test_harness_rejects_a_binding_the_config_disagrees_with(loaded):
    _, ev = loaded
    binding = {**ev.binding("language", "prefill"), ev.catalog.symbols["h"]: 1024}
    with pytest.raises(HarnessError, match="h: formula 1024, module 1280"):
        build("DeepseekV2MLP", binding)


def test_harness_builds_the_attention_inputs_the_spec_names(loaded):
    _, ev = loaded
    binding = {**ev.binding("language", "decode"), ev.catalog.symbols["B"]: 2}
    module, call = build("LlamaAttention", binding, "fused", "meta", variant="per_layer")
    out, _, (k, v) = call()
    assert out.shape == (2, 1, 1280) and out.dtype == torch.bfloat16
    assert k.shape == v.shape == (2, 10, 8192, 128)
    assert module.q_proj.weight.dtype == torch.bfloat16 and module.rotary_emb.inv_freq.dtype == torch.float32


def test_spec_without_harness_is_reported(monkeypatch):
    monkeypatch.delitem(harness._builders, "DeepseekV2MLP")
    report = run(ROOT, ["DeepseekV2MLP"], quick=True, independent=False, progress=False)
    assert not report.ok and any("DeepseekV2MLP: has a spec but no harness" in p for p in report.problems)


# ---------------------------------------------------------------- comparisons and report


def test_compare_is_exact_unless_a_tolerance_says_otherwise():
    assert compare("tensor_flops", sympy.Integer(10), 10) == (0.0, "pass")
    assert compare("tensor_flops", sympy.Integer(10), 11)[1] == "FAIL"
    assert compare("tensor_flops", sympy.Rational(21, 2), 10)[1] == "FAIL"  # a non-integer formula never passes
    assert compare("peak_bytes", 100, 100)[1] == "pass"
    assert all(t.why for t in TOLERANCES.values())


def test_quick_check_passes_and_records_the_kernel_beside_the_peak():
    report = run(ROOT, ["DeepseekV2MLP", "LlamaAttention", "LlamaFlashAttention2"], quick=True, independent=False,
                 progress=False)
    assert report.ok, format_table(report)
    peaks = {r.op: r.note for r in report.rows if r.quantity == "peak_bytes" and r.point.startswith("B=1 S=8192")
             and r.variant == "per_layer"}
    assert "math: aten._softmax over 1×10×8192×8192" in peaks["LlamaAttention"]
    assert "aten._scaled_dot_product_flash_attention_for_cpu" in peaks["LlamaFlashAttention2"]
    quantities = {r.quantity for r in report.rows}
    assert quantities == set(TOLERANCES)
    table = format_table(report)
    assert "tolerances (relative; 0 = exact):" in table and "all formulas match the modules" in table


def test_real_routing_is_uneven_and_still_exact():
    report = run(ROOT, ["DeepseekV2MoE"], quick=False, independent=False, progress=False)
    assert report.ok, format_table(report)
    real = [r for r in report.rows if r.device == "cpu" and r.quantity == "tensor_flops"]
    assert real and "real routing" in real[0].note
    low, high = (int(n) for n in real[0].note.split("real routing: ")[1].split(" slots")[0].split(".."))
    assert low < high  # the router did not spread the tokens evenly, and the formula still holds


def test_unknown_op_fails_loudly_naming_it(monkeypatch):
    monkeypatch.delitem(RULES._rules, torch.ops.aten.silu)
    report = run(ROOT, ["DeepseekV2MLP"], quick=True, independent=False, progress=False)
    unknown = [r for r in report.failed if r.quantity == "unknown ops"]
    assert unknown and "aten.silu" in unknown[0].note and not report.ok


def test_command_line_json_and_report_file(tmp_path, capsys):
    target = tmp_path / "report.json"
    code = run_check(["DeepseekV2RMSNorm", "--quick", "--no-independent", "--format", "json",
                      "--root", str(ROOT), "--report", str(target)])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["quantity"] for r in rows} == set(TOLERANCES) and all(r["status"] == "pass" for r in rows)
    saved = json.loads(target.read_text())
    assert saved["ok"] and saved["tolerances"]["tensor_flops"]["relative"] == 0.0


def test_command_line_fails_on_an_unknown_op_name(tmp_path, capsys):
    assert run_check(["NoSuchOp", "--quick", "--no-independent", "--root", str(ROOT),
                      "--report", str(tmp_path / "report.json")]) == 1
    assert "NoSuchOp: no spec with this name" in capsys.readouterr().err


def test_cuda_without_a_gpu_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_check(["--device", "cuda", "--root", str(ROOT)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_report_json_lists_rows_and_tolerances():
    report = Report([], ["a problem"], 1.0, "cpu", {"torch": torch.__version__})
    data = report.to_json()
    assert data["ok"] is False and set(data["tolerances"]) == set(TOLERANCES)


# ---------------------------------------------------------------- independent implementations


def test_transformers_llama_attention_matches_the_spec(loaded):
    pytest.importorskip("transformers")
    from opdoc.models.deepseek_ocr.independent import comparisons

    _, ev = loaded
    chosen = [c for c in comparisons(quick=True) if c.op in ("LlamaAttention", "LlamaFlashAttention2")]
    assert {(c.op, c.source) for c in chosen} == {("LlamaAttention", "transformers eager"),
                                                  ("LlamaFlashAttention2", "transformers sdpa")}
    rows = [r for c in chosen for r in c.rows(ev)]
    assert rows and all(r.status == "pass" for r in rows if r.op == "LlamaAttention")
    # transformers' sdpa path has no position-order check before a prefill: those quantities are
    # information; the matrix products, parameters, cache and peak still match exactly
    flash = {r.quantity: r.status for r in rows if r.op == "LlamaFlashAttention2"}
    assert {q for q, status in flash.items() if status == "info"} == {"cuda_flops", "io_read_bytes", "io_write_bytes",
                                                                      "activation_bytes"}
    assert all(status in ("pass", "info") for status in flash.values())


def test_segment_anything_patch_embed_matches_the_spec(loaded):
    from opdoc.models.deepseek_ocr.independent import Missing, comparisons, segment_anything_image_encoder

    try:
        segment_anything_image_encoder()
    except Missing as exc:
        pytest.skip(str(exc))
    _, ev = loaded
    rows = [r for c in comparisons(quick=True) if c.op == "PatchEmbed" for r in c.rows(ev)]
    assert rows and all(r.status == "pass" for r in rows)


def test_cuda_code_path_on_cpu(monkeypatch, tmp_path):
    """What `--device cuda` runs, exercised on CPU with the CUDA calls replaced (no GPU here)."""
    from opdoc.check import memory
    from opdoc.check.runner import run_cuda

    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "no GPU (test)")
    monkeypatch.setattr(memory, "cuda_peak", lambda fn: (fn(), 123)[1])
    result = run_cuda(ROOT, ["DeepseekV2RMSNorm"], repeats=2, warmup=1, progress=False, device="cpu")
    assert result["device"] == "no GPU (test)"
    entries = result["results"]
    assert [e["example"] for e in entries] == ["prefill", "decode"] and not any("error" in e for e in entries)
    prefill = entries[0]
    assert prefill["peak_bytes"] == 123 and prefill["formula_peak_bytes"] == prefill["tracked_peak_bytes"]
    assert prefill["median_seconds"] > 0 and prefill["forward_flops"] > 0
