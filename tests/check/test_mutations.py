"""The check bites: plant one known kind of error in a copy of the specs and `opdoc check` must fail,
naming the op and the quantity that is wrong (and pass on the untouched copy)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from opdoc.check.runner import Report, format_table, run

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs" / "deepseek_ocr"


def mutated(tmp_path: Path, op: str, edits: list[tuple[str, str]], drop_closed: tuple[str, ...] = ()) -> Path:
    """A copy of the spec folder with `edits` applied to op's YAML and the named closed forms removed
    (a closed form would otherwise stop the build before the check could run)."""
    folder = tmp_path / "deepseek_ocr"
    folder.mkdir()
    copied = with_children(op)
    for name in copied:  # only the op and what it is built from: parents' closed forms stay out
        shutil.copy(SPECS / f"{name}.yaml", folder)
    # Check points reserved for ops left out would name missing specs (an error): keep the others.
    model = yaml.safe_load((SPECS / "model.yaml").read_text(encoding="utf-8"))
    for scope in model["scopes"].values():
        scope["check"] = [p for p in scope.get("check", []) if not p.get("only") or set(p["only"]) & copied]
        # and so would examples shown only on their pages
        for name, example in list(scope["examples"].items()):
            if example.get("only"):
                example["only"] = [o for o in example["only"] if o in copied]
                if not example["only"]:
                    del scope["examples"][name]
    if model.get("modes", {}).get("op") not in copied:  # mode pages of an op left out would name a missing spec
        model.pop("modes", None)
    (folder / "model.yaml").write_text(yaml.safe_dump(model, sort_keys=False), encoding="utf-8")
    path = folder / f"{op}.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) >= 1, f"mutation target not found in {op}.yaml: {old}"
        text = text.replace(old, new)
    if drop_closed:
        head, block = text.split("\nclosed_forms:\n", 1)
        lines = block.split("\n")
        end = next(i for i, line in enumerate(lines) if not line.startswith("  "))
        kept = [line for line in lines[:end] if line.split(":")[0].strip() not in drop_closed]
        assert len(kept) == end - len(drop_closed), f"closed forms {drop_closed} not all in {op}.yaml"
        text = head + "\n" + ("closed_forms:\n" + "\n".join(kept) + "\n" if kept else "") + "\n".join(lines[end:])
    path.write_text(text, encoding="utf-8")
    return folder


def with_children(op: str) -> set[str]:
    spec = yaml.safe_load((SPECS / f"{op}.yaml").read_text(encoding="utf-8"))
    return {op}.union(*(with_children(child["op"]) for child in spec.get("children", [])))


def check(specs: Path, op: str) -> Report:
    return run(ROOT, [op], quick=True, independent=False, specs=specs, progress=False)


def assert_bites(report: Report, op: str, quantities: set[str], kernel: str | None = None) -> None:
    failed = {(r.op, r.quantity) for r in report.failed if kernel is None or r.kernel == kernel}
    assert not report.ok
    missing = {(op, q) for q in quantities} - failed
    assert not missing, f"the check did not flag {missing}; it flagged {sorted(failed)}"
    table = format_table(report)
    assert "CHECK FAILED" in table and "mismatches:" in table
    mismatches = table.split("mismatches:")[1]
    for quantity in quantities:
        assert re.search(rf"{op}\b.*: {quantity}: formula", mismatches), (op, quantity)


def test_untouched_copy_passes(tmp_path):
    folder = mutated(tmp_path, "DeepseekV2MLP", [])
    assert check(folder, "DeepseekV2MLP").ok


def test_shared_experts_replicated_per_shared_expert(tmp_path):
    """Seed 003's bug: the shared branch run once per shared expert, each of the full shared width,
    i.e. the tokens replicated E_s times: 25% too many expert FLOPs."""
    folder = mutated(tmp_path, "DeepseekV2MoE", [(
        "  - name: shared_experts\n    op: DeepseekV2MLP\n    bind: {d_ff: E_s*d_e}",
        "  - name: shared_experts\n    op: DeepseekV2MLP\n    count: E_s\n    bind: {d_ff: E_s*d_e}",
    )], drop_closed=("tensor_flops", "parameters"))
    assert_bites(check(folder, "DeepseekV2MoE"), "DeepseekV2MoE", {"tensor_flops", "parameters", "io_read_bytes"})


def test_shared_experts_as_separate_narrow_mlps(tmp_path):
    """E_s separate MLPs of width d_e over all tokens: the same FLOPs and parameters, but each reads the
    tokens again and writes its own output, so the bytes give it away."""
    folder = mutated(tmp_path, "DeepseekV2MoE", [(
        "  - name: shared_experts\n    op: DeepseekV2MLP\n    bind: {d_ff: E_s*d_e}",
        "  - name: shared_experts\n    op: DeepseekV2MLP\n    count: E_s\n    bind: {d_ff: d_e}",
    )])
    report = check(folder, "DeepseekV2MoE")
    assert_bites(report, "DeepseekV2MoE", {"io_read_bytes", "io_write_bytes"})
    assert not {r.quantity for r in report.failed} & {"tensor_flops", "parameters"}


def test_dropped_attention_quadratic_term(tmp_path):
    """The S·(P+S) attention products replaced by S·P: right at decode-like P ≫ S, zero at prefill."""
    folder = mutated(tmp_path, "LlamaAttention", [
        ("{name: scores, unit: tensor, flops: 2*B*H*S*(P + S)*d_h", "{name: scores, unit: tensor, flops: 2*B*H*S*P*d_h"),
        ("{name: context, unit: tensor, flops: 2*B*H*S*(P + S)*d_h", "{name: context, unit: tensor, flops: 2*B*H*S*P*d_h"),
    ])
    assert_bites(check(folder, "LlamaAttention"), "LlamaAttention", {"tensor_flops"})
    (tmp_path / "flash").mkdir()
    folder = mutated(tmp_path / "flash", "LlamaFlashAttention2", [
        ("flops: 4*B*H*S*(P + S)*d_h", "flops: 4*B*H*S*P*d_h"),
    ])
    assert_bites(check(folder, "LlamaFlashAttention2"), "LlamaFlashAttention2", {"tensor_flops"})


def test_rotary_tables_once_per_forward_instead_of_per_layer(tmp_path):
    """The correction of issue 12 undone: a layer that takes its rotary tables from the model instead of
    building them. DeepSeek-OCR's layers run the bmm, cos, sin and scaling themselves, so FLOPs, bytes
    and the held tables all disagree."""
    folder = mutated(tmp_path, "LlamaAttention", [
        ("  - {name: rotary_emb, op: LlamaRotaryEmbedding, only: per_layer,", "  - {name: rotary_emb, op: LlamaRotaryEmbedding, only: shared_tables,"),
    ])
    assert_bites(check(folder, "LlamaAttention"), "LlamaAttention",
                 {"tensor_flops", "cuda_flops", "io_read_bytes", "activation_bytes"})


def test_gemm_at_one_flop_per_multiply_add(tmp_path):
    """The building block every projection is made of, counting 1 FLOP per multiply-add."""
    folder = mutated(tmp_path, "Linear", [
        ("{name: matmul, unit: tensor, flops: 2*N*F_in*F_out", "{name: matmul, unit: tensor, flops: N*F_in*F_out"),
    ], drop_closed=("tensor_flops",))
    assert_bites(check(folder, "Linear"), "Linear", {"tensor_flops"})


def test_parameters_off_by_one_bias(tmp_path):
    """An output-projection bias that LlamaAttention does not have (attention_bias is false)."""
    folder = mutated(tmp_path, "LlamaAttention", [
        ("  - {name: o_proj.weight, role: parameter, shape: [h, H*d_h]}",
         "  - {name: o_proj.weight, role: parameter, shape: [h, H*d_h]}\n"
         "  - {name: o_proj.bias, role: parameter, shape: [h]}"),
    ], drop_closed=("parameters",))
    assert_bites(check(folder, "LlamaAttention"), "LlamaAttention", {"parameters", "parameter_bytes"})


def test_elementwise_op_missing_from_cuda_core_sum(tmp_path):
    """RMSNorm's per-channel gain multiply left out of the CUDA-core FLOPs."""
    folder = mutated(tmp_path, "DeepseekV2RMSNorm", [
        ("{name: gain, unit: cuda, flops: B*S*h,", "{name: gain, unit: cuda, flops: 0,"),
    ], drop_closed=("cuda_flops",))
    report = check(folder, "DeepseekV2RMSNorm")
    assert_bites(report, "DeepseekV2RMSNorm", {"cuda_flops"})
    assert "cuda_flops" in {r.quantity for r in report.failed} and len({r.quantity for r in report.failed}) == 1


def test_eager_peak_without_the_scores(tmp_path):
    """An eager-attention peak that forgets the S×(P+S) score tensors: caught, and the report says the
    math path (the softmax over the scores) is what ran."""
    folder = mutated(tmp_path, "LlamaAttention", [(
        "q_emb + k_all + v_all + q_bmm + scores, q_emb + k_all + v_all + scaled + scores32 + probs32, "
        "q_emb + k_all + v_all + probs + max(attn + attn_flat, max(attn, attn_flat) + out)))'",
        "q_emb + k_all + v_all + max(attn + attn_flat, max(attn, attn_flat) + out)))'",
    )])
    report = check(folder, "LlamaAttention")
    assert_bites(report, "LlamaAttention", {"peak_bytes"})
    peaks = [r for r in report.failed if r.quantity == "peak_bytes"]
    assert peaks and all("math: aten._softmax" in r.note for r in peaks)
