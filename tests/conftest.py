"""Shared fixtures (tiny synthetic data, the real MNIST subset when it can be had) and a private home.

**A private home for the session.** `pytest_configure` points HOME, the XDG directories and
MPLCONFIGDIR at a fresh temporary folder before any test runs (xdist workers inherit it), so no test
can write into the user's real cache or configuration: a test that caches a tiny fake CIFAR-10 once
left it in ``~/.cache/convscope``, where `convscope data list` then reported CIFAR-10 as cached. The
real cache's MNIST and Fashion-MNIST arrays, when present, are *copied* in (never linked: a test that
corrupts a cache file must not reach the real one), so tests need not download them again. The folder
is removed when the session ends, and the session fails if anything under the real convscope cache
changed meanwhile.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from convscope.config import TrainConfig
from convscope.data import load_dataset
from convscope.data.sources import cache_root
from convscope.errors import DataNotFoundError
from convscope.models import create_model
from convscope.train.loop import fit

HOME_VARS = ("HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "MPLCONFIGDIR")
SESSION_HOME = "CONVSCOPE_TEST_HOME"  # where this session's private home is (read by workers and tests)
REAL_CACHE = "CONVSCOPE_TEST_REAL_CACHE"  # the user's real convscope cache, which must stay untouched
COPIED = ("mnist", "fashion-mnist")  # cached arrays worth copying in: the real datasets the tests use
_saved_env = pytest.StashKey[dict]()  # the controller's environment before configure, restored at the end


def snapshot(folder: Path) -> dict[str, list[int]]:
    """Every file under `folder`, relative path -> [size, mtime in ns]; {} when it does not exist."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns]
            for p in sorted(folder.rglob("*")) if p.is_file()}


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller set the environment it inherited
        return
    real_cache = cache_root()
    home = Path(tempfile.mkdtemp(prefix="convscope-tests-"))
    config.stash[_saved_env] = {var: os.environ.get(var) for var in (*HOME_VARS, SESSION_HOME, REAL_CACHE)}
    (home / "real-cache-before.json").write_text(json.dumps(snapshot(real_cache)))
    os.environ.update({
        "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"), "XDG_STATE_HOME": str(home / ".local" / "state"),
        "MPLCONFIGDIR": str(home / ".config" / "matplotlib"), SESSION_HOME: str(home), REAL_CACHE: str(real_cache),
    })
    for name in COPIED:
        for npz in sorted((real_cache / name).glob("*.npz")):
            (cache_root() / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(npz, cache_root() / name / npz.name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput") or _saved_env not in session.config.stash:
        return
    home, real_cache = Path(os.environ[SESSION_HOME]), Path(os.environ[REAL_CACHE])
    before = json.loads((home / "real-cache-before.json").read_text())
    after = snapshot(real_cache)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", f"FAILED: the tests wrote into the real cache {real_cache}: "
                                    f"{', '.join(changed)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = config.stash.get(_saved_env, None)
    if saved is None:  # a worker, or configure never ran
        return
    shutil.rmtree(os.environ[SESSION_HOME], ignore_errors=True)
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value


# Two pytest-xdist workers share two cores: one intra-op thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


@pytest.fixture
def tiny_data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """512 train / 128 test random 1×28×28 images whose class is a planted bright square's position."""
    g = torch.Generator().manual_seed(0)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, 10, (n,), generator=g)
        x = torch.rand(n, 1, 28, 28, generator=g) * 0.2
        for i, c in enumerate(y.tolist()):
            r, col = divmod(c, 5)
            x[i, 0, 4 + 10 * r:10 + 10 * r, 2 + 5 * col:6 + 5 * col] = 1.0
        return x, y

    return make(512), make(128)


@pytest.fixture(scope="session")
def mnist_small() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """600 training and 200 test MNIST digits (class-balanced, seed 0); skipped only when MNIST is nowhere.

    Any other error (a checksum mismatch, an unreadable cache file, a bug) fails the tests that use it.
    """
    try:
        train = load_dataset("mnist", "train").subset(600, seed=0)
        test = load_dataset("mnist", "test").subset(200, seed=0)
    except DataNotFoundError as e:
        pytest.skip(f"MNIST is not available: {e}")
    return train.tensors(), test.tensors()


@pytest.fixture(scope="session")
def small_trained(mnist_small) -> torch.nn.Module:
    """LeNet-5 (ReLU, max pooling) trained one epoch on `mnist_small`, in train mode (as a user may leave it)."""
    (x_train, y_train), test = mnist_small
    torch.manual_seed(0)
    model = create_model("lenet5")
    fit(model, (x_train, y_train), test, TrainConfig(epochs=1, batch_size=20, device="cpu"), progress=False)
    return model.train()
