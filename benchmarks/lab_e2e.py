"""`convscope lab` end to end with the data cached: wall time and peak memory.

Runs the lab into a fresh temporary directory (so it trains and runs its experiments from scratch,
as a first `make lab` does once MNIST is in the cache), then a second time over the same directory
(what a second `make lab` does: everything reused). Goal (issue 2): at most 3 minutes and 2 GiB.

Prints one JSON object.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_lab(out: Path) -> dict:
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-m", "convscope.cli", "lab", "--out", str(out), "--quiet"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far, in KiB
    if proc.returncode != 0:
        raise SystemExit(f"convscope lab failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(max(peak_kib, before) / 1024, 1)}


def main() -> int:
    from convscope.data import load_dataset

    for name in ("mnist", "fashion-mnist"):  # make sure the data is cached first (crelu uses Fashion-MNIST)
        load_dataset(name, "train"), load_dataset(name, "test")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "lab"
        first = run_lab(out)
        second = run_lab(out)
        pages = sorted(p.name for p in (out / "atlas").glob("*.html"))
    result = {
        "benchmark": "lab_e2e", "first_run": first, "second_run": second, "atlas_pages": len(pages),
        "goal": {"max_seconds": 180, "max_peak_rss_mib": 2048},
        "met": first["seconds"] <= 180 and first["peak_rss_mib"] <= 2048,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
