"""A hand-written page compared with opdoc's specs of the same module (OD951, OD952).

The expected values are DeepSeek-OCR's released configuration (language model: hidden size 1280,
10 heads of 128, 12 layers, 64 routed experts, 6 per token; CLIP-L: width 1024, 16 heads, 24 layers)
and arithmetic on it done by hand in the comments."""

from __future__ import annotations

from pathlib import Path

from opdoc.lint import lint_paths

REPO = Path(__file__).resolve().parents[2]
SPEC_RULES = {"OD951", "OD952"}


def spec_findings(tmp_path: Path, name: str, body: str) -> list[tuple[str, int, str]]:
    path = tmp_path / f"op-{name}.md"
    path.write_text(f"# {name}\n\n" + body, encoding="utf-8")
    report = lint_paths([path], mermaid=False, specs=REPO)
    return [(f.rule, f.line, f.message) for f in report.findings if f.rule in SPEC_RULES]


WRONG_ATTENTION = """## What It Is
The attention of every decoder layer, with a hidden size of 4096 and 32 attention heads.

### Memory Usage
Attention parameters per layer: 4 × 4096 × 4096 = 67.1M parameters
"""


def test_wrong_configuration_and_the_parameters_it_gives(tmp_path):
    found = spec_findings(tmp_path, "LlamaAttention", WRONG_ATTENTION)
    assert [(rule, line) for rule, line, _ in found] == [("OD951", 4), ("OD951", 4), ("OD952", 7)]
    messages = " | ".join(message for _, _, message in found)
    assert "hidden_size = 1,280" in messages and "num_attention_heads = 10" in messages
    # 4 × 1280 × 1280 = 6,553,600 parameters: q, k, v and o, each 1280 × (10 × 128)
    assert "the page says 67.1M parameters for LlamaAttention; the specs give 6.55 M (hidden size 1,280, not 4096" in messages


def test_right_values_raise_nothing(tmp_path):
    body = """## What It Is
The attention of every decoder layer: hidden size 1280, 10 attention heads of 128, 12 decoder layers.

### Memory Usage
Attention parameters per layer: 4 × 1280 × 1280 = 6.55M parameters

### FLOPs
Example (B=1, S=8192):
FLOPs_total ≈ 455.7 GFLOPs
"""
    # 8·B·S·h·H·d_h + 4·B·H·S²·d_h = 8·8192·1280·1280 + 4·10·8192²·128 = 107.4 G + 343.6 G = 451.0 G
    # of tensor-core work; plus 4.77 G of elementwise work: 455.7 G
    assert spec_findings(tmp_path, "LlamaAttention", body) == []


def test_flops_of_a_bound_example(tmp_path):
    body = """### FLOPs
Example (B=1, S=4096):
FLOPs_total ≈ 455.7 GFLOPs
"""
    # at S=4096: 8·4096·1280² + 4·10·4096²·128 = 53.7 G + 85.9 G = 139.6 G of tensor-core work
    found = spec_findings(tmp_path, "LlamaAttention", body)
    assert [(rule, line) for rule, line, _ in found] == [("OD952", 5)]
    assert "at B=1, S=4096" in found[0][2] and "140.80 G" in found[0][2]


def test_values_marked_as_examples_are_not_claims(tmp_path):
    body = """## What It Is
For illustration, a hidden size of 4096 would give 4 × 4096 × 4096 = 67.1M parameters (e.g. LLaMA-7B).
Unlike DeepSeek-V2 with 160 routed experts, this model routes each token to its top-k.
"""
    assert spec_findings(tmp_path, "DeepseekV2MoE", body) == []


