"""Speed of evaluation.corruptions vs the imagecorruptions package: all 19 x 5 on 224x224 images.

Run: python -m benchmarks.bench_corruptions --out DIR [--batch 8] [--rounds 3] [--ref-images 8]
[--corruptions all]

Both run in this process on the same natural 224x224 images (crops of scikit-image's sample
photographs). Ours corrupts a batch of `--batch` uint8 images per call; the reference corrupts
the first `--ref-images` of them one at a time. First, every (corruption, severity) is called once
on ours in a fresh process: that is the first-call (trace / compile / kernel set-up) cost. Then, in
each round, every cell times ours and the reference back to back (interleaved, so load from other
processes on a shared machine hits both alike); the report gives the median over rounds of the
per-image time. Outputs are checked: deterministic corruptions must agree with the reference
(mean |difference| in uint8 levels, reported), stochastic ones must change the image by a
similar amount. TF uses its default thread pools (all cores), NumPy/OpenCV the reference's.
imagecorruptions 1.1.2 needs shims on NumPy 2 / scikit-image 0.26
(`benchmarks/imagecorruptions_compat.py`, not in the package).

Writes DIR/bench_corruptions.json and DIR/bench_corruptions.png (speed-up per corruption, log
scale, with a line at 1x).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from benchmarks.imagecorruptions_compat import load_imagecorruptions
from evaluation import corruptions

SIZE = 224


def sample_images(count: int) -> np.ndarray:
    """`count` distinct 224x224 RGB crops of scikit-image's sample photographs, uint8."""
    import skimage.data

    photos = [skimage.data.chelsea(), skimage.data.astronaut(), skimage.data.coffee()]
    photos += [skimage.data.rocket(), skimage.data.immunohistochemistry()]
    crops = []
    for k in range(count):
        photo = photos[k % len(photos)]
        h, w = photo.shape[:2]
        top = (k // len(photos) * 37) % (h - SIZE)
        left = (k // len(photos) * 53 + 20) % (w - SIZE)
        crops.append(photo[top : top + SIZE, left : left + SIZE, :3])
    return np.ascontiguousarray(np.stack(crops))


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def corruption_list(spec: str) -> list[str]:
    """A subset name ("all", "noise", ...) or comma-separated corruption names."""
    if spec in corruptions.SUBSETS:
        return corruptions.corruption_names(spec)
    names = spec.split(",")
    for name in names:
        corruptions.check_corruption(name, 1)
    return names


def run(batch: np.ndarray, ref_images: int, rounds: int, names: list[str]) -> dict:
    reference, _ = load_imagecorruptions()
    cells = [(name, sev) for name in names for sev in corruptions.SEVERITIES]
    first = {}
    for name, sev in cells:  # fresh process: the first call pays tracing and compilation
        first[f"{name}/{sev}"], _ = _timed(lambda n=name, s=sev: corruptions.corrupt(batch, n, s))
    ours = {f"{n}/{s}": [] for n, s in cells}
    ref = {f"{n}/{s}": [] for n, s in cells}
    agreement = {}
    for r in range(rounds):
        for name, sev in cells:
            key = f"{name}/{sev}"
            t, out = _timed(lambda n=name, s=sev, r=r: corruptions.corrupt(batch, n, s, seed=r + 1))
            ours[key].append(t / len(batch))
            t, theirs = _timed(
                lambda n=name, s=sev: [reference.corrupt(im, s, n) for im in batch[:ref_images]]
            )
            ref[key].append(t / ref_images)
            if r == 0:
                ours_f = out[:ref_images].astype(float)
                theirs_f = np.stack(theirs).astype(float)
                agreement[key] = {
                    "mean_abs_diff": float(np.abs(ours_f - theirs_f).mean()),
                    "change_ours": float(np.abs(ours_f - batch[:ref_images]).mean()),
                    "change_reference": float(np.abs(theirs_f - batch[:ref_images]).mean()),
                }
        print(f"round {r + 1}/{rounds} done", flush=True)
    per_cell = {
        key: {
            "ours_ms": 1000 * float(np.median(ours[key])),
            "reference_ms": 1000 * float(np.median(ref[key])),
            "first_call_s": first[key],
            **agreement[key],
        }
        for key in ours
    }
    per_corruption = {}
    for name in names:
        rows = [per_cell[f"{name}/{s}"] for s in corruptions.SEVERITIES]
        o, t = sum(c["ours_ms"] for c in rows), sum(c["reference_ms"] for c in rows)
        per_corruption[name] = {
            "ours_ms": o / len(rows),
            "reference_ms": t / len(rows),
            "speedup": t / o,
            "first_call_s": sum(c["first_call_s"] for c in rows),
            "stochastic": corruptions.CORRUPTIONS[name].stochastic,
        }
    total_o = sum(c["ours_ms"] for c in per_cell.values())
    total_r = sum(c["reference_ms"] for c in per_cell.values())
    return {
        "config": {
            "batch": len(batch),
            "ref_images": ref_images,
            "rounds": rounds,
            "size": SIZE,
            "cpu_count": os.cpu_count(),
            "corruptions": names,
            "note": "shared machine: ours and reference interleaved per cell, median of rounds",
        },
        "overall": {
            "ours_ms_per_image_all_95": total_o,
            "reference_ms_per_image_all_95": total_r,
            "speedup": total_r / total_o,
            "first_call_s_all_95": sum(first.values()),
        },
        "per_corruption": per_corruption,
        "per_cell": per_cell,
    }


def plot(result: dict, path: pathlib.Path) -> None:
    """Horizontal bars of the speed-up per corruption (log scale) with a line at 1x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["per_corruption"]
    names = list(rows)[::-1]
    speedups = [rows[n]["speedup"] for n in names]
    fig, ax = plt.subplots(figsize=(8, 7))
    colors = ["tab:green" if s >= 1 else "tab:red" for s in speedups]
    ax.barh(names, speedups, color=colors)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=1)
    for y, (n, s) in enumerate(zip(names, speedups, strict=True)):
        ms = f"{rows[n]['ours_ms']:.2f} vs {rows[n]['reference_ms']:.2f} ms"
        ax.text(s * 1.08, y, f"{s:.1f}x  ({ms})", va="center", fontsize=8)
    ax.set_xlim(min(0.5, min(speedups) / 1.5), max(speedups) * 30)
    overall = result["overall"]
    cfg = result["config"]
    ax.set_xlabel("speed-up per image vs imagecorruptions 1.1.2 (log scale; 1x = as fast)")
    ax.set_title(
        f"ImageNet-C corruptions, 224 px uint8, batch {cfg['batch']} (median of {cfg['rounds']} "
        f"interleaved rounds, shared {cfg['cpu_count']}-core CPU)\n{len(rows)} x 5 overall "
        f"{overall['speedup']:.1f}x; first calls of all {5 * len(rows)}: "
        f"{overall['first_call_s_all_95']:.1f} s",
        fontsize=9,
    )
    fig.tight_layout()
    _atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def _atomic_write(path: pathlib.Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
    parser.add_argument("--batch", type=int, default=8, help="images per call for ours")
    parser.add_argument("--ref-images", type=int, default=8, help="images per cell, reference")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument(
        "--corruptions",
        default="all",
        help='a subset ("all", "noise", ...) or "name,name" for a quick look; the overall '
        "figures (keys *_all_95) then cover those corruptions' cells",
    )
    args = parser.parse_args()
    if not 1 <= args.ref_images <= args.batch:
        raise ValueError(
            f"--ref-images must be in 1..--batch ({args.batch}), got {args.ref_images}"
        )
    names = corruption_list(args.corruptions)
    args.out.mkdir(parents=True, exist_ok=True)
    result = run(sample_images(args.batch), args.ref_images, args.rounds, names)
    text = json.dumps(result, indent=1).encode()
    _atomic_write(args.out / "bench_corruptions.json", lambda f: f.write(text))
    plot(result, args.out / "bench_corruptions.png")
    print("| corruption | ours ms/image | imagecorruptions ms/image | speed-up | first calls s |")
    print("|---|---|---|---|---|")
    for name, row in result["per_corruption"].items():
        print(
            f"| {name} | {row['ours_ms']:.2f} | {row['reference_ms']:.2f} | "
            f"{row['speedup']:.1f}x | {row['first_call_s']:.1f} |"
        )
    o = result["overall"]
    print(
        f"\nall {len(names)} x 5 per image: ours {o['ours_ms_per_image_all_95'] / 1000:.3f} s, "
        f"imagecorruptions {o['reference_ms_per_image_all_95'] / 1000:.3f} s, speed-up "
        f"{o['speedup']:.1f}x; first calls of all {5 * len(names)}: "
        f"{o['first_call_s_all_95']:.1f} s"
    )


if __name__ == "__main__":
    main()
