"""`convscope scan`: the passes over a dataset that grow with it, on one process or several (`--nproc N`).

`topk` finds the k images on which each channel of each conv layer fires most (Zeiler & Fergus Fig. 2;
analysis/topk.py); `invariance` scores each conv layer's invariance to flips, rotations and shifts
(Goodfellow et al. 2009; analysis/invariance.py); `clustering` measures how well each layer's representation
separates the classes, k-NN accuracy and scatter ratio (Kuo 2016; analysis/clustering.py); `occlusion` says how
often the occluding square that lowers the correct class most is centred on the object, "occlusion pointing"
(Zeiler & Fergus Fig. 7; explain/occlusion_maps.py). Each process scans its share of the batches and the
results merge exactly (convscope/shards.py), so any number of processes writes the same files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from convscope.cli.common import Nproc, Root, app, guarded, launch_workers
from convscope.errors import UserError

KINDS = ("topk", "invariance", "clustering", "occlusion")


@app.command()
@guarded
def scan(
    kind: Annotated[str, typer.Argument(help="topk (the top-k images per channel), invariance (scores per layer "
                                             "and transformation), clustering (k-NN accuracy and scatter ratio "
                                             "per layer) or occlusion (occlusion pointing per image).")],
    run: Annotated[Path, typer.Option("--run", help="Run directory of a trained model (convscope train --out).")],
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default RUN/scan-KIND).")] = None,
    split: Annotated[str, typer.Option(help="train or test images.")] = "test",
    limit: Annotated[int | None, typer.Option(help="Scan a class-balanced subset of this many images.")] = None,
    k: Annotated[int | None, typer.Option("--k", help="topk: images kept per channel [default: 9]; clustering: "
                                                      "neighbours voting [default: 5].")] = None,
    layers: Annotated[str | None, typer.Option(help="Comma-separated layer names (default: the conv layers; "
                                                    "clustering: every layer that runs once; occlusion: the "
                                                    "last conv layer, one name).")] = None,
    window: Annotated[int, typer.Option(help="occlusion: side of the square.")] = 7,
    stride: Annotated[int, typer.Option(help="occlusion: step between its positions.")] = 2,
    fill: Annotated[float, typer.Option(help="occlusion: the square's value (0.5: grey for images in [0, 1]).")] = 0.5,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 250,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
    nproc: Nproc = 1,
    root: Root = None,
) -> None:
    """Scan a dataset with a trained model: OUT/topk.npz, invariance.json, clustering.json or occlusion.json
    (with occlusion.npz), and OUT/scan.json.

    Example: `convscope scan topk --run runs/lenet5 --k 9` (the 9 test images of every channel)

    Example: `convscope scan invariance --run runs/lenet5 --nproc 2` (two processes, the same scores)

    Example: `convscope scan occlusion --run runs/lenet5 --limit 500 --fill 0` (a black square)
    """
    if kind not in KINDS:
        raise UserError(f"Unknown scan {kind!r}: choose topk, invariance, clustering or occlusion.")
    if split not in ("train", "test"):
        raise UserError(f"--split must be train or test, not {split!r}.")
    if kind == "occlusion" and layers is not None and "," in layers:
        raise UserError("An occlusion scan follows the strongest map of one layer: give one --layers name.")
    k = k if k is not None else 5 if kind == "clustering" else 9
    if k < 1 or window < 1 or stride < 1 or batch_size < 1:
        raise UserError(f"--k, --window, --stride and --batch-size must be at least 1, not {k}, {window}, {stride} "
                        f"and {batch_size}.")
    out = out or run / f"scan-{kind}"
    argv = ["scan", kind, "--run", str(run), "--out", str(out), "--split", split, "--k", str(k),
            "--batch-size", str(batch_size), "--device", device, *(["--limit", str(limit)] if limit else []),
            "--window", str(window), "--stride", str(stride), "--fill", repr(fill),
            *(["--layers", layers] if layers else []), *(["--root", str(root)] if root is not None else [])]
    if launch_workers(nproc, argv):
        return
    occlusion = {"window": window, "stride": stride, "fill": fill}
    info = _scan(kind, run, out, split, limit, k, layers, batch_size, device, root, occlusion)
    if info is not None:
        typer.echo(f"{kind} of {info['examples']} {split} images, {len(info['layers'])} layers, in "
                   f"{info['seconds']:.1f}s on {info['world_size']} process(es): {out}")


def _scan(kind: str, run: Path, out: Path, split: str, limit: int | None, k: int, layers: str | None,
          batch_size: int, device: str, root: Path | None, occlusion: dict[str, Any]) -> dict[str, Any] | None:
    """Every process runs this; rank 0 writes and returns what it wrote (the others return None)."""
    import torch

    from convscope.data import load_dataset
    from convscope.io import save_npz, write_json
    from convscope.train.distributed import barrier, local_device, process_group
    from convscope.train.loop import resolve_device
    from convscope.train.run import load_run_model

    dev = local_device(resolve_device(device))
    with process_group(dev) as w:
        model, cfg = load_run_model(run, device=str(dev))
        data = load_dataset(cfg.data, split, root=root)
        x, y = (t.to(dev) for t in (data.subset(limit, seed=cfg.seed) if limit else data).tensors())
        names = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
        barrier()  # time the scan alone, from a common start
        t0 = time.perf_counter()
        files, names = SCANS[kind](model, x, y, names, k=k, batch_size=batch_size, **occlusion)
        seconds = time.perf_counter() - t0
        if not w.main:
            return None
        for name, content in files.items():
            if name.endswith(".npz"):
                save_npz(out / name, **content)
            else:
                write_json(out / name, content)
        info = {"kind": kind, "run": str(run), "split": split, "examples": len(x), "layers": names,
                "k": k if kind in ("topk", "clustering") else None, "batch_size": batch_size,
                **({f"occlusion_{key}": v for key, v in occlusion.items()} if kind == "occlusion" else {}),
                "world_size": w.size, "threads_per_process": torch.get_num_threads(), "seconds": seconds}
        write_json(out / "scan.json", info)
        return info


Files = dict[str, Any]  # file name -> arrays (.npz) or JSON content


def _topk(model: Any, x: Any, y: Any, names: list[str] | None, *, k: int, batch_size: int, **_: Any) -> Any:
    from convscope.analysis.topk import top_examples
    from convscope.hooks import conv_layers

    names = names or conv_layers(model)
    tops = top_examples(model, x, names, k=k, batch_size=batch_size, distributed=True)
    return {"topk.npz": {f"{n}.{f}": getattr(t, f).numpy() for n, t in tops.items()
                         for f in ("values", "index", "pos")}}, names


def _invariance(model: Any, x: Any, y: Any, names: list[str] | None, *, batch_size: int, **_: Any) -> Any:
    from convscope.analysis.invariance import invariance_scores
    from convscope.hooks import conv_layers

    names = names or conv_layers(model)
    scores = invariance_scores(model, x, names, batch_size=batch_size, distributed=True)
    fields = ("threshold", "global_rate", "local_rate")
    return {"invariance.json": {n: {fam: {"score": inv.score, **{f: getattr(inv, f).tolist() for f in fields}}
                                    for fam, inv in fams.items()} for n, fams in scores.items()}}, names


def _clustering(model: Any, x: Any, y: Any, names: list[str] | None, *, k: int, batch_size: int, **_: Any) -> Any:
    from convscope.analysis.clustering import clustering_scan

    clus = clustering_scan(model, x, y, names, k=k, batch_size=batch_size, distributed=True)
    return {"clustering.json": {"layers": clus.layers, "knn_acc": clus.knn_acc,
                                "scatter_ratio": clus.scatter_ratio}}, clus.layers[1:]  # [0] is the input


def _occlusion(model: Any, x: Any, y: Any, names: list[str] | None, *, batch_size: int, window: int, stride: int,
               fill: float, **_: Any) -> Any:
    from convscope.explain.occlusion_maps import ink_region, pointing_scan, top_fraction_region
    from convscope.hooks import conv_layers

    layer = names[0] if names else (conv_layers(model) or [None])[-1]
    regions = {"ink": lambda xb, _: ink_region(xb), "projection": lambda _, m: top_fraction_region(m.projection)}
    hits = pointing_scan(model, x, y, regions, batch_size=batch_size, distributed=True, window=window, stride=stride,
                         fill=fill, layer=layer)
    summary = {region: {"fraction": p.fraction, "chance": p.chance_fraction} for region, p in hits.items()}
    arrays = {f"{region}.{f}": getattr(p, f).numpy() for region, p in hits.items()
              for f in ("best", "drop", "hit", "chance")}
    return {"occlusion.json": summary, "occlusion.npz": arrays}, [layer]


SCANS = {"topk": _topk, "invariance": _invariance, "clustering": _clustering, "occlusion": _occlusion}
