"""The README's Python example, type-checked by .ci/run (`mypy tests/typecheck`).

Kept in step with README.md by tests/test_architecture.py. Not run by pytest: it reads a log
that only exists on a user's machine.
"""

from __future__ import annotations

import grpo_dynamics as gd


def readme_example() -> None:
    # --- README.md, "What is inside" (verbatim) ---
    run = gd.read_log("trainer_state.json")
    result = gd.fit(run.steps, run.reward)                 # oscillator: r0, r_inf, tau, mu
    print(result.params, result.stderr, result.regime)
    print(gd.compare(run.steps, run.reward).preferred)     # "constant" when there is no trend
    print(gd.diagnose(run))                                # verdict, headline, findings
    print(gd.forecast(run, fraction=0.5))                  # end level and plateau, with bands

    hp = gd.Hyperparameters(lr=1e-3, momentum=0.9, refresh_interval=4, group_size=8)
    print(gd.critical_refresh_interval(hp, curvature=3.0))  # first unstable K, exact
    # --- end of the README example ---

    # what the surface promises a type checker: the functions, not modules of the same name
    fitted: gd.FitResult = result
    comparison: gd.Comparison = gd.compare(run.steps, run.reward)
    report: gd.StabilityReport = gd.stability(hp, 3.0)
    trajectory: object = gd.trajectory(run.steps, 0.1, 0.8, 30.0, 1.0)
    print(fitted, comparison, report, trajectory)
