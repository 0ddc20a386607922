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


class OutputError(GridseqError, OSError):
    """A file or folder cannot be written: no such folder, permission denied, read-only file system,
    disk full, too many open files. The message names the path and the fix; the file it would have
    replaced is left as it was (writes are atomic). `errno` and `filename` are those of the OS error."""

    def __str__(self) -> str:  # the message, not OSError's "[Errno N] strerror: filename"
        return str(self.args[0]) if self.args else super().__str__()


class _Stopped:
    """What Terminated and Interrupted share: a message and where training stopped."""

    def __init__(self, message: str, position: tuple[int, int] | None = None):
        super().__init__(message)
        self.position = position


class Terminated(_Stopped, Exception):
    """Training stopped on SIGTERM after writing a checkpoint; continue with `fit(..., resume=True)`
    (`gridseq train ... --resume`). Not a `GridseqError`: nothing was wrong; the CLI exits with 143.

    Attributes:
        position: (epoch, step) of the checkpoint written (epoch 0-based, step within it), or None
            without a run directory.
    """


class Interrupted(_Stopped, KeyboardInterrupt):
    """Training stopped on Ctrl-C (SIGINT) after writing a checkpoint; continue with `fit(..., resume=True)`
    (`gridseq train ... --resume`). A `KeyboardInterrupt`, as any Ctrl-C is, so code that handles one
    still does; the CLI prints its message as one line and exits with 130.

    Attributes:
        position: (epoch, step) of the checkpoint written (epoch 0-based, step within it), or None
            without a run directory.
    """
