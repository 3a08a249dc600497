"""Hooks into training frameworks (docs/monitor.md). Each submodule needs its framework:

- ``grpo_dynamics.integrations.trl``: ``GrpoDynamicsCallback`` for the Hugging Face
  ``transformers`` Trainer and TRL's ``GRPOTrainer`` (``pip install grpo-dynamics[trl]``).

Nothing is imported here, so ``import grpo_dynamics.integrations`` never needs a framework.
"""

from __future__ import annotations

__all__: list[str] = []
