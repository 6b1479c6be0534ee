"""The hand-written DeepseekV2DecoderLayer op-doc (seed 004), linted as a
knowledge-base file would be.

What the linter finds there, and why:

* OD902 x6 (error): it mentions op-DeepseekV2Attention.md (lines 82, 267,
  330), op-DeepseekV2MLP.md and op-DeepseekV2MoE.md (line 87) and
  op-DeepseekV2MoE.md (line 333), none of which sits next to it in the tmp dir.
* OD601 x1 (error): the "Parameter count per layer" block is labelled python
  but holds `attention = 61.4M` (line 98), which is not Python.
* OD805 x1 (error): the FLOPs subsection (line 249) never says which term
  dominates (only the parameter and activation totals use "dominates").
* OD807 x3 (error): the decode and prefill activation blocks and the KV-cache
  block compute bytes (`... × 2 = 2.56 KB`, `= 21 MB`, `= 1.05 MB`) without
  naming bf16 or the bytes per element (lines 327, 340, 360).
* OD204 x1 (warning): the extra `## Optimization Opportunities` section.
* OD703 x4 (warning): the forward docstring spells shapes as `batch`,
  `seq_len`, `hidden_size` and `kv_seq_len` instead of B, S, h.

No OD901: every worked sum in the seed is right to the digits it shows.  In
particular `39 × 1.87 GB = 72.93 GB` is exact (39 × 1.87 = 72.93); the
1.87 GB it multiplies is itself a rounding of 937.4M × 2 bytes = 1.8748 GB,
which the audit, working on the digits shown, rightly accepts.
"""

from __future__ import annotations

from collections import Counter

from lint_helpers import SYMBOLS, copy_seed, requires_seed

from opdoc.lint import lint_paths
from opdoc.lint.arith import audit_line


@requires_seed
def test_seed_004_findings(tmp_path):
    path = copy_seed(tmp_path)
    report = lint_paths([path], mermaid=False, symbols=SYMBOLS)
    assert Counter(f.rule for f in report.findings) == Counter(
        {"OD902": 6, "OD807": 3, "OD601": 1, "OD805": 1, "OD204": 1, "OD703": 4}
    )
    assert report.rule_ids("warning") == {"OD204", "OD703"}
    lines = {(f.rule, f.line) for f in report.findings}
    assert {("OD601", 98), ("OD805", 249), ("OD807", 327), ("OD807", 340), ("OD807", 360), ("OD204", 439)} <= lines
    assert {f.line for f in report.findings if f.rule == "OD902"} == {82, 87, 267, 330, 333}
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
    report = lint_paths([path], mermaid=False, symbols={"B", "S", "P", "h", "H", "d_h"})
    assert "OD702" not in report.rule_ids()
