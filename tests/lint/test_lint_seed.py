"""The hand-written DeepseekV2DecoderLayer op-doc (seed 004), linted as a new user would, with
opdoc's specs found from the checkout.

What the linter finds there, and why (by reading the seed against DeepSeek-OCR's released
configuration: 12 layers, 1 dense then 11 MoE, 10 heads of 128, hidden size 1280, dense MLP width
6848, 64 routed experts of width 896, 6 per token, use_mla false):

* OD951 x5: the page describes DeepSeek-V2, not DeepSeek-OCR: 40 layers (line 10, and 74, 114, 301,
  320, 349), 39 MoE layers (74, ...), 128 attention heads (390), 160 routed experts (392, 435) and
  2 experts per token (435); one finding per wrong value, at its first line.
* OD952 x7: what follows from it: 61.4M attention parameters per layer (82; the specs give
  4 × 1280 × 1280 = 6.55 M), 10.8M for the dense MLP (85; 3 × 1280 × 6848 = 26.30 M), 876M for the
  MoE (86; 64 × 3 × 1280 × 896 + 3 × 1280 × 1792 + 64 × 1280 = 227.16 M) and the four per-layer FLOP
  totals of its decode and prefill examples (293, 294, 297, 298), bound to the B=1, S=1/8192 and
  K=8192 it states.
* OD902 x6: it mentions op-DeepseekV2Attention.md (lines 82, 267, 330), op-DeepseekV2MLP.md and
  op-DeepseekV2MoE.md (line 87) and op-DeepseekV2MoE.md (line 333), none of which sits next to it.
* OD601 x1: the "Parameter count per layer" block is labelled python but holds `attention = 61.4M`.
* OD206 x1: the Definition (line 12) shows `__init__` but not the forward method.
* OD805 x1: the FLOPs subsection (line 249) never says which term dominates.
* OD807 x3: the decode, prefill and KV-cache blocks compute bytes (`... × 2 = 2.56 KB`, `= 21 MB`,
  `= 1.05 MB`) in sections that never name bf16 or the bytes per element (lines 327, 340, 360).
* OD204 x1 (warning): the extra `## Optimization Opportunities` section.
* OD703 x4 (warnings): the forward docstring spells shapes as `batch`, `seq_len`, `hidden_size` and
  `kv_seq_len` instead of B, S, h.

No OD901/OD903: every worked sum is right to the digits it shows (`39 × 1.87 GB = 72.93 GB`,
`3.84K + 2.41G + 3.84K + 32.5M ≈ 2.44 GFLOPs`, `144 MB + 72.93 GB = 73.07 GB` ...): its numbers are
consistent, they describe another model.  Missed: the 3584-wide dense MLP in the diagram
(`h → 3584 → h`, not a stated count), use_mla=True (not a number), the MLA KV cache sizes (no B and
S bound in that block) and the parameter totals of the python-labelled block (no "param" on them).
"""

from __future__ import annotations

from collections import Counter

from lint_helpers import REPO, SYMBOLS, copy_seed, requires_seed

from opdoc.lint import lint_paths
from opdoc.lint.arith import audit_line


@requires_seed
def test_seed_004_findings(tmp_path):
    path = copy_seed(tmp_path)
    report = lint_paths([path], mermaid=False, symbols=SYMBOLS, specs=REPO)
    assert Counter(f.rule for f in report.findings) == Counter(
        {"OD951": 5, "OD952": 7, "OD902": 6, "OD807": 3, "OD601": 1, "OD206": 1, "OD805": 1, "OD204": 1, "OD703": 4}
    )
    assert report.rule_ids("warning") == {"OD204", "OD703"}
    lines = {(f.rule, f.line) for f in report.findings}
    assert {("OD206", 12), ("OD601", 98), ("OD805", 249), ("OD807", 327), ("OD807", 340), ("OD807", 360), ("OD204", 439)} <= lines
    assert {f.line for f in report.findings if f.rule == "OD902"} == {82, 87, 267, 330, 333}
    assert {f.line for f in report.findings if f.rule == "OD951"} == {10, 74, 390, 392, 435}
    assert {f.line for f in report.findings if f.rule == "OD952"} == {82, 85, 86, 293, 294, 297, 298}
    messages = " | ".join(f.message for f in report.findings)
    assert "the page gives 40 for the layers" in messages and "num_hidden_layers = 12" in messages
    assert "the page says 61.4M parameters for `self_attn` (LlamaFlashAttention2); the specs give 6.55 M" in messages
    assert report.exit_code == 1


@requires_seed
def test_seed_004_arithmetic_is_consistent():
    assert audit_line("39 MoE layers: 39 × 1.87 GB = 72.93 GB") == []
    # ...but a slip in the same line would be caught, with the right value.
    [issue] = audit_line("39 MoE layers: 39 × 1.87 GB = 73.93 GB")
    assert issue.message == "`39 × 1.87 GB` evaluates to 72.93 GB, not 73.93 GB"


@requires_seed
def test_seed_004_with_knowledge_base_symbols(tmp_path):
    """With the DeepSeek-OCR symbols the seed's `(B, S, h)` shapes are declared."""
    path = copy_seed(tmp_path)
    report = lint_paths([path], mermaid=False, symbols={"B", "S", "P", "h", "H", "d_h"}, specs=False)
    assert "OD702" not in report.rule_ids()
