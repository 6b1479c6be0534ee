"""`opdoc new`: a spec skeleton that loads, and fails the build only on its TODO markers."""

from __future__ import annotations

from pathlib import Path

from opdoc.pipeline import Paths
from opdoc.registry import FAMILIES
from opdoc.spec import SpecError, SpecProblem

SKELETON = """\
# yaml-language-server: $schema=../schema/op.schema.json
op: {name}
family: {family}
scope: {scope}
examples: [{example}]
summary: TODO one sentence on what {name} computes
upstream:
  file: TODO vendor file, e.g. modeling_deepseekv2.py
  lines: [1, 1]  # TODO first and last line of the class in the upstream file, decorators included
  source: TODO where the location comes from
implementation: opdoc.models.deepseek_ocr.TODO.{name}

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


def write_skeleton(paths: Paths, name: str, family: str, scope: str) -> Path:
    if not name.isidentifier():
        raise SpecError([SpecProblem("opdoc new", 0, "NAME", f"'{name}' is not a Python class name")])
    if family not in FAMILIES:
        raise SpecError([SpecProblem("opdoc new", 0, "--family", f"choose one of {', '.join(FAMILIES)}")])
    folder = paths.model_dirs()[0]
    target = folder / f"{name}.yaml"
    if target.exists():
        raise SpecError([SpecProblem(str(target), 0, "", "already exists; opdoc new never overwrites a spec")])
    example = "prefill" if scope == "language" else "base_view"
    target.write_text(SKELETON.format(name=name, family=family, scope=scope, example=example), encoding="utf-8")
    return target
