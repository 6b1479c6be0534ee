"""opdoc.exact: a formula's value at many bindings, exactly, without building sympy trees."""

import sympy

from opdoc.exact import values_at
from opdoc.formula import parse_formula

NAMES = ("B", "S", "k", "h", "p", "H_img", "E")
SYMBOLS = {name: sympy.Symbol(name, positive=True) for name in NAMES}


def at(text: str, **bindings) -> list[float]:
    """The formula at one binding per keyword-list position: at('S*h', S=[1, 2], h=[3, 3])."""
    count = len(next(iter(bindings.values())))
    rows = [{SYMBOLS[name]: sympy.Integer(values[i]) for name, values in bindings.items()} for i in range(count)]
    return values_at(parse_formula(text, SYMBOLS), rows)


def test_polynomial_at_several_sizes():
    # 2*B*S*h*3 + 4*B*S*S*h at B=1, h=1280: S=256 -> 1,966,080 + 335,544,320; S=512 -> 3,932,160 + 1,342,177,280
    assert at("2*B*S*h*3 + 4*B*S*S*h", B=[1, 1], S=[256, 512], h=[1280, 1280]) == [337_510_400.0, 1_346_109_440.0]


def test_floor_division_and_min_max():
    # H_img // p at 1000 px, p = 16: 62 (62.5 rounded down); min(E, B*S*k) with E = 64: B*S*k = 6 -> 6, 6144 -> 64
    assert at("H_img // p", H_img=[1000], p=[16]) == [62.0]
    assert at("min(E, B*S*k)", E=[64, 64], B=[1, 1], S=[1, 1024], k=[6, 6]) == [6.0, 64.0]
    assert at("max(S*h, 2*S*h) / 4", S=[3], h=[5]) == [7.5]  # 30 / 4


def test_ceil_of_log2_is_exact_at_and_around_powers_of_two():
    # A sort of n = B*S*k keys takes ceil(log2(n)) passes: n = 32768 = 2**15 -> 15; n = 32769 -> 16;
    # n = 49152 (B=1, S=8192, k=6) -> 16, since 2**15 < 49152 <= 2**16.
    assert at("B*S*k*ceil(log2(B*S*k))", B=[1, 1, 1], S=[32768, 32769, 8192], k=[1, 1, 6]) == [
        32768.0 * 15, 32769.0 * 16, 49152.0 * 16]
    assert at("floor(log2(S))", S=[1, 2, 3, 1023, 1024]) == [0.0, 1.0, 1.0, 9.0, 10.0]


def test_agrees_with_substitution_where_sympy_must_decide():
    # sqrt is left to sympy: sqrt(2*8) = 4, sqrt(2) is irrational.
    expr = parse_formula("sqrt(2*S) + log2(S)", SYMBOLS)
    rows = [{SYMBOLS["S"]: sympy.Integer(8)}, {SYMBOLS["S"]: sympy.Integer(1)}]
    assert values_at(expr, rows) == [float(expr.xreplace(row)) for row in rows] == [4.0 + 3.0, 2 ** 0.5]


def test_step_sums_match_hand_arithmetic_for_polynomials_and_other_terms():
    from opdoc.evaluate import sum_steps

    j, n, c = sympy.symbols("j n c", integer=True, positive=True)
    # Σ_{j=1}^{n} (c·j³ + j) = c·(n(n+1)/2)² + n(n+1)/2: Nicomachus' identity and Gauss's sum
    total = sum_steps(c * j ** 3 + j, j, sympy.Integer(1), n)
    assert sympy.expand(total - (c * (n * (n + 1) / 2) ** 2 + n * (n + 1) / 2)) == 0
    # from 3 to n + 2: Σ_{j=3}^{n+2} j² = (n+2)(n+3)(2n+5)/6 - 1 - 4
    total = sum_steps(j ** 2, j, sympy.Integer(3), n + 2)
    assert sympy.expand(total - ((n + 2) * (n + 3) * (2 * n + 5) / 6 - 5)) == 0
    # a term with the step inside min(): summed number by number; Σ_{j=1}^{6} min(j, 4) = 1+2+3+4+4+4 = 18,
    # beside a polynomial term Σ_{j=1}^{6} 2j = 42
    total = sum_steps(sympy.Min(j, 4) + 2 * j, j, sympy.Integer(1), sympy.Integer(6))
    assert total == 18 + 42


