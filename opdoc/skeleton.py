"""`opdoc new`: a spec skeleton that loads, and fails the build only on its TODO markers."""

from __future__ import annotations

from pathlib import Path

from opdoc.pipeline import Paths
from opdoc.formula import suggest
from opdoc.spec import ModelConfig, SpecError, SpecProblem, read_yaml, validate

SKELETON = """\
# yaml-language-server: $schema=../schema/op.schema.json
op: {name}
family: {family}
scope: {scope}
examples: [{example}]
summary: TODO one sentence on what {name} computes
upstream:
  file: TODO the upstream file that defines {name}
  lines: [1, 1]  # TODO first and last line of the class in the upstream file, decorators included
# The reference class {name} is looked up in the model package {package}; write it there.

constructor:
  parameters: {{}}  # TODO one entry per __init__ parameter
  components: {{}}

tensors:
  - {{name: x, role: input, shape: [B, S, h], note: TODO}}
  - {{name: out, role: output, shape: [B, S, h], note: TODO}}

operations:
  - {{name: TODO, unit: cuda, flops: 0, reads: [x], writes: [out], explain: TODO}}

memory:
  peak:
    any: {{formula: out, explain: TODO when the peak happens}}

flow:
  participants:
    - {{id: X, label: x, tensor: x}}
    - {{id: M, label: {name}}}
    - {{id: Y, label: output, tensor: out}}
  steps:
    - 'X->>M: forward(x)'
    - 'M->>Y: TODO'

prose:
  what_it_is: TODO two to four paragraphs
  pseudo_code: |
    def forward(self, x):
        # TODO annotated steps with shapes
        return x
  usage: |
    # TODO a runnable example
  performance: TODO complexity, memory, stability, hardware, trade-offs, optimisation
  references:
    - TODO a paper or documentation
"""


def write_skeleton(paths: Paths, name: str, family: str | None, scope: str | None) -> Path:
    """Write `<name>.yaml` in the model folder; family and scope default to the model's first ones."""
    if not name.isidentifier():
        raise SpecError([SpecProblem("opdoc new", 0, "NAME", f"'{name}' is not a Python class name")])
    folder = paths.model_dirs()[0]
    model_file = folder / "model.yaml"
    model: ModelConfig = validate(read_yaml(model_file, str(model_file)), ModelConfig, str(model_file))
    family = family or next(iter(model.families))
    scope = scope or next(iter(model.scopes))
    if family not in model.families:
        raise SpecError([SpecProblem("opdoc new", 0, "--family", f"choose one of {', '.join(model.families)}"
                                                                  f"{suggest(family, list(model.families))}")])
    if scope not in model.scopes:
        raise SpecError([SpecProblem("opdoc new", 0, "--scope", f"choose one of {', '.join(model.scopes)}"
                                                                 f"{suggest(scope, list(model.scopes))}")])
    target = folder / f"{name}.yaml"
    if target.exists():
        raise SpecError([SpecProblem(str(target), 0, "", "already exists; opdoc new never overwrites a spec")])
    example = next(iter(model.scopes[scope].examples))
    target.write_text(SKELETON.format(name=name, family=family, scope=scope, example=example,
                                      package=model.package), encoding="utf-8")
    return target
