"""The calculation audit of whole documents (OD901) and stated totals (OD903).

Every fixture is written here by hand; each wrong one states the right value in a comment, worked
out by hand, and the message must carry it."""

from __future__ import annotations

import pytest

from opdoc.lint.calc import audit_document
from opdoc.lint.markdown import parse_markdown

DIMENSIONS = {"B", "S", "h", "d", "H"}


def found(text: str) -> list[tuple[str, int, str]]:
    return [(f.rule, f.line, f.message) for f in audit_document(parse_markdown(text), DIMENSIONS)]


WRONG = [
    pytest.param(
        # 4 × 2 × 4096 × 2048 × 1024 = 8 × 2^12 × 2^11 × 2^10 = 2^36 = 68,719,476,736
        "```\nFLOPs = 4 × 2 × 4096 × 2048 × 1024\n      = 67,108,864,000\n```\n",
        ("OD901", 3, "evaluates to 68,719,476,736, not 67,108,864,000"),
        id="result on the next line",
    ),
    pytest.param(
        # 2 × 1536 × 1048576 = 3072 × 2^20 = 3,221,225,472; the last value (3.2 G) rounds right
        "```\nscores: 2 × 1536 × 1048576 = 3,221,000,000 ≈ 3.2 GFLOPs\n```\n",
        ("OD901", 2, "evaluates to 3,221,225,472, not 3,221,000,000"),
        id="wrong intermediate value",
    ),
    pytest.param(
        # 2 × 8192 × 1280 × 1280 = 26,843,545,600 exactly
        "- q_proj: 2 × 8192 × 1280 × 1280 = 26,843,545,601 FLOPs\n",
        ("OD901", 1, "26,843,545,600"),
        id="comma-grouped integer compared exactly",
    ),
    pytest.param(
        # 24 × 12 × 3.1 MB = 892.8 MB (3.1 may be 3.05..3.15: 878.4..907.2 MB); 950 MB is outside
        "KV: 24 blocks × 12 heads × 3.1 MB = 950 MB\n",
        ("OD901", 1, "`24 blocks × 12 heads × 3.1 MB` evaluates to 892.8 MB"),
        id="words between the numbers",
    ),
    pytest.param(
        # 4 × 26.84 = 107.36 GFLOPs, not 110
        "```\nq_proj: 26.84 GFLOPs\nk_proj: 26.84 GFLOPs\nv_proj: 26.84 GFLOPs\no_proj: 26.84 GFLOPs\nTotal: 110 GFLOPs\n```\n",
        ("OD903", 6, "the 4 items above (lines 2-5) sum to 107.4 GFLOPs, not 110 GFLOPs"),
        id="itemised list with a total",
    ),
    pytest.param(
        # 2 × 26.84 = 53.68
        "- **q_proj**: 26.84 GFLOPs\n- **k_proj**: 26.84 GFLOPs\n- **Total**: 56.68 GFLOPs\n",
        ("OD903", 3, "sum to 53.68 GFLOPs, not 56.68 GFLOPs"),
        id="bulleted list with a bold total",
    ),
    pytest.param(
        # 6,553,600 × 12 = 78,643,200
        "```\nattn_params = 4 × 1280 × 1280 = 6,553,600\nall_layers = attn_params × 12 = 88,643,200\n```\n",
        ("OD901", 3, "`attn_params × 12` evaluates to 78,643,200, not 88,643,200; `attn_params` is 6,553,600 (line 2)"),
        id="value reused by name on a later line",
    ),
    pytest.param(
        # 26.84 + 26.84 = 53.68 G
        "| op | FLOPs |\n|---|---|\n| q | 26.84 G |\n| k | 26.84 G |\n| Total | 60.1 G |\n",
        ("OD903", 5, "the `FLOPs` cells above it sum to 53.68 G, not 60.1 G"),
        id="table total row",
    ),
    pytest.param(
        # 450.97 + 4.77 = 455.74
        "| ex | tensor | cuda | total |\n|---|---|---|---|\n| a | 450.97 GFLOPs | 4.77 GFLOPs | 465.74 GFLOPs |\n",
        ("OD903", 3, "sum to 455.74 GFLOPs, not 465.74 GFLOPs"),
        id="table total column",
    ),
    pytest.param(
        # 2 × 8192 × 1280 = 20,971,520; × 2 = 41,943,040 ≈ 41.9 MB; 4.19 MB is a slip of ten
        "```\n2 × 8192 × 1280 = 20,971,520 × 2 bytes = 41,943,040 bytes ≈ 4.19 MB\n```\n",
        ("OD901", 2, "evaluates to 41.943 MB"),
        id="running chain, wrong last step",
    ),
    pytest.param(
        # 2^13 = 8192
        "Check: 2^13 = 8190\n",
        ("OD901", 1, "`2^13` evaluates to 8192, not 8190"),
        id="power",
    ),
    pytest.param(
        # bf16 is 2 bytes per element; the product itself (× 4) is right, the element size is not
        "```\nAt bf16: 1,000,000 × 4 bytes = 4,000,000 bytes\n```\n",
        ("OD901", 2, "bf16 is 2 bytes per element, not 4 bytes"),
        id="element size against the named dtype",
    ),
    pytest.param(
        # 3 × 4096 × 4096 = 50,331,648 ≈ 50.3 M; carried over two lines later as 53.0 M (digits swapped)
        "```\nqkv = 3 × 4096 × 4096 = 50,331,648 ≈ 50.3 M\nall = 12 × 53.0 M = 636 M\n```\n",
        ("OD901", 3, "the value computed on line 2 is 50.3 M"),
        id="value carried over with swapped digits",
    ),
    pytest.param(
        # 240 / 30 = 8, not 16
        "- About 16x fewer active parameters than total (30 M of 240 M)\n",
        ("OD901", 1, "16x does not follow from 30 M of 240 M: the ratio is 8x"),
        id="ratio claim",
    ),
    pytest.param(
        # 454,328,320 / 2^20 = 433.28 MiB
        "In bf16 that is 454,328,320 bytes (454.3 MiB).\n",
        ("OD901", 1, "`454,328,320 bytes` evaluates to 433.28 MiB, not 454.3 MiB"),
        id="restatement in parentheses",
    ),
    pytest.param(
        # 3 × 1 × 8192 × 1280 = 31,457,280 ≈ 31.5 M; a comment line in a python block
        "```python\nx = norm(h)  # 3 × 1 × 8192 × 1280 ≈ 35 MFLOPs\n```\n",
        ("OD901", 2, "evaluates to 31.46 MFLOPs, not 35 MFLOPs"),
        id="comment of a python block",
    ),
]


