"""One trend verdict: compare, forecast and diagnose agree on every shared real log.

docs/diagnose.md and docs/forecast.md ("Plateau, one-sided statements") say the three use
the one trend verdict of grpo_dynamics.trend; this checks it on the real logs beside the
checkout (../shared/data/real-grpo-logs): ``compare(t, r).trend.direction``,
``forecast(run, fraction=1.0).trend`` and ``diagnose(run).progress["overall"]["direction"]``
must be equal for every single-run file that reads, all three on the same series
(``run.series("reward")``). Runs longer than MAX_POINTS are skipped to keep the test fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

import grpo_dynamics as gd

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-grpo-logs"
MAX_POINTS = 3000


def _logs() -> list[Path]:
    if not DATA.is_dir():
        return []
    return sorted(p for p in DATA.iterdir() if p.is_file() and p.suffix != ".md")


@pytest.mark.skipif(not DATA.is_dir(), reason="shared real logs not beside the checkout")
def test_one_trend_verdict_on_every_shared_log(shared_log: Callable[[str], gd.Run]) -> None:
    checked = 0
    disagree = []
    seen: set[str] = set()
    for path in _logs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                run = shared_log(path.name)  # gd.read_log, read once per session (conftest)
                t, y = run.series("reward")
            except (ValueError, KeyError):
                continue  # a file without a reward series is not a run this test is about
            if t.size < 4 or t.size > MAX_POINTS:
                continue
            by_compare = gd.compare(t, y).trend.direction
            by_forecast = gd.forecast(run, fraction=1.0).trend
            by_diagnose = gd.diagnose(run).progress["overall"]["direction"]
        checked += 1
        seen.add(str(by_compare))
        if not by_compare == by_forecast == by_diagnose:
            disagree.append((path.name, by_compare, by_forecast, by_diagnose))
    assert checked >= 20, f"only {checked} shared logs were read"
    assert not disagree, f"trend verdicts differ (compare, forecast, diagnose): {disagree}"
    # the verdict is not a constant: the corpus holds rising runs and runs without a trend
    assert {"rising", "none"} <= seen, seen
