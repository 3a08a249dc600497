"""Console logs: TRL's printed dicts, or 'step N ... Reward: x' lines (docs/io.md)."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from ._aliases import _COLUMN_ALIASES, _SUMMARY_KEYS, _normalise
from ._errors import LogFormatError
from ._records import _Parsed, _to_float

_TRL_DICT = re.compile(r"\{'[^{}\n]*\}")
_PAIR = re.compile(
    r"(?<![\w/])([A-Za-z_][\w/]*(?: [A-Za-z_][\w/]*)*)\s*[:=]\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)(?![\w.])",
    flags=re.IGNORECASE,
)
_EPOCH_STEP = re.compile(r"Epoch\s*:?\s*\[(\d+)/(\d+)\]\s*\((\d+)/(\d+)\)", re.IGNORECASE)
_STEP_WORD = re.compile(
    r"\b(?:global_step|step|iter|iteration)\b\s*[:=#]?\s*\[?(\d+)", re.IGNORECASE
)
_CONSOLE_META = {
    "batch_size": re.compile(r"Total train batch size[^=\n]*=\s*([\d,]+)"),
    "max_steps": re.compile(r"Total optimization steps\s*=\s*([\d,]+)"),
    "steps_per_epoch": re.compile(r"Num update steps per epoch\s*=\s*([\d,]+)"),
    "gradient_accumulation_steps": re.compile(r"Gradient Accumulation steps\s*=\s*([\d,]+)"),
    "group_size": re.compile(r"\bnum_generations\s*[=:]\s*(\d+)"),
    "model_name": re.compile(
        r"\bmodel(?:_name(?:_or_path)?)?\s*[=:]\s*([A-Za-z0-9][\w.\-]*/[\w.\-]+)"
    ),
}


def _is_reward_key(name: str) -> bool:
    return _normalise(name) in _COLUMN_ALIASES["reward"]


def _read_console(path: str, text: str) -> _Parsed:
    metadata: dict[str, Any] = {}
    for key, pattern in _CONSOLE_META.items():
        match = pattern.search(text)
        if match:
            value = match.group(1)
            metadata[key] = value if key == "model_name" else int(value.replace(",", ""))
    lines = [line.rstrip("\r") for line in text.split("\n")]  # numbered as editors do
    dict_records: list[tuple[str, int | None, dict[str, float]]] = []
    summary: dict[str, float] = {}
    for number, line in enumerate(lines, start=1):
        if "{'" not in line:
            continue
        for match in _TRL_DICT.finditer(line):
            try:
                entry = ast.literal_eval(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if not isinstance(entry, dict):
                continue
            values = {
                str(k): v for k, v in ((k, _to_float(v)) for k, v in entry.items()) if v is not None
            }
            if any(_is_reward_key(k) for k in values):
                step = values.pop("step", None)
                dict_records.append((f"line {number}", None if step is None else int(step), values))
            elif set(values) & _SUMMARY_KEYS:
                summary.update(values)
    parsed = _Parsed([], metadata=metadata)
    if summary:
        metadata["train_summary"] = summary
    if dict_records:
        parsed.records = dict_records
        parsed.notes.append("console log of TRL metric dicts")
        if all(step is None for _, step, _ in dict_records):
            _steps_from_epochs(parsed, metadata)
        return parsed
    # 'Epoch:[1/1](12/9751), Reward: -1.2, KL_ref: 0.01, ...' or 'step 12 | reward=0.4 ...'
    for number, line in enumerate(lines, start=1):
        if "reward" not in line.lower():  # cheap filter before the pair regex
            continue
        pairs = [(k.strip(), v) for k, v in _PAIR.findall(line)]
        if not any(_is_reward_key(k) for k, _ in pairs):
            continue
        step = None
        epoch_match = _EPOCH_STEP.search(line)
        if epoch_match:
            epoch, _, inner, per_epoch = (int(g) for g in epoch_match.groups())
            step = (epoch - 1) * per_epoch + inner
        values = {}
        for key, value in pairs:
            if _normalise(key) in ("step", "global_step", "iter", "iteration"):
                step = int(float(value)) if step is None else step
                continue
            values[key] = float(value)
        if step is None:
            word = _STEP_WORD.search(line)
            step = int(word.group(1)) if word else None
        snippet = line.strip()[:48]
        parsed.records.append((f"line {number} ({snippet!r})", step, values))
    if not parsed.records:
        raise LogFormatError(
            path,
            None,
            "no metric lines found: expected TRL dicts ({'loss': ..., 'reward': ...}) or lines"
            " with 'step N' and 'reward: x'",
        )
    parsed.notes.append("console log of 'key: value' metric lines")
    return parsed


def _steps_from_epochs(parsed: _Parsed, metadata: Mapping[str, Any]) -> None:
    """TRL console dicts carry no step: recover it from the epoch fraction when possible."""
    per_epoch = metadata.get("steps_per_epoch")
    epochs = [values.get("epoch") for _, _, values in parsed.records]
    if per_epoch and all(e is not None for e in epochs):
        steps = [round(float(e) * per_epoch) for e in epochs]  # type: ignore[arg-type]
        # the epoch is printed to 4 significant digits: accept only an exact, increasing fit
        if all(b > a for a, b in zip(steps, steps[1:], strict=False)) and steps[0] >= 1:
            parsed.records = [(w, s, v) for (w, _, v), s in zip(parsed.records, steps, strict=True)]
            parsed.step_source = "step = round(epoch x update steps per epoch)"
            return
    parsed.records = [(w, i + 1, v) for i, (w, _, v) in enumerate(parsed.records)]
    parsed.step_source = "steps numbered 1..n in order of appearance"
    parsed.warnings.append(
        f"no step in the log: {parsed.step_source} (assumes one log line per step)"
    )
