"""Records -> Run: merge on step, restarts, NaN, canonical names (docs/io.md, "Messy logs")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._aliases import _SUMMARY_KEYS, CANONICAL_COLUMNS, _is_eval
from ._columns import _canonical_columns, _canonical_metadata
from ._errors import LogFormatError
from ._records import _MAX_STEP, _Parsed
from .run import Run


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _build_run(parsed: _Parsed, path: str, fmt: str) -> Run:
    warned = list(parsed.warnings)
    notes = list(parsed.notes)
    metadata = dict(parsed.metadata)
    table: tuple[Sequence[int] | np.ndarray, list[str], np.ndarray] | None = None
    records = parsed.records
    if parsed.columns is not None:
        table = _columnar_table(parsed, metadata, warned, notes)
        if table is None:
            records = parsed.columns.records()
    if table is None:
        table = _merge_records(records, parsed, path, metadata, warned, notes)
    steps_sorted, columns, matrix = table
    matrix[~np.isfinite(matrix)] = np.nan
    frame = pd.DataFrame(
        matrix,
        index=pd.Index(np.asarray(steps_sorted, dtype=np.int64), name="step"),
        columns=columns,
    )

    empty_columns = [c for c in frame.columns if frame[c].isna().all()]
    if empty_columns:
        frame = frame.drop(columns=empty_columns)
        notes.append("columns with no finite value dropped: " + ", ".join(empty_columns))

    frame, original = _canonical_columns(frame, warned, notes, path)

    empty_rows = frame.isna().all(axis=1)
    if empty_rows.any():
        warned.append(f"{int(empty_rows.sum())} rows with no finite value dropped")
        frame = frame.loc[~empty_rows]
    no_reward = frame["reward"].isna()
    eval_only = no_reward & frame[[c for c in frame if not _is_eval(c)]].drop(
        columns="reward"
    ).isna().all(axis=1)
    if (no_reward & ~eval_only).any():
        bad = frame.index[no_reward & ~eval_only]
        warned.append(
            f"reward missing or NaN at {len(bad)} logged steps (first {bad[0]}); "
            "those steps are left out of run.steps / run.reward"
        )
    if eval_only.any():
        notes.append(f"{int(eval_only.sum())} steps carry only eval metrics")
    reward = frame["reward"].dropna().to_numpy()
    if reward.size == 0:
        raise LogFormatError(path, "reward", "the reward column has no finite value")
    low, high = float(reward.min()), float(reward.max())
    if low < 0.0 or high > 1.0:
        notes.append(f"reward range [{low:.4g}, {high:.4g}] is outside [0, 1]; used as logged")

    metadata = _canonical_metadata(metadata, frame, notes)
    run = Run(
        frame=frame,
        original_names=original,
        metadata=metadata,
        source=path,
        warnings=warned,
        notes=notes,
        format=fmt,
    )
    interval = run.logging_interval
    if interval > 1:
        notes.append(f"reward logged every {interval} steps")
    gaps = np.diff(run.steps)
    if gaps.size and np.any(gaps != interval):
        notes.append(
            f"irregular logging: gaps between {int(gaps.min())} and {int(gaps.max())} steps"
        )
    missing = [c for c in CANONICAL_COLUMNS if c not in frame.columns]
    if missing:
        notes.append("absent canonical columns: " + ", ".join(missing))
    return run


def _merge_records(
    records: Sequence[tuple[str, int | None, dict[str, float]]],
    parsed: _Parsed,
    path: str,
    metadata: dict[str, Any],
    warned: list[str],
    notes: list[str],
) -> tuple[list[int], list[str], np.ndarray]:
    """Records -> (sorted steps, columns, step x column matrix), merged on step."""
    if not records:
        raise LogFormatError(path, None, "no per-step records found")

    # summary entries TRL writes at the end of training are metadata, not a step
    summary: dict[str, float] = dict(metadata.pop("train_summary", {}) or {})
    cleaned = []
    for where, step, values in records:
        if _SUMMARY_KEYS.isdisjoint(values):  # the common case, decided without a loop
            cleaned.append((where, step, values))
            continue
        extra = {k: v for k, v in values.items() if k in _SUMMARY_KEYS}
        if extra:
            summary.update(extra)
            values = {k: v for k, v in values.items() if k not in _SUMMARY_KEYS}
            if set(values) <= {"epoch"}:
                continue
        cleaned.append((where, step, values))
    records = cleaned
    if summary:
        metadata["train_summary"] = summary

    for where, step, _ in records:
        if step is not None and abs(step) > _MAX_STEP:
            raise LogFormatError(path, where, f"step {step} is out of range (|step| <= 2**53)")
    missing_step = [where for where, step, _ in records if step is None]
    if missing_step and len(missing_step) == len(records):
        records = [(w, i, v) for i, (w, _, v) in enumerate(records)]
        warned.append("no step column: rows numbered 0..n-1 in file order (spacing unknown)")
    elif missing_step:
        records = [r for r in records if r[1] is not None]
        warned.append(
            f"{len(missing_step)} entries with metrics but no step ignored "
            f"(first: {missing_step[0]})"
        )
    if parsed.step_source and not any("no step" in w for w in warned):
        notes.append(parsed.step_source)

    # merge train and eval entries on step; a metric logged twice with a new value is a restart
    rows: dict[int, dict[str, float]] = {}
    group_rows: tuple[dict[int, dict[str, float]], dict[int, dict[str, float]]] = ({}, {})
    repeated: set[int] = set()
    in_a_row: set[int] = set()  # steps logged several times consecutively (sub-steps)
    group_last: list[int | None] = [None, None]
    duplicates = 0
    last_step = None
    backwards = 0
    all_keys: dict[str, None] = {}
    for _, _, values in records:
        all_keys.update(dict.fromkeys(values))
    eval_keys = {k for k in all_keys if _is_eval(k)}
    for _, step, values in records:
        assert step is not None
        has_eval = not eval_keys.isdisjoint(values)
        if has_eval:
            # an eval entry's own 'epoch' stays with it, so it can never look like a restart
            parts = (
                {k: v for k, v in values.items() if k not in eval_keys and k != "epoch"},
                {k: v for k, v in values.items() if k in eval_keys or k == "epoch"},
            )
        else:
            parts = (values, {})
        if parts[0]:
            if last_step is not None and step < last_step:
                backwards += 1
            last_step = step
        for group, part in enumerate(parts):
            if not part:
                continue
            target = group_rows[group]
            existing = target.get(step)
            consecutive = group_last[group] == step
            group_last[group] = step
            if existing is None:
                target[step] = dict(part)
            elif any(k in existing and not _same(existing[k], v) for k, v in part.items()):
                if consecutive:
                    # several updates logged under one step (e.g. minibatches of one rollout)
                    existing.update(part)
                    in_a_row.add(step)
                else:
                    target[step] = dict(part)  # a restart: keep the last occurrence, whole
                    repeated.add(step)
            else:
                if any(k in existing for k in part):
                    duplicates += 1
                existing.update(part)
    order = all_keys
    for group_row in group_rows:
        for step, part in group_row.items():
            rows.setdefault(step, {}).update(part)
    if repeated:
        ordered = sorted(repeated)
        warned.append(
            f"restart: {len(ordered)} steps logged more than once with different values "
            f"(steps {ordered[0]}..{ordered[-1]}); kept the last occurrence"
        )
    elif backwards:
        notes.append(f"entries out of step order {backwards} times; sorted by step")
    in_a_row -= repeated
    if in_a_row:
        ordered = sorted(in_a_row)
        warned.append(
            f"{len(ordered)} steps logged several times in a row with different values "
            f"(steps {ordered[0]}..{ordered[-1]}; several updates per step?); "
            "kept the last value of each metric"
        )
    if duplicates:
        notes.append(f"{duplicates} identical repeated entries merged")

    # literal NaN / inf in the file
    if parsed.explicit_nan:
        nan_steps: dict[str, list[int]] = {}
        for step, row in rows.items():
            for key, value in row.items():
                if not math.isfinite(value):
                    nan_steps.setdefault(key, []).append(step)
        _warn_non_finite(nan_steps, warned)

    steps_sorted = sorted(rows)
    columns = list(order)
    matrix = np.full((len(steps_sorted), len(columns)), np.nan)
    position = {c: j for j, c in enumerate(columns)}
    for i, step in enumerate(steps_sorted):
        for key, value in rows[step].items():
            matrix[i, position[key]] = value
    return steps_sorted, columns, matrix


def _warn_non_finite(nan_steps: dict[str, list[int]], warned: list[str]) -> None:
    for key, steps in nan_steps.items():
        steps.sort()
        shown = ", ".join(map(str, steps[:5])) + (", ..." if len(steps) > 5 else "")
        warned.append(
            f"{key}: {len(steps)} non-finite value(s) (NaN/inf) at steps {shown}; kept as NaN"
        )


def _columnar_table(
    parsed: _Parsed, metadata: dict[str, Any], warned: list[str], notes: list[str]
) -> tuple[np.ndarray, list[str], np.ndarray] | None:
    """_merge_records for compact columns, without one dict per record or per step.

    Handles the common case where, within the training and within the evaluation records,
    steps strictly increase (nothing to merge: no restart, no repeated step), with the same
    result as _merge_records; returns None (nothing changed) for any other case, which the
    caller then reads record by record.
    """
    table = parsed.columns
    assert table is not None
    keysets, kinds, starts, values, steps = (
        table.keysets,
        table.kinds,
        table.starts,
        table.values,
        table.steps,
    )
    # summary entries TRL writes at the end of training are metadata (as in _merge_records)
    # each record's metrics: its keys but the step, at their positions in the record
    metrics_at = [[(j, k) for j, k in enumerate(keys) if k != table.step_key] for keys in keysets]
    summary_at = [[(j, k) for j, k in at if k in _SUMMARY_KEYS] for at in metrics_at]
    kept_at = [[(j, k) for j, k in at if k not in _SUMMARY_KEYS] for at in metrics_at]
    dropped = np.array(
        [
            bool(s) and {k for _, k in kept} <= {"epoch"}
            for s, kept in zip(summary_at, kept_at, strict=True)
        ],
        dtype=bool,
    )
    kept = ~dropped[kinds]
    kept_records = np.flatnonzero(kept)
    if kept_records.size == 0:
        return None
    kinds_kept = kinds[kept_records]
    used, first = np.unique(kinds_kept, return_index=True)
    order: dict[str, None] = {}
    for kind in used[np.argsort(first)].tolist():
        order.update(dict.fromkeys(k for _, k in kept_at[kind]))
    eval_keys = {k for k in order if _is_eval(k)}
    parts: tuple[list[list[tuple[int, str]]], list[list[tuple[int, str]]]] = ([], [])
    for kept_keys in kept_at:
        if any(k in eval_keys for _, k in kept_keys):
            # an eval entry's own 'epoch' stays with it (as in _merge_records)
            parts[0].append([(j, k) for j, k in kept_keys if k not in eval_keys and k != "epoch"])
            parts[1].append([(j, k) for j, k in kept_keys if k in eval_keys or k == "epoch"])
        else:
            parts[0].append(kept_keys)
            parts[1].append([])
    in_group = []
    for group in (0, 1):
        has_part = np.array([bool(p) for p in parts[group]], dtype=bool)
        records = kept_records[has_part[kinds_kept]]
        if np.any(np.diff(steps[records]) <= 0):
            return None  # a step logged twice or out of order: merged record by record
        in_group.append(records)

    steps_sorted = np.union1d(steps[in_group[0]], steps[in_group[1]])
    columns = list(order)
    position = {c: j for j, c in enumerate(columns)}
    matrix = np.full((steps_sorted.size, len(columns)), np.nan)
    for group in (0, 1):  # evaluation parts last: their 'epoch' wins, as in _merge_records
        records = in_group[group]
        by_kind = records[np.argsort(kinds[records], kind="stable")]
        sorted_kinds = kinds[by_kind]
        bounds = np.flatnonzero(np.diff(sorted_kinds)) + 1
        for chunk in np.split(by_kind, bounds):
            if chunk.size == 0:
                continue
            rows = np.searchsorted(steps_sorted, steps[chunk])
            base = starts[chunk]
            for j, key in parts[group][int(kinds[chunk[0]])]:
                matrix[rows, position[key]] = values[base + j]

    if parsed.explicit_nan and not np.isfinite(values).all():
        # the merged rows that may hold a non-finite value, visited in _merge_records's order
        lengths = np.array([len(keys) for keys in keysets], dtype=np.int64)[kinds]
        owner = np.repeat(np.arange(kinds.size), lengths)
        suspect = np.unique(steps[owner[~np.isfinite(values)]])
        by_step: list[dict[int, int]] = []
        for group in (0, 1):
            records = in_group[group]
            chosen = records[np.isin(steps[records], suspect)]
            by_step.append(dict(zip(steps[chosen].tolist(), chosen.tolist(), strict=True)))
        nan_steps: dict[str, list[int]] = {}
        visit = list(by_step[0]) + [s for s in by_step[1] if s not in by_step[0]]
        for step in visit:
            row: dict[str, float] = {}
            for group in (0, 1):
                record = by_step[group].get(step)
                if record is not None:
                    base = int(starts[record])
                    for j, key in parts[group][int(kinds[record])]:
                        row[key] = float(values[base + j])
            for key, value in row.items():
                if not math.isfinite(value):
                    nan_steps.setdefault(key, []).append(step)
        _warn_non_finite(nan_steps, warned)

    summary: dict[str, float] = dict(metadata.pop("train_summary", {}) or {})
    summary_kinds = [kind for kind, at in enumerate(summary_at) if at]
    for record in np.flatnonzero(np.isin(kinds, summary_kinds)).tolist():
        base = int(starts[record])
        summary.update((k, float(values[base + j])) for j, k in summary_at[int(kinds[record])])
    if summary:
        metadata["train_summary"] = summary
    if parsed.step_source:
        notes.append(parsed.step_source)
    return steps_sorted, columns, matrix
