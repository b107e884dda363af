"""`Report`: an evaluation's rows, their aggregates, and report.json / report.md / PNG plots."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from evaluation import metrics
from evaluation.files import atomic_write_bytes

STUDY_SHIFTS = ("brightness", "blur")  # the study's column order
# AlexNet's errors were measured on ImageNet-C (224 px crops); below this size they do not fit.
IMAGENET_MIN_SIZE = 160
ALEXNET = {
    **metrics.ALEXNET_BASELINE,
    "name": "AlexNet on ImageNet-C (Hendrycks & Dietterich 2019)",
}
GIVEN_BASELINE = "the given baseline report"
CI_METRICS = ("accuracy", "rms_calibration_error", "expected_calibration_error")


def _json_safe(obj):
    """NaN / inf -> None so report.json is strict JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def row_interval(row: dict, key: str) -> tuple[float, float] | None:
    """The row's 95% interval of `key` (the error's from the accuracy's), or None if absent."""
    ci = row.get("ci95") or {}
    bounds = ci.get("accuracy" if key == "error" else key)
    if bounds is None or any(b is None or not np.isfinite(b) for b in bounds):
        return None
    lo, hi = (float(b) for b in bounds)
    return (1 - hi, 1 - lo) if key == "error" else (lo, hi)


def image_side(meta: dict) -> int | None:
    """The smaller image side recorded in `meta["image_size"]` (int or [h, w]); None if absent."""
    size = meta.get("image_size")
    if size is None:
        return None
    return int(min(size)) if isinstance(size, list | tuple) else int(size)