def test_scopes_do_not_collide(tmp_path):
    # CLIP-L has 24 layers of width 1024 with 16 heads; the language model's 12 layers are another scope
    body = """## What It Is
The CLIP attention: hidden size 1024, 16 attention heads, 24 layers. The language decoder has 12 layers.
"""
    assert spec_findings(tmp_path, "NoTPAttention", body) == []
    wrong = "## What It Is\nThe CLIP attention: hidden size 1280 with 10 attention heads.\n"
    found = spec_findings(tmp_path, "NoTPAttention", wrong)
    assert [(rule, line) for rule, line, _ in found] == [("OD951", 4), ("OD951", 4)]
    assert any("`clip` configuration has hidden_size = 1,024" in message for _, _, message in found)


def test_child_modules_and_config_examples(tmp_path):
    body = """## Constructor Information
**Created Components**:
1. **self.self_attn**: attention
   - Parameters: ~61.4M per layer

```python
config = DeepseekV2Config(hidden_size=1280, num_attention_heads=128, n_routed_experts=160)
```
"""
    found = spec_findings(tmp_path, "DeepseekV2DecoderLayer", body)
    assert [(rule, line) for rule, line, _ in found] == [("OD952", 6), ("OD951", 9), ("OD951", 9)]
    assert "for `self_attn` (LlamaFlashAttention2); the specs give 6.55 M" in found[0][2]
    assert "num_attention_heads = 10" in found[1][2] and "n_routed_experts = 64" in found[2][2]


def test_no_spec_no_comparison(tmp_path):
    assert spec_findings(tmp_path, "SomethingElse", WRONG_ATTENTION) == []
    path = tmp_path / "op-LlamaAttention.md"
    path.write_text("# LlamaAttention\n\n" + WRONG_ATTENTION, encoding="utf-8")
    assert not {f.rule for f in lint_paths([path], mermaid=False, specs=False).findings} & SPEC_RULES


def test_the_spec_comparison_does_not_import_torch(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "op-LlamaAttention.md"
    path.write_text("# LlamaAttention\n\n" + WRONG_ATTENTION, encoding="utf-8")
    code = (
        "import sys; from opdoc.lint import lint_paths; "
        f"r = lint_paths([{str(path)!r}], mermaid=False, specs={str(REPO)!r}); "
        "assert any(f.rule == 'OD952' for f in r.findings); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip() == "False"


def test_kv_cache_sizes(tmp_path):
    # K and V, each B × S × H × d_h × 2 bytes: 2 × 1 × 8192 × 10 × 128 × 2 = 41,943,040 bytes per layer
    body = """#### KV cache (B=1, S=8192):
```
per layer: 1 × 8192 × 10 × 128 × 2 = 20,971,520 bytes ≈ 21.0 MB
```
"""
    found = spec_findings(tmp_path, "LlamaAttention", body)
    assert [(rule, line) for rule, line, _ in found] == [("OD952", 5)]
    assert "of KV cache at B=1, S=8192" in found[0][2] and "41.94 M" in found[0][2]
    right = body.replace("1 × 8192 × 10 × 128 × 2 = 20,971,520 bytes ≈ 21.0 MB", "2 × 1 × 8192 × 10 × 128 × 2 = 41,943,040 bytes ≈ 41.9 MB")
    assert spec_findings(tmp_path, "LlamaAttention", right) == []


def test_a_decode_step_of_a_module_without_cache(tmp_path):
    # the MLP is linear in S: one token costs 6 × 1280 × 6848 = 52,592,640 matmul FLOPs, plus SiLU and the
    # gating product on 6848 elements (the specs count 41,088 more: 52.63 M), whatever is cached
    body = "### FLOPs\n```\nDecode (B=1, S=1): FLOPs ≈ 431 MFLOPs per token\n```\n"
    found = spec_findings(tmp_path, "DeepseekV2MLP", body)
    assert [(rule, line) for rule, line, _ in found] == [("OD952", 5)]
    assert "the specs give 52.63 M" in found[0][2]
    assert spec_findings(tmp_path, "DeepseekV2MLP", body.replace("431 MFLOPs", "52.6 MFLOPs")) == []
    # attention depends on the cached context, which this line does not state: nothing to compare
    assert spec_findings(tmp_path, "LlamaAttention", body) == []
