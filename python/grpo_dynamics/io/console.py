"""Console logs (docs/io.md, "Console logs").

Three kinds of line, tried in this order: verl's ``step:12 - actor/entropy:0.61 - ...`` metric
lines, TRL's printed dicts (``{'loss': ..., 'reward': ...}``), and free ``key: value`` lines
(``Epoch:[1/1](12/9751), Reward: -1.2``, ``step 12 | reward=0.4``, ``rewards: tensor([...])``).
ANSI colour codes are removed first.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._aliases import _COLUMN_ALIASES, _STEP_NAMES, _SUMMARY_KEYS, _normalise
from ._errors import LogFormatError
from ._records import _Parsed, _to_float

_TRL_DICT = re.compile(r"\{'[^{}\n]*\}")
_PAIR = re.compile(
    r"(?<![\w/])([A-Za-z_][\w/]*(?: [A-Za-z_][\w/]*)*)\s*[:=]\s*"
    r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)(?![\w.])",
    flags=re.IGNORECASE,
)
_EPOCH_STEP = re.compile(r"Epoch\s*:?\s*\[(\d+)/(\d+)\]\s*\((\d+)/(\d+)\)", re.IGNORECASE)
# a tqdm bar's counter '| 12/30 [' (OpenRLHF prints its metrics as the bar's postfix), and an
# outer 'Episode [2/20]' / 'Train epoch [1/3]' whose bar restarts at 1 each time
_TQDM_COUNT = re.compile(r"\|\s*(\d+)/(\d+)\s*\[")
_TQDM_OUTER = re.compile(r"\b(?:episode|epoch)\s*\[(\d+)/(\d+)\]", re.IGNORECASE)
_STEP_WORD = re.compile(
    r"\b(?:global_step|step|iter|iteration)\b\s*[:=#]?\s*\[?(\d+)", re.IGNORECASE
)
_CONSOLE_META = {
    "batch_size": re.compile(r"Total train batch size[^=\n]*=\s*([\d,]+)"),
    "max_steps": re.compile(r"Total optimization steps\s*=\s*([\d,]+)"),
    "steps_per_epoch": re.compile(r"Num update steps per epoch\s*=\s*([\d,]+)"),
    "gradient_accumulation_steps": re.compile(r"Gradient Accumulation steps\s*=\s*([\d,]+)"),
    # a literal start (no leading \b) lets the regex engine skip ahead: ~50x faster on MBs
    # TRL/Unsloth 'num_generations = 8', verl's printed config "'rollout_n': 8" or Hydra
    # override 'actor_rollout_ref.rollout.n=8', OpenRLHF '--n_samples_per_prompt 8'
    "group_size": re.compile(
        r"(?:num_generations|rollout_n|rollout\.n|n_samples_per_prompt)['\"]?(?:\s*[=:]\s*|\s+)(\d+)"
    ),
    "model_name": re.compile(
        r"model(?:_name(?:_or_path)?)?\s*[=:]\s*([A-Za-z0-9][\w.\-]*/[\w.\-]+)"
    ),
}


# ESC [ ... letter: terminal colours (verl's Ray workers print '\x1b[36m(TaskRunner pid=1)\x1b[0m')
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# verl's console metric line: 'step:12 - name:value - name:value ...'
_VERL_LINE = re.compile(r"(?:^|[\s)])step:\s*(\d+) - (.*)$")
# a value wrapped in a constructor call: 'np.float64(0.41)', 'tensor(0.5)', 'np.int64(3)'
_WRAPPED = re.compile(r"^\s*[A-Za-z_][\w.]*\((.*)\)\s*$")
# bare nan/inf in a printed dict, which ast.literal_eval rejects ({'grad_norm': nan})
_BARE_NONFINITE = re.compile(r"(?<=[:\s\[,])(-?)(nan|inf)(?=\s*[,}\]])")
# a printed list of per-completion rewards: 'rewards: tensor([-1., 0.5, ...])' or '[...]'
_REWARD_LIST = re.compile(r"\brewards?\s*[:=]\s*(?:[A-Za-z_][\w.]*\()?\[([^\[\]]*)\]", re.I)


def _console_step(value: float | None) -> int | None:
    """A step printed in a console line, or None when it is not a finite integer."""
    if value is None or not math.isfinite(value) or value != round(value):
        return None
    return int(value)


def _tqdm_step(line: str) -> int | None:
    """The step of a tqdm progress-bar line: its counter, continued across an outer
    episode/epoch counter (bar n of episode e with N per episode is step (e - 1) N + n)."""
    count = _TQDM_COUNT.search(line)
    if count is None:
        return None
    inner, per_bar = int(count.group(1)), int(count.group(2))
    outer = _TQDM_OUTER.search(line[: count.start()])
    if outer is None:
        return inner
    return (int(outer.group(1)) - 1) * per_bar + inner


def _unwrap(text: str) -> str:
    match = _WRAPPED.match(text)
    while match:
        text = match.group(1)
        match = _WRAPPED.match(text)
    return text.strip()


def _read_verl(lines: list[str]) -> _Parsed:
    """verl's 'step:N - name:value - ...' lines -> one record per line (step from the line)."""
    parsed = _Parsed([])
    skipped: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if "step:" not in line:  # cheap filter before the regex
            continue
        match = _VERL_LINE.search(line)
        if match is None:
            continue
        values: dict[str, float] = {}
        for item in match.group(2).split(" - "):
            key, sep, raw = item.partition(":")
            key = key.strip()
            if not sep or not key:
                continue
            number_value = _to_float(_unwrap(raw))
            if number_value is None:
                skipped[key] = skipped.get(key, 0) + 1
            elif _normalise(key) not in _STEP_NAMES:  # training/global_step repeats the step
                values[key] = number_value
        if values:
            parsed.records.append((f"line {number}", int(match.group(1)), values))
    if skipped:
        parsed.notes.append(
            "non-numeric fields skipped: " + ", ".join(f"{k} ({n}x)" for k, n in skipped.items())
        )
    return parsed


