"""MkDocs hooks for the knowledge-base site (referenced from mkdocs.yml `hooks:`).

Four jobs, all at build time:

* Navigation. Each generated op page carries a line `<!-- opdoc-family: sam | 1 | SAM encoder -->`
  (the family's key, its place in the model's order and its title, from model.yaml); the nav groups
  the pages by family in that order, with index.md first and pages without the comment under "Other".
  Image-mode pages (`modes.md`, the comparison, then `mode-<name>.md`) form a "By image mode" section
  right after the index, present only when such pages exist. Because the nav is derived from the
  files that exist, `mkdocs build --strict` never meets a nav entry whose page is missing.
* Offline third-party assets. mermaid and KaTeX are taken from node_modules (installed by `npm ci`
  from the pinned package-lock.json) and added to the build as assets/vendor/...; they are never
  committed to site/. With mermaid present as a global, material does not fetch it from its CDN.
* The index page's tables get a `data-opdoc-sortable` attribute that site/assets/opdoc.js turns into
  click-to-sort headers, and the index hides the table-of-contents sidebar so its tables have the
  width of the page.
* Status marks. The op-doc template asks for ✅ and ❌ in the trade-offs; the Markdown keeps them (the
  lint reads them), and the HTML gets small inline SVG marks instead, so the site needs no emoji font
  (a system with only DejaVu or Liberation draws nothing or a box for U+2705).

MkDocs loads this file by its path, so it imports nothing from the opdoc package: the pages carry
what the navigation needs.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.opdoc")

OTHER_TITLE = "Other"
MODES_TITLE = "By image mode"
MODES_PAGE = "modes.md"
MODE_PAGE = re.compile(r"^mode-[^/]+\.md$")
INDEX = "index.md"

FAMILY_COMMENT = re.compile(r"^[ \t]*<!--\s*opdoc-family:\s*(?P<family>[^\s|>]+)\s*\|\s*(?P<order>\d+)\s*\|"
                            r"\s*(?P<title>[^>]*?)\s*-->", re.MULTILINE)
FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
ATX_H1 = re.compile(r"^#[ \t]+(?P<text>.+?)(?:[ \t]+#+)?[ \t]*$")
ATTR_LIST = re.compile(r"[ \t]*\{[^{}]*\}$")
TABLE_OPEN = re.compile(r"<table(?=[\s>])")

# Files copied from node_modules: (path under node_modules, path under the built site).
# KaTeX fonts are added by directory listing in _vendor_files.
VENDOR_FILES: tuple[tuple[str, str], ...] = (
    ("mermaid/dist/mermaid.min.js", "assets/vendor/mermaid.min.js"),
    ("mermaid/LICENSE", "assets/vendor/mermaid.LICENSE.txt"),
    ("katex/dist/katex.min.js", "assets/vendor/katex/katex.min.js"),
    ("katex/dist/katex.min.css", "assets/vendor/katex/katex.min.css"),
    ("katex/dist/contrib/auto-render.min.js", "assets/vendor/katex/contrib/auto-render.min.js"),
    ("katex/LICENSE", "assets/vendor/katex/LICENSE.txt"),
)
KATEX_FONTS = ("katex/dist/fonts", "assets/vendor/katex/fonts")
NPM_HINT = "run `npm ci` in the repository root (Node.js and npm are needed once, to fetch the pinned copies)"


def page_family(markdown: str) -> tuple[int, str] | None:
    """(order, title) of the family named by a page's `<!-- opdoc-family: ... -->` comment, or None."""
    match = FAMILY_COMMENT.search(markdown)
    return (int(match.group("order")), match.group("title")) if match else None


def page_title(markdown: str) -> str | None:
    """The text of a page's first level-1 ATX heading (outside code fences), plain, or None.

    MkDocs only takes a page's title from an H1 that is the very first block; opdoc's pages open with
    HTML comments, so the nav names each page explicitly with this.
    """
    fence: str | None = None
    for line in markdown.splitlines():
        opening = FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                    and not line.strip().strip(fence[0]):
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        heading = ATX_H1.match(line)
        if heading:
            text = ATTR_LIST.sub("", heading.group("text"))
            text = text.replace("`", "").replace("**", "").strip()
            return text or None
    return None


def is_mode_page(src_uri: str) -> bool:
    """A page of the "By image mode" section: modes.md or mode-<name>.md, at the top of the site."""
    return src_uri == MODES_PAGE or bool(MODE_PAGE.match(src_uri))


def build_nav(pages: dict[str, tuple[int, str] | None], titles: dict[str, str | None] | None = None) -> list:
    """MkDocs nav data from {src_uri: (family order, family title) or None} and optionally {src_uri: title}.

    index.md comes first, then "By image mode" when modes.md or mode-*.md pages exist (modes.md
    first), then one section per family that has pages, in the families' order, then "Other" for
    pages without a family. Pages are sorted by path inside a section. A page with a
    title is listed as {title: path}, else by its path alone. Two pages that give one place in the
    order two different titles are reported (a warning; an error under --strict).
    """
    titles = titles or {}

    def entry(src_uri: str):
        title = titles.get(src_uri)
        return {title: src_uri} if title else src_uri

    sections: dict[tuple[int, str], list[str]] = {}
    other: list[str] = []
    modes: list[str] = []
    nav: list = []
    for src_uri in sorted(pages):
        family = pages[src_uri]
        if src_uri == INDEX:
            nav.append({"Home": INDEX})
        elif is_mode_page(src_uri):
            modes.append(src_uri)
        elif family is None:
            other.append(src_uri)
        else:
            sections.setdefault(family, []).append(src_uri)
    orders = [order for order, _ in sections]
    for order in {o for o in orders if orders.count(o) > 1}:
        log.warning("families %s share the place %d in the navigation; rebuild the pages with opdoc build",
                    sorted(title for o, title in sections if o == order), order)
    if modes:  # the comparison first, then one page per mode
        modes.sort(key=lambda src_uri: (src_uri != MODES_PAGE, src_uri))
        nav.append({MODES_TITLE: [entry(src_uri) for src_uri in modes]})
    for key in sorted(sections):
        nav.append({key[1]: [entry(src_uri) for src_uri in sections[key]]})
    if other:
        nav.append({OTHER_TITLE: [entry(src_uri) for src_uri in other]})
    return nav


