"""The atlas page of `reproduce lenet5`: LeNet-5 on MNIST over seeds, beside LeCun et al. (1998)."""

from __future__ import annotations

import numpy as np

from convscope.report.figures import curves_by_seed
from convscope.report.pages import ExperimentPage, Figure, register_page
from convscope.result import Result


@register_page("lenet5")
class LeNet5Page(ExperimentPage):
    labels = {"test_error_pct": "test error (%)", "params": "parameters"}

    def summary(self, r: Result) -> str:
        errors = r.by_seed.get("test_error_pct") or [r.metrics.get("test_error_pct")]
        if not all(isinstance(e, (int, float)) for e in errors):
            return ""
        mean = sum(errors) / len(errors)
        better = "below" if mean < 0.95 else "above"
        return (f"The modern LeNet-5 reaches {mean:.2f} % test error on MNIST over {len(errors)} seed"
                f"{'s' if len(errors) > 1 else ''} ({min(errors):.2f}–{max(errors):.2f} %), {better} the 0.95 % "
                f"LeCun et al. report for the classic network after 20 passes, in {r.metrics.get('epochs')} epochs.")

    def figures(self, r: Result) -> list[Figure]:
        curves = r.arrays.get("test_acc_by_epoch")
        if curves is None or curves.ndim != 2:
            return []
        seeds = r.arrays.get("seeds", np.arange(len(curves)))
        png = curves_by_seed(curves, [int(s) for s in seeds], "test accuracy", reference=1 - 0.0095,
                             reference_label="LeCun et al. 1998: 0.95 % error")
        return [Figure("Test accuracy after each epoch, one line per seed; the dashed line is the classic "
                       "network's published accuracy. The seeds should agree to within a few tenths of a percent.",
                       png)]
