"""The atlas: every page exists, every link and image resolves locally, absent files are said."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import UserError
from convscope.io import save_npz, write_json
from convscope.report import render_atlas

from .synthetic import CONV_LAYERS, make_experiment, make_run_dir

EXPECTED = {"index.html", "model.html", "exp-recos.html", *(f"layer-{n}.html" for n in CONV_LAYERS)}


class _Refs(HTMLParser):
    """Every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            if k in ("src", "href") and v is not None:
                self.refs.append((tag, v))


def refs(page: Path) -> list[tuple[str, str]]:
    p = _Refs()
    p.feed(page.read_text(encoding="utf-8"))
    return p.refs


def assert_self_contained(atlas: Path) -> None:
    """Every href/src of every page is a local file inside the atlas; nothing points to the network."""
    pages = sorted(atlas.glob("*.html"))
    assert pages
    for page in pages:
        for tag, ref in refs(page):
            assert not re.match(r"^[a-z][a-z0-9+.-]*://", ref), f"{page.name}: <{tag}> points off the page: {ref}"
            if ref.startswith(("data:", "#")):
                continue
            target = (page.parent / ref.split("#", 1)[0]).resolve()
            assert target.is_file(), f"{page.name}: <{tag}> {ref} does not exist"
            assert target.is_relative_to(atlas.resolve()), f"{page.name}: {ref} lies outside the atlas"
    for f in [*pages, *atlas.glob("*.css")]:
        text = f.read_text(encoding="utf-8")
        assert "http://" not in text and "https://" not in text, f"{f.name} references the network"


def test_every_page_exists_and_is_self_contained(run_dir: Path) -> None:
    index = render_atlas(run_dir)
    assert index == run_dir / "atlas" / "index.html"
    atlas = index.parent
    assert {p.name for p in atlas.glob("*.html")} == EXPECTED
    assert_self_contained(atlas)
    assert not list(atlas.rglob("*.tmp")), "atomic writes left temporary files"
    nav = {ref for _, ref in refs(index) if ref.endswith(".html")}
    assert EXPECTED <= nav, "index links to every page"
    for page in atlas.glob("*.html"):  # the nav bar is on every page
        assert EXPECTED <= {ref for _, ref in refs(page) if ref.endswith(".html")}, page.name


def test_out_dir_elsewhere(run_dir: Path, tmp_path: Path) -> None:
    index = render_atlas(run_dir, tmp_path / "elsewhere")
    assert index == tmp_path / "elsewhere" / "index.html"
    assert_self_contained(index.parent)
    assert not (run_dir / "atlas").exists()
    assert render_atlas(str(run_dir), str(tmp_path / "elsewhere")) == index  # rendering again is fine


def test_pages_show_the_run(run_dir: Path) -> None:
    atlas = render_atlas(run_dir).parent
    index = (atlas / "index.html").read_text()
    for text in ("tinynet", "synthetic", "81.25 %", "1,283", "1 min 23 s", "2.13.0", "0123456789abcdef" * 4):
        assert text in index, text
    model = (atlas / "model.html").read_text()
    assert "features.pool1" in model and "✓" in model and "training-curves.png" in model
    assert 'href="layer-features.conv1.html"' in model
    conv1 = (atlas / "layer-features.conv1.html").read_text()
    assert "mean of each filter over its 3 input channels" in conv1
    assert "filters-rgb.png" in conv1
    assert conv1.count("-act-") == 4 and "predicted" in conv1 and "✗" in conv1  # one wrong prediction
    conv2 = (atlas / "layer-features.conv2.html").read_text()
    assert "filters-rgb.png" not in conv2 and "6 input channels" in conv2
    exp = (atlas / "exp-recos.html").read_text()
    for text in ("Kuo (2016), Table 2", "mean over 5 seeds", "0.76 s", "not measured", "0.9904",
                 "&lt;b&gt;tag&lt;/b&gt;", "Response of each filter", "centroids", "forward_ms"):
        assert text in exp, text
    assert "<b>tag</b>" not in exp, "notes are escaped"
    # a model → layer dict is a table: a column per layer (short names), a row per model, "—" where absent
    grid = exp[exp.index("<code>mu_by_layer</code>"):].split("</table>")[0]
    assert "<th>conv1</th><th>conv2</th><th>conv3</th>" in grid and "features.conv1" not in grid
    assert "<th>crelu net</th><td>-0.5547</td><td>—</td><td>0.5, 0.25</td>" in grid
    assert len(list((atlas / "img" / "exp-recos").glob("*.png"))) == 3  # two metric plots and the attached file


