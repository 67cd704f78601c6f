"""`reproduce explain` end to end on a small MNIST run: every method's maps, curves and sanity check are saved,
and the page draws them without torch."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.config import TrainConfig
from convscope.errors import UserError
from convscope.experiments import run_experiment
from convscope.experiments.explain import ExplainConfig
from convscope.explain import SAME_CLASS_MAP, list_methods
from convscope.result import Result
from tests.experiments.atlas import figures_drawn

SMALL = TrainConfig(epochs=1, batch_size=64, train_subset=2000, test_subset=300, device="cpu")


@pytest.mark.slow
def test_a_small_explain_run_saves_everything_the_page_draws(tmp_path):
    cfg = ExplainConfig(methods=["saliency", "guided_backprop", "gradcam", "occlusion"], images=6, metric_images=6,
                        sanity_images=2, steps=4, train=SMALL)
    run_experiment("explain", tmp_path, cfg, progress=False)
    r = Result.load(tmp_path)
    n = len(r.arrays["images"])
    assert n == 6 and r.arrays["images"].shape[1:] == (1, 28, 28)
    # half the shown images are mistakes when the model makes enough of them
    wrong = int((r.arrays["labels"] != r.arrays["preds"]).sum())
    assert wrong <= 3 and r.metrics["accuracy_of_shown"] == 1 - wrong / 6
    for m in cfg.methods:
        assert r.arrays[f"maps.{m}"].shape == (6, 28, 28)
        d, i = r.arrays[f"deletion.{m}"], r.arrays[f"insertion.{m}"]
        assert d.shape == i.shape == (5,) and np.isclose(d[0], i[-1]) and np.isclose(d[-1], i[0])
        assert r.arrays[f"sanity_abs.{m}"].shape == (len(r.metrics["sanity_layers"]),)
        assert 0 <= r.metrics["deletion_auc"][m] <= 1
    assert r.metrics["sanity_layers"][0] == "classifier.fc3"
    assert figures_drawn(tmp_path, "explain") == 3


def test_unknown_methods_and_runs_without_checkpoints_are_refused(tmp_path):
    with pytest.raises(UserError, match="Unknown explanation methods lime"):
        run_experiment("explain", tmp_path, ExplainConfig(methods=["lime"]), progress=False)
    with pytest.raises(UserError, match="holds no checkpoint"):
        run_experiment("explain", tmp_path, ExplainConfig(run=str(tmp_path)), progress=False)
    assert set(ExplainConfig().methods) == set(list_methods()) - set(SAME_CLASS_MAP)
