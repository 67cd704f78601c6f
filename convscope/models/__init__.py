"""The model zoo. Importing this package registers every built-in model."""

# Importing each model file runs its @register_model decorators.
from convscope.models import alexnet, allconv, inception, lenet, vgg  # noqa: F401
from convscope.models.registry import create_model, list_models, model_arguments, model_kwargs, register_model

__all__ = ["create_model", "list_models", "model_arguments", "model_kwargs", "register_model"]
