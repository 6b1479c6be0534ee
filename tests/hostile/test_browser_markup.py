"""Item 1 of issue 9, in a browser: pages built from a spec with markup in every text field run no
script of the spec's. Headless Chromium loads every page of the mkdocs site built from them (mermaid
diagrams and KaTeX included) and records any dialog, `window.__pwned` (which every payload sets),
event-handler attributes and scripts that mention the payload, in the page and in diagrams' shadow roots.

Chromium and Playwright as for tests/site/test_browser.py (skipped without them, failed under CI).
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from hostile_specs import INLINE, markup_everywhere
from opdoc.cli import main
from opdoc_testing import ROOT

pytestmark = pytest.mark.browser


def _site_helpers():
    """tests/site/test_browser.py, loaded by path (its module name is not unique among test folders)."""
    spec = importlib.util.spec_from_file_location("opdoc_site_browser", ROOT / "tests" / "site" / "test_browser.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SITE = _site_helpers()

# What a page must not show: run in the page after it rendered.
INSPECT = """
() => {
  const roots = [document];
  for (const el of document.querySelectorAll("*")) if (el.shadowRoot) roots.push(el.shadowRoot);
  const handlers = [], scripts = [];
  for (const root of roots) {
    for (const el of root.querySelectorAll("*")) {
      for (const attr of el.attributes) {
        if (attr.name.toLowerCase().startsWith("on")) handlers.push(`<${el.tagName.toLowerCase()} ${attr.name}>`);
        if (/^\\s*javascript:/i.test(attr.value)) handlers.push(`<${el.tagName.toLowerCase()} ${attr.name}=javascript:>`);
      }
      if (el.tagName === "SCRIPT" && el.textContent.includes("__pwned")) scripts.push(el.textContent.slice(0, 80));
    }
  }
  return {pwned: window.__pwned !== undefined, handlers, scripts, diagrams: roots.length - 1};
}
"""


@pytest.fixture(scope="module")
def hostile_html(tmp_path_factory) -> Path:
    root = markup_everywhere(tmp_path_factory.mktemp("hostile"))
    site = root / "site"
    (site / "measured").mkdir(parents=True)
    (site / "measured" / "cuda-report.json").write_text(json.dumps({"device": INLINE, "torch": INLINE, "results": [
        {"op": "DeepseekV2RMSNorm", "variant": INLINE, "kernel": INLINE, "example": "prefill", "point": INLINE,
         "peak_bytes": 1024, "formula_peak_bytes": 768, "median_seconds": 1e-5, "flops_per_second": 3e7}]}),
        encoding="utf-8")
    assert main(["build", "--root", str(root), "--site", str(site)]) == 0
    shutil.copytree(ROOT / "site" / "assets", site / "assets")  # the site's own script and style sheet
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = re.sub(r"(?m)^docs_dir:.*$", f"docs_dir: {json.dumps(str(site))}", config)
    config = re.sub(r"(?m)^site_dir:.*$", f"site_dir: {json.dumps(str(root / 'html'))}", config)
    config = config.replace("  - opdoc/site_hooks.py", f"  - {json.dumps(str(ROOT / 'opdoc' / 'site_hooks.py'))}")
    (root / "mkdocs.yml").write_text(config, encoding="utf-8")
    # Not --strict: prose links the escaping made relative (javascript%3A...) point at no page.
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(root / "mkdocs.yml")],
                            cwd=ROOT, capture_output=True, text=True, env={"NO_MKDOCS_2_WARNING": "1", **dict(
                                __import__("os").environ)})
    assert result.returncode == 0, result.stderr
    html = root / "html"
    # A control page whose payload is live: the inspection must see it, or it proves nothing.
    (html / "control.html").write_text('<p>control</p><img src="x" onerror="window.__pwned=1">', encoding="utf-8")
    return html


@pytest.fixture(scope="module")
def browse(hostile_html):
    executable = SITE._chromium()
    if executable is None:
        SITE._unavailable("no Chromium found. " + SITE.INSTALL_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        SITE._unavailable("Playwright for Python is not installed. " + SITE.INSTALL_HINT)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(hostile_html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=SITE.CHROMIUM_ARGS)
        context = browser.new_context(service_workers="block")
        context.add_init_script(SITE.OPEN_SHADOW_ROOTS)
        context.route(lambda url: not url.startswith(base), lambda route: route.abort())

        def visit(path: str) -> dict:
            page = context.new_page()
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(base + path, wait_until="load")
            try:  # let mermaid draw (a diagram whose text is refused draws its error graphic instead)
                page.wait_for_function("document.querySelectorAll('div.mermaid').length === "
                                       "document.querySelectorAll('div.mermaid svg, div.mermaid').length", timeout=5_000)
            except Exception:  # noqa: BLE001 - what matters is what the page ran, inspected below
                pass
            page.wait_for_timeout(1_500)
            state = page.evaluate(INSPECT)
            state["dialogs"] = dialogs
            page.close()
            return state

        yield visit
        context.close()
        browser.close()
    server.shutdown()
    server.server_close()


def test_the_inspection_sees_a_live_payload(browse):
    state = browse("control.html")
    assert state["pwned"] and state["handlers"]


def test_no_page_built_from_hostile_specs_runs_their_markup(browse, hostile_html):
    pages = sorted(str(p.relative_to(hostile_html).parent) + "/" for p in hostile_html.rglob("index.html")
                   if "search" not in p.parts and "assets" not in p.parts)
    assert len(pages) == 4, pages  # the index, the two op pages and the analytic report
    for path in pages:
        state = browse("" if path == "./" else path)
        assert not state["pwned"], f"{path}: a payload ran"
        assert state["dialogs"] == [], f"{path}: dialogs {state['dialogs']}"
        assert state["handlers"] == [] and state["scripts"] == [], f"{path}: {state}"
