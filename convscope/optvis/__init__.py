"""Pictures made by optimisation: feature visualisation (Olah, Mordvintsev and Schubert, "Feature Visualization",
Distill 2017; Mordvintsev et al., "Differentiable Image Parameterizations", Distill 2018).

| module | what |
|---|---|
| `objectives` | what to maximise, per image: channel, neuron, direction, class logit, diversity; regularisers |
| `param` | `(params, image_fn)`: pixels, Fourier space with a 1/f spectrum, decorrelated colours, any channel count |
| `transforms` | transformation robustness: pad, jitter, random scale and rotation, crop, normalise |
| `render` | the optimisation: `render` (one objective), `render_channels` (a whole layer in one batch) |
| `inversion` | the image whose code at a layer matches a given image's (Mahendran and Vedaldi 2015) |

Example:
    >>> from convscope import optvis
    >>> vis = optvis.render_channels(model, "features.conv2", steps=128)
    >>> vis.images.shape, vis.values.shape          # one image and the value it reached per channel
    (torch.Size([16, 1, 28, 28]), (16,))
"""

from __future__ import annotations

from convscope.optvis import inversion, objectives, param, transforms
from convscope.optvis.inversion import InversionResult, invert, invert_layers
from convscope.optvis.objectives import Objective
from convscope.optvis.render import Rendering, objective_values, render, render_channels

__all__ = ["InversionResult", "Objective", "Rendering", "invert", "invert_layers", "inversion", "objective_values",
           "objectives", "param", "render", "render_channels", "transforms"]
