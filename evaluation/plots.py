"""A `Report`'s figures: accuracy under each shift and reliability diagrams with bin counts.

Figures are built on `matplotlib.figure.Figure` (no pyplot): no global backend switch, no figure
left open in the caller's session. Legends sit outside the axes so they never hide data.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np

from evaluation.report import STUDY_SHIFTS, row_interval
from evaluation.report_markdown import cell

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from evaluation.report import Report

PANEL = (3.8, 3.0)  # inches per panel
MAX_COLUMNS = 4
MARKERS = ("o", "s", "^", "D", "v", "P")
BAND_ALPHA = 0.2
NEUTRAL_LEVEL = {"brightness": 1.0, "blur": 0.0}  # the level at which the shift is the identity
STUDY_AXES = {
    "brightness": ("Brightness: accuracy by factor", "brightness factor (1 = clean images)"),
    "blur": ("Gaussian blur: accuracy by σ", "blur σ in pixels (0 = clean images)"),
}


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _colors():
    from matplotlib import colormaps

    return colormaps["tab10"].colors


def _label(name: str) -> str:
    return name.replace("_", " ")


def _legend_below(ax, ncol: int = 2) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol, fontsize=8, frameon=False)


def _clean_reference(ax, clean: dict) -> None:
    """The clean accuracy as a dashed line (with its interval as a grey band), labelled twice:
    in the legend and at the right edge of the axes, outside the data."""
    acc = clean["accuracy"]
    ax.axhline(acc, color="0.35", ls="--", lw=1.2, label=f"clean ({acc:.3f})", zorder=1)
    interval = row_interval(clean, "accuracy")
    if interval is not None:
        ax.axhspan(*interval, color="0.5", alpha=BAND_ALPHA, lw=0, zorder=0)
    ax.annotate(
        f"clean\n{acc:.3f}",
        xy=(1.0, acc),
        xycoords=("axes fraction", "data"),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        fontsize=8,
        color="0.35",
    )


def _curve(ax, rows: list[dict], label: str, color, marker: str) -> None:
    """Accuracy by level, with the rows' 95% intervals as a band when they carry them."""
    levels = [r["level"] for r in rows]
    ax.plot(
        levels, [r["accuracy"] for r in rows], marker=marker, color=color, lw=1.6, ms=5, label=label
    )
    intervals = [row_interval(r, "accuracy") for r in rows]
    if all(i is not None for i in intervals):
        lo, hi = zip(*intervals, strict=True)
        ax.fill_between(levels, lo, hi, color=color, alpha=BAND_ALPHA, lw=0)


def _study_panel(ax, report: Report, shift: str) -> None:
    """One study shift by level; the clean row joins the curve at the level that changes nothing
    (brightness factor 1, blur σ 0), drawn hollow."""
    clean = report.clean()
    neutral = NEUTRAL_LEVEL[shift]
    rows = sorted([*report.rows(shift), {**clean, "level": neutral}], key=lambda r: r["level"])
    title, xlabel = STUDY_AXES[shift]
    color = _colors()[0]
    _clean_reference(ax, clean)
    _curve(ax, rows, shift, color, MARKERS[0])
    ax.plot([neutral], [clean["accuracy"]], MARKERS[0], color=color, mfc="white", ms=6, zorder=3)
    ax.set_xticks([r["level"] for r in rows], [f"{r['level']:g}" for r in rows])
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 1.0))


def _family_panel(ax, report: Report, family: str, names: list[str]) -> None:
    _clean_reference(ax, report.clean())
    for i, name in enumerate(names):
        colors = _colors()
        _curve(
            ax,
            report.rows(name, "imagenet-c"),
            _label(name),
            colors[i % len(colors)],
            MARKERS[i % len(MARKERS)],
        )
    ax.set_title(f"{family.capitalize()} corruptions", fontsize=10)
    ax.set_ylim(0, 1.02)


