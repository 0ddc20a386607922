"""Atomic file writes: write a temporary file in the same folder, fsync, then rename over the target.

A reader (or a run killed mid-write) sees either the old file or the new one, never half of one. The
file gets the permissions an ordinary `open(path, "w")` would give (0666 less the umask), not the 0600
that `mkstemp` uses for its temporary file.

Every write (and `ensure_dir`) turns an OS failure — no such folder, permission denied, read-only
file system, disk full, too many open files — into an `OutputError` naming the path and the fix,
and leaves the file it would have replaced as it was.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from gridseq.errors import GridseqError, OutputError


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read the umask is to set it; done once, at import,
    os.umask(mask)      # because the umask is process-wide and a writer thread may be creating files
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


# errno → (what happened, how to fix it); the errors a write can meet that the user, not gridseq, must fix
_FIXES = {
    errno.ENOENT: ("no such file or directory", "create the parent folder or choose a path under an existing one"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose a path whose parents are folders"),
    errno.EACCES: ("permission denied", "choose a folder you can write to, or change its owner or mode"),
    errno.EPERM: ("operation not permitted", "choose a folder you can write to, or change its owner or mode"),
    errno.EROFS: ("read-only file system", "write to a writable file system (another folder or disk)"),
    errno.ENOSPC: ("no space left on device", "free space on that disk or write to another one"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or write to another disk"),
    errno.EMFILE: ("too many open files", "raise the limit (`ulimit -n 4096`) or use fewer loader workers"),
    errno.ENFILE: ("too many open files in the system", "close other programs' files or raise the system limit"),
    errno.EISDIR: ("the path is a folder", "give a file path, not a folder"),
}
# Rust libraries (safetensors) report the OS error in their message: "... (os error 28)"
_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def os_error_of(exc: BaseException) -> OSError | None:
    """`exc` as an OSError with its errno if it is one (or a library error wrapping one), else None."""
    if isinstance(exc, GridseqError):
        return None
    if isinstance(exc, OSError):
        return exc
    found = _RUST_OS_ERROR.search(str(exc))
    if found:
        code = int(found.group(1))
        return OSError(code, os.strerror(code))
    return None


def is_user_fixable(exc: OSError) -> bool:
    """Whether `exc` is one of the OS failures of `_FIXES` (the user's environment, not a bug)."""
    return exc.errno in _FIXES


def describe(exc: OSError, path: str | os.PathLike | None = None) -> str:
    """`<path>: <what happened> (errno NAME); <fix>.`, e.g. for a one-line error."""
    path = path if path is not None else exc.filename
    name = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else "?"
    reason, fix = _FIXES.get(exc.errno, (exc.strerror or str(exc), "check the path and the disk"))
    return f"{path}: {reason} ({name}); {fix}."


def output_error(exc: OSError, path: str | os.PathLike, what: str = "write") -> OutputError:
    """The OutputError for an OS failure `exc` met writing `path` (errno and filename kept)."""
    err = OutputError(f"cannot {what} {describe(exc, path)}")
    err.errno, err.strerror, err.filename = exc.errno, exc.strerror, str(path)
    return err


def ensure_dir(path: str | os.PathLike) -> Path:
    """`mkdir -p path`; OutputError naming the folder and the fix if the OS refuses."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(e, path, "create the folder") from None
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` to produce the file, then move it to `path` atomically.

    Raises:
        OutputError: the folder cannot be created or the file cannot be written (the OS error, the path
            and the fix in the message); `path` keeps its old content and no temporary file is left.
    """
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise output_error(e, path) from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        cause = os_error_of(e) if isinstance(e, Exception) else None
        if cause is not None:
            raise output_error(cause, path) from None
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
