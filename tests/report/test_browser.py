"""The atlas in a real browser: headless Chromium opens every page (marked slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope.report import render_atlas

from .browser import Browser, find_chromium

pytestmark = pytest.mark.slow


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium binary on PATH (set $CHROMIUM to one)")
def test_every_page_loads_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    atlas = render_atlas(run_dir).parent
    pages = sorted(atlas.glob("*.html"))
    assert len(pages) == 5
    with Browser() as browser:
        problems = [f"{p.name}: {msg}" for p in pages for msg in browser.check(p)]
        assert not problems, "\n".join(problems)
        # the driver itself must see a broken page, or a clean result above means nothing
        bad = tmp_path / "bad.html"
        bad.write_text('<!doctype html><meta charset="utf-8"><title>bad</title><link rel="icon" href="data:,">'
                       '<img src="missing.png"><script>console.error("boom")</script>')
        seen = browser.check(bad)
        assert any("missing.png" in m for m in seen) and any("boom" in m for m in seen), seen
        shot = browser.screenshot(atlas / "layer-features.conv1.html", tmp_path / "layer.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
