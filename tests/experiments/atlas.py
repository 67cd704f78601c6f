"""Count the figures an experiment's atlas page draws when it is rendered where torch cannot be imported.

`convscope report DIR` draws every figure from the saved Result alone (docs/DESIGN.md, "compute and
render apart"); `tests.report.pages.render.render_without_torch` renders in such a process.

Example:
    >>> figures_drawn(result_dir, "parts")  # the number of figures drawn on exp-parts.html
    9
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.report.pages.render import render_without_torch


def figures_drawn(result_dir: Path, name: str) -> int:
    """Render the atlas of the result saved in `result_dir` without torch; the figures drawn on its page and on
    the part pages it links to."""
    atlas = render_without_torch(result_dir)
    main = (atlas / f"exp-{name}.html").read_text(encoding="utf-8")
    parts = [p for p in atlas.glob(f"exp-{name}--*.html") if f'href="{p.name}"' in main]
    return sum(len(re.findall(r'<img[^>]+src="img/exp-' + re.escape(name) + r'/[0-9]+[.]png"', page))
               for page in [main, *(p.read_text(encoding="utf-8") for p in parts)])
