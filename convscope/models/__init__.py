"""The model zoo. Importing this package registers every built-in model."""

from convscope.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
