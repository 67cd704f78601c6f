"""Fixtures for report tests: a synthetic run directory (builder in `synthetic.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .synthetic import make_run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A complete synthetic run directory (every part, RGB images)."""
    return make_run_dir(tmp_path / "run")