def _literal_dict(text: str) -> object:
    """A printed Python dict, with bare nan/inf (as Python prints them) read as floats."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return ast.literal_eval(_BARE_NONFINITE.sub(r"'\1\2'", text))


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _is_reward_key(name: str) -> bool:
    return _normalise(name) in _COLUMN_ALIASES["reward"]


def _read_console(path: str, text: str) -> _Parsed:
    metadata: dict[str, Any] = {}
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    for key, pattern in _CONSOLE_META.items():
        match = next(
            (m for m in pattern.finditer(text) if m.start() == 0 or not _word(text[m.start() - 1])),
            None,
        )
        if match:
            value = match.group(1)
            metadata[key] = value if key == "model_name" else int(value.replace(",", ""))
    lines = [line.rstrip("\r") for line in text.split("\n")]  # numbered as editors do
    verl = _read_verl(lines)
    if verl.records:
        verl.metadata = metadata
        verl.notes.insert(0, "verl console log ('step:N - name:value' lines)")
        return verl
    dict_records: list[tuple[str, int | None, dict[str, float]]] = []
    summary: dict[str, float] = {}
    for number, line in enumerate(lines, start=1):
        if "{'" not in line:
            continue
        for match in _TRL_DICT.finditer(line):
            try:
                entry = _literal_dict(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if not isinstance(entry, dict):
                continue
            values = {
                str(k): v for k, v in ((k, _to_float(v)) for k, v in entry.items()) if v is not None
            }
            if any(_is_reward_key(k) for k in values):
                step = _console_step(values.pop("step", None))
                dict_records.append((f"line {number}", step, values))
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
            listed = _REWARD_LIST.search(line)
            if listed is None:
                continue
            rewards = [_to_float(_unwrap(v)) for v in listed.group(1).split(",") if v.strip()]
            if not rewards or any(r is None for r in rewards):
                continue
            group = np.asarray(rewards, dtype=float)
            # one step's per-completion rewards: their mean (and unbiased std, as torch prints)
            pairs = [(k, v) for k, v in pairs if not _is_reward_key(k)]
            pairs += [("reward", repr(float(group.mean())))]
            if group.size > 1:
                pairs += [("reward_std", repr(float(group.std(ddof=1))))]
        step = None
        epoch_match = _EPOCH_STEP.search(line)
        if epoch_match:
            epoch, _, inner, per_epoch = (int(g) for g in epoch_match.groups())
            step = (epoch - 1) * per_epoch + inner
        values = {}
        for key, value in pairs:
            if _normalise(key) in ("step", "global_step", "iter", "iteration"):
                step = _console_step(float(value)) if step is None else step
                continue
            values[key] = float(value)
        if step is None:
            step = _tqdm_step(line)
        if step is None:
            word = _STEP_WORD.search(line)
            step = int(word.group(1)) if word else None
        snippet = line.strip()[:48]
        parsed.records.append((f"line {number} ({snippet!r})", step, values))
    if not parsed.records:
        raise LogFormatError(
            path,
            None,
            "no metric lines found: expected verl 'step:N - name:value' lines, TRL dicts"
            " ({'loss': ..., 'reward': ...}) or lines with 'step N' and 'reward: x'",
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
