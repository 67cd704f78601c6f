"""convscope: a microscope for convolutional networks.

The public API, what the README's library section uses. Names load on first use, so
`import convscope` stays light and no layer of the package imports another through this file.

Example:
    >>> import convscope
    >>> model = convscope.create_model("lenet5")
    >>> train, test = convscope.load_dataset("mnist", "train"), convscope.load_dataset("mnist", "test")
    >>> convscope.fit(model, train.tensors(), test.tensors(), epochs=1).final["test_acc"]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from convscope._version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "UserError": "convscope.errors",
    "TrainConfig": "convscope.config",
    "Result": "convscope.result",
    "create_model": "convscope.models.registry",
    "list_models": "convscope.models.registry",
    "summarize": "convscope.models.summary",
    "load_dataset": "convscope.data",
    "fit": "convscope.train.loop",
    "evaluate": "convscope.train.loop",
    "activations": "convscope.hooks",
    "conv_layers": "convscope.hooks",
    "record": "convscope.hooks",
    "pairing_by_layer": "convscope.analysis.pairing",
    "invariance_scores": "convscope.analysis.invariance",
    "affine_map": "convscope.analysis.linearity",
    "layer_clustering": "convscope.analysis.clustering",
    "representation_layers": "convscope.analysis.clustering",
    "run_experiment": "convscope.experiments",
    "list_experiments": "convscope.experiments",
    "render_atlas": "convscope.report",
}

__all__ = [
    "Result", "TrainConfig", "UserError", "__version__", "activations", "affine_map", "conv_layers", "create_model",
    "evaluate", "fit", "invariance_scores", "layer_clustering", "list_experiments", "list_models", "load_dataset",
    "pairing_by_layer", "record", "render_atlas", "representation_layers", "run_experiment", "summarize",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'convscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from convscope.analysis.clustering import layer_clustering, representation_layers
    from convscope.analysis.invariance import invariance_scores
    from convscope.analysis.linearity import affine_map
    from convscope.analysis.pairing import pairing_by_layer
    from convscope.config import TrainConfig
    from convscope.data import load_dataset
    from convscope.errors import UserError
    from convscope.experiments import list_experiments, run_experiment
    from convscope.hooks import activations, conv_layers, record
    from convscope.models.registry import create_model, list_models
    from convscope.models.summary import summarize
    from convscope.report import render_atlas
    from convscope.result import Result
    from convscope.train.loop import evaluate, fit
