"""Calibration and stability fixes on the shapes data, through the recipe's command line.

    python -m benchmarks.bench_fixes [--models cnn_gap] [--out runs/bench_fixes]

1. `python -m recipes.shapes --suite study,consistency` trains each model (plain);
2. the finished runs are copied and re-run with `--calibrate clean` and `--calibrate perturbed`
   (calibration is not part of the compared configuration: no retraining, the same weights);
3. `--stability gaussian:SIGMA[:ALPHA]` trains each model again with stability training.

Per variant and model it reads the run's report.json: accuracy and RMS calibration error clean and
averaged over the blur / brightness levels (before and after T where calibrated), T, and the
consistency suite's flip probability under noise and shift consistency. Writes fixes.json and
fixes.md to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shapes(out: Path, models: str, *extra: str) -> None:
    """Runs the shapes recipe (a user's command) and fails loudly if it fails."""
    command = [sys.executable, "-m", "recipes.shapes", "--models", models,
               "--suite", "study,consistency", "--out", str(out), "-q", *extra]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True)


def summary(report: dict) -> dict:
    """The numbers the README quotes, from one report.json."""
    rows = report["results"]

    def mean(shift: str, key: str, before: bool = False) -> float:
        values = [
            (row["uncalibrated"] if before else row)[key] for row in rows if row["shift"] == shift
        ]
        return statistics.fmean(values)

    calibrated = "uncalibrated" in rows[0]
    out = {
        f"{shift}_{key}": mean(shift, key)
        for shift in ("clean", "blur", "brightness")
        for key in ("accuracy", "rms_calibration_error")
    }
    if calibrated:
        for shift in ("clean", "blur", "brightness"):
            out[f"{shift}_rms_before"] = mean(shift, "rms_calibration_error", before=True)
        out["temperature"] = report["meta"]["calibration"]["temperature"]
        out["calibration_note"] = report["meta"]["calibration"].get("note")
    consistency = report["consistency"]
    out["flip_probability_noise"] = consistency["flip_probability_noise"]
    out["shift_consistency"] = consistency["shift_consistency"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fixes")
    parser.add_argument("--models", default="cnn_gap")
    parser.add_argument("--stability", default="gaussian:0.04:1.0")
    parser.add_argument("--out", default="runs/bench_fixes")
    args = parser.parse_args()
    out = Path(args.out)
    shapes(out / "plain", args.models)
    for mode in ("clean", "perturbed"):
        shutil.rmtree(out / mode, ignore_errors=True)
        shutil.copytree(out / "plain", out / mode)
        shapes(out / mode, args.models, "--calibrate", mode)
    shapes(out / "stability", args.models, "--stability", args.stability)
    results = {
        variant: {
            model: summary(json.loads((out / variant / model / "report.json").read_text()))
            for model in args.models.split(",")
        }
        for variant in ("plain", "clean", "perturbed", "stability")
    }
    (out / "fixes.json").write_text(json.dumps(results, indent=2))
    lines = [
        "| variant | model | acc clean | acc blur | RMS clean | RMS blur | RMS brightness | T "
        "| flip prob. (noise) | shift consistency |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, models in results.items():
        for model, r in models.items():
            rms = [
                f"{r[f'{s}_rms_before']:.3f} -> {r[f'{s}_rms_calibration_error']:.3f}"
                if "temperature" in r
                else f"{r[f'{s}_rms_calibration_error']:.3f}"
                for s in ("clean", "blur", "brightness")
            ]
            t = f"{r['temperature']:.3f}" if "temperature" in r else "—"
            lines.append(
                f"| {variant} | {model} | {r['clean_accuracy']:.3f} | {r['blur_accuracy']:.3f} | "
                + " | ".join(rms)
                + f" | {t} | {r['flip_probability_noise']:.4f} | {r['shift_consistency']:.3f} |"
            )
    (out / "fixes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
