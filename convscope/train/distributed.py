"""Several processes on `torch.distributed`: the launcher behind `--nproc N`, the process group, the shards.

`convscope train … --nproc N` (and `convscope scan … --nproc N`) hands its command to
`torch.distributed.run`, the engine behind `torchrun`, which starts N copies of `python -m convscope …` on
this machine; `torchrun --nnodes M --nproc-per-node N … -m convscope train …` does the same over several
machines. Either way each process finds RANK, WORLD_SIZE and LOCAL_RANK in its environment, and
`process_group` joins it to the others: gloo on the CPU, NCCL on CUDA (one GPU per process, `cuda:LOCAL_RANK`).

What each process computes is a function of (seed, epoch, rank, world size) only, so two launches of the
same run are bit-for-bit the same (tests/train/test_distributed.py):

- training: the global batch of step i is the same slice of the epoch's permutation as in one process,
  and rank r takes its r-th of W equal parts (`batch_slice`); DistributedDataParallel averages the
  gradients, which is the one-process batch gradient up to the order of the floating-point sums;
- dataset scans: the batches of the one-process scan are dealt round-robin to the ranks, so every example
  meets the same batch as in one process, and the results merge exactly (`analysis.topk.gather_topk`,
  summed counts).

BatchNorm layers keep per-process statistics under DistributedDataParallel: each rank normalises with the mean
and variance of its own part of the batch (B/W examples) and keeps its own running averages (rank 0's are
saved). `sync_batchnorm` (`--sync-bn`) swaps them for `nn.SyncBatchNorm` for the run, so every rank normalises
with the statistics of the whole global batch; torch synchronises them only for CUDA (and other accelerator)
tensors, so on the CPU it is refused.

Each process pins its torch thread count to its share of the cores (`threads_per_process`); the count is
part of the provenance, since it can change the bits.

A user's mistake in a worker (a `UserError`) is written to the error file the elastic agent gives each
worker (TORCHELASTIC_ERROR_FILE), and `launch` raises it again in the launching process: one sentence,
whichever rank found it, instead of N tracebacks. A worker that dies (killed, out of memory) stops the
whole run; `launch` says which one and how.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from convscope.errors import UserError

LAUNCHED_BY_CONVSCOPE = "CONVSCOPE_LAUNCHER"  # set in the workers `launch` starts: they leave printing to it


class WorkerError(UserError):
    """A worker process of a distributed run died, so the run stopped (the message says which and how)."""


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among `size` processes, and among the `local_size` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes files and prints (rank 0)."""
        return self.rank == 0


def world() -> World:
    """This process's place in the initialised process group; `World()` (one process) when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                 int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def launched() -> bool:
    """Whether this process was started by torchrun or `launch` (the environment names its rank)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def threads_per_process(local_size: int) -> int:
    """This machine's cores shared out among its `local_size` processes (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // max(local_size, 1))


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def local_device(device: torch.device) -> torch.device:
    """`cuda` without an index becomes this process's own GPU, `cuda:LOCAL_RANK`; other devices are kept."""
    if device.type == "cuda" and device.index is None and launched():
        local = int(os.environ["LOCAL_RANK"])
        if local >= torch.cuda.device_count():
            raise UserError(f"Process {local} on this machine has no GPU of its own ({torch.cuda.device_count()} "
                            "seen): start at most one process per GPU (--nproc / --nproc-per-node).")
        return torch.device("cuda", local)
    return device


@contextmanager
def process_group(device: torch.device) -> Iterator[World]:
    """Join the process group torchrun or `launch` set up (gloo or NCCL by `device`); leave it on exit.

    Outside a launched process this does nothing and yields `World()`. The torch thread count is set to this
    process's share of the cores unless OMP_NUM_THREADS says otherwise.
    """
    if not launched() or dist.is_initialized():
        yield world()
        return
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or threads_per_process(local_size)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device), device_id=device if device.type == "cuda" else None)
    try:
        yield world()
    finally:
        dist.destroy_process_group()


SYNC_BN_NEEDS_CUDA = ("--sync-bn (sync_bn) needs CUDA devices, since torch synchronises BatchNorm statistics only "
                      "between GPUs: leave it out on the CPU, where each process keeps its own statistics.")


def sync_batchnorm(model: nn.Module) -> Callable[[], None]:
    """Swap each BatchNorm layer inside `model` for an `nn.SyncBatchNorm` that shares its parameters and buffers;
    returns the function that puts the model's own layers back.

    The state dict keeps its keys and values (a checkpoint saved meanwhile loads into the plain model), and what
    the run learns lands in the original layers' tensors.
    """
    swapped: dict[int, nn.Module] = {}  # id(BatchNorm) -> its SyncBatchNorm: a layer registered twice stays one
    places: list[tuple[nn.Module, str, nn.Module]] = []
    for name, module in model.named_modules(remove_duplicate=False):
        if name and isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
            parent, _, child = name.rpartition(".")
            places.append((model.get_submodule(parent), child, module))
    for parent, child, module in places:
        if id(module) not in swapped:
            swapped[id(module)] = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        setattr(parent, child, swapped[id(module)])

    def back() -> None:
        for parent, child, module in places:
            setattr(parent, child, module)

    return back