@dataclasses.dataclass
class Report:
    """Evaluation results.

    Attributes:
        results: one row per condition: {"suite", "shift", "level", "accuracy", "error",
            "rms_calibration_error", "adaptive_rms_calibration_error", "expected_calibration_error",
            "nll", "brier", "n", "reliability"} and optionally "ci95" {metric: [lo, hi]}; the
            clean row has shift "clean", level None.
        consistency: shift consistency / translation sensitivity / flip probability (if run).
        meta: suites, data set ("dataset": display name, "dataset_name": the study's key),
            image_size, num_examples, factors, severities, seed, model name.
    """

    results: list[dict]
    consistency: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)

    # ------------------------------------------------------------------ aggregates
    def rows(self, shift: str, suite: str = "study") -> list[dict]:
        """Rows of one shift of a suite ("clean", "study", "imagenet-c"), in level order."""
        return [r for r in self.results if r["shift"] == shift and r["suite"] == suite]

    def clean(self) -> dict:
        """The clean row."""
        return self.rows("clean", "clean")[0]

    def dataset_label(self) -> str:
        """The data set's display name (file or folder), else its study key, else a placeholder."""
        name = self.meta.get("dataset") or self.meta.get("dataset_name")
        return str(name) if name else "(data set not recorded)"

    def shift_average(self, shift: str, key: str) -> float | None:
        """Mean of `key` over a shift's levels (None if the shift was not run)."""
        rows = self.rows(shift)
        return float(np.mean([r[key] for r in rows])) if rows else None

    def corruption_errors(self) -> dict[str, list[float]]:
        """Corruption name -> error at each evaluated severity."""
        names = [r["shift"] for r in self.results if r["suite"] == "imagenet-c"]
        return {n: [r["error"] for r in self.rows(n, "imagenet-c")] for n in dict.fromkeys(names)}

    def corruption_families(self) -> dict[str, list[str]]:
        """Family (noise, blur, weather, digital, extra) -> its evaluated corruptions."""
        from evaluation.corruptions import CORRUPTIONS  # imports TensorFlow: only when needed

        families: dict[str, list[str]] = {}
        for name in self.corruption_errors():
            family = CORRUPTIONS[name].family if name in CORRUPTIONS else "other"
            families.setdefault(family, []).append(name)
        return families

    def baseline_errors(self) -> dict:
        """This run as a baseline for another run's mCE: clean error and mean corruption errors."""
        errors = self.corruption_errors()
        if not errors:
            raise ValueError("this report has no corruption results to serve as a baseline")
        return {
            "name": f"model `{self.meta.get('model', '?')}` on {self.dataset_label()}",
            "clean": self.clean()["error"],
            "corruptions": {n: float(np.mean(e)) for n, e in errors.items()},
        }

    def corruption_summary(self, baseline: dict | None = None) -> dict | None:
        """CE / relative CE per corruption and mCE / relative mCE (AlexNet baseline by default)."""
        errors = self.corruption_errors()
        if not errors:
            return None
        return metrics.mean_corruption_error(errors, self.clean()["error"], baseline)

    def mce_baseline(self, baseline: dict | None = None) -> tuple[dict | None, str]:
        """The baseline that fits this run for mCE, and a one-line note saying which or why none.

        A given baseline (another run's `baseline_errors()`) always fits; AlexNet's published
        errors only for ImageNet-size images (side >= IMAGENET_MIN_SIZE).

        Returns:
            (baseline dict or None, note).
        """
        if baseline is not None:
            name = baseline.get("name", GIVEN_BASELINE)
            if not set(self.corruption_errors()) & set(baseline["corruptions"]):
                return None, f"No mCE: {name} has none of these corruptions."
            return baseline, f"against {name}"
        side = image_side(self.meta)
        fix = "give `--baseline` the report.json of a reference model on the same data to get one"
        if side is None:
            return None, (
                "No mCE: this report does not record the image size, so AlexNet's ImageNet-C "
                f"errors may not fit; {fix}."
            )
        if side < IMAGENET_MIN_SIZE:
            return None, (
                f"No mCE: AlexNet's published errors are for ImageNet-C (224 px) and these images "
                f"are {side} px; {fix}."
            )
        return ALEXNET, f"against {ALEXNET['name']}, not on this data set"

    def corruption_overview(self, baseline: dict | None = None) -> dict | None:
        """Unnormalised mean errors, plus CE / mCE when a baseline fits (see `mce_baseline`).

        Returns:
            None without corruption rows, else {"mean_error": {name: mean over severities},
            "mean_error_overall", "baseline": its name or None, "note", and the keys of
            `metrics.mean_corruption_error` when a baseline fits}.
        """
        errors = self.corruption_errors()
        if not errors:
            return None
        chosen, note = self.mce_baseline(baseline)
        mean_error = {n: float(np.mean(e)) for n, e in errors.items()}
        overview = {
            "mean_error": mean_error,
            "mean_error_overall": float(np.mean(list(mean_error.values()))),
            "baseline": None if chosen is None else chosen.get("name", GIVEN_BASELINE),
            "note": note,
        }
        if chosen is not None:
            overview |= self.corruption_summary(chosen)
        return overview

    # ------------------------------------------------------------------ files
    def to_dict(self, baseline: dict | None = None) -> dict:
        """report.json's content: meta, study summary, corruption overview, consistency, rows."""
        keys = ("accuracy", "rms_calibration_error")
        clean = {k: self.clean()[k] for k in keys}
        if "ci95" in self.clean():
            clean["ci95"] = self.clean()["ci95"]
        summary = {
            "clean": clean,
            **{
                f"{s}_average": {k: self.shift_average(s, k) for k in keys}
                for s in STUDY_SHIFTS
                if self.rows(s)
            },
        }
        return {
            "meta": self.meta,
            "summary": summary,
            "corruption_summary": self.corruption_overview(baseline),
            "consistency": self.consistency,
            "results": self.results,
        }

    @classmethod
    def from_json(cls, path) -> Report:
        """Loads a report.json written by `save` (e.g. as an mCE baseline)."""
        data = json.loads(pathlib.Path(path).read_text())
        return cls(data["results"], data.get("consistency", {}), data.get("meta", {}))

    def to_markdown(self, baseline: dict | None = None) -> str:
        """report.md: summary, per-level tables, corruptions, consistency (see report_markdown)."""
        from evaluation import report_markdown

        return report_markdown.render(self, baseline)

    def plot_accuracy(self, path: pathlib.Path) -> None:
        """accuracy.png: accuracy per study level and per corruption family and severity."""
        from evaluation import plots

        atomic_write_bytes(path, plots.to_png(plots.accuracy_figure(self)))

    def plot_reliability(self, path: pathlib.Path) -> None:
        """reliability.png: reliability diagrams with the examples each bin holds."""
        from evaluation import plots

        atomic_write_bytes(path, plots.to_png(plots.reliability_figure(self)))

    def save(self, out_dir, baseline: dict | None = None) -> dict[str, pathlib.Path]:
        """Writes report.json, report.md, accuracy.png and reliability.png.

        Each file is written atomically with the mode the umask gives new files (0644 under 022).

        Returns:
            file kind -> path.
        """
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": out / "report.json",
            "markdown": out / "report.md",
            "accuracy_plot": out / "accuracy.png",
            "reliability_plot": out / "reliability.png",
        }
        data = json.dumps(_json_safe(self.to_dict(baseline)), indent=1, allow_nan=False)
        atomic_write_bytes(paths["json"], data.encode())
        atomic_write_bytes(paths["markdown"], self.to_markdown(baseline).encode())
        self.plot_accuracy(paths["accuracy_plot"])
        self.plot_reliability(paths["reliability_plot"])
        return paths
