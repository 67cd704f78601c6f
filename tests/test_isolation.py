"""The suite runs in a private home (tests/conftest.py): nothing it does may reach the user's real one."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from convscope.data import load_dataset, sources
from tests.conftest import HOME_VARS, REAL_CACHE, SESSION_HOME, snapshot
from tests.data.fakes import make_split, write_mnist_dir


def test_every_user_directory_is_inside_the_session_home():
    home = Path(os.environ[SESSION_HOME])
    assert home.is_dir() and home.name.startswith("convscope-tests-")
    for var in HOME_VARS:
        assert Path(os.environ[var]).is_relative_to(home), var
    assert Path.home() == home
    real = Path(os.environ[REAL_CACHE])
    assert not sources.cache_root().is_relative_to(real) and not real.is_relative_to(home)


def test_copied_cache_files_are_copies_not_links():
    home = Path(os.environ[SESSION_HOME])
    for copy in sorted((home / ".cache" / "convscope").rglob("*.npz")):
        original = Path(os.environ[REAL_CACHE]) / copy.relative_to(home / ".cache" / "convscope")
        assert not copy.is_symlink() and copy.stat().st_ino != original.stat().st_ino, copy


def test_loading_data_caches_it_in_the_session_home_and_leaves_the_real_cache_alone(tmp_path, monkeypatch):
    # A dataset name of its own, so the file written cannot be mistaken for (or hide) a real one.
    arrays = {"test": make_split(4, (1, 28, 28), 10, 0)}
    write_mnist_dir(tmp_path / "raw", {"test": 4})
    spec = dataclasses.replace(sources.SPECS["mnist"], name="isolation-check", sizes={"train": 6, "test": 4},
                               sha256={"train": None, "test": sources.array_sha256(*arrays["test"])})
    monkeypatch.setitem(sources.SPECS, "isolation-check", spec)
    path = sources.cache_file("isolation-check", "test")
    try:
        ds = load_dataset("isolation-check", "test", root=tmp_path / "raw", download=False)
        assert ds.checksum == spec.sha256["test"]
        assert path.is_file() and path.is_relative_to(os.environ[SESSION_HOME])
        np.testing.assert_array_equal(load_dataset("isolation-check", "test", download=False).images, ds.images)
    finally:
        path.unlink(missing_ok=True)
    real = Path(os.environ[REAL_CACHE])
    assert not (real / "isolation-check").exists()
    before = json.loads((Path(os.environ[SESSION_HOME]) / "real-cache-before.json").read_text())
    assert snapshot(real) == before
