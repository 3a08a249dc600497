"""Records -> Run: merge on step, restarts, NaN, canonical names (docs/io.md, "Messy logs")."""

from __future__ import annotations

import math

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
    records = parsed.records
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
        for key, steps in nan_steps.items():
            steps.sort()
            shown = ", ".join(map(str, steps[:5])) + (", ..." if len(steps) > 5 else "")
            warned.append(
                f"{key}: {len(steps)} non-finite value(s) (NaN/inf) at steps {shown}; kept as NaN"
            )

    steps_sorted = sorted(rows)
    columns = list(order)
    matrix = np.full((len(steps_sorted), len(columns)), np.nan)
    position = {c: j for j, c in enumerate(columns)}
    for i, step in enumerate(steps_sorted):
        for key, value in rows[step].items():
            matrix[i, position[key]] = value
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
