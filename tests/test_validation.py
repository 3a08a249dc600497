"""The shared argument checks: one rule and one message format ("name: must be ..., got ...")."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from grpo_dynamics import _validation as v


def test_messages_have_one_format():
    cases = [
        (lambda: v.positive("lr", -1), "lr: must be > 0, got -1"),
        (lambda: v.positive("lr", 0.0), "lr: must be > 0, got 0.0"),
        (lambda: v.nonnegative("weight_decay", -0.5), "weight_decay: must be >= 0, got -0.5"),
        (lambda: v.finite("kappa", math.inf), "kappa: must be finite, got inf"),
        (lambda: v.finite("kappa", "1.0"), "kappa: must be a real number, got '1.0'"),
        (
            lambda: v.in_range("momentum", 1.0, 0.0, 1.0, hi_open=True),
            "momentum: must be in [0, 1), got 1.0",
        ),
        (
            lambda: v.in_range("eps_low", -0.1, 0.0, 1.0, lo_open=True, hi_open=True),
            "eps_low: must be in (0, 1), got -0.1",
        ),
        (lambda: v.in_range("x", 5, hi=2), "x: must be <= 2, got 5"),
        (lambda: v.in_range("x", 0.5, lo=0.5, lo_open=True), "x: must be > 0.5, got 0.5"),
        (
            lambda: v.integer("group_size", 1, minimum=2),
            "group_size: must be an integer >= 2, got 1",
        ),
        (lambda: v.integer("k", 11, minimum=1, maximum=10), "k: must be an integer <= 10, got 11"),
        (
            lambda: v.integer("k", 0, minimum=1, maximum=10),
            "k: must be an integer in [1, 10], got 0",
        ),
        (lambda: v.integer("steps", True), "steps: must be an integer, got True"),
        (lambda: v.integer("steps", np.True_), "steps: must be an integer, got True"),
        (lambda: v.integer("steps", 2.5), "steps: must be an integer, got 2.5"),
        (
            lambda: v.integer("seed", 2**64),
            f"seed: must be an integer <= 2**63 - 1 (int64), got {2**64}",
        ),
        (
            lambda: v.choice("kind", "foo", ("sgd", "heavy_ball", "adam", "adamw")),
            "kind: must be one of 'sgd', 'heavy_ball', 'adam', 'adamw'; got 'foo'",
        ),
        (lambda: v.flag("clip", 1), "clip: must be True or False, got 1"),
        (lambda: v.threads(0), "threads: must be a positive integer or None, got 0"),
        (lambda: v.threads(1.5), "threads: must be a positive integer or None, got 1.5"),
        (lambda: v.threads(True), "threads: must be a positive integer or None, got True"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            call()


def test_accepted_values_come_back_as_plain_python_scalars():
    assert type(v.positive("lr", np.float32(0.5))) is float
    assert v.positive("lr", np.array(2.0)) == 2.0  # 0-d arrays, as float() takes them
    value = v.integer("steps", np.int64(7), minimum=1)
    assert value == 7 and type(value) is int
    assert v.flag("clip", np.bool_(True)) is True
    assert v.threads(None) is None and v.threads(np.int32(3)) == 3
    assert v.choice("kind", "adam", ("sgd", "adam")) == "adam"
    assert v.integer("seed", 2**63 - 1, minimum=0) == 2**63 - 1


def test_bools_are_not_numbers():
    with pytest.raises(ValueError, match="lr: must be a real number"):
        v.positive("lr", True)
    with pytest.raises(ValueError, match="kind: must be one of"):
        v.choice("kind", ["sgd"], ("sgd",))  # unhashable is a ValueError too, not a TypeError


@given(
    value=st.floats(allow_nan=True, allow_infinity=True),
    lo=st.floats(-10, 10),
    width=st.floats(0, 10),
    lo_open=st.booleans(),
    hi_open=st.booleans(),
)
def test_in_range_agrees_with_the_plain_comparison(value, lo, width, lo_open, hi_open):
    hi = lo + width
    inside = (
        math.isfinite(value)
        and (value > lo if lo_open else value >= lo)
        and (value < hi if hi_open else value <= hi)
    )
    if inside:
        assert v.in_range("x", value, lo, hi, lo_open=lo_open, hi_open=hi_open) == value
    else:
        with pytest.raises(ValueError, match="^x: must be "):
            v.in_range("x", value, lo, hi, lo_open=lo_open, hi_open=hi_open)


@given(value=st.integers(-(2**70), 2**70), minimum=st.integers(-5, 5))
def test_integer_agrees_with_the_plain_comparison(value, minimum):
    if minimum <= value <= v.INT64_MAX:
        assert v.integer("n", value, minimum=minimum) == value
    else:
        with pytest.raises(ValueError, match="^n: must be an integer"):
            v.integer("n", value, minimum=minimum)


def test_interval_is_a_finite_increasing_pair():
    assert v.interval("reward_range", (0, 1)) == (0.0, 1.0)
    assert v.interval("reward_range", np.array([-1.5, 2.0])) == (-1.5, 2.0)
    for bad, rule in [
        ((1.0, 0.0), "finite with lo < hi"),
        ((0.0, math.inf), "finite with lo < hi"),
        ((0.0, 0.5, 1.0), r"\(lo, hi\)"),
        ("0-1", r"\(lo, hi\)"),
        (3.0, r"\(lo, hi\)"),
    ]:
        with pytest.raises(ValueError, match=f"^reward_range: must be {rule}"):
            v.interval("reward_range", bad)