def batch_slice(step: int, batch_size: int, w: World) -> slice:
    """The positions of the epoch's permutation that rank `w.rank` trains on at `step`.

    The global batch is positions [step·B, (step+1)·B), as in one process; rank r takes its r-th of W parts.
    """
    if batch_size % w.size:
        raise UserError(f"The batch size {batch_size} does not split into {w.size} equal parts, one per process: "
                        f"choose a batch size divisible by {w.size} (e.g. {batch_size - batch_size % w.size or w.size})"
                        " or another number of processes.")
    local = batch_size // w.size
    start = step * batch_size + w.rank * local
    return slice(start, start + local)


def all_sum(*values: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor summed over the ranks (itself in one process), in float64 on the CPU for exact counts."""
    if world().size == 1:
        return list(values)
    flat = torch.cat([v.detach().reshape(-1).to("cpu", torch.float64) for v in values])
    if dist.get_backend() == "nccl":
        flat = flat.cuda()
    dist.all_reduce(flat)
    out, start = [], 0
    for v in values:
        out.append(flat[start:start + v.numel()].reshape(v.shape).to(v.device, v.dtype))
        start += v.numel()
    return out


def barrier() -> None:
    if world().size > 1:
        dist.barrier()


# ------------------------------------------------------------------------------------ the launcher


def report_error(message: str) -> bool:
    """In a worker: write a UserError's sentence where the elastic agent reads it; True when `launch` prints it.

    The file is the one torchrun gives each worker, in its own format ({"message", "timestamp"}), so plain
    torchrun shows the sentence in its summary too.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path or not launched():
        return False
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"message": message, "timestamp": int(time.time())}), encoding="utf-8")
    return os.environ.get(LAUNCHED_BY_CONVSCOPE) == "1"


def launch(argv: list[str], nproc: int) -> None:
    """Run `python -m convscope ARGV` in `nproc` processes on this machine through `torch.distributed.run`.

    The processes meet on the loopback interface at a free port. Returns when every one has finished; a
    UserError in any of them is raised here with its sentence, and a worker that died raises WorkerError. The
    workers' stderr goes to log files, removed afterwards unless a worker crashed (the error names them), so a
    run that fails says one thing, not one traceback per process; rank 0's progress bar stays on stdout.

    Example:
        >>> launch(["train", "lenet5", "--out", "runs/lenet5", "-q"], nproc=2)
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if nproc < 1:
        raise UserError(f"--nproc must be at least 1, not {nproc}.")
    env = {LAUNCHED_BY_CONVSCOPE: "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")
           or str(threads_per_process(nproc))}
    if "lo" in {name for _, name in socket.if_nameindex()}:
        env["GLOO_SOCKET_IFNAME"] = os.environ.get("GLOO_SOCKET_IFNAME", "lo")
    logs = Path(tempfile.mkdtemp(prefix="convscope-workers-"))  # their stderr, kept only to explain a crash
    args = torchrun.parse_args([
        f"--log-dir={logs}", "--redirects=2", "--nnodes=1", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}",
        f"--rdzv-id={uuid.uuid4()}", "--local-addr=127.0.0.1", "--max-restarts=0", "--module", "convscope"])
    args.training_script_args = list(argv)  # not parsed by torchrun, which would take --run for its --run-path
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    # The elastic agent logs every step and a failure report of its own: the one sentence below replaces them.
    logging.disable(logging.CRITICAL)
    keep_logs = False
    try:
        torchrun.run(args)
    except ChildFailedError as e:
        error = _failure(e, nproc, logs)
        keep_logs = str(logs) in str(error)  # a crash: the error names the logs
        raise error from None
    except SignalException:  # Ctrl-C or SIGTERM reached the agent, which has stopped the workers
        raise KeyboardInterrupt from None
    finally:
        logging.disable(logging.NOTSET)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not keep_logs:
            shutil.rmtree(logs, ignore_errors=True)


# How a worker ended, root causes first: a sentence it left, a signal from outside (SIGKILL: the OOM killer,
# a user), a crash; last, SIGTERM, which the agent sends to the workers still running once one has failed.
def _cause(item: tuple[int, Any]) -> tuple[int, int, int]:
    rank, f = item
    said = os.path.isfile(f.error_file) and isinstance(f.message, str) and bool(f.message)  # report_error's file
    order = 0 if said else 3 if f.exitcode == -signal.SIGTERM else 1 if f.exitcode < 0 else 2
    return order, f.timestamp, rank


def _failure(e: Any, nproc: int, logs: Path) -> UserError:
    """The sentence a worker left (a ChildFailedError's error files), else which worker died of what."""
    rank, f = min(e.failures.items(), key=_cause)
    if _cause((rank, f))[0] == 0:
        return UserError(f.message)
    if f.exitcode < 0:
        return WorkerError(f"Worker {rank} of {nproc} was killed by {f.signal_name()}, so the whole run stopped")
    last = [line.strip() for log in sorted(logs.glob(f"*/attempt_*/{f.local_rank}/stderr.log"))
            for line in log.read_text(errors="replace").splitlines() if line.strip()]
    what = f" ({last[-1].removeprefix(f'[rank{rank}]:').strip()[:200]})" if last else ""
    return WorkerError(f"Worker {rank} of {nproc} failed with status {f.exitcode}{what}, so the whole run stopped "
                       f"(every worker's log is kept in {logs})")


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = ["World", "WorkerError", "all_sum", "backend_for", "barrier", "batch_slice", "free_port", "launch",
           "launched", "local_device", "process_group", "report_error", "threads_per_process", "world"]
