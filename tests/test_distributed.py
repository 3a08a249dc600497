"""Dask scale-out gives exactly the single-call result, in order, with no series dropped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
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


# ----------------------------------------------------------------------------------------------
# sweep: parameter studies, locally and on a real multi-process dask.distributed cluster


def _sweep_args():
    stability_grid = {"lr": [0.01, 0.1, 1.0], "momentum": [0.0, 0.9], "refresh_interval": [1, 8]}
    simulate_grid = {"group_size": [4, 16], "seed": [0, 1]}
    simulate_fixed = {"steps": 60, "replicas": 4, "lr": 0.1}
    return stability_grid, simulate_grid, simulate_fixed


def test_sweep_rows_equal_direct_calls_in_grid_order(numba_cache):
    stability_grid, simulate_grid, simulate_fixed = _sweep_args()
    numba_cache.wait("simulate")  # the simulator from the warmed cache (tests/conftest.py)
    table = gd.sweep("stability", stability_grid, fixed={"curvature": 2.0})
    assert len(table) == 12 and (table["status"] == "ok").all()
    for row in table.itertuples():
        hp = gd.Hyperparameters(
            lr=row.lr, momentum=row.momentum, refresh_interval=row.refresh_interval
        )
        report = gd.stability(hp, curvature=2.0)
        assert row.spectral_radius == report.spectral_radius and row.regime == report.regime
    # grid order: the last parameter varies fastest
    assert table["refresh_interval"].tolist()[:4] == [1, 8, 1, 8]
    sims = gd.sweep("simulate", simulate_grid, fixed=simulate_fixed)
    direct = gd.simulate(gd.BanditConfig(group_size=16, seed=1, **simulate_fixed))
    assert sims.iloc[3]["final_reward"] == float(direct.expected_reward[:, -1].mean())


def test_sweep_keeps_failing_points_and_rejects_bad_grids():
    table = gd.sweep("stability", {"lr": [0.1, -1.0]}, fixed={"momentum": 0.5, "curvature": 1.0})
    assert table["status"].iloc[0] == "ok"
    assert table["status"].iloc[1].startswith("error: ") and "lr" in table["status"].iloc[1]
    assert np.isnan(table["spectral_radius"].iloc[1])
    with pytest.raises(ValueError, match="study: must be one of"):
        gd.sweep("train", {"lr": [1]})
    with pytest.raises(ValueError, match="'learning_rate' is not a stability parameter"):
        gd.sweep("stability", {"learning_rate": [1]})
    with pytest.raises(ValueError, match="must map to a list"):
        gd.sweep("stability", {"lr": 0.1})
    with pytest.raises(ValueError, match="chunk_size"):
        gd.sweep("stability", {"lr": [0.1]}, chunk_size=0)
    with pytest.raises(ValueError, match="fixed"):
        gd.sweep("stability", {"lr": [0.1]}, fixed={"lr": 0.2})


def test_local_cluster_gives_the_local_tables_exactly(numba_cache):
    distributed = pytest.importorskip("distributed")
    numba_cache.wait("simulate")  # each worker process loads the simulator from the cache
    stability_grid, simulate_grid, simulate_fixed = _sweep_args()
    local_stability = gd.sweep("stability", stability_grid, fixed={"curvature": 2.0})
    local_sims = gd.sweep("simulate", simulate_grid, fixed=simulate_fixed)
    t, rewards = noisy_batch(40)
    local_fits = gd.fit_many(t, rewards, threads=1)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        remote_stability = gd.sweep("stability", stability_grid, fixed={"curvature": 2.0})
        remote_sims = gd.sweep("simulate", simulate_grid, fixed=simulate_fixed, chunk_size=1)
        remote_fits = gd.fit_many_dask(t, rewards, chunk_size=7)
    pd.testing.assert_frame_equal(remote_stability, local_stability)
    pd.testing.assert_frame_equal(remote_sims, local_sims)
    assert_batches_equal(remote_fits, local_fits)
