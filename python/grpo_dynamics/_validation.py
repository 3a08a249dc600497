"""Argument checks shared by every public entry point: one rule, one message format.

Every failure is a ValueError whose message starts with the argument's name:

    "lr: must be > 0, got -1"
    "momentum: must be in [0, 1), got 1.0"
    "kind: must be one of 'sgd', 'heavy_ball', 'adam', 'adamw'; got 'rmsprop'"
    "group_size: must be an integer >= 2, got 1"

ValueError also for a wrong type (a string where a number belongs, a bool where an integer
belongs): callers catch one exception type, and the message says what was expected.
Each helper returns the value normalised to a plain Python scalar (float, int, str, bool), so
dataclasses that store the result stay hashable and print cleanly.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterable
from typing import Literal, SupportsIndex

import numpy as np

__all__ = [
    "INT64_MAX",
    "choice",
    "finite",
    "flag",
    "in_range",
    "integer",
    "interval",
    "paired",
    "range_or_auto",
    "nonnegative",
    "positive",
    "show",
    "threads",
]

INT64_MAX = 2**63 - 1


def show(value: object) -> str:
    """A value as it appears after "got" in a message: numbers plainly, everything else repr."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return repr(value)


def _bound(value: float) -> str:
    # bounds are written as a reader would: 0, 1, 0.5, 1e-06
    return f"{value:g}" if isinstance(value, float) else str(value)


def _real(name: str, value: object) -> float:
    """value as a float; bools, strings and non-numbers are rejected (not silently converted)."""
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise ValueError(f"{name}: must be a real number, got {show(value)}")
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        return float(value)  # type: ignore[arg-type]  # 0-d arrays and other __float__ types
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a real number, got {show(value)}") from None


def finite(name: str, value: object) -> float:
    """value as a finite float."""
    number = _real(name, value)
    if not math.isfinite(number):
        raise ValueError(f"{name}: must be finite, got {show(number)}")
    return number


def positive(name: str, value: object) -> float:
    """value as a finite float > 0."""
    number = finite(name, value)
    if not number > 0.0:
        raise ValueError(f"{name}: must be > 0, got {show(value)}")
    return number


def nonnegative(name: str, value: object) -> float:
    """value as a finite float >= 0."""
    number = finite(name, value)
    if not number >= 0.0:
        raise ValueError(f"{name}: must be >= 0, got {show(value)}")
    return number


def in_range(
    name: str,
    value: object,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """value as a finite float in [lo, hi] (an open end excluded; None = unbounded)."""
    number = finite(name, value)
    below = lo is not None and (number < lo or (lo_open and number == lo))
    above = hi is not None and (number > hi or (hi_open and number == hi))
    if below or above:
        if lo is not None and hi is not None:
            left, right = "(" if lo_open else "[", ")" if hi_open else "]"
            rule = f"in {left}{_bound(lo)}, {_bound(hi)}{right}"
        elif lo is not None:
            rule = f"{'>' if lo_open else '>='} {_bound(lo)}"
        else:
            assert hi is not None
            rule = f"{'<' if hi_open else '<='} {_bound(hi)}"
        raise ValueError(f"{name}: must be {rule}, got {show(value)}")
    return number


def integer(
    name: str, value: object, *, minimum: int | None = None, maximum: int | None = INT64_MAX
) -> int:
    """value as a Python int in [minimum, maximum]; bools and non-integral numbers are rejected.

    maximum defaults to the int64 limit, since the value usually reaches a compiled kernel.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: must be an integer, got {show(value)}")
    if not isinstance(value, SupportsIndex):
        raise ValueError(f"{name}: must be an integer, got {show(value)}")
    number = operator.index(value)
    if minimum is not None and number < minimum:
        bound = (
            f"in [{minimum}, {maximum}]" if maximum not in (None, INT64_MAX) else (f">= {minimum}")
        )
        raise ValueError(f"{name}: must be an integer {bound}, got {number}")
    if maximum is not None and number > maximum:
        limit = "2**63 - 1 (int64)" if maximum == INT64_MAX else str(maximum)
        raise ValueError(f"{name}: must be an integer <= {limit}, got {number}")
    return int(number)


def choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """value, which must be one of the allowed strings."""
    options = tuple(allowed)
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(option) for option in options)
        raise ValueError(f"{name}: must be one of {listed}; got {value!r}")
    return value


def flag(name: str, value: object) -> bool:
    """value, which must be a bool (numpy bools included)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name}: must be True or False, got {show(value)}")


def threads(value: object, name: str = "threads") -> int | None:
    """A thread count: a positive integer, or None for "all available"."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: must be a positive integer or None, got {show(value)}")
    if not isinstance(value, SupportsIndex):
        raise ValueError(f"{name}: must be a positive integer or None, got {show(value)}")
    number = operator.index(value)
    if number < 1:
        raise ValueError(f"{name}: must be a positive integer or None, got {number}")
    return int(number)


def interval(name: str, value: object, what: str = "(lo, hi)") -> tuple[float, float]:
    """value as a finite (lo, hi) pair of floats with lo < hi (e.g. a reward's range);
    ``what`` is how the message names the accepted values."""
    try:
        lo, hi = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be {what}, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name}: must be finite with lo < hi, got {value!r}")
    return lo, hi


def range_or_auto(name: str, value: object) -> tuple[float, float] | Literal["auto"] | None:
    """A reward range argument: (lo, hi) as :func:`interval` checks it, ``"auto"`` (read it
    from the log, docs/io.md "Reward range") or None (no range)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value == "auto":
            return "auto"
        raise ValueError(f"{name}: must be (lo, hi), 'auto' or None, got {value!r}")
    return interval(name, value, what="(lo, hi), 'auto' or None")


def paired(steps: object, values: object, name: str = "reward") -> tuple[np.ndarray, np.ndarray]:
    """steps and values as 1-D float arrays of one shape (``name`` names the values)."""
    t = np.asarray(steps, dtype=float)
    y = np.asarray(values, dtype=float)
    if t.ndim != 1 or y.ndim != 1:
        raise ValueError(f"{name}: must be 1-D like the steps, got shapes {t.shape} and {y.shape}")
    if t.shape != y.shape:
        raise ValueError(f"{name}: shape {y.shape} does not match the steps' shape {t.shape}")
    return t, y
