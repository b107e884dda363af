"""`Report`: an evaluation's rows, their aggregates, and report.json / report.md / PNG plots."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile

import numpy as np

from evaluation import metrics

STUDY_SHIFTS = ("blur", "brightness")


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_safe(obj):
    """NaN / inf -> None so report.json is strict JSON."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def _fmt(v) -> str:
    return "—" if v is None or not np.isfinite(v) else f"{v:.4f}"


@dataclasses.dataclass
class Report:
    """Evaluation results.

    Attributes:
        results: one row per condition: {"suite", "shift", "level", "accuracy", "error",
            "rms_calibration_error", "adaptive_rms_calibration_error", "expected_calibration_error",
            "nll", "brier", "n", "reliability"}; the clean row has shift "clean", level None.
        consistency: shift consistency / translation sensitivity / flip probability (if run).
        meta: suites, data set, factors, severities, seed, model name.
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

    def shift_average(self, shift: str, key: str) -> float | None:
        """Mean of `key` over a shift's levels (None if the shift was not run)."""
        rows = self.rows(shift)
        return float(np.mean([r[key] for r in rows])) if rows else None

    def corruption_errors(self) -> dict[str, list[float]]:
        """Corruption name -> error at each evaluated severity."""
        names = [r["shift"] for r in self.results if r["suite"] == "imagenet-c"]
        return {n: [r["error"] for r in self.rows(n, "imagenet-c")] for n in dict.fromkeys(names)}

    def baseline_errors(self) -> dict:
        """This run as a baseline for another run's mCE: clean error and mean corruption errors."""
        errors = self.corruption_errors()
        if not errors:
            raise ValueError("this report has no corruption results to serve as a baseline")
        return {
            "clean": self.clean()["error"],
            "corruptions": {n: float(np.mean(e)) for n, e in errors.items()},
        }

    def corruption_summary(self, baseline: dict | None = None) -> dict | None:
        """CE / relative CE per corruption and mCE / relative mCE (AlexNet baseline by default)."""
        errors = self.corruption_errors()
        if not errors:
            return None
        return metrics.mean_corruption_error(errors, self.clean()["error"], baseline)

    # ------------------------------------------------------------------ files
    def to_dict(self, baseline: dict | None = None) -> dict:
        summary = {
            "clean": {k: self.clean()[k] for k in ("accuracy", "rms_calibration_error")},
            **{
                f"{s}_average": {
                    k: self.shift_average(s, k) for k in ("accuracy", "rms_calibration_error")
                }
                for s in STUDY_SHIFTS
                if self.rows(s)
            },
        }
        return {
            "meta": self.meta,
            "summary": summary,
            "corruption_summary": self.corruption_summary(baseline),
            "consistency": self.consistency,
            "results": self.results,
        }

    @classmethod
    def from_json(cls, path) -> Report:
        """Loads a report.json written by `save` (e.g. as an mCE baseline)."""
        data = json.loads(pathlib.Path(path).read_text())
        return cls(data["results"], data.get("consistency", {}), data.get("meta", {}))

    def to_markdown(self, baseline: dict | None = None) -> str:
        """The study's layout: clean / brightness-average / blur-average, then per-level tables."""
        clean = self.clean()
        lines = ["# Robustness report", ""]
        if self.meta:
            lines += [
                f"Model `{self.meta.get('model')}`, data set `{self.meta.get('dataset_name')}`,"
                f" {clean['n']} examples, suites {', '.join(self.meta.get('suites', []))}.",
                "",
            ]
        cols = ["Clean"] + [f"{s.capitalize()} avg" for s in ("brightness", "blur") if self.rows(s)]
        lines += ["| Metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for key, label in (("accuracy", "Accuracy"), ("rms_calibration_error", "RMS")):
            vals = [clean[key]] + [
                self.shift_average(s, key) for s in ("brightness", "blur") if self.rows(s)
            ]
            lines.append(f"| {label} | " + " | ".join(_fmt(v) for v in vals) + " |")
        for shift in ("brightness", "blur"):
            if not self.rows(shift):
                continue
            name = "factor" if shift == "brightness" else "sigma"
            lines += ["", f"## {shift.capitalize()} by level", ""]
            lines += [f"| {name} | Accuracy | RMS | ECE | NLL |", "|---|---|---|---|---|"]
            for r in self.rows(shift):
                lines.append(
                    f"| {r['level']} | {_fmt(r['accuracy'])} | "
                    f"{_fmt(r['rms_calibration_error'])} | "
                    f"{_fmt(r['expected_calibration_error'])} | {_fmt(r['nll'])} |"
                )
        summary = self.corruption_summary(baseline)
        if summary:
            errors = self.corruption_errors()
            sev = [r["level"] for r in self.rows(next(iter(errors)), "imagenet-c")]
            who = "AlexNet's published errors" if baseline is None else "the given baseline"
            lines += [
                "",
                "## Common corruptions",
                "",
                f"mCE {100 * summary['mce']:.1f}, relative mCE "
                f"{100 * summary['relative_mce']:.1f} (x100, against {who}, over "
                f"{len(summary['names'])} corruptions).",
                "",
            ]
            head = " | ".join(f"err s{s}" for s in sev)
            lines += [f"| Corruption | CE | rel. CE | {head} |", "|---" * (3 + len(sev)) + "|"]
            for n, errs in errors.items():
                ce = summary["ce"].get(n)
                rel = summary["relative_ce"].get(n)
                lines.append(
                    f"| {n} | {'—' if ce is None else f'{100 * ce:.1f}'} | "
                    f"{'—' if rel is None else f'{100 * rel:.1f}'} | "
                    + " | ".join(_fmt(e) for e in errs)
                    + " |"
                )
        if self.consistency:
            c = self.consistency
            lines += ["", "## Consistency", "", "| Metric | Value |", "|---|---|"]
            for key in (
                "shift_consistency",
                "p_top1_change",
                "mean_abs_change",
                "flip_probability_noise",
            ):
                lines.append(f"| {key} | {_fmt(c[key])} |")
        return "\n".join(lines) + "\n"

    def plot_accuracy(self, path: pathlib.Path) -> None:
        """Accuracy vs severity/level, one panel per study shift and one for the corruptions."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        clean = self.clean()["accuracy"]
        panels = [s for s in STUDY_SHIFTS if self.rows(s)]
        errors = self.corruption_errors()
        panels += ["corruptions"] if errors else []
        fig, axes = plt.subplots(
            1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 4), squeeze=False
        )
        for ax, panel in zip(axes[0], panels, strict=False):
            if panel in STUDY_SHIFTS:
                rows = self.rows(panel)
                ax.plot([r["level"] for r in rows], [r["accuracy"] for r in rows], "o-")
                ax.set_xlabel("factor" if panel == "brightness" else "sigma")
                ax.set_title(f"{panel}")
            else:
                for n in errors:
                    rows = self.rows(n, "imagenet-c")
                    ax.plot(
                        [r["level"] for r in rows],
                        [r["accuracy"] for r in rows],
                        ".-",
                        label=n,
                        lw=1,
                    )
                ax.set_xlabel("severity")
                ax.set_title("corruptions")
                ax.legend(fontsize=6, ncol=2)
            ax.axhline(clean, color="gray", ls="--", lw=1, label="clean")
            ax.set_ylabel("accuracy")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
        fig.suptitle(f"Accuracy under shifts — {self.meta.get('model', '')}")
        fig.tight_layout()
        _save_fig(fig, path)

    def plot_reliability(self, path: pathlib.Path) -> None:
        """Reliability diagram of the clean data (and the hardest study shift level if run)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [self.clean()]
        rows += [self.rows(s)[-1] for s in STUDY_SHIFTS if self.rows(s)]
        fig, axes = plt.subplots(1, len(rows), figsize=(4 * len(rows), 4), squeeze=False)
        for ax, r in zip(axes[0], rows, strict=True):
            rel = r["reliability"]
            b = len(rel["count"])
            centres = (np.arange(b) + 0.5) / b
            acc = np.where(np.array(rel["count"]) > 0, rel["accuracy"], 0)
            ax.bar(centres, acc, width=1 / b, edgecolor="k", alpha=0.7, label="accuracy")
            ax.plot([0, 1], [0, 1], "r--", lw=1, label="perfect calibration")
            title = "clean" if r["shift"] == "clean" else f"{r['shift']} {r['level']}"
            ax.set_title(f"{title}: RMS {r['rms_calibration_error']:.3f}")
            ax.set_xlabel("confidence")
            ax.set_ylabel("accuracy")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        _save_fig(fig, path)

    def save(self, out_dir, baseline: dict | None = None) -> dict[str, pathlib.Path]:
        """Writes report.json, report.md, accuracy.png and reliability.png atomically.

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
        _atomic_write(
            paths["json"],
            json.dumps(_json_safe(self.to_dict(baseline)), indent=1, allow_nan=False).encode(),
        )
        _atomic_write(paths["markdown"], self.to_markdown(baseline).encode())
        self.plot_accuracy(paths["accuracy_plot"])
        self.plot_reliability(paths["reliability_plot"])
        return paths


def _save_fig(fig, path: pathlib.Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    _atomic_write(pathlib.Path(path), buf.getvalue())
