"""Parsing mermaid diagrams with mermaid's own parser in headless Chromium.

All diagrams of a lint run go through one browser, one page and one
``evaluate`` call.  The page is ``about:blank`` with mermaid's bundle injected
from ``node_modules`` and every network request refused, so nothing leaves the
machine.  When Chromium, Playwright or mermaid is missing,
:class:`MermaidUnavailable` carries a message that says how to install it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = [
    "CHROMIUM_ARGS",
    "MermaidResult",
    "MermaidUnavailable",
    "find_chromium",
    "find_mermaid_js",
    "parse_diagrams",
]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DEFAULT_CHROMIUM = "/usr/bin/chromium"
MERMAID_RELATIVE = Path("node_modules/mermaid/dist/mermaid.min.js")
SKIP_HINT = "or pass --no-mermaid to skip the diagram check"

_PARSE_ALL = """
async (sources) => {
  mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
  const results = [];
  for (const source of sources) {
    try {
      const parsed = await mermaid.parse(source);
      results.push({ ok: true, type: parsed && parsed.diagramType ? parsed.diagramType : "" });
    } catch (error) {
      const hash = error && error.hash ? error.hash : null;
      results.push({
        ok: false,
        name: error && error.name ? String(error.name) : "Error",
        message: String(error && error.message ? error.message : error),
        line: hash && hash.loc ? hash.loc.first_line : (hash ? hash.line : null),
      });
    }
  }
  return results;
}
"""


class MermaidUnavailable(RuntimeError):
    """The diagram check cannot run here; the message says how to fix that."""


@dataclass(frozen=True)
class MermaidResult:
    ok: bool
    message: str = ""
    line: int = 1  # 1-based, within the diagram's text
    diagram_type: str = ""


def find_chromium() -> str | None:
    """``$OPDOC_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else ``PATH``."""
    configured = os.environ.get("OPDOC_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    if Path(DEFAULT_CHROMIUM).is_file():
        return DEFAULT_CHROMIUM
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def find_mermaid_js() -> Path | None:
    """``$OPDOC_MERMAID_JS``, else ``node_modules`` under the working directory
    or the checkout holding this package."""
    configured = os.environ.get("OPDOC_MERMAID_JS")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / MERMAID_RELATIVE
        if candidate.is_file():
            return candidate
    return None


def _summarise(name: str, message: str) -> str:
    if name == "UnknownDiagramError" or message.startswith("No diagram type detected"):
        return "mermaid does not recognise the diagram type (the first line must name one, e.g. `sequenceDiagram`)"
    expecting = re.search(r"Expecting (.*), got (.*)$", message, re.MULTILINE)
    if expecting:
        expected = [item.strip() for item in expecting.group(1).split(",")]
        shown = ", ".join(expected[:6]) + (f" (+{len(expected) - 6} more)" if len(expected) > 6 else "")
        return f"mermaid parse error: expected {shown}, got {expecting.group(2).strip()}"
    first = next((part.strip() for part in message.splitlines() if part.strip()), "parse failed")
    return f"mermaid parse error: {first[:300]}"


def _result_from(raw: dict, source: str) -> MermaidResult:
    if raw.get("ok"):
        return MermaidResult(True, diagram_type=str(raw.get("type") or ""))
    message = str(raw.get("message") or "")
    line = None
    stated = re.search(r"on line (\d+)", message)
    if stated:
        line = int(stated.group(1))
    elif isinstance(raw.get("line"), int):
        line = int(raw["line"])
    count = max(len(source.split("\n")), 1)
    line = min(max(line or 1, 1), count)
    return MermaidResult(False, _summarise(str(raw.get("name") or ""), message), line)


def parse_diagrams(
    sources: Sequence[str],
    *,
    chromium: str | None = None,
    mermaid_js: Path | None = None,
    timeout_s: float = 60.0,
) -> list[MermaidResult]:
    """Parse every diagram in ``sources`` in a single headless browser session."""
    if not sources:
        return []
    executable = chromium or find_chromium()
    if executable is None or not Path(executable).is_file():
        where = executable or os.environ.get("OPDOC_CHROMIUM") or DEFAULT_CHROMIUM
        raise MermaidUnavailable(
            f"Chromium was not found ({where}); install it with `apt-get install chromium` "
            f"(or point OPDOC_CHROMIUM at a Chromium binary), {SKIP_HINT}"
        )
    script = mermaid_js or find_mermaid_js()
    if script is None or not Path(script).is_file():
        raise MermaidUnavailable(
            f"mermaid was not found ({MERMAID_RELATIVE}); run `npm install` at the repository root "
            f"(or point OPDOC_MERMAID_JS at mermaid.min.js), {SKIP_HINT}"
        )
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise MermaidUnavailable(
            "Playwright for Python is not installed; install it with `pip install -e .[test]` "
            f"(or `pip install playwright`), {SKIP_HINT}"
        ) from None

    timeout_ms = timeout_s * 1000
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS, timeout=timeout_ms)
            try:
                page = browser.new_page()
                page.set_default_timeout(timeout_ms)
                page.route("**/*", lambda route: route.abort())
                page.set_content("<!doctype html><html><head></head><body></body></html>")
                page.add_script_tag(path=str(script))
                raw_results = page.evaluate(_PARSE_ALL, list(sources))
            finally:
                browser.close()
    except PlaywrightError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), str(exc))
        raise MermaidUnavailable(
            f"headless Chromium could not parse the diagrams ({first.strip()[:300]}); check that "
            f"`{executable}` runs (`apt-get install chromium`), {SKIP_HINT}"
        ) from None
    if not isinstance(raw_results, list) or len(raw_results) != len(sources):
        raise MermaidUnavailable(f"mermaid returned an unexpected answer; {SKIP_HINT}")
    return [_result_from(raw if isinstance(raw, dict) else {}, source) for raw, source in zip(raw_results, sources)]
