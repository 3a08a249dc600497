"""The reward's possible range, when the log's own numbers show it (docs/io.md, "Reward range").

A logged step's reward is a mean over N samples. When every sample is 0 or 1 (a correctness
reward, an accuracy), the logged standard deviation of that step is fixed by its mean:
``std^2 = p (1 - p) N / (N - 1)`` (the unbiased std of N zeros and ones; ``N / (N - 1)``
becomes 1 for a population std). Samples in [0, 1] that are not all 0 or 1 have a smaller
std, and samples outside [0, 1] (a reward {0, b} with b != 1, a bonus on top of a 0/1 score)
give a ratio ``std^2 / (p (1 - p))`` that moves with p. So a log that carries both numbers at
every step shows, without trusting any name, that the samples it summarises are 0/1:

- the ratio is one constant ``c`` in [1, 2] (c = N / (N - 1)) at every step whose mean is far
  enough from 0 and 1 for the log's precision to resolve it to 0.1 % (at least ``MIN_STEPS``
  such steps, their means covering ``MIN_SPREAD`` of [0, 1], because {0, b} with b near 1 also
  gives a near-constant ratio at a fixed mean);
- at every step, also those near 0 or 1: no more spread than 0/1 samples can have
  (``std^2 <= 2 p (1 - p)``), and std 0 only at p = 0 or 1;
- when c pins N down (N <= 64), every step's mean is k / N for an integer k.

The precision is the log's: a log whose numbers were written at full precision is tested at
full precision (1e-4 on the ratio), a log rounded to d decimals with that rounding's slack.
This shows what the logged samples were, to the log's precision; a reward whose function
changes later in the run is not covered (``upto`` reads only the steps a forecast uses).

Two places in a log can say so: the reward column with its own std (``reward`` /
``reward_std`` when that std is over all samples of the step, as ShibukiZero-style JSONL logs
write ``std_reward``, or TRL versions that log the batch std; a mean of per-group stds does not
pass) or TRL's per-function columns ``rewards/<name>/mean`` and ``rewards/<name>/std`` (over all
completions): when every function passes and the reward is their sum at every step, the range
is [0, number of functions]. Anything else: no range (``None``); the caller can still give one.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from .run import Run

__all__ = ["RewardRange", "infer_reward_range"]

MIN_STEPS = 5  # steps whose ratio the log resolves, needed before it can show a 0/1 reward
MIN_SPREAD = 0.05  # the means of those steps must cover this much of [0, 1]
_REL_TOL = 1e-4  # on the ratio, beside the rounding of the logged numbers
_MAX_ROUNDING = 1e-3  # a step whose rounding moves the ratio by more says nothing about it
_MAX_PINNED_N = 64  # up to this N, c = N / (N - 1) pins N and every mean must be k / N


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


def _precision(*columns: np.ndarray) -> float:
    """Half a unit of the last decimal the log's numbers were written with (0: full
    precision). One log, one format: a column at full precision shows none was rounded."""
    places = [_decimals(c[np.isfinite(c)]) for c in columns]
    if any(d is None for d in places):
        return 0.0
    return 0.5 * 10.0 ** -max(d for d in places if d is not None)


def _binary(mean: np.ndarray, std: np.ndarray, h: float) -> tuple[int, float] | None:
    """(steps tested, c = N / (N - 1)) when (mean, std) per step are those of 0/1 samples,
    written to within ``h`` (half a unit of their last decimal; 0 at full precision)."""
    ok = np.isfinite(mean) & np.isfinite(std)
    p, s = mean[ok], std[ok]
    if p.size == 0:
        return None
    if np.any(s < 0):
        return None
    var01 = p * (1.0 - p)
    # every step: no more spread than 0/1 samples can have (std^2 <= p (1 - p) N / (N - 1) <=
    # 2 p (1 - p)); a mean outside [0, 1] has none to spare (p (1 - p) < 0), so it fails here
    # unless its std is 0, which the next check refuses away from 0 and 1
    if np.any(np.maximum(s - h, 0.0) ** 2 > 2.0 * (var01 + 2.0 * h) + 1e-12):
        return None
    flat = s <= h
    if np.any(flat & (np.minimum(np.abs(p), np.abs(1.0 - p)) > h + 1e-12)):
        return None  # no spread at a mean strictly inside (0, 1): not a 0/1 reward
    with np.errstate(divide="ignore", invalid="ignore"):
        # how far the rounding of p and s can move the ratio at each step
        slack = 2.0 * h / s + h * np.abs(1.0 - 2.0 * p) / var01
    told = ~flat & (var01 > 0) & (slack <= _MAX_ROUNDING)
    if int(told.sum()) < MIN_STEPS or float(np.ptp(p[told])) < MIN_SPREAD:
        return None
    pt = p[told]
    ratio = s[told] ** 2 / (pt * (1.0 - pt))
    tol = _REL_TOL + slack[told]
    c = float(np.median(ratio))
    if not (1.0 - _REL_TOL <= c <= 2.0 + _REL_TOL) or np.any(np.abs(ratio / c - 1.0) > tol):
        return None
    # N = c / (c - 1): when c pins N down, each step's mean is k / N for an integer k
    dc = c * float(np.max(tol))
    if c - dc > 1.0:
        n_lo, n_hi = (c + dc) / (c + dc - 1.0), (c - dc) / (c - dc - 1.0)
        cands = np.arange(max(2, int(np.floor(n_lo))), int(np.ceil(n_hi)) + 1)
        if 0 < cands.size and cands[-1] <= _MAX_PINNED_N:
            k = np.outer(cands, p)
            whole = np.abs(k - np.round(k)) <= cands[:, None] * (h + 1e-7)
            if not np.any(np.all(whole, axis=1)):
                return None
    return int(told.sum()), c


def _samples(c: float) -> str:
    if c - 1.0 < 1e-3:  # N / (N - 1) no longer tells N apart from a population std
        return "N >= 1000 samples per step, or a population std"
    return f"N = {c / (c - 1.0):.0f} samples per step"


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
        std = frame[own_std].to_numpy(dtype=float)
        found = _binary(mean, std, _precision(mean, std))
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
    means = frame[[f"{f}/mean" for f in funcs]].to_numpy(dtype=float)
    stds = frame[[f"{f}/std" for f in funcs]].to_numpy(dtype=float)
    h = _precision(mean, means.ravel(), stds.ravel())
    for i in range(len(funcs)):
        if _binary(means[:, i], stds[:, i], h) is None:
            return None
    total = means.sum(axis=1)
    both = np.isfinite(total) & np.isfinite(mean)
    # the reward is the sum of the functions' means, to the rounding of every term
    slack = (len(funcs) + 1) * h + 1e-6 + 1e-4 * np.abs(mean[both])
    if both.sum() < MIN_STEPS or np.any(np.abs(mean[both] - total[both]) > slack):
        return None
    k = len(funcs)
    what = "the per-function rewards " + ", ".join(f.split("/", 1)[1] for f in funcs)
    return RewardRange(
        0.0,
        float(k),
        f"{what} are 0/1 at every step (their means and stds) and the reward is their "
        + ("value" if k == 1 else "sum"),
    )
