"""Ahead-of-use compilation of the Numba kernels (docs/simulate.md, "Compilation"): every stage
leaves its kernel compiled, stages are validated, and the command line reports each stage."""

from __future__ import annotations

import pytest

import grpo_dynamics as gd
from grpo_dynamics import _bandit_kernels, _objective_kernels, cli


def test_every_stage_leaves_its_kernels_compiled(numba_cache):
    numba_cache.wait("probe")  # the suite's background warm-up compiles them first
    seconds = gd.warm_up()
    assert list(seconds) == list(gd.WARM_UP_STAGES)
    assert all(s >= 0 for s in seconds.values())
    for dispatcher in (
        _bandit_kernels.simulate_kernel,
        _bandit_kernels.probe_kernel,
        _objective_kernels.train_replicas,
    ):
        assert dispatcher.signatures, dispatcher


def test_progress_is_called_per_stage_in_order():
    seen: list[str] = []
    gd.warm_up(["probe", "simulate"], progress=lambda stage, s: seen.append(stage))
    assert seen == ["probe", "simulate"]


def test_unknown_stage_is_a_clear_error():
    with pytest.raises(ValueError, match="stages: must be one of 'simulate'"):
        gd.warm_up(["simulate", "jit"])


def test_cli_prints_one_line_per_stage(capsys):
    assert cli.main(["warm-up", "--stage", "probe", "--stage", "train"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["probe", "train"]
    assert lines[2].startswith("Numba kernels ready")
