"""The one optimizer: its rules, the compiled step against its NumPy twin, and closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_dynamics.optimizer import (
    OPTIMIZER_KINDS,
    Optimizer,
    OptimizerState,
    effective_dynamics,
    numba_step,
    numpy_step,
)


def _run_numba(
    optimizer: Optimizer, theta0: np.ndarray, grads: np.ndarray, reset_every: int = 0
) -> np.ndarray:
    kind, hyper = optimizer.kernel_arguments()
    theta = theta0.copy()
    buf, exp_avg, exp_avg_sq = (np.zeros_like(theta) for _ in range(3))
    step = 0
    path = []
    for t, grad in enumerate(grads):
        if reset_every and t % reset_every == 0:
            step = 0
            buf[:], exp_avg[:], exp_avg_sq[:] = 0.0, 0.0, 0.0
        step = numba_step(theta, grad.copy(), buf, exp_avg, exp_avg_sq, step, kind, hyper)
        path.append(theta.copy())
    return np.array(path)


def _run_numpy(
    optimizer: Optimizer, theta0: np.ndarray, grads: np.ndarray, reset_every: int = 0
) -> np.ndarray:
    theta = theta0.copy()
    state = OptimizerState.zeros(theta.shape)
    path = []
    for t, grad in enumerate(grads):
        if reset_every and t % reset_every == 0:
            state = OptimizerState.zeros(theta.shape)
        numpy_step(optimizer, theta, grad, state)
        path.append(theta.copy())
    return np.array(path)


optimizers_st = st.one_of(
    st.builds(
        Optimizer,
        kind=st.just("sgd"),
        lr=st.floats(1e-3, 1.0),
        weight_decay=st.sampled_from([0.0, 0.1]),
        max_grad_norm=st.sampled_from([None, 0.5]),
    ),
    st.builds(
        Optimizer,
        kind=st.just("heavy_ball"),
        lr=st.floats(1e-3, 1.0),
        momentum=st.sampled_from([0.0, 0.5, 0.9]),
        dampening=st.sampled_from([0.0, 0.3]),
        weight_decay=st.sampled_from([0.0, 0.1]),
        max_grad_norm=st.sampled_from([None, 0.5]),
    ),
    st.builds(
        Optimizer,
        kind=st.sampled_from(["adam", "adamw"]),
        lr=st.floats(1e-3, 0.1),
        beta1=st.sampled_from([0.0, 0.9]),
        beta2=st.sampled_from([0.9, 0.999]),
        eps=st.sampled_from([0.0, 1e-8, 1e-2]),
        weight_decay=st.sampled_from([0.0, 0.5]),
        max_grad_norm=st.sampled_from([None, 0.5]),
    ),
)


@settings(max_examples=60, deadline=None)
@given(optimizer=optimizers_st, seed=st.integers(0, 2**32 - 1), reset_every=st.sampled_from([0, 3]))
def test_numba_step_equals_its_numpy_twin(optimizer, seed, reset_every):
    rng = np.random.default_rng(seed)
    theta0 = rng.normal(size=4)
    grads = rng.normal(size=(12, 4))
    grads[5] = 0.0  # an all-zero gradient (Adam with eps = 0 must not divide 0/0)
    fast = _run_numba(optimizer, theta0, grads, reset_every)
    slow = _run_numpy(optimizer, theta0, grads, reset_every)
    np.testing.assert_allclose(fast, slow, rtol=1e-13, atol=1e-15)


def test_numpy_twin_is_vectorised_over_replicas():
    rng = np.random.default_rng(1)
    optimizer = Optimizer("heavy_ball", lr=0.1, momentum=0.9, dampening=0.2, max_grad_norm=0.7)
    theta0 = rng.normal(size=(3, 5))
    grads = rng.normal(size=(8, 3, 5))
    together = _run_numpy(optimizer, theta0, grads)
    for r in range(3):
        np.testing.assert_allclose(
            together[:, r], _run_numba(optimizer, theta0[r], grads[:, r]), rtol=1e-13
        )


def test_heavy_ball_matches_the_closed_form_for_a_constant_gradient():
    # torch SGD: buf_1 = g, buf_t = m buf + (1 - d) g  =>  buf_t = m^(t-1) g + (1 - d) g
    # (1 - m^(t-1)) / (1 - m); theta_T = theta_0 - lr sum_t buf_t
    lr, m, d, g, steps = 0.1, 0.8, 0.3, np.array([0.5, -2.0]), 20
    path = _run_numba(
        Optimizer("heavy_ball", lr=lr, momentum=m, dampening=d), np.zeros(2), np.tile(g, (steps, 1))
    )
    t = np.arange(1, steps + 1)[:, None]
    buf = m ** (t - 1) * g + (1 - d) * g * (1 - m ** (t - 1)) / (1 - m)
    np.testing.assert_allclose(path, -lr * np.cumsum(buf, axis=0), rtol=1e-12)


def test_adam_and_adamw_match_closed_forms_for_a_constant_gradient():
    # bias correction makes m_hat = g and v_hat = g^2 exactly: each step is lr g / (|g| + eps)
    lr, eps, wd, g, steps = 0.01, 1e-3, 0.5, np.array([0.2, -3.0]), 15
    adam = _run_numba(Optimizer("adam", lr=lr, eps=eps), np.ones(2), np.tile(g, (steps, 1)))
    t = np.arange(1, steps + 1)[:, None]
    np.testing.assert_allclose(adam, 1.0 - t * lr * g / (np.abs(g) + eps), rtol=1e-12)
    # AdamW: theta_t = a theta_{t-1} - u with a = 1 - lr wd, u = lr g / (|g| + eps)
    adamw = _run_numba(
        Optimizer("adamw", lr=lr, eps=eps, weight_decay=wd), np.ones(2), np.tile(g, (steps, 1))
    )
    a, u = 1 - lr * wd, lr * g / (np.abs(g) + eps)
    np.testing.assert_allclose(adamw, a**t - u * (1 - a**t) / (1 - a), rtol=1e-12)


def test_clipping_rescales_to_the_norm_and_heavy_ball_without_momentum_is_sgd():
    g = np.array([3.0, 4.0])  # norm 5
    clipped = _run_numba(Optimizer("sgd", lr=1.0, max_grad_norm=1.0), np.zeros(2), g[None])
    np.testing.assert_allclose(clipped[0], -g / (5 + 1e-6), rtol=1e-15)  # torch's 1e-6
    rng = np.random.default_rng(3)
    grads = rng.normal(size=(10, 3))
    sgd = _run_numba(Optimizer("sgd", lr=0.3, weight_decay=0.1), np.ones(3), grads)
    # momentum 0: plain SGD whatever the dampening (as torch.optim.SGD)
    plain = _run_numba(
        Optimizer("heavy_ball", lr=0.3, dampening=0.5, weight_decay=0.1), np.ones(3), grads
    )
    np.testing.assert_array_equal(plain, sgd)
    assert (
        effective_dynamics(
            Optimizer("heavy_ball", lr=0.3, dampening=0.5), kappa_lag=1.0
        ).eta_effective
        == 0.3
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"kind": "rmsprop"},
            "kind: must be one of 'sgd', 'heavy_ball', 'adam', 'adamw'; got 'rmsprop'",
        ),
        ({"kind": "sgd", "lr": -1}, "lr: must be > 0, got -1"),
        ({"kind": "heavy_ball", "momentum": 1.0}, "momentum: must be in [0, 1), got 1.0"),
        (
            {"kind": "heavy_ball", "momentum": 0.5, "dampening": 1.0},
            "dampening: must be in [0, 1), got 1.0",
        ),
        ({"kind": "sgd", "momentum": 0.9}, "momentum: must be 0 for kind='sgd'"),
        ({"kind": "adam", "momentum": 0.9}, "momentum: must be 0 for kind='adam'"),
        ({"kind": "adam", "dampening": 0.1}, "dampening: must be 0 for kind='adam'"),
        ({"kind": "adamw", "lr": 0.5, "weight_decay": 2.0}, "weight_decay: must satisfy"),
        ({"kind": "adam", "max_grad_norm": 0.0}, "max_grad_norm: must be > 0, got 0.0"),
        ({"kind": "adam", "reset_state": 1}, "reset_state: must be True or False, got 1"),
    ],
)
def test_invalid_optimizers_name_the_field_in_the_one_format(kwargs, message):
    with pytest.raises(ValueError) as info:
        Optimizer(**kwargs)
    assert str(info.value).startswith(message)


def test_kinds_are_named_once_and_values_are_normalised():
    assert OPTIMIZER_KINDS == ("sgd", "heavy_ball", "adam", "adamw")
    opt = Optimizer("adam", lr=np.float32(0.5), beta2=np.float64(0.9))
    assert type(opt.lr) is float and type(opt.beta2) is float
    assert opt == Optimizer("adam", lr=0.5, beta2=0.9) and hash(opt) == hash(
        Optimizer("adam", lr=0.5, beta2=0.9)
    )


# ---------------------------------------------------------------- one rule set everywhere
def _message(factory) -> str | None:
    try:
        factory()
    except ValueError as error:
        return str(error)
    return None


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"kind": "heavy_ball", "lr": -1.0, "momentum": 0.5}, "lr"),
        ({"kind": "heavy_ball", "lr": 0.1, "momentum": 1.0}, "momentum"),
        ({"kind": "heavy_ball", "lr": 0.1, "momentum": 0.5, "dampening": 1.0}, "dampening"),
        ({"kind": "sgd", "lr": 0.1, "momentum": 0.5}, "momentum"),
        ({"kind": "adam", "lr": 0.1, "momentum": 0.9, "dampening": 0.2}, "dampening"),
        ({"kind": "adamw", "lr": 0.5, "momentum": 0.9, "weight_decay": 2.0}, "weight_decay"),
        ({"kind": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": -1.0}, "weight_decay"),
        ({"kind": "rmsprop", "lr": 0.1, "momentum": 0.0}, None),
    ],
)
def test_bandit_config_and_hyperparameters_follow_the_optimizers_rules(settings, field):
    from grpo_dynamics._simulate import BanditConfig
    from grpo_dynamics._stability import Hyperparameters

    kind, rest = settings["kind"], {k: v for k, v in settings.items() if k != "kind"}
    adam = kind in ("adam", "adamw")
    as_optimizer = dict(rest, kind=kind)
    if adam:  # the configs' momentum is Adam's beta1
        as_optimizer["beta1"] = as_optimizer.pop("momentum")
    messages = [
        _message(lambda: Optimizer(**as_optimizer)),
        _message(lambda: BanditConfig(optimizer=kind, **rest)),
        _message(lambda: Hyperparameters(optimizer=kind, **rest)),
    ]
    assert all(message is not None for message in messages)
    if field is None:  # the kind itself: each names its own field, same list of kinds
        assert {m.split(":")[0] for m in messages} == {"kind", "optimizer"}
        assert len({m.split(":", 1)[1] for m in messages}) == 1
    else:
        assert len(set(messages)) == 1 and messages[0].startswith(f"{field}: must ")


def test_heavy_ball_without_momentum_and_group_size_rules_agree_everywhere():
    from grpo_dynamics._simulate import BanditConfig
    from grpo_dynamics._stability import Hyperparameters
    from grpo_dynamics.objectives import Objective, TwoPositionPolicy, train_two_position

    # accepted by all three, and all three read it as plain SGD
    spec = Optimizer("heavy_ball", lr=0.1, dampening=0.5)
    bandit = BanditConfig(optimizer="heavy_ball", lr=0.1, momentum=0.0, dampening=0.5)
    hp = Hyperparameters(lr=0.1, momentum=0.0, dampening=0.5)
    assert bandit.to_optimizer() == spec == hp.to_optimizer()
    assert hp.effective_lr == 0.1 and hp.effective_momentum == 0.0
    # a group needs two members wherever one is formed
    policy = TwoPositionPolicy(lengths=(1, 2), success_prob=(0.5, 0.5))
    messages = {
        _message(lambda: BanditConfig(group_size=1)),
        _message(lambda: Hyperparameters(lr=0.1, momentum=0.5, group_size=1)),
        _message(lambda: train_two_position(policy, Objective(), spec, group_size=1, n_steps=1)),
    }
    assert messages == {"group_size: must be an integer >= 2, got 1"}
