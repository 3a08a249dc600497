"""Conventions shared by the result objects: the one JSON helper behind every ``to_dict()``.

JSON has neither NaN nor infinity and knows nothing of NumPy, so every result's ``to_dict()``
and the command line's ``--json`` pass through :func:`to_jsonable`: NumPy scalars and arrays
become plain Python numbers and lists, non-finite floats become ``None``, mappings get string
keys, tuples become lists. Nothing else is changed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """``value`` made JSON-ready: NumPy -> plain, NaN/inf -> None, keys -> str (recursively).

    Objects with a ``to_dict()`` method and dataclasses are expanded; anything else that is
    not a number, string, bool, None, mapping or sequence is returned unchanged, so
    ``json.dumps`` still names it if it cannot be written.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, complex):
        return {"real": to_jsonable(value.real), "imag": to_jsonable(value.imag)}
    to_dict = getattr(value, "to_dict", None)  # a result object of this package
    if callable(to_dict) and not isinstance(value, type):
        return to_jsonable(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    return value