def _mean_panel(ax, report: Report) -> None:
    errors = report.corruption_errors()
    severities = [r["level"] for r in report.rows(next(iter(errors)), "imagenet-c")]
    _clean_reference(ax, report.clean())
    mean_acc = 1 - np.mean(list(errors.values()), axis=0)
    ax.plot(
        severities,
        mean_acc,
        marker="o",
        color="k",
        lw=1.6,
        ms=5,
        label=f"mean of {len(errors)} corruptions",
    )
    ax.set_title("All corruptions: mean accuracy", fontsize=10)
    ax.set_ylim(0, 1.02)


def _severity_axis(ax, report: Report) -> None:
    severities = sorted({r["level"] for r in report.results if r["suite"] == "imagenet-c"})
    ax.set_xticks(severities, [str(s) for s in severities])
    ax.set_xlabel("severity")


def _balanced(panels: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Panels in rows of at most MAX_COLUMNS, as even as possible (5 -> 3 + 2)."""
    if not panels:
        return []
    per_row = math.ceil(len(panels) / math.ceil(len(panels) / MAX_COLUMNS))
    return [panels[i : i + per_row] for i in range(0, len(panels), per_row)]


def accuracy_figure(report: Report) -> Figure:
    """Accuracy under the study's shifts (one panel each, first row) and the corruptions (their
    mean, then one panel per family: noise, blur, weather, digital, extra), with the clean
    accuracy as a labelled reference line and 95% intervals as bands when the rows carry them."""
    from matplotlib.figure import Figure

    # panels are (kind, name): the corruption family "blur" is not the study's blur
    study = [("study", s) for s in STUDY_SHIFTS if report.rows(s)]
    families = report.corruption_families() if report.corruption_errors() else {}
    corruption_panels = [("mean", "")] if families else []
    corruption_panels += [("family", f) for f in families]
    if study:
        layout = [study + corruption_panels[:1], *_balanced(corruption_panels[1:])]
    else:
        layout = _balanced(corruption_panels)
    layout = layout or [[]]
    columns = max(max(len(row) for row in layout), 1)
    fig = Figure(figsize=(PANEL[0] * columns, PANEL[1] * len(layout) + 1.0), layout="constrained")
    grid = fig.add_gridspec(len(layout), columns)
    for i, row in enumerate(layout):
        for j, (kind, name) in enumerate(row):
            ax = fig.add_subplot(grid[i, j])
            if kind == "study":
                _study_panel(ax, report, name)
            elif kind == "mean":
                _mean_panel(ax, report)
                _severity_axis(ax, report)
            else:
                _family_panel(ax, report, name, families[name])
                _severity_axis(ax, report)
            ax.set_ylabel("accuracy")
            ax.grid(alpha=0.3)
            _legend_below(ax)
    title = _wrapped(
        f"Accuracy under shifts: {report.meta.get('model', '?')} on {report.dataset_label()}"
    )
    if any(row_interval(r, "accuracy") for r in report.results):
        title += "\nshaded: 95% confidence intervals"
    fig.suptitle(title, fontsize=11)
    return fig


def _wrapped(title: str, width: int = 90) -> str:
    """A long title (a data set's full path) on several lines instead of off the figure."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width, break_long_words=True, break_on_hyphens=False))


# ---------------------------------------------------------------------------- reliability
def _strongest(rows: list[dict], shift: str) -> dict:
    """The level farthest from no change: the largest σ, the factor farthest from 1 (in log)."""
    if shift == "brightness":
        return max(rows, key=lambda r: abs(math.log(r["level"])) if r["level"] > 0 else math.inf)
    return max(rows, key=lambda r: r["level"])


def _pooled(rows: list[dict]) -> dict:
    """One reliability table from several rows' bins (counts add; means weight by counts)."""
    counts = np.sum([r["reliability"]["count"] for r in rows], axis=0)
    safe = np.maximum(counts, 1)

    def mean(key):
        return (
            np.sum(
                [np.multiply(r["reliability"][key], r["reliability"]["count"]) for r in rows],
                axis=0,
            )
            / safe
        )

    return {
        "count": counts.tolist(),
        "accuracy": mean("accuracy"),
        "confidence": mean("confidence"),
    }


def reliability_panels(report: Report) -> list[tuple[str, dict]]:
    """(title, reliability bins) for clean data, each study shift's strongest level, and all
    corruptions at their highest severity pooled; rows without bins are left out."""
    panels = []
    clean = report.clean()
    if "reliability" in clean:
        rms = _rms_line(clean)
        panels.append((f"clean{rms}", clean["reliability"]))
    for shift in STUDY_SHIFTS:
        rows = [r for r in report.rows(shift) if "reliability" in r]
        if rows:
            r = _strongest(rows, shift)
            name = "brightness factor" if shift == "brightness" else "blur σ"
            panels.append((f"{name} {r['level']:g}{_rms_line(r)}", r["reliability"]))
    corrupted = [r for r in report.results if r["suite"] == "imagenet-c" and "reliability" in r]
    if corrupted:
        top = max(r["level"] for r in corrupted)
        rows = [r for r in corrupted if r["level"] == top]
        panels.append((f"{len(rows)} corruptions, severity {top}, pooled", _pooled(rows)))
    return panels


def _rms_line(row: dict) -> str:
    """A panel title's second line: the row's RMS calibration error (± as in report.md)."""
    return f"\nRMS calibration error {cell(row, 'rms_calibration_error')}"


def reliability_figure(report: Report) -> Figure:
    """Reliability diagrams (accuracy per confidence bin against the diagonal) with, under each,
    how many examples each bin holds (bars with the count written on them)."""
    from matplotlib.figure import Figure

    panels = reliability_panels(report)
    fig = Figure(figsize=(3.6 * max(len(panels), 1), 5.4), layout="constrained")
    if not panels:
        fig.text(0.5, 0.5, "no reliability bins in this report", ha="center")
        return fig
    grid = fig.add_gridspec(2, len(panels), height_ratios=(3, 1.3))
    for j, (title, rel) in enumerate(panels):
        top = fig.add_subplot(grid[0, j])
        bottom = fig.add_subplot(grid[1, j], sharex=top)
        _reliability(top, rel)
        top.set_title(title, fontsize=9)
        _bin_counts(bottom, rel)
        if j == 0:
            top.set_ylabel("accuracy in bin")
            bottom.set_ylabel("examples")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    fig.suptitle(
        _wrapped(f"Reliability: {report.meta.get('model', '?')} on {report.dataset_label()}"),
        fontsize=11,
    )
    return fig


def _bin_geometry(rel: dict) -> tuple[np.ndarray, float, np.ndarray]:
    b = len(rel["accuracy"])
    counts = np.asarray(rel.get("count", np.zeros(b)), np.int64)
    return (np.arange(b) + 0.5) / b, 1 / b, counts


def _reliability(ax, rel: dict) -> None:
    centres, width, counts = _bin_geometry(rel)
    filled = counts > 0 if "count" in rel else np.ones(len(centres), bool)
    ax.bar(
        centres[filled],
        np.asarray(rel["accuracy"])[filled],
        width=width,
        color="C0",
        edgecolor="k",
        lw=0.6,
        alpha=0.8,
        label="accuracy in bin",
    )
    if "confidence" in rel:
        ax.plot(
            centres[filled],
            np.asarray(rel["confidence"])[filled],
            "_",
            color="C3",
            ms=12,
            mew=2,
            label="mean confidence in bin",
        )
    ax.plot([0, 1], [0, 1], ls="--", color="0.3", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.tick_params(labelbottom=False)
    ax.grid(alpha=0.3)


def _bin_counts(ax, rel: dict) -> None:
    centres, width, counts = _bin_geometry(rel)
    ax.set_xlabel("confidence (top-class probability)")
    if "count" not in rel:
        ax.text(
            0.5, 0.5, "bin counts not recorded", ha="center", va="center", transform=ax.transAxes
        )
        return
    ax.bar(centres, counts, width=width, color="0.6", edgecolor="k", lw=0.6)
    for x, c in zip(centres, counts, strict=True):
        ax.annotate(
            str(c),
            (x, c),
            xytext=(0, 1),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_ylim(0, max(counts.max(), 1) * 1.35)
