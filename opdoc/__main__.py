"""`python -m opdoc` works like the `opdoc` command."""

from opdoc.cli import entry

entry()
