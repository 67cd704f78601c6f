"""convscope: a microscope for convolutional networks."""

from __future__ import annotations

__version__ = "0.1.0"

from convscope.errors import UserError
from convscope.models.registry import create_model, list_models

__all__ = ["UserError", "__version__", "create_model", "list_models"]
