"""The arithmetic audit and its safe evaluator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opdoc.lint.arith import UnsafeExpression, audit_line, safe_eval


def messages(line: str) -> list[str]:
    return [issue.message for issue in audit_line(line)]


@pytest.mark.parametrize(
    "line",
    [
        "39 × 1.87 GB = 72.93 GB",
        "Input: B × S × h × 2 = 1 × 1 × 1280 × 2 = 2.56 KB",  # symbolic segment skipped
        "1 × 8192 × 1280 × 2 = 21 MB",  # rounding of the digits shown
        "1 × 8192 × 1280 × 2 = 20 MiB",
        "8192 × 512 × 2 = 8.0 MB",  # only right in binary megabytes
        "3 × 1 × 8192 × 1280 ≈ 31.5 MFLOPs",
        "31.5M + 10T + 31.5M + 266G ≈ 10.27 TFLOPs",
        "At bf16: 72.2M × 2 bytes ≈ 144 MB",
        "- Weight: 1280 × 3840 = 4.9M parameters",
        "2 × 1.28K ≈ 2.56K",
        "speedup: 4096/64 = 64x",
        "2^20 = 1,048,576",
        "8192² = 67108864",
        "(1 + 2) ** 2 = 9",
        "~100 GFLOPs",
        "FLOPs = 2 × B × S × d",  # symbols: nothing to check
        "Layer 1-39 = 39 layers",  # a range, not a subtraction
        "x = 2 * 3  # note",
        "1 dense layer + 39 MoE layers = 40 layers",
        "k_pe: 1 × 1 × 8192 × 64 × 2 = 1.05 MB (K=8192)",
    ],
)
def test_correct_lines_pass(line):
    assert messages(line) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("39 × 1.87 GB = 73.5 GB", "`39 × 1.87 GB` evaluates to 72.93 GB, not 73.5 GB"),
        ("1 × 8192 × 1280 × 2 = 25 MB", "evaluates to 20.97 MB (or 20 MiB in binary units), not 25 MB"),
        ("3 × 1 × 8192 × 1280 ≈ 35 MFLOPs", "evaluates to 31.46 MFLOPs, not 35 MFLOPs"),
        # 1.28K is itself rounded (1.275K to 1.285K), so 2.57K is possible; 2.59K is not
        ("2 × 1.28K ≈ 2.59K", "evaluates to 2.56K, not 2.59K"),
        ("Decode: 3.84K + 2.41G + 3.84K + 32.5M ≈ 2.46 GFLOPs", "evaluates to 2.443 GFLOPs, not 2.46 GFLOPs"),
        ("x = 1  # 2 x 3 = 7", "`2 x 3` evaluates to 6, not 7"),
        ("8190 = 2^13", "`2^13` evaluates to 8192, not 8190"),
        ("2^13 = 8190", "`2^13` evaluates to 8192, not 8190"),  # "=" with a whole number is exact
        ("Total: 1 × 269 = 270", "evaluates to 269, not 270"),
    ],
)
def test_wrong_lines_state_the_correct_value(line, expected):
    found = messages(line)
    assert len(found) == 1 and expected in found[0], found


def test_approximate_values_allow_half_a_unit_in_the_last_place():
    assert messages("1000 × 1049 ≈ 1.05M") == []  # 1.049M
    assert messages("1000 × 1044 ≈ 1.05M") != []  # 1.044M is 1.04M
    assert messages("98 × 1 ≈ 100") == []  # "100" shows one significant digit
    assert messages("149 × 1 ≈ 100") == []
    assert messages("151 × 1 ≈ 100") != []
    assert messages("151 × 1 = ~150") == []  # a "~" on the value makes "=" approximate
    assert messages("151 × 1 = 150") != []


def test_safe_eval_refuses_anything_but_arithmetic():
    assert safe_eval("2 ** 10 / 4 - (3 + -1)") == 254
    for bad in ("__import__('os')", "x + 1", "[1, 2]", "2 ** 1000", "1 / 0", "(1).real", "1 if 1 else 2"):
        with pytest.raises(UnsafeExpression):
            safe_eval(bad)


numbers = st.integers(min_value=1, max_value=5000)


@settings(max_examples=100, deadline=None)
@given(st.lists(numbers, min_size=2, max_size=4), st.sampled_from(["×", "*", "+"]))
def test_generated_correct_lines_pass_and_off_by_one_fails(operands, operator):
    expression = f" {operator} ".join(str(n) for n in operands)
    value = safe_eval(expression.replace("×", "*"))
    assert messages(f"{expression} = {int(value)}") == []
    assert len(messages(f"{expression} = {int(value) + 1}")) == 1


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789.,×*/+-^()=≈~ KMGTBiFLOPsbytex#:")), max_size=60))
def test_audit_never_raises(line):
    audit_line(line)
