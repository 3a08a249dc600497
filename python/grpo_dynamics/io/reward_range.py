"""The reward's possible range, when the log's own numbers prove it (docs/io.md, "Reward range").

A logged step's reward is a mean over N samples. When every sample is 0 or 1 (a correctness
reward, an accuracy), the logged standard deviation of that step is fixed by its mean:
``std^2 = p (1 - p) N / (N - 1)`` (the unbiased std of N zeros and ones; ``N / (N - 1)``
becomes 1 for a population std). A log that carries both numbers at every step shows whether
the reward is 0/1-valued without trusting any name:

- the ratio ``std^2 / (p (1 - p))`` is one constant ``c`` in [1, 2] at every step with
  0 < p < 1 (c = N / (N - 1)), to the precision the log was written with, and every step with
  std 0 has p = 0 or 1;
- the mean covers a range of p (at least 0.05), because a two-valued reward {0, b} with b != 1
  also gives a constant ratio while p does not move.

Two places in a log can say so: the reward column with its own std (``reward`` /
``reward_std`` when that std is over all samples of the step, as ShibukiZero-style JSONL logs
write ``std_reward``; TRL's ``reward_std`` is the mean of the per-group stds and does not pass)
or TRL's per-function columns ``rewards/<name>/mean`` and ``rewards/<name>/std`` (over all
completions): when every function passes and the reward is their sum at every step, the range
is [0, number of functions]. Anything else: no range (``None``); the caller can still give one.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from .run import Run

__all__ = ["RewardRange", "infer_reward_range"]

MIN_STEPS = 5  # steps with 0 < p < 1 needed before a log can prove a 0/1 reward
MIN_SPREAD = 0.05  # the step means must cover this much of [0, 1]
_REL_TOL = 1e-4  # on the ratio, beside the rounding of the logged numbers


class RewardRange(NamedTuple):
    """The reward's possible (low, high) and, in words, what in the log shows it."""

    low: float
    high: float
    reason: str


def _decimals(values: np.ndarray) -> int | None:
    """Number of decimals every value was rounded to (None: full precision, above 12)."""
    for d in range(1, 13):
        scaled = values * 10.0**d
        # integral up to the float error of the scaling (a full-precision value is not)
        slack = 1e-6 + 8.0 * np.finfo(float).eps * np.abs(scaled)
        if np.all(np.abs(scaled - np.round(scaled)) <= slack):
            return d
    return None


def _binary(mean: np.ndarray, std: np.ndarray) -> tuple[int, float] | None:
    """(steps tested, c = N / (N - 1)) when (mean, std) per step are those of 0/1 samples."""
    ok = np.isfinite(mean) & np.isfinite(std)
    p, s = mean[ok], std[ok]
    if p.size == 0:
        return None
    d_p, d_s = _decimals(p), _decimals(s)
    h_p = 0.0 if d_p is None else 0.5 * 10.0**-d_p
    h_s = 0.0 if d_s is None else 0.5 * 10.0**-d_s
    if np.any(p < -h_p - 1e-12) or np.any(p > 1.0 + h_p + 1e-12) or np.any(s < 0):
        return None
    flat = s <= h_s
    if np.any(flat & (np.minimum(np.abs(p), np.abs(1.0 - p)) > h_p + 1e-12)):
        return None  # no spread at a mean strictly inside (0, 1): not a 0/1 reward
    var01 = p * (1.0 - p)
    inner = ~flat & (var01 > 4.0 * h_p + 1e-12)
    if int(inner.sum()) < MIN_STEPS or float(np.ptp(p[inner])) < MIN_SPREAD:
        return None
    pi, si = p[inner], s[inner]
    ratio = si**2 / (pi * (1.0 - pi))
    c = float(np.median(ratio))
    # the logged numbers' rounding moves the ratio by up to 2 h_s / s + h_p |1 - 2p| / (p (1-p))
    tol = _REL_TOL + 2.0 * h_s / si + h_p * np.abs(1.0 - 2.0 * pi) / (pi * (1.0 - pi))
    if not (1.0 - _REL_TOL <= c <= 2.0 + _REL_TOL) or np.any(np.abs(ratio / c - 1.0) > tol):
        return None
    return int(inner.sum()), c


def _samples(c: float) -> str:
    return "a population std" if c - 1.0 < 1e-3 else f"N = {c / (c - 1.0):.0f} samples per step"


def infer_reward_range(
    run: Run, column: str = "reward", *, upto: float | None = None
) -> RewardRange | None:
    """The possible range of ``column`` when the log proves it (see the module docstring);
    else None. Only steps up to ``upto`` (inclusive) are read, so a forecast from a prefix
    uses nothing from after it."""
    frame = run.frame
    if upto is not None:
        frame = frame[frame.index.to_numpy(dtype=float) <= float(upto)]
    if column not in frame.columns or frame.empty:
        return None
    mean = frame[column].to_numpy(dtype=float)
    own_std = f"{column}_std"
    if own_std in frame.columns:
        found = _binary(mean, frame[own_std].to_numpy(dtype=float))
        if found is not None:
            name = run.original_names.get(own_std, own_std)
            return RewardRange(
                0.0,
                1.0,
                f"'{name}' is the std of 0/1 samples at each of {found[0]} steps "
                f"({_samples(found[1])})",
            )
    if column != "reward":
        return None
    funcs = sorted(
        m.group(1)
        for c in frame.columns
        if (m := re.fullmatch(r"(rewards/[^/]+)/mean", str(c))) and f"{m.group(1)}/std" in frame
    )
    if not funcs:
        return None
    for f in funcs:
        pair = (frame[f"{f}/{stat}"].to_numpy(dtype=float) for stat in ("mean", "std"))
        if _binary(*pair) is None:
            return None
    total = frame[[f"{f}/mean" for f in funcs]].to_numpy(dtype=float).sum(axis=1)
    both = np.isfinite(total) & np.isfinite(mean)
    if both.sum() < MIN_STEPS or not np.allclose(mean[both], total[both], rtol=1e-4, atol=1e-6):
        return None
    k = len(funcs)
    what = "the per-function rewards " + ", ".join(f.split("/", 1)[1] for f in funcs)
    return RewardRange(
        0.0,
        float(k),
        f"{what} are 0/1 at every step (their means and stds) and the reward is their "
        + ("value" if k == 1 else "sum"),
    )