@pytest.mark.parametrize(("text", "expected"), WRONG)
def test_wrong_calculations_are_found_on_their_line(text, expected):
    results = found(text)
    assert len(results) == 1, results
    rule, line, message = results[0]
    assert (rule, line) == expected[:2], results
    assert expected[2] in message, message


RIGHT = [
    pytest.param("4 × 512 × 512 = 1.05 M\n", id="unitless operands, unit on the result"),
    pytest.param("Per layer: 24 × 3.1 = 74.4 GFLOPs\n", id="operands in the result's unit"),
    pytest.param("26,843,545,600 FLOPs = 26.84 GFLOPs\n", id="FLOPs to GFLOPs"),
    pytest.param("```\nk_cache (bf16): 1 × 8192 × 1280 = 21.0 MB\n```\n", id="bytes implied by a named dtype"),
    pytest.param("Example (bf16):\n\n```\nk_cache: 1 × 8192 × 1280 = 21.0 MB\n```\n", id="dtype named in the section"),
    pytest.param("```\nparams = 4 × 1280 × 1280 = 6.55 M (one per weight, 4 matrices)\nmac: 2 × 3 = 6 (2 FLOPs per MAC)\n```\n",
                 id="parenthetical side remarks"),
    pytest.param("```\n= 6.55 M (6,553,600)\n4 × 1280 × 1280 = 6.55 M (6,553,600)\n```\n", id="parenthetical restatement"),
    pytest.param("At 989 TFLOPS: 455.7 GFLOPs / 989 TFLOPS ≈ 0.46 ms\n", id="FLOPs to time at a throughput"),
    pytest.param("```\n1024 × 1024 = 1M\n2^24 = 16M\n8192 × 512 × 2 = 8 MB\n```\n", id="binary prefixes"),
    pytest.param("```\n2 × 8192 × 1280 = 20,971,520 × 2 bytes = 41,943,040 bytes ≈ 41.9 MB\n```\n", id="running chain"),
    pytest.param("```\nbytes = 2 × 8192 × 1280\n      = 20,971,520\n      × 2 (bf16)\n      = 41,943,040\n```\n",
                 id="running chain over lines"),
    pytest.param("```\nattention = 61.4M\nmlp = 10.8M\nnorms = 2 × 1.28K ≈ 2.56K\ntotal = 72.2M\n```\n",
                 id="named values and their total"),
    pytest.param("```\n1 dense layer: 144 MB\n39 MoE layers: 39 × 1.87 GB = 72.93 GB\nTotal: 73.07 GB\n```\n",
                 id="total of items in two units"),
    pytest.param("```\nDense layer: 144 MB\nMoE layer: 1.87 GB\nTotal (40 layers): 73.07 GB\n```\n",
                 id="a total over a count the items do not show"),
    pytest.param("Layer 1-39 = 39 layers; dates like 2025-01-17 = a day\n", id="ranges and dates"),
    pytest.param("| ex | params | layers | total |\n|---|---|---|---|\n| a | 6.55 M | 12 | 78.6 M |\n", id="total column as a product"),
    pytest.param("FLOPs = 2 × B × S × h = 2 × 1 × 8192 × 1280 ≈ 21.0 MFLOPs\n", id="symbols skipped, numbers checked"),
    pytest.param("```python\nhidden = 1280\nhidden = hidden * 2\n```\n", id="python assignments are not equations"),
    pytest.param("speedup: 4096/64 = 64x; share 343.6 / 455.74 = 75.4%\n", id="ratios and percentages"),
    pytest.param("- dense: attention 451.0 GFLOPs + MLP 430.8 GFLOPs = 881.8 GFLOPs\n", id="labels before the numbers"),
    pytest.param("```\nFLOPs ≈ 881.8 + 11 × 903.3 GFLOPs ≈ 10.82 TFLOPs\n```\n", id="one unit for every addend"),
    pytest.param("One expert is 3 × 1280 × 896 = 3,440,640; × 64 experts = 220,200,960; + shared 6,881,280 = 227,082,240.\n",
                 id="running chain across semicolons"),
    pytest.param("Total: 4,198,400 parameters, × 2 bytes (bf16) = 8,396,800 bytes\n", id="running chain across a comma"),
    pytest.param("- for comparison, a 512-wide variant would hold 4 × 512 × 512 = 1.05 M weights\n", id="hyphenated words"),
    pytest.param("```\nlin1: Linear 768 -> 3072 with bias\nlin2: Linear 3072 -> 768 with bias\nTotal parameters: 4722432\n```\n",
                 id="descriptions are not list items"),
    pytest.param("- attention: 4,198,400\n- MLP: 8,393,728\n- weights alone: 4 × 1024 × 1024 = 4.19 M\n- **Total: 12,592,128**\n",
                 id="an aside in a list is not summed"),
    pytest.param("Total: 2,934,734,080 parameters → 5,869,468,160 bytes in bf16 ≈ 5.87 GB\n", id="a total and its conversion"),
    pytest.param("In bf16 that is 454,328,320 bytes (433.3 MiB), and 1,048,576 elements (1M).\n", id="right restatements"),
    pytest.param("- ✅ 80x parameter efficiency (2/160 experts active per token)\n", id="right ratio claim"),
]


