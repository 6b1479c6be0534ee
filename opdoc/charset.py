"""Characters a spec may not hold: those a reader cannot see, and in names those that look like others.

A spec is read by people before it is built, so what it says must be what it shows:

* hidden characters are refused everywhere: control characters other than tab and line breaks,
  invisible format characters (among them the bidirectional overrides and isolates that make text
  display in another order than the one it is parsed in), line and paragraph separators, private-use
  code points, and lone surrogates (half of a UTF-16 pair: not a character, and no file can hold it);
* in names and formulas, characters that Unicode's NFKC normalisation changes are refused too:
  fullwidth, mathematical and ligature lookalikes such as `Ｓ`, `ℎ` or `ﬀ`, which Python's parser reads
  as `S`, `h` and `ff`. A page would otherwise print a lookalike while computing with the letter.
"""

from __future__ import annotations

import unicodedata

# General categories of hidden characters (see the module docstring). Cn (unassigned) is allowed:
# a character newer than this Python's Unicode tables is not a reason to fail.
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Zl", "Zp"}
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}
_NO_LINE_BREAKS = str.maketrans("", "", "\t\n\r")  # prose with line breaks and tabs is still all visible


def describe(char: str) -> str:
    """'U+202E RIGHT-TO-LEFT OVERRIDE' for one character (just 'U+D800' for one without a name)."""
    return f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()


def hidden_character(text: str) -> tuple[int, str] | None:
    """(index, message) of the first hidden character in `text`, or None when there is none."""
    if text.isprintable() or text.translate(_NO_LINE_BREAKS).isprintable():  # the common cases, decided in C
        return None
    for index, char in enumerate(text):
        if char in _ALLOWED_CONTROLS or char.isprintable():
            continue
        category = unicodedata.category(char)
        if category in _HIDDEN:
            kind = {"Cs": "a lone surrogate (half of a UTF-16 pair, not a character)",
                    "Cf": "an invisible format character", "Co": "a private-use character"}.get(
                category, "a control character")
            return index, f"{describe(char)} is {kind}; delete it"
    return None


def lookalike(text: str) -> str | None:
    """A message when `text` (a name or a formula) holds a character that NFKC normalisation changes."""
    for char in text:
        if char.isascii():
            continue
        plain = unicodedata.normalize("NFKC", char)
        if plain != char:
            return f"'{char}' ({describe(char)}) stands for '{plain}'; type '{plain}'"
    if unicodedata.normalize("NFKC", text) != text:  # a base letter and a combining mark
        return f"'{text}' is not in Unicode normal form NFKC; type '{unicodedata.normalize('NFKC', text)}'"
    return None


def name_problem(text: str) -> str | None:
    """Why `text` cannot be a name (hidden or lookalike characters), or None."""
    hidden = hidden_character(text)
    if hidden is not None:
        return hidden[1]
    return lookalike(text)
