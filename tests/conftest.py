"""Shared test configuration.

Under CI (the CI environment variable is set) hypothesis draws its examples from a fixed
seed, so a run is reproducible and a failure seen there can be replayed exactly; locally
every run explores new examples.

In a one-process run (``-n 0``; the default runs two pytest-xdist workers, which keep both
cores busy) Numba's on-disk cache is warmed in a background process (``grpo-dynamics warm-up``, the
package's own ``gd.warm_up``): a fresh checkout or install (CI)
has no cached kernels, and compiling them (about 20 s of CPU: the bandit simulator 11 s,
the two-position trainer 6 s, the Monte Carlo stiffness probe 3 s) would otherwise sit on
the suite's critical path. The background process compiles them on the second core while
the first tests (which need no kernel) run; a test that needs a kernel early asks for the
``numba_cache`` fixture, which waits until that kernel is on disk instead of compiling it a
second time in parallel. With a warm cache the background process only loads the kernels
(about 1 s). It never changes a result: the kernels are the package's own, loaded from the
cache Numba writes next to the package (the same cache a user's first call writes).
GRPO_DYNAMICS_NO_WARMUP=1 turns it off.
"""

from __future__ import annotations

import functools
import os
import select
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

if TYPE_CHECKING:
    from grpo_dynamics.io import Run

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# The real logs the project tests against live in shared/ beside the checkout (CI lays a copy
# there). Tests that read them skip when they are missing, which must never happen silently
# in CI: a CI run without them fails here instead of passing on fewer tests.
SHARED_LOGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-grpo-logs"


# ------------------------------------------------------------------------------------------
# Numba cache warm-up (see the module docstring)

# the stages of `grpo-dynamics warm-up` (gd.WARM_UP_STAGES), which the background process runs
# and which prints "stage: seconds" per stage
WARM_STAGES = ("simulate", "train", "probe")


class NumbaCacheWarmer:
    """The background warm-up process; ``wait(stage)`` blocks until that stage is done."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.done: set[str] = set()

    def start(self, parallel: bool = False) -> None:
        if os.environ.get("GRPO_DYNAMICS_NO_WARMUP") or os.environ.get("LD_PRELOAD"):
            return  # off on request, and under the sanitizer job (.ci/sanitize preloads ASan)
        if parallel:
            # pytest-xdist: both cores run tests and each worker compiles what it first needs;
            # a warm-up beside them only competes for the cores (measured: 52 s -> 59 s)
            return
        if os.name != "posix":
            return  # wait() selects on the pipe, which needs a POSIX system
        self.process = subprocess.Popen(
            [sys.executable, "-m", "grpo_dynamics.cli", "warm-up"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    def wait(self, stage: str, timeout: float = 120.0) -> None:
        """Return once ``stage`` is warm (or the warm-up has ended or is off)."""
        assert stage in WARM_STAGES, stage
        process = self.process
        if process is None or process.stdout is None:
            return
        deadline = time.monotonic() + timeout
        while stage not in self.done:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([process.stdout], [], [], left)[0]:
                return  # too slow: the test compiles what it needs itself
            line = process.stdout.readline()
            if not line:
                return  # the warm-up ended (finished or failed)
            self.done.add(line.split(":", 1)[0].strip())

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()  # a short run of a few tests does not wait for the whole warm-up
        if process is not None:
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


WARMER = NumbaCacheWarmer()


@functools.cache
def _read_shared_log(name: str) -> Run | ValueError:
    import grpo_dynamics as gd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return gd.read_log(SHARED_LOGS / name)
        except ValueError as exc:  # LogFormatError included
            return exc


def read_shared_log(name: str) -> Run:
    """``read_log`` of a shared real log, its warnings silenced, read once per session (the
    same Run object for every test that asks: tests must not modify it). Raises what
    read_log raised."""
    result = _read_shared_log(name)
    if isinstance(result, ValueError):
        raise result
    return result


@pytest.fixture(scope="session")
def shared_log() -> Callable[[str], Run]:
    """read_shared_log: the shared real logs read once for test_consistency, test_diagnose."""
    return read_shared_log


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI") and not SHARED_LOGS.is_dir():
        raise pytest.UsageError(f"CI run without the shared real logs at {SHARED_LOGS}")
    workers = getattr(session.config.option, "numprocesses", None)
    WARMER.start(parallel=bool(workers) or bool(os.environ.get("PYTEST_XDIST_WORKER")))


def pytest_sessionfinish(session: pytest.Session) -> None:
    WARMER.stop()


@pytest.fixture(scope="session")
def numba_cache() -> Iterator[NumbaCacheWarmer]:
    """The warm-up; ``numba_cache.wait("simulate")`` before the first kernel call of a test."""
    yield WARMER
