"""Reading and writing GRPO training logs (docs/io.md; the data of docs/model.md section 10).

``read_log(path)`` turns the logs people actually have into a :class:`Run`: a table indexed by
optimizer step with canonical column names (``reward``, ``reward_std``, ``kl``, ...), the
original names beside them, the hyperparameters the log carries, and a list of everything that
was done to the data on the way in. Supported: TRL ``trainer_state.json`` and TRL-like JSON
written by scripts, CSV and JSONL exports (W&B style), TensorBoard event files (read with a
small self-contained decoder of the record framing and the few protobuf fields scalars use)
and console logs (verl's ``step:N - name:value`` lines, TRL's printed dicts, ``Reward: x``
lines); verl's and OpenRLHF's metric names are aliases of the canonical ones. ``write_log``
writes a Run back in TRL, CSV, JSONL or TensorBoard form so that every format round-trips
exactly.

Layout (one module per format; docs/io.md, "Layout"): ``run`` (Run, as_run), ``read`` (read_log,
read_logs: detection and dispatch), ``write`` (write_log), the readers ``json_log``,
``jsonl_log``, ``csv_log``, ``console`` and ``tensorboard`` (the self-contained event codec),
``reward_range`` (the range a log's own numbers prove: infer_reward_range), and the shared
pieces ``_aliases`` (names), ``_records`` (records and numbers), ``_columns``
(canonical names) and ``_normalize`` (records -> Run). A reader module is imported only when a
file of its format is read or written.
"""

from __future__ import annotations

from ._aliases import CANONICAL_COLUMNS
from ._errors import GrpoLogWarning, LogFormatError
from .read import read_log, read_logs
from .reward_range import RewardRange, infer_reward_range
from .run import Run, as_run
from .write import write_log

__all__ = [
    "CANONICAL_COLUMNS",
    "GrpoLogWarning",
    "LogFormatError",
    "RewardRange",
    "Run",
    "as_run",
    "infer_reward_range",
    "read_log",
    "read_logs",
    "write_log",
]


def __dir__() -> list[str]:
    return list(__all__)
