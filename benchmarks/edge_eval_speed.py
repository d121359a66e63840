"""Edge benchmark speed: seconds per image of edgemtl's odsF/oisF/AP counts, against the plain
implementation (skimage's thin, no pruning, one process), measured in one run on the same images.

    python benchmarks/edge_eval_speed.py [--size 256] [--images 16] [--thresholds 15]

Predictions imitate an early-epoch model (blurred edges plus noise: many pixels above the low
thresholds, which makes thinning and matching expensive) and a trained one (blurred edges only).
The counts are asserted identical. State the CPU (model, cores) with any figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def reference_counts(prob, gt, max_dist, thresholds):
    from skimage.morphology import thin

    from edgemtl.metrics.edges import match_count

    radius = max_dist * float(np.hypot(*gt.shape))
    gt_pts = np.argwhere(gt == 1)
    out = np.zeros((thresholds.size, 4), dtype=np.int64)
    out[:, 1] = len(gt_pts)
    for k, t in enumerate(thresholds):
        b = prob > t
        if b.any():
            pred_pts = np.argwhere(thin(b) & (gt != 255))
            m = match_count(pred_pts, gt_pts, radius)
            out[k] = (m, len(gt_pts), m, len(pred_pts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--thresholds", type=int, default=15)
    args = ap.parse_args()
    import cv2

    from edgemtl.data.synth import render_scene
    from edgemtl.metrics.edges import EdgeMeter, default_workers, make_thresholds

    th = make_thresholds(args.thresholds)
    rng = np.random.default_rng(0)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"CPU: {cpu}, {os.cpu_count()} cores; {args.images} images {args.size}x{args.size}, "
        f"{args.thresholds} thresholds, maxDist 0.0075"
    )
    for kind, noise in (("early-epoch", 0.8), ("trained", 0.0)):
        preds, gts = [], []
        for s in range(args.images):
            gt = render_scene(s, (args.size, args.size), "pascal")["edges"].astype(np.uint8)
            blur = cv2.GaussianBlur((gt == 1).astype(np.float32), (0, 0), 2.0) * 3
            prob = blur + rng.random(gt.shape).astype(np.float32) * noise
            preds.append(np.clip(prob / prob.max(), 0, 0.999))
            gts.append(gt)
        t0 = time.perf_counter()
        ref = sum(reference_counts(p, g, 0.0075, th) for p, g in zip(preds, gts))
        t_ref = (time.perf_counter() - t0) / args.images
        times = {}
        for workers in sorted({1, default_workers()}):
            meter = EdgeMeter(0.0075, th, workers=workers)
            if workers > 1:  # the pool starts once per process; do not time its start-up
                meter.update(preds[0], gts[0])
                meter.reset()
            t0 = time.perf_counter()
            for p, g in zip(preds, gts):
                meter.update(p, g)
            meter.compute()
            times[workers] = (time.perf_counter() - t0) / args.images
            assert np.array_equal(meter.total, ref), "counts differ from the plain implementation"
        line = ", ".join(f"{w} process(es) {t:.3f} s/img ({t_ref / t:.1f}x)" for w, t in times.items())
        print(f"{kind:12s} plain {t_ref:.3f} s/img; edgemtl {line}; counts identical")


if __name__ == "__main__":
    main()
