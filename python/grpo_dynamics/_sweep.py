"""Parameter studies over the product of parameter lists, locally or on a Dask cluster.

:func:`sweep` evaluates the exact stability analysis or the bandit simulator at every point
of a grid (learning rate x momentum x K x G x seeds ...) and returns one tidy DataFrame row
per point, in grid order, with a ``status`` column: a point that fails keeps its row and
says why (docs/simulate.md, "Sweeps"). The points are cut into chunks; without a cluster
the chunks run in this process, with a ``dask.distributed`` client (passed, or active in the
session) each chunk is one task on the cluster. Every point is deterministic (its own seed),
so the cluster's table equals the local one, value for value.

Pointing it at a multi-node cluster is the usual Dask recipe: start ``dask scheduler`` on one
host and ``dask worker tcp://HOST:8786`` on each of the others (with grpo-dynamics installed),
then ``Client("tcp://HOST:8786")`` in the session before calling :func:`sweep`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from ._simulate import BanditConfig, simulate
from ._stability import Hyperparameters, stability

__all__ = ["sweep", "SWEEP_STUDIES"]

SWEEP_STUDIES = ("stability", "simulate")
Study = Literal["stability", "simulate"]
_CURVATURES = ("curvature", "curvature_lag", "curvature_now")
# chunks per worker thread: enough to balance uneven points and to show progress
_CHUNKS_PER_WORKER = 4


def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _stability_point(point: dict[str, Any]) -> dict[str, Any]:
    curvatures = {k: point[k] for k in _CURVATURES if k in point}
    hp = Hyperparameters(**{k: v for k, v in point.items() if k not in _CURVATURES})
    report = stability(hp, **curvatures)
    return {
        "spectral_radius": report.spectral_radius,
        "decay_rate": report.decay_rate,
        "stable": report.stable,
        "regime": report.regime,
        "relaxation_steps": report.relaxation_steps,
        "continuum_regime": report.continuum.regime,
    }


def _simulate_point(point: dict[str, Any]) -> dict[str, Any]:
    result = simulate(BanditConfig(**point))
    reward = np.asarray(result.expected_reward)
    half = reward[:, reward.shape[1] // 2 :]
    return {
        "final_reward": float(reward[:, -1].mean()),
        "stationary_mean": float(half.mean()),
        "stationary_variance": float(half.var(axis=1, ddof=1).mean())
        if half.shape[1] > 1
        else math.nan,
        "final_entropy": float(np.asarray(result.entropy)[:, -1].mean()),
        "zero_std_fraction": float(np.asarray(result.zero_std_fraction)[:, -1].mean()),
    }


_RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "stability": _stability_point,
    "simulate": _simulate_point,
}


def _run_chunk(study: str, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Evaluate a chunk of points; a failing point becomes a row with its error."""
    runner = _RUNNERS[study]
    rows = []
    for point in points:
        try:
            rows.append({"status": "ok", **runner(point)})
        except (ValueError, ArithmeticError) as exc:
            rows.append({"status": f"error: {exc}"})
    return rows


def _active_client(client: Any) -> Any:
    if client is not None:
        return client
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:  # no client in this session
        return None


def _grid(
    study: Study, parameters: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any]
) -> tuple[list[str], list[dict[str, Any]]]:
    allowed = (
        _fields(Hyperparameters) + _CURVATURES if study == "stability" else _fields(BanditConfig)
    )
    for name in (*parameters, *fixed):
        if name not in allowed:
            raise ValueError(
                f"parameters: {name!r} is not a {study} parameter; choose from {', '.join(allowed)}"
            )
    overlap = set(parameters) & set(fixed)
    if overlap:
        raise ValueError(f"fixed: {sorted(overlap)} also appear in parameters")
    names = list(parameters)
    values = []
    for name in names:
        listed = parameters[name]
        if isinstance(listed, (str, bytes)) or not isinstance(listed, Sequence | np.ndarray):
            raise ValueError(f"parameters: {name!r} must map to a list of values, got {listed!r}")
        if len(listed) == 0:
            raise ValueError(f"parameters: {name!r} has no values")
        values.append([v.item() if isinstance(v, np.generic) else v for v in listed])
    points = [
        {**fixed, **dict(zip(names, combo, strict=True))} for combo in itertools.product(*values)
    ]
    return names, points


def sweep(
    study: Study,
    parameters: Mapping[str, Sequence[Any]],
    *,
    fixed: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    client: Any = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Evaluate a study at every point of the product of parameter lists.

    Parameters
    ----------
    study
        ``"stability"``: exact stability (:func:`~grpo_dynamics.stability`) of
        ``Hyperparameters`` fields plus ``curvature`` (or ``curvature_lag``/``curvature_now``);
        columns spectral_radius, decay_rate, stable, regime, relaxation_steps,
        continuum_regime. ``"simulate"``: the bandit (:func:`~grpo_dynamics.simulate`) over
        ``BanditConfig`` fields (``seed`` is one of them: list seeds to replicate); columns
        final_reward, stationary_mean and stationary_variance (second half, averaged over
        replicas), final_entropy, zero_std_fraction.
    parameters
        name -> list of values; the grid is their product, in the given order.
    fixed
        name -> value held at every point (e.g. ``{"curvature": 2.0}`` or ``{"steps": 500}``).
    chunk_size
        Points per task; default: about four chunks per worker thread of the cluster (one
        chunk per point when there are few points).
    client
        A ``dask.distributed.Client``; default: the session's active client if any, else run
        here, in this process.
    progress
        Show a progress bar (tqdm); default: when there are more than 20 chunks.

    Returns
    -------
    pandas.DataFrame
        One row per grid point in grid order: the varied parameters, ``status`` ("ok" or
        "error: <message>") and the study's result columns (NaN where a point failed).
    """
    if study not in SWEEP_STUDIES:
        raise ValueError(
            f"study: must be one of {', '.join(map(repr, SWEEP_STUDIES))}; got {study!r}"
        )
    if not isinstance(parameters, Mapping) or not parameters:
        raise ValueError("parameters: must be a non-empty mapping of name -> list of values")
    names, points = _grid(study, parameters, dict(fixed or {}))
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size: must be a positive integer, got {chunk_size!r}")
    active = _active_client(client)
    workers = 1
    if active is not None:
        workers = max(1, sum(active.nthreads().values()))
    if chunk_size is None:
        chunk_size = max(1, math.ceil(len(points) / (_CHUNKS_PER_WORKER * workers)))
    chunks = [points[i : i + chunk_size] for i in range(0, len(points), chunk_size)]
    show = len(chunks) > 20 if progress is None else bool(progress)
    results: list[list[dict[str, Any]] | None] = [None] * len(chunks)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), desc=f"sweep {study}", unit="point")
    if active is None:
        for i, chunk in enumerate(chunks):
            results[i] = _run_chunk(study, chunk)
            if bar is not None:
                bar.update(len(chunk))
    else:
        from distributed import as_completed

        futures = [active.submit(_run_chunk, study, chunk, pure=False) for chunk in chunks]
        index = {future.key: i for i, future in enumerate(futures)}
        for future in as_completed(futures):
            i = index[future.key]
            results[i] = future.result()
            if bar is not None:
                bar.update(len(chunks[i]))
    if bar is not None:
        bar.close()
    rows = [
        {**{name: point[name] for name in names}, **row}
        for chunk, chunk_rows in zip(chunks, results, strict=True)
        for point, row in zip(chunk, chunk_rows or [], strict=True)
    ]
    return pd.DataFrame(rows)
