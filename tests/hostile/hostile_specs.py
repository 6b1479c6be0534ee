"""Builders of hostile and broken inputs, shared by the tests in this folder.

`markup_everywhere(root)` writes the tiny fixture with markup in every field a reader sees: each
payload, if it reached a page as live HTML or Markdown, would set `window.__pwned`, open a dialog, or
add an element or attribute that Markdown itself never writes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from opdoc_testing import ROOT, TINY

SPECS = Path("specs/tiny")

# One line: what a plain-text field receives. Each piece attacks one way into a page.
INLINE = ("<img src=x onerror=\"window.__pwned=1\"> <script>window.__pwned=1;alert(1)</script> "
          "``` ` `` [link](javascript:window.__pwned=1) <!-- --> {: onclick=\"window.__pwned=1\"} "
          "| $$ \\( x \\) & &lt;b&gt; ]] [[ \\")
# Several lines: what a code block or prose field receives (a fence line closes a code block early).
BLOCK = ("first line\n```\n<img src=x onerror=\"window.__pwned=1\">\n~~~\n</code></pre><script>window.__pwned=1</script>\n"
         "````\n[x](javascript:window.__pwned=1)\n# heading {: onclick=\"window.__pwned=1\"}\n\n```\nunclosed")


def tiny_copy(root: Path) -> Path:
    shutil.copytree(TINY, root, dirs_exist_ok=True)
    return root


def load(root: Path, name: str) -> dict:
    return yaml.safe_load((root / SPECS / name).read_text(encoding="utf-8"))


def save(root: Path, name: str, data: dict) -> None:
    (root / SPECS / name).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def markup_everywhere(root: Path) -> Path:
    """The tiny fixture with INLINE or BLOCK in every field that reaches a page as text."""
    tiny_copy(root)
    model = load(root, "model.yaml")
    model["title"] = "Tiny " + INLINE
    model["symbols"] = {name: meaning + " " + INLINE for name, meaning in model["symbols"].items()}
    scope = model["scopes"]["language"]
    scope["title"] += INLINE
    scope["source"] += INLINE
    scope["sweep"]["label"] += INLINE
    for example in scope["examples"].values():
        example["title"] += " " + INLINE
        example["why"] += " " + INLINE
    save(root, "model.yaml", model)

    for name in ("DeepseekV2MLP.yaml", "DeepseekV2RMSNorm.yaml"):
        spec = load(root, name)
        spec["summary"] += " " + INLINE
        spec["upstream"]["file"] += INLINE
        spec["upstream"]["source"] += " " + INLINE
        for param in spec["constructor"]["parameters"].values():
            param["description"] += " " + BLOCK
        components = spec["constructor"].get("components", {})
        spec["constructor"]["components"] = {
            key + INLINE: {"type": value["type"] + INLINE, "purpose": value["purpose"] + " " + BLOCK}
            for key, value in components.items()}
        spec["constructor"]["behavior"] = [BLOCK]
        for tensor in spec["tensors"]:
            tensor["note"] = BLOCK
            if tensor["role"] == "parameter":  # free text: no formula names a parameter tensor
                old = tensor["name"]
                tensor["name"] = old + "\n```\n" + INLINE
                for operation in spec.get("operations", []):
                    operation["reads"] = [tensor["name"] if r == old else r for r in operation.get("reads", [])]
        for operation in spec.get("operations", []):
            operation["name"] += " " + INLINE
            operation["explain"] += " " + BLOCK
        for child in spec.get("children", []):
            child["why"] += " " + BLOCK
        for note in spec["memory"]["peak"].values():
            note["explain"] += " " + BLOCK
        for participant in spec["flow"]["participants"]:
            participant["label"] = participant.get("label", participant["id"]) + " " + INLINE
        spec["flow"]["steps"] = [step + " " + INLINE for step in spec["flow"]["steps"]] + [INLINE]
        spec["related"] = {"uses": {"Thing" + INLINE: BLOCK}, "patterns": {INLINE: INLINE}}
        prose = spec["prose"]
        for key in ("what_it_is", "performance"):
            prose[key] += " " + BLOCK
        for key in ("pseudo_code", "math", "usage"):
            prose[key] = prose.get(key, "") + BLOCK
        prose["implementation_notes"] = [BLOCK, INLINE]
        prose["references"] = [*prose["references"], BLOCK]
        save(root, name, spec)
    return root


def build_in_subprocess(root: Path, *extra: str, env: dict | None = None,
                        timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "opdoc", "build", "--root", str(root),
                           "--site", str(root / "site"), *extra],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)
