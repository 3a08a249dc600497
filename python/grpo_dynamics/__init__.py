"""grpo-dynamics: a closed-form, compiled model of GRPO training dynamics.

The model (docs/model.md) treats the mean training reward as a noisy damped oscillator:
momentum supplies inertia, off-policy lag erodes damping, the group size sets the noise
temperature. Each concept lives in one module; this package re-exports their public names.
"""

from __future__ import annotations

from . import diagnose as _diagnose_module
from . import distributed as _distributed_module
from . import fit as _fit_module
from . import forecast as _forecast_module
from . import io as _io_module
from . import joint as _joint_module
from . import objectives as _objectives_module
from . import simulate as _simulate_module
from . import stability as _stability_module
from . import sweep as _sweep_module
from . import trajectory as _trajectory_module

__version__ = "0.1.0"

_modules = (
    _trajectory_module,
    _fit_module,
    _distributed_module,
    _joint_module,
    _stability_module,
    _simulate_module,
    _objectives_module,
    _io_module,
    _forecast_module,
    _diagnose_module,
    _sweep_module,
)
__all__ = ["__version__"]
for _module in _modules:
    globals().update({name: getattr(_module, name) for name in _module.__all__})
    __all__ += _module.__all__
del _module, _modules
