"""report.md: a `Report`'s numbers as tables a person can read.

Metrics carry plain names and their direction ("higher is better" / "lower is better"). 95%
intervals (the rows' "ci95") are shown two ways, one per metric, so a column never mixes them:

- accuracy and error: `0.873 ± 0.008`, ± the larger of the two distances from the estimate to the
  interval's ends (near-symmetric intervals; the larger side never understates the uncertainty);
- calibration errors: `0.010 [0.001, 0.067]`, the interval's ends: their bootstrap intervals are
  skewed (the error is >= 0 and resampling noise inflates it), may even lie above the estimate,
  and a ± would suggest negative errors.

report.json keeps every end. Averages over levels carry no interval.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from evaluation.report import STUDY_SHIFTS, row_interval

if TYPE_CHECKING:
    from evaluation.report import Report

DIGITS = 3


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric's plain name, whether higher values are better, and a detail template."""

    name: str
    higher_is_better: bool
    detail: str = ""  # str.format template filled from settings (consistency's)
    interval_as_ends: bool = False  # show a 95% interval as [lo, hi] instead of ± (module doc)

    @property
    def header(self) -> str:
        return self.described({})

    def described(self, settings: dict) -> str:
        """Name, the detail when `settings` fill it, and the direction."""
        try:
            detail = self.detail.format(**settings)
        except KeyError:  # settings not recorded: the plain name alone
            detail = ""
        better = "higher" if self.higher_is_better else "lower"
        return f"{self.name}{detail} ({better} is better)"


METRICS = {
    "accuracy": Metric("Accuracy", True),
    "error": Metric("Error", False),
    "rms_calibration_error": Metric("RMS calibration error", False, interval_as_ends=True),
    "expected_calibration_error": Metric(
        "Expected calibration error, ECE", False, interval_as_ends=True
    ),
    "nll": Metric("Negative log-likelihood, NLL", False),
}
SUMMARY_METRICS = ("accuracy", "rms_calibration_error")
LEVEL_METRICS = ("accuracy", "rms_calibration_error", "expected_calibration_error", "nll")
# shift -> (section title, level column)
STUDY_TABLES = {
    "brightness": ("Brightness by factor", "Brightness factor (1 = unchanged)"),
    "blur": ("Gaussian blur by σ", "Blur σ (pixels)"),
}
# consistency key -> plain description; {..} fields come from the consistency settings.
CONSISTENCY = {
    "shift_consistency": Metric(
        "Shift consistency: same top-1 class under two random shifts",
        True,
        " of up to {max_shift_fraction:.1%} of the image side",
    ),
    "p_top1_change": Metric(
        "Probability that the top-1 class changes between neighbouring 1-pixel diagonal shifts",
        False,
        " ({translation_steps} steps)",
    ),
    "mean_abs_change": Metric(
        "Mean absolute change of the top-class probability between neighbouring 1-pixel shifts",
        False,
    ),
    "flip_probability_noise": Metric(
        "Flip probability: top-1 class differs from the clean prediction under Gaussian noise",
        False,
        " of σ {noise_sigma} on the 0–1 pixel scale ({noise_frames} noisy copies)",
    ),
}


def number(value) -> str:
    """A value at DIGITS decimals; None / NaN as a dash."""
    return "—" if value is None or not np.isfinite(value) else f"{value:.{DIGITS}f}"


def with_interval(value, interval: tuple[float, float] | None, as_ends: bool = False) -> str:
    """`value ± larger side`, or `value [lo, hi]` with `as_ends`, or the value alone."""
    if interval is None or value is None or not np.isfinite(value):
        return number(value)
    lo, hi = interval
    if as_ends:
        return f"{number(value)} [{number(lo)}, {number(hi)}]"
    return f"{number(value)} ± {number(max(value - lo, hi - value))}"


def cell(row: dict, key: str) -> str:
    """A row's metric with its interval, in the metric's style, when the row carries one."""
    as_ends = key in METRICS and METRICS[key].interval_as_ends
    return with_interval(row.get(key), row_interval(row, key), as_ends)


def _x100(value) -> str:
    """A CE-type ratio x100 at one decimal; None / NaN (a baseline that lost nothing) as a dash."""
    return "—" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def table(header: list[str], body: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in body]


def section(title: str, header: list[str], body: list[list[str]]) -> list[str]:
    """A `## title` heading and its table, preceded by a blank line."""
    return ["", f"## {title}", "", *table(header, body)]


