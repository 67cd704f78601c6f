"""`convscope lab` end to end with the data cached: wall time and peak memory of each run.

Runs the lab into a fresh temporary directory (so it trains and runs its experiments from scratch,
as a first `make lab` does once the data is in the cache), then a second time over the same directory
(what a second `make lab` does: everything reused). Each run is its own child process, and its peak
resident memory is that process's own `ru_maxrss`, read from `os.wait4` on it by a small wrapper
process, so the second run's figure is not the first run's peak carried over (as
`getrusage(RUSAGE_CHILDREN)` gave) nor this script's own (see `run_measured`).

The measurement is only of the whole lab if the lab ran every experiment: if any run leaves an
`experiments/NAME/skipped.json` (data it could not get), or an experiment without a `result.json`,
the JSON says which and why and the script exits 1. Goal (issue 2): the first run in at most
3 minutes, and each run in at most 2 GiB.

Usage: python benchmarks/lab_e2e.py [--quick] [--keep DIR]
`--quick` is a smoke run of the same machinery: a tiny LeNet-5 and the lenet5 experiment only, through
`run_lab` (its timings and `met` mean nothing). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL = {"max_seconds": 180, "max_peak_rss_mib": 2048, "max_page_load_seconds": 1.0}
ROOT = Path(__file__).resolve().parents[1]
QUICK_LAB = """
import sys
from convscope.config import TrainConfig
from convscope.experiments.lenet5 import LeNet5Config
from convscope.lab import run_lab
small = TrainConfig(epochs=1, batch_size=50, train_subset=500, test_subset=200, device="cpu")
run_lab(sys.argv[1], cfg=small, experiments=["lenet5"],
        experiment_configs={"lenet5": LeNet5Config(seeds=[0], train=small)}, progress=False, log=print)
"""
# Runs the measured command as its child and reports that child's own resource usage.
WRAPPER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
with open(sys.argv[1], "w") as f:
    json.dump({"exit_code": proc.returncode, "ru_maxrss": usage.ru_maxrss}, f)
"""


def run_measured(cmd: list[str], log: Path) -> dict[str, Any]:
    """Run `cmd` in its own process; its exit code, wall seconds and its own peak RSS (MiB).

    `os.wait4` gives the resource usage of that one child, so each run has its own peak. It is read in
    a small wrapper process, not here: Linux counts the high-water RSS of the process a child was
    forked from into the child's `ru_maxrss`, so a child of this (larger) process would report at
    least this process's peak (checked: 514 MiB for `python -c pass` after a 500 MiB buffer, 14 via
    the wrapper).
    """
    report = log.with_suffix(".rusage.json")
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        wrapper = subprocess.run([sys.executable, "-c", WRAPPER, str(report), *cmd], stdout=out,
                                 stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if not report.exists():
        return {"exit_code": wrapper.returncode, "seconds": round(seconds, 2), "peak_rss_mib": None}
    usage = json.loads(report.read_text())
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return {"exit_code": usage["exit_code"], "seconds": round(seconds, 2),
            "peak_rss_mib": round(usage["ru_maxrss"] * scale / 2**20, 1)}


def experiment_status(out: Path, expected: list[str]) -> dict[str, Any]:
    """Which experiments the lab skipped (with its reason) or left without a result."""
    exp_dir = out / "experiments"
    skipped = {p.parent.name: json.loads(p.read_text()).get("reason", "")
               for p in sorted(exp_dir.glob("*/skipped.json"))}
    missing = [n for n in expected if n not in skipped and not (exp_dir / n / "result.json").exists()]
    done = sorted(p.parent.name for p in exp_dir.glob("*/result.json"))
    return {"completed": done, "skipped": skipped, "missing": missing}


def page_loads(atlas: Path) -> dict[str, Any] | None:
    """Open every page of the atlas in headless Chromium (tests/report/browser.py): the slowest load and its page,
    the mean, and the pages with problems; None without Chromium or pages."""
    sys.path.insert(0, str(ROOT))
    from tests.report.browser import Browser, find_chromium

    pages = sorted(atlas.glob("*.html"))
    if find_chromium() is None or not pages:
        return None
    times, problems = {}, []
    with Browser() as b:
        for page in pages:
            t = time.perf_counter()
            problems += [f"{page.name}: {m}" for m in b.check(page)]
            times[page.name] = time.perf_counter() - t
    worst = max(times, key=times.__getitem__)
    return {"max": round(times[worst], 3), "slowest_page": worst, "mean": round(sum(times.values()) / len(times), 3),
            "pages": len(times), "problems": problems[:10]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny LeNet-5 and the lenet5 experiment")
    ap.add_argument("--keep", metavar="DIR", help="write the lab into DIR (new or empty) and keep it")
    args = ap.parse_args(argv)
    if args.keep and Path(args.keep).exists() and any(Path(args.keep).iterdir()):
        ap.error(f"{args.keep} is not empty: give a new or empty directory to --keep.")
    from convscope.data import load_dataset
    from convscope.lab import lab_experiments

    data_errors = {}
    for name in ("mnist",) if args.quick else ("mnist", "fashion-mnist"):  # cached first (crelu: Fashion-MNIST)
        try:
            load_dataset(name, "train"), load_dataset(name, "test")
        except Exception as e:  # noqa: BLE001 - reported, and the lab will skip what needs it
            data_errors[name] = str(e)
    expected = ["lenet5"] if args.quick else lab_experiments()
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        out = Path(tmp) / "lab"
        cmd = ([sys.executable, "-c", QUICK_LAB, str(out)] if args.quick else
               [sys.executable, "-m", "convscope.cli", "lab", "--out", str(out), "--quiet"])
        for run in ("first_run", "second_run"):
            log = Path(tmp) / f"{run}.log"
            runs[run] = run_measured(cmd, log)
            runs[run]["experiments"] = experiment_status(out, expected)
            if runs[run]["exit_code"] != 0:
                runs[run]["log_tail"] = log.read_text(errors="replace")[-2000:]
        pages = sorted(p.name for p in (out / "atlas").glob("*.html"))
        atlas_bytes = sum(p.stat().st_size for p in (out / "atlas").rglob("*") if p.is_file())
        loads = page_loads(out / "atlas")
    failures = [f"{run}: exit code {r['exit_code']}" for run, r in runs.items() if r["exit_code"] != 0]
    for run, r in runs.items():
        failures += [f"{run}: skipped {n} ({why})" for n, why in r["experiments"]["skipped"].items()]
        failures += [f"{run}: no result for {n}" for n in r["experiments"]["missing"]]
    first = runs["first_run"]
    within_memory = all((r["peak_rss_mib"] or float("inf")) <= GOAL["max_peak_rss_mib"] for r in runs.values())
    result = {
        "benchmark": "lab_e2e", "quick": args.quick, "complete": not failures, "failures": failures,
        "data_errors": data_errors, "expected_experiments": expected, **runs, "atlas_pages": len(pages),
        "atlas_mib": round(atlas_bytes / 2**20, 2), "page_load_seconds": loads,
        "goal": GOAL,
        "met": None if args.quick else (not failures and first["seconds"] <= GOAL["max_seconds"] and within_memory
                                        and (loads is None or (loads["max"] <= GOAL["max_page_load_seconds"]
                                                               and not loads["problems"]))),
    }
    print(json.dumps(result))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
