"""The built knowledge-base site, driven in headless Chromium.

The site is built from whatever site/ holds (`mkdocs build --strict` into a temporary folder),
served on 127.0.0.1 and opened page by page. Checks: no console error, no failed request, no
request leaving localhost (all are aborted and reported); every mermaid block became a diagram and
none is mermaid's syntax-error graphic; every formula was typeset by KaTeX and no raw TeX delimiter
is left in the text; the search box finds each op page by its name; the index table sorts by each
column. At a 1400 px window: no page scrolls sideways, the index's tables fit without scrolling,
every mermaid diagram's text is drawn at 11 px or more, the index's FLOPs chart has no overlapping
labels, and the status marks (✅ ❌ ⚠️) are drawn without an emoji font. Screenshots of the index and of
one op page go to test-artifacts/.

Chromium: /usr/bin/chromium (Debian: `apt-get install chromium`), or the path in OPDOC_CHROMIUM.
Without it these tests fail under CI (CI=true) and are skipped elsewhere.
To try the checks on other pages, point OPDOC_SITE_DOCS_DIR at another docs folder.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-quic",
]
INSTALL_HINT = (
    "Chromium is needed for the browser tests: on Debian/Ubuntu `apt-get install chromium` "
    "(or set OPDOC_CHROMIUM to a Chromium/Chrome binary), and `pip install -e .[test]` for Playwright."
)
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
RENDER_TIMEOUT_MS = 15_000
# The window the site is laid out for: a laptop's browser, full screen.
WINDOW = {"width": 1400, "height": 900}
# The smallest text a diagram may be drawn at, in CSS pixels (material's body text is 16 px).
MIN_DIAGRAM_TEXT_PX = 11

# Material renders each diagram into a *closed* shadow root; tests open them to look inside.
OPEN_SHADOW_ROOTS = """
(() => {
  const attach = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    return attach.call(this, Object.assign({}, init, { mode: "open" }));
  };
})();
"""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str):
    if _in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _chromium() -> str | None:
    """OPDOC_CHROMIUM when set (and then only it), else the Debian binary or one on PATH."""
    chosen = os.environ.get("OPDOC_CHROMIUM")
    candidates = [chosen] if chosen else ["/usr/bin/chromium", shutil.which("chromium"),
                                          shutil.which("chromium-browser"), shutil.which("google-chrome")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


# ----------------------------------------------------------------- the site


def _docs_dir() -> Path:
    return Path(os.environ.get("OPDOC_SITE_DOCS_DIR") or REPO / "site").resolve()


def _url_path(src: Path) -> str:
    """site-relative URL of a page, as MkDocs writes it with use_directory_urls."""
    rel = src.with_suffix("").as_posix()
    if rel == "index" or rel.endswith("/index"):
        return rel[: -len("index")]
    return rel + "/"


def _pages() -> list[str]:
    docs = _docs_dir()
    if not docs.is_dir():
        return []
    return sorted(_url_path(p.relative_to(docs)) for p in docs.rglob("*.md"))


def _op_pages() -> list[str]:
    return [p for p in _pages() if re.fullmatch(r"op-[^/]+/", p)]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    docs = _docs_dir()
    if not _pages():
        pytest.fail(f"{docs} holds no pages; generate the knowledge base first", pytrace=False)
    out = tmp_path_factory.mktemp("site")
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    config = re.sub(r"(?m)^docs_dir:.*$", f"docs_dir: {json.dumps(str(docs))}", config)
    config = re.sub(r"(?m)^site_dir:.*$", f"site_dir: {json.dumps(str(out / 'html'))}", config)
    hook = str(REPO / "opdoc" / "site_hooks.py")
    config = config.replace("  - opdoc/site_hooks.py", f"  - {json.dumps(hook)}")
    if hook not in config:
        pytest.fail("mkdocs.yml no longer lists `  - opdoc/site_hooks.py` under hooks:", pytrace=False)
    config_file = out / "mkdocs.yml"
    config_file.write_text(config, encoding="utf-8")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config_file)],
                            cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode:
        pytest.fail(f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return out / "html"


@pytest.fixture(scope="module")
def base_url(built_site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(built_site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        _unavailable("no Chromium found. " + INSTALL_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed. " + INSTALL_HINT)
    with sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Exception as error:  # noqa: BLE001 - any launch failure means: no usable browser
            _unavailable(f"Chromium at {executable} did not start ({error}). " + INSTALL_HINT)
        yield instance
        instance.close()


class Visit:
    """One page load with everything that went wrong on the way recorded.

    The constructor only starts the navigation (`wait_until="commit"`), so several visits can load
    side by side; `finish()` waits for the load event.
    """

    def __init__(self, session, path: str):
        self.path = path
        self.problems: list[str] = []
        self.page = page = session.ctx.new_page()
        session.pages[page] = self
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"uncaught exception: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        page.goto(session.base_url + path, wait_until="commit")

    def finish(self) -> "Visit":
        self.page.wait_for_load_state("load")
        return self


@pytest.fixture(scope="module")
def session(browser, base_url):
    """One browser context for all pages (mermaid's 5 MB are then read from cache), cut off from
    everything but 127.0.0.1: a request elsewhere is aborted and charged to the page that made it."""
    ctx = browser.new_context(viewport=WINDOW, service_workers="block")
    ctx.add_init_script(OPEN_SHADOW_ROOTS)
    state = SimpleNamespace(ctx=ctx, base_url=base_url, pages={}, external=[])

    def is_external(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme not in {"data", "blob", "about"} and parts.hostname not in LOCAL_HOSTS

    def abort(route):
        url = route.request.url
        state.external.append(url)
        try:
            owner = state.pages.get(route.request.frame.page)
        except Exception:  # noqa: BLE001 - a worker's request has no frame
            owner = None
        if owner is not None:
            owner.problems.append(f"request to a non-local host (blocked): {url}")
        route.abort("blockedbyclient")

    ctx.route(is_external, abort)
    yield state
    ctx.close()


# ------------------------------------------------------------------- pages

WAIT_FOR_RENDERING = """
([mermaidCount]) => {
  const diagrams = [...document.querySelectorAll("div.mermaid")]
    .filter((d) => d.shadowRoot && d.shadowRoot.querySelector("svg"));
  const math = [...document.querySelectorAll(".arithmatex")];
  return diagrams.length >= mermaidCount && math.every((m) => m.querySelector(".katex, .katex-error"));
}
"""

INSPECT = """
() => {
  const texts = (root) => [...root.querySelectorAll("svg")].map((s) => s.textContent);
  const diagrams = [...document.querySelectorAll("div.mermaid")].map((d) => d.shadowRoot ? texts(d.shadowRoot).join(" ") : "");
  const loose = texts(document.body).join(" ");  // mermaid draws its error graphic in the page
  const article = document.querySelector("article") || document.body;
  const skip = "pre, code, script, style, textarea, .katex, .mermaid, .md-clipboard";
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => n.parentElement.closest(skip) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT,
  });
  let text = "";
  while (walker.nextNode()) text += walker.currentNode.data;
  // Each diagram's text as drawn: font size times the scale from the SVG's units to the screen.
  const diagramText = [...document.querySelectorAll("div.mermaid")].map((d) => !d.shadowRoot ? [] :
    [...d.shadowRoot.querySelectorAll("text")].filter((t) => t.textContent.trim() && t.getScreenCTM())
      .map((t) => ({ text: t.textContent.trim().slice(0, 40),
                     px: parseFloat(getComputedStyle(t).fontSize) * Math.hypot(t.getScreenCTM().a, t.getScreenCTM().b) })));
  const marks = [...document.querySelectorAll("article svg.opdoc-mark")].map((m) => {
    const box = m.getBoundingClientRect();
    return { label: m.getAttribute("aria-label"), width: box.width, height: box.height };
  });
  return {
    diagrams,
    diagramText,
    marks,
    pageWidth: document.documentElement.scrollWidth,
    windowWidth: window.innerWidth,
    loose,
    unrenderedMermaid: document.querySelectorAll("pre.mermaid").length,
    math: document.querySelectorAll(".arithmatex").length,
    typeset: [...document.querySelectorAll(".arithmatex")].filter((m) => m.querySelector(".katex")).length,
    untypeset: [...document.querySelectorAll(".arithmatex")].filter((m) => !m.querySelector(".katex"))
      .map((m) => m.textContent.trim()),
    katexErrors: [...document.querySelectorAll(".katex-error")].map((e) => e.textContent),
    text,
  };
}
"""
PARALLEL_PAGES = 4


@pytest.fixture(scope="module")
def survey(session, built_site) -> dict[str, SimpleNamespace]:
    """Load every page (a few at a time), wait for diagrams and math, and record what was seen."""
    paths = _pages()
    screenshot_of = (_op_pages() or [None])[0]
    reports: dict[str, SimpleNamespace] = {}
    pending, active = list(paths), []
    while pending or active:
        while pending and len(active) < PARALLEL_PAGES:
            active.append(Visit(session, pending.pop(0)))
        loaded = active.pop(0).finish()
        page = loaded.page
        html = (built_site / loaded.path / "index.html").read_text(encoding="utf-8")
        expected = html.count('<pre class="mermaid">')
        try:
            page.wait_for_function(WAIT_FOR_RENDERING, arg=[expected], timeout=RENDER_TIMEOUT_MS)
        except Exception:  # noqa: BLE001 - what is missing is reported by the page's test
            pass
        page.wait_for_timeout(100)  # let late console errors arrive
        reports[loaded.path] = SimpleNamespace(expected_diagrams=expected, state=page.evaluate(INSPECT),
                                               problems=loaded.problems)
        if loaded.path == screenshot_of:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{loaded.path.rstrip('/')}.png"), full_page=True)
        page.close()
    return reports


@pytest.mark.parametrize("path", _pages() or ["(no pages)"], ids=lambda p: p.rstrip("/") or "index")
def test_page_loads_without_errors_or_outside_requests(path, survey):
    problems = survey[path].problems
    assert not problems, f"{path or 'index'}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", _pages() or ["(no pages)"], ids=lambda p: p.rstrip("/") or "index")
def test_page_diagrams_and_math_are_rendered(path, survey):
    report = survey[path]
    state, where = report.state, path or "index"
    assert len(state["diagrams"]) == report.expected_diagrams and state["unrenderedMermaid"] == 0, (
        f"{where}: {report.expected_diagrams} mermaid block(s) in the HTML, {len(state['diagrams'])} rendered")
    for text in state["diagrams"] + [state["loose"]]:
        assert "Syntax error in text" not in text, f"{where}: a mermaid diagram failed to parse"
    assert all(state["diagrams"]), f"{where}: a mermaid diagram rendered as an empty SVG"

    assert not state["katexErrors"], f"{where}: KaTeX could not parse: {state['katexErrors']}"
    # (auto-render leaves a formula whose braces do not balance as plain text: caught just below)
    assert state["typeset"] == state["math"], (
        f"{where}: {state['math'] - state['typeset']} of {state['math']} formulas were not typeset by KaTeX: "
        f"{state['untypeset']}")
    for raw in ("$$", "\\(", "\\)", "\\[", "\\]"):
        assert raw not in state["text"], f"{where}: raw TeX delimiter {raw!r} visible in the page text"


@pytest.mark.parametrize("path", _pages() or ["(no pages)"], ids=lambda p: p.rstrip("/") or "index")
def test_page_does_not_scroll_sideways_at_1400px(path, survey):
    state = survey[path].state
    assert state["windowWidth"] == WINDOW["width"]
    assert state["pageWidth"] <= state["windowWidth"], (
        f"{path or 'index'}: the page is {state['pageWidth']} px wide in a {state['windowWidth']} px window")


@pytest.mark.parametrize("path", _pages() or ["(no pages)"], ids=lambda p: p.rstrip("/") or "index")
def test_diagram_text_is_legible_at_1400px(path, survey):
    for number, texts in enumerate(survey[path].state["diagramText"], start=1):
        assert texts, f"{path or 'index'}: diagram {number} has no text to measure"
        small = [f"{t['text']!r} at {t['px']:.1f} px" for t in texts if t["px"] < MIN_DIAGRAM_TEXT_PX]
        assert not small, (f"{path or 'index'}: diagram {number} draws text below {MIN_DIAGRAM_TEXT_PX} px: "
                           + ", ".join(small[:5]))


# The emoji the op-doc template uses, and the rest of the emoji blocks: none may reach the page as text.
EMOJI = re.compile("[\u2600-\u27bf\U0001f300-\U0001faff\ufe0f]")


@pytest.mark.parametrize("path", _pages() or ["(no pages)"], ids=lambda p: p.rstrip("/") or "index")
def test_status_marks_are_drawn_without_an_emoji_font(path, survey, built_site):
    """✅ ❌ ⚠️ in the Markdown reach the page as inline SVG marks of non-zero size, never as text that
    only an emoji font can draw (this machine has DejaVu and Liberation only)."""
    state, where = survey[path].state, path or "index"
    left = sorted(set(EMOJI.findall(state["text"])))
    assert not left, f"{where}: emoji left as text: {left}"
    source = _docs_dir() / (("index" if not path else path.rstrip("/")) + ".md")
    typed = len(re.findall("[\u2705\u274c\u26a0]", source.read_text(encoding="utf-8"))) if source.is_file() else 0
    assert len(state["marks"]) >= typed, f"{where}: {typed} marks in the Markdown, {len(state['marks'])} drawn"
    for mark in state["marks"]:
        assert mark["width"] > 4 and mark["height"] > 4, f"{where}: a {mark['label']!r} mark is drawn {mark}"


def test_index_tables_fit_a_1400px_window(session):
    loaded = Visit(session, "").finish()
    page = loaded.page
    try:
        tables = page.evaluate("""() => [...document.querySelectorAll("article table")].map((t) => {
          const wrap = t.closest(".md-typeset__scrollwrap") || t.parentElement;
          const box = t.getBoundingClientRect();
          return { head: t.querySelector("th").textContent, scroll: t.scrollWidth, client: t.clientWidth,
                   wrapScroll: wrap.scrollWidth, wrapClient: wrap.clientWidth, right: box.right };
        })""")
        assert len(tables) >= 2, "the index should hold the op table and the coverage table"
        for table in tables:
            assert table["scroll"] <= table["client"] and table["wrapScroll"] <= table["wrapClient"], (
                f"the index table starting {table['head']!r} scrolls at {WINDOW['width']} px: {table}")
            assert table["right"] <= WINDOW["width"], table
    finally:
        page.close()


def _overlap(a: dict, b: dict) -> bool:
    return (min(a["right"], b["right"]) - max(a["left"], b["left"]) > 0.5
            and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 0.5)


def test_index_chart_labels_do_not_overlap(session):
    """Every text box of the index's FLOPs chart, as the browser lays it out, is apart from every other
    label, every bar and every axis line or tick (the faint grid lines may pass behind labels)."""
    loaded = Visit(session, "plots/overview.svg").finish()
    page = loaded.page
    try:
        shapes = page.evaluate("""() => [...document.querySelectorAll("text, rect, line, polyline")]
          .slice(1)  // the first rect is the white background
          .filter((e) => !e.hasAttribute("stroke-opacity"))
          .map((e) => { const b = e.getBoundingClientRect();
                        return { kind: e.tagName, text: e.textContent || e.tagName,
                                 left: b.left, right: b.right, top: b.top, bottom: b.bottom }; })""")
        labels = [s for s in shapes if s["kind"] == "text"]
        assert len(labels) > 10, f"the chart has only {len(labels)} labels"
        clashes = [(a["text"], b["text"]) for i, a in enumerate(labels) for b in labels[i + 1:] if _overlap(a, b)]
        clashes += [(a["text"], b["kind"]) for a in labels for b in shapes if b["kind"] != "text" and _overlap(a, b)]
        assert not clashes, f"labels overlapping in plots/overview.svg: {clashes[:5]}"
    finally:
        page.close()


def test_no_request_left_localhost(survey, session):
    # Also catches requests no page could be charged with (a worker's, say).
    assert not session.external, "requests to non-local hosts (blocked): " + ", ".join(session.external)


# ------------------------------------------------------------------- search


def test_search_finds_every_op_page_by_name(session):
    ops = _op_pages()
    if not ops:
        pytest.fail("no op-*.md pages to search for", pytrace=False)
    loaded = Visit(session, "").finish()
    page = loaded.page
    try:
        box = page.locator("input.md-search__input")
        box.click()
        for path in ops:
            name = path[len("op-"):-1]
            box.press("Control+A")
            box.press("Backspace")  # results of the previous search must go before the next one counts
            page.wait_for_function("document.querySelectorAll('.md-search-result__item').length === 0",
                                   timeout=5_000)
            box.press_sequentially(name, delay=5)
            link = page.locator(f'.md-search-result__item > a[href*="/{path}"]').first
            try:
                link.wait_for(state="attached", timeout=10_000)
            except Exception:  # noqa: BLE001
                found = page.locator(".md-search-result__item > a").evaluate_all("(a) => a.map((x) => x.href)")
                pytest.fail(f"searching {name!r} did not list {path}; results: {found}", pytrace=False)
        assert not loaded.problems, loaded.problems
    finally:
        page.close()


# ----------------------------------------------------------- sortable index

_PREFIX = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_MAGNITUDE = re.compile(
    r"^([-+\u2212]?(?:\d[\d,\u2009\u202f]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"\s*(Ki|Mi|Gi|Ti|Pi|Ei|[kKMGTPE])?"
    r"\s*(FLOPs?|FLOP/s|MACs?|bytes?|B|parameters?|params?|tokens?|elements?|%|\u00d7|x)?$"
)
_WITH_EXACT = re.compile(r"^(.*?)\s*\(([-+\u2212]?\d[\d,\u2009\u202f]*(?:\.\d+)?)\)$")
_EMPTY = re.compile(r"^(?:|[-\u2013\u2014\u2012]|n/a|none)$", re.I)


def magnitude(text: str) -> float | None:
    """The same reading of "430.84 GFLOPs" as site/assets/opdoc.js, to check its sort order."""
    exact = _WITH_EXACT.match(text.strip())
    if exact and magnitude(exact.group(1)) is not None:
        return magnitude(exact.group(2))
    match = _MAGNITUDE.match(text.strip())
    if not match:
        return None
    digits = re.sub(r"[,\u2009\u202f]", "", match.group(1)).replace("\u2212", "-")
    return float(digits) * _PREFIX[match.group(2) or ""]


def _in_order(page, cells: list[str], descending: bool) -> bool:
    """Blanks last; magnitudes by value (read here, independently of the page's JS); text by the
    browser's numeric-aware collation, the one the sorter uses."""
    filled = [c for c in cells if not _EMPTY.match(c)]
    if cells[: len(filled)] != filled:
        return False
    if all(magnitude(c) is not None for c in filled):
        values = [magnitude(c) for c in filled]
        return values == sorted(values, reverse=descending)
    comparisons = page.evaluate(
        """(cells) => { const c = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
                        return cells.slice(1).map((x, i) => c.compare(cells[i], x)); }""", filled)
    return all((d >= 0) if descending else (d <= 0) for d in comparisons)


def test_index_table_sorts_by_each_column(session):
    loaded = Visit(session, "").finish()
    page = loaded.page
    try:
        assert page.evaluate("window.opdoc.parseMagnitude('430.84 GFLOPs')") == pytest.approx(430.84e9)
        assert page.evaluate("window.opdoc.parseMagnitude('1.5 MiB')") == pytest.approx(1.5 * 2**20)
        assert page.evaluate("window.opdoc.parseMagnitude('DeepseekV2MoE')") is None
        assert page.evaluate("window.opdoc.parseMagnitude('26.30 M parameters (26,296,320)')") == 26296320

        table = page.locator("table[data-opdoc-sortable]").first
        if not table.count():
            pytest.fail("the index page has no table to sort (expected the op table)", pytrace=False)
        headers = table.locator("thead th")
        columns = headers.count()
        rows_before = sorted(table.locator("tbody tr").evaluate_all("(rs) => rs.map((r) => r.textContent)"))
        for column in range(columns):
            header = headers.nth(column)
            for descending in (False, True):
                header.click()
                assert header.get_attribute("aria-sort") == ("descending" if descending else "ascending")
                cells = table.locator(f"tbody tr > :nth-child({column + 1})").evaluate_all(
                    "(cs) => cs.map((c) => c.textContent.replace(/\\s+/g, ' ').trim())")
                assert _in_order(page, cells, descending), (
                    f"column {column + 1} ({header.inner_text()!r}) not sorted "
                    f"{'descending' if descending else 'ascending'}: {cells}")
        rows_after = sorted(table.locator("tbody tr").evaluate_all("(rs) => rs.map((r) => r.textContent)"))
        assert rows_after == rows_before, "sorting lost or changed rows"
        assert not loaded.problems, loaded.problems

        ARTIFACTS.mkdir(exist_ok=True)
        headers.first.click()  # leave it sorted by op name for the picture
        page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)
        # The palette toggle switches to the dark scheme.
        scheme = "document.body.getAttribute('data-md-color-scheme')"
        before = page.evaluate(scheme)
        page.locator("form[data-md-component=palette] label:visible").first.click()
        page.wait_for_function(f"{scheme} !== {json.dumps(before)}", timeout=5_000)
        assert page.evaluate(scheme) == "slate"
        page.screenshot(path=str(ARTIFACTS / "index-dark.png"), full_page=True)
    finally:
        page.close()


def test_magnitude_reading():
    assert magnitude("430.84 GFLOPs") == pytest.approx(430.84e9)
    assert magnitude("3,145,728") == 3145728
    assert magnitude("2.6 M parameters") == pytest.approx(2.6e6)
    assert magnitude("640 KiB") == 640 * 1024
    assert magnitude("26.30 M parameters (26,296,320)") == 26296320
    assert magnitude("840.43 MB (840,434,176)") == 840434176
    assert magnitude("prefill B=1, S=8192") is None
    assert magnitude("op-DeepseekV2MoE") is None
