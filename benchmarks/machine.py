"""The machine a benchmark ran on, recorded beside its results (one description for all)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numba
import numpy as np
import scipy

import grpo_dynamics


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def compiler() -> str:
    try:
        return subprocess.run(
            ["c++", "--version"], capture_output=True, text=True, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "unknown compiler"


def describe_machine(**extra: str) -> dict[str, object]:
    """nproc, CPU model, load average (the machine may be shared), interpreter and library
    versions, compiler; ``extra`` adds benchmark-specific versions."""
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.get_num_threads(),
        "grpo_dynamics": grpo_dynamics.__version__,
        "compiler": compiler(),
        "platform": platform.platform(),
        **extra,
    }


def machine_line(info: dict[str, object]) -> str:
    """One Markdown sentence describing ``info``."""
    load = ", ".join(f"{x:.2f}" for x in info["load_average"])  # type: ignore[attr-defined]
    return (
        f"Machine: {info['nproc']} cores ({info['cpu']}), load average {load} at start; "
        f"Python {info['python']}, NumPy {info['numpy']}, SciPy {info['scipy']}, "
        f"Numba {info['numba']} ({info['numba_threads']} threads), {info['compiler']}."
    )
