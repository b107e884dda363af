"""Wall time of `--help` for every command line, in fresh processes (target: under 1.5 s).

    python -m benchmarks.bench_cli_help [--rounds 5] [--out runs/bench_cli_help]

Each command runs `--rounds` times, interleaved with the others; the median and the worst are
reported, with whether TensorFlow was imported (it must not be: the packages import it lazily).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "recipes.pathmnist": ["--help"],
    "recipes.pets": ["--help"],
    "recipes.folder": ["--help"],
    "recipes.shapes": ["--help"],
    "evaluation": ["--help"],
    "augment": ["preview", "--help"],
}


def time_help(module: str, argv: list[str]) -> float:
    """Seconds from process start to exit of `python -m MODULE ARGV`."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, check=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_cli_help")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="runs/bench_cli_help")
    args = parser.parse_args()
    times: dict[str, list[float]] = {module: [] for module in COMMANDS}
    for _ in range(args.rounds):
        for module, argv in COMMANDS.items():
            times[module].append(time_help(module, argv))
    results = {
        module: {"median_s": statistics.median(t), "max_s": max(t), "rounds": t}
        for module, t in times.items()
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "help_times.json").write_text(json.dumps(results, indent=2))
    print("| command | median s | worst s |\n|---|---|---|")
    for module, row in results.items():
        print(f"| python -m {module} {' '.join(COMMANDS[module])} | {row['median_s']:.2f} "
              f"| {row['max_s']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
