"""Hardening of the compiled core's boundary (issue 14, C++ part; issue 9, the options object).

Every reproducer that used to abort, hang or drown the user in a 22 kB TypeError is run here
under a time bound: calls that could hang or kill the interpreter run in a subprocess with a
timeout, and the answers of degraded or interrupted runs are compared with plain serial runs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import grpo_dynamics as gd
from grpo_dynamics import _core
from grpo_dynamics._stability import (
    Hyperparameters,
    critical_delay,
    critical_learning_rate,
    critical_refresh_interval,
    stability,
    stability_grid,
    stationary_variance,
)

HUGE = 2**70  # beyond int64


def run_python(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter (same environment) under a hard time bound."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# The options object (issue 9, item 6)


def test_fit_options_is_keyword_only_typed_and_validated():
    options = _core.FitOptions(max_iter=7, t0=3.0, nested_mu0=False, window=5)
    assert (options.max_iter, options.t0, options.nested_mu0, options.window) == (7, 3.0, False, 5)
    assert "max_iter=7" in repr(options)
    default = _core.FitOptions()
    # The Python front end documents these defaults (fit(), fit_many()).
    assert (default.max_iter, default.n_starts, default.nested_mu0, default.window) == (
        200,
        2,
        True,
        0,
    )
    with pytest.raises(TypeError):
        _core.FitOptions(7)  # type: ignore[misc]  # keyword-only
    for field, value in [
        ("max_iter", 0),
        ("n_starts", 0),
        ("window", -1),
        ("ftol", -1.0),
        ("mu_max", 0.0),
        ("t0", float("inf")),
    ]:
        with pytest.raises(ValueError, match=f"^{field}: must be"):
            _core.FitOptions(**{field: value})
    with pytest.raises(ValueError, match="^max_iter: must be an integer, got 2.5"):
        _core.FitOptions(max_iter=2.5)  # type: ignore[arg-type]
    options.max_iter = 11
    assert options.max_iter == 11
    with pytest.raises(ValueError, match="^max_iter: must be <= "):
        options.max_iter = HUGE


def test_fit_batch_honours_the_options_object():
    """max_iter in the object reaches the fitter: one trial step cannot converge from the
    automatic starts, the default budget does (the serial front end agrees)."""
    t = np.arange(60.0)
    r = 0.8 - 0.6 * np.exp(-t / 12.0)
    args = (t, np.zeros(1, np.int64), r, np.array([0, t.size]), None, "exponential")
    nan3 = np.full(3, np.nan)
    short = _core.fit_batch(*args, nan3, nan3, None, 1, _core.FitOptions(max_iter=1))
    full = _core.fit_batch(*args, nan3, nan3, None, 1, _core.FitOptions())
    assert _core.FIT_STATUS_NAMES[int(short["status"][0])] == "max_iter"
    assert _core.FIT_STATUS_NAMES[int(full["status"][0])] == "converged"
    np.testing.assert_allclose(full["params"][0], [0.2, 0.8, 12.0], rtol=1e-8)
    reference = gd.fit(t, r, "exponential")
    np.testing.assert_array_equal(full["params"][0], list(reference.params.values()))


def test_names_are_defined_once_in_the_core():
    assert gd.FIT_STATUSES == _core.FIT_STATUS_NAMES
    assert _core.FIT_STATUS_NAMES == ("converged", "max_iter", "singular", "bad_input")
    assert _core.REGIME_NAMES == {-1: "invalid", 0: "overdamped", 1: "oscillatory", 2: "unstable"}
    grid = stability_grid([0.0, 0.9, 0.5, 1.5], [0.1, 0.1, 4.0, 0.1])
    # on-policy roots of z^2 - (1 + beta - c) z + beta: real positive, complex pair, |z| > 1
    assert np.abs(np.roots([1.0, 2.5, 0.5])).max() > 1.0
    assert np.iscomplex(np.roots([1.0, -1.8, 0.9])).all()
    assert grid.regime.tolist() == ["overdamped", "oscillatory", "unstable", "invalid"]
    assert [_core.REGIME_NAMES[int(c)] for c in grid.regime_code] == grid.regime.tolist()


# ---------------------------------------------------------------------------------------------
# logistic_curve: the same checks as trajectory


def test_logistic_curve_rejects_a_2d_time_array_instead_of_flattening_it():
    with pytest.raises(ValueError, match="^t: must be a 1-D array"):
        _core.logistic_curve(np.zeros((2, 3)), 0.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="^t: must be a 1-D array"):
        _core.trajectory(np.zeros((2, 3)), 0.0, 1.0, 2.0, 0.5)
    with pytest.raises(ValueError, match="^s: must be finite and > 0"):
        _core.logistic_curve(np.zeros(3), 0.0, 1.0, 0.0, -1.0)
    value, jac = _core.logistic_curve(np.array([-1.0, 0.0, 1.0]), 0.0, 2.0, 0.0, 1.0)
    np.testing.assert_allclose(value, 2.0 / (1.0 + np.exp(-np.array([-1.0, 0.0, 1.0]))))
    assert jac.shape == (3, 4)


def test_logistic_curve_releases_the_gil():
    """A Python thread keeps running while a long logistic_curve call is in C++."""
    t = np.linspace(-50.0, 50.0, 3_000_000)
    ticks: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.01)
        durations = []
        inside = 0
        for _ in range(5):
            begin = time.perf_counter()
            _core.logistic_curve(t, 0.0, 1.0, 0.0, 3.0)
            end = time.perf_counter()
            durations.append(end - begin)
            # ticks strictly inside the call, away from its edges
            inside += sum(begin + 0.002 < x < end - 0.002 for x in ticks)
    finally:
        stop.set()
        thread.join()
    assert max(durations) > 0.01  # the call is long enough for the ticker to run
    assert inside > 0


# ---------------------------------------------------------------------------------------------
# Abort: thread creation failure degrades instead of std::terminate


def test_thread_creation_failure_degrades_to_fewer_threads_bit_identically():
    """Under an address-space limit only a few of 3000 requested threads can start (each
    reserves its stack). Before: std::terminate (SIGABRT). Now: the left-over workers run on the
    calling thread and every result equals the serial one."""
    proc = run_python(
        """
        import resource
        import numpy as np
        import grpo_dynamics as gd
        from grpo_dynamics._stability import stability_grid

        t = np.arange(40.0)
        rng = np.random.default_rng(0)
        R = 0.8 - 0.6 * np.exp(-t / 10) + 0.01 * rng.standard_normal((3000, t.size))
        serial = gd.fit_many(t, R, model="exponential", threads=1)
        c = np.linspace(0.0, 3.0, 3000 * 256)
        grid_serial = stability_grid(0.5, c, threads=1)
        status = open("/proc/self/status").read().split("VmSize:")[1].split()[0]
        limit = int(status) * 1024 + 300 * 2**20  # room for about 35 thread stacks
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        many = gd.fit_many(t, R, model="exponential", threads=3000)
        grid_many = stability_grid(0.5, c, threads=3000)
        assert np.array_equal(many.params, serial.params, equal_nan=True)
        assert list(many.status) == list(serial.status)
        assert np.array_equal(grid_many.spectral_radius, grid_serial.spectral_radius)
        assert np.array_equal(grid_many.regime_code, grid_serial.regime_code)
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


