"""Scalar argument checks shared by every config: each returns the cleaned value or raises ConfigError."""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Sequence

from gridseq.errors import ConfigError


def check_positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return `value` if it is an int >= `minimum` (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        # numpy/torch integers look right but do not survive config.json; say so instead of just "got 10"
        fix = f" ({type(value).__name__}); convert it with int()" if _is_foreign_int(value) and value >= minimum else ""
        raise ConfigError(f"{name} must be {kind}, got {value!r}{fix}.")
    return value


def _is_foreign_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (int, bool))


def check_positive_number(value, name: str) -> float:
    """Return `value` as a float if it is a number > 0 (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def check_probability(value, name: str) -> float:
    """Return `value` as a float if it lies in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}.")
    return float(value)


def check_teacher_forcing(value) -> float:
    """Return a decoder's teacher-forcing rate as a float if it lies in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ConfigError(
            f"teacher_forcing must be a number in [0, 1] (the probability of feeding the true previous token in "
            f"training), got {value!r}."
        )
    return float(value)


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """Return `value` if it is one of `choices`; otherwise name them and suggest the closest."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.{did_you_mean(value, choices)}")
    return value


def check_int_tuple(value, name: str, *, length: int | None = None, minimum: int = 1) -> tuple[int, ...]:
    """Return `value` (any sequence of ints, e.g. a JSON list) as a tuple of ints >= `minimum`."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(f"{name} must be a sequence of ints, got {value!r}.")
    out = tuple(check_positive_int(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(value))
    if length is not None and len(out) != length:
        raise ConfigError(f"{name} must have {length} entries, got {len(out)}: {value!r}.")
    return out


def did_you_mean(value, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_input_or_vocab(input_size, vocab_size) -> None:
    """Sequence models read float features (input_size) or token ids (vocab_size): exactly one."""
    if (input_size is None) == (vocab_size is None):
        raise ConfigError(
            f"give exactly one of input_size (float sequences (B, T, F)) and vocab_size (token ids (B, T)), "
            f"got input_size={input_size!r} and vocab_size={vocab_size!r}."
        )
    if input_size is not None:
        check_positive_int(input_size, "input_size")
    else:
        check_positive_int(vocab_size, "vocab_size", minimum=2)  # id 0 is padding
