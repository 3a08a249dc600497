"""Canonical column names and metadata keys for a table of records (docs/io.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ._aliases import (
    _BARE_REWARD,
    _COLUMN_ALIASES,
    _METADATA_ALIASES,
    _PATTERN_ALIASES,
    _column_order,
    _normalise,
)
from ._errors import LogFormatError
from ._records import _to_float


def _canonical_columns(
    frame: pd.DataFrame, warned: list[str], notes: list[str], path: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    normalised: dict[str, str] = {}
    for column in frame.columns:
        normalised.setdefault(_normalise(column), column)
    exact = set(frame.columns)
    rename: dict[str, str] = {}
    original: dict[str, str] = {}
    for canonical, aliases in _COLUMN_ALIASES.items():
        chosen: str | None
        if canonical in exact:
            chosen = canonical  # a column already named canonically is never displaced
        else:
            chosen = next(
                (normalised[a] for a in aliases if a in normalised and normalised[a] not in rename),
                None,
            )
        if (
            chosen is None
            or chosen in rename
            or (chosen != canonical and chosen in _COLUMN_ALIASES)
        ):
            continue
        rename[chosen] = canonical
        original[canonical] = chosen
    for canonical, patterns in _PATTERN_ALIASES.items():
        if canonical in original or canonical in exact:
            continue
        matches = [
            c
            for c in frame.columns
            if c not in rename and any(re.fullmatch(p, _normalise(c)) for p in patterns)
        ]
        if len(matches) == 1:
            rename[matches[0]] = canonical
            original[canonical] = matches[0]
    frame = frame.rename(columns=rename)

    if "reward" not in frame.columns:
        parts = sorted(
            c for c in frame.columns if re.fullmatch(r"rewards/[^/]+(/mean)?", _normalise(c))
        )
        if parts:
            frame = frame.assign(reward=frame[parts].sum(axis=1, skipna=False))
            original["reward"] = " + ".join(parts)
            warned.append(
                "no total reward column: reward = sum of per-function means " + " + ".join(parts)
            )
        elif "mean" in frame.columns:
            for canonical, bare in _BARE_REWARD.items():
                if bare in frame.columns and canonical not in frame.columns:
                    frame = frame.rename(columns={bare: canonical})
                    original[canonical] = bare
            warned.append(
                "reward taken from the column 'mean' (per-call reward summaries)"
                + (", reward_std from 'std'" if "reward_std" in original else "")
            )
        else:
            raise LogFormatError(
                path,
                "reward",
                "no reward column (looked for reward, rewards, rewards/<name>/mean, ...); "
                f"columns: {', '.join(map(str, frame.columns)) or 'none'}",
            )
    renamed = {c: o for c, o in original.items() if c != o}
    if renamed:
        notes.append("renamed: " + ", ".join(f"{o} -> {c}" for c, o in renamed.items()))
    return frame[_column_order(frame.columns)], original


def _canonical_metadata(
    raw: Mapping[str, Any], frame: pd.DataFrame, notes: list[str]
) -> dict[str, Any]:
    metadata = dict(raw)
    by_norm: dict[str, Any] = {}
    for key, value in raw.items():
        by_norm.setdefault(_normalise(key), value)
    for canonical, aliases in _METADATA_ALIASES.items():
        if canonical in metadata:
            continue
        for alias in aliases:
            value = by_norm.get(alias)
            if value is None or isinstance(value, bool):
                continue
            if canonical == "model_name" and not isinstance(value, str):
                continue
            if canonical != "model_name" and _to_float(value) is None:
                continue
            metadata[canonical] = value
            break
    # per-call reward logs count the completions of each group
    if "group_size" not in metadata:
        for name in ("n_completions", "num_generations", "group_size"):
            if name in frame.columns:
                values = frame[name].dropna().unique()
                if values.size == 1 and values[0] == round(values[0]) and values[0] > 0:
                    metadata["group_size"] = int(values[0])
                    notes.append(f"group_size read from the constant column {name}")
                    break
    return metadata
