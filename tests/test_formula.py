"""The formula parser accepts arithmetic over declared symbols and refuses everything else, unexecuted."""

import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from opdoc_testing import hang_guard as _hang_guard
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


# ---------------------------------------------------------------------------------------------
# Hostile formulas (issue 9): nesting, hidden characters, towers of powers, lookalike letters.
# Each is refused with a FormulaError or parsed into arithmetic over the declared symbols; nothing
# else may happen (no other exception, no hang: a guard fails the example after HANG seconds).


from opdoc.formula import MAX_DEPTH, source_text

HANG = 10


def hang_guard(seconds: int = HANG):
    return _hang_guard(seconds, "still parsing")


def refused_or_arithmetic(text) -> sympy.Expr | None:
    with hang_guard():
        try:
            result = parse_formula(text, SYMBOLS)
        except FormulaError:
            return None
    assert isinstance(result, sympy.Expr)
    assert result.free_symbols <= set(SYMBOLS.values())
    assert not result.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I), result
    return result


NAMES = st.sampled_from(sorted(SYMBOLS))
SMALL = st.integers(min_value=0, max_value=99).map(str)
NESTERS = st.sampled_from(["-{}", "({})", "{}//2", "floor({})", "sqrt({})", "max(S, {})", "log2({})", "{}**2",
                           "({}+h)", "1/({})"])


@settings(max_examples=300, deadline=None)
@given(st.lists(NESTERS, min_size=1, max_size=400), NAMES)
def test_nesting_of_any_depth_is_refused_or_parsed(wrappers, name):
    text = name
    for wrapper in wrappers:
        text = wrapper.format(text)
    if refused_or_arithmetic(text) is not None:
        assert len(wrappers) <= 2 * MAX_DEPTH  # what was accepted is shallow enough for sympy


HIDDEN = st.sampled_from(["\ud800", "\udfff", "\u202e", "\u202d", "\u2066", "\u2069", "\u200b", "\u200f", "\x00",
                          "\x1b", "\u2028", "\ufeff", "\ue000"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["2*B*S*h", "max(S, h) + 1", "S**2", "ceil(S/2)"]), st.data(), HIDDEN)
def test_hidden_characters_anywhere_are_refused(formula, data, char):
    at = data.draw(st.integers(min_value=0, max_value=len(formula)))
    with pytest.raises(FormulaError, match="U\\+"):
        parse_formula(formula[:at] + char + formula[at:], SYMBOLS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["9", "S", "(S+h)", "2", "0.5", "10**21", "(B+S+h+d_ff)"]),
                          st.integers(min_value=-70, max_value=70)), min_size=1, max_size=6))
def test_towers_of_powers_are_refused_or_parsed_quickly(levels):
    text = levels[0][0]
    for _, exponent in levels:
        text = f"({text})**{exponent}"
    refused_or_arithmetic(text)


def test_the_tower_of_the_issue_is_refused_not_computed():
    with pytest.raises(FormulaError, match="digits"):
        parse_formula("((((9)**64)**64)**64)**64", SYMBOLS)
    with pytest.raises(FormulaError, match="degree"):
        parse_formula("((S**8)**8)**8", SYMBOLS)


# Characters that NFKC normalisation turns into an ASCII letter of a declared symbol.
LOOKALIKES = {"S": "Ｓ𝐒𝑆𝖲𝚂ˢ", "B": "Ｂ𝐁ℬ𝔅", "h": "ｈℎ𝐡𝒉ₕʰ", "d": "ｄ𝐝ⅆ", "f": "ｆ𝐟"}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["2*B*S*h*d_ff", "S*h", "B + d_ff"]), st.data())
def test_lookalike_letters_are_refused_not_read_as_the_symbol(formula, data):
    at = data.draw(st.sampled_from([i for i, c in enumerate(formula) if c in LOOKALIKES]))
    lookalike = data.draw(st.sampled_from(LOOKALIKES[formula[at]]))
    with pytest.raises(FormulaError, match="stands for"):
        parse_formula(formula[:at] + lookalike + formula[at + 1:], SYMBOLS)
    with pytest.raises(FormulaError, match="LIGATURE FF"):
        parse_formula("2*B*S*h*d_ﬀ", SYMBOLS)


