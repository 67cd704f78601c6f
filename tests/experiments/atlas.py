"""Render a saved experiment's atlas page in a fresh interpreter that must never import torch.

`convscope report DIR` draws every figure from the saved Result alone (docs/DESIGN.md, "compute and
render apart"); running it where torch was never imported proves no model is built on the way.

Example:
    >>> render_without_torch(result_dir, "parts")  # the number of figures drawn on exp-parts.html
    9
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import convscope

_RENDER = """
import re, sys
from convscope.report import render_atlas
index = render_atlas(sys.argv[1])
assert "torch" not in sys.modules, "the report imported torch"
page = (index.parent / f"exp-{sys.argv[2]}.html").read_text(encoding="utf-8")
print(len(re.findall(r'<img[^>]+src="img/exp-' + re.escape(sys.argv[2]) + r'/[0-9]+[.]png"', page)))
"""


def render_without_torch(result_dir: Path, name: str) -> int:
    """Render the atlas of the result saved in `result_dir`; the number of drawn figures on its page."""
    root = str(Path(convscope.__file__).resolve().parents[1])  # this checkout, not an installed copy
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", _RENDER, str(result_dir), name], capture_output=True, text=True,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])
