"""The `convscope` command line: `convscope --help` lists the commands, each with examples in its own help."""

from __future__ import annotations

from convscope.cli import data, look, run, scan  # noqa: F401 - importing each module registers its commands
from convscope.cli.common import app, main

__all__ = ["app", "main"]