# ---------------------------------------------------------------------------------------------
# Hangs: Ctrl-C reaches long C++ loops


def test_ctrl_c_interrupts_long_core_calls():
    """SIGINT 0.3 s into calls that take from tens of seconds to minutes: each raises
    KeyboardInterrupt within a few seconds, threaded or not, and the core works afterwards."""
    proc = run_python(
        """
        import os, signal, threading, time
        import numpy as np
        import grpo_dynamics as gd
        from grpo_dynamics import _core

        def interrupted(call):
            timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
            start = time.perf_counter()
            timer.start()
            try:
                call()
            except KeyboardInterrupt:
                return time.perf_counter() - start
            finally:
                timer.cancel()
            raise SystemExit("not interrupted: finished in %.1f s" % (time.perf_counter() - start))

        t = np.linspace(0.0, 1000.0, 400)
        rng = np.random.default_rng(1)
        R = 0.8 - 0.6 * np.exp(-t / 100) * np.cos(t / 30) + 0.01 * rng.standard_normal((40000, 400))
        n = 4000
        calls = {
            # O(D^3) scan of a delay-stable system: minutes
            "critical_delay": lambda: _core.critical_delay(0.5, 1e-7, 0.01, 10000),
            # 4000 points of D = 5000, two threads: about a minute and a half
            "stability_grid": lambda: _core.stability_grid(
                np.full(n, 0.5), np.full(n, 1e-7), np.full(n, 0.01), np.full(n, 5000.0), "delay", 2
            ),
            # 41,000 scan steps of O(D^2)
            "critical_scale": lambda: _core.critical_scale(
                0.5, 1e-4, 0.0, "delay", 2000, "unstable", 1.001
            ),
            # 40,000 oscillator fits on two threads
            "fit_many": lambda: gd.fit_many(t, R, threads=2),
        }
        for name, call in calls.items():
            print(name, round(interrupted(call), 2))
        print("after", _core.critical_delay(0.5, 0.1, 0.0, 50))
        """,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    lines = proc.stdout.split("\n")
    times = {line.split()[0]: float(line.split()[1]) for line in lines if line[:1].isalpha()}
    assert set(times) == {"critical_delay", "stability_grid", "critical_scale", "fit_many", "after"}
    for name in ("critical_delay", "stability_grid", "critical_scale", "fit_many"):
        assert times[name] < 5.0, (name, times[name])
    # the core is usable after an interrupt and matches the exact search
    assert times["after"] == critical_delay(
        Hyperparameters(lr=0.1, momentum=0.5), 1.0, max_delay=50
    )


# ---------------------------------------------------------------------------------------------
# Hangs and memory blow-ups: sizes bounded by what can finish (a ValueError naming the argument)


def _quick(call, match: str) -> str:
    start = time.perf_counter()
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert time.perf_counter() - start < 2.0
    return str(info.value)


def test_dense_delay_solves_are_capped():
    """stability() at delay 2000 took 37 s (dense (D+1)^2 eigen-solve, O(D^3))."""
    hp = Hyperparameters(lr=0.01, momentum=0.9, delay=2000)
    message = _quick(lambda: stability(hp, curvature=1.0), "delay")
    assert "1000" in message and "2000" in message
    huge = Hyperparameters(lr=1e-6, momentum=0.9, delay=50_000)  # the CLI's 24 GB reproducer
    _quick(lambda: stability(huge, curvature=1.0), "delay")
    _quick(lambda: stationary_variance(hp, curvature=1.0), "delay")
    _quick(
        lambda: _core.stability_transition_matrix(0.9, 0.01, 0.0, "delay", 50_000),
        "^delay: must be <= 1000, got 50000",
    )
    # at the cap it still works and agrees with numpy's eigenvalues of the companion matrix
    small = stability(Hyperparameters(lr=0.01, momentum=0.9, delay=60), curvature=1.0)
    reference = np.linalg.eigvals(small.transition_matrix)
    assert small.spectral_radius == pytest.approx(np.max(np.abs(reference)), rel=1e-9)


def test_searches_and_grids_are_capped_with_the_argument_named():
    hp = Hyperparameters(lr=0.01, momentum=0.9)
    message = _quick(lambda: critical_delay(hp, 1.0, max_delay=10**8), "max_delay")
    assert message.startswith("max_delay: must be <= 10000, got 100000000")
    message = _quick(lambda: critical_refresh_interval(hp, 1.0, max_interval=10**9), "max_interval")
    assert "refresh_interval" not in message.replace("max_interval", "")
    _quick(
        lambda: stability_grid(0.5, 0.1, 10**8, lag_model="delay"), "^lag_steps: must be <= 10000"
    )
    _quick(lambda: stability_grid(0.5, 0.1, 10**9), "^lag_steps: must be <= 100000000")
    # scan_ratio inside the documented (1, 2] but with 4e11 scan steps
    _quick(lambda: critical_learning_rate(hp, curvature=1, scan_ratio=1 + 1e-10), "scan_ratio")


# ---------------------------------------------------------------------------------------------
# Integers beyond int64: a short ValueError naming the argument, not pybind11's TypeError


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: gd.fit_many(np.arange(5.0), np.ones((2, 5)), max_iter=HUGE), "max_iter"),
        (lambda: gd.fit_many(np.arange(5.0), np.ones((2, 5)), threads=HUGE), "threads"),
        (lambda: gd.fit(np.arange(5.0), np.ones(5), n_starts=HUGE), "n_starts"),
        (lambda: stability_grid(0.5, 0.1, 1, threads=HUGE), "threads"),
        (
            lambda: critical_delay(Hyperparameters(lr=0.01, momentum=0.9), 1.0, max_delay=HUGE),
            "max_delay",
        ),
        (
            lambda: critical_refresh_interval(
                Hyperparameters(lr=0.01, momentum=0.9), 1.0, max_interval=HUGE
            ),
            "max_interval",
        ),
        (lambda: _core.refresh_cycle(0.5, 0.1, 0.0, HUGE), "refresh_interval"),
        (lambda: _core.stability_spectrum(0.5, 0.1, 0.0, "delay", HUGE), "delay"),
        (lambda: _core.stability_spectrum(0.5, 0.1, 0.0, "refresh", -HUGE), "refresh_interval"),
        (lambda: _core.critical_scale(0.5, 0.1, 0.0, "delay", HUGE, "unstable", 1.01), "delay"),
        (lambda: _core.trajectory_uniform(0.0, 1.0, HUGE, 0.0, 1.0, 2.0, 0.5), "n"),
    ],
)
def test_integers_beyond_int64_name_the_argument(call, name):
    with pytest.raises(ValueError, match=f"^{name}: must be") as info:
        call()
    assert len(str(info.value)) < 120
