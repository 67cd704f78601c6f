"""Training on two processes (gloo, loopback): the shard rule, the launcher's one sentence, and real runs of
`convscope train --nproc 2` against one process, against itself, and killed halfway then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from convscope.cli.run import _train_argv
from convscope.config import TrainConfig, resolve
from convscope.errors import UserError
from convscope.train.distributed import (
    LAUNCHED_BY_CONVSCOPE,
    SYNC_BN_NEEDS_CUDA,
    WorkerError,
    World,
    _failure,
    backend_for,
    batch_slice,
    local_device,
    report_error,
    sync_batchnorm,
    world,
)

ROOT = Path(__file__).resolve().parents[2]
# LeNet-5 on a class-balanced MNIST subset: a few seconds an epoch, enough steps to tell recipes apart.
SMALL = ["--set", "train_subset=2000", "--set", "test_subset=2000", "--batch-size", "50", "--device", "cpu", "-q"]


def _env() -> dict[str, str]:
    """The child imports this worktree's convscope, whatever the venv has installed; one thread per process
    (two processes share two cores; a one-process child gets one too, and the launcher pins its own)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _convscope(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, env=_env(),
                          timeout=timeout)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from convscope.train.checkpoint import load_checkpoint

    return load_checkpoint(run / "checkpoint").model_state


def _mnist_or_skip() -> None:
    from convscope.data import load_dataset
    from convscope.errors import DataNotFoundError

    try:
        load_dataset("mnist", "test", download=False)
    except DataNotFoundError as e:
        pytest.skip(f"MNIST is not available: {e}")


# ------------------------------------------------------------------------------------ without processes


def test_the_ranks_parts_make_up_the_one_process_batch():
    for size in (1, 2, 4):
        for step in (0, 3):
            parts = [batch_slice(step, 8, World(rank=r, size=size)) for r in range(size)]
            covered = [i for s in parts for i in range(s.start, s.stop)]
            assert covered == list(range(step * 8, step * 8 + 8)), (size, step)
    with pytest.raises(UserError, match="batch size 50 does not split into 4 .* divisible by 4 \\(e.g. 48\\)"):
        batch_slice(0, 50, World(rank=1, size=4))


def test_one_process_has_a_world_of_one_and_the_backend_follows_the_device():
    assert world() == World() and World().main
    assert backend_for(torch.device("cpu")) == "gloo" and backend_for(torch.device("cuda", 0)) == "nccl"
    assert local_device(torch.device("cpu")) == torch.device("cpu")


def test_a_worker_runs_the_same_resolved_config():
    cfg = resolve(TrainConfig, overrides=["train_subset=600", "model_args.activation=tanh", "grad_clip=1.5",
                                          "keep_epochs=true"], model="lenet5", data="mnist", lr=0.01)
    argv = _train_argv(cfg, Path("runs/x"), resume=True, overwrite=False, root=Path("/data"), quiet=True)
    assert argv[:4] == ["train", "lenet5", "--out", "runs/x"] and argv[-4:] == ["--resume", "--root", "/data", "-q"]
    sets = [a.removeprefix("--set=") for a in argv if a.startswith("--set=")]
    assert resolve(TrainConfig, overrides=sets, model="lenet5") == cfg


def test_a_worker_error_is_left_for_the_launcher_in_torchrun_s_error_file(tmp_path, monkeypatch):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    assert not report_error("not a worker")  # outside a launched process nothing is written
    error_file = tmp_path / "rank1" / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", LAUNCHED_BY_CONVSCOPE: "1"}.items():
        monkeypatch.setenv(key, value)
    assert report_error("The batch size is wrong: fix it.")
    said = ChildFailedError("convscope", {1: ProcessFailure(1, 123, 2, str(error_file))})
    error = _failure(said, 2, tmp_path)
    assert type(error) is UserError and str(error) == "The batch size is wrong: fix it."
    # The agent stops the survivors with SIGTERM: the worker killed first is the cause, whatever its rank.
    killed = ChildFailedError("convscope", {0: ProcessFailure(0, 125, -15, str(tmp_path / "none.json")),
                                            1: ProcessFailure(1, 124, -9, str(tmp_path / "none.json"))})
    error = _failure(killed, 2, tmp_path)
    assert isinstance(error, WorkerError)
    assert str(error) == "Worker 1 of 2 was killed by SIGKILL, so the whole run stopped"


def test_nproc_is_refused_when_it_cannot_work(tmp_path, monkeypatch):
    from tests.cli.test_cli import invoke

    result = invoke("train", "lenet5", "--out", str(tmp_path / "r"), "--nproc", "4", "--batch-size", "50")
    assert result.exit_code == 2 and "does not split into 4" in result.output
    result = invoke("train", "lenet5", "--out", str(tmp_path / "r"), "--nproc", "0")
    assert result.exit_code == 2 and "--nproc must be at least 1" in result.output
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    result = invoke("train", "lenet5", "--out", str(tmp_path / "r"), "--nproc", "2")
    assert result.exit_code == 2 and "started by torchrun" in result.output
    assert not (tmp_path / "r").exists()


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Sequential(nn.Flatten(), nn.Linear(4 * 26 * 26, 10), nn.BatchNorm1d(10)))


def _norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_sync_bn_swaps_the_layers_for_the_run_and_keeps_their_state_dict():
    model, plain = _bn_net(), _bn_net()
    own, keys = _norms(model), list(model.state_dict())
    back = sync_batchnorm(model)
    assert [type(m) for m in _norms(model)] == [nn.SyncBatchNorm] * 2
    assert list(model.state_dict()) == keys  # a checkpoint saved with --sync-bn loads into the plain model
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.train()(x), plain.train()(x))  # one process: SyncBatchNorm is BatchNorm
    back()
    assert all(a is b for a, b in zip(_norms(model), own, strict=True))  # the model's own layers are back ...
    for (key, a), b in zip(model.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), key  # ... holding the statistics the swapped layers updated
    assert int(own[0].num_batches_tracked) == 1
    plain.load_state_dict(model.state_dict())


