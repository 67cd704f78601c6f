"""`convscope scan`: the passes over a dataset that grow with it, on one process or several (`--nproc N`).

`topk` finds the k images on which each channel of each conv layer fires most (Zeiler & Fergus Fig. 2;
analysis/topk.py); `invariance` scores each conv layer's invariance to flips, rotations and shifts
(Goodfellow et al. 2009; analysis/invariance.py). Each process scans its share of the batches and the
results merge exactly (convscope/shards.py), so any number of processes writes the same files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from convscope.cli.common import Nproc, Root, app, guarded, launch_workers
from convscope.errors import UserError

KINDS = ("topk", "invariance")


@app.command()
@guarded
def scan(
    kind: Annotated[str, typer.Argument(help="topk (the top-k images per channel) or invariance (scores per "
                                             "layer and transformation).")],
    run: Annotated[Path, typer.Option("--run", help="Run directory of a trained model (convscope train --out).")],
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default RUN/scan-KIND).")] = None,
    split: Annotated[str, typer.Option(help="train or test images.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Scan a class-balanced subset of this many images.")] = None,
    k: Annotated[int, typer.Option("--k", help="topk: images kept per channel.")] = 9,
    layers: Annotated[str | None, typer.Option(help="Comma-separated layer names (default: the conv "
                                                    "layers).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 250,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
    nproc: Nproc = 1,
    root: Root = None,
) -> None:
    """Scan a dataset with a trained model: OUT/topk.npz or OUT/invariance.json, and OUT/scan.json.

    Example: `convscope scan topk --run runs/lenet5 --k 9` (the 9 test images of every channel)

    Example: `convscope scan invariance --run runs/lenet5 --nproc 2` (two processes, the same scores)
    """
    if kind not in KINDS:
        raise UserError(f"Unknown scan {kind!r}: choose topk or invariance.")
    if split not in ("train", "test"):
        raise UserError(f"--split must be train or test, not {split!r}.")
    out = out or run / f"scan-{kind}"
    argv = ["scan", kind, "--run", str(run), "--out", str(out), "--split", split, "--k", str(k),
            "--batch-size", str(batch_size), "--device", device, *(["--limit", str(limit)] if limit else []),
            *(["--layers", layers] if layers else []), *(["--root", str(root)] if root is not None else [])]
    if launch_workers(nproc, argv):
        return
    info = _scan(kind, run, out, split, limit, k, layers, batch_size, device, root)
    if info is not None:
        typer.echo(f"{kind} of {info['examples']} {split} images, {len(info['layers'])} layers, in "
                   f"{info['seconds']:.1f}s on {info['world_size']} process(es): {out}")


def _scan(kind: str, run: Path, out: Path, split: str, limit: int | None, k: int, layers: str | None,
          batch_size: int, device: str, root: Path | None) -> dict[str, Any] | None:
    """Every process runs this; rank 0 writes and returns what it wrote (the others return None)."""
    import torch

    from convscope.data import load_dataset
    from convscope.hooks import conv_layers
    from convscope.io import save_npz, write_json
    from convscope.train.distributed import barrier, local_device, process_group
    from convscope.train.loop import resolve_device
    from convscope.train.run import load_run_model

    dev = local_device(resolve_device(device))
    with process_group(dev) as w:
        model, cfg = load_run_model(run, device=str(dev))
        data = load_dataset(cfg.data, split, root=root)
        x = (data.subset(limit, seed=cfg.seed) if limit else data).tensors()[0].to(dev)
        names = [n.strip() for n in layers.split(",") if n.strip()] if layers else conv_layers(model)
        barrier()  # time the scan alone, from a common start
        t0 = time.perf_counter()
        if kind == "topk":
            from convscope.analysis.topk import top_examples

            result: Any = top_examples(model, x, names, k=k, batch_size=batch_size, distributed=True)
        else:
            from convscope.analysis.invariance import invariance_scores

            result = invariance_scores(model, x, names, batch_size=batch_size, distributed=True)
        seconds = time.perf_counter() - t0
        if not w.main:
            return None
        if kind == "topk":
            save_npz(out / "topk.npz", **{f"{n}.{f}": getattr(t, f).numpy() for n, t in result.items()
                                          for f in ("values", "index", "pos")})
        else:
            write_json(out / "invariance.json", {n: {fam: {"score": inv.score, "threshold": inv.threshold.tolist(),
                                                           "global_rate": inv.global_rate.tolist(),
                                                           "local_rate": inv.local_rate.tolist()}
                                                     for fam, inv in fams.items()} for n, fams in result.items()})
        info = {"kind": kind, "run": str(run), "split": split, "examples": len(x), "layers": names,
                "k": k if kind == "topk" else None, "batch_size": batch_size, "world_size": w.size,
                "threads_per_process": torch.get_num_threads(), "seconds": seconds}
        write_json(out / "scan.json", info)
        return info
