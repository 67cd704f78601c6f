"""How the atlas shows an experiment: one page class per experiment, drawn from its saved Result.

Compute and render apart (docs/DESIGN.md): an experiment saves numbers and arrays (`convscope.result`);
its page here turns them into what a reader meets, in this order:

1. `summary(r)`: two or three sentences saying what was found, written from the saved numbers;
2. `headline(r)`: one row per figure compared with a published (or theoretical) value: the measured
   mean ± std over seeds in one cell, the published value and source, and whether it reproduces;
3. `figures(r)`: `(caption, PNG bytes)` pairs, drawn now from `r.arrays`, `r.metrics` and `r.by_seed`,
   so a style change never needs the study to run again. A figure with a `part` goes on a page of its own
   (`parts(r)` gives each part's title, lede and parent), linked from the experiment's page or from its parent
   part: one page per conv layer of the Zeiler–Fergus study, one per channel in the microscope. A figure with a
   `link` is a tile: a small picture that opens that part's page.

A page registers with `@register_page(name)` (the Result's `name`); a Result with no page (a user's
own experiment) gets `ExperimentPage`'s defaults: the headline table and no figures.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from convscope.result import Published, Result


@dataclass
class Figure:
    """A drawn figure: its caption says what to see; `png` is the image."""

    caption: str
    png: bytes
    part: str = ""  # the key of the part page it goes on; "" for the experiment's own page
    link: str = ""  # a tile: the key of the part page it opens


@dataclass
class Part:
    """A page of its own for some of an experiment's figures."""

    title: str
    lede: str = ""
    parent: str = ""  # the part page that links to it; "" for the experiment's page


@dataclass
class Row:
    """One line of an experiment's headline table."""

    figure: str  # what is measured, in words
    measured: str  # mean ± std (n seeds), or the single value
    published: str
    source: str
    verdict: str  # "reproduces", "deviates: ...", "compare the figure", ...
    kind: str = "published"  # or "expected (theory)"
    status: str = "info"  # "ok", "off" or "info", for the verdict's colour
    seeds: str = ""  # the per-seed values, for the cell's tooltip


class ExperimentPage:
    """The default page: a headline row for every published figure, no summary, no drawn figures."""

    name: ClassVar[str] = ""
    labels: ClassVar[dict[str, str]] = {}  # metric key -> the words the headline table uses
    percent: ClassVar[frozenset[str]] = frozenset()  # metric keys that are fractions shown as %

    def summary(self, r: Result) -> str:
        return ""

    def figures(self, r: Result) -> list[Figure]:
        return []

    def parts(self, r: Result) -> dict[str, Part]:
        """Part key -> its page, in the order they are linked."""
        return {}

    def headline(self, r: Result) -> list[Row]:
        return [self.row(r, key, pub) for key, pub in r.published.items()]

    def row(self, r: Result, key: str, pub: Published) -> Row:
        """The headline row comparing metric `key` with `pub`."""
        scale = 100.0 if key in self.percent else 1.0
        unit = " %" if key in self.percent else ""
        seeds = r.by_seed.get(key)
        value = r.metrics.get(key)
        measured, mean = measured_cell(value, seeds, scale, unit)
        pub_value = pub.value * scale if _number(pub.value) and key in self.percent else pub.value
        verdict, status = judge(mean, pub_value if _number(pub_value) else None,
                                pub.tolerance * scale if pub.tolerance is not None else None, unit)
        if value is None and seeds is None:
            verdict, status = "not measured in this run", "info"
        return Row(figure=self.labels.get(key, key.replace("_", " ")), measured=measured,
                   published=fmt_value(pub_value) + (unit if _number(pub_value) else ""),
                   source=pub.source + (f" ({pub.note})" if pub.note else ""), verdict=verdict, kind=pub.kind,
                   status=status, seeds=", ".join(fmt_value(_scaled(v, scale)) for v in seeds or []))


def measured_cell(value: Any, seeds: list[Any] | None, scale: float = 1.0, unit: str = "") -> tuple[str, float | None]:
    """`mean ± std (n seeds)` from per-seed values, else the value itself; and the mean when numeric."""
    nums = [float(v) for v in seeds or [] if _number(v)]
    if len(nums) > 1:
        mean = sum(nums) / len(nums)
        std = math.sqrt(sum((v - mean) ** 2 for v in nums) / (len(nums) - 1))
        return f"{fmt_value(mean * scale)} ± {fmt_value(std * scale)}{unit} ({len(nums)} seeds)", mean * scale
    if _number(value):
        return fmt_value(float(value) * scale) + unit, float(value) * scale
    if len(nums) == 1:
        return fmt_value(nums[0] * scale) + unit, nums[0] * scale
    return ("—" if value is None else fmt_value(value)), None


def judge(mean: float | None, published: float | None, tolerance: float | None, unit: str = "") -> tuple[str, str]:
    """The verdict of a numeric comparison: within `tolerance` reproduces, else how far it is off."""
    if mean is None or published is None:
        return "compare the figures and notes", "info"
    diff = mean - published
    if tolerance is None:
        return f"differs by {diff:+.3g}{unit}; no tolerance stated", "info"
    if abs(diff) <= tolerance:
        return f"reproduces (within ±{tolerance:g}{unit})", "ok"
    return f"deviates by {diff:+.3g}{unit} (tolerance ±{tolerance:g}{unit})", "off"


def fmt_value(x: Any) -> str:
    """A number as the headline table shows it (4 significant digits, thousands separated)."""
    if isinstance(x, bool) or not _number(x):
        return str(x)
    x = float(x)
    if x == int(x) and abs(x) >= 1000:
        return f"{int(x):,}"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
        return f"{x:.3g}"
    return f"{x:.4g}"


def _scaled(v: Any, scale: float) -> Any:
    return float(v) * scale if _number(v) else v


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(float(x))


_PAGES: dict[str, type[ExperimentPage]] = {}


def short_name(name: str, names: list[str]) -> str:
    """A layer's label among `names`: its last dotted part (`conv1` of `features.conv1`) where that is unique and
    not a bare index (`stem.0` stays whole)."""
    last = name.rsplit(".", 1)[-1]
    return last if sum(n.rsplit(".", 1)[-1] == last for n in names) == 1 and not last.isdigit() else name


def register_page(name: str) -> Callable[[type[ExperimentPage]], type[ExperimentPage]]:
    """Register the page class that shows the Results called `name` (decorator)."""

    def wrap(cls: type[ExperimentPage]) -> type[ExperimentPage]:
        cls.name = name
        _PAGES[name] = cls
        return cls

    return wrap


def page_for(name: str) -> ExperimentPage:
    """The page of the Results called `name`; the default page when none is registered."""
    for info in pkgutil.iter_modules(__path__):  # importing each page module registers it (once: cached)
        importlib.import_module(f"{__name__}.{info.name}")
    return _PAGES.get(name, ExperimentPage)()


__all__ = ["ExperimentPage", "Figure", "Part", "Row", "judge", "measured_cell", "page_for", "register_page"]
