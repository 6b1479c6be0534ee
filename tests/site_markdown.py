"""Markdown as the site renders it, and the HTML elements it makes: shared by the escaping tests."""

from __future__ import annotations

from html.parser import HTMLParser


def to_html(text: str) -> str:
    """Markdown -> HTML with the extensions the site uses (see mkdocs.yml)."""
    import markdown
    from pymdownx.superfences import fence_code_format

    md = markdown.Markdown(
        extensions=["admonition", "tables", "attr_list", "md_in_html", "toc", "pymdownx.details",
                    "pymdownx.superfences", "pymdownx.arithmatex"],
        extension_configs={
            "pymdownx.superfences": {"custom_fences": [
                {"name": "mermaid", "class": "mermaid", "format": fence_code_format}]},
            "pymdownx.arithmatex": {"generic": True},
        },
    )
    return md.convert(text)


class Elements(HTMLParser):
    """Every start tag and its attributes, and the text, in a piece of HTML."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)