def test_sync_bn_is_refused_on_the_cpu_in_one_sentence(tmp_path, monkeypatch, tiny_data):
    from convscope.train import loop
    from tests.cli.test_cli import invoke

    result = invoke("train", "lenet5", "--out", str(tmp_path / "r"), "--nproc", "2", "--sync-bn", "--device", "cpu")
    assert result.exit_code == 2 and SYNC_BN_NEEDS_CUDA in " ".join(result.output.split())
    assert not (tmp_path / "r").exists()
    # under torchrun (no --nproc), fit finds it out before anything is swapped or wrapped
    monkeypatch.setattr(loop, "world", lambda: World(rank=0, size=2))
    model = _bn_net()
    with pytest.raises(UserError, match="needs CUDA devices"):
        loop.fit(model, *tiny_data, epochs=1, batch_size=64, sync_bn=True, progress=False)
    assert [type(m) for m in _norms(model)] == [nn.BatchNorm2d, nn.BatchNorm1d]


# ------------------------------------------------------------------------------------ two real processes


@pytest.mark.slow
@pytest.mark.xdist_group("distributed")
def test_two_processes_match_one_and_repeat_bit_for_bit(tmp_path):
    _mnist_or_skip()
    from convscope.train.run import train_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes: on a loaded 2-core machine, much faster
    try:
        one = train_run(resolve(TrainConfig, overrides=["train_subset=2000", "test_subset=2000"], epochs=1,
                                batch_size=50, device="cpu"), tmp_path / "one", progress=False).final
    finally:
        torch.set_num_threads(threads)
    runs = {}
    for name in ("two", "two-again"):
        done = _convscope("train", "lenet5", "--epochs", "1", "--out", str(tmp_path / name), "--nproc", "2", *SMALL)
        assert done.returncode == 0, done.stderr
        assert done.stderr == "" and "test accuracy" in done.stdout  # rank 0 reports, once
        runs[name] = json.loads((tmp_path / name / "run.json").read_text())
    assert abs(runs["two"]["final"]["test_acc"] - one["test_acc"]) <= 0.001, (one, runs)  # within 0.1 points
    assert runs["two"]["provenance"]["world_size"] == 2 and runs["two"]["provenance"]["threads_per_process"] >= 1
    a, b = _weights(tmp_path / "two"), _weights(tmp_path / "two-again")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit for bit across two launches
    same = [{k: v for k, v in runs[n]["final"].items() if k != "seconds"} for n in ("two", "two-again")]
    assert same[0] == same[1]


@pytest.mark.slow
@pytest.mark.xdist_group("distributed")
def test_a_mistake_found_by_the_workers_is_one_sentence(tmp_path):
    (tmp_path / "run" / "checkpoint").mkdir(parents=True)
    (tmp_path / "run" / "checkpoint" / "state.json").write_text(json.dumps(
        {"epoch": 1, "config": {"model": "lenet5", "data": "mnist", "seed": 5}}))
    done = _convscope("train", "lenet5", "--epochs", "1", "--out", str(tmp_path / "run"), "--nproc", "2", *SMALL)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'run'} already holds a different run (lenet5 "
                                                "on mnist, seed 5): choose another --out or pass --overwrite to "
                                                "replace it."]


def _worker_pids(launcher: int) -> dict[int, int]:
    """RANK -> pid of the worker processes the launcher (pid `launcher`) started."""
    out = {}
    for pid in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        env = dict(kv.split("=", 1) for kv in environ if "=" in kv)
        if "RANK" in env:
            out[int(env["RANK"])] = int(pid)
    return out


@pytest.mark.slow
@pytest.mark.xdist_group("distributed")
def test_a_killed_worker_stops_the_run_and_it_resumes_on_one_process(tmp_path):
    _mnist_or_skip()
    out = tmp_path / "run"
    args = ["train", "lenet5", "--epochs", "3", "--out", str(out), "--set", "train_subset=6000",
            "--set", "test_subset=500", "--batch-size", "50", "--device", "cpu", "-q"]
    proc = subprocess.Popen([sys.executable, "-m", "convscope", *args, "--nproc", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    state = out / "checkpoint" / "state.json"
    deadline = time.time() + 150
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert state.exists(), proc.communicate()[1] if proc.poll() is not None else "no checkpoint in time"
    os.kill(_worker_pids(proc.pid)[1], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("error: Worker 1 of 2 was killed by SIGKILL, so the whole run stopped; the checkpoint "
                               "of epoch ") and "--resume" in lines[0], lines[0]
    # The data order is a function of the epoch and the global batch, so one process can take over.
    resumed = _convscope(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert json.loads((out / "run.json").read_text())["provenance"]["world_size"] == 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (NCCL)")
@pytest.mark.xdist_group("distributed")
def test_on_gpus_each_process_takes_its_own_and_nccl(tmp_path):
    _mnist_or_skip()
    nproc = str(min(torch.cuda.device_count(), 2))
    done = _convscope("train", "lenet5", "--epochs", "1", "--out", str(tmp_path / "gpu"), "--nproc", nproc,
                      "--set", "train_subset=2000", "--set", "test_subset=500", "--batch-size", "50", "--device",
                      "cuda", "-q")
    assert done.returncode == 0, done.stderr
    provenance = json.loads((tmp_path / "gpu" / "run.json").read_text())["provenance"]
    assert provenance["device"] == "cuda:0" and provenance["world_size"] == int(nproc)