def _levels(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _intro(report: Report) -> list[str]:
    meta, clean = report.meta, report.clean()
    n = meta.get("num_examples") or clean["n"]
    size = meta.get("image_size")
    facts = [f"{n} examples"]
    if isinstance(size, list | tuple):
        facts.append(f"{size[0]}×{size[1]} px images")
    elif size is not None:
        facts.append(f"{size} px images")
    if meta.get("suites"):
        facts.append(f"suites {', '.join(meta['suites'])}")
    if meta.get("seed") is not None:
        facts.append(f"seed {meta['seed']}")
    lines = [
        "# Robustness report",
        "",
        f"Model `{meta.get('model', '?')}` on data set `{report.dataset_label()}`: "
        + "; ".join(facts)
        + ".",
    ]
    if any("ci95" in r for r in report.results):
        reps = meta.get("bootstrap")
        how = f" ({reps} Poisson bootstrap replicates)" if reps else " (bootstrap)"
        lines += [
            "",
            f"95% confidence intervals{how}: accuracy and error as ± the larger distance from "
            "the estimate to the interval's ends; calibration errors as [lower end, upper end], "
            "since their intervals are skewed. report.json has every end; averages have none.",
        ]
    return lines


def _summary(report: Report) -> list[str]:
    clean = report.clean()
    columns = [("Clean", lambda key: cell(clean, key))]
    for shift in STUDY_SHIFTS:
        rows = report.rows(shift)
        if rows:
            name = "Brightness average, factors" if shift == "brightness" else "Blur average, σ"
            columns.append(
                (
                    f"{name} {_levels(r['level'] for r in rows)}",
                    lambda key, s=shift: number(report.shift_average(s, key)),
                )
            )
    corrupted = [r for r in report.results if r["suite"] == "imagenet-c"]
    if corrupted:
        severities = len({r["level"] for r in corrupted})
        conditions = f"{len(report.corruption_errors())} corruptions × {severities} severities"
        columns.append(
            (
                f"Corruptions average, {conditions}",
                lambda key: number(float(np.mean([r[key] for r in corrupted]))),
            )
        )
    body = [[METRICS[k].header] + [fmt(k) for _, fmt in columns] for k in SUMMARY_METRICS]
    return section("Summary", ["Metric", *(c for c, _ in columns)], body)


def _study_levels(report: Report) -> list[str]:
    lines = []
    for shift in STUDY_SHIFTS:
        rows = report.rows(shift)
        if not rows:
            continue
        title, level = STUDY_TABLES[shift]
        body = [[f"{r['level']:g}"] + [cell(r, k) for k in LEVEL_METRICS] for r in rows]
        header = [level] + [METRICS[k].header for k in LEVEL_METRICS]
        lines += section(title, header, body)
    return lines


def _corruptions(report: Report, baseline: dict | None) -> list[str]:
    overview = report.corruption_overview(baseline)
    if overview is None:
        return []
    errors = report.corruption_errors()
    families = {n: f for f, names in report.corruption_families().items() for n in names}
    severities = [r["level"] for r in report.rows(next(iter(errors)), "imagenet-c")]
    lines = ["", "## Common corruptions (ImageNet-C)", ""]
    if overview["baseline"] is None:
        lines.append(overview["note"] + " Shown: unnormalised errors.")
    else:
        lines.append(
            f"mCE {_x100(overview['mce'])}, relative mCE {_x100(overview['relative_mce'])} "
            f"over {len(overview['names'])} corruptions, {overview['note']} (×100, lower is "
            "better; 100 = as robust as the baseline)."
        )
    lines += [
        "",
        f"Mean error over {len(errors)} corruptions and their severities: "
        f"{number(overview['mean_error_overall'])} (lower is better).",
        "",
        "Error (1 − accuracy, lower is better) of each corruption at each severity:",
        "",
    ]
    header = ["Corruption", "Family"] + [f"Error at severity {s}" for s in severities]
    header.append(METRICS["error"].header.replace("Error", "Mean error", 1))
    if overview["baseline"] is not None:
        header += ["CE ×100 (lower is better)", "Relative CE ×100 (lower is better)"]
    body = []
    for name in errors:
        row = [name, families[name]]
        row += [cell(r, "error") for r in report.rows(name, "imagenet-c")]
        row.append(number(overview["mean_error"][name]))
        if overview["baseline"] is not None:
            ce, rel = overview["ce"].get(name), overview["relative_ce"].get(name)
            row += [_x100(ce), _x100(rel)]
        body.append(row)
    return lines + table(header, body)


def _consistency(report: Report) -> list[str]:
    c = report.consistency
    if not c:
        return []
    settings = c.get("settings", {})
    body = []
    for key, metric in CONSISTENCY.items():
        if key in c:
            body.append([metric.described(settings), number(c[key])])
    return section("Consistency under small shifts and noise", ["Measure", "Value"], body)


def _calibration(report: Report) -> list[str]:
    """T, what it was fitted on, and each condition's calibration errors before and after."""
    calibration = report.meta.get("calibration")
    if not calibration:
        return []
    lines = [
        "",
        "## Temperature scaling",
        "",
        f"T = {calibration['temperature']:.4f}, fitted ({calibration['mode']}) on "
        f"{calibration['fitted_on']}"
        + (f"; {calibration['note']}" if calibration.get("note") else "")
        + ". Accuracy is unchanged by T; every other number in this report is after scaling. "
        "Calibration errors before -> after (lower is better):",
        "",
    ]
    header = ["Condition", "RMS calibration error", "ECE", "NLL"]
    body = []
    for row in report.results:
        before = row.get("uncalibrated", {})
        level = "" if row["level"] is None else f" {row['level']:g}"
        name = f"{row['shift']}{level}" + (" (ImageNet-C)" if row["suite"] == "imagenet-c" else "")
        cells = [
            f"{number(before.get(key))} -> {number(row.get(key))}"
            for key in ("rms_calibration_error", "expected_calibration_error", "nll")
        ]  # fmt: skip
        body.append([name, *cells])
    return lines + table(header, body)


def render(report: Report, baseline: dict | None = None) -> str:
    """report.md's text; `baseline` as in `Report.mce_baseline`.

    Sections: intro line (model, data set, size, suites), Summary, Brightness by factor, Gaussian
    blur by σ, Common corruptions (ImageNet-C), Consistency under small shifts and noise,
    Temperature scaling (before / after); each only when its rows exist.
    """
    lines = _intro(report) + _summary(report) + _study_levels(report)
    lines += _corruptions(report, baseline) + _consistency(report) + _calibration(report)
    return "\n".join(lines) + "\n"
