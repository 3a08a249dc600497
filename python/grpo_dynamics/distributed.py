"""Scale bulk fits out with Dask when one machine is not enough (docs/fitting.md, "Batches").

:func:`fit_many_dask` cuts a batch into chunks, fits each chunk with :func:`fit_many` (one
call into the compiled core, threads inside) as a Dask task, and concatenates the chunks back
in input order. With a ``dask.distributed.Client`` active the chunks run on the cluster; without
one, on Dask's local scheduler. The result is identical to a single :func:`fit_many` call:
each series is fitted independently and deterministically, so chunking cannot change it.
Dask is an optional dependency (``pip install "grpo-dynamics[dask]"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._fit import BatchFit, fit_many

__all__ = ["fit_many_dask", "concat_batches"]


def concat_batches(batches: Sequence[BatchFit]) -> BatchFit:
    """Concatenate :class:`BatchFit` objects of the same model row-wise, in order."""
    if not batches:
        raise ValueError("batches: need at least one BatchFit to concatenate")
    first = batches[0]
    for i, batch in enumerate(batches[1:], start=1):
        if batch.model != first.model or batch.param_names != first.param_names:
            raise ValueError(f"batches[{i}]: model {batch.model!r} differs from {first.model!r}")
    merged: dict[str, Any] = {}
    for spec in dataclasses.fields(BatchFit):
        values = [getattr(batch, spec.name) for batch in batches]
        merged[spec.name] = (
            np.concatenate(values) if isinstance(values[0], np.ndarray) else values[0]
        )
    return BatchFit(**merged)


def fit_many_dask(
    t: ArrayLike | Sequence[tuple[ArrayLike, ArrayLike]],
    R: ArrayLike | None = None,
    model: str = "oscillator",
    *,
    chunk_size: int = 2000,
    scheduler: str | None = None,
    threads_per_task: int | None = 1,
    **fit_options: Any,
) -> BatchFit:
    """:func:`fit_many` split into Dask tasks of ``chunk_size`` series each.

    Parameters
    ----------
    t, R
        As in :func:`fit_many`: shared steps and an (n_series, n_points) reward array, or a
        list of ragged ``(t, r)`` pairs with ``R=None``.
    chunk_size : int
        Series per task. Large enough that each task amortises scheduling (~1 ms) over
        many fits (a fit takes tens of microseconds).
    scheduler : str, optional
        Passed to ``dask.compute`` (``"threads"``, ``"processes"``, ``"sync"``); default: the
        active distributed client if there is one, else Dask's default.
    threads_per_task : int, optional
        Threads each task uses inside the compiled core (1 lets Dask own the parallelism).
    **fit_options
        Forwarded to :func:`fit_many` (``weights`` must be chunked like ``R``; pass it only
        for 2-D input).
    """
    try:
        import dask
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("fit_many_dask needs dask: pip install 'grpo-dynamics[dask]'") from exc
    if not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    weights = fit_options.pop("weights", None)
    fit_options["threads"] = threads_per_task

    if R is None:
        series = list(t)  # type: ignore[arg-type]
        if not series:
            raise ValueError("t: expected at least one (t, r) series")
        if weights is not None:
            raise ValueError("weights: per-series weights are only supported with 2-D input")
        chunks = [series[i : i + chunk_size] for i in range(0, len(series), chunk_size)]
        tasks = [dask.delayed(fit_many)(chunk, None, model, **fit_options) for chunk in chunks]
    else:
        rewards = np.asarray(R, dtype=np.float64)
        if rewards.ndim != 2:
            raise ValueError(
                f"R: expected a 2-D array (n_series, n_points), got shape {rewards.shape}"
            )
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        if w is not None and w.shape != rewards.shape:
            raise ValueError(f"weights: shape {w.shape} does not match R {rewards.shape}")
        tasks = []
        for start in range(0, rewards.shape[0], chunk_size):
            block = rewards[start : start + chunk_size]
            w_block = None if w is None else w[start : start + chunk_size]
            tasks.append(dask.delayed(fit_many)(t, block, model, weights=w_block, **fit_options))
    compute_options = {} if scheduler is None else {"scheduler": scheduler}
    results = dask.compute(*tasks, **compute_options)
    return concat_batches(list(results))
