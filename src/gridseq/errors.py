"""gridseq's error types.

Every error a user can cause is a `GridseqError`; the CLI prints its message on one line and exits
with code 2. Each subclass is also the builtin a Python user would catch for that kind of mistake.
"""


class GridseqError(Exception):
    """Base class of every error gridseq raises on bad input."""


class ShapeError(GridseqError, ValueError):
    """A tensor has the wrong layout, dtype or values for the entry point it was given to."""


class DataError(GridseqError, ValueError):
    """A dataset, file or folder cannot be read as gridseq data."""


class ConfigError(GridseqError, ValueError):
    """An unknown name, an unknown argument, or an argument value out of range."""


class CheckpointError(GridseqError, OSError):
    """A saved model or training checkpoint is missing, corrupt or does not match."""
