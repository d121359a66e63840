"""``edgemtl eval``: metrics of a checkpoint on a dataset split, with the protocol printed."""

from __future__ import annotations

import argparse

NAME = "eval"
HELP = "evaluate a checkpoint on a dataset split (all task metrics, protocol, optional Δm)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        required=True,
        help="an edgemtl checkpoint (.pt), or an exported .onnx / .pte artifact (run by its runtime)",
    )
    p.add_argument("--data", required=True, help="dataset folder in the generic layout")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--tasks", nargs="+", help="subset of the model's tasks (default: all)")
    p.add_argument("--json", dest="json_out", help="write results (metrics, protocol, Δm) to this JSON file")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--depth-image-wise",
        action="store_true",
        help="average per-image depth RMSE (ASTMT) instead of pixel-wise",
    )
    p.add_argument("--edge-thresholds", type=int, default=25, help="thresholds for odsF/oisF/AP (default 25)")
    p.add_argument(
        "--edge-max-dist",
        type=float,
        help="edge match tolerance as a fraction of the diagonal (default: dataset's)",
    )
    p.add_argument("--baselines", help="JSON {task: {metric: value}} of single-task results for Δm")
    p.add_argument("--derive-edges", action="store_true", help="derive edge labels from semseg boundaries")
    p.add_argument(
        "--protocol",
        default="edgemtl",
        help="metric conventions: edgemtl (default), mtl-pytorch or astmt (the peers' evaluation code; "
        "docs/metrics.md)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgemtl.checkpoint import load_checkpoint
    from edgemtl.data.dataset import MultiTaskDataset
    from edgemtl.errors import EdgeMTLError
    from edgemtl.evaluate import PROTOCOLS, Protocol, evaluate, primary_metrics
    from edgemtl.report import baseline_delta, format_results, write_json
    from edgemtl.tasks import build_tasks
    from edgemtl.train.data import make_loader

    if args.protocol not in PROTOCOLS:
        from edgemtl.errors import unknown_choice

        raise unknown_choice("--protocol", args.protocol, PROTOCOLS)
    _check_files(args)  # the outputs and --baselines, before the evaluation, not after it
    if args.batch_size < 1:
        raise EdgeMTLError(f"--batch-size {args.batch_size}: must be at least 1")
    from edgemtl.export import TARGETS, runnable_targets

    if Path(args.checkpoint).suffix.lower() in {TARGETS.get(n).suffix for n in runnable_targets()}:
        from edgemtl import runtime
        from edgemtl.bench.artifact_eval import RuntimeModel

        rt = runtime.load(args.checkpoint)
        model, ckpt = RuntimeModel(rt), {"dataset": rt.metadata.get("dataset", {})}
        out_channels = {n: int(rt.metadata["task_info"][n]["out_channels"]) for n in rt.tasks}
        size = tuple(rt.input_size)
    else:
        model, ckpt = load_checkpoint(args.checkpoint)
        out_channels, size = model.out_channels, tuple(model.config.image_size)
    names = args.tasks or model.task_names
    for n in names:
        if n not in model.task_names:
            raise EdgeMTLError(f"--tasks: the model has no task '{n}' (it has {', '.join(model.task_names)})")
    # Images prepared as the exported artifact prepares them; metrics at each label's resolution.
    ds = MultiTaskDataset(
        args.data, split=args.split, tasks=names, derive_edges=args.derive_edges, input_size=size
    )
    meta = {**ckpt.get("dataset", {}), **ds.meta}
    tasks = build_tasks(names, meta)
    for n, t in tasks.items():
        want = out_channels[n]
        if t.out_channels != want:
            raise EdgeMTLError(
                f"task '{n}': the checkpoint predicts {want} channels but {args.data} defines "
                f"{t.out_channels} "
                f"classes: evaluate on the dataset the model was trained for"
            )
    protocol = Protocol(
        args.split,
        args.depth_image_wise,
        args.edge_thresholds,
        args.edge_max_dist,
        input_size=size,
        name=args.protocol,
    )
    if args.protocol != "edgemtl" and args.depth_image_wise:
        raise EdgeMTLError(
            f"--depth-image-wise is edgemtl's option; --protocol {args.protocol} fixes the depth rule"
        )
    if args.edge_max_dist is not None and "edges" in tasks:
        tasks["edges"].max_dist = args.edge_max_dist
    loader = make_loader(ds, args.batch_size, False, 0, 0, 0)
    results = evaluate(model, loader, tasks, protocol, progress=True)
    report = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "protocol": protocol.to_dict(),
        "protocol_text": protocol.describe(tasks),
        "metrics": results,
        "primary": primary_metrics(results, tasks, args.protocol),
    }
    if args.baselines:
        report.update(baseline_delta(results, tasks, args.baselines, args.protocol))
    print(format_results(report))
    if args.json_out:
        write_json(args.json_out, report)
        print(f"wrote {args.json_out}")
    return 0


def _check_files(args: argparse.Namespace) -> None:
    """--json writable (and not an artifact's manifest), --baselines a readable JSON object."""
    import json
    from pathlib import Path

    from edgemtl.cli._args import check_input_file, check_output_file
    from edgemtl.errors import EdgeMTLError

    check_output_file("--json", args.json_out)
    check_input_file("--baselines", args.baselines)
    if args.baselines:
        try:
            base = json.loads(Path(args.baselines).read_text())
        except (OSError, ValueError) as e:
            raise EdgeMTLError(f"--baselines {args.baselines}: not readable as JSON ({e})") from None
        if not isinstance(base, dict):
            raise EdgeMTLError(
                f"--baselines {args.baselines}: expected a JSON object {{task: {{metric: value}}}}"
            )
    if args.json_out and Path(args.json_out).suffix == ".json" and Path(args.json_out).is_file():
        try:
            is_manifest = json.loads(Path(args.json_out).read_text()).get("format") == "edgemtl-artifact"
        except (OSError, ValueError, AttributeError):
            is_manifest = False
        if is_manifest:
            raise EdgeMTLError(
                f"--json {args.json_out} is an artifact's manifest; writing results there would "
                "break the artifact: choose another file"
            )