def test_grey_images_have_no_rgb_rendering(tmp_path: Path) -> None:
    atlas = render_atlas(make_run_dir(tmp_path / "run", channels=1)).parent
    conv1 = (atlas / "layer-features.conv1.html").read_text()
    assert "filters-rgb" not in conv1 and "Mean over input channels" not in conv1
    assert_self_contained(atlas)


@pytest.mark.parametrize(
    "parts, pages, absent",
    [
        (("experiment",), {"index.html", "exp-recos.html"}, ["run.json", "metrics.jsonl", "summary.json"]),
        (("run",), {"index.html"}, ["layers.npz", "experiments/"]),
        (("summary",), {"index.html", "model.html"}, ["metrics.jsonl"]),
        (("metrics",), {"index.html", "model.html"}, ["summary.json"]),
        (("layers",), {"index.html", *(f"layer-{n}.html" for n in CONV_LAYERS)}, ["run.json"]),
    ],
)
def test_missing_pieces_are_said(tmp_path: Path, parts: tuple[str, ...], pages: set[str], absent: list[str]) -> None:
    atlas = render_atlas(make_run_dir(tmp_path / "run", parts=parts)).parent
    assert {p.name for p in atlas.glob("*.html")} == pages
    assert_self_contained(atlas)
    index = (atlas / "index.html").read_text()
    for name in absent:
        row = re.search(rf'<tr class="missing">\s*<td class="mark">—</td>\s*<td><code>{re.escape(name)}</code>', index)
        assert row, f"index does not say {name} is absent"
    if "model.html" in pages:
        model = (atlas / "model.html").read_text()
        missing = "metrics.jsonl" if "summary" in parts else "summary.json"
        assert f"This run has no <code>{missing}</code>" in model


def test_layers_without_layers_json_or_activations(tmp_path: Path) -> None:
    root = make_run_dir(tmp_path / "run", parts=("layers",))
    (root / "layers.json").unlink()
    with np.load(root / "layers.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "features.conv2.act"}
    save_npz(root / "layers.npz", **arrays)
    atlas = render_atlas(root).parent
    assert {p.name for p in atlas.glob("layer-*.html")} == {f"layer-{n}.html" for n in CONV_LAYERS}
    conv2 = (atlas / "layer-features.conv2.html").read_text()
    assert "saved no activations for this layer" in conv2
    conv1 = (atlas / "layer-features.conv1.html").read_text()
    assert "label <strong>1</strong>" in conv1  # no class names: labels shown as numbers


def test_images_absent_from_layers(tmp_path: Path) -> None:
    root = make_run_dir(tmp_path / "run", parts=("layers",))
    with np.load(root / "layers.npz") as z:
        arrays = {k: z[k] for k in z.files if k not in ("images", "labels", "preds")}
    save_npz(root / "layers.npz", **arrays)
    conv1 = (render_atlas(root).parent / "layer-features.conv1.html").read_text()
    assert "saved no test images" in conv1


def test_empty_dir_raises_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"expected run\.json, metrics\.jsonl, summary\.json, layers\.npz"):
        render_atlas(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        render_atlas(tmp_path / "nowhere")
    assert not (tmp_path / "atlas").exists()


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(UserError, match="run.json could not be read"):
        render_atlas(tmp_path)
    make_experiment(tmp_path / "experiments" / "recos")
    (tmp_path / "experiments" / "broken").mkdir()
    (tmp_path / "experiments" / "broken" / "result.json").write_text('{"title": "no name"}')
    index = render_atlas(tmp_path).read_text()
    assert "run.json could not be read" in index
    assert "experiments/broken/result.json could not be read" in index


def test_result_dir_itself_and_missing_figure(tmp_path: Path) -> None:
    out = make_experiment(tmp_path / "recos")  # what `reproduce NAME --out DIR` writes
    (out / "figures" / "response.png").unlink()
    (out / "result.npz").unlink()
    atlas = render_atlas(out).parent
    assert {p.name for p in atlas.glob("*.html")} == {"index.html", "exp-recos.html"}
    exp = (atlas / "exp-recos.html").read_text()
    assert "figures/response.png</code> is missing" in exp
    assert "result.npz is missing" in (atlas / "index.html").read_text()
    assert_self_contained(atlas)


def test_odd_metric_values(tmp_path: Path) -> None:
    make_experiment(tmp_path / "experiments" / "odd")
    doc_path = tmp_path / "experiments" / "odd" / "result.json"
    from convscope.io import read_json

    doc = read_json(doc_path)
    doc["metrics"] = {"nan": float("nan"), "none": None, "mixed": [1, "a", None], "empty": [], "ragged": [[1], [2, 3]],
                      "big": 1234567.0, "tiny": 1e-7, "neg": -3.5}
    write_json(doc_path, doc)
    exp = (render_atlas(tmp_path).parent / "exp-odd.html").read_text()
    for text in ("nan", "—", "1.23e+06", "1e-07", "-3.5", "[1, &#34;a&#34;, null]"):
        assert text in exp, text


def test_rendering_again_removes_stale_pages_only(run_dir: Path) -> None:
    atlas = render_atlas(run_dir).parent
    mine = atlas / "notes.txt"
    mine.write_text("the user's own file")
    with np.load(run_dir / "layers.npz") as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("features.conv2")}
    save_npz(run_dir / "layers.npz", **arrays)
    write_json(run_dir / "layers.json", {"conv_layers": ["features.conv1"], "classes": ["a", "b", "c"]})
    render_atlas(run_dir)
    assert not (atlas / "layer-features.conv2.html").exists()
    assert not list((atlas / "img").glob("layer-features.conv2*"))
    assert mine.exists(), "files the atlas did not write are never removed"
    assert_self_contained(atlas)


