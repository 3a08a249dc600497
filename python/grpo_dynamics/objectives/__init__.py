"""The GRPO objective family and its optimizer effects (docs/objectives.md).

One surrogate covers GRPO, Dr. GRPO, DAPO and GSPO (docs/model.md section 7). The package is
split along its seams, each layer importing only the ones above it:

- `policy`:        the two-position toy policy (`TwoPositionPolicy`);
- `specification`: `Objective`, its presets, `surrogate_value` and `surrogate_gradient`;
- `training`:      `train_two_position` (Numba kernel and its NumPy twin);
- `effects`:       `prefix_bias`, `reward_scale_invariance`, `clip_overshoot`.

The update rule is the package-wide `optimizer.Optimizer` (re-exported here with
`effective_dynamics`, as before the split).
"""

from __future__ import annotations

from ..optimizer import EffectiveDynamics, Optimizer, effective_dynamics
from .effects import (
    ClipOvershoot,
    PrefixBias,
    ScaleInvariance,
    adam_overshoot_ratio,
    clip_overshoot,
    prefix_bias,
    reward_scale_invariance,
)
from .policy import TwoPositionPolicy
from .specification import (
    OBJECTIVE_PRESETS,
    Objective,
    objective_preset,
    surrogate_gradient,
    surrogate_value,
)
from .training import TwoPositionRun, train_two_position

__all__ = [
    "Objective",
    "OBJECTIVE_PRESETS",
    "objective_preset",
    "Optimizer",
    "TwoPositionPolicy",
    "surrogate_value",
    "surrogate_gradient",
    "TwoPositionRun",
    "train_two_position",
    "PrefixBias",
    "prefix_bias",
    "ScaleInvariance",
    "reward_scale_invariance",
    "ClipOvershoot",
    "adam_overshoot_ratio",
    "clip_overshoot",
    "EffectiveDynamics",
    "effective_dynamics",
]
