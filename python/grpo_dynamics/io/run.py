"""One training run: a table of per-step metrics indexed by optimizer step (docs/io.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import _validation as _v
from ._aliases import _COLUMN_ALIASES, _column_order
from ._columns import _canonical_columns, _canonical_metadata
from ._errors import LogFormatError

__all__ = ["Run", "as_run"]


@dataclass(eq=False, repr=False)  # a DataFrame field has no truth value: identity equality
class Run:
    """One training run: per-step metrics, the names they had, and the run's hyperparameters.

    ``frame`` is indexed by optimizer step (int, increasing, unique) and holds float columns,
    canonical ones (:data:`CANONICAL_COLUMNS`) first; ``original_names`` maps each canonical
    column to the name it had in the log; ``metadata`` holds what the log says about the run
    (``group_size``, ``learning_rate``, ``model_name``, ``batch_size``, ``num_iterations``, ...
    when present, plus the raw config keys); ``warnings`` lists what was done to the data,
    ``notes`` what was noticed without changing anything (docs/io.md, "Messy logs").
    """

    frame: pd.DataFrame
    original_names: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    format: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pd.DataFrame):
            raise ValueError("frame must be a pandas DataFrame indexed by step")
        if "reward" not in self.frame.columns:
            raise ValueError("frame has no 'reward' column")
        index = self.frame.index
        if len(index) and not pd.api.types.is_integer_dtype(index.dtype):
            raise ValueError("frame index (step) must hold integers")
        if not index.is_unique or not index.is_monotonic_increasing:
            raise ValueError("frame index (step) must be unique and increasing")

    @classmethod
    def from_arrays(
        cls,
        steps: Sequence[int] | np.ndarray,
        reward: Sequence[float] | np.ndarray,
        *,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        **columns: Sequence[float] | np.ndarray,
    ) -> Run:
        """Build a Run from arrays (e.g. a simulated run); extra columns by keyword."""
        step_array = np.asarray(steps)
        if (
            step_array.ndim != 1
            or not np.all(np.isfinite(step_array))
            or np.any(step_array != np.round(step_array))
        ):
            raise ValueError("steps must be a 1-D array of integers")
        largest = float(np.max(np.abs(step_array.astype(float)))) if step_array.size else 0.0
        if largest > 2**53:  # not exact as float64 beyond, and int64 overflows soon after
            raise ValueError(f"steps: must be within +-2**53, got {largest!r}")
        data: dict[str, np.ndarray] = {"reward": np.asarray(reward, dtype=float)}
        data.update({name: np.asarray(values, dtype=float) for name, values in columns.items()})
        for name, values in data.items():
            if values.shape != step_array.shape:
                raise ValueError(f"{name} has shape {values.shape}, steps {step_array.shape}")
        index = pd.Index(step_array.astype(np.int64), name="step")
        frame = pd.DataFrame(data, index=index)
        return cls(
            frame=frame[_column_order(frame.columns)].sort_index(),
            original_names={c: c for c in frame.columns if c in _COLUMN_ALIASES},
            metadata=_canonical_metadata(dict(metadata or {}), frame, []),
            source=source,
        )

    @property
    def name(self) -> str:
        """A short label for tables: the file name, or 'run'."""
        return Path(self.source).name if self.source else "run"

    @property
    def _reward_mask(self) -> np.ndarray:
        return np.isfinite(self.frame["reward"].to_numpy(dtype=float))

    @property
    def steps(self) -> np.ndarray:
        """Optimizer steps (int64) at which a finite reward was logged."""
        return self.frame.index.to_numpy(dtype=np.int64)[self._reward_mask]

    @property
    def reward(self) -> np.ndarray:
        """Mean training reward (float64) at :attr:`steps`, in the log's own units."""
        return self.frame["reward"].to_numpy(dtype=float)[self._reward_mask]

    @property
    def logging_interval(self) -> int:
        """The most common gap between consecutive logged reward steps (1 if undefined)."""
        gaps = np.diff(self.steps)
        gaps = gaps[gaps > 0]
        if gaps.size == 0:
            return 1
        values, counts = np.unique(gaps, return_counts=True)
        return int(values[np.argmax(counts)])

    def _resolve(self, name: str) -> str:
        if name in self.frame.columns:
            return name
        for canonical, original in self.original_names.items():
            if original == name and canonical in self.frame.columns:
                return canonical
        raise KeyError(
            f"column {name!r} is not in this run; it has: {', '.join(map(str, self.frame.columns))}"
        )

    def has(self, name: str) -> bool:
        """True when the column (canonical or original name) exists with a finite value."""
        try:
            resolved = self._resolve(name)
        except KeyError:
            return False
        return bool(np.isfinite(self.frame[resolved].to_numpy(dtype=float)).any())

    def column(self, name: str, *, dropna: bool = True) -> pd.Series:
        """One column as a Series indexed by step (canonical or original name; NaN dropped)."""
        series = self.frame[self._resolve(name)]
        return series.dropna() if dropna else series

    def series(self, column: str = "reward") -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one column as float64 arrays, non-finite rows dropped, by step.

        The one coercion of a run into arrays that fit, forecast and diagnose use. ``column``
        is a canonical or original name; a missing column raises ValueError naming it.
        """
        try:
            resolved = self._resolve(column)
        except KeyError:
            raise ValueError(
                f"column: {column!r} is not in this run; it has: "
                + ", ".join(map(str, self.frame.columns))
            ) from None
        t = self.frame.index.to_numpy(dtype=float)
        y = self.frame[resolved].to_numpy(dtype=float)
        keep = np.isfinite(t) & np.isfinite(y)
        return t[keep], y[keep]

    def __len__(self) -> int:
        return int(self._reward_mask.sum())

    def __repr__(self) -> str:
        steps = self.steps
        span = f"steps {steps[0]}..{steps[-1]}" if steps.size else "no finite reward"
        return (
            f"Run({self.name!r}, {len(self)} rewards, {span}, "
            f"columns={list(self.frame.columns)[:6]}{'...' if self.frame.shape[1] > 6 else ''}, "
            f"{len(self.warnings)} warnings)"
        )


def as_run(
    data: Run | pd.DataFrame | Mapping[str, Any] | Sequence[float] | np.ndarray,
    reward: Sequence[float] | np.ndarray | None = None,
) -> Run:
    """Coerce what a user holds into a :class:`Run` (the one entry point above io).

    Accepted: a Run (returned as is); a DataFrame indexed by step or with a ``step`` column
    and a ``reward`` column (canonical or aliased names, as in a CSV log); a mapping of
    column name -> array with ``step`` and ``reward``; or an array of steps with ``reward``
    given as the second argument. Anything else raises ValueError naming ``data``.
    """
    if isinstance(data, Run):
        if reward is not None:
            raise ValueError("reward: must be None when data is a Run (it has its own)")
        return data
    if isinstance(data, Mapping) and not isinstance(data, pd.DataFrame):
        data = pd.DataFrame({str(k): np.asarray(v) for k, v in data.items()})
    if isinstance(data, pd.DataFrame):
        if reward is not None:
            raise ValueError("reward: must be None when data is a DataFrame")
        frame = data
        if "step" in frame.columns:
            frame = frame.set_index("step")
        frame = frame.rename(columns=str)
        try:
            frame, original = _canonical_columns(frame, [], [], "data")
        except LogFormatError as exc:
            raise ValueError(str(exc)) from None
        numeric = frame.apply(pd.to_numeric, errors="coerce")
        try:
            steps = np.asarray(numeric.index, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("data: the step index must be numeric") from None
        if not np.all(np.isfinite(steps)) or np.any(steps != np.round(steps)):
            raise ValueError("data: steps must be finite integers")
        numeric = numeric.loc[:, [c for c in numeric.columns if numeric[c].notna().any()]]
        columns = {str(c): numeric[c].to_numpy(dtype=float) for c in numeric.columns}
        run = _sorted_run(steps, columns.pop("reward"), columns)
        # keep the names the user's columns had (they tell which trainer wrote them)
        run.original_names.update({k: v for k, v in original.items() if k in run.frame.columns})
        return run
    if reward is None:
        raise ValueError(
            f"data: expected a Run, a DataFrame, a mapping of columns or steps with a reward "
            f"array; got {type(data).__name__} without reward"
        )
    t, y = _v.paired(data, reward)
    keep = np.isfinite(t)
    t, y = t[keep], y[keep]
    if np.any(t != np.round(t)):
        raise ValueError("data: steps must be integers")
    return _sorted_run(t, y, {})


def _sorted_run(steps: np.ndarray, reward: np.ndarray, columns: Mapping[str, Any]) -> Run:
    """A Run from integral float steps in any order: sorted by step, duplicates rejected."""
    order = np.argsort(steps, kind="stable")
    if np.any(np.diff(steps[order]) == 0):
        raise ValueError("data: steps must be unique")
    return Run.from_arrays(  # from_arrays checks the range, then casts
        steps[order], reward[order], **{k: v[order] for k, v in columns.items()}
    )