def test_bad_arrays_are_reported_not_fatal(tmp_path: Path) -> None:
    root = make_run_dir(tmp_path / "run", parts=("layers",))
    with np.load(root / "layers.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["features.conv2.weight"] = arrays["features.conv2.weight"][0]  # 3-D: not a conv weight
    arrays["features.conv1.act"] = arrays["features.conv1.act"][:2]  # maps for 2 of the 4 images
    arrays["features.conv3.weight"] = np.ones((10, 8, 1, 1), np.float32)  # 1×1 conv on 1×1 maps
    arrays["features.conv3.act"] = np.ones((4, 10, 1, 1), np.float32)
    save_npz(root / "layers.npz", **arrays)
    write_json(root / "layers.json", ["not", "a", "dict"])
    atlas = render_atlas(root).parent
    assert_self_contained(atlas)
    conv1 = (atlas / "layer-features.conv1.html").read_text()
    assert conv1.count("-act-") == 2
    conv2 = (atlas / "layer-features.conv2.html").read_text()
    assert "features.conv2.weight has shape [6, 3, 3], not (out, in, kh, kw)" in conv2
    conv3 = (atlas / "layer-features.conv3.html").read_text()
    assert "a single number (1 × 1)" in conv3


def test_corrupt_layers_npz(tmp_path: Path) -> None:
    root = make_run_dir(tmp_path / "run", parts=("run", "layers"))
    (root / "layers.npz").write_bytes(b"PK\x03\x04 not really a zip")
    index = render_atlas(root)
    assert "layers.npz could not be read" in index.read_text()
    assert not list(index.parent.glob("layer-*"))


def test_nav_labels(tmp_path: Path) -> None:
    from convscope.report.html import _layer_names

    names = ["features.0", "features.conv1", "block1.conv", "block2.conv"]
    assert [label for _, _, label in _layer_names(names)] == ["features.0", "conv1", "block1.conv", "block2.conv"]
    assert [slug for _, slug, _ in _layer_names(["a/b", "a:b"])] == ["a_b", "a_b-2"]


def test_figures_are_drawn_again_only_when_their_result_changes(tmp_path):
    # An experiment's figures are keyed by its files: a second rendering reuses them (same bytes, same mtime),
    # and a changed result.json draws them anew.
    import time

    from convscope.result import Result

    run = tmp_path / "run"
    r = Result("lenet5", "LeNet-5", metrics={"test_acc": 0.99, "epochs": 2},
               arrays={"test_acc_by_epoch": np.array([[0.98, 0.99], [0.97, 0.99]]), "seeds": np.array([0, 1])})
    r.save(run / "experiments" / "lenet5")
    render_atlas(run)
    png = run / "atlas" / "img" / "exp-lenet5" / "0.png"
    first = png.stat().st_mtime_ns
    time.sleep(0.01)
    render_atlas(run)
    assert png.stat().st_mtime_ns == first
    r.arrays["test_acc_by_epoch"] = np.array([[0.5, 0.6], [0.55, 0.65]])
    r.save(run / "experiments" / "lenet5")
    render_atlas(run)
    assert png.stat().st_mtime_ns != first
    assert "exp-lenet5/0.png" in (run / "atlas" / "exp-lenet5.html").read_text()
