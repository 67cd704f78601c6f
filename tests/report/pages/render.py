"""Helpers of the page tests: decode a PNG, and render an atlas in a process where torch cannot be imported."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from matplotlib.image import imread

ROOT = Path(__file__).resolve().parents[3]

# Any `import torch` (direct or through a model, an instrument or the training code) raises ImportError.
_NO_TORCH = """
import sys
sys.modules["torch"] = None
from convscope.report import render_atlas
render_atlas(sys.argv[1])
print("torch imported:", sys.modules.get("torch") is not None)
"""


def decode(png: bytes) -> np.ndarray:
    """The image of PNG bytes, (H, W, channels); fails unless they are a PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(io.BytesIO(png), format="png")


def render_without_torch(run_dir: Path) -> Path:
    """render_atlas(run_dir) in a fresh interpreter that cannot import torch; the atlas folder."""
    done = subprocess.run([sys.executable, "-c", _NO_TORCH, str(run_dir)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "torch imported: False" in done.stdout
    return run_dir / "atlas"
