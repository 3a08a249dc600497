"""Reports of diagnoses: one self-contained HTML page, and a plain-text summary table.

``render_html`` draws, for each run, the reward with the fitted curve and, for each finding,
the columns behind it as inline SVG: the page needs no network and no other file, so it can be
attached to a CI run or an issue (docs/diagnose.md, "Reports"). ``summary_table`` is the
terminal view: one line per run, file names not paths, at most ``width`` characters wide.
"""

from __future__ import annotations

import html
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ._detectors import Finding
from ._diagnose import Diagnosis, _dynamics_lines
from ._forecast import Forecast, forecast

__all__ = ["render_html", "write_html", "render_markdown", "summary_table"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_SEVERITY_COLOR = {"critical": "#b00020", "warning": "#c25e00", "info": "#1f5fa8"}
_MAX_PLOT_POINTS = 800

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
max-width:1100px}
h1{font-size:22px}h2{font-size:18px;margin-top:36px;border-top:1px solid #ddd;padding-top:16px;
overflow-wrap:anywhere}
table.summary{border-collapse:collapse;font-size:13px}
table.summary td,table.summary th{border:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}
table.summary{table-layout:fixed;width:100%}
table.summary td{overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
font-weight:600;white-space:nowrap}
.critical{background:#b00020}.warning{background:#c25e00}.info{background:#1f5fa8}
.ok{background:#2e7d32}
.headline{font-size:15px;font-weight:600;margin:8px 0 12px}
.finding{border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px;margin:10px 0}
.finding h3{font-size:14px;margin:4px 0}
.finding ul{margin:4px 0 4px 18px;padding:0;font-size:12px;color:#444}
.advice{font-size:13px;margin:4px 0}
figure{margin:6px 0}figcaption{font-size:11px;color:#666}
.na{font-size:12px;color:#666}.dyn{font-size:12px;color:#333}
svg text{font-size:10px;fill:#555}
"""


def _thin(
    t: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """At most _MAX_PLOT_POINTS points: the min and max of contiguous chunks, so spikes stay."""
    if t.size <= _MAX_PLOT_POINTS:
        return t, y
    chunks = np.array_split(np.arange(t.size), _MAX_PLOT_POINTS // 2)
    idx: list[int] = []
    for c in chunks:
        lo, hi = int(c[np.argmin(y[c])]), int(c[np.argmax(y[c])])
        idx.extend(sorted({lo, hi}))
    keep = np.asarray(idx)
    return t[keep], y[keep]


def _tick(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    if abs(v) >= 1e4 or abs(v) < 1e-2:
        return f"{v:.2g}"
    return f"{v:.3g}"


def svg_plot(
    series: Sequence[tuple[str, NDArray[np.float64], NDArray[np.float64]]],
    *,
    marks: Sequence[float] = (),
    width: int = 520,
    height: int = 150,
    log_y: bool = False,
    dashed: Sequence[str] = (),
    dotted: Sequence[str] = (),
    colors: dict[str, str] | None = None,
) -> str:
    """An inline SVG line plot of (label, steps, values) series with dashed vertical marks.

    Non-finite values are skipped; series named in ``dashed`` are drawn dashed (a fit);
    series in ``dotted`` dotted (a band); ``colors`` maps labels to colours; ``log_y`` draws
    log10 of positive values (for spiky columns).
    """
    left, right, top, bottom = 52, 8, 8, 32
    height += 12  # room for the legend row
    clean: list[tuple[str, NDArray[np.float64], NDArray[np.float64]]] = []
    for label, t_in, y_in in series:
        tx = np.asarray(t_in, dtype=float)
        yx = np.asarray(y_in, dtype=float)
        keep = np.isfinite(tx) & np.isfinite(yx)
        if log_y:
            keep &= yx > 0
        tx, yx = tx[keep], yx[keep]
        if log_y:
            yx = np.log10(yx)
        if tx.size:
            thin_t, thin_y = _thin(tx, yx)
            clean.append((label, thin_t, thin_y))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    if not clean:
        parts.append(f'<text x="{left}" y="{height // 2}">no finite values</text></svg>')
        return "".join(parts)
    tmin = min(float(c[1].min()) for c in clean)
    tmax = max(float(c[1].max()) for c in clean)
    ymin = min(float(c[2].min()) for c in clean)
    ymax = max(float(c[2].max()) for c in clean)
    if tmax == tmin:
        tmax = tmin + 1.0
    if ymax == ymin:
        ymin, ymax = ymin - 0.5, ymax + 0.5
    pad = 0.05 * (ymax - ymin)
    ymin, ymax = ymin - pad, ymax + pad
    pw, ph = width - left - right, height - top - bottom

    def sx(v: float) -> float:
        return left + (v - tmin) / (tmax - tmin) * pw

    def sy(v: float) -> float:
        return top + (ymax - v) / (ymax - ymin) * ph

    parts.append(
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>'
    )
    for v in (ymin + pad, ymax - pad):
        label = _tick(10**v) if log_y else _tick(v)
        parts.append(f'<text x="{left - 4}" y="{sy(v) + 3:.1f}" text-anchor="end">{label}</text>')
    for v in (tmin, tmax):
        parts.append(
            f'<text x="{sx(v):.1f}" y="{height - 18}" text-anchor="middle">{_tick(v)}</text>'
        )
    for m in marks:
        if math.isfinite(m) and tmin <= m <= tmax:
            parts.append(
                f'<line class="mark" x1="{sx(m):.1f}" x2="{sx(m):.1f}" y1="{top}" '
                f'y2="{top + ph}" stroke="#b00020" stroke-dasharray="4 3"/>'
            )
    for k, (label, t, y) in enumerate(clean):
        color = (colors or {}).get(label, _COLORS[k % len(_COLORS)])
        points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(t, y, strict=True))
        dash = ' stroke-dasharray="6 3"' if label in dashed else ""
        dash = ' stroke-dasharray="2 3"' if label in dotted else dash
        width_px = 2 if label in dashed else 1.2
        parts.append(
            f'<polyline data-column="{html.escape(label)}" fill="none" stroke="{color}" '
            f'stroke-width="{width_px}"{dash} points="{points}"/>'
        )
    # the legend in a row under the axis, one entry per distinct label
    legend_x = float(left)
    for k, (label, _, _) in enumerate(clean):
        name = label.strip() + (" (log10)" if log_y else "")
        if k and clean[k - 1][0].strip() == label.strip():
            continue
        color = (colors or {}).get(label, _COLORS[k % len(_COLORS)])
        parts.append(
            f'<text x="{legend_x:.0f}" y="{height - 2}" style="fill:{color}">'
            f"{html.escape(name)}</text>"
        )
        legend_x += 6.0 * len(name) + 14
    parts.append("</svg>")
    return "".join(parts)


def _column(d: Diagnosis, name: str) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    run = d.run
    if run is None or name not in run.frame.columns:
        return None
    t = run.frame.index.to_numpy(dtype=float)
    y = run.frame[name].to_numpy(dtype=float)
    return t, y


def _finding_plot(d: Diagnosis, f: Finding) -> str:
    figures = []
    names = [c for c in dict.fromkeys(f.columns) if _column(d, c) is not None]
    for name in names[:4]:
        data = _column(d, name)
        if data is None:
            continue
        t, y = data
        label = d.run.original_names.get(name, name) if d.run is not None else name
        finite = y[np.isfinite(y)]
        spiky = f.code.startswith("grad") or f.code.startswith("kl")
        log_y = bool(
            spiky and finite.size and np.all(finite > 0) and finite.max() > 100 * np.median(finite)
        )
        svg = svg_plot([(label, t, y)], marks=f.steps[:10], log_y=log_y)
        if f.code == "grad_nonfinite":
            svg = svg_plot([(label, t, np.where(np.isfinite(y), y, np.nan))], marks=f.steps[:20])
        figures.append(f"<div>{svg}</div>")
    body = "".join(figures) or "<p class='na'>no plottable column</p>"
    caption = html.escape(", ".join(names) or "no column")
    return (
        f'<figure class="finding-plot" data-code="{html.escape(f.code)}">{body}'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _evidence_items(f: Finding) -> str:
    items = []
    for key, value in f.evidence.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, dict):
            text = "; ".join(f"{k}: {v}" for k, v in value.items())
        elif isinstance(value, list) and len(value) > 8:
            text = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value[:8])
            text += ", ..."
        else:
            text = str(value)
        items.append(f"<li>{html.escape(str(key))}: {html.escape(text)}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _forecast(d: Diagnosis) -> Forecast | None:
    """Where a still-moving run is heading: the ensemble forecast fitted to every point,
    extended to 1.5x the last step (docs/forecast.md)."""
    if d.run is None or d.verdict not in ("still improving", "slowing"):
        return None
    t, _ = d.run.series(d.column)
    try:
        return forecast(d.run, fraction=1.0, column=d.column, horizon=1.5 * float(t[-1]))
    except (ValueError, RuntimeError, np.linalg.LinAlgError):
        return None


def _run_section(d: Diagnosis, index: int, forecasts: bool = True) -> str:
    sev = d.worst_severity
    badge = sev or "ok"
    out = [
        f'<section class="run" id="run-{index}">',
        f"<h2>{html.escape(d.name)} <span class='badge {badge}'>{html.escape(badge)}</span></h2>",
        f"<p class='headline'>{html.escape(d.headline)}</p>",
        f"<p class='dyn'>verdict: <b>{html.escape(d.verdict)}</b>; {d.n_steps} points of "
        f"{html.escape(d.column)}; log written by {html.escape(d.framework)}</p>",
    ]
    data = _column(d, d.column)
    if data is not None:
        t, y = data
        series = [(d.column, t, y)]
        if d.fit is not None:
            grid = np.linspace(float(np.nanmin(t)), float(np.nanmax(t)), 300)
            series.append(("fit (oscillator)", grid, np.asarray(d.fit.predict(grid), float)))
        marks = [s for f in d.findings if f.rank >= 1 for s in f.steps[:1]]
        fc = _forecast(d) if forecasts else None
        caption = "reward with the fitted curve"
        if fc is not None and d.verdict == "still improving" and fc.end.upper < d.end_level:
            # a forecast below where the run already is contradicts "still improving"
            caption += "; no forecast: the projected level lies below the run's current level"
            fc = None
        if fc is not None:
            series += [
                ("forecast", fc.t, fc.mean),
                (f"{fc.level:.0%} band", fc.t, fc.lower),
                (f"{fc.level:.0%} band ", fc.t, fc.upper),
            ]
            if fc.plateau_identified and fc.plateau is not None:
                where = (
                    f"plateau {fc.plateau.estimate:.3g} [{fc.plateau.lower:.3g}, "
                    f"{fc.plateau.upper:.3g}]"
                )
            else:
                where = f"level {fc.end.estimate:.3g} [{fc.end.lower:.3g}, {fc.end.upper:.3g}]"
                if fc.plateau_bound is not None:
                    where += f", plateau {fc.plateau_bound[0]} {fc.plateau_bound[1]:.3g}"
            caption += f" and its forecast past the end: {where} ({fc.level:.0%} band)"
        band = {"forecast": "#2ca02c", f"{fc.level if fc else 0:.0%} band": "#2ca02c"}
        band[f"{fc.level if fc else 0:.0%} band "] = "#2ca02c"
        out.append(
            '<figure class="reward-plot">'
            + svg_plot(
                series,
                marks=marks,
                width=700,
                height=200,
                dashed=("fit (oscillator)", "forecast"),
                dotted=tuple(k for k in band if k != "forecast"),
                colors={"fit (oscillator)": "#d62728", **band},
            )
            + f"<figcaption>{html.escape(caption)}; dashed red lines: where findings "
            "start</figcaption></figure>"
        )
    if not d.findings:
        out.append("<p>No problems found in the logged columns.</p>")
    for f in d.findings:
        verb = "Change" if f.rank >= 1 else "Setting"
        setting = (
            f"<p class='advice'><b>{verb} {html.escape(f.setting)}</b>: {html.escape(f.advice)}</p>"
            if f.setting
            else f"<p class='advice'>{html.escape(f.advice)}</p>"
        )
        out.append(
            f'<div class="finding {f.severity}-finding" data-code="{html.escape(f.code)}">'
            f"<h3><span class='badge {f.severity}'>{f.severity}</span> "
            f"{html.escape(f.title)}</h3>{setting}{_evidence_items(f)}{_finding_plot(d, f)}</div>"
        )
    if d.not_assessable:
        na = "; ".join(f.title.removeprefix("not assessable: ") for f in d.not_assessable)
        out.append(f"<p class='na'>Not assessable from this log: {html.escape(na)}</p>")
    dyn = _dynamics_lines(d.dynamics, d.stability)
    if dyn:
        out.append("<details class='dyn'><summary>dynamics (fitted model)</summary><ul>")
        out.extend(f"<li>{html.escape(line)}</li>" for line in dyn)
        out.append("</ul></details>")
    out.append("</section>")
    return "\n".join(out)


def render_html(
    diagnoses: Diagnosis | Sequence[Diagnosis],
    *,
    title: str = "grpo-dynamics diagnosis",
    forecasts: bool = True,
) -> str:
    """One self-contained HTML page (inline CSS and SVG, no script, no external file) for one
    or many diagnoses: a summary table, then per run the headline, the reward with its fit and
    each finding with its evidence, the setting to change and a plot of its columns; for a run
    still moving (``forecasts``), the forecast of where it is heading."""
    items = [diagnoses] if isinstance(diagnoses, Diagnosis) else list(diagnoses)
    rows = []
    for i, d in enumerate(items):
        sev = d.worst_severity or "ok"
        rows.append(
            f"<tr><td><a href='#run-{i}'>{html.escape(d.name)}</a></td>"
            f"<td><span class='badge {sev}'>{sev}</span></td><td>{html.escape(d.verdict)}</td>"
            f"<td>{html.escape(d.headline)}</td></tr>"
        )
    table = (
        "<table class='summary'><colgroup><col style='width:29%'><col style='width:10%'>"
        "<col style='width:12%'><col style='width:49%'></colgroup>"
        "<tr><th>run</th><th>worst</th><th>verdict</th>"
        "<th>what happened, what to do</th></tr>" + "".join(rows) + "</table>"
    )
    sections = "\n".join(_run_section(d, i, forecasts) for i, d in enumerate(items))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{table}\n{sections}\n</body></html>\n"
    )


def write_html(
    diagnoses: Diagnosis | Sequence[Diagnosis],
    path: str | Path,
    *,
    title: str = "grpo-dynamics diagnosis",
    forecasts: bool = True,
) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    target = Path(path)
    target.write_text(render_html(diagnoses, title=title, forecasts=forecasts), encoding="utf-8")
    return target


def _cut(text: str, width: int) -> str:
    """text in at most width characters, the middle elided (file names differ at the end)."""
    if len(text) <= width:
        return text
    head = max((width - 1) // 3, 1)
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


def summary_table(diagnoses: Diagnosis | Sequence[Diagnosis], *, width: int = 100) -> str:
    """Plain-text table for a terminal: per run one line with the file name, the worst
    severity and the verdict, then the headline wrapped and indented; no line is longer than
    ``width`` characters (>= 60)."""
    if not isinstance(width, int) or width < 60:
        raise ValueError(f"width: must be an integer >= 60, got {width!r}")
    items = [diagnoses] if isinstance(diagnoses, Diagnosis) else list(diagnoses)
    name_w = width - 1 - 8 - 1 - 15
    lines = [f"{'run':<{name_w}} {'worst':<8} {'verdict':<15}", "-" * width]
    for d in items:
        lines.append(
            f"{_cut(d.name, name_w):<{name_w}} {d.worst_severity or 'ok':<8} "
            f"{_cut(d.verdict, 15):<15}".rstrip()
        )
        lines.extend(
            textwrap.wrap(d.headline, width, initial_indent="    ", subsequent_indent="    ")
        )
    return "\n".join(lines)


def render_markdown(diagnoses: Diagnosis | Sequence[Diagnosis]) -> str:
    """Markdown for pasting into an issue: a table of runs (worst severity, verdict, headline),
    then each run's :meth:`Diagnosis.to_markdown`."""
    items = [diagnoses] if isinstance(diagnoses, Diagnosis) else list(diagnoses)
    out = ["| run | worst | verdict | what happened, what to do |", "|---|---|---|---|"]
    for d in items:
        cells = [d.name, d.worst_severity or "ok", d.verdict, d.headline]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    out.append("")
    out.extend(d.to_markdown() for d in items)
    return "\n".join(out)
