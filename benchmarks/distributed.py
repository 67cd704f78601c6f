"""One process against N (default 2) on this machine: one epoch of LeNet-5 training, the top-9 scan and the
layer clustering scan.

Both sides run the command line a user runs (`convscope train … --nproc N`, `convscope scan topk|clustering …
--nproc N`) in a temporary directory (both sides scan the model the lone process trained, so their scan
files can be compared byte for byte), and each is timed twice:

- compute seconds, what the run itself measures on rank 0: the epoch's training time (metrics.jsonl) and
  the scan's time from a common start after a barrier to the merged result (scan.json);
- wall seconds, the whole command, process start-up, imports, rendezvous and data loading included.

Scaling efficiency is t(1) / (N · t(N)) on compute seconds (1 is perfect). Every process, the lone one
included, gets cores / N threads (`--one-threads` changes the lone one's): the figure is what adding
processes gives. A lone process with every core's threads is the other baseline, but on a machine shared
with other work its OpenMP threads wait for each other and it can be several times slower than its
one-thread self, which would show a speed-up that is not the distribution's. On a 2-core machine no real
speed-up is to be expected: the JSON says so.

Usage: python benchmarks/distributed.py [--nproc 2] [--train-subset 12000] [--scan-images 10000] [--quick]
`--quick` is a smoke run on tiny subsets (its timings mean nothing). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def scaling(one: float, many: float, nproc: int) -> dict[str, float | None]:
    """Speed-up t(1)/t(N) and efficiency t(1)/(N·t(N)); None where a time is missing or zero."""
    if not one or not many:
        return {"speedup": None, "efficiency": None}
    return {"speedup": round(one / many, 3), "efficiency": round(one / (nproc * many), 3)}


def _convscope(*args: str, threads: int) -> float:
    """Run `python -m convscope ARGS` with this checkout's code and `threads` per process; its wall seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
           "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "convscope", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"convscope {' '.join(args)} failed: {done.stderr.strip()}")
    return time.perf_counter() - t0


def side(work: Path, nproc: int, train_subset: int, scan_images: int, batch_size: int,
         threads: int) -> dict[str, Any]:
    run = work / f"train-{nproc}"
    wall = _convscope("train", "lenet5", "--epochs", "1", "--batch-size", str(batch_size), "--device", "cpu", "-q",
                      "--set", f"train_subset={train_subset}", "--set", "test_subset=1000", "--out", str(run),
                      "--nproc", str(nproc), threads=threads)
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    provenance = json.loads((run / "run.json").read_text())["provenance"]
    run = work / "train-1"  # both sides scan the same model (N processes train other floats than one)
    scan_wall = _convscope("scan", "topk", "--run", str(run), "--split", "train", "--limit", str(scan_images),
                           "--out", str(work / f"scan-{nproc}"), "--nproc", str(nproc), threads=threads)
    scan = json.loads((work / f"scan-{nproc}" / "scan.json").read_text())
    clu_wall = _convscope("scan", "clustering", "--run", str(run), "--limit", str(min(scan_images, 10000)),
                          "--out", str(work / f"clustering-{nproc}"), "--nproc", str(nproc), threads=threads)
    clu = json.loads((work / f"clustering-{nproc}" / "scan.json").read_text())
    return {"nproc": nproc, "threads_per_process": provenance["threads_per_process"],
            "train_epoch_seconds": round(row["seconds"], 3), "train_wall_seconds": round(wall, 3),
            "test_acc": row["test_acc"], "topk_scan_seconds": round(scan["seconds"], 3),
            "topk_scan_wall_seconds": round(scan_wall, 3), "clustering_scan_seconds": round(clu["seconds"], 3),
            "clustering_scan_wall_seconds": round(clu_wall, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--train-subset", type=int, default=12000)
    ap.add_argument("--scan-images", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--one-threads", type=int, default=None, help="threads of the lone process (default: "
                    "cores / nproc, as each of the N)")
    ap.add_argument("--quick", action="store_true", help="smoke run on tiny subsets (timings mean nothing)")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_subset, args.scan_images, args.batch_size = 600, 300, 50
    cores = os.cpu_count() or 1
    each = max(1, cores // args.nproc)
    with tempfile.TemporaryDirectory(prefix="convscope-bench-distributed-") as tmp:
        one = side(Path(tmp), 1, args.train_subset, args.scan_images, args.batch_size, args.one_threads or each)
        many = side(Path(tmp), args.nproc, args.train_subset, args.scan_images, args.batch_size, each)
        same = {kind: (Path(tmp) / f"{kind}-1" / file).read_bytes() == (Path(tmp) / f"{kind}-{args.nproc}" /
                                                                         file).read_bytes()
                for kind, file in (("scan", "topk.npz"), ("clustering", "clustering.json"))}
    out = {
        "benchmark": "distributed", "quick": args.quick, "cpu_cores": cores, "backend": "gloo (CPU, loopback)",
        "settings": {"model": "lenet5", "train_subset": args.train_subset, "global_batch_size": args.batch_size,
                     "scan": f"top-9 per channel of every conv layer over {args.scan_images} training images",
                     "clustering": "k-NN accuracy and scatter ratio of every layer over "
                                   f"{min(args.scan_images, 10000)} test images"},
        "one_process": one, "n_processes": many,
        "train_scaling": scaling(one["train_epoch_seconds"], many["train_epoch_seconds"], args.nproc),
        "topk_scan_scaling": scaling(one["topk_scan_seconds"], many["topk_scan_seconds"], args.nproc),
        "clustering_scan_scaling": scaling(one["clustering_scan_seconds"], many["clustering_scan_seconds"],
                                           args.nproc),
        "files_identical": {"topk.npz": same["scan"], "clustering.json": same["clustering"]},
        "test_acc_difference_points": round(100 * (many["test_acc"] - one["test_acc"]), 3),
        "expectation": (f"this machine has {cores} CPU cores, shared with other work: {args.nproc} processes cannot "
                        "beat one process that uses every core well, so no real speed-up is expected here; "
                        "wall seconds include starting each process (imports, rendezvous), which one epoch or "
                        "one scan does not pay back at this size. Speed-ups need more cores, GPUs or machines "
                        "than one process can use.") if cores <= 2 * args.nproc else None,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