def test_a_min_or_max_that_picks_one_line_over_the_whole_range_is_summed_as_that_line(monkeypatch):
    """A decode loop's launch count 24·min(1, j + 284) + 1161 over 8191 steps is (24 + 1161)·8191 =
    9,706,335, summed as a polynomial instead of step by step; lines that cross inside the range are
    still summed step by step, and both give the brute-force sums."""
    from opdoc import evaluate
    from opdoc.formula import maximum, minimum

    j = sympy.Symbol("j", integer=True, positive=True)
    stepped = []
    exact_values = evaluate.exact_values
    monkeypatch.setattr(evaluate, "exact_values", lambda *args: stepped.append(args) or exact_values(*args))

    def brute(expr, first, last):
        return sum(expr.xreplace({j: k}) for k in range(first, last + 1))

    launches = 24 * minimum(1, j + 284) + 1161
    assert evaluate.sum_steps(launches, j, sympy.Integer(1), sympy.Integer(8191)) == (24 + 1161) * 8191
    # Σ_{j=1}^{20} max(j, 5) = 5·5 + (6 + ... + 20) = 25 + 195 = 220 (the lines cross at j = 5);
    # Σ max(3, 10 - j) = (9 + 8 + ... + 3) + 13·3 = 42 + 39 = 81 (crossing at j = 7);
    # Σ min(2j, j + 40) = 2·210 = 420: 2j stays below j + 40 up to j = 40, a polynomial's sum
    crossing = maximum(j, 5) + sympy.Max(3, 10 - j) + minimum(2 * j, j + 40)
    assert stepped == []
    assert evaluate.sum_steps(crossing, j, sympy.Integer(1), sympy.Integer(20)) == brute(crossing, 1, 20) == 721
    assert len(stepped) == 2  # the two crossing terms; 2j is summed as a polynomial


def test_a_bindings_memo_serves_every_expression_evaluated_at_it():
    from opdoc.exact import exact_at

    a, b = sympy.symbols("a b", positive=True, integer=True)
    inner = a * b + 7
    values: dict = {}
    # (3·5 + 7)² = 484 and (3·5 + 7)·2 = 44, the inner node's value reused by the second
    assert exact_at(inner ** 2, {a: 3, b: 5}, values) == 484
    assert 22 in values.values()  # the inner node, kept for the next expression
    assert exact_at(2 * inner, {a: 3, b: 5}, values) == 44
    assert exact_at(sympy.sqrt(a), {a: 2}) is None  # a root stays sympy's to decide


def test_free_symbols_read_off_the_program_match_sympys():
    from opdoc.exact import free_symbols

    a, b, c = sympy.symbols("a b c", positive=True)
    layer = sympy.floor(a * b / 3) + sympy.Max(a, c)
    # a sum of 12 products that all share `layer`: sympy walks it 12 times, the program once
    stacked = sympy.Add(*(layer * (i + 1) * b for i in range(12)))
    assert free_symbols(stacked) == {a, b, c} == stacked.free_symbols
    assert free_symbols(sympy.Integer(7)) == set()
    assert free_symbols(sympy.sqrt(a) + c) == {a, c}  # a root has no program: sympy's own answer


def test_a_whole_number_made_of_fractions_is_kept_as_an_int_for_the_sums_above_it():
    """h·S/n with n dividing h·S: the product is whole, so the sum over it stays integer arithmetic
    (Fraction sums cost ten times more); the value kept for 1/n itself is the fraction 1/6."""
    from fractions import Fraction

    from opdoc import exact

    h, S, n = sympy.symbols("h S n", positive=True, integer=True)
    product = h * S / n
    total = product + 7
    values: dict = {}
    assert exact.run(total, {h: 4, S: 3, n: 6}, values) == 4 * 3 // 6 + 7
    kept = {exact._IDS[node]: node for node in (product, total, 1 / n)}
    assert {str(node): type(values[index]) for index, node in kept.items()} == {
        "S*h/n": int, "S*h/n + 7": int, "1/n": Fraction}
    assert exact.run(total, {h: 1, S: 3, n: 6}) == Fraction(1, 2) + 7  # not whole: a fraction, exactly
