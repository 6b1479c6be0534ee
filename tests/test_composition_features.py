"""Composition features of the spec language and the evaluator, on small models written by each test.

Scopes that inherit another scope or import a symbol from one; a child whose op lives in an unrelated
scope; a child that runs once per step (summed in closed form), whose cache may replace the others;
totals split by stage; tensors that are views. Every expected number is worked out by hand in a
comment beside it. The last tests hold the real DeepSeek-OCR specs to published figures.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import sympy
import yaml

from opdoc.cli import main as run
from opdoc.pipeline import Paths, load
from opdoc.spec import Child, SpecError
from opdoc.view import _times
from opdoc_testing import ROOT, load_weight_index

# --------------------------------------------------------------------------- writing a model folder

SYMBOLS = """\
symbols:
  B: batch size
  S: tokens
  h: width
  d: inner width
  p: pieces
  u: a derived size
  w: an imported width
  N: {meaning: output tokens, min: 1}
  j: decode step
  S0: prompt tokens
  P: cached positions
"""


def model_yaml(scopes: str) -> str:
    """A model.yaml with the symbols above and the given `scopes:` block (indented by two)."""
    head = textwrap.dedent("""\
        model: comp
        title: Composition test model
        package: comp_model
        dtype: bfloat16
        attention_kernel: fused
        families: {f: Test ops}
        """)
    return head + SYMBOLS + "scopes:\n" + textwrap.indent(textwrap.dedent(scopes), "  ")


def scope(name: str, body: str, examples: str = "ex: {title: an example, bind: {B: 1, S: 8}, why: by hand}") -> str:
    """One scope: title, source, sweep and `examples` filled in; `body` adds config, bind, limits, ..."""
    lines = [f"{name}:", "  title: a scope of the test model", "  source: written for this test"]
    lines += ["  " + line for line in textwrap.dedent(body).strip().splitlines()]
    lines += ["  examples:"] + ["    " + line for line in examples.strip().splitlines()]
    lines += ["  sweep: {vary: [B], values: [1, 2], label: B}"]
    return "\n".join(lines) + "\n"


def op_spec(op: str, scope_name: str, tensors: list[dict], operations: list[dict] = (), children: list[dict] = (),
            peak: str | dict = "0") -> dict:
    """An op spec with every required field; only tensors, operations, children and peak vary."""
    peak = peak if isinstance(peak, dict) else {"any": peak}
    return {
        "op": op, "family": "f", "scope": scope_name, "summary": f"{op}, written for a test.",
        "upstream": {"file": "comp_model.py", "lines": [1, 2], "source": "this test"},
        "constructor": {"parameters": {}},
        "tensors": tensors, "operations": list(operations), "children": list(children),
        "memory": {"peak": {key: {"formula": formula, "explain": "by hand"} for key, formula in peak.items()}},
        "flow": {"participants": [{"id": "X", "label": "x"}], "steps": ["X->>X: runs"]},
        "prose": {"what_it_is": f"{op} for a test.", "pseudo_code": "pass", "usage": "none",
                  "performance": "none", "references": ["this test"]},
    }


def write_model(folder: Path, model: str, *specs: dict) -> Path:
    """The spec folder `folder/specs/comp` with model.yaml and one YAML per op; returns the folder."""
    specs_dir = folder / "specs" / "comp"
    specs_dir.mkdir(parents=True)
    (specs_dir / "model.yaml").write_text(model, encoding="utf-8")
    for spec in specs:
        (specs_dir / f"{spec['op']}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return specs_dir


def load_model(folder: Path, model: str, *specs: dict):
    """(catalog, evaluator) exactly as every command loads them (bindings, signs and closed forms checked)."""
    write_model(folder, model, *specs)
    return load(Paths(root=folder))


def values(ev, scope_name: str, example: str, **overrides) -> dict[str, int]:
    """A scope's binding at an example, by symbol name."""
    return {symbol.name: value for symbol, value in ev.binding(scope_name, example, overrides).items()}


