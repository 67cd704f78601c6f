"""User-facing errors.

Every mistake a user can make (a wrong name, a wrong shape, a missing file) raises a subclass of
`UserError` carrying one sentence that says what is wrong and how to fix it. The command line prints
that sentence and exits with status 2; it never shows a traceback for these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A mistake in the user's input; the message is one sentence with the fix."""


class UnknownNameError(UserError, KeyError):
    """A model, dataset or experiment name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputShapeError(UserError, ValueError):
    """A tensor whose shape does not fit the model."""


class ArgumentError(UserError, TypeError):
    """A keyword argument a model or function does not take (still a TypeError, as Python's own would be)."""


class LayerReuseError(UserError, RuntimeError):
    """A layer asked for by name that runs more than once per forward pass, so it has no one output."""


class DataError(UserError):
    """A dataset that cannot be found, read, or verified."""


class DataNotFoundError(DataError):
    """A dataset that is nowhere convscope looked (the message lists the places and how to provide it).

    The one data error that means "absent": a test may skip on it, never on the others.
    """


class ChecksumError(DataError):
    """Files whose decoded contents do not match the pinned checksum."""


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated or unreadable."""


class RunDirError(UserError):
    """An output directory that already holds a different run."""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UnknownNameError:
    """Build the error for an unknown `name`, suggesting close matches among `choices`."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"choose one of {', '.join(choices)}."
    return UnknownNameError(f"Unknown {kind} {name!r}: {hint}")
