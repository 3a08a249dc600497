"""Shared test configuration.

Under CI (the CI environment variable is set) hypothesis draws its examples from a fixed
seed, so a run is reproducible and a failure seen there can be replayed exactly; locally
every run explores new examples.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# The real logs the project tests against live in shared/ beside the checkout (CI lays a copy
# there). Tests that read them skip when they are missing, which must never happen silently
# in CI: a CI run without them fails here instead of passing on fewer tests.
SHARED_LOGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-grpo-logs"


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI") and not SHARED_LOGS.is_dir():
        raise pytest.UsageError(f"CI run without the shared real logs at {SHARED_LOGS}")