def _node_modules(config) -> Path:
    """node_modules next to mkdocs.yml, else at the repository root this hook belongs to."""
    candidates = []
    if config.config_file_path:
        candidates.append(Path(config.config_file_path).resolve().parent / "node_modules")
    candidates.append(Path(__file__).resolve().parent.parent / "node_modules")
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def _vendor_files(config) -> list[tuple[Path, str]]:
    """(absolute source, site path) of every third-party asset; raises PluginError if any is missing."""
    root = _node_modules(config)
    pairs = [(root / src, dest) for src, dest in VENDOR_FILES]
    fonts_dir = root / KATEX_FONTS[0]
    if fonts_dir.is_dir():
        pairs += [
            (font, f"{KATEX_FONTS[1]}/{font.name}")
            for font in sorted(fonts_dir.iterdir())
            if font.suffix in {".woff2", ".woff", ".ttf"}
        ]
    missing = [str(src) for src, _ in pairs if not src.is_file()]
    if not fonts_dir.is_dir():
        missing.append(str(fonts_dir) + "/")
    if missing:
        raise PluginError(
            "opdoc site: the offline copies of mermaid and KaTeX are missing from node_modules ("
            + ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
            + "). To fix: " + NPM_HINT + "."
        )
    return pairs


def on_config(config):
    # Fail before anything is rendered, with the one instruction that fixes it.
    _vendor_files(config)
    return config


def on_files(files: Files, config) -> Files:
    # Third-party assets: MkDocs copies them into site_dir like any other static file.
    for src, dest in _vendor_files(config):
        existing = files.get_file_from_path(dest)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, dest, abs_src_path=str(src)))

    # Navigation from the pages that exist.
    pages: dict[str, str | None] = {}
    titles: dict[str, str | None] = {}
    for file in files.documentation_pages():
        text = file.content_string
        pages[file.src_uri] = page_family(text)
        titles[file.src_uri] = page_title(text)
    config["nav"] = build_nav(pages, titles)
    return files


def on_page_markdown(markdown: str, page, config, files):
    # The index's tables are wide (six columns of names and figures): give them the table of
    # contents' width too. The index has two headings; the nav links to it anyway.
    if page.file.src_uri == INDEX:
        hide = list(page.meta.get("hide") or [])
        page.meta["hide"] = hide + ["toc"] if "toc" not in hide else hide
    return markdown


def on_page_content(html: str, page, config, files):
    # Only the index's tables sort: op pages' tables have a meaningful row order.
    if page.file.src_uri == INDEX:
        html = TABLE_OPEN.sub("<table data-opdoc-sortable", html)
    return draw_marks(html)


# ------------------------------------------------------------------ status marks

# Emoji marks -> (CSS modifier, spoken meaning, SVG shapes on a 16 x 16 grid, drawn in currentColor).
MARKS: dict[str, tuple[str, str, str]] = {
    "\u2705": ("yes", "yes", '<rect x="0.5" y="0.5" width="15" height="15" rx="3" fill="currentColor"/>'
                           '<path d="M4 8.4l2.7 2.7L12.2 5" fill="none" stroke="#fff" stroke-width="2" '
                           'stroke-linecap="round" stroke-linejoin="round"/>'),
    "\u274c": ("no", "no", '<path d="M4 4l8 8M12 4l-8 8" fill="none" stroke="currentColor" stroke-width="2.6" '
                         'stroke-linecap="round"/>'),
    "\u26a0": ("warn", "warning", '<path d="M8 1.2L15.2 14.5H0.8Z" fill="currentColor"/>'
                                '<path d="M8 5.8v4.2M8 12.2v0.3" stroke="#fff" stroke-width="1.8" '
                                'stroke-linecap="round"/>'),
}
MARK = re.compile("(" + "|".join(MARKS) + ")\ufe0f?")
# Text is marked only outside tags, code, preformatted blocks and scripts.
NOT_TEXT = re.compile(r"(<pre\b[\s\S]*?</pre>|<code\b[\s\S]*?</code>|<script\b[\s\S]*?</script>|<[^>]*>)")


def _mark_svg(match: re.Match) -> str:
    modifier, meaning, shapes = MARKS[match.group(1)]
    return (f'<svg class="opdoc-mark opdoc-mark--{modifier}" viewBox="0 0 16 16" width="16" height="16" '
            f'role="img" aria-label="{meaning}"><title>{meaning}</title>{shapes}</svg>')


def draw_marks(html: str) -> str:
    """HTML with every ✅, ❌ and ⚠️ in its text replaced by an inline SVG mark of the same meaning."""
    if not MARK.search(html):
        return html
    parts = NOT_TEXT.split(html)
    return "".join(part if index % 2 else MARK.sub(_mark_svg, part) for index, part in enumerate(parts))
