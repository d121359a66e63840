"""``edgemtl data``: synthesise, validate and convert datasets in the generic layout."""

from __future__ import annotations

import argparse

from edgemtl.cli._args import sizes_arg
from edgemtl.errors import EdgeMTLError

NAME = "data"
HELP = "make, convert and check datasets (synth | validate | derive-edges | convert)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    s = sub.add_parser("synth", help="render procedural 3D scenes with exact labels for all six tasks")
    s.add_argument("--out", required=True, help="output folder (must be empty or new)")
    s.add_argument("--num", type=int, default=1000, help="number of images (default 1000)")
    s.add_argument(
        "--size",
        type=sizes_arg,
        default=(128, 128),
        help="HxW (default 128x128), or HxW,HxW,... for a mixed-size dataset (dealt round-robin)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--preset", default="nyud", help="scene style: nyud (indoor) or pascal (objects, people)")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    s.add_argument(
        "--detection",
        action="store_true",
        help="also write object boxes (detection/<id>.json, exact, from the visible instances)",
    )
    v = sub.add_parser("validate", help="check every file of a dataset and list all problems")
    v.add_argument("dir")
    v.add_argument("--split", action="append", help="split(s) to check (default: all present)")
    d = sub.add_parser("derive-edges", help="write edges/ from semseg boundaries and add the task")
    d.add_argument("dir")
    c = sub.add_parser("convert", help="convert a public distribution to the generic layout")
    c.add_argument(
        "format",
        help="nyud (NYUD-v2 multi-task), pascal (PASCAL-Context multi-task) or voc (PASCAL VOC boxes)",
    )
    c.add_argument("src", help="the distribution's root folder (NYUD_MT, PASCAL_MT or VOCdevkit/VOC<year>)")
    c.add_argument("--out", required=True)
    c.add_argument("--segmentation", action="store_true", help="voc: also semseg, on the images VOC segments")
    c.add_argument("--val-as-test", action="store_true", help="voc: use VOC's val list as the test split")


def _sizes_text(size) -> str:
    sizes = size if isinstance(size, list) else [size]
    return ", ".join(f"{h}x{w}" for h, w in sizes)


def run(args: argparse.Namespace) -> int:
    if args.action == "synth":
        import time

        from edgemtl.data.synth import OPTIONAL_TASKS, TASKS, generate

        t0 = time.perf_counter()
        meta = generate(
            args.out,
            args.num,
            args.size,
            seed=args.seed,
            preset=args.preset,
            workers=args.workers,
            tasks=(*TASKS, *OPTIONAL_TASKS) if args.detection else None,
        )
        dt = time.perf_counter() - t0
        print(
            f"wrote {args.num} scenes ({_sizes_text(args.size)}, preset {args.preset}, tasks "
            f"{', '.join(meta['tasks'])}) to {args.out} in {dt:.1f} s ({args.num / dt:.0f} img/s)"
        )
        return 0
    if args.action == "validate":
        from edgemtl.data.validate import validate_dataset

        kw = {"splits": tuple(args.split)} if args.split else {}
        problems = validate_dataset(args.dir, **kw)
        for p in problems:
            print(p)
        if problems:
            print(f"{len(problems)} problem(s) in {args.dir}")
            return 1
        print(f"{args.dir}: OK")
        return 0
    if args.action == "derive-edges":
        from edgemtl.data.derive import derive_edges_on_disk

        derive_edges_on_disk(args.dir)
        print(f"wrote {args.dir}/edges and added 'edges' to dataset.json")
        return 0
    if args.action == "convert":
        if args.format == "nyud":
            from edgemtl.data.nyud import convert_nyud as convert
        elif args.format == "pascal":
            from edgemtl.data.pascal import convert_pascal as convert
        elif args.format == "voc":
            from functools import partial

            from edgemtl.data.voc import convert_voc

            convert = partial(convert_voc, segmentation=args.segmentation, val_as_test=args.val_as_test)
        else:
            from edgemtl.errors import unknown_choice

            raise unknown_choice("dataset format", args.format, ["nyud", "pascal", "voc"])
        if args.format != "voc" and (args.segmentation or args.val_as_test):
            raise EdgeMTLError("--segmentation and --val-as-test apply to 'voc' only")
        convert(args.src, args.out)
        print(f"converted {args.src} -> {args.out}")
        return 0
    raise EdgeMTLError(f"unknown action {args.action}")
