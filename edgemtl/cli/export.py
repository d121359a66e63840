"""``edgemtl export``: a checkpoint -> an on-device artifact (+ manifest), verified against PyTorch."""

from __future__ import annotations

import argparse

from edgemtl.cli._args import positive_int, size_arg

NAME = "export"
HELP = "export a checkpoint to ONNX / ExecuTorch / CoreML, verified against PyTorch on real images"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        help="an edgemtl checkpoint (.pt), or an int8 program from 'edgemtl qat' (.pt2)",
    )
    from edgemtl.export import TARGETS

    targets = {n: TARGETS.get(n) for n in TARGETS.names()}
    p.add_argument(
        "--out",
        required=True,
        help=f"artifact path: {', '.join(sorted({t.suffix for t in targets.values()}))} "
        "(manifest: <out>.json)",
    )
    p.add_argument("--profile", help="export/<name>.yaml or a YAML path; the flags below override it")
    p.add_argument("--target", help=" | ".join(targets))
    defaults = ", ".join(
        f"{n} {t.default_precision}" for n, t in targets.items() if t.default_precision != "fp32"
    )
    p.add_argument(
        "--precision",
        help=f"fp32 | fp16 | int8 (what the target supports; default fp32, {defaults}, int8 for a .pt2); "
        "int8 from a .pt checkpoint runs post-training quantization on the --images",
    )
    p.add_argument(
        "--task-input",
        dest="task_input",
        help="onehot | index | per-task | all (default: onehot for astmt, all for multi-output models)",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="target option, e.g. weight_compression=int8 (repeatable)",
    )
    p.add_argument(
        "--images", help="folder of images for the parity check (default: rendered synthetic scenes)"
    )
    p.add_argument(
        "--num-images", type=positive_int, default=3, help="images used by the parity check (default 3)"
    )
    p.add_argument("--size", type=size_arg, help="export input HxW (default: the model's image_size)")


def _options(items: list[str]) -> dict:
    import yaml

    from edgemtl.errors import EdgeMTLError

    out = {}
    for item in items:
        if "=" not in item:
            raise EdgeMTLError(
                f"--option expects KEY=VALUE (got '{item}'), e.g. --option weight_compression=int8"
            )
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    from edgemtl.errors import EdgeMTLError
    from edgemtl.export import TARGETS, export
    from edgemtl.export.profiles import load_profile

    prof = load_profile(args.profile) if args.profile else {}
    target = args.target or prof.get("target")
    if not target:
        raise EdgeMTLError(f"no target: pass --target ({', '.join(TARGETS.names())}) or --profile")
    if args.target and prof.get("target") and args.target != prof["target"]:
        prof = {
            k: v for k, v in prof.items() if k not in ("options", "precision")
        }  # options belong to the profile's target
    default_precision = (
        "int8" if str(args.checkpoint).endswith(".pt2") else TARGETS.get(target).default_precision
    )
    size = args.size or (tuple(prof["input_size"]) if "input_size" in prof else None)
    res = export(
        args.checkpoint,
        target,
        args.out,
        precision=args.precision or prof.get("precision", default_precision),
        task_input=args.task_input or prof.get("task_input"),
        options={**prof.get("options", {}), **_options(args.option)},
        images=args.images or prof.get("images"),
        num_images=args.num_images,
        input_size=size,
    )
    meta = res.metadata
    num = meta["verification"]["numeric"]
    print(
        f"wrote {res.path} ({res.size_bytes / 1e6:.2f} MB, {res.target} {res.precision}, task input "
        f"{res.task_input}) in {res.seconds:.1f} s; manifest {res.manifest}"
    )
    print(f"  parity vs PyTorch ({num['runtime']}; {num['rule']}):")
    for task, r in num["tasks"].items():
        check = f"SQNR {r['sqnr_db']:.1f} dB" if "sqnr_db" in r else f"tol {r['tolerance']:.1e}"
        if "boxes_matched" in r:
            check += f"; boxes matched after decoding {100 * r['boxes_matched']:.0f}%"
        print(
            f"    {task:9s} output {r['output']:8s} max |Δ| {r['max_abs_diff']:.2e} ({check}, {r['images']} "
            "images)"
        )
    for note in meta.get("notes", []):
        print(f"  note: {note}")
    return 0
