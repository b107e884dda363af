"""Speed of evaluation.corruptions vs the imagecorruptions package: all 19 x 5 on 224x224 images.

Run: python -m benchmarks.bench_corruptions [--batch 16] [--ref-images 2]
Both run in this process on the same images (a natural 224x224 crop, tiled into a batch); ours
corrupts the batch at once (timed after one warm-up call per corruption and severity), the reference
one image at a time. imagecorruptions 1.1.2 needs shims on NumPy 2 / scikit-image 0.26: np.float_,
multichannel= -> channel_axis=, and pkg_resources.resource_filename
(`benchmarks/imagecorruptions_compat.py`, not in the package).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from tqdm import tqdm

from benchmarks.imagecorruptions_compat import load_imagecorruptions
from evaluation import corruptions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="images per batch for ours")
    parser.add_argument("--ref-images", type=int, default=2, help="images per cell, reference")
    args = parser.parse_args()
    import skimage.data

    image = np.ascontiguousarray(skimage.data.chelsea()[:224, 40:264])
    batch = np.repeat(image[None], args.batch, axis=0)
    reference, _ = load_imagecorruptions()
    names = corruptions.corruption_names("all")
    rows = []
    for name in tqdm(names, desc="corruptions"):
        ours_ms, ref_ms = [], []
        for sev in corruptions.SEVERITIES:
            corruptions.corrupt(batch, name, sev, seed=0)  # warm-up (graph/kernels)
            t0 = time.perf_counter()
            corruptions.corrupt(batch, name, sev, seed=1)
            ours_ms.append((time.perf_counter() - t0) * 1000 / args.batch)
            t0 = time.perf_counter()
            for _ in range(args.ref_images):
                reference.corrupt(image, sev, name)
            ref_ms.append((time.perf_counter() - t0) * 1000 / args.ref_images)
        rows.append((name, ours_ms, ref_ms))
    print(f"\nms per 224x224 image (ours: batch of {args.batch}; reference: one at a time)")
    print("| corruption | ours (sev 1..5) | imagecorruptions (sev 1..5) | speed-up |")
    print("|---|---|---|---|")
    for name, o, r in rows:
        print(
            f"| {name} | {min(o):.1f}-{max(o):.1f} | {min(r):.1f}-{max(r):.1f} | "
            f"{sum(r) / sum(o):.1f}x |"
        )
    total_o = sum(sum(o) for _, o, _ in rows)
    total_r = sum(sum(r) for _, _, r in rows)
    print(
        f"\nall 19 x 5 per image: ours {total_o / 1000:.2f} s, imagecorruptions "
        f"{total_r / 1000:.2f} s, speed-up {total_r / total_o:.1f}x"
    )


if __name__ == "__main__":
    main()
