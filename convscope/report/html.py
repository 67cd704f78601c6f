"""The offline HTML atlas of a run directory: `render_atlas(run_dir)`.

Compute and render apart (docs/DESIGN.md): the atlas never builds or calls a model. It reads the saved
files of a run directory (the layout is in `convscope/io.py`), renders whatever of them exists with
the Jinja2 templates beside this file, and says on the pages what is absent:

    atlas/index.html            the run at a glance, provenance, what the run holds, links to every page
    atlas/model.html            the layer table (summary.json) and the training curves (metrics.jsonl)
    atlas/layer-<name>.html     one per conv layer (layers.npz): filter grid, activation maps of test images
    atlas/exp-<name>.html       one per experiment (experiments/NAME/result.json): metrics beside the
                                published values, provenance, figures, notes
    atlas/exp-<name>--<part>.html  one per part of an experiment with parts (a conv layer of the
                                Zeiler–Fergus study), linked from the experiment's page
    atlas/atlas.css, atlas/img/ the style sheet and every image, so the folder works from file://

Every file is written atomically (`convscope.io`). Figures come from `figures.py`.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from convscope._version import __version__
from convscope.errors import UserError
from convscope.io import atomic_write_bytes, atomic_write_text, read_json, write_json
from convscope.report import figures
from convscope.report.drawing import INDEX, Drawn, Job, draw_figures
from convscope.report.load import RunFiles, SavedExperiment, attached_file, open_run, safe_name, unique
from convscope.report.pages import page_for, short_name

MAX_IMAGES = 6  # test images shown per layer page
_WEB_IMAGE = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}
_MANIFEST = ".atlas-manifest.json"  # what the last rendering wrote, so a new one can remove stale pages
_EXPECTED = "run.json, metrics.jsonl, summary.json, layers.npz or experiments/NAME/result.json"


# ---------------------------------------------------------------- formatting (Jinja filters)


def fmt(x: Any) -> str:
    """A value as a reader wants it: 61,706 · 0.9871 · 1.2e-05 · yes · —."""
    if x is None:
        return "—"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not math.isfinite(x):
            return str(x)  # nan, inf, -inf
        if x == 0:
            return "0"
        if abs(x) >= 1e6 or abs(x) < 1e-3:
            return f"{x:.3g}"
        if abs(x) >= 1000:
            return f"{x:,.1f}"
        return f"{x:.4g}"
    if isinstance(x, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in x):
        return ", ".join(fmt(v) for v in x)
    if isinstance(x, dict):
        return json.dumps(x, default=str)
    return str(x)


def pct(x: Any) -> str:
    """An accuracy as a percentage; values in [0, 1] are read as fractions, larger ones as percent."""
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        return fmt(x)
    return f"{100 * x:.2f} %" if 0 <= x <= 1 else f"{x:.2f} %"


def duration(s: Any) -> str:
    """Seconds as 0.76 s · 42 s · 3 min 12 s · 1 h 02 min."""
    if not isinstance(s, (int, float)) or isinstance(s, bool):
        return fmt(s)
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.0f} s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def shape(x: Any) -> str:
    """[6, 28, 28] as 6 × 28 × 28."""
    if isinstance(x, (list, tuple)):
        return " × ".join(str(v) for v in x) if x else "scalar"
    return fmt(x)


# ---------------------------------------------------------------- the atlas


@dataclass
class Link:
    """A page of the atlas as the nav bar shows it: file, short label, full title."""

    href: str
    label: str
    title: str = ""


class _Atlas:
    """Writes the pages and images of one atlas into `out`."""

    def __init__(self, run_files: RunFiles, out: Path):
        self.run_files, self.out = run_files, out
        self.written: set[str] = set()  # paths relative to `out`, for the manifest
        self.env = Environment(
            loader=PackageLoader("convscope.report", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(fmt=fmt, pct=pct, duration=duration, shape=shape)
        self.layer_links = [Link(f"layer-{s}.html", short, n) for n, s, short in _layer_names(run_files.conv_layers)]
        self.exp_links = [Link(f"exp-{e.slug}.html", e.slug, e.result.title if e.result else f"{e.slug} (skipped)")
                          for e in run_files.experiments]
        # Experiment pages of their own for one layer of this run (the microscope's), linked from its layer page.
        self.parts = {e.slug: page_for(e.result.name).parts(e.result) for e in run_files.experiments if e.result}
        self.layer_parts: dict[str, list[Link]] = {}
        for e in run_files.experiments:
            if e.result is not None:
                for key, part in self.parts[e.slug].items():
                    self.layer_parts.setdefault(key, []).append(
                        Link(f"exp-{e.slug}--{safe_name(key)}.html", key, f"{e.result.title}: {part.title}"))
        self.has_model = bool(run_files.summary or run_files.metrics)
        run = run_files.run or {}
        self.model = run.get("model") or (run_files.summary or {}).get("model")
        self.title = " on ".join(str(v) for v in (self.model, run.get("dataset")) if v) or run_files.root.resolve().name

    def image(self, name: str, data: bytes) -> str:
        atomic_write_bytes(self.out / "img" / name, data)
        self.written.add(f"img/{name}")
        return f"img/{name}"

    def finish(self) -> None:
        """Remove what an earlier rendering wrote here and this one did not (pages of layers or
        experiments that are gone), then record what this one wrote. Only files listed in the
        previous manifest are ever removed, so a folder shared with other files is safe."""
        manifest = self.out / _MANIFEST
        try:
            before = set(read_json(manifest)) if manifest.is_file() else set()
        except (OSError, ValueError, TypeError):
            before = set()
        for rel in sorted(before - self.written):
            p = self.out / rel
            if not Path(rel).is_absolute() and ".." not in Path(rel).parts and p.is_file():
                p.unlink()
        write_json(manifest, sorted(self.written))

    def page(self, href: str, template: str, heading: str, **ctx: Any) -> Path:
        html = self.env.get_template(template).render(
            current=href,
            heading=heading,
            site_title=self.title,
            has_model=self.has_model,
            layer_links=self.layer_links,
            exp_links=self.exp_links,
            version=__version__,
            **ctx,
        )
        self.written.add(href)
        return atomic_write_text(self.out / href, html)

    # ------------------------------------------------------------ pages

    def index(self) -> Path:
        run_files, run = self.run_files, self.run_files.run or {}
        final, prov, summary = run.get("final") or {}, run.get("provenance") or {}, run_files.summary or {}
        last = run_files.metrics[-1] if run_files.metrics else {}
        glance = [
            ("Model", fmt(self.model) if self.model else None),
            ("Dataset", run.get("dataset")),
            ("Kind", run.get("kind")),
            ("Final test accuracy", _some(final.get("test_acc"), last.get("test_acc"), f=pct)),
            ("Final test loss", _some(final.get("test_loss"), last.get("test_loss"), f=fmt)),
            ("Parameters", _some(summary.get("total_params"), f=fmt)),
            ("Trainable", _some(summary.get("trainable_params"), f=fmt)),
            ("Connections", _some(summary.get("total_connections"), f=fmt)),
            ("Depth", _some(summary.get("depth"), f=fmt)),
            ("Epochs", fmt(len(run_files.metrics)) if run_files.metrics else None),
            ("Wall time", _some(prov.get("wall_seconds"), _sum_seconds(run_files.metrics), f=duration)),
        ]
        holds = [
            ("run.json", run_files.run is not None, "what the run is: model, dataset, final numbers, provenance"),
            ("metrics.jsonl", bool(run_files.metrics), "per-epoch training metrics, for the training curves"),
            ("summary.json", run_files.summary is not None, "the model's layer table"),
            ("layers.npz", bool(run_files.conv_layers), "filters and activation maps of each conv layer"),
            ("experiments/", bool(run_files.experiments), "experiment results compared with published figures"),
        ]
        return self.page(
            "index.html",
            "index.html",
            self.title,
            glance=[(k, v) for k, v in glance if v is not None],
            run=run,
            provenance=prov,
            holds=holds,
            problems=run_files.problems,
            root=run_files.root.resolve().name,
            layers=[(link, self._layer_shape(link.title)) for link in self.layer_links],
            experiments=run_files.experiments,
        )

    def model_page(self) -> Path:
        run_files = self.run_files
        curves = None
        if run_files.metrics:
            curves = self.image("training-curves.png", figures.training_curves(run_files.metrics))
        layer_href = {link.title: link.href for link in self.layer_links}
        columns = [k for k in ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")
                   if any(k in r for r in run_files.metrics)]
        return self.page(
            "model.html",
            "model.html",
            "Model",
            model_name=self.model,
            summary=run_files.summary,
            layer_href=layer_href,
            curves=curves,
            metrics=run_files.metrics,
            columns=columns,
        )

    def layer_page(self, index: int, link: Link, inputs: list[dict]) -> Path:
        name = link.title
        slug = link.href[len("layer-") : -len(".html")]
        problems: list[str] = []
        weight = self._array(f"{name}.weight", 4, "(out, in, kh, kw)", problems)
        act = self._array(f"{name}.act", 4, "(n, channels, h, w)", problems)
        filters = rgb = what = None
        n_out = shown = n_rows = 0
        if weight is not None:
            filters = self.image(f"layer-{slug}-filters.png", figures.filter_grid(weight))
            if weight.shape[1] == 3:  # an RGB input: its filters can be drawn in colour
                rgb = self.image(f"layer-{slug}-filters-rgb.png", figures.rgb_filter_grid(weight))
            what = figures.filter_planes(weight)[1]
            n_out = weight.shape[0]
            shown = min(n_out, figures.MAX_FILTERS)
            n_rows = math.ceil(shown / figures.grid_columns(shown))
        acts = []
        if act is not None:
            for i, inp in enumerate(inputs[: len(act)]):
                src = self.image(f"layer-{slug}-act-{i}.png", figures.activation_maps(act[i]))
                acts.append({**inp, "maps": src})
        act_shape = list(act.shape[1:]) if act is not None else None
        row = next((r for r in (self.run_files.summary or {}).get("rows", []) if r.get("name") == name), None)
        return self.page(
            link.href,
            "layer.html",
            f"Layer {name}",
            name=name,
            row=row,
            weight_shape=list(weight.shape) if weight is not None else None,
            act_shape=act_shape,
            what=what,
            filters=filters,
            rgb=rgb,
            n_filters=n_out,
            shown_filters=shown,
            n_rows=n_rows,
            shown_maps=figures.maps_shown(*act_shape) if act_shape else 0,
            acts=acts,
            has_act=f"{name}.act" in self.run_files.layers.files,
            part_links=self.layer_parts.get(name, []),
            has_images=bool(inputs),
            problems=problems,
            prev=self.layer_links[index - 1] if index > 0 else None,
            next=self.layer_links[index + 1] if index + 1 < len(self.layer_links) else None,
            position=(index + 1, len(self.layer_links)),
        )

    def _array(self, key: str, ndim: int, shape: str, problems: list[str]) -> np.ndarray | None:
        """layers.npz[key] as float32 when present and `ndim`-D; a problem noted when unreadable."""
        z = self.run_files.layers
        if key not in z.files:
            return None
        try:
            a = np.asarray(z[key], np.float32)
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            problems.append(f"layers.npz: {key} could not be read ({e}).")
            return None
        if a.ndim != ndim or 0 in a.shape:
            problems.append(f"layers.npz: {key} has shape {list(a.shape)}, not {shape}.")
            return None
        return a

    def experiment_page(self, exp: SavedExperiment, drawn: list[Drawn]) -> Path:
        """What was found (summary, headline table), the figures, the notes, then every metric, folded; and a
        page of its own for each of the experiment's parts (`ExperimentPage.parts`), linked from it or from the
        part above it.

        `drawn` holds the page's figures, already drawn into img/ (`drawing.draw_figures`)."""
        r = exp.result
        href = f"exp-{exp.slug}.html"
        if r is None:  # the lab skipped it: say why and how to add it
            return self.page(href, "skipped.html", exp.slug, exp=exp)
        page = page_for(r.name)
        parts = self.parts[exp.slug]
        part_href = {key: f"exp-{exp.slug}--{safe_name(key)}.html" for key in parts}
        figs: list[dict] = []
        by_part: dict[str, list[dict]] = {}
        for caption, rel, part, link in drawn:
            self.written.add(f"img/{rel}")
            with open(self.out / "img" / rel, "rb") as f:
                head = f.read(24)
            fig = {"caption": caption, "src": f"img/{rel}", "is_image": True, "small": _small_png(head),
                   "href": part_href.get(link, "")}
            (by_part.setdefault(part, []) if part in parts else figs).append(fig)
        if drawn:
            self.written.add(f"img/exp-{exp.slug}/{INDEX}")
        for i, (caption, rel) in enumerate(r.figures.items()):  # files a user's own experiment saved
            try:
                data = attached_file(self.run_files.root, exp, rel)
            except FileNotFoundError:
                figs.append({"caption": caption, "missing": rel})
                continue
            suffix = Path(str(rel)).suffix.lower()
            href_img = self.image(f"exp-{exp.slug}/file-{i}-{safe_name(Path(str(rel)).name)}", data)
            figs.append({"caption": caption, "src": href_img, "is_image": suffix in _WEB_IMAGE and suffix != ".svg",
                         "small": _small_png(data)})
        children: dict[str, list[Link]] = {}
        for key, part in parts.items():
            children.setdefault(part.parent if part.parent in parts else "", []).append(
                Link(part_href[key], key, part.title))
        for key, part in parts.items():
            up = [(href, r.title)]
            p = part
            while p.parent in parts and len(up) < 8:
                up.insert(1, (part_href[p.parent], parts[p.parent].title))
                p = parts[p.parent]
            shown = by_part.get(key, [])
            tiled = {f["href"] for f in shown}
            self.page(part_href[key], "part.html", part.title, result=r, crumbs=up, lede=part.lede, figures=shown,
                      part_links=[link for link in children.get(key, []) if link.href not in tiled])
        part_links = children.get("", [])
        metrics = [self._metric(exp.slug, k, v) for k, v in r.metrics.items()]
        for m in metrics:
            m["published"] = r.published.get(m["name"])
            m["seeds"] = r.by_seed.get(m["name"])
        arrays = [(k, list(v.shape), str(v.dtype)) for k, v in r.arrays.items()]
        return self.page(
            href,
            "experiment.html",
            r.title,
            exp=exp,
            result=r,
            summary=page.summary(r),
            headline=page.headline(r),
            metrics=metrics,
            figures=figs,
            part_links=part_links,
            arrays=arrays,
            where=str(exp.dir.relative_to(self.run_files.root)) if exp.dir != self.run_files.root else ".",
        )

    # ------------------------------------------------------------ helpers

    def inputs(self) -> list[dict]:
        """The test images of layers.npz as small PNGs, with labels and predictions."""
        z = self.run_files.layers
        if z is None or "images" not in z.files:
            return []
        images = np.asarray(z["images"])
        if images.ndim != 4:
            self.run_files.problems.append(f"layers.npz images have shape {list(images.shape)}, not (n, C, H, W).")
            return []
        labels = z["labels"] if "labels" in z.files else None
        preds = z["preds"] if "preds" in z.files else None
        out = []
        for i in range(min(len(images), MAX_IMAGES)):
            label = self._class(labels[i]) if labels is not None and i < len(labels) else None
            pred = self._class(preds[i]) if preds is not None and i < len(preds) else None
            out.append({
                "src": self.image(f"input-{i}.png", figures.input_image(images[i])),
                "index": i,
                "label": label,
                "pred": pred,
                "correct": None if label is None or pred is None else label == pred,
                "size": images.shape[2:],
            })
        return out

    def _class(self, k: Any) -> str:
        k = int(k)
        classes = self.run_files.classes
        return classes[k] if classes and 0 <= k < len(classes) else str(k)

    def _layer_shape(self, name: str) -> list[int]:
        """The weight shape of a conv layer, [] when unreadable (its page says why)."""
        try:
            return list(self.run_files.layers[f"{name}.weight"].shape)
        except (OSError, ValueError, zipfile.BadZipFile):
            return []

    def _metric(self, slug: str, name: str, value: Any) -> dict:
        """How one metric value is shown: text, a small table, or a plot for long lists and matrices."""
        m: dict[str, Any] = {"name": name}
        arr = _numeric_array(value)
        if isinstance(value, (list, tuple)) and arr is not None and arr.ndim == 1:
            if len(arr) <= 16:
                return {**m, "kind": "list", "values": [fmt(v) for v in value]}
            img = self.image(f"exp-{slug}/metric-{safe_name(name)}.png", figures.series_plot(arr, name))
            stats = f"{len(arr)} values, min {fmt(float(arr.min()))}, max {fmt(float(arr.max()))}"
            return {**m, "kind": "plot", "src": img, "text": stats}
        if isinstance(value, (list, tuple)) and arr is not None and arr.ndim == 2:
            if arr.size <= 64:
                return {**m, "kind": "matrix", "rows": [[fmt(v) for v in row] for row in value]}
            img = self.image(f"exp-{slug}/metric-{safe_name(name)}.png", figures.heatmap(arr, name))
            return {**m, "kind": "plot", "src": img, "text": f"{arr.shape[0]} × {arr.shape[1]} values"}
        if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            return {**m, "kind": "grid", **_grid(value)}
        if isinstance(value, dict):
            return {**m, "kind": "dict", "items": [(str(k), fmt(v)) for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            text = json.dumps(value, default=str)
            return {**m, "kind": "text", "text": text if len(text) <= 300 else text[:297] + "…"}
        return {**m, "kind": "text", "text": fmt(value)}


def _small_png(data: bytes) -> bool:
    """A PNG narrower than 160 px, drawn enlarged with crisp pixels."""
    return data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") < 160


def _grid(value: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A two-level dict (model → layer → figure) as a table: one row per outer key, one column per
    inner key; `features.conv1`-style columns that share their prefix show only their last part."""
    columns = list(dict.fromkeys(k for inner in value.values() for k in inner))
    prefixes = {c.rpartition(".")[0] for c in columns}
    heads = [c.rpartition(".")[2] for c in columns] if len(prefixes) == 1 and "" not in prefixes else columns
    rows = [(str(k), [fmt(inner[c]) if c in inner else "—" for c in columns]) for k, inner in value.items()]
    return {"columns": heads, "rows": rows}


def _numeric_array(value: Any) -> np.ndarray | None:
    """`value` as a float array when it is a non-empty, rectangular list of numbers, else None."""
    if not isinstance(value, (list, tuple)) or not value:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim not in (1, 2) or arr.size == 0:
        return None
    flat = value if arr.ndim == 1 else [v for row in value for v in row]
    return None if any(isinstance(v, (bool, str)) for v in flat) else arr


def _layer_names(names: list[str]) -> list[tuple[str, str, str]]:
    """(name, file slug, short nav label) per layer.

    The label is the last dotted part (`conv1` of `features.conv1`) when that is unique and not a
    bare index (`features.0` stays whole).
    """
    seen: set[str] = set()
    return [(n, unique(safe_name(n), seen), short_name(n, names)) for n in names]


def _some(*values: Any, f: Any) -> str | None:
    """f(first value that is not None), or None."""
    for v in values:
        if v is not None:
            return f(v)
    return None


def _sum_seconds(rows: list[dict]) -> float | None:
    s = [r["seconds"] for r in rows if isinstance(r.get("seconds"), (int, float))]
    return float(sum(s)) if s else None


def render_atlas(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Render the offline HTML atlas of a run directory; returns the path of its index.html.

    Reads only the saved files of `run_dir` (never a model) and renders what exists; pages say
    which files are absent. `out_dir` defaults to `run_dir/atlas`.

    Example:
        >>> index = render_atlas("runs/lenet5-mnist")
        >>> index.name
        'index.html'
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise UserError(f"Run directory {root} does not exist; pass the folder a convscope run wrote.")
    with open_run(root) as run_files:
        if run_files.empty:
            unreadable = f" ({' '.join(run_files.problems)})" if run_files.problems else ""
            raise UserError(f"Nothing to render in {root}: expected {_EXPECTED} there{unreadable}.")
        atlas = _Atlas(run_files, Path(out_dir) if out_dir is not None else root / "atlas")
        css = resources.files("convscope.report").joinpath("templates/atlas.css").read_text(encoding="utf-8")
        atomic_write_text(atlas.out / "atlas.css", css)
        atlas.written.add("atlas.css")
        if atlas.has_model:
            atlas.model_page()
        inputs = atlas.inputs()
        for i, link in enumerate(atlas.layer_links):
            atlas.layer_page(i, link, inputs)
        drawn = draw_figures([Job(e.slug, root, e.dir, e.result.name) for e in run_files.experiments if e.result],
                             atlas.out / "img")
        for exp in run_files.experiments:
            atlas.experiment_page(exp, drawn.get(exp.slug, []))
        index = atlas.index()  # last, so it lists every problem met while rendering
        atlas.finish()
        return index
