"""Dask scale-out gives exactly the single-call result, in order, with no series dropped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import grpo_dynamics as gd

dask = pytest.importorskip("dask")


def noisy_batch(n_series: int, n_points: int = 120, seed: int = 3):
    rng = np.random.default_rng(seed)
    t = np.arange(1.0, n_points + 1.0)
    rows = []
    for _ in range(n_series):
        r0, r_inf = rng.uniform(0.0, 0.3), rng.uniform(0.5, 1.0)
        tau, mu = rng.uniform(5, 40), rng.choice([0.0, 0.1, 0.8])
        rows.append(gd.trajectory(t, r0, r_inf, tau, mu) + rng.normal(0, 0.02, t.size))
    return t, np.array(rows)


def assert_batches_equal(a: gd.BatchFit, b: gd.BatchFit) -> None:
    for spec in dataclasses.fields(gd.BatchFit):
        x, y = getattr(a, spec.name), getattr(b, spec.name)
        if isinstance(x, np.ndarray) and x.dtype.kind == "O":
            assert x.tolist() == y.tolist(), spec.name
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=spec.name)
        else:
            assert x == y, spec.name


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_chunked_dask_fit_equals_one_fit_many_call(scheduler):
    t, rewards = noisy_batch(130)
    rewards[7] = np.nan  # a bad series keeps its place and its status
    reference = gd.fit_many(t, rewards, threads=1)
    distributed = gd.fit_many_dask(t, rewards, chunk_size=37, scheduler=scheduler)
    assert len(distributed) == 130
    assert distributed.status[7] == "bad_input"
    assert_batches_equal(distributed, reference)


def test_ragged_input_through_dask():
    t, rewards = noisy_batch(20, seed=5)
    series = [(t[: 60 + 3 * i], rewards[i, : 60 + 3 * i]) for i in range(20)]
    assert_batches_equal(
        gd.fit_many_dask(series, chunk_size=6, scheduler="sync"), gd.fit_many(series, threads=1)
    )


def test_bad_arguments():
    t, rewards = noisy_batch(3)
    with pytest.raises(ValueError, match="chunk_size"):
        gd.fit_many_dask(t, rewards, chunk_size=0)
    with pytest.raises(ValueError, match="R"):
        gd.fit_many_dask(t, rewards[0])
    with pytest.raises(ValueError, match="weights"):
        gd.fit_many_dask(t, rewards, weights=np.ones(5))
    with pytest.raises(ValueError, match="batches"):
        gd.concat_batches([])
