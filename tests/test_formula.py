"""The formula parser accepts arithmetic over declared symbols and refuses everything else, unexecuted."""

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from opdoc.formula import FormulaError, engineering, exact_number, parse_formula, plain_text, with_exact

S, B, h, d_ff = sympy.symbols("S B h d_ff", positive=True)
SYMBOLS = {"S": S, "B": B, "h": h, "d_ff": d_ff}


def test_arithmetic_becomes_sympy():
    expr = parse_formula("2*B*S*h*d_ff + B*S // 2 - 3**2", SYMBOLS)
    assert expr == 2 * B * S * h * d_ff + sympy.floor(B * S / 2) - 9
    # 6 × 1 × 8192 × 1280 × 6848: the dense MLP's three projections at prefill, by hand
    assert parse_formula("6*B*S*h*d_ff", SYMBOLS).subs({B: 1, S: 8192, h: 1280, d_ff: 6848}) == 430_838_906_880


def test_division_and_float_literals_stay_exact():
    assert parse_formula("S / 3", SYMBOLS).subs(S, 10) == sympy.Rational(10, 3)
    assert parse_formula("1.0e-6", SYMBOLS) == sympy.Rational(1, 1_000_000)


def test_functions_evaluate_exactly_once_numeric():
    expr = parse_formula("ceil(log2(S)) + max(S, h) + min(B, 2) + floor(S / 3) + sqrt(h)", SYMBOLS)
    # ceil(log2 6) = 3, max(6, 4) = 6, min(1, 2) = 1, floor(6 / 3) = 2, sqrt(4) = 2  ->  14
    assert expr.xreplace({S: 6, h: 4, B: 1}) == 14


@pytest.mark.parametrize("text, fragment", [
    ("__import__('os')", "unknown function '__import__'"),
    ("__import__('os').system('true')", "cannot be called"),
    ("S.__class__", "attribute access"),
    ("(lambda: 1)()", "cannot be called"),
    ("lambda: 1", "a lambda"),
    ("[x for x in S]", "a comprehension"),
    ("S if B else h", "a conditional expression"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("9**9**9", "exponent must be a whole number"),
    ("S**100", "exponent 100 is larger than 64"),
    ("S**h", "exponent must be a whole number"),
    ("'text'", "only numbers are"),
    ("True", "only numbers are"),
    ("S[0]", "indexing"),
    ("(S := 3)", "an assignment"),
    ("max(S)", "two or more arguments"),
    ("ceil(S, B)", "takes 1 argument"),
    ("sqrt(x=S)", "keyword"),
    ("1" + "0" * 25, "larger than"),
    ("", "empty formula"),
    ("2 *", "not a formula"),
])
def test_code_and_nonsense_are_refused(text, fragment):
    with pytest.raises(FormulaError) as error:
        parse_formula(text, SYMBOLS)
    assert fragment in str(error.value)


def test_undeclared_symbol_names_it_and_suggests():
    with pytest.raises(FormulaError, match=r"unknown symbol 'd_f' \(did you mean 'd_ff'\?\)"):
        parse_formula("2*B*S*h*d_f", SYMBOLS)


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(FormulaError):
        parse_formula("(" * 5000 + "S" + ")" * 5000, SYMBOLS)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(codec="ascii"), max_size=60))
def test_any_text_is_either_a_formula_or_a_formula_error(text):
    try:
        result = parse_formula(text, SYMBOLS)
    except FormulaError:
        return
    assert isinstance(result, sympy.Expr)
    assert result.free_symbols <= set(SYMBOLS.values())


TOUCHED: list[str] = []
# Each of these would append to TOUCHED if any part of it were executed as Python.
PAYLOADS = st.sampled_from([
    "__import__('tests.test_formula').TOUCHED.append(1)",
    "globals()['TOUCHED'].append(1)",
    "exec('TOUCHED.append(1)')",
    "eval('TOUCHED.append(1)')",
    "[TOUCHED.append(1) for _ in [0]]",
    "(lambda: TOUCHED.append(1))()",
    "TOUCHED.append(1)",
])


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(["", "2*", "S + ", "(", "max(S, "]), payload=PAYLOADS,
       suffix=st.sampled_from(["", " * h", ")", ", h)"]))
def test_code_embedded_in_a_formula_never_runs(prefix, payload, suffix):
    with pytest.raises(FormulaError):
        parse_formula(prefix + payload + suffix, SYMBOLS)
    assert TOUCHED == []


def test_number_formatting():
    # 6 × 8192 × 1280 × 6848 = 430,838,906,880 FLOPs; 3 × 1280 × 6848 = 26,296,320 parameters (× 2 B = 52,592,640 B)
    assert with_exact(430_838_906_880, "flops") == "430.84 GFLOPs (430,838,906,880)"
    assert with_exact(26_296_320, "params") == "26.30 M parameters (26,296,320)"
    assert with_exact(52_592_640, "bytes") == "52.59 MB (52,592,640)"
    assert engineering(768, "flops") == "768 FLOPs"
    assert exact_number(sympy.Rational(3, 2)) == "1.5"
    assert plain_text(2 * B * S**2 * h) == "2 × B × S² × h"