@pytest.mark.parametrize("text, fragment", [
    ("S/0", "divides by zero"), ("S//(h-h)", "divides by zero"), ("max(S, 0/0)", "divides by zero"),
    ("sqrt(-1)", "not a finite real number"), ("sqrt(-S)", "not a finite real number"),
    ("log2(0)", "not a finite real number"), ("log2(-2)", "not a finite real number"), ("0**-1", "not a finite"),
    ("1e-400*S", "smaller than"), ("1e400", "larger than"), ("S # a comment", "comment"),
])
def test_values_that_are_not_finite_real_numbers_are_refused(text, fragment):
    with pytest.raises(FormulaError, match=fragment):
        parse_formula(text, SYMBOLS)


def test_floats_that_are_not_numbers_are_refused():
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(FormulaError, match="not a number"):
            parse_formula(value, SYMBOLS)


# ---------------------------------------------------------------------------------------------
# Printing round-trips: what a page prints parses back to the same expression.

ATOMS = st.one_of(NAMES, SMALL, st.sampled_from(["1.5", "0.25", "3"]))


def _combine(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//"]), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, st.integers(min_value=-3, max_value=4)).map(lambda t: f"({t[0]})**{t[1]}"),
        children.map(lambda c: f"-{c}"),
        st.tuples(st.sampled_from(["ceil", "floor", "log2", "sqrt"]), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["max", "min"]), children, children).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
    )


FORMULAS = st.recursive(ATOMS, _combine, max_leaves=8)


@settings(max_examples=500, deadline=None)
@given(FORMULAS)
def test_printed_formulas_parse_back_to_the_same_expression(text):
    expr = refused_or_arithmetic(text)
    if expr is None:
        return
    for printed in (plain_text(expr), source_text(text)):
        again = parse_formula(printed, SYMBOLS)
        # The same tree, or (where sympy's automatic rewriting orders a product of sums differently,
        # e.g. log2(1.5) = (log(3) - log(2))/log(2)) an expression whose difference expands to zero.
        assert again == expr or sympy.expand(again - expr) == 0, f"{text} -> {printed} -> {again}"


def test_negative_and_fractional_powers_print_in_page_notation():
    assert source_text("S**-1") == "S⁻¹"  # was "S ×  × -1"
    assert source_text("(S+h)**(-2) * B") == "(S+h)⁻² × B"
    assert plain_text(parse_formula("h/S**2", SYMBOLS)) == "h/S²"
    assert plain_text(parse_formula("sqrt(S)**3", SYMBOLS)) == "sqrt(S)³"
    assert plain_text(parse_formula("ceil(log2(S)) * log2(3)", SYMBOLS)) == "log2(3) × ceil(log2(S))"


def test_the_names_a_formula_reads_are_listed_once_and_sorted():
    from opdoc.formula import names_in

    assert names_in("2 * B * S**2 + ceil(x / y) + S") == ("B", "S", "ceil", "x", "y")
    assert names_in(3) == () and names_in(2.5) == ()
    with pytest.raises(FormulaError):
        names_in("B +")


def test_a_formula_is_kept_by_the_values_of_the_names_it_reads_and_a_failure_is_not_kept():
    H, W, Q = sympy.Integer(1024), sympy.Integer(7), sympy.Integer(2)
    assert parse_formula("H // 16", {"H": H}) == 64  # 1024 / 16
    assert parse_formula("H // 16", {"H": sympy.Integer(640)}) == 40  # 640 / 16: not the kept 64
    assert parse_formula("H // 16", {"H": H, "W": W}) == 64  # W is not read: the kept value serves
    with pytest.raises(FormulaError, match="unknown symbol 'Q'"):
        parse_formula("H + Q", {"H": H})
    assert parse_formula("H + Q", {"H": H, "Q": Q}) == 1026  # 1024 + 2, once Q is bound


def test_a_bind_formula_is_evaluated_again_when_a_name_it_reads_changes():
    # parse_formula keeps a bind formula's value by the values of the names it reads: an override of
    # one of them must give the formula's new value, and the old binding must keep its own.
    from opdoc.evaluate import Evaluator
    from opdoc.pipeline import Paths, load
    from opdoc_testing import ROOT

    catalog, _ = load(Paths(root=ROOT))
    evaluator = Evaluator(catalog)
    symbol = catalog.symbols
    default = evaluator.binding("sam", "base_view")
    smaller = evaluator.binding("sam", "base_view", {"H_img": 640})
    # H_p = H_img / 16 (the 16 px patch): 1024 / 16 = 64 and 640 / 16 = 40; S = H_p * W_p
    assert (default[symbol["H_p"]], smaller[symbol["H_p"]]) == (64, 40)
    assert (default[symbol["S"]], smaller[symbol["S"]]) == (64 * 64, 40 * 64)
    assert evaluator.binding("sam", "base_view")[symbol["H_p"]] == 64