@pytest.mark.parametrize("text", RIGHT)
def test_right_calculations_raise_nothing(text):
    assert found(text) == []


def test_an_item_found_wrong_is_summed_at_its_right_value():
    # the second item is wrong (4 × 4096 × 768 × 3072 = 38,654,705,664); the total is right for the true
    # values (38,654,705,664 + 100,663,296 = 38,755,368,960 ≈ 38.8 G): one finding, on the item
    text = ("```\nmatmuls = 4 * 4096 * 768 * 3072 = 38645705664 FLOPs\nGELU = 8 * 4096 * 3072 = 100663296 FLOPs\n"
            "total ~= 38.8 GFLOPs\n```\n")
    assert [(rule, line) for rule, line, _ in found(text)] == [("OD901", 2)]


def test_names_are_forgotten_at_the_next_section():
    text = "## A\n```\nattn = 4 × 1280 × 1280 = 6,553,600\n```\n## B\n```\ntotal = attn × 2 = 5\n```\n"
    assert found(text) == []  # `attn` is unknown in section B: nothing to check


def test_the_audit_stops_after_its_bound_and_says_so():
    from opdoc.lint.calc import MAX_STATEMENTS

    text = "```\n" + "2 × 3 = 6\n" * (MAX_STATEMENTS + 5) + "```\n"
    results = found(text)
    assert [(rule, line) for rule, line, _ in results] == [("OD901", MAX_STATEMENTS + 2)]
    assert "stopped here" in results[0][2]