def line_of(text: str, marker: str) -> int:
    """The 1-based line of the only line of `text` that contains `marker`."""
    found = [number for number, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(found) == 1, (marker, found)
    return found[0]


def x(name: str, role: str, *shape, **more) -> dict:
    return {"name": name, "role": role, "shape": list(shape), **more}


def operation(name: str, unit: str, flops, reads=(), writes=(), **more) -> dict:
    return {"name": name, "unit": unit, "flops": flops, "reads": list(reads), "writes": list(writes),
            "explain": "by hand", **more}


# A trivial op so that a scope has something to evaluate (3 FLOPs per batch row, one parameter row of h).
def plain(op: str, scope_name: str) -> dict:
    return op_spec(op, scope_name, [x("x", "input", "B", "h"), x("wt", "parameter", "h"), x("y", "output", "B", "h")],
                   [operation("scale", "cuda", "B*h", ["x", "wt"], ["y"])], peak="y")


# --------------------------------------------------------------------------- 1. inherits

INHERITING = """\
base:
  title: the scope others start from
  source: written for this test
  config: {width: 4, max_tokens: 64}
  bind: {h: width, d: 2*width}
  examples:
    ex: {title: eight tokens, bind: {B: 1, S: 8}, why: by hand}
  sweep: {vary: [S], values: [8, 16], label: S}
  limits:
    - {value: S, at_most: max_tokens, why: BASE-LIMIT the base scope's context}
derived:
  title: a scope that inherits base
  source: written for this test
  inherits: base
  config: {width: WIDTH}
  bind: {d: 3*width, u: max_tokens + 1}
  examples:
    ex2: {title: two rows, bind: {B: 2}, why: by hand}
  sweep: {vary: [B], values: [1, 2], label: B}
  limits:
    - {value: h, at_most: 10, why: OWN-LIMIT the derived scope's width}
"""


def test_an_inheriting_scope_starts_from_the_base_and_its_own_entries_win(tmp_path):
    model = model_yaml(INHERITING.replace("WIDTH", "6"))
    _, ev = load_model(tmp_path, model, plain("Wide", "derived"), plain("Narrow", "base"))
    derived = values(ev, "derived", "ex2")
    # own config width 6 replaces base's 4, and base's bind h: width reads it: h = 6
    assert derived["h"] == 6
    # own bind d: 3*width replaces base's 2*width: 3 × 6 = 18
    assert derived["d"] == 18
    # base's configuration key max_tokens is inherited: u = 64 + 1 = 65
    assert derived["u"] == 65
    # the base scope keeps its own values: h = 4, d = 2 × 4 = 8, and binds no u
    base = values(ev, "base", "ex")
    assert (base["h"], base["d"], "u" in base) == (4, 8, False)
    # the inherited limit S <= max_tokens names S, which derived never binds: skipped, no error;
    # an op of derived evaluates at derived's values: B × h = 2 × 6 = 12 FLOPs
    assert ev.evaluate_at("Wide", "ex2")["cuda_flops"] == 12


def test_an_own_limit_of_an_inheriting_scope_is_still_enforced_with_its_line(tmp_path):
    model = model_yaml(INHERITING.replace("WIDTH", "12"))  # h = width = 12 > 10
    with pytest.raises(SpecError) as caught:
        load_model(tmp_path, model, plain("Wide", "derived"))
    line = line_of(model, "OWN-LIMIT")
    assert f"specs/comp/model.yaml:{line}: scopes.derived.limits.0: h = 12 exceeds 10 = 10" in str(caught.value)
    assert "BASE-LIMIT" not in str(caught.value)  # the skipped inherited limit says nothing


def inherited_limit_broken(tmp_path) -> tuple[str, str]:
    """(model.yaml, the error) when an example of derived gives S = 65, past the inherited S <= max_tokens."""
    model = model_yaml(INHERITING.replace("WIDTH", "6").replace("ex2: {title: two rows, bind: {B: 2}",
                                                                "ex2: {title: two rows, bind: {B: 2, S: 65}"))
    with pytest.raises(SpecError) as caught:
        load_model(tmp_path, model, plain("Wide", "derived"))
    return model, str(caught.value)


def test_an_own_limit_naming_a_symbol_the_scope_never_binds_is_an_error(tmp_path):
    """Only inherited limits may name what the scope leaves unbound; an own one is a mistake, at its line."""
    model = model_yaml(INHERITING.replace("WIDTH", "6").replace("{value: h, at_most: 10", "{value: S, at_most: 10"))
    with pytest.raises(SpecError) as caught:
        load_model(tmp_path, model, plain("Wide", "derived"))
    assert f"specs/comp/model.yaml:{line_of(model, 'OWN-LIMIT')}: scopes.derived.limits.0: " in str(caught.value)
    assert "'S'" in str(caught.value)


def test_an_inherited_limit_the_scope_binds_is_enforced(tmp_path):
    _, message = inherited_limit_broken(tmp_path)
    assert "S = 65 exceeds max_tokens = 64: BASE-LIMIT" in message  # 65 tokens > the inherited 64


def test_an_inherited_limits_error_points_at_the_line_it_is_written(tmp_path):
    model, message = inherited_limit_broken(tmp_path)
    assert f"model.yaml:{line_of(model, 'BASE-LIMIT')}: scopes.base.limits.0:" in message, message


# --------------------------------------------------------------------------- 2. imports

def importing(imports: str) -> str:
    return model_yaml(
        scope("other", "config: {hidden: 7}\nbind: {w: hidden, h: 3}")
        + scope("user", f"imports: {imports}\nbind: {{h: 2, u: w + 1}}"))


def test_an_imported_symbol_takes_the_other_scopes_value(tmp_path):
    _, ev = load_model(tmp_path, importing("{w: other}"), plain("User", "user"))
    user = values(ev, "user", "ex")
    # w is other's hidden = 7; user's own bind reads it after the import: u = 7 + 1 = 8
    assert (user["w"], user["u"]) == (7, 8)
    # only the imported symbol comes over: h stays user's own 2, not other's 3
    assert user["h"] == 2


@pytest.mark.parametrize("imports, says", [
    ("{p: other}", "scope 'other' does not bind p"),
    ("{w: elsewhere}", "'elsewhere' is not another scope of this model"),
])
def test_an_import_the_other_scope_cannot_give_is_a_located_error(tmp_path, imports, says):
    model = importing(imports)
    with pytest.raises(SpecError) as caught:
        load_model(tmp_path, model, plain("User", "user"))
    symbol = imports.strip("{}").split(":")[0]
    where = f"specs/comp/model.yaml:{line_of(model, 'imports:')}: scopes.user.imports.{symbol}"
    assert f"{where}: {says}" in str(caught.value)


# --------------------------------------------------------------------------- 3. a child from another scope

UNRELATED = (scope("outer", "config: {hidden: 4}\nbind: {h: hidden, p: 5}",
                   "ex: {title: three tokens, bind: {B: 1, S: 3}, why: by hand}")
             + scope("inner", "config: {hidden: 8, pieces: 2}\nbind: {h: hidden, p: pieces}",
                     "ex: {title: one token, bind: {B: 1, S: 1}, why: by hand}"))
INNER = op_spec("Inner", "inner",
                [x("x", "input", "S", "h"), x("wgt", "parameter", "h", "h"), x("y", "output", "S", "h")],
                [operation("mm", "tensor", "2*S*h*h", ["x", "wgt"], ["y"])], peak="y")


def outer(bind: dict) -> dict:
    return op_spec("Outer", "outer", [x("x", "input", "S", "h"), x("y", "output", "S", "h")],
                   [operation("own", "cuda", "S*h", ["x"], ["y"])],
                   [{"name": "inner", "op": "Inner", "bind": bind, "why": "a module of another scope"}],
                   peak="max(y, peak(inner))")


def test_a_child_of_an_unrelated_scope_takes_that_scopes_configuration(tmp_path):
    _, ev = load_model(tmp_path, model_yaml(UNRELATED), INNER, outer({}))
    result = ev.evaluate_at("Outer", "ex")
    # the child's h is inner's 8, not outer's 4; S = 3 comes from the parent: 2 × 3 × 8 × 8 = 384
    assert result["tensor_flops"] == 384
    # the parent's own operation keeps outer's h = 4: S × h = 3 × 4 = 12
    assert result["cuda_flops"] == 12
    # the child's weight is h × h at inner's h: 8 × 8 = 64 parameters, 128 bytes in bf16
    assert (result["parameters"], result["parameter_bytes"]) == (64, 128)
    # the child's output S × h × 2 B = 3 × 8 × 2 = 48 bytes; the parent's own y 3 × 4 × 2 = 24: the peak is 48
    assert result["peak"] == 48


def test_a_bind_that_names_the_child_scopes_symbol_means_that_scopes_value(tmp_path):
    """In the child's bind, p is inner's p = 2 (its configuration), not outer's p = 5."""
    _, ev = load_model(tmp_path, model_yaml(UNRELATED), INNER, outer({"S": "S*p"}))
    # child S = 3 × 2 = 6 (with outer's p it would be 15): 2 × 6 × 8 × 8 = 768
    assert ev.evaluate_at("Outer", "ex")["tensor_flops"] == 768


def test_a_dtype_override_reaches_a_child_of_an_unrelated_scope(tmp_path):
    _, ev = load_model(tmp_path, model_yaml(UNRELATED), INNER, outer({}))
    result = ev.evaluate("Outer", ev.binding("outer", "ex", {"dtype": "float32"})).totals
    # the child's weight in fp32: 8 × 8 × 4 = 256 bytes (not bf16's 128)
    assert result["parameter_bytes"] == 256


# --------------------------------------------------------------------------- 4. a stepped child

STEPPING = scope("gen", "bind: {}", textwrap.dedent("""\
    short: {title: four output tokens, bind: {B: 1, S0: 5, N: 4}, why: by hand}
    long: {title: seven output tokens, bind: {B: 1, S0: 5, N: 7}, why: by hand}
    one: {title: two output tokens, bind: {B: 1, S0: 5, N: 2}, why: one step}"""))
STEP = op_spec("Step", "gen",
               [x("x", "input", "P"), x("wgt", "parameter", 3), x("kv", "cache", "P"), x("o", "output", "P")],
               [operation("f", "cuda", "2*P + 3", ["x", "wgt"], ["o"])], peak="kv + o")


def generation(op: str, replaces_cache: bool = False, count: int = 1, stage: str | None = None) -> dict:
    steps = {"symbol": "j", "first": 1, "last": "N - 1", "replaces_cache": replaces_cache}
    return op_spec(op, "gen", [x("prompt_kv", "cache", "S0")], [],
                   [{"name": "step", "op": "Step", "count": count, "steps": steps, "bind": {"P": "S0 + j - 1"},
                     "why": "one decode step", **({"stage": stage} if stage else {})}],
                   peak="prompt_kv + peak(step)")


def stepping(tmp_path):
    return load_model(tmp_path, model_yaml(STEPPING), STEP, generation("Keep"), generation("Replace", True),
                      generation("Twice", True, count=2), generation("Staged", stage="decode"))[1]


@pytest.mark.parametrize("example, flops", [
    # N = 4: j = 1, 2, 3 gives P = 5, 6, 7 and 2P + 3 = 13 + 15 + 17 = 45
    # (closed form (N - 1)(2·S0 + 3) + (N - 1)(N - 2) = 3 × 13 + 3 × 2 = 45)
    ("short", 45),
    # N = 7: 13 + 15 + 17 + 19 + 21 + 23 = 108 = 6 × 13 + 6 × 5
    ("long", 108),
    # N = 2: one step at P = 5: 13
    ("one", 13),
])
def test_a_stepped_childs_flops_are_summed_over_its_steps(tmp_path, example, flops):
    ev = stepping(tmp_path)
    assert ev.evaluate_at("Keep", example)["cuda_flops"] == flops
    assert ev.evaluate_at("Twice", example)["cuda_flops"] == 2 * flops  # two instances per step


def test_a_stepped_child_with_a_stage_sums_its_steps_into_the_stage(tmp_path):
    ev = stepping(tmp_path)
    [stage] = ev.evaluate("Staged", ev.binding("gen", "short")).stages.values()
    # P = 5, 6, 7: FLOPs 13 + 15 + 17 = 45; reads x and the weight, Σ (2P + 6) = 36 + 18 = 54 B; writes o, Σ 2P = 36 B
    assert {name: int(value) for name, value in stage.items()} == {
        "tensor_flops": 0, "cuda_flops": 45, "forward_flops": 45, "io_read_bytes": 54, "io_write_bytes": 36}


def test_a_stepped_childs_peak_is_its_last_steps_and_its_weights_count_once(tmp_path):
    ev = stepping(tmp_path)
    short = ev.evaluate_at("Keep", "short")
    # last step j = 3: P = 5 + 3 - 1 = 7; the child's peak kv + o = 7 × 2 + 7 × 2 = 28 bytes;
    # the parent's peak prompt_kv + peak(step) = 5 × 2 + 28 = 38
    assert short["peak"] == 38
    # at N = 7 the last step has P = 5 + 6 - 1 = 10: 10 + 4 × 10 = 50
    assert ev.evaluate_at("Keep", "long")["peak"] == 50
    # the weight w holds 3 parameters, counted once however many steps read it (not 3 × 3 = 9)
    assert (short["parameters"], short["parameter_bytes"]) == (3, 6)
    assert ev.evaluate_at("Keep", "long")["parameters"] == 3
    # but every step reads it: io_read = Σ (2P + 3 × 2) over P = 5, 6, 7 = 36 + 18 = 54 bytes
    assert short["io_read_bytes"] == 54


def test_a_stepped_childs_caches_are_summed_unless_each_step_replaces_them(tmp_path):
    ev = stepping(tmp_path)
    keep, replace = ev.evaluate_at("Keep", "short"), ev.evaluate_at("Replace", "short")
    # every step's cache kept: the prompt's 5 × 2 = 10 plus Σ 2P over P = 5, 6, 7 = 36: 46 bytes;
    # activations: each step's output o, Σ 2P = 36 bytes
    assert (keep["kv_cache_bytes"], keep["activation_bytes"]) == (46, 36)
    # each step's cache replaces the ones before and the prompt's: only the last, 7 × 2 = 14 bytes, is a cache
    assert replace["kv_cache_bytes"] == 14
    # the others become activations: 36 + 10 + (10 + 12 + 14 - 14) = 36 + 10 + 22 = 68
    assert replace["activation_bytes"] == 68
    # nothing is lost or counted twice: 68 + 14 = 36 + 46 = 82
    assert replace["activation_bytes"] + replace["kv_cache_bytes"] == 82
    # two instances per step: 2 × 36 of outputs, 10 of prompt cache, 2 × 36 of step caches = 154 in all
    twice = ev.evaluate_at("Twice", "short")
    assert twice["activation_bytes"] + twice["kv_cache_bytes"] == 154


def test_two_instances_of_a_cache_replacing_step_each_keep_their_last_cache(tmp_path):
    twice = stepping(tmp_path).evaluate_at("Twice", "short")
    # two instances, each holding its last step's cache 7 × 2 = 14 bytes: 28 bytes
    assert twice["kv_cache_bytes"] == 28


def test_a_stepped_child_prints_as_a_sum_over_its_steps():
    def child(**more) -> Child:
        return Child(name="step", op="Step", why="a test", **more)

    steps = {"symbol": "j", "first": 1, "last": "N - 1"}
    assert _times(child(steps=steps)) == "Σ j = 1 … N - 1"
    assert _times(child(steps=steps, count=2)) == "Σ j = 1 … N - 1 of 2"
    assert _times(child(steps=steps, count="L - 1")) == "Σ j = 1 … N - 1 of (L - 1)"
    assert _times(child(count="L - 1")) == "(L - 1)"
    assert _times(child(count="L")) == "L"


def page_rows(ev, catalog, op: str):
    """The rows a page shows for an op (its only variant): operations, parameters, activations, caches."""
    from opdoc.view import ViewBuilder

    return ViewBuilder(catalog, ev, str, str, str)._variant(catalog.specs[op], None)


def row(rows, name: str):
    [found] = [r for r in rows if r.name == name]
    return found.formula, found.value


def test_a_stepped_childs_rows_on_the_page(tmp_path):
    catalog, ev = load_model(tmp_path, model_yaml(STEPPING), STEP, generation("Replace", True))
    view = page_rows(ev, catalog, "Replace")
    # at the first example (N = 4): 13 + 15 + 17 = 45 FLOPs
    assert row(view.operations, "step") == ("Σ j = 1 … N - 1 × FLOPs(Step, P → S0 + j - 1)", "45 FLOPs")
    # the cache each step replaces: the last step's 7 × 2 = 14 bytes
    assert row(view.caches, "step") == ("last of Σ j = 1 … N - 1 × Step (bf16 model dtype)", "14 B")


def test_a_stepped_child_that_keeps_its_caches_shows_their_sum(tmp_path):
    catalog, ev = load_model(tmp_path, model_yaml(STEPPING), STEP, generation("Keep"))
    # Σ 2P over P = 5, 6, 7 = 36 bytes: every step's cache, summed, not the last one's
    assert row(page_rows(ev, catalog, "Keep").caches, "step") == ("Σ j = 1 … N - 1 × Step (bf16 model dtype)", "36 B")


def test_a_stepped_childs_parameters_do_not_print_as_a_sum(tmp_path):
    catalog, ev = load_model(tmp_path, model_yaml(STEPPING), STEP, generation("Replace", True))
    formula, value = row(page_rows(ev, catalog, "Replace").parameters, "step")
    assert value == "3 parameters"  # the weight's 3 parameters, once
    assert "Σ" not in formula, formula


def test_the_parts_add_up_to_the_totals_when_steps_replace_the_cache(tmp_path):
    _, ev = load_model(tmp_path, model_yaml(STEPPING), STEP, generation("Replace", True))
    result = ev.evaluate("Replace", ev.binding("gen", "short"))
    own = sum(part.bytes for part in result.tensors if part.role == "cache")  # prompt_kv: 5 × 2 = 10
    children = sum(part.totals["kv_cache_bytes"] for part in result.children)  # the last step's 14
    # the total is 14 (the last step's cache alone); the parts shown give 10 + 14 = 24
    assert own + children == result.totals["kv_cache_bytes"] == 14


# --------------------------------------------------------------------------- 5. stages

LEAF1 = op_spec("Leaf1", "main", [x("x", "input", "S"), x("y", "output", "S")],
                [operation("f1", "tensor", "6*S", ["x"], ["y"], stage="inner")], peak="y")
LEAF2 = op_spec("Leaf2", "main", [x("x", "input", "S"), x("y", "output", "2*S")],
                [operation("f2", "cuda", "5*S", ["x"], ["y"])], peak="y")
MID = op_spec("Mid", "main", [x("x", "input", "S"), x("z", "output", "S")],
              [operation("m", "cuda", "S", ["x"], ["z"], stage="alpha")],
              [{"name": "g", "op": "Leaf2", "count": 3, "stage": "beta", "why": "a grandchild"}], peak="peak(g) + z")
TOP = op_spec("Top", "main", [x("x", "input", "S"), x("wgt", "parameter", "S", "S"), x("y", "output", "S")],
              [operation("head", "tensor", "2*S*S", ["x", "wgt"], ["y"], stage="gamma")],
              [{"name": "a", "op": "Leaf1", "count": 2, "stage": "alpha", "why": "a staged child"},
               {"name": "mid", "op": "Mid", "why": "a child without a stage"}], peak="y + peak(mid)")
STAGES = scope("main", "bind: {}", "ex: {title: four tokens, bind: {B: 1, S: 4}, why: by hand}")

# At S = 4, bf16 (2 bytes per element):
#   Leaf1: f1 6 × 4 = 24 tensor FLOPs; reads x 8 B, writes y 8 B.
#   Leaf2: f2 5 × 4 = 20 CUDA FLOPs; reads x 8 B, writes y 2 × 4 × 2 = 16 B.
#   Mid: m 4 CUDA FLOPs (stage alpha), reads 8 B, writes 8 B; child g = 3 × Leaf2 (stage beta).
#   Top: head 2 × 4 × 4 = 32 tensor FLOPs (stage gamma), reads x 8 B + w 4 × 4 × 2 = 32 B, writes y 8 B;
#        child a = 2 × Leaf1 (stage alpha, its own stage "inner" not reported); child mid (no stage).
EXPECTED_STAGES = {
    # 2 × Leaf1 + Mid's m: tensor 2 × 24 = 48, CUDA 4; reads 2 × 8 + 8 = 24, writes 2 × 8 + 8 = 24
    "alpha": {"tensor_flops": 48, "cuda_flops": 4, "forward_flops": 52, "io_read_bytes": 24, "io_write_bytes": 24},
    # 3 × Leaf2, passed up through mid: CUDA 3 × 20 = 60; reads 3 × 8 = 24, writes 3 × 16 = 48
    "beta": {"tensor_flops": 0, "cuda_flops": 60, "forward_flops": 60, "io_read_bytes": 24, "io_write_bytes": 48},
    # head: 32 tensor FLOPs; reads 8 + 32 = 40, writes 8
    "gamma": {"tensor_flops": 32, "cuda_flops": 0, "forward_flops": 32, "io_read_bytes": 40, "io_write_bytes": 8},
}


def test_stage_totals_come_from_children_operations_and_grandchildren(tmp_path):
    _, ev = load_model(tmp_path, model_yaml(STAGES), LEAF1, LEAF2, MID, TOP)
    result = ev.evaluate("Top", ev.binding("main", "ex"))
    assert {stage: {name: int(value) for name, value in parts.items()}
            for stage, parts in result.stages.items()} == EXPECTED_STAGES
    # the stages hold all of Top's work: 52 + 60 + 32 = 144 = 32 + 2 × 24 + 4 + 3 × 20
    assert sum(parts["forward_flops"] for parts in result.stages.values()) == result.totals["forward_flops"] == 144
    for name in ("io_read_bytes", "io_write_bytes"):
        assert sum(parts[name] for parts in result.stages.values()) == result.totals[name]
    # an op's own stages when it is evaluated alone; none when nothing in its tree names one
    assert set(ev.evaluate("Leaf1", ev.binding("main", "ex")).stages) == {"inner"}
    assert ev.evaluate("Leaf2", ev.binding("main", "ex")).stages == {}


def test_eval_json_reports_the_stages_as_exact_integers(tmp_path, capsys):
    specs = write_model(tmp_path, model_yaml(STAGES), LEAF1, LEAF2, MID, TOP)
    assert run(["eval", "Top", "--root", str(tmp_path), "--specs", str(specs), "--format", "json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["stages"] == EXPECTED_STAGES  # == compares values and types: ints, not strings
    assert all(type(value) is int for parts in record["stages"].values() for value in parts.values())
    assert run(["eval", "Leaf2", "--root", str(tmp_path), "--specs", str(specs), "--format", "json"]) == 0
    assert "stages" not in json.loads(capsys.readouterr().out)[0]


# --------------------------------------------------------------------------- 6. views

def viewer(role: str) -> dict:
    return op_spec("Viewer", "main", [x("x", "input", "S", 4), x("last", role, 4), x("out", "output", 4)],
                   [operation("copy", "cuda", 4, ["last"], ["out"])], peak="out")


@pytest.mark.parametrize("role, activations", [
    ("view", 8),           # only out: 4 × 2 = 8 bytes; the view holds no memory of its own
    ("intermediate", 16),  # the same tensor as an intermediate adds its 4 × 2 = 8 bytes
])
def test_a_view_is_read_but_holds_no_memory(tmp_path, role, activations):
    _, ev = load_model(tmp_path, model_yaml(STAGES), viewer(role))
    result = ev.evaluate("Viewer", ev.binding("main", "ex"))
    # copy reads the last row, 4 elements × 2 B = 8 bytes (not the whole S × 4 × 2 = 32 of x)
    assert result.totals["io_read_bytes"] == 8
    assert result.totals["activation_bytes"] == activations
    assert result.totals["peak"] == 8  # the output's 8 bytes
    # a parent holding what Viewer returns, out(child), holds out's 8 bytes, never the view's
    assert ev.quantities("Viewer").output_bytes.xreplace(ev.binding("main", "ex")) == 8
    [part] = [part for part in result.tensors if part.name == "last"]
    assert (part.role, part.bytes) == (role, 8)


# --------------------------------------------------------------------------- the real DeepSeek-OCR specs

@pytest.fixture(scope="module")
def ocr_request():
    """`opdoc eval DeepseekOCRForCausalLM --example base --format json`, every variant."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run(["eval", "DeepseekOCRForCausalLM", "--root", str(ROOT), "--example", "base",
                    "--format", "json"]) == 0
    return {record["variant"]: record for record in json.loads(out.getvalue())}


def test_the_ocr_request_splits_into_stages_that_add_up(ocr_request):
    request = ocr_request["request"]
    assert {"SAM", "CLIP", "projector", "prefill", "decode"} <= set(request["stages"])
    for variant, record in ocr_request.items():
        for name in ("forward_flops", "tensor_flops", "cuda_flops", "io_read_bytes", "io_write_bytes"):
            total = record["quantities"][name]["value"]
            assert sum(parts[name] for parts in record["stages"].values()) == total, (variant, name)


def test_the_ocr_model_has_the_checkpoints_parameters(ocr_request):
    # model.safetensors.index.json of deepseek-ai/DeepSeek-OCR: total_size 6,672,212,480 bytes of bf16
    # weights, 2 bytes each: 3,336,106,240 parameters
    assert load_weight_index()["metadata"]["total_size"] == 6_672_212_480
    for record in ocr_request.values():
        assert record["quantities"]["parameters"]["value"] == 6_672_212_480 // 2 == 3_336_106_240


def test_the_reference_ocr_model_has_the_checkpoints_parameter_names():
    import torch

    from opdoc.models.deepseek_ocr.config import ClipConfig, DeepseekV2Config, ProjectorConfig, SamConfig
    from opdoc.models.deepseek_ocr.ocr import DeepseekOCRForCausalLM

    with torch.device("meta"):
        model = DeepseekOCRForCausalLM(DeepseekV2Config.from_scope(), SamConfig.from_scope(),
                                       ClipConfig.from_scope(), ProjectorConfig.from_scope())
    names = {name for name, _ in model.named_parameters()}
    checkpoint = set(load_weight_index()["weight_map"])
    assert sorted(names - checkpoint) == [] and sorted(checkpoint - names) == []
    # and their sizes add up to the checkpoint's: 6,672,212,480 / 2
    assert sum(parameter.numel() for parameter in model.parameters()) == 3_336_106_240


def test_a_child_of_another_scope_is_bound_in_two_steps_to_what_one_substitution_gives(evaluator):
    """SAM's encoder (its own scope) runs as the global view and as the tiles: its scope's values are
    substituted once for both, then each child's bind. The definition is one simultaneous xreplace of
    the whole child binding; every quantity of every child of the OCR model must come out the same."""
    item = evaluator.catalog.specs["DeepseekOCRModel"]
    compared = 0
    for index, child in enumerate(item.spec.children):
        binding = evaluator.child_binding(item, index)
        for variant in evaluator.variants(child.op) if child.variant is None else [child.variant]:
            for expr in evaluator.quantities(child.op, variant).derived().values():
                assert evaluator._bound(item, index, expr) == expr.xreplace(binding), (child.name, expr)
                compared += 1
    assert compared > 100  # 11 children, each with about 20 quantities
    # a caller may add to the binding it gets without changing the next caller's
    added = sympy.Symbol("added_by_a_caller")
    evaluator.child_binding(item, 0)[added] = 1
    assert added not in evaluator.child_binding(item, 0)
