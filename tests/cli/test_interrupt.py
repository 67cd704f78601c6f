"""Ctrl-C during `convscope train` keeps the last checkpoint, exits 2 without a traceback, and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

# Epochs of about a second each, so a loaded machine still signals the run while it trains.
ARGS = ["--set", "train_subset=8000", "--set", "test_subset=200", "--batch-size", "50", "-q", "--device", "cpu"]


@pytest.mark.slow
def test_ctrl_c_keeps_a_resumable_checkpoint(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "convscope.cli", "train", "lenet5", "--epochs", "6", "--out", str(out), *ARGS]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # A pytest-xdist worker ignores SIGINT and a child inherits that, so the run would never see Ctrl-C: give the
    # child the default disposition a terminal gives it.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state = out / "checkpoint" / "state.json"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert state.exists(), proc.communicate()[1] if proc.poll() is not None else "no checkpoint in time"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, (stdout, stderr)
    assert "Traceback" not in stderr and "--resume" in stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) == 1, stderr

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 7))
